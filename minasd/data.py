"""The data layer: DCASE Task 2 file names, data-set index, audio, normalisation, segments.

One module holds every fact about how the DCASE machine-sound data sets are laid out
on disk (Book: chapter 1) and how a clip becomes the waveform the model sees
(Book: chapter 2):

- :func:`parse_filename` reads machine type, section, domain, split, label and
  attributes from a clip's path (DCASE 2020, 2021 and 2022-2025 names, the anonymised
  evaluation names, and the original MIMII layout);
- :func:`index` lists every clip under a data root as a pandas DataFrame and merges the
  official evaluation ground-truth CSVs into the labels of anonymised clips;
- :func:`load_audio` reads a clip as float32 mono at 16 kHz, with clear errors;
- :class:`NormStats` and friends hold the per-machine-type amplitude normalisation;
- :func:`random_crop`, :func:`segment_starts` and :func:`segments` cut clips into the
  2 s pieces of training and inference.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import soundfile as sf
from minasd.progress import tqdm

from minasd.config import MIN_CLIP_SECONDS, N_SEGMENTS, SAMPLE_RATE, SEGMENT_SECONDS
from minasd.io_utils import atomic_write_json

# --- file-name patterns (the one place they live) ----------------------------

#: Folders directly above the clips in a DCASE layout ("subsets").
SUBSETS: tuple[str, ...] = ("train", "source_test", "target_test", "test")

_WAV = r"\.(?i:wav)"
# DCASE 2021-2025 development / additional-training names, attributes optional:
# section_00_source_train_normal_0073_volt_1.5_wt_0.wav
_RE_SECTION = re.compile(
    r"^section_(?P<section>\d+)_(?P<domain>source|target)_(?P<split>train|test)_"
    r"(?P<label>normal|anomaly)_(?P<number>\d+)(?:_(?P<attributes>.+?))?" + _WAV + "$"
)
# DCASE 2021 evaluation set, anonymised but with the domain: section_03_source_test_0000.wav
_RE_ANON_DOMAIN = re.compile(
    r"^section_(?P<section>\d+)_(?P<domain>source|target)_test_(?P<number>\d+)" + _WAV + "$"
)
# DCASE 2022-2025 evaluation sets, anonymised without the domain: section_03_0000.wav
_RE_ANON = re.compile(r"^section_(?P<section>\d+)_(?P<number>\d+)" + _WAV + "$")
# DCASE 2020: normal_id_00_00000000.wav (dev, train/test folders); eval test: id_05_00000000.wav
_RE_ID = re.compile(r"^(?P<label>normal|anomaly)_id_(?P<section>\d+)_(?P<number>\d+)" + _WAV + "$")
_RE_ID_ANON = re.compile(r"^id_(?P<section>\d+)_(?P<number>\d+)" + _WAV + "$")
# Original MIMII: <machine>/id_00/{normal,abnormal}/00000000.wav
_RE_MIMII = re.compile(r"^(?P<number>\d+)" + _WAV + "$")
_RE_MIMII_ID = re.compile(r"^id_(?P<section>\d+)$")

#: Evaluation ground truth: ground_truth_<machine>_section_<XX>[_<domain>]_test.csv
#: (DCASE 2021 names carry the domain, DCASE 2022-2025 names do not).
_RE_GT = re.compile(
    r"^ground_truth_(?P<machine>.+?)_section_(?P<section>\d+)(?:_(?P<domain>source|target))?_test\.csv$"
)
# DCASE 2022-2025 evaluators ship three folders of CSVs with the same file names:
# labels (ground_truth_data/), domains (ground_truth_domain/: 0 source, 1 target) and
# attributes (ground_truth_attributes/, not merged here).
_GT_DOMAIN_DIR = "ground_truth_domain"
_GT_ATTRIBUTES_DIR = "ground_truth_attributes"

#: Schemes whose clips carry no label in their names (labels come from ground truth).
ANONYMISED_SCHEMES: tuple[str, ...] = ("dcase2021_eval", "dcase2022_eval", "dcase2020_eval")

_LABELS = {"normal": 0, "anomaly": 1}
_MACHINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class ClipInfo:
    """What a clip's path says about it (Book: chapter 1).

    Attributes:
        machine: machine type, the name of the folder above the subset folder
            (``fan``, ``ToyCar``, ``bearing``, ...; any name is accepted).
        section: section ("product ID" in the paper; the ``id_XX`` of DCASE 2020).
        domain: ``"source"``, ``"target"`` or None where the name does not say
            (DCASE 2020, MIMII, DCASE 2022-2025 anonymised evaluation clips).
        split: ``"train"`` or ``"test"``; None for MIMII, which has no split.
        label: 0 normal, 1 anomaly, None unknown (anonymised evaluation clips).
        attributes: the attribute string after the clip number
            (``"volt_1.5_wt_0"``), ``""`` if none (DCASE 2024's ``noAttribute`` too).
        number: the clip's running number in its file name.
        scheme: naming scheme: ``"dcase2020"``, ``"dcase2020_eval"``, ``"dcase2021"``
            (also the DCASE 2022-2025 development names, which follow it),
            ``"dcase2021_eval"``, ``"dcase2022_eval"`` or ``"mimii"``.
    """

    machine: str
    section: int
    domain: str | None
    split: str | None
    label: int | None
    attributes: str
    number: int
    scheme: str


def parse_filename(path: str | os.PathLike) -> ClipInfo:
    """Parse a DCASE Task 2 (or MIMII) clip path into a :class:`ClipInfo` (Book: chapter 1).

    The machine type is the folder above the subset folder
    (``<machine>/{train,test,source_test,target_test}/<clip>.wav``; for MIMII
    ``<machine>/id_XX/{normal,abnormal}/<clip>.wav``), so the path must include it.
    Where the subset folder is known, the name must agree with it (a ``_train_`` clip in
    ``source_test/`` is an error).

    Args:
        path: path of a ``.wav`` clip, absolute or relative.

    Returns:
        The parsed :class:`ClipInfo`.

    Raises:
        ValueError: the name follows no known pattern, the folder layout does not give
            the machine type, or name and folder disagree; the message names the file.

    >>> parse_filename("dev_data/gearbox/train/section_00_source_train_normal_0073_volt_1.5_wt_0.wav")
    ... # doctest: +NORMALIZE_WHITESPACE
    ClipInfo(machine='gearbox', section=0, domain='source', split='train', label=0,
             attributes='volt_1.5_wt_0', number=73, scheme='dcase2021')
    """
    p = Path(path)
    name, folder = p.name, p.parent.name

    m = _RE_MIMII.match(name)
    if m and folder in ("normal", "abnormal"):
        idm = _RE_MIMII_ID.match(p.parent.parent.name)
        if idm is None:
            raise ValueError(f"cannot parse clip {p}: MIMII clips live in <machine>/id_XX/{folder}/")
        machine = _machine_from(p, p.parent.parent.parent.name)
        return ClipInfo(machine, int(idm["section"]), None, None, 1 if folder == "abnormal" else 0, "",
                        int(m["number"]), "mimii")

    if folder not in SUBSETS:
        raise ValueError(
            f"cannot parse clip {p}: expected it in a <machine>/{{{','.join(SUBSETS)}}}/ folder, "
            f"found folder {folder!r}"
        )
    machine = _machine_from(p, p.parent.parent.name)

    if m := _RE_SECTION.match(name):
        attributes = m["attributes"] or ""
        info = ClipInfo(machine, int(m["section"]), m["domain"], m["split"], _LABELS[m["label"]],
                        "" if attributes == "noAttribute" else attributes, int(m["number"]), "dcase2021")
    elif m := _RE_ANON_DOMAIN.match(name):
        info = ClipInfo(machine, int(m["section"]), m["domain"], "test", None, "", int(m["number"]),
                        "dcase2021_eval")
    elif m := _RE_ANON.match(name):
        info = ClipInfo(machine, int(m["section"]), None, "test", None, "", int(m["number"]), "dcase2022_eval")
    elif m := _RE_ID.match(name):
        split = "train" if folder == "train" else "test"
        info = ClipInfo(machine, int(m["section"]), None, split, _LABELS[m["label"]], "", int(m["number"]),
                        "dcase2020")
    elif m := _RE_ID_ANON.match(name):
        info = ClipInfo(machine, int(m["section"]), None, "test", None, "", int(m["number"]), "dcase2020_eval")
    else:
        raise ValueError(
            f"cannot parse clip {p}: the name follows no known DCASE pattern "
            "(e.g. section_00_source_train_normal_0000_<attrs>.wav, section_03_source_test_0000.wav, "
            "section_03_0000.wav, normal_id_00_00000000.wav)"
        )
    _check_folder(p, info, folder)
    return info


def _machine_from(p: Path, machine: str) -> str:
    if not _MACHINE_NAME.match(machine):
        raise ValueError(f"cannot parse clip {p}: the machine-type folder is missing or odd ({machine!r})")
    return machine


def _check_folder(p: Path, info: ClipInfo, folder: str) -> None:
    """Name and subset folder must agree; misplaced clips would poison train/test splits."""
    want_split = "train" if folder == "train" else "test"
    if info.split != want_split:
        raise ValueError(f"clip {p} is a {info.split} clip but lies in folder {folder!r}")
    if folder in ("source_test", "target_test") and info.domain not in (None, folder.split("_")[0]):
        raise ValueError(f"clip {p} is a {info.domain}-domain clip but lies in folder {folder!r}")


# --- the index ---------------------------------------------------------------

#: Columns of :func:`index`, in order.
INDEX_COLUMNS: tuple[str, ...] = ("path", "machine", "section", "domain", "split", "label", "attributes",
                                  "subset", "dataset")


def _find_clips(root: Path) -> Iterator[Path]:
    """Every ``*.wav`` in a subset folder under ``root``, skipping hidden folders
    (the downloader extracts into ``.minasd_download/`` before moving into place)."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if Path(folder).name not in SUBSETS:
            continue
        for f in sorted(files):
            if f.lower().endswith(".wav") and not f.startswith("."):
                yield Path(folder) / f


def index(root: str | os.PathLike, ground_truth: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per clip under a DCASE-style data root (Book: chapter 1).

    ``root`` may be a folder holding ``dev_data/`` and ``eval_data/``, one that holds
    machine-type folders directly, or a single machine-type folder: every ``*.wav`` in a
    ``train/``, ``source_test/``, ``target_test/`` or ``test/`` folder is indexed, the
    machine type is the folder above it and ``dataset`` the folder above that. Hidden
    folders are skipped.

    Ground truth: every ``ground_truth_<machine>_section_<XX>[_<domain>]_test.csv`` under
    ``root`` (or, if given, under ``ground_truth`` instead) is merged into the labels of
    anonymised evaluation clips (rows ``section_03_source_test_0000.wav,1``, no header,
    1 = anomaly). CSVs in a ``ground_truth_domain/`` folder (DCASE 2022-2025) fill the
    domain of anonymised clips instead (0 source, 1 target); ``ground_truth_attributes/``
    is ignored. A CSV is used when the index holds anonymised clips of its machine type
    and section; then every such clip must have a row and every row a clip. Anonymised
    clips of a machine type and section with no CSV at all keep label ``<NA>``, with a
    ``UserWarning`` that names those sections (a partial download is legitimate).

    Args:
        root: data root.
        ground_truth: folder searched (recursively) for the ground-truth CSVs instead of
            ``root``.

    Returns:
        DataFrame with columns :data:`INDEX_COLUMNS`: ``path`` (absolute str),
        ``machine``, ``section`` (int), ``domain`` ("source"/"target"/None),
        ``split``, ``label`` (nullable Int64: 0, 1, <NA>), ``attributes``, ``subset``,
        ``dataset``; sorted by path, index 0..n-1.

    Raises:
        FileNotFoundError: ``root`` or ``ground_truth`` does not exist.
        ValueError: no clips found, an unparseable clip or CSV, or a ground-truth
            mismatch (the message names the CSV and the clip).
    """
    root = _existing_dir(root, "data root")
    rows = []
    for path in _find_clips(root):
        info = parse_filename(path)
        rows.append({
            "path": str(path), "machine": info.machine, "section": info.section, "domain": info.domain,
            "split": info.split, "label": info.label, "attributes": info.attributes,
            "subset": path.parent.name, "dataset": path.parent.parent.parent.name,
            "_anonymised": info.scheme in ANONYMISED_SCHEMES,
        })
    if not rows:
        raise ValueError(
            f"no clips found under {root}: expected <root>/{{dev_data,eval_data}}/<machine>/"
            f"{{{','.join(SUBSETS)}}}/*.wav (run `minasd download` or `minasd.synth.make_dataset`)"
        )
    df = pd.DataFrame(rows)
    gt_root = root if ground_truth is None else _existing_dir(ground_truth, "ground-truth folder")
    _merge_ground_truth(df, find_ground_truth(gt_root))
    df["label"] = pd.array(df["label"].tolist(), dtype="Int64")
    df["section"] = df["section"].astype("int64")
    # Keep None (not NaN) for unknown domains, as the contract says; pandas >= 3 would
    # otherwise infer a string dtype with NaN.
    df["domain"] = pd.Series([d if isinstance(d, str) else None for d in df["domain"]], dtype=object)
    df = df.drop(columns="_anonymised").sort_values("path", kind="stable").reset_index(drop=True)
    return df[list(INDEX_COLUMNS)]


def _existing_dir(path: str | os.PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{what} {p} does not exist")
    if not p.is_dir():
        raise NotADirectoryError(f"{what} {p} is not a folder")
    return p.resolve()


def find_ground_truth(folder: str | os.PathLike) -> list[Path]:
    """All ``ground_truth_*.csv`` files under ``folder``, sorted (Book: chapter 1)."""
    found = []
    for dirpath, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(dirpath) / f for f in sorted(files) if f.startswith("ground_truth_") and f.endswith(".csv")]
    return found


def read_ground_truth(path: str | os.PathLike) -> dict[str, int]:
    """Read one official ground-truth CSV into ``{clip file name: 0 or 1}`` (Book: chapter 1).

    Rows are ``<clip>.wav,<0|1>`` with no header (DCASE 2021-2025 evaluators); blank
    lines and Windows line ends are tolerated. Each row's clip must belong to the
    section (and domain, if the CSV's name has one) that the CSV's name states.

    Raises:
        ValueError: bad file name, bad row, value other than 0/1, a clip of another
            section, or a clip listed twice; the message names the CSV and the line.
    """
    p = Path(path)
    m = _RE_GT.match(p.name)
    if m is None:
        raise ValueError(f"ground-truth CSV {p}: name must be ground_truth_<machine>_section_<XX>[_<domain>]_test.csv")
    prefix = f"section_{m['section']}_" + (f"{m['domain']}_test_" if m["domain"] else "")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"ground-truth CSV {p}: not UTF-8 text ({err})") from None
    rows: dict[str, int] = {}
    for line_no, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        row = [cell.strip() for cell in row]
        if not any(row):
            continue
        if len(row) != 2 or not row[0].lower().endswith(".wav") or row[1] not in ("0", "1"):
            raise ValueError(f"ground-truth CSV {p}, line {line_no}: expected '<clip>.wav,<0|1>', got {row!r}")
        if not row[0].startswith(prefix):
            raise ValueError(f"ground-truth CSV {p}, line {line_no}: clip {row[0]} does not start with {prefix!r}")
        if row[0] in rows:
            raise ValueError(f"ground-truth CSV {p}, line {line_no}: clip {row[0]} listed twice")
        rows[row[0]] = int(row[1])
    return rows


def _merge_ground_truth(df: pd.DataFrame, csv_paths: Sequence[Path]) -> None:
    """Fill ``label`` (and ``domain`` from ground_truth_domain/) of anonymised clips in place."""
    anon = df.index[df["_anonymised"]]
    active = set(zip(df.loc[anon, "machine"], df.loc[anon, "section"]))
    clips: dict[tuple[str, str], list[int]] = {}  # (machine, file name) -> rows of df
    for i in anon:
        clips.setdefault((df.at[i, "machine"], Path(df.at[i, "path"]).name), []).append(i)

    # Group the CSVs: kind ("label" / "domain"), machine, section, domain -> {clip: value}
    groups: dict[tuple[str, str, int, str | None], dict[str, tuple[int, Path]]] = {}
    for p in csv_paths:
        kind = {_GT_DOMAIN_DIR: "domain", _GT_ATTRIBUTES_DIR: None}.get(p.parent.name, "label")
        m = _RE_GT.match(p.name)
        if kind is None:
            continue
        if m is None:
            raise ValueError(
                f"ground-truth CSV {p}: name must be ground_truth_<machine>_section_<XX>[_<domain>]_test.csv"
            )
        key = (kind, m["machine"], int(m["section"]), m["domain"])
        if key[1:3] not in active:
            continue  # no anonymised clips of this machine type and section here: nothing to label
        group = groups.setdefault(key, {})
        for clip, value in read_ground_truth(p).items():
            if clip in group and group[clip][0] != value:
                raise ValueError(f"ground-truth CSVs {group[clip][1]} and {p} disagree on clip {clip}")
            group.setdefault(clip, (value, p))

    for (kind, machine, section, domain), group in sorted(groups.items(), key=lambda kv: str(kv[0])):
        for clip, (value, p) in sorted(group.items()):
            where = clips.get((machine, clip))
            if where is None:
                raise ValueError(f"ground-truth CSV {p} lists clip {clip}, but no {machine} clip of that name "
                                 "is under the data root (incomplete download or extraction?)")
            for i in where:
                if kind == "label":
                    df.at[i, "label"] = value
                else:
                    df.at[i, "domain"] = "target" if value == 1 else "source"

    # Every anonymised clip covered by a CSV must have its row.
    for i in anon:
        machine, section, domain = df.at[i, "machine"], df.at[i, "section"], df.at[i, "domain"]
        name = Path(df.at[i, "path"]).name
        for kind in ("label", "domain"):
            for key in ((kind, machine, section, domain), (kind, machine, section, None)):
                if key in groups and name not in groups[key]:
                    csv_name = sorted({str(p) for _, p in groups[key].values()})
                    raise ValueError(f"clip {df.at[i, 'path']} has no row in ground-truth CSV {', '.join(csv_name)}")

    # Sections with no CSV at all keep <NA> labels (a partial download is legitimate), but say so.
    unlabelled: dict[tuple[str, int], int] = {}
    for i in anon:
        if pd.isna(df.at[i, "label"]):
            key = (df.at[i, "machine"], int(df.at[i, "section"]))
            unlabelled[key] = unlabelled.get(key, 0) + 1
    if unlabelled:
        where = ", ".join(f"{m} section {s:02d} ({n})" for (m, s), n in sorted(unlabelled.items()))
        warnings.warn(f"no ground-truth CSV for the anonymised evaluation clips of {where}: their labels stay "
                      "<NA> (the DCASE 2021 ground truth is Zenodo record 5257674; `minasd download` fetches it)",
                      UserWarning, stacklevel=3)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Clip counts per dataset, machine type, subset and section (Book: chapter 1).

    Args:
        df: a frame from :func:`index`.

    Returns:
        DataFrame with columns ``dataset, machine, subset, section, normal, anomaly,
        unknown, total`` (``unknown`` = label <NA>), one row per group, sorted.
    """
    keys = ["dataset", "machine", "subset", "section"]
    if df.empty:
        return pd.DataFrame(columns=keys + ["normal", "anomaly", "unknown", "total"])
    label = df["label"].astype("Int64")
    counts = pd.DataFrame({
        **{k: df[k] for k in keys},
        "normal": (label == 0).fillna(False).astype(int),
        "anomaly": (label == 1).fillna(False).astype(int),
        "unknown": label.isna().astype(int),
    }).groupby(keys, sort=True).sum().reset_index()
    counts["total"] = counts[["normal", "anomaly", "unknown"]].sum(axis=1)
    return counts


def protocol_clips(df: pd.DataFrame, split: str, machines: Iterable[str] | None = None,
                   sections: Iterable[int] | None = None) -> pd.DataFrame:
    """The clips the paper's source-domain protocol uses: the one rule every stage applies.

    The paper trains and tests on the **source domain** only (METHOD.md).  DCASE 2021
    ``train/`` folders also hold a few target-domain clips per section
    (``section_00_target_train_normal_*``) and ``target_test/`` holds the target
    domain's test clips: this rule drops them, for training (positives, negatives,
    amplitude statistics, the held-out 10 %), for the inlier models and for the
    tables.  Clips whose name carries no domain (the DCASE 2020 layout, anonymised
    evaluation clips before their ground truth is merged) count as source.

    Args:
        df: a frame from :func:`index`.
        split: ``"train"`` or ``"test"``.
        machines, sections: keep only these machine types / sections (None = all).

    Returns:
        the matching rows, sorted by path.

    >>> rows = pd.DataFrame({"path": ["a", "b", "c"], "machine": "fan", "section": 0,
    ...                      "split": "train", "domain": ["source", "target", None]})
    >>> protocol_clips(rows, "train")["path"].tolist()
    ['a', 'c']
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    keep = (df["split"] == split) & (df["domain"].isin(["source"]) | df["domain"].isna())
    if machines is not None:
        keep &= df["machine"].isin(list(machines))
    if sections is not None:
        keep &= df["section"].isin([int(s) for s in sections])
    return df[keep].sort_values("path", kind="stable")


def protocol_frame(root: str | os.PathLike, machine_types: Iterable[str] | None = None,
                   sections: Iterable[int] | None = None) -> pd.DataFrame:
    """The protocol's train and test clips of ``root`` (:func:`index`, :func:`protocol_clips`) in path
    order, the order the comparison systems fit in (a mixture fit depends on it); an error if none."""
    sections = None if sections is None else list(sections)
    df = index(root)
    df = pd.concat([protocol_clips(df, split, machines=machine_types, sections=sections)
                    for split in ("train", "test")])
    df = df.sort_values("path", kind="stable").reset_index(drop=True)
    if df.empty:
        raise ValueError(f"no source-domain clips of types {machine_types} / sections {sections} under {root}")
    return df


def synthetic_set(size: str, seed: int = 0, *, parent: str | os.PathLike | None = None,
                  root: str | os.PathLike | None = None, generator: str | None = None, progress: bool = True) -> Path:
    """A synthetic set (:mod:`minasd.synth`) of ``size`` and ``seed``, made or resumed unless finished.

    Args:
        parent: the folder to keep it in, as ``synth_<size>_seed<seed>`` (``..._g<version>`` for a
            generator other than 1.2, so that sets of two versions never share a folder).
        root: the set's own folder instead (``parent`` is then ignored).
        generator: factory version; default :data:`minasd.config.SYNTH_GENERATOR`.

    Returns:
        The set's root.
    """
    from minasd.config import SYNTH_GENERATOR
    from minasd.synth import make_dataset

    gen = generator or SYNTH_GENERATOR
    if root is None:
        if parent is None:
            raise ValueError("synthetic_set needs parent= or root=")
        root = Path(parent) / (f"synth_{size}_seed{seed}" + ("" if gen == "1.2" else f"_g{gen}"))
    return Path(make_dataset(root, size=size, seed=seed, progress=progress, generator=gen))


# --- audio -------------------------------------------------------------------


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE,
               min_seconds: float | None = MIN_CLIP_SECONDS) -> np.ndarray:
    """Read a clip as float32 mono at ``sample_rate`` (Book: chapter 2).

    - Multichannel files (e.g. the 8-microphone MIMII recordings) give channel 0, the
      first microphone: DCASE Task 2 clips are single-channel recordings of one
      microphone, and averaging channels would mix in inter-microphone delays.
    - A file at another rate is resampled with ``scipy.signal.resample_poly`` at the
      exact rational ratio ``sample_rate / file_rate`` (polyphase filtering with
      SciPy's default Kaiser-windowed anti-aliasing low-pass filter).
    - Values are whatever soundfile returns for float32: integer PCM scaled to [-1, 1).

    Args:
        path: audio file readable by libsndfile (WAV, FLAC, ...).
        sample_rate: wanted rate in Hz.
        min_seconds: shortest accepted clip in seconds (default: one 2 s segment);
            None accepts any non-empty clip.

    Returns:
        Waveform, float32, shape ``(n_samples,)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable or not audio, empty, non-finite samples, or shorter than
            ``min_seconds``; the message names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"audio file {p} does not exist")
    try:
        data, rate = sf.read(p, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise ValueError(f"cannot read audio file {p}: {err}") from None
    if data.shape[0] == 0:
        raise ValueError(f"audio file {p} is empty (0 samples)")
    wave = np.ascontiguousarray(data[:, 0])
    if not np.isfinite(wave).all():
        raise ValueError(f"audio file {p} contains NaN or infinite samples")
    seconds = wave.shape[0] / rate
    if min_seconds is not None and seconds < min_seconds:
        raise ValueError(f"clip {p} is {seconds:.2f} s long; segments need {min_seconds:.1f} s")
    if rate != sample_rate:
        from scipy.signal import resample_poly  # local: scipy.signal is slow to import

        ratio = Fraction(sample_rate, rate)
        wave = resample_poly(wave.astype(np.float64), ratio.numerator, ratio.denominator).astype(np.float32)
    return wave


# --- amplitude normalisation ---------------------------------------------------


@dataclass(frozen=True)
class NormStats:
    """Amplitude statistics of one machine type's training clips (Book: chapter 2).

    Attributes:
        mean: mean of all samples (waveform units).
        std: standard deviation of all samples (population, ddof=0), > 0.
        n_clips: clips the statistics were computed from.
        n_samples: samples the statistics were computed from.
    """

    mean: float
    std: float
    n_clips: int
    n_samples: int = 0

    def apply(self, wave):
        """``(wave - mean) / std``; numpy (float32 kept) or torch, any shape."""
        if isinstance(wave, np.ndarray):
            return ((wave - self.mean) / self.std).astype(wave.dtype if wave.dtype.kind == "f" else np.float32)
        return (wave - self.mean) / self.std


def compute_norm_stats(paths: Iterable[str | os.PathLike], sample_rate: int = SAMPLE_RATE,
                       progress: bool = True) -> NormStats:
    """Mean and standard deviation over every sample of ``paths`` (Book: chapter 2).

    METHOD: pass one machine type's *training* clips only; the same statistics are then
    applied to every clip fed to that type's model. Statistics are accumulated clip by
    clip in float64 (Chan et al.'s pairwise update of count, mean and sum of squared
    deviations), so memory stays constant and no precision is lost over 10^8 samples.

    Args:
        paths: audio files (read with :func:`load_audio`).
        sample_rate: rate the clips are read at.
        progress: show a tqdm bar.

    Raises:
        ValueError: no paths, or all samples equal (zero variance).
    """
    paths = list(paths)
    if not paths:
        raise ValueError("compute_norm_stats needs at least one clip; got none")
    waves = (load_audio(path, sample_rate) for path in
             tqdm(paths, desc="amplitude statistics", unit="clip", disable=not progress))
    return stats_of_waves(waves, len(paths), paths[0])


def stats_of_waves(waves: Iterable[np.ndarray], n_clips: int, first: str | os.PathLike) -> NormStats:
    """Mean and standard deviation over all samples of ``waves``, merged clip by clip (Chan et al.'s
    pairwise update, in float64), so that no concatenation of the clips is ever held in memory.

    Args:
        waves: the clips' samples (any float or int dtype already scaled to [-1, 1)).
        n_clips: how many clips ``waves`` yields (recorded).
        first: name of the first clip, for the error message.

    Raises:
        ValueError: all samples equal (zero variance).
    """
    n, mean, m2 = 0, 0.0, 0.0
    for w in waves:
        x = np.asarray(w, dtype=np.float64)
        nb, mb = x.size, float(x.mean())
        m2b = float(((x - mb) ** 2).sum())
        delta = mb - mean
        total = n + nb
        mean += delta * nb / total
        m2 += m2b + delta * delta * n * nb / total
        n = total
    std = math.sqrt(m2 / n)
    if not std > 0:
        raise ValueError(f"the {n_clips} clips (first: {first}) have zero variance; cannot normalise")
    return NormStats(mean=mean, std=std, n_clips=n_clips, n_samples=n)


_NORM_KIND = "minasd.norm_stats"


def save_norm_stats(stats: Mapping[str, NormStats], path: str | os.PathLike) -> Path:
    """Write ``{machine: NormStats}`` to a small JSON file, atomically (Book: chapter 2).

    Format: ``{"kind": "minasd.norm_stats", "version": 1, "machines": {"fan": {"mean": ...,
    "std": ..., "n_clips": ..., "n_samples": ...}}}``.
    """
    machines = {}
    for machine, s in stats.items():
        _check_stats(machine, s.mean, s.std, s.n_clips, s.n_samples, where="save_norm_stats")
        machines[machine] = {"mean": float(s.mean), "std": float(s.std), "n_clips": int(s.n_clips),
                             "n_samples": int(s.n_samples)}
    return atomic_write_json(path, {"kind": _NORM_KIND, "version": 1, "machines": machines})


def load_norm_stats(path: str | os.PathLike) -> dict[str, NormStats]:
    """Read a file written by :func:`save_norm_stats` (Book: chapter 2).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, wrong layout, missing fields, non-finite mean, std <= 0 or
            n_clips < 1; the message names the file and the machine type.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"normalisation statistics file {p} does not exist")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"normalisation statistics file {p} is not valid JSON: {err}") from None
    if not isinstance(raw, dict) or raw.get("kind") != _NORM_KIND or not isinstance(raw.get("machines"), dict):
        raise ValueError(f"normalisation statistics file {p}: expected {{'kind': '{_NORM_KIND}', 'machines': {{...}}}}")
    out = {}
    for machine, entry in raw["machines"].items():
        try:
            mean, std, n_clips = entry["mean"], entry["std"], entry["n_clips"]
            n_samples = entry.get("n_samples", 0)
        except (KeyError, TypeError, AttributeError):
            raise ValueError(f"normalisation statistics file {p}: machine type {machine!r} "
                             "needs mean, std, n_clips") from None
        _check_stats(machine, mean, std, n_clips, n_samples, where=f"normalisation statistics file {p}")
        out[machine] = NormStats(float(mean), float(std), int(n_clips), int(n_samples))
    return out


def _check_stats(machine, mean, std, n_clips, n_samples, where: str) -> None:
    num = (int, float)
    ok = (isinstance(mean, num) and not isinstance(mean, bool) and math.isfinite(mean)
          and isinstance(std, num) and not isinstance(std, bool) and math.isfinite(std) and std > 0
          and isinstance(n_clips, (int, np.integer)) and not isinstance(n_clips, bool) and n_clips >= 1
          and isinstance(n_samples, (int, np.integer)) and n_samples >= 0)
    if not ok:
        raise ValueError(f"{where}: machine type {machine!r} has invalid statistics (mean={mean!r}, std={std!r}, "
                         f"n_clips={n_clips!r}, n_samples={n_samples!r}); need finite mean, std > 0, n_clips >= 1")


# --- crops and segments ------------------------------------------------------


def random_crop(wave, n_samples: int, rng: np.random.Generator):
    """A random ``n_samples`` window of ``wave`` along its last axis (Book: chapter 2).

    Training input: every start in ``0 .. len - n_samples`` is equally likely.

    Args:
        wave: numpy array or torch tensor, shape ``(..., n)``.
        n_samples: crop length (e.g. ``int(SEGMENT_SECONDS * SAMPLE_RATE)`` = 32000).
        rng: numpy random generator (seeded by the caller).

    Returns:
        ``wave[..., start:start + n_samples]`` (a view, same type).

    Raises:
        ValueError: the clip is shorter than ``n_samples``.
    """
    n = wave.shape[-1]
    if n < n_samples:
        raise ValueError(f"clip of {n} samples is shorter than the {n_samples}-sample crop")
    start = int(rng.integers(0, n - n_samples + 1))
    return wave[..., start:start + n_samples]


def segment_starts(n_total: int, seg_len: int, n_segments: int = N_SEGMENTS) -> np.ndarray:
    """Start samples of ``n_segments`` evenly spaced segments (Book: chapter 2).

    The first starts at 0 and the last ends at ``n_total``; starts are
    ``round(linspace(0, n_total - seg_len, n_segments))``, so steps differ by at most one
    sample. Segments overlap and cover the clip without gaps whenever
    ``n_total <= n_segments * seg_len`` (10-20 s clips with S = 10, T = 2 s); longer
    clips get evenly spaced segments with gaps.

    Args:
        n_total: clip length in samples.
        seg_len: segment length in samples.
        n_segments: S, number of segments (>= 1; 1 only if ``n_total == seg_len``).

    Returns:
        int64 array of shape ``(n_segments,)``.

    Raises:
        ValueError: the clip is shorter than one segment, or bad counts.

    >>> segment_starts(10, 4, 3).tolist()
    [0, 3, 6]
    """
    if seg_len < 1 or n_segments < 1:
        raise ValueError(f"seg_len and n_segments must be >= 1, got {seg_len} and {n_segments}")
    if n_total < seg_len:
        raise ValueError(f"clip is {n_total} samples long; segments need {seg_len} samples")
    if n_segments == 1 and n_total != seg_len:
        raise ValueError(f"one segment of {seg_len} samples cannot cover a clip of {n_total} samples")
    return np.round(np.linspace(0, n_total - seg_len, n_segments)).astype(np.int64)


def segments(wave, seg_len: int = int(SEGMENT_SECONDS * SAMPLE_RATE), n_segments: int = N_SEGMENTS):
    """Cut ``wave`` into the S evenly spaced segments of inference (Book: chapter 2).

    Args:
        wave: numpy array or torch tensor, shape ``(..., n)``.
        seg_len: segment length in samples (default 2.0 s at 16 kHz).
        n_segments: S (default 10).

    Returns:
        Same type as ``wave``, shape ``(..., n_segments, seg_len)`` (``(S, seg_len)`` for
        a 1-D clip); a copy.

    Raises:
        ValueError: the clip is shorter than one segment ("clip is 6400 samples long;
            segments need 32000 samples").
    """
    starts = segment_starts(int(wave.shape[-1]), seg_len, n_segments)
    pieces = [wave[..., s:s + seg_len] for s in starts.tolist()]
    if isinstance(wave, np.ndarray):
        return np.stack(pieces, axis=-2)
    import torch  # only reached with a tensor; keeps torch out of numpy-only callers

    return torch.stack(pieces, dim=-2)
