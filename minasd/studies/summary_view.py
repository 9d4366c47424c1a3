"""Reading the committed results summary for the book: tables, captions, a verdict (Book: chapter 10).

``minasd results`` aggregates its seeds into ``OUT/summary/`` (:func:`minasd.studies.results.aggregate`):
CSV tables made by :mod:`minasd.studies.analysis` plus ``provenance.json``.  This module reads that
folder back and turns it into what a chapter shows, without recomputing anything:

* :func:`load_summary`: the tables as DataFrames (None when there is no summary at all);
* :func:`summary_label`: the one caption line every table and figure of the summary carries
  (which data, size, data seed, profile, training seeds, sections 03-05);
* :func:`class_table`, :func:`type_outcomes`, :func:`caught_missed_totals`: compact views;
* :func:`compared_systems`, :func:`outcomes_by_system`, :func:`systems_overview`: the proposed
  method against each comparison system (:data:`minasd.studies.experiment.SYSTEMS`: the official
  DCASE 2021 autoencoder, TWFR-GMM and the GMM on log-mel mean and std), with the paired-bootstrap
  intervals and per-type wins / losses;
* :func:`verdict`: "does the method win?" as Markdown sentences generated from the numbers.

All values stay fractions in [0, 1] as in the CSV files; only :func:`verdict` prints percent.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from ..config import EVAL_SECTIONS, MACHINE_TYPES
from .experiment import SYSTEMS, VARIANT_LABELS, VARIANTS
from ..metrics import ALL_LABEL, machine_order
from ..provenance import backbone_label, data_caption

PROVENANCE_NAME = "provenance.json"
#: Row label of a mean over the machine types present (not DCASE's pooled "All").
TYPES_MEAN = "mean of types"
#: Row label of counts summed over the machine types present.
ALL_TYPES = "all types"
#: Difference of two pooled class AUCs, in points, below which the verdict calls them level.
LEVEL_POINTS = 1.0


def load_summary(summary_dir: str | Path | None) -> dict | None:
    """The summary folder of ``minasd results`` as DataFrames, or None when there is none.

    Only a missing ``provenance.json`` counts as "no summary".  While a run is in progress
    the folder may hold fewer tables than its provenance lists (``summary_files``); those
    are named in ``missing`` and left out of ``tables``.

    Args:
        summary_dir: ``OUT/summary`` (e.g. ``results/experiment/summary``).

    Returns:
        ``{"dir", "provenance", "tables": {name: DataFrame}, "missing": [names],
        "machine_types": [types with a per-type result, in the paper's order]}``;
        ``name`` is the file stem (``auc_by_class`` for ``auc_by_class.csv``).

    Raises:
        ValueError: a provenance file that is not valid JSON (named).

    >>> load_summary("no/such/folder") is None
    True
    """
    if not summary_dir:
        return None
    d = Path(summary_dir)
    prov_path = d / PROVENANCE_NAME
    if not prov_path.is_file():
        return None
    try:
        prov = json.loads(prov_path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{prov_path} is not valid JSON ({err}); rerun `minasd results` to rewrite it") from None
    tables = {p.stem: pd.read_csv(p) for p in sorted(d.glob("*.csv"))}
    missing = [Path(f).stem for f in prov.get("summary_files", []) if Path(f).stem not in tables]
    summary = {"dir": str(d), "provenance": prov, "tables": tables, "missing": missing}
    summary["machine_types"] = _present_types(summary)
    return summary


def _table(summary: Mapping, name: str, columns: Sequence[str]) -> pd.DataFrame | None:
    """Table ``name`` of the summary, None when absent; raises when it lacks ``columns`` (a stale file)."""
    t = summary["tables"].get(name)
    if t is None:
        return None
    lacking = [c for c in columns if c not in t.columns]
    if lacking:
        raise ValueError(f"{Path(summary['dir']) / (name + '.csv')}: missing columns {lacking} (written by another "
                         f"version of minasd?); rebuild it with `minasd results`")
    return t


def _present_types(summary: Mapping) -> list[str]:
    t = _table(summary, "types_over_seeds", ["variant", "machine", "mean"])
    if t is None:
        return []
    return machine_order(t.loc[(t["machine"] != ALL_LABEL) & t["mean"].notna(), "machine"])


def _variant_order(variants) -> list[str]:
    seen = list(dict.fromkeys(str(v) for v in variants))
    return [v for v in VARIANTS if v in seen] + [v for v in seen if v not in VARIANTS]


def variant_label(variant: str) -> str:
    """The display name of a variant (:data:`minasd.studies.experiment.VARIANT_LABELS`; else the name itself).

    >>> variant_label("gmm_meanstd"), variant_label("other")
    ('GMM on log-mel mean/std', 'other')
    """
    return VARIANT_LABELS.get(variant, variant)


def seeds_by_variant(prov: Mapping) -> dict[str, list[int]]:
    """Which training seeds each variant was run with, from a summary's provenance.

    Reads ``seeds[k]["variants"]`` (falling back to the older ``variants_per_seed``).

    >>> seeds_by_variant({"seeds": {"0": {"variants": ["proposed", "wo_h"]}, "1": {"variants": ["proposed"]}}})
    {'proposed': [0, 1], 'wo_h': [0]}
    """
    per_seed = {str(k): v.get("variants") for k, v in (prov.get("seeds") or {}).items() if isinstance(v, Mapping)}
    for k, v in (prov.get("variants_per_seed") or {}).items():
        if not per_seed.get(str(k)):
            per_seed[str(k)] = v
    out: dict[str, list[int]] = {}
    for k in sorted((k for k in per_seed if per_seed[k]), key=int):
        for v in per_seed[k]:
            out.setdefault(v, []).append(int(k))
    return {v: out[v] for v in _variant_order(out)}


def _seed_words(seeds: Sequence[int]) -> str:
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(str(s) for s in seeds)


def manifest_caption(data: Mapping) -> str:
    """Which data a result comes from, from a data manifest (:func:`minasd.provenance.data_manifest`):
    the ``"summary"`` form of :func:`minasd.provenance.data_caption`, with the clip counts of a
    synthetic set's size.

    >>> manifest_caption({"synthetic": True, "generator_version": "1.2", "size": "nope", "seed": 0})
    "SYNTHETIC data (minasd.synth v1.2, size nope; data seed 0; not DCASE), so never a reproduction of the paper's numbers"
    """
    return data_caption(data, "summary", counts=_size_counts(data.get("size")) if data.get("synthetic") else "")


def _size_counts(size) -> str:
    """The clip counts of a synthetic size (:data:`minasd.synth.SIZES`); "" for a size it does not know."""
    from ..synth import SIZES

    spec = SIZES.get(size)
    return (f": {spec.n_train} training clips per section, test sections of {spec.n_test_normal} normal + "
            f"{spec.n_test_anomaly} anomalous clips" if spec else "")


def profile_label(prov: Mapping) -> str:
    """The training profile of a provenance record: name, encoder, epochs, batch."""
    profile = prov.get("profile") or {}
    epochs = prov.get("epochs") or profile.get("epochs")
    batch = profile.get("batch_size")
    return (f"profile {profile.get('name', '?')} ({backbone_label(profile.get('backbone'))}; {epochs} epochs"
            + (f", batch {batch}" if batch else "") + ")")


def summary_label(prov: Mapping, machine_types: Sequence[str] | None = None) -> str:
    """One caption line for anything drawn from a results summary.

    Says which data (SYNTHETIC and the factory's version, size and data seed, or real
    DCASE), the profile (encoder, epochs, batch), the training seeds of each variant,
    and that every number is over test sections 03-05, chosen on 00-02.

    Args:
        prov: the summary's ``provenance.json`` (``load_summary(...)["provenance"]``).
        machine_types: the types the numbers cover; named when given.

    >>> summary_label({"data": {"synthetic": True, "generator_version": "1.2", "size": "protocol", "seed": 0},
    ...                "profile": {"name": "cpu", "backbone": "mobilenetv3_small_050", "batch_size": 32},
    ...                "epochs": 20, "seeds": {"0": {"variants": ["proposed"]}}}).split(":")[0]
    'SYNTHETIC data (minasd.synth v1.2, size protocol'
    """
    what = manifest_caption(prov.get("data") or {})
    run = profile_label(prov)
    groups: dict[tuple, list[str]] = {}
    for v, s in seeds_by_variant(prov).items():
        groups.setdefault(tuple(s), []).append(v)
    seeds = "; ".join(f"{_seed_words(s)}: {', '.join(vs)}" for s, vs in groups.items()) or "seeds n/a"
    secs = "-".join(f"{s:02d}" for s in (EVAL_SECTIONS[0], EVAL_SECTIONS[-1]))
    types = f"; machine types {', '.join(machine_types)}" if machine_types else ""
    return (f"{what}. {run[0].upper()}{run[1:]}; training {seeds}. Test sections {secs} only (lambda and inlier "
            f"model chosen on {_dev_words(prov.get('data') or {})}){types}.")


def _dev_words(data: Mapping) -> str:
    """The sections the choices were made on: 00-02, or those of a root of one's own recordings.

    >>> _dev_words({"kind": "prepared", "dev_sections": [0]}), _dev_words({"kind": "prepared"})
    ('section 00', 'the development sections')
    """
    if data.get("kind") != "prepared":
        return "sections 00-02"
    dev = data.get("dev_sections")
    if not dev:
        return "the development sections"
    return ("section " if len(dev) == 1 else "sections ") + ", ".join(f"{int(s):02d}" for s in dev)


def class_table(summary: Mapping, value: str = "auc") -> pd.DataFrame | None:
    """AUC (or detection rate) by severity class: rows (machine, class), columns variants.

    Each cell is the mean over the variant's seeds; the rows ``(TYPES_MEAN, class)`` average
    the machine types present (each type weighs the same).  None when the summary has no
    ``auc_by_class`` table (real data, or not written yet).
    """
    t = _table(summary, "auc_by_class", ["variant", "seed", "machine", "severity_class", value])
    if t is None or t.empty:
        return None
    per = t.groupby(["machine", "severity_class", "variant"])[value].mean().unstack("variant")
    per = per[_variant_order(per.columns)]
    mean = per.groupby(level="severity_class").mean()
    mean.index = pd.MultiIndex.from_product([[TYPES_MEAN], mean.index], names=per.index.names)
    out = pd.concat([per, mean])
    classes = [c for c in ("subtle", "gross") if c in set(out.index.get_level_values(1))]
    classes += [c for c in dict.fromkeys(out.index.get_level_values(1)) if c not in classes]
    machines = [*machine_order(per.index.get_level_values(0)), TYPES_MEAN]
    rows = [(m, c) for m in machines for c in classes if (m, c) in out.index]
    return out.loc[rows]


def type_outcomes(summary: Mapping, variant_a: str = "proposed", variant_b: str = "gmm_meanstd"
                  ) -> pd.DataFrame | None:
    """Per machine type (and All): hmean of a and b, a - b with its bootstrap interval, and the outcome.

    From ``paired_bootstrap.csv`` (:func:`minasd.studies.analysis.paired_bootstrap`: test clips
    resampled within each section and label, both variants on the same draw, the seeds they
    share pooled).  ``outcome`` is ``"wins"`` (interval above 0),
    ``"loses"`` (below 0) or ``"tie"`` (the interval contains 0), said of ``variant_a``.

    Returns:
        Columns ``machine, hmean_a, hmean_b, diff, lo, hi, n_seeds, seeds, outcome, reason``
        (fractions), types in the paper's order then ``All``; None without the table or the pair.
    """
    t = _table(summary, "paired_bootstrap", ["machine", "variant_a", "variant_b", "hmean_a", "hmean_b", "diff", "lo",
                                             "hi", "n_seeds", "seeds", "reason"])
    if t is None:
        return None
    t = t[(t["variant_a"] == variant_a) & (t["variant_b"] == variant_b)]
    if t.empty:
        return None
    t = t.assign(reason=[r if isinstance(r, str) else "" for r in t["reason"]], seeds=t["seeds"].astype(str))
    t = t.assign(outcome=["wins" if lo > 0 else "loses" if hi < 0 else "tie" if math.isfinite(d) else "n/a"
                          for lo, hi, d in zip(t["lo"], t["hi"], t["diff"])])
    order = [*machine_order(t.loc[t["machine"] != ALL_LABEL, "machine"]), ALL_LABEL]
    t = t.set_index("machine").reindex([m for m in order if m in set(t["machine"])]).reset_index()
    return t[["machine", "hmean_a", "hmean_b", "diff", "lo", "hi", "n_seeds", "seeds", "outcome", "reason"]]


def compared_systems(summary: Mapping, variant: str = "proposed") -> list[str]:
    """The comparison systems (:data:`minasd.studies.experiment.SYSTEMS`, in that order) that
    ``paired_bootstrap.csv`` compares ``variant`` with (as ``variant_a``); [] without the table."""
    t = _table(summary, "paired_bootstrap", ["variant_a", "variant_b"])
    if t is None:
        return []
    have = set(t.loc[t["variant_a"] == variant, "variant_b"])
    return [v for v in SYSTEMS if v in have]


def outcomes_by_system(summary: Mapping, variant: str = "proposed",
                       systems: Sequence[str] | None = None) -> pd.DataFrame | None:
    """:func:`type_outcomes` of ``variant`` against each system, stacked: a ``system`` column first.

    Args:
        systems: default :func:`compared_systems`; a system without a bootstrap is left out.

    Returns:
        Columns ``system`` then those of :func:`type_outcomes`, systems in the given order;
        None when no system was compared.
    """
    parts = [o.assign(system=s) for s in (compared_systems(summary, variant) if systems is None else systems)
             if (o := type_outcomes(summary, variant, s)) is not None]
    if not parts:
        return None
    out = pd.concat(parts, ignore_index=True)
    return out[["system", *[c for c in out.columns if c != "system"]]]


def _counts(per_type: pd.DataFrame) -> dict[str, list[str]]:
    """The machine types of each outcome (wins / loses / tie) in rows of :func:`type_outcomes` (no All)."""
    return {k: per_type.loc[per_type["outcome"] == k, "machine"].tolist() for k in ("wins", "loses", "tie")}


def systems_overview(summary: Mapping, variant: str = "proposed",
                     systems: Sequence[str] | None = None) -> pd.DataFrame | None:
    """One row per system and one for ``variant``: its All/Har-mean over seeds and, for a system,
    ``variant`` minus it with the paired-bootstrap interval and the per-type wins / losses / ties.

    Returns:
        Indexed by variant name (``variant`` first): ``label``, ``mean``, ``std`` (over seeds;
        NaN for one seed), ``n_seeds``, ``seeds`` (``types_over_seeds.csv``); ``diff``, ``lo``,
        ``hi``, ``outcome`` (``variant`` minus the system on All, said of ``variant``); ``wins``,
        ``losses``, ``ties`` (numbers of types), ``types`` (how many have an outcome).  Fractions
        as in the CSV files.  None without ``types_over_seeds.csv``.
    """
    over = _table(summary, "types_over_seeds", ["variant", "machine", "mean", "std", "n_seeds", "seeds"])
    if over is None:
        return None
    systems = compared_systems(summary, variant) if systems is None else list(systems)
    allrows = over[over["machine"] == ALL_LABEL].set_index("variant")
    rows = {}
    for v in [variant, *systems]:
        r = allrows.loc[v] if v in allrows.index else None
        row = {"label": variant_label(v), "mean": r["mean"] if r is not None else math.nan,
               "std": r["std"] if r is not None else math.nan, "n_seeds": r["n_seeds"] if r is not None else 0,
               "seeds": str(r["seeds"]) if r is not None else ""}
        o = type_outcomes(summary, variant, v) if v != variant else None
        if o is not None:
            a = o[o["machine"] == ALL_LABEL]
            per = o[(o["machine"] != ALL_LABEL) & (o["outcome"] != "n/a")]
            c = _counts(per)
            row.update({k: a[k].iloc[0] if not a.empty else math.nan for k in ("diff", "lo", "hi")},
                       outcome=a["outcome"].iloc[0] if not a.empty else "n/a", wins=len(c["wins"]),
                       losses=len(c["loses"]), ties=len(c["tie"]), types=len(per))
        rows[v] = row
    out = pd.DataFrame.from_dict(rows, orient="index").rename_axis("variant")
    counts = [c for c in ("n_seeds", "wins", "losses", "ties", "types") if c in out.columns]
    return out.astype({c: "Int64" for c in counts})  # counts stay integers beside the variant's own blank row


def caught_pairs(summary: Mapping) -> list[tuple[str, str]]:
    """The (variant_a, variant_b) pairs of ``caught_missed.csv``, in file order ([] without it)."""
    t = _table(summary, "caught_missed", ["variant_a", "variant_b"])
    return [] if t is None else list(dict.fromkeys(zip(t["variant_a"], t["variant_b"])))


def _caught_rows(summary: Mapping, variant_b: str | None, cols: Sequence[str]) -> pd.DataFrame | None:
    """The rows of ``caught_missed.csv`` comparing with ``variant_b`` (None: the file's only pair)."""
    t = _table(summary, "caught_missed", ["variant_a", "variant_b", "machine", "severity_class", "anomaly_kind",
                                          *cols])
    if t is None or t.empty:
        return None
    if variant_b is None:
        pairs = caught_pairs(summary)
        if len(pairs) > 1:
            raise ValueError(f"caught_missed.csv compares several pairs {pairs}; name the second one (variant_b)")
        return t
    t = t[t["variant_b"] == variant_b]
    return None if t.empty else t


def caught_missed_totals(summary: Mapping, by: Sequence[str] = ("machine", "severity_class"),
                         variant_b: str | None = None) -> pd.DataFrame | None:
    """Counts of ``caught_missed.csv`` summed per ``by``, with :data:`ALL_TYPES` rows summing the types.

    ``a_only``: anomalous clip-seed pairs the first variant (the proposed method's learned
    embedding) catches and the second (a comparison system) misses; ``b_only`` the reverse;
    ``net`` = ``a_only - b_only``.

    Args:
        by: ``severity_class`` and optionally ``machine`` (first) and ``anomaly_kind`` (last).
        variant_b: the system compared with (``caught_missed.csv`` holds one pair per system);
            None: the file's only pair (ValueError when it holds several).

    Returns:
        Indexed by ``by``: ``n, caught_a, caught_b, a_only, b_only, both, neither, net``;
        types in the paper's order, subtle before gross.  None without the table or the pair.
    """
    cols = ["n", "caught_a", "caught_b", "a_only", "b_only", "both", "neither"]
    t = _caught_rows(summary, variant_b, cols)
    if t is None:
        return None
    by = list(by)
    if "severity_class" not in by or ("machine" in by and by[0] != "machine"):
        raise ValueError(f"caught_missed_totals: by must hold 'severity_class' and start with 'machine' if it has "
                         f"it, got {by}")
    rest = [c for c in by if c != "machine"]
    out = t.groupby(rest, sort=False)[cols].sum()
    if "machine" in by:
        total = pd.concat({ALL_TYPES: out}, names=["machine"])
        out = pd.concat([t.groupby(by, sort=False)[cols].sum(), total])
    rank = {m: i for i, m in enumerate([*machine_order(t["machine"]), ALL_TYPES])}
    cls = {"subtle": 0, "gross": 1}

    def key(ix):
        ix = ix if isinstance(ix, tuple) else (ix,)
        named = dict(zip(by, ix))
        return (rank.get(named.get("machine"), 0), cls.get(named["severity_class"], 2), str(named.get("anomaly_kind")))

    out = out.loc[sorted(out.index, key=key)]
    return out.assign(net=out["a_only"] - out["b_only"])


def caught_missed_by_type(summary: Mapping, variant_b: str | None = None) -> str:
    """Per machine type, in Markdown bullets: which anomaly kinds one variant catches and the other misses.

    For each type: the totals ``a_only`` / ``b_only`` of ``caught_missed.csv`` for the pair
    (proposed, ``variant_b``) and the kind contributing most to each.  Variants are named by
    :func:`variant_label`.  Empty string without the table or the pair.

    Args:
        variant_b: the comparison system; None: the file's only pair (as :func:`caught_missed_totals`).

    Book: chapter 10.
    """
    t = caught_missed_totals(summary, ("machine", "severity_class", "anomaly_kind"), variant_b)
    if t is None:
        return ""
    cm = _caught_rows(summary, variant_b, [])
    a, b = variant_label(cm["variant_a"].iloc[0]), variant_label(cm["variant_b"].iloc[0])
    lines = []
    for m in machine_order(cm["machine"]):
        part = t.loc[m].reset_index()
        words = []
        for col, who, other in (("a_only", a, b), ("b_only", b, a)):
            total = int(part[col].sum())
            if total == 0:
                words.append(f"{who} catches nothing that {other} misses")
                continue
            top = part.sort_values(col, ascending=False, kind="stable").iloc[0]
            words.append(f"{who} alone catches {total} (most: {top['anomaly_kind']}, {top['severity_class']}, "
                         f"{int(top[col])} of {int(top['n'])})")
        lines.append(f"- **{m}**: " + "; ".join(words) + ".")
    return "\n".join(lines)


def _pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f} %"


def _pts(x: float, digits: int = 2) -> str:
    return f"{100 * x:+.{digits}f}"


def _and(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else "none"


def _hmean_words(over: pd.DataFrame, variant: str) -> str | None:
    row = over[(over["variant"] == variant) & (over["machine"] == ALL_LABEL)]
    if row.empty or not math.isfinite(row["mean"].iloc[0]):
        return None
    r = row.iloc[0]
    seeds = [int(s) for s in str(r["seeds"]).split(",") if s.strip()]
    name = variant_label(variant)
    if int(r["n_seeds"]) > 1 and math.isfinite(r["std"]):
        return (f"{name} {_pct(r['mean'])} ± {100 * r['std']:.2f} (mean ± standard deviation over "
                f"{_seed_words(seeds)})")
    return f"{name} {_pct(r['mean'])} ({_seed_words(seeds)} only: no spread over seeds)"


def verdict(summary: Mapping | None, variant_a: str = "proposed", systems: Sequence[str] | None = None) -> str:
    """The answer to "does the method win?" in Markdown, every sentence generated from the numbers.

    Says, for ``variant_a`` against each comparison system on the machine types present:
    the All/Har-mean of each (mean ± sd over seeds, ``types_over_seeds.csv``); per system
    the paired bootstrap difference on All with its 95 % interval and the plain outcome
    (beats / loses to / cannot be told apart), and on which types it wins, loses or ties
    (a tie: the interval contains 0); the pooled AUC on subtle and on gross anomalies
    (mean of the types); what each catches that the other misses; and the ablations
    against ``variant_a``.  Types not in the summary (the run has not reached them) are
    named as left out.  Variants are named by :func:`variant_label`.

    Args:
        summary: :func:`load_summary` output (None gives a sentence saying there is none).
        systems: the systems compared with; default :func:`compared_systems` (every
            system of :data:`minasd.studies.experiment.SYSTEMS` the bootstrap compared).

    Returns:
        Markdown text.  Book: chapter 10.
    """
    if summary is None:
        return "**No verdict**: there is no results summary (run `minasd results` to make one)."
    types = summary["machine_types"]
    over = _table(summary, "types_over_seeds", ["variant", "machine", "mean", "std", "n_seeds", "seeds"])
    if over is None or not types:
        return ("**No verdict yet**: the summary holds no per-type results (the run has not finished a machine "
                "type, or its tables are not written yet).")
    systems = compared_systems(summary, variant_a) if systems is None else list(systems)
    parts = [_scope_sentence(summary, types, variant_a)]
    words = [w for w in (_hmean_words(over, v) for v in (variant_a, *systems)) if w]
    if words:
        parts.append("**All/Har-mean** (harmonic mean of AUC and pAUC over every section 03-05 of these types): "
                     + "; ".join(words) + ".")
    parts.extend(p for s in systems if (p := _pair_paragraph(summary, variant_a, s)))
    parts.extend(_class_sentences(summary, variant_a, systems))
    parts.extend(p for p in (_caught_sentence(summary, variant_a, systems), _ablation_sentence(summary, variant_a))
                 if p)
    return "\n\n".join(parts)


def _scope_sentence(summary: Mapping, types: Sequence[str], variant: str) -> str:
    absent = [m for m in MACHINE_TYPES if m not in types]
    text = (f"**Scope.** Machine types in this summary: {_and(types)} ({len(types)} of {len(MACHINE_TYPES)})."
            + (f" Not in it, because the run has not finished them: {_and(absent)}; they are in no number below."
               if absent else ""))
    spread = _seed_coverage(summary, variant)
    return text + (" " + spread if spread else "")


def _pair_paragraph(summary: Mapping, a: str, b: str) -> str:
    """The paired bootstrap of ``a`` against one system: All, then per type (empty when not bootstrapped)."""
    outcomes = type_outcomes(summary, a, b)
    if outcomes is None:
        return ""
    la, lb = variant_label(a), variant_label(b)
    text = f"**Against {lb}.**"
    allrow = outcomes[outcomes["machine"] == ALL_LABEL]
    if not allrow.empty and math.isfinite(allrow["diff"].iloc[0]):
        r = allrow.iloc[0]
        plain = {"wins": f"**{la} beats {lb}**", "loses": f"**{la} loses to {lb}**",
                 "tie": f"**{la} and {lb} cannot be told apart** (the interval contains 0)"}[r["outcome"]]
        seeds = r["seeds"].split(",")
        pooled = f"{_seed_words(seeds)} pooled" if len(seeds) > 1 else _seed_words(seeds)
        text += (f" Paired bootstrap over the test clips ({pooled}): {la} minus {lb} = {_pts(r['diff'])} points of "
                 f"All/Har-mean, 95 % interval [{_pts(r['lo'])}, {_pts(r['hi'])}]: on this data {plain}."
                 + (f" (All is {r['reason']}.)" if r["reason"] else ""))
    per = outcomes[(outcomes["machine"] != ALL_LABEL) & (outcomes["outcome"] != "n/a")]
    if not per.empty:
        verbs = {"wins": "wins", "loses": "loses", "tie": "ties"}
        counts = [f"{verbs[k]} on {len(ms)}" + (f" ({_and(ms)})" if ms else "") for k, ms in _counts(per).items()]
        detail = "; ".join(f"{r.machine} {_pts(r.diff)} [{_pts(r.lo)}, {_pts(r.hi)}]" for r in per.itertuples())
        text += (f" Per machine type (same bootstrap, tie = interval contains 0) {la} {_and(counts)} of {len(per)} "
                 f"type{'s' if len(per) > 1 else ''}; differences in points with their 95 % intervals: {detail}.")
    return text


def _seed_coverage(summary: Mapping, variant: str) -> str:
    """A sentence when seeds of one variant cover different types (a run in progress), else ''."""
    t = _table(summary, "types_by_seed", ["variant", "seed", "machine", "hmean"])
    if t is None:
        return ""
    t = t[(t["variant"] == variant) & (t["machine"] != ALL_LABEL) & t["hmean"].notna()]
    cover = {int(s): machine_order(p["machine"]) for s, p in t.groupby("seed")}
    if len({tuple(v) for v in cover.values()}) <= 1:
        return ""
    return ("The seeds do not yet cover the same types, so each seed's All is over other types: "
            + "; ".join(f"seed {s}: {', '.join(ms)}" for s, ms in sorted(cover.items())) + ".")


def _level_word(points: float) -> str:
    return "ahead of" if points >= LEVEL_POINTS else "behind" if points <= -LEVEL_POINTS else "level with"


def _class_sentences(summary: Mapping, a: str, systems: Sequence[str]) -> list[str]:
    """Per severity class: the pooled AUC of ``a`` and of each system (mean of the types), then a summary."""
    table = class_table(summary, "auc")
    systems = [s for s in systems if table is not None and s in table.columns]
    if table is None or a not in table.columns or not systems:
        return []
    kinds = {"subtle": "subtle anomalies (close to normal or to another product)",
             "gross": "gross anomalies (far from normal)"}
    la, out, status = variant_label(a), [], []
    per_type = table.drop(index=TYPES_MEAN, level=0)
    for cls in table.loc[TYPES_MEAN].index:
        mean, part = table.loc[(TYPES_MEAN, cls)], per_type.xs(cls, level="severity_class")
        items = []
        for s in systems:
            both = part[[a, s]].dropna()
            d = 100 * (mean[a] - mean[s])
            items.append(f"{variant_label(s)} {_pct(mean[s], 1)} ({d:+.1f} points; {la} higher on "
                         f"{int((both[a] > both[s]).sum())} of {len(both)} type{'s' if len(both) > 1 else ''})")
            status.append(f"{_level_word(d)} {variant_label(s)} on {cls} anomalies")
        near = max(mean[[a, *systems]]) < 0.55
        out.append(f"**{kinds.get(cls, cls).capitalize()}**: AUC {la} {_pct(mean[a], 1)}; " + "; ".join(items)
                   + " (mean of the types)." + (" All are close to chance (50 %): none detects these." if near else ""))
    out.append(f"So by anomaly class {la} is {_and(status)} (a difference under {LEVEL_POINTS:g} point counts as "
               f"level; these pooled AUCs have no interval of their own).")
    return out


def _caught_sentence(summary: Mapping, a: str, systems: Sequence[str]) -> str:
    items = []
    for s in systems:
        t = caught_missed_totals(summary, by=("severity_class",), variant_b=s)
        if t is None:
            continue
        per = "; ".join(f"{cls}: {int(r.a_only)} against {int(r.b_only)}" for cls, r in t.iterrows())
        items.append(f"against {variant_label(s)}, {variant_label(a)} catches {int(t['a_only'].sum())} anomalous "
                     f"clips that it misses and misses {int(t['b_only'].sum())} that it catches ({per})")
    if not items:
        return ""
    return ("**Caught and missed** at each section's FPR-0.1 threshold, all types and shared seeds (each clip "
            "counted once per seed): " + "; ".join(items) + ".")


def _ablation_sentence(summary: Mapping, reference: str) -> str:
    t = _table(summary, "paired_bootstrap", ["machine", "variant_a", "variant_b", "diff", "lo", "hi", "seeds"])
    if t is None:
        return ""
    t = t[(t["variant_b"] == reference) & (t["machine"] == ALL_LABEL) & t["diff"].notna()]
    if t.empty:
        return ""
    items = []
    for r in t.itertuples():
        word = "better" if r.lo > 0 else "worse" if r.hi < 0 else "not distinguishable"
        items.append(f"{variant_label(r.variant_a)} {_pts(r.diff)} [{_pts(r.lo)}, {_pts(r.hi)}] ({word}, "
                     f"{_seed_words(str(r.seeds).split(','))})")
    return (f"**Ablations** minus {variant_label(reference)}, All/Har-mean points with 95 % intervals: "
            + "; ".join(items) + ".")
