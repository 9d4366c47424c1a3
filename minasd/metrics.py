"""AUC, pAUC, harmonic means and the official DCASE result files (book chapter 6).

DCASE 2021 Task 2 ranks systems by AUC and by pAUC, the partial area under the
ROC curve over false-positive rates 0..p with p = 0.1, standardised as in
McClish (1989) so that a random score gets 0.5 and a perfect one 1.0.  This is
what scikit-learn's ``roc_auc_score(y, s, max_fpr=0.1)`` returns and what the
official evaluator uses.  Anomalous clips are the positive class (y = 1) and
higher scores mean more anomalous.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from .config import MACHINE_TYPES
from .io_utils import atomic_write_text

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


# --- official DCASE result files -------------------------------------------
#
# What the official DCASE 2021 Task 2 evaluator (github.com/y-kawagu/dcase2021_task2_evaluator,
# dcase2021_task2_evaluator.py) reads, and therefore what we write:
#
# * for every machine type and section of its ground truth and for BOTH domains, two files
#   in one team folder: ``anomaly_score_<type>_section_<XX>_<domain>_test.csv`` and
#   ``decision_result_<type>_section_<XX>_<domain>_test.csv``, domain ``source`` or
#   ``target``; a missing file stops it;
# * rows ``<clip file name>,<value>``, no header: it parses column 1 of every row as a
#   float, so a header line would crash it;
# * it sorts the rows by file name and pairs them with its ground-truth rows
#   (``ground_truth_<type>_section_<XX>_<domain>_test.csv``) sorted the same way, so the
#   file names must be the clips' bare names (``section_03_target_test_0000.wav``) and
#   every clip of that section and domain must have exactly one row (it aborts when the
#   counts differ).
#
# Clips whose names carry no domain (DCASE 2022-2025 anonymised evaluation clips, DCASE
# 2020 names) go to ``..._section_<XX>_test.csv``: the DCASE 2022-2025 evaluators read one
# file per section with both domains.

#: Domains that have their own DCASE 2021 result files.
DCASE_DOMAINS: tuple[str, ...] = ("source", "target")


def _dcase_name(prefix: str, machine: str, section: int, domain: str | None) -> str:
    if domain is not None and domain not in DCASE_DOMAINS:
        raise ValueError(f"domain must be one of {DCASE_DOMAINS} or None, got {domain!r}")
    middle = f"_{domain}" if domain else ""
    return f"{prefix}_{machine}_section_{int(section):02d}{middle}_test.csv"


def anomaly_score_filename(machine: str, section: int, domain: str | None = None) -> str:
    """``anomaly_score_<type>_section_<XX>_<domain>_test.csv`` (the DCASE 2021 evaluator's name).

    ``domain`` is ``"source"`` or ``"target"``; None gives ``..._section_<XX>_test.csv``
    (the one-file-per-section name of the DCASE 2022-2025 evaluators, for clips whose
    names carry no domain).

    >>> anomaly_score_filename("fan", 3, "target")
    'anomaly_score_fan_section_03_target_test.csv'
    """
    return _dcase_name("anomaly_score", machine, section, domain)


def decision_filename(machine: str, section: int, domain: str | None = None) -> str:
    """``decision_result_<type>_section_<XX>_<domain>_test.csv`` (see :func:`anomaly_score_filename`)."""
    return _dcase_name("decision_result", machine, section, domain)


def _write_rows(path: Path, names: Sequence, values: Sequence[str], overwrite: bool) -> Path:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    base = [Path(str(n)).name for n in names]  # the evaluator matches bare file names
    if len(base) != len(values):
        raise ValueError(f"{path.name}: {len(base)} file names but {len(values)} values")
    for n in base:
        if not n or any(c in n for c in ',"\n\r'):
            raise ValueError(f"{path.name}: file name {n!r} cannot be written to a two-column CSV")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows(zip(base, values))
    return atomic_write_text(path, buf.getvalue())


def write_anomaly_scores(directory: str | Path, machine: str, section: int, names: Sequence, scores,
                         overwrite: bool = False, domain: str | None = None) -> Path:
    """Write ``anomaly_score_<type>_section_<XX>_<domain>_test.csv``: rows ``file_name,score``, no header.

    File names are written without folders (``section_03_source_test_0000.wav``),
    as the DCASE evaluator matches them against its ground truth; scores are
    written with full float precision.  Written atomically.  ``domain``: see
    :func:`anomaly_score_filename` (the format notes above it say what the
    official evaluator reads).

    Raises:
        FileExistsError: the file exists and ``overwrite`` is False.
        ValueError: lengths differ, a score is NaN/inf, or a name holds a comma.

    Book: chapter 6.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    path = Path(directory) / anomaly_score_filename(machine, section, domain)
    if not np.isfinite(s).all():
        raise ValueError(f"{path.name}: {int((~np.isfinite(s)).sum())} scores are NaN or inf")
    return _write_rows(path, names, [repr(float(v)) for v in s], overwrite)


def write_decisions(directory: str | Path, machine: str, section: int, names: Sequence, decisions,
                    overwrite: bool = False, domain: str | None = None) -> Path:
    """Write ``decision_result_<type>_section_<XX>_<domain>_test.csv``: rows ``file_name,0|1`` (1 = anomaly).

    Raises:
        FileExistsError: the file exists and ``overwrite`` is False.
        ValueError: lengths differ or a decision is not 0/1.

    Book: chapter 6.
    """
    d = np.asarray(decisions).reshape(-1)
    path = Path(directory) / decision_filename(machine, section, domain)
    if not np.isin(d, (0, 1)).all():
        raise ValueError(f"{path.name}: decisions must be 0 or 1, got {np.unique(d).tolist()[:5]}")
    return _write_rows(path, names, [str(int(v)) for v in d], overwrite)


def read_scores_csv(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read a two-column ``file_name,value`` CSV (anomaly scores or decisions).

    Returns:
        ``(names, values)`` with values as float64.  Book: chapter 6.

    Raises:
        FileNotFoundError / ValueError naming the file and the bad line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"score file {path} does not exist")
    names, values = [], []
    with open(path, newline="") as fh:
        for line_no, row in enumerate(csv.reader(fh), start=1):
            if not row:
                continue
            if len(row) != 2:
                raise ValueError(f"{path}: line {line_no} has {len(row)} fields, expected 2 (file_name,value)")
            try:
                v = float(row[1])
            except ValueError:
                raise ValueError(f"{path}: line {line_no}: {row[1]!r} is not a number") from None
            if math.isnan(v):
                raise ValueError(f"{path}: line {line_no}: value is NaN")
            names.append(row[0])
            values.append(v)
    return names, np.asarray(values, dtype=np.float64)
