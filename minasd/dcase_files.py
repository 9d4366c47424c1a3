"""The official DCASE result files: names, writers and a reader (book chapter 6).

:func:`write_dcase_files` writes one evaluated run's ``anomaly_score_...`` and
``decision_result_...`` files in the form the official DCASE 2021 Task 2 evaluator reads;
:mod:`minasd.studies.experiment` gathers them into a team folder.  The notes below say
what that evaluator expects.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from .io_utils import atomic_write_text

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


def write_dcase_files(directory: Path, machine: str, data_root: Path, scored: dict, thresholds: dict) -> list[str]:
    """Write the official DCASE result files of one run; returns their names.

    Every scored test clip of a section (the protocol's source-domain clips and the
    target-domain ones, all scored by the same model and the section's h) goes into
    ``anomaly_score_<type>_section_<XX>_<domain>_test.csv`` and ``decision_result_...``,
    the domain read from the clip's name (names without one: ``..._section_<XX>_test.csv``;
    see the notes at the top of this module for what the official evaluator reads).  Decisions are
    ``score > threshold`` of the section.  Earlier result files of this machine type in
    ``directory`` that this call does not write are removed, so that the folder can be
    handed to the evaluator as it is.

    Args:
        directory: ``<run>/eval/dcase``.
        data_root: the root the clip paths are relative to (their names give the domain).
        scored: section -> list of :func:`minasd.evaluate.section_scores` entries (``clips``, ``h``).
        thresholds: section -> decision threshold.  Book: chapter 5.
    """
    from .data import parse_filename

    written = []
    for s, parts in scored.items():
        groups: dict = {}
        for part in parts:
            for rel, score in zip(part["clips"].paths, part["h"]):
                groups.setdefault(parse_filename(Path(data_root) / rel).domain, []).append((Path(rel).name, score))
        for domain, items in sorted(groups.items(), key=lambda kv: str(kv[0])):
            names = [n for n, _ in items]
            scores = np.array([v for _, v in items], dtype=np.float64)
            write_anomaly_scores(directory, machine, s, names, scores, overwrite=True, domain=domain)
            write_decisions(directory, machine, s, names, (scores > thresholds[s]).astype(int), overwrite=True,
                            domain=domain)
            written += [anomaly_score_filename(machine, s, domain), decision_filename(machine, s, domain)]
    for prefix in ("anomaly_score", "decision_result"):
        for old in directory.glob(f"{prefix}_{machine}_section_*.csv"):
            if old.name not in written:
                old.unlink()
    return sorted(written)
