"""AUC, pAUC and harmonic means (book chapter 6; the DCASE result files: :mod:`minasd.dcase_files`).

DCASE 2021 Task 2 ranks systems by AUC and by pAUC, the partial area under the
ROC curve over false-positive rates 0..p with p = 0.1, standardised as in
McClish (1989) so that a random score gets 0.5 and a perfect one 1.0.  This is
what scikit-learn's ``roc_auc_score(y, s, max_fpr=0.1)`` returns and what the
official evaluator uses.  Anomalous clips are the positive class (y = 1) and
higher scores mean more anomalous.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from .config import MACHINE_TYPES

HMEAN_LABEL = "Har-mean"  # the "section" of a per-type summary row
ALL_LABEL = "All"  # the "machine" of the overall summary row


def _check_scores(y, scores, section) -> tuple[np.ndarray, np.ndarray]:
    if section is None:
        where = ""
    elif isinstance(section, (int, np.integer)):
        where = f"section {int(section):02d}: "
    else:
        where = f"{section}: "  # a label such as "pump section 03"
    y = np.asarray(y)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise ValueError(f"{where}labels and scores must be 1-D of equal length, got {y.shape} and {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{where}labels must be 0 (normal) or 1 (anomaly), got values {np.unique(y).tolist()[:5]}")
    if not np.isfinite(s).all():
        raise ValueError(f"{where}{int((~np.isfinite(s)).sum())} scores are NaN or inf")
    if len(np.unique(y)) < 2:
        only = "anomalous" if y.size and y[0] == 1 else "normal"
        raise ValueError(f"{where}AUC needs normal and anomalous clips; all {len(y)} clips are {only}")
    return y.astype(int), s


def auc_pauc(y, scores, max_fpr: float = 0.1, section: int | str | None = None) -> tuple[float, float]:
    """AUC and McClish-standardised pAUC (FPR in [0, max_fpr]) of anomaly scores.

    Args:
        y: (N,) labels, 1 = anomalous, 0 = normal.
        scores: (N,) anomaly scores, higher = more anomalous.
        max_fpr: p of the pAUC (DCASE: 0.1).
        section: named in error messages (an int is printed as ``section 03``,
            a string as given, e.g. ``"pump section 03"``).

    Returns:
        ``(auc, pauc)`` as fractions in [0, 1].  Book: chapter 6.

    >>> auc_pauc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    (1.0, 1.0)
    """
    y, s = _check_scores(y, scores, section)
    return float(roc_auc_score(y, s)), float(roc_auc_score(y, s, max_fpr=max_fpr))


def harmonic_mean(values: Iterable[float]) -> float:
    """Harmonic mean ``n / sum(1 / v)`` of positive values.

    Raises:
        ValueError: no values, or a value that is not finite and positive (the
            harmonic mean of DCASE scores is undefined for an AUC of 0).

    >>> harmonic_mean([0.5, 1.0])
    0.6666666666666666
    """
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise ValueError("harmonic mean of no values")
    bad = ~(np.isfinite(v) & (v > 0))
    if bad.any():
        raise ValueError(f"harmonic mean needs finite positive values, got {v[bad].tolist()}")
    return float(v.size / np.sum(1.0 / v))


def hmean_or_none(values: Iterable[float | None]) -> float | None:
    """The one rule for a harmonic mean of AUCs and pAUCs that may be missing or 0.

    Used by every table, selection and summary of minasd (and the book), so that a
    candidate or a type is "worst" or "not reported" whatever path computed it:

    * no values, or any value missing (None or NaN): **None**, not reported (the caller
      says why: a section without labels, not evaluated, ...);
    * a value of exactly 0 (every anomaly scored below every normal clip): **0.0**, the
      harmonic mean's limit as that value tends to 0: a valid result, the worst there is;
    * otherwise :func:`harmonic_mean` (a negative or infinite value raises ValueError).

    >>> hmean_or_none([0.5, 1.0]), hmean_or_none([0.0, 0.9]), hmean_or_none([0.9, None]), hmean_or_none([])
    (0.6666666666666666, 0.0, None, None)
    """
    v = [None if x is None else float(x) for x in values]
    if not v or any(x is None or np.isnan(x) for x in v):
        return None
    arr = np.asarray(v, dtype=np.float64)
    if (arr == 0).any() and (arr >= 0).all() and np.isfinite(arr).all():
        return 0.0
    return harmonic_mean(arr)


def machine_order(machines: Iterable[str]) -> list[str]:
    """Distinct machine types in the order of :data:`minasd.config.MACHINE_TYPES` (the paper's), unknown ones last."""
    seen = list(dict.fromkeys(str(m) for m in machines))
    return [m for m in MACHINE_TYPES if m in seen] + [m for m in seen if m not in MACHINE_TYPES]


def section_table(records: Sequence[Mapping], percent: bool = True) -> pd.DataFrame:
    """Per-section AUC/pAUC with per-type and overall harmonic means (the paper's Table II).

    Each section row holds its AUC, its pAUC and ``hmean`` = harmonic mean of
    the two.  Each machine type gets a summary row (``section == "Har-mean"``)
    whose ``AUC`` / ``pAUC`` are the harmonic means of its sections' AUCs /
    pAUCs and whose ``hmean`` is the harmonic mean of **all 2n values** (the n
    AUCs and the n pAUCs of its n sections together): the number in the
    paper's Table II for that type.  The last row (``machine == "All"``)
    does the same over every section of every type: ``hmean`` is Table II's
    "All/Har-mean" (harmonic mean of all AUCs and pAUCs together).

    Args:
        records: dicts with keys ``machine``, ``section`` (int), ``auc``,
            ``pauc`` (fractions); other keys are ignored.
        percent: report values in percent like the paper (else fractions).

    Returns:
        DataFrame with columns ``machine, section, AUC, pAUC, hmean``; section
        is a two-digit string (``"03"``) or ``"Har-mean"``.  Book: chapter 6.
    """
    if not records:
        raise ValueError("section_table needs at least one record")
    df = pd.DataFrame([{"machine": str(r["machine"]), "section": int(r["section"]), "AUC": float(r["auc"]),
                        "pAUC": float(r["pauc"])} for r in records])
    dup = df.duplicated(["machine", "section"])
    if dup.any():
        first = df[dup].iloc[0]
        raise ValueError(f"section_table: {first.machine} section {first.section:02d} appears more than once")
    bad = df[~((df["AUC"] > 0) & (df["pAUC"] > 0))]
    if len(bad):
        first = bad.iloc[0]
        raise ValueError(f"section_table: {first.machine} section {first.section:02d} has AUC={first.AUC} "
                         f"pAUC={first.pAUC}; harmonic means need values > 0")
    scale = 100.0 if percent else 1.0
    rows = []
    for machine in machine_order(df["machine"]):
        part = df[df["machine"] == machine].sort_values("section")
        for r in part.itertuples():
            rows.append({"machine": machine, "section": f"{r.section:02d}", "AUC": r.AUC * scale,
                         "pAUC": r.pAUC * scale, "hmean": harmonic_mean([r.AUC, r.pAUC]) * scale})
        rows.append({"machine": machine, "section": HMEAN_LABEL, "AUC": harmonic_mean(part["AUC"]) * scale,
                     "pAUC": harmonic_mean(part["pAUC"]) * scale,
                     "hmean": harmonic_mean([*part["AUC"], *part["pAUC"]]) * scale})
    rows.append({"machine": ALL_LABEL, "section": HMEAN_LABEL, "AUC": harmonic_mean(df["AUC"]) * scale,
                 "pAUC": harmonic_mean(df["pAUC"]) * scale, "hmean": harmonic_mean([*df["AUC"], *df["pAUC"]]) * scale})
    return pd.DataFrame(rows, columns=["machine", "section", "AUC", "pAUC", "hmean"])


def summary_row(table: pd.DataFrame) -> pd.Series:
    """One Table II row from a :func:`section_table`: per type hmean, then ``"All/Har-mean"``.

    Book: chapter 6.
    """
    summ = table[table["section"] == HMEAN_LABEL].set_index("machine")["hmean"]
    return summ.rename(index={ALL_LABEL: f"{ALL_LABEL}/{HMEAN_LABEL}"})


def roc_points(y, scores, max_points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """A compact ROC curve for result files: at most ``max_points`` corner points.

    The corners of scikit-learn's ROC (collinear points dropped) are kept when
    there are few enough; otherwise evenly spaced corners are kept, always
    including (0, 0) and (1, 1), so the curve stays monotone.

    Returns:
        ``(fpr, tpr)`` float64 arrays of equal length.  Book: chapter 6.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got {max_points}")
    y, s = _check_scores(y, scores, None)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=True)
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return fpr.astype(np.float64), tpr.astype(np.float64)
