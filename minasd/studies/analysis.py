"""Statistics of committed results: seeds, paired bootstrap, when the method wins (book chapters 6 and 10).

Everything here is pure pandas/numpy on a table of **per-clip scores**, one row per
scored test clip of one trained system::

    machine, section, clip, label, variant, seed, score

``clip`` is the clip's file name (no folder), ``label`` 1 = anomalous, ``score`` higher =
more anomalous, ``variant`` names the system (``"proposed"``, an ablation, or a comparison
system of :data:`minasd.studies.experiment.SYSTEMS`: ``"ae_dcase2021"``, ``"twfr_gmm"``,
``"gmm_meanstd"``) and ``seed`` its training seed (for the two GMM systems, the seed of the
mixtures' initialisation, their only randomness, and none with one component).  The synthetic factory's labels
(:func:`minasd.synth.read_labels`) add what real data hides: each anomalous clip's
``anomaly_kind``, ``severity_class`` (subtle / gross) and ``severity`` (0..1).

Choices made once, here, for every table of the book:

* Values are fractions in [0, 1] (multiply by 100 for the paper's percent).
* Per-type summaries are over sections 03-05 (:data:`minasd.config.EVAL_SECTIONS`), the
  paper's evaluation sections, and exist only when all three are present.
* AUCs of a subset of the anomalies (a kind, a severity bin) compare anomalous clips
  with the normal clips **of their own section only** and pool the pairs over sections
  (:func:`anomaly_clip_table`): scores of different sections come from different
  inlier models and are not on one scale, which is also why DCASE never pools sections.
* "Caught" means scored above the section's normal-clip threshold at FPR 0.1: the 90th
  percentile (numpy's linear interpolation) of that section's normal scores, strictly
  above.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

from ..config import EVAL_SECTIONS
from ..metrics import ALL_LABEL, auc_pauc, hmean_or_none, machine_order
from .experiment import SCORE_COLUMNS  # the columns a per-clip score table must hold (the experiment writes them)

#: Keys of one trained system's result for one section.
RUN_KEYS: list[str] = ["variant", "seed", "machine", "section"]
MAX_FPR = 0.1  # DCASE's pAUC range and the operating point of "caught"


# --- input checks ---------------------------------------------------------------------


def check_scores(df: pd.DataFrame, name: str = "scores") -> pd.DataFrame:
    """Validate a per-clip score table and return it with normalised dtypes.

    ``section`` and ``seed`` become int, ``label`` int 0/1, ``score`` float64,
    ``clip`` the bare file name (a folder in front is dropped, as the factory's
    labels and the DCASE evaluator match bare names).

    Raises:
        ValueError: naming ``name`` and the problem (missing column, label not 0/1,
            NaN/inf score, a clip scored twice by one system).
    """
    missing = [c for c in SCORE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: missing columns {missing}; a score table needs {list(SCORE_COLUMNS)}")
    if df.empty:
        raise ValueError(f"{name}: no rows")
    out = df.loc[:, list(SCORE_COLUMNS)].copy()
    out["machine"] = out["machine"].astype(str)
    out["variant"] = out["variant"].astype(str)
    out["clip"] = out["clip"].astype(str).str.replace("\\", "/", regex=False).str.rsplit("/", n=1).str[-1]
    for col in ("section", "seed", "label"):
        try:
            out[col] = out[col].astype(np.int64)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: column {col!r} must hold integers") from None
    if not out["label"].isin((0, 1)).all():
        raise ValueError(f"{name}: label must be 0 (normal) or 1 (anomaly), got {sorted(out['label'].unique())[:5]}")
    out["score"] = pd.to_numeric(out["score"], errors="coerce").astype(np.float64)
    bad = ~np.isfinite(out["score"].to_numpy())
    if bad.any():
        r = out[bad].iloc[0]
        raise ValueError(f"{name}: {int(bad.sum())} scores are missing, NaN or inf (first: {r.variant} seed {r.seed} "
                         f"{r.machine} section {r.section:02d} {r['clip']})")
    dup = out.duplicated(RUN_KEYS + ["clip"])
    if dup.any():
        r = out[dup].iloc[0]
        raise ValueError(f"{name}: clip {r['clip']} of {r.machine} section {r.section:02d} is scored twice by "
                         f"{r.variant} seed {r.seed}")
    return out


def _where(key: Sequence) -> str:
    variant, seed, machine, section = key
    return f"{variant} seed {seed} {machine} section {int(section):02d}"


# --- 1. per-section metrics and per-type harmonic means --------------------------------


class SectionMetrics(NamedTuple):
    """Result of :func:`section_metrics`: ``sections`` (one row per section) and ``summary``."""

    sections: pd.DataFrame
    summary: pd.DataFrame


def _hmean(values) -> float:
    """:func:`minasd.metrics.hmean_or_none` with NaN for None (a DataFrame cell)."""
    h = hmean_or_none(values)
    return np.nan if h is None else h


def type_summary(sections: pd.DataFrame, eval_sections: Sequence[int] = EVAL_SECTIONS) -> pd.DataFrame:
    """Per-type and overall harmonic means from a per-section table (Table II's summary rows).

    Args:
        sections: the ``sections`` table of :func:`section_metrics` (columns variant,
            seed, machine, section, auc, pauc).
        eval_sections: the sections summarised (default 03-05).

    Returns:
        One row per (variant, seed, machine) and one with ``machine == "All"`` per
        (variant, seed); columns ``variant, seed, machine, auc, pauc, hmean,
        n_sections, reason``.  ``auc`` / ``pauc`` are the harmonic means of the
        sections' AUCs / pAUCs, ``hmean`` that of all of them together (the paper's
        number).  A type without all of ``eval_sections`` gets NaN (pandas' None) and
        a ``reason``; "All" is over the complete types only, its ``reason`` names
        those left out (empty when none was).
    """
    want = [int(s) for s in eval_sections]
    want_txt = ", ".join(f"{s:02d}" for s in want)
    rows = []
    for (variant, seed), run in sections.groupby(["variant", "seed"], sort=True):
        pooled, incomplete = [], []
        for machine in machine_order(run["machine"]):
            part = run[(run["machine"] == machine) & run["section"].isin(want)]
            have = set(part["section"].astype(int))
            row = {"variant": variant, "seed": seed, "machine": machine, "n_sections": len(have)}
            if have != set(want):
                lacking = ", ".join(f"{s:02d}" for s in want if s not in have)
                rows.append(dict(row, auc=np.nan, pauc=np.nan, hmean=np.nan,
                                 reason=f"sections {lacking} missing (the summary needs {want_txt})"))
                incomplete.append(machine)
                continue
            rows.append(dict(row, auc=_hmean(part["auc"]), pauc=_hmean(part["pauc"]),
                             hmean=_hmean([*part["auc"], *part["pauc"]]), reason=""))
            pooled.append(part)
        row = {"variant": variant, "seed": seed, "machine": ALL_LABEL}
        if not pooled:
            rows.append(dict(row, auc=np.nan, pauc=np.nan, hmean=np.nan, n_sections=0,
                             reason=f"no machine type has all of sections {want_txt}"))
            continue
        allp = pd.concat(pooled)
        rows.append(dict(row, auc=_hmean(allp["auc"]), pauc=_hmean(allp["pauc"]),
                         hmean=_hmean([*allp["auc"], *allp["pauc"]]), n_sections=len(allp),
                         reason=f"without {', '.join(incomplete)} (incomplete)" if incomplete else ""))
    cols = ["variant", "seed", "machine", "auc", "pauc", "hmean", "n_sections", "reason"]
    return pd.DataFrame(rows, columns=cols)


def section_metrics(df: pd.DataFrame, max_fpr: float = MAX_FPR,
                    eval_sections: Sequence[int] = EVAL_SECTIONS) -> SectionMetrics:
    """AUC and pAUC per (variant, seed, machine, section), and the per-type summaries.

    AUC and pAUC come from :func:`minasd.metrics.auc_pauc` (scikit-learn, McClish pAUC
    over FPR 0..``max_fpr``), for every section in ``df`` (00-05 alike); the summary
    (:func:`type_summary`) uses ``eval_sections`` only.

    Returns:
        :class:`SectionMetrics` with ``sections`` (columns variant, seed, machine,
        section, n_normal, n_anomalous, auc, pauc) and ``summary``.

    Raises:
        ValueError: a bad score table, or a section without both normal and anomalous clips.

    >>> df = pd.DataFrame({"machine": "fan", "section": [3] * 4, "clip": list("abcd"), "label": [0, 0, 1, 1],
    ...                    "variant": "proposed", "seed": 0, "score": [0.1, 0.2, 0.3, 0.4]})
    >>> section_metrics(df).sections[["auc", "pauc"]].to_numpy().tolist()
    [[1.0, 1.0]]
    """
    df = check_scores(df)
    rows = []
    for key, part in df.groupby(RUN_KEYS, sort=True):
        auc, pauc = auc_pauc(part["label"].to_numpy(), part["score"].to_numpy(), max_fpr, section=_where(key))
        rows.append(dict(zip(RUN_KEYS, key), n_normal=int((part["label"] == 0).sum()),
                         n_anomalous=int((part["label"] == 1).sum()), auc=auc, pauc=pauc))
    sections = pd.DataFrame(rows)
    return SectionMetrics(sections, type_summary(sections, eval_sections))


# --- 2. mean and spread over seeds ------------------------------------------------------

#: Columns that identify a row of a result table apart from its seed (used by seed_summary).
GROUP_COLUMNS: tuple[str, ...] = ("variant", "machine", "section", "severity_class", "anomaly_kind", "bin",
                                  "sev_lo", "sev_hi")


def seed_summary(table: pd.DataFrame, value: str = "hmean", by: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and spread over seeds of one column of a per-seed table.

    Args:
        table: a table with a ``seed`` column, e.g. ``section_metrics(df).summary``
            (per-type and All hmean) or :func:`auc_by_kind`.
        value: the column summarised (``hmean``, ``auc``, ``pauc``, ``detection_rate``).
        by: the columns a row is identified by; default those of
            :data:`GROUP_COLUMNS` present in ``table``.

    Returns:
        One row per group: ``by`` columns, then ``mean``, ``std`` (sample standard
        deviation, ddof=1, NaN for one seed: the spread of a new seed, not of the
        mean), ``min``, ``max``, ``n_seeds`` and ``seeds`` (comma-separated).  NaN
        values (incomplete types) are left out and not counted.

    >>> t = pd.DataFrame({"variant": "p", "machine": "fan", "seed": [0, 1, 2], "hmean": [0.6, 0.7, 0.8]})
    >>> seed_summary(t)[["mean", "std", "n_seeds", "seeds"]].round(3).to_numpy().tolist()
    [[0.7, 0.1, 3, '0,1,2']]
    """
    if value not in table.columns or "seed" not in table.columns:
        raise ValueError(f"seed_summary needs columns 'seed' and {value!r}; the table has {list(table.columns)}")
    by = [c for c in GROUP_COLUMNS if c in table.columns] if by is None else list(by)
    valid = table[table[value].notna()]
    rows = []
    for key, part in valid.groupby(by, sort=False, dropna=False):
        v = part[value].to_numpy(dtype=np.float64)
        key = key if isinstance(key, tuple) else (key,)
        rows.append(dict(zip(by, key), mean=float(v.mean()), std=float(v.std(ddof=1)) if v.size > 1 else np.nan,
                         min=float(v.min()), max=float(v.max()), n_seeds=int(part["seed"].nunique()),
                         seeds=",".join(str(s) for s in sorted(part["seed"].unique()))))
    return pd.DataFrame(rows, columns=[*by, "mean", "std", "min", "max", "n_seeds", "seeds"])


# --- 3. fast AUC / pAUC on resampled clips, and the paired bootstrap -------------------


def tie_groups(s0, s1) -> tuple[np.ndarray, np.ndarray, int]:
    """Rank every score once: the index of its group of equal scores, highest score first.

    Resampling clips changes only how often each clip counts, never which scores are
    tied, so these ranks are computed once per section and reused by every replicate.

    Returns:
        ``(g0, g1, n_groups)``: group index of each normal and each anomalous score.
    """
    s0, s1 = np.asarray(s0, np.float64), np.asarray(s1, np.float64)
    uniq, inv = np.unique(np.concatenate([s0, s1]), return_inverse=True)  # ascending
    g = len(uniq) - 1 - inv  # descending: group 0 holds the highest score
    return g[: len(s0)], g[len(s0):], len(uniq)


def auc_pauc_from_counts(a, b, max_fpr: float = MAX_FPR) -> tuple[np.ndarray, np.ndarray]:
    """AUC and McClish pAUC from clip counts per tie group, vectorised over replicates.

    The ROC curve, walked from the highest score down, moves by ``a[g] / N0`` in FPR
    and ``b[g] / N1`` in TPR at tie group ``g``; inside a group it is the straight
    (diagonal) segment scikit-learn's trapezoidal ``roc_auc_score`` integrates.  The
    partial area up to ``max_fpr`` integrates each segment exactly, clipped at
    ``max_fpr``, then gets McClish's standardisation ``0.5 (1 + (A - p^2/2) / (p - p^2/2))``,
    so both values equal ``roc_auc_score(y, s)`` and ``roc_auc_score(y, s, max_fpr=p)``
    up to rounding.

    Args:
        a: (..., G) how often normal clips of each tie group count (group 0 = highest score).
        b: (..., G) the same for anomalous clips.
        max_fpr: p of the pAUC.

    Returns:
        ``(auc, pauc)``, arrays of shape ``a.shape[:-1]``.

    >>> auc, pauc = auc_pauc_from_counts(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]))
    >>> float(auc), float(pauc)
    (1.0, 1.0)
    """
    if not 0 < max_fpr <= 1:
        raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr}")
    a, b = np.asarray(a), np.asarray(b)
    n0, n1 = a.sum(-1), b.sum(-1)  # (...,)
    cb = np.cumsum(b, -1)
    # AUC: each normal clip of group g beats the anomalies of groups <= g, half those of g (ties)
    wins = np.einsum("...g,...g->...", a, cb) - 0.5 * np.einsum("...g,...g->...", a, b)
    auc = wins / (n0 * n1)
    if max_fpr == 1:
        return auc, auc
    # pAUC: only the leading groups whose segment starts left of max_fpr contribute;
    # slicing to them (the longest such prefix over replicates) saves most of the work.
    start = np.cumsum(a, -1) - a  # normal clips above each group
    inside = start < max_fpr * n0[..., None]
    k = max(int(inside.sum(-1).max()), 1)
    a, b, start, cb = a[..., :k], b[..., :k], start[..., :k], cb[..., :k]
    n0, n1 = n0[..., None], n1[..., None]
    fpr0, tpr0, da, db = start / n0, (cb - b) / n1, a / n0, b / n1
    dx = np.clip(max_fpr - fpr0, 0.0, da)  # the part of each segment left of max_fpr
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(da > 0, db / da, 0.0)
    area = np.sum(dx * (tpr0 + 0.5 * slope * dx), -1)
    lo, hi = 0.5 * max_fpr**2, max_fpr
    return auc, 0.5 * (1.0 + (area - lo) / (hi - lo))


def fast_auc_pauc(y, scores, max_fpr: float = MAX_FPR) -> tuple[float, float]:
    """AUC and pAUC of one section through :func:`auc_pauc_from_counts` (equals scikit-learn).

    >>> fast_auc_pauc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    (1.0, 1.0)
    """
    y, s = np.asarray(y), np.asarray(scores, np.float64)
    g0, g1, n = tie_groups(s[y == 0], s[y == 1])
    auc, pauc = auc_pauc_from_counts(np.bincount(g0, minlength=n), np.bincount(g1, minlength=n), max_fpr)
    return float(auc), float(pauc)


def _section_arrays(df: pd.DataFrame, variants: Sequence[str], seeds: Sequence[int], sections: Sequence[int]):
    """Scores as aligned arrays: {(machine, section): (y, {(variant, seed): scores})}, clips sorted by name.

    Raises ValueError when two systems scored different clips of one section (the
    bootstrap pairs them clip by clip).
    """
    out = {}
    part = df[df["variant"].isin(variants) & df["seed"].isin(seeds) & df["section"].isin(sections)]
    for (machine, section), sec in part.groupby(["machine", "section"], sort=True):
        ref_clips, ref_y, per_run = None, None, {}
        for (variant, seed), run in sec.groupby(["variant", "seed"], sort=True):
            run = run.sort_values("clip")
            clips = run["clip"].to_numpy()
            if ref_clips is None:
                ref_clips, ref_y, ref_key = clips, run["label"].to_numpy(), (variant, seed)
            elif len(clips) != len(ref_clips) or (clips != ref_clips).any() or (run["label"].to_numpy() != ref_y).any():
                raise ValueError(f"{machine} section {section:02d}: {variant} seed {seed} scored other clips (or "
                                 f"labels) than {ref_key[0]} seed {ref_key[1]}; a paired comparison needs the same "
                                 f"test clips")
            per_run[(variant, seed)] = run["score"].to_numpy()
        out[(machine, int(section))] = (ref_y, per_run)
    return out


def paired_bootstrap(df: pd.DataFrame, variant_a: str, variant_b: str, n_boot: int = 1000, seed: int = 0,
                     max_fpr: float = MAX_FPR, eval_sections: Sequence[int] = EVAL_SECTIONS,
                     level: float = 0.95) -> pd.DataFrame:
    """Paired difference of hmean (a - b) per machine type and for All, with a bootstrap interval.

    What is resampled: the **test clips**.  Each replicate draws, within every
    (machine, section, label) stratum, as many clips as it holds, with replacement,
    so every resampled section keeps its numbers of normal and anomalous clips.  The
    same draw serves both variants (paired: clip-level noise common to both cancels)
    and every seed (the seeds were scored on one test set).  Per replicate the
    statistic is the mean over the seeds both variants share of ``hmean_a - hmean_b``,
    the hmean of sections ``eval_sections`` as in :func:`type_summary`.  The interval
    is the percentile interval of the replicates: it measures how much the verdict
    depends on which test clips were drawn; how much it depends on the training seed
    is the spread of :func:`seed_summary`, not part of this interval.

    Args:
        df: per-clip scores (see module docstring).
        variant_a, variant_b: the variants compared; ``diff`` is a - b.
        n_boot: replicates.
        seed: seed of the resampling.
        level: coverage of the interval.

    Returns:
        One row per machine type complete in both variants for every shared seed,
        then ``All`` over those types: ``machine, variant_a, variant_b, seeds,
        n_seeds, hmean_a, hmean_b, diff, lo, hi, se, p_le_0, n_boot`` (``diff`` and the
        hmeans on the clips as scored; ``se`` the replicates' standard deviation;
        ``p_le_0`` the share of replicates with a - b <= 0).  Types lacking a section
        get a row with NaN and a ``reason``.

    Raises:
        ValueError: a variant absent, no seed shared, or the variants scored different clips.
    """
    df = check_scores(df)
    for v in (variant_a, variant_b):
        if v not in set(df["variant"]):
            raise ValueError(f"paired_bootstrap: variant {v!r} is not in the scores (have {sorted(set(df['variant']))})")
    seeds = sorted(set(df.loc[df["variant"] == variant_a, "seed"]) & set(df.loc[df["variant"] == variant_b, "seed"]))
    if not seeds:
        raise ValueError(f"paired_bootstrap: {variant_a} and {variant_b} share no seed")
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"n_boot must be >= 1 and level in (0, 1), got {n_boot}, {level}")
    want = sorted(int(s) for s in eval_sections)
    variants = [variant_a, variant_b]
    runs = [(v, s) for v in variants for s in seeds]
    arrays = _section_arrays(df, variants, seeds, want)

    rng = np.random.default_rng(seed)
    # per (run, machine): list over sections of (auc, pauc) arrays, index 0 = the clips as scored
    values: dict[tuple, list] = {}
    machines = machine_order(df.loc[df["variant"].isin(variants), "machine"])
    reasons = {}
    for machine in machines:
        for sec in want:
            if (machine, sec) not in arrays or any(r not in arrays[(machine, sec)][1] for r in runs):
                reasons[machine] = (f"section {sec:02d} not scored by both variants for seeds "
                                    f"{','.join(map(str, seeds))}")
                break
        if machine in reasons:
            continue
        for sec in want:
            y, per_run = arrays[(machine, sec)]
            idx = {lab: np.flatnonzero(y == lab) for lab in (0, 1)}
            if not (idx[0].size and idx[1].size):
                raise ValueError(f"{machine} section {sec:02d}: AUC needs normal and anomalous clips")
            # (n_boot + 1, n) positions within the stratum; row 0 = no resampling
            draw = {lab: np.vstack([np.arange(len(i)), rng.integers(0, len(i), size=(n_boot, len(i)))])
                    for lab, i in idx.items()}
            for r in runs:
                s = per_run[r]
                g0, g1, n_groups = tie_groups(s[idx[0]], s[idx[1]])
                rows = np.arange(n_boot + 1)[:, None] * n_groups
                a = np.bincount((rows + g0[draw[0]]).ravel(), minlength=(n_boot + 1) * n_groups)
                b = np.bincount((rows + g1[draw[1]]).ravel(), minlength=(n_boot + 1) * n_groups)
                auc, pauc = auc_pauc_from_counts(a.reshape(n_boot + 1, n_groups), b.reshape(n_boot + 1, n_groups),
                                                 max_fpr)
                values.setdefault((r, machine), []).extend([auc, pauc])

    def hmean_rows(vals: list) -> np.ndarray:  # (n_boot + 1,) hmean of the stacked values
        v = np.vstack(vals)
        with np.errstate(divide="ignore"):
            return v.shape[0] / np.sum(1.0 / v, axis=0)  # an AUC of 0 gives 1/0 = inf, hmean 0

    def row(machine: str, per_run_values: Mapping) -> dict:
        h = {r: hmean_rows(per_run_values[r]) for r in runs}
        ha = np.mean([h[(variant_a, s)] for s in seeds], axis=0)
        hb = np.mean([h[(variant_b, s)] for s in seeds], axis=0)
        d = ha - hb
        reps = d[1:]
        alpha = (1.0 - level) / 2
        lo, hi = np.percentile(reps, [100 * alpha, 100 * (1 - alpha)])
        return dict(machine=machine, hmean_a=float(ha[0]), hmean_b=float(hb[0]), diff=float(d[0]), lo=float(lo),
                    hi=float(hi), se=float(reps.std(ddof=1)) if n_boot > 1 else np.nan,
                    p_le_0=float(np.mean(reps <= 0)), reason="")

    complete = [m for m in machines if m not in reasons]
    out = [row(m, {r: values[(r, m)] for r in runs}) for m in complete]
    out += [dict(machine=m, hmean_a=np.nan, hmean_b=np.nan, diff=np.nan, lo=np.nan, hi=np.nan, se=np.nan,
                 p_le_0=np.nan, reason=why) for m, why in reasons.items()]
    if complete:
        out.append(row(ALL_LABEL, {r: [v for m in complete for v in values[(r, m)]] for r in runs}))
        if reasons:
            out[-1]["reason"] = f"without {', '.join(reasons)} (incomplete)"
    res = pd.DataFrame(out)
    res.insert(1, "variant_a", variant_a)
    res.insert(2, "variant_b", variant_b)
    res.insert(3, "seeds", ",".join(map(str, seeds)))
    res.insert(4, "n_seeds", len(seeds))
    res["n_boot"] = n_boot
    return res


# --- 4./5. when does the method win: anomalies by kind and severity -------------------


def attach_labels(df: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The score table with the factory's ``anomaly_kind, severity_class, severity`` per clip.

    Clips are matched on (machine, section, file name of ``relpath``): anonymised
    evaluation clips of different types share file names.

    Raises:
        ValueError: a labels column missing, a scored clip without a labels row, or a
            clip whose label differs between scores and labels file.
    """
    need = ("relpath", "machine", "section", "label", "anomaly_kind", "severity_class", "severity")
    missing = [c for c in need if c not in labels.columns]
    if missing:
        raise ValueError(f"labels table: missing columns {missing} (read it with minasd.synth.read_labels)")
    df = check_scores(df)
    lab = pd.DataFrame({"machine": labels["machine"].astype(str), "section": labels["section"].astype(np.int64),
                        "clip": labels["relpath"].astype(str).str.replace("\\", "/", regex=False)
                        .str.rsplit("/", n=1).str[-1],
                        "true_label": labels["label"].astype(np.int64),
                        "anomaly_kind": labels["anomaly_kind"].fillna("normal").astype(str),
                        "severity_class": labels["severity_class"].fillna("none").astype(str),
                        "severity": pd.to_numeric(labels["severity"], errors="coerce").astype(np.float64)})
    dup = lab.duplicated(["machine", "section", "clip"])
    if dup.any():
        r = lab[dup].iloc[0]
        raise ValueError(f"labels table: {r.machine} section {r.section:02d} clip {r['clip']} appears twice")
    out = df.merge(lab, on=["machine", "section", "clip"], how="left", validate="many_to_one")
    lost = out["true_label"].isna()
    if lost.any():
        r = out[lost].iloc[0]
        raise ValueError(f"labels table: {int(lost.sum())} scored clips have no labels row (first: {r.machine} "
                         f"section {r.section:02d} {r['clip']}); scores and labels must come from one data set")
    wrong = out["label"] != out["true_label"]
    if wrong.any():
        r = out[wrong].iloc[0]
        raise ValueError(f"{int(wrong.sum())} clips have another label in the scores than in the labels table "
                         f"(first: {r.machine} section {r.section:02d} {r['clip']}: {r.label} vs {int(r.true_label)})")
    anom = out["label"] == 1
    if out.loc[anom, "severity"].isna().any():
        r = out[anom & out["severity"].isna()].iloc[0]
        raise ValueError(f"labels table: anomalous clip {r.machine} section {r.section:02d} {r['clip']} has no severity")
    return out.drop(columns="true_label")


def anomaly_clip_table(df: pd.DataFrame, labels: pd.DataFrame, fpr: float = MAX_FPR,
                       eval_sections: Sequence[int] | None = EVAL_SECTIONS) -> pd.DataFrame:
    """One row per anomalous clip and system: its pair credit against its section's normals, caught or not.

    For an anomalous clip with score ``s`` in a section with ``n_normal`` normal clips,
    ``wins`` = #normals scored below ``s`` + 0.5 #normals scored equal.  The AUC of any
    set of anomalous clips against the normals of their own sections is then
    ``sum(wins) / sum(n_normal)``: pairs are only formed within a section, every clip
    weighs the same, and over all anomalies of one section it is that section's AUC.
    ``caught`` is ``s > threshold``, the threshold being the ``1 - fpr`` quantile
    (linear interpolation) of the section's normal scores.

    Args:
        eval_sections: sections kept (default 03-05; None keeps all).

    Returns:
        Columns ``variant, seed, machine, section, clip, score, anomaly_kind,
        severity_class, severity, wins, n_normal, threshold, caught``.
    """
    df = attach_labels(df, labels)
    if eval_sections is not None:
        df = df[df["section"].isin([int(s) for s in eval_sections])]
        if df.empty:
            raise ValueError(f"no scored clip in sections {list(eval_sections)}")
    parts = []
    for key, part in df.groupby(RUN_KEYS, sort=True):
        normal = np.sort(part.loc[part["label"] == 0, "score"].to_numpy())
        anom = part[part["label"] == 1]
        if not normal.size or anom.empty:
            raise ValueError(f"{_where(key)}: needs normal and anomalous clips, has {normal.size} and {len(anom)}")
        s = anom["score"].to_numpy()
        below = np.searchsorted(normal, s, side="left")
        equal = np.searchsorted(normal, s, side="right") - below
        thr = float(np.quantile(normal, 1.0 - fpr))
        parts.append(anom.assign(wins=below + 0.5 * equal, n_normal=normal.size, threshold=thr, caught=s > thr))
    cols = ["variant", "seed", "machine", "section", "clip", "score", "anomaly_kind", "severity_class", "severity",
            "wins", "n_normal", "threshold", "caught"]
    return pd.concat(parts, ignore_index=True)[cols]


def _pooled_auc(clips: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    g = clips.groupby(by, sort=True)
    out = g.agg(wins=("wins", "sum"), pairs=("n_normal", "sum"), n_anomalous=("clip", "size"),
                n_sections=("section", "nunique"), detection_rate=("caught", "mean")).reset_index()
    out["auc"] = out["wins"] / out["pairs"]
    return out.drop(columns=["wins", "pairs"])


def auc_by_kind(df: pd.DataFrame, labels: pd.DataFrame, eval_sections: Sequence[int] | None = EVAL_SECTIONS,
                fpr: float = MAX_FPR) -> pd.DataFrame:
    """AUC of the normal clips against the anomalous clips of each anomaly kind, per system and type.

    Pooled over the type's sections (03-05 by default) **pair by pair within each
    section** (see :func:`anomaly_clip_table`) rather than averaging per-section AUCs:
    with 100 anomalies per section a kind has about 17 clips per section, and pooling
    the pairs weighs every clip the same instead of every (noisy) section.

    Returns:
        Columns ``variant, seed, machine, severity_class, anomaly_kind, auc,
        detection_rate, n_anomalous, n_sections`` (``detection_rate``: share caught
        at FPR ``fpr``).
    """
    clips = anomaly_clip_table(df, labels, fpr, eval_sections)
    out = _pooled_auc(clips, ["variant", "seed", "machine", "severity_class", "anomaly_kind"])
    return out[["variant", "seed", "machine", "severity_class", "anomaly_kind", "auc", "detection_rate",
                "n_anomalous", "n_sections"]]


def auc_by_class(df: pd.DataFrame, labels: pd.DataFrame, eval_sections: Sequence[int] | None = EVAL_SECTIONS,
                 fpr: float = MAX_FPR) -> pd.DataFrame:
    """As :func:`auc_by_kind`, all kinds of one severity class (subtle / gross) together."""
    clips = anomaly_clip_table(df, labels, fpr, eval_sections)
    out = _pooled_auc(clips, ["variant", "seed", "machine", "severity_class"])
    return out[["variant", "seed", "machine", "severity_class", "auc", "detection_rate", "n_anomalous", "n_sections"]]


def severity_bins(clips: pd.DataFrame, bins: int | Sequence[float] | Mapping[str, Sequence[float]] = 4
                  ) -> dict[str, np.ndarray]:
    """Bin edges of severity per severity class.

    Args:
        clips: rows with ``severity_class`` and ``severity`` (anomalous clips).
        bins: an int k = k quantile bins per class, computed over the distinct clips
            (each clip once, whatever the number of systems), so every bin holds about
            the same number of clips and all systems and types share the edges; a
            sequence of edges = the same fixed bins for every class; a mapping class
            -> edges.

    Returns:
        {severity class: increasing edges}.
    """
    classes = sorted(clips["severity_class"].unique())
    if isinstance(bins, Mapping):
        edges = {c: np.asarray(bins[c], np.float64) for c in classes if c in bins}
        lacking = [c for c in classes if c not in bins]
        if lacking:
            raise ValueError(f"severity bins given for {sorted(bins)} but not for {lacking}")
    elif np.ndim(bins) == 0:
        k = int(bins)
        if k < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        distinct = clips.drop_duplicates(["machine", "section", "clip"])
        edges = {c: np.unique(np.quantile(distinct.loc[distinct["severity_class"] == c, "severity"],
                                          np.linspace(0, 1, k + 1))) for c in classes}
    else:
        edges = {c: np.asarray(bins, np.float64) for c in classes}
    for c, e in edges.items():
        if e.ndim != 1 or e.size < 2 or (np.diff(e) <= 0).any():
            if e.size == 1:  # every clip of the class has one severity: one degenerate bin
                edges[c] = np.array([e[0], e[0]])
                continue
            raise ValueError(f"severity bins of {c!r} must be increasing edges, got {e.tolist()}")
    return edges


def _binned(clips: pd.DataFrame, bins) -> pd.DataFrame:
    edges = severity_bins(clips, bins)
    parts = []
    for c, part in clips.groupby("severity_class", sort=True):
        e = edges[c]
        sev = part["severity"].to_numpy()
        outside = (sev < e[0]) | (sev > e[-1])
        if outside.any():
            raise ValueError(f"{int(outside.sum())} {c} clips have a severity outside the bins {e[0]:g}..{e[-1]:g} "
                             f"(first {sev[outside][0]:g})")
        i = np.clip(np.searchsorted(e, sev, side="right") - 1, 0, len(e) - 2)  # last bin is closed
        parts.append(part.assign(bin=i, sev_lo=e[i], sev_hi=e[i + 1]))
    return pd.concat(parts, ignore_index=True)


def auc_by_severity(df: pd.DataFrame, labels: pd.DataFrame, bins: int | Sequence[float] | Mapping = 4,
                    eval_sections: Sequence[int] | None = EVAL_SECTIONS, fpr: float = MAX_FPR) -> pd.DataFrame:
    """AUC per severity bin within each severity class, per system and machine type.

    Bins: see :func:`severity_bins` (default 4 quantile bins per class); AUC pooled as
    in :func:`auc_by_kind`.

    Returns:
        Columns ``variant, seed, machine, severity_class, bin, sev_lo, sev_hi, auc,
        n_anomalous``; ``bin`` counts from 0 within a class.
    """
    clips = _binned(anomaly_clip_table(df, labels, fpr, eval_sections), bins)
    out = _pooled_auc(clips, ["variant", "seed", "machine", "severity_class", "bin", "sev_lo", "sev_hi"])
    return out[["variant", "seed", "machine", "severity_class", "bin", "sev_lo", "sev_hi", "auc", "n_anomalous"]]


def detection_rate_by_severity(df: pd.DataFrame, labels: pd.DataFrame, bins: int | Sequence[float] | Mapping = 4,
                               eval_sections: Sequence[int] | None = EVAL_SECTIONS,
                               fpr: float = MAX_FPR) -> pd.DataFrame:
    """Share of anomalous clips caught at FPR ``fpr`` (see module docstring), per severity bin.

    A detector that ignores the sound catches about ``fpr`` of them.

    Returns:
        Columns ``variant, seed, machine, severity_class, bin, sev_lo, sev_hi,
        detection_rate, n_anomalous``.
    """
    clips = _binned(anomaly_clip_table(df, labels, fpr, eval_sections), bins)
    out = _pooled_auc(clips, ["variant", "seed", "machine", "severity_class", "bin", "sev_lo", "sev_hi"])
    return out[["variant", "seed", "machine", "severity_class", "bin", "sev_lo", "sev_hi", "detection_rate",
                "n_anomalous"]]


def caught_missed(df: pd.DataFrame, labels: pd.DataFrame, variant_a: str = "proposed",
                  variant_b: str = "gmm_meanstd", eval_sections: Sequence[int] | None = EVAL_SECTIONS,
                  fpr: float = MAX_FPR) -> pd.DataFrame:
    """Which anomalies one system catches and the other misses, per machine type and anomaly kind.

    ``minasd results`` writes one such table per comparison system (``variant_b`` each of
    :data:`minasd.studies.experiment.SYSTEMS`, the default being the GMM on log-mel mean and
    std) stacked into ``summary/caught_missed.csv``.

    A clip is caught by a system when it scores above its section's FPR-``fpr``
    threshold (see :func:`anomaly_clip_table`).  Only the seeds both variants share
    are used and each (clip, seed) is counted once: with seeds 0-2, a clip caught by
    a in all three seeds and by b in none adds 3 to ``a_only``.

    Returns:
        Columns ``machine, severity_class, anomaly_kind, n_seeds, n, caught_a,
        caught_b, a_only, b_only, both, neither`` (counts of clip-seed pairs; ``n`` =
        their number); ``variant_a`` / ``variant_b`` name the systems.
    """
    clips = anomaly_clip_table(df, labels, fpr, eval_sections)
    have = {v: set(clips.loc[clips["variant"] == v, "seed"]) for v in (variant_a, variant_b)}
    for v, s in have.items():
        if not s:
            raise ValueError(f"caught_missed: variant {v!r} is not in the scores (have {sorted(set(clips['variant']))})")
    seeds = sorted(have[variant_a] & have[variant_b])
    if not seeds:
        raise ValueError(f"caught_missed: {variant_a} and {variant_b} share no seed")
    key = ["machine", "section", "clip", "seed"]
    sel = clips[clips["seed"].isin(seeds)]
    a = sel[sel["variant"] == variant_a].set_index(key)
    b = sel[sel["variant"] == variant_b].set_index(key)["caught"].rename("caught_b")
    both = a.join(b, how="inner")
    if len(both) != len(a) or len(both) != len(b):
        raise ValueError(f"caught_missed: {variant_a} and {variant_b} scored different anomalous clips")
    ca, cb = both["caught"].to_numpy(bool), both["caught_b"].to_numpy(bool)
    both = both.assign(caught_a=ca, a_only=ca & ~cb, b_only=~ca & cb, both=ca & cb, neither=~ca & ~cb).reset_index()
    out = both.groupby(["machine", "severity_class", "anomaly_kind"], sort=True).agg(
        n=("clip", "size"), caught_a=("caught_a", "sum"), caught_b=("caught_b", "sum"), a_only=("a_only", "sum"),
        b_only=("b_only", "sum"), both=("both", "sum"), neither=("neither", "sum")).reset_index()
    out.insert(3, "n_seeds", len(seeds))
    out.insert(0, "variant_b", variant_b)
    out.insert(0, "variant_a", variant_a)
    for c in ("n", "caught_a", "caught_b", "a_only", "b_only", "both", "neither"):
        out[c] = out[c].astype(np.int64)
    return out
