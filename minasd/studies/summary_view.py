"""Reading the committed results summary for the book: tables, captions, a verdict (Book: chapter 10).

``minasd results`` aggregates its seeds into ``OUT/summary/`` (:func:`minasd.studies.results.aggregate`):
CSV tables made by :mod:`minasd.studies.analysis` plus ``provenance.json``.  This module reads that
folder back and turns it into what a chapter shows, without recomputing anything:

* :func:`load_summary`: the tables as DataFrames (None when there is no summary at all);
* :func:`summary_label`: the one caption line every table and figure of the summary carries
  (which data, size, data seed, profile, training seeds, sections 03-05);
* :func:`class_table`, :func:`type_outcomes`, :func:`caught_missed_totals`: compact views;
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
from .experiment import VARIANTS
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
            f"model chosen on sections 00-02){types}.")


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


def type_outcomes(summary: Mapping, variant_a: str = "proposed", variant_b: str = "baseline") -> pd.DataFrame | None:
    """Per machine type (and All): hmean of a and b, a - b with its bootstrap interval, and the outcome.

    From ``paired_bootstrap.csv``.  ``outcome`` is ``"wins"`` (interval above 0),
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


def caught_missed_totals(summary: Mapping, by: Sequence[str] = ("machine", "severity_class")) -> pd.DataFrame | None:
    """Counts of ``caught_missed.csv`` summed per ``by``, with :data:`ALL_TYPES` rows summing the types.

    ``a_only``: anomalous clip-seed pairs the first variant (the learned embedding) catches
    and the second (the log-mel statistics) misses; ``b_only`` the reverse; ``net`` =
    ``a_only - b_only``.

    Args:
        by: ``severity_class`` and optionally ``machine`` (first) and ``anomaly_kind`` (last).

    Returns:
        Indexed by ``by``: ``n, caught_a, caught_b, a_only, b_only, both, neither, net``;
        types in the paper's order, subtle before gross.  None without the table.
    """
    cols = ["n", "caught_a", "caught_b", "a_only", "b_only", "both", "neither"]
    t = _table(summary, "caught_missed", ["machine", "severity_class", "anomaly_kind", *cols])
    if t is None or t.empty:
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


def caught_missed_by_type(summary: Mapping) -> str:
    """Per machine type, in Markdown bullets: which anomaly kinds one variant catches and the other misses.

    For each type: the totals ``a_only`` / ``b_only`` of ``caught_missed.csv`` and the kind
    contributing most to each (the learned embedding against the log-mel statistics when
    the pair is proposed / baseline).  Empty string without the table.

    Book: chapter 10.
    """
    t = caught_missed_totals(summary, ("machine", "severity_class", "anomaly_kind"))
    if t is None:
        return ""
    cm = summary["tables"]["caught_missed"]
    a, b = cm["variant_a"].iloc[0], cm["variant_b"].iloc[0]
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
    if int(r["n_seeds"]) > 1 and math.isfinite(r["std"]):
        return (f"{variant} {_pct(r['mean'])} ± {100 * r['std']:.2f} (mean ± standard deviation over "
                f"{_seed_words(seeds)})")
    return f"{variant} {_pct(r['mean'])} ({_seed_words(seeds)} only: no spread over seeds)"


def verdict(summary: Mapping | None, variant_a: str = "proposed", variant_b: str = "baseline") -> str:
    """The answer to "does the method win?" in Markdown, every sentence generated from the numbers.

    Says, for ``variant_a`` against ``variant_b`` on the machine types present: the
    All/Har-mean of each (mean ± sd over seeds, ``types_over_seeds.csv``); the paired
    bootstrap difference and its 95 % interval, and the plain outcome (wins / loses /
    not distinguishable); on how many types it wins, loses or ties (a tie: the interval
    contains 0); the pooled AUC on subtle and on gross anomalies (mean of the types);
    what each catches that the other misses; and the ablations against ``variant_a``.
    Types not in the summary (the run has not reached them) are named as left out.

    Args:
        summary: :func:`load_summary` output (None gives a sentence saying there is none).

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
    parts = []
    absent = [m for m in MACHINE_TYPES if m not in types]
    parts.append(f"**Scope.** Machine types in this summary: {_and(types)} ({len(types)} of {len(MACHINE_TYPES)})."
                 + (f" Not in it, because the run has not finished them: {_and(absent)}; they are in no number below."
                    if absent else ""))
    spread = _seed_coverage(summary, variant_a)
    if spread:
        parts[-1] += " " + spread

    words = [w for w in (_hmean_words(over, variant_a), _hmean_words(over, variant_b)) if w]
    if words:
        parts.append("**All/Har-mean** (harmonic mean of AUC and pAUC over every section 03-05 of these types): "
                     + "; ".join(words) + ".")
    outcomes = type_outcomes(summary, variant_a, variant_b)
    if outcomes is not None:
        allrow = outcomes[outcomes["machine"] == ALL_LABEL]
        if not allrow.empty and math.isfinite(allrow["diff"].iloc[0]):
            r = allrow.iloc[0]
            plain = {"wins": f"**the {variant_a} method beats the {variant_b}**",
                     "loses": f"**the {variant_a} method loses to the {variant_b}**",
                     "tie": f"**the {variant_a} method and the {variant_b} cannot be told apart** "
                            f"(the interval contains 0)"}[r["outcome"]]
            seeds = r["seeds"].split(",")
            pooled = f"{_seed_words(seeds)} pooled" if len(seeds) > 1 else _seed_words(seeds)
            parts.append(f"Paired bootstrap over the test clips ({pooled}): "
                         f"{variant_a} minus {variant_b} = {_pts(r['diff'])} points of All/Har-mean, 95 % interval "
                         f"[{_pts(r['lo'])}, {_pts(r['hi'])}]: on this data {plain}."
                         + (f" (All is {r['reason']}.)" if r["reason"] else ""))
        per = outcomes[(outcomes["machine"] != ALL_LABEL) & (outcomes["outcome"] != "n/a")]
        if not per.empty:
            counts = []
            for key, verb in (("wins", "wins"), ("loses", "loses"), ("tie", "ties")):
                ms = per.loc[per["outcome"] == key, "machine"].tolist()
                counts.append(f"{verb} on {len(ms)}" + (f" ({_and(ms)})" if ms else ""))
            detail = "; ".join(f"{r.machine} {_pts(r.diff)} [{_pts(r.lo)}, {_pts(r.hi)}]" for r in per.itertuples())
            parts.append(f"**Per machine type** (same bootstrap, tie = interval contains 0) the {variant_a} method "
                         f"{_and(counts)} of {len(per)} type{'s' if len(per) > 1 else ''}. Differences in points "
                         f"with their 95 % intervals: "
                         f"{detail}.")
    parts.extend(_class_sentences(summary, variant_a, variant_b))
    caught = _caught_sentence(summary)
    if caught:
        parts.append(caught)
    abl = _ablation_sentence(summary, variant_a)
    if abl:
        parts.append(abl)
    return "\n\n".join(parts)


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


def _class_sentences(summary: Mapping, a: str, b: str) -> list[str]:
    table = class_table(summary, "auc")
    if table is None or a not in table.columns or b not in table.columns:
        return []
    out = []
    kinds = {"subtle": "subtle anomalies (close to normal or to another product)",
             "gross": "gross anomalies (far from normal)"}
    status = {}
    per_type = table.drop(index=TYPES_MEAN, level=0)
    for cls in table.loc[TYPES_MEAN].index:
        va, vb = table.loc[(TYPES_MEAN, cls), a], table.loc[(TYPES_MEAN, cls), b]
        part = per_type.xs(cls, level="severity_class")[[a, b]].dropna()
        higher = int((part[a] > part[b]).sum())
        d = 100 * (va - vb)
        word = "ahead of" if d >= LEVEL_POINTS else "behind" if d <= -LEVEL_POINTS else "level with"
        near = max(va, vb) < 0.55
        status[cls] = f"{word} the {b} on {cls} anomalies" + (" (both near chance)" if near else "")
        chance = " Both are close to chance (50 %): neither detects these." if near else ""
        out.append(f"**{kinds.get(cls, cls).capitalize()}**: AUC {a} {_pct(va, 1)}, {b} {_pct(vb, 1)} "
                   f"({d:+.1f} points, mean of the types; {a} higher on {higher} of {len(part)} "
                   f"type{'s' if len(part) > 1 else ''}).{chance}")
    if status:
        out.append(f"So by anomaly class the {a} method is {_and(list(status.values()))} (a difference under "
                   f"{LEVEL_POINTS:g} point counts as level; these pooled AUCs have no interval of their own).")
    return out


def _caught_sentence(summary: Mapping) -> str:
    t = caught_missed_totals(summary, by=("severity_class",))
    if t is None:
        return ""
    cm = summary["tables"]["caught_missed"]
    a, b = cm["variant_a"].iloc[0], cm["variant_b"].iloc[0]
    per = "; ".join(f"{cls}: {int(r.a_only)} against {int(r.b_only)}" for cls, r in t.iterrows())
    return (f"**Caught and missed** at each section's FPR-0.1 threshold, all types and shared seeds: the {a} method "
            f"catches {int(t['a_only'].sum())} anomalous clips (counted once per seed) that the {b} misses, and "
            f"misses {int(t['b_only'].sum())} that it catches ({per}).")


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
        items.append(f"{r.variant_a} {_pts(r.diff)} [{_pts(r.lo)}, {_pts(r.hi)}] ({word}, "
                     f"{_seed_words(str(r.seeds).split(','))})")
    return (f"**Ablations** minus the {reference} method, All/Har-mean points with 95 % intervals: "
            + "; ".join(items) + ".")
