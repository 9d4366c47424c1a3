"""Your own recordings in the DCASE 2021 Task 2 layout: ``minasd prepare`` (Book: the real-data chapter).

Everything after loading (training, the inlier models, the protocol, the comparison systems)
reads a data root through :func:`minasd.data.index`.  This module turns a folder tree of
normal and anomalous recordings into such a root, so that one's own machine joins the
pipeline as one more machine type::

    minasd prepare --input REC --out data/mine --machine-type mine \\
        --normal normal --anomaly 'broken_*' --section-level 1 --outliers data/synth_small

Input: under ``--input``, one folder per *class*: the ``--normal`` folders and the
``--anomaly`` folders (names or globs relative to ``--input``; each matched folder is one
class, its name the ``anomaly_kind`` of its clips).  Every audio file below a class folder
(``.wav``, ``.flac``, ``.ogg``, ``.aif``/``.aiff``, at any depth, hidden files and folders
skipped, other files ignored) is one *recording*, of any length, rate and channel count.

The choices, each recorded in the manifest:

* **Clips**: each recording is read with soundfile, its channels averaged (``--channel N``
  takes channel N of every multi-channel file instead; mono files are used as they are), resampled to 16 kHz with ``scipy.signal.resample_poly`` at the
  exact rational ratio (as :func:`minasd.data.load_audio` does), and cut from its start into
  consecutive, non-overlapping clips of ``--clip-seconds`` (default 10 s, the DCASE 2021
  length; nothing is trimmed, e.g. a start-up at the beginning of a recording stays), written as 16-bit PCM WAV (samples outside [-1, 1) clipped, with a warning).  The
  *tail* shorter than a clip is dropped rather than padded: padding would add silence, an
  edge the detectors could score.  A recording shorter than one clip gives no clip: it is
  skipped, listed under ``skipped`` in the manifest, and named in a warning.  A recording is
  read whole into memory (float32, 4 bytes per sample and channel), one at a time.
* **Sections** come from one folder level (``--section-level``): ``L >= 1`` is the L-th
  folder below the class folder, ``L <= -1`` counts upwards from the file (-1 = the folder
  holding the file, -2 = the one above), ``0`` puts every recording in one section.  Each
  distinct value (sorted as text) is one section value.
* **Development and reported parts** (the roles of sections 00-02 and 03-05: every choice is
  made on 00-02, results are reported on 03-05).  ``--parts by-value`` (the default with
  2-6 values): the values of ``--dev-values`` become sections 00, 01, 02 in the order given,
  the others 03, 04, 05 (sorted); so a reported section's recordings, anomalies included, are
  never seen by a choice.  Default: the last ``min(3, n - 1)`` of the n sorted values are
  reported and the rest develop, because a type's Table II row is over all of 03-05
  (:func:`minasd.studies.experiment.summary_table`) and at least one development section is
  needed for the choices; with 4 values that is one development section and three reported.
  ``--parts by-recording`` (the default with one value; at most 3 values): value i is both
  section 0i (development) and 0(i+3) (reported), its recordings divided between the two by
  recording (``--eval-share``, per class, seeded).  Then two sections hold the same condition,
  which the product-ID classifier of the method cannot tell apart: a fallback, stated as such.
* **Train/test split, by recording**: per section, ``--test-share`` of the normal recordings
  (at least one, at most all but one; seeded) go to the test split, the others to training;
  every anomalous recording goes to the test split.  All clips of one recording stay on one
  side.  A section needs at least two normal recordings and one anomalous one.
* **Names**: ``dev_data/<type>/train/section_00_source_train_normal_0000_rec_0012_clip_3.wav``
  (``rec``: the recording's number in the manifest, ``clip``: its position in the
  recording), ``dev_data/<type>/source_test/section_00_source_test_{normal,anomaly}_...``;
  reported sections are anonymised as DCASE's evaluation set is
  (``eval_data/<type>/source_test/section_03_source_test_0000.wav``, shuffled, seeded), their
  labels in ``ground_truth/ground_truth_<type>_section_03_source_test.csv`` (the official
  format, read by :func:`minasd.data.index`).  Only the source domain is written.
* **Outliers** (the method's second cross-entropy needs other machine types): ``--outliers
  ROOT`` places the source-domain training clips of other machine types of a DCASE-layout
  root (a synthetic set of :mod:`minasd.synth`, the real DCASE data, another data set
  prepared here) under the same root, as hard links (``--outlier-link``; a copy where the
  file systems differ), symbolic links or copies.  The manifest says where they came from and
  whether that root is synthetic.

Outputs: ``minasd_prepare.json`` (the manifest, written last: settings, the input's
fingerprint, the section mapping, every recording with its class, section, split and clips,
the skipped recordings, counts, the outliers), ``minasd_prepare_clips.csv`` (one row per
clip of the type: relpath, section, part, split, label, anomaly_kind, source recording,
start in seconds).  Every file is written atomically (:mod:`minasd.io_utils`).  A rerun with
the same settings and input is a no-op (or resumes an interrupted run, keeping finished
clips); a rerun with anything different is refused unless ``--overwrite`` (which deletes
only what this command wrote: ``dev_data/``, ``eval_data/``, ``ground_truth/`` and its two
files, and only under a root that holds its manifest or marker).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import shutil
import warnings
import zlib
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from .config import CLIP_SECONDS, SAMPLE_RATE, SEGMENT_SECONDS
from .io_utils import atomic_write_bytes, atomic_write_json, atomic_write_text, folder_lock

#: Bump when the clips written for the same settings and input change: an older output is then refused.
FORMAT_VERSION = 1
MANIFEST_NAME = "minasd_prepare.json"
PARTIAL_NAME = "minasd_prepare.partial.json"
CLIPS_NAME = "minasd_prepare_clips.csv"
GROUND_TRUTH_DIR = "ground_truth"
#: What the manifest says of the data (never "DCASE", never "synthetic": the type's clips are the user's).
PREPARE_NOTE = "recordings prepared by minasd prepare (not DCASE; see the manifest for their source)"
#: Extensions read as recordings (soundfile / libsndfile formats); other files are ignored.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aif", ".aiff")
PARTS = ("auto", "by-value", "by-recording")
LINKS = ("hard", "symbolic", "copy")
_WRITTEN = ("dev_data", "eval_data", GROUND_TRUTH_DIR)
_MACHINE = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"  # the machine-type names minasd.data accepts


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of ``minasd prepare`` (see the module docstring for each choice).

    Attributes:
        input: folder holding the class folders.
        out: output data root.
        machine_type: name of the prepared type (a folder name; not one of the outliers' types).
        normal, anomaly: class folders, names or globs relative to ``input``.
        section_level: folder level giving the section value (0: one section).
        parts: ``"auto"``, ``"by-value"`` or ``"by-recording"``.
        dev_values: section values of the development part (by-value only; default: all but the
            last min(3, n - 1) sorted values).
        test_share: share of each section's normal recordings in the test split.
        eval_share: share of each value's recordings in the reported part (by-recording only).
        seed: seed of every random split and of the anonymised order.
        clip_seconds: clip length in seconds (>= the 2 s segment).
        channel: ``"mean"`` or a channel index (``"0"``, ``"1"``, ...).
        outliers: DCASE-layout root whose other machine types are copied/linked in, or None.
        outlier_types: those types (default: every type there except ``machine_type``).
        outlier_clips_per_section: at most this many clips per outlier type and section (seeded).
        outlier_link: ``"hard"``, ``"symbolic"`` or ``"copy"``.
    """

    input: str
    out: str
    machine_type: str
    normal: tuple[str, ...]
    anomaly: tuple[str, ...]
    section_level: int = 0
    parts: str = "auto"
    dev_values: tuple[str, ...] | None = None
    test_share: float = 0.3
    eval_share: float = 0.5
    seed: int = 0
    clip_seconds: float = CLIP_SECONDS
    channel: str = "mean"
    outliers: str | None = None
    outlier_types: tuple[str, ...] | None = None
    outlier_clips_per_section: int | None = None
    outlier_link: str = "hard"

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * SAMPLE_RATE))


@dataclass
class Recording:
    """One input file and where its clips go (``section``/``split``/``clips`` set by the plan)."""

    source: str  # path relative to the input folder, POSIX form
    kind: str  # class name ("normal" or the anomaly folder's name)
    label: int  # 0 normal, 1 anomaly
    value: str  # section value read from the folder level
    sample_rate: int
    channels: int
    frames: int
    size: int
    n_clips: int
    section: int = -1
    part: str = ""
    split: str = ""
    clips: list[str] = field(default_factory=list)


@dataclass
class PrepareOutcome:
    """What :func:`prepare` did: ``status`` is ``"written"``, ``"resumed"``, ``"up to date"`` or, for a
    dry run, ``"dry run: ..."``; ``written`` counts files written; ``manifest`` is the manifest."""

    root: Path
    status: str
    written: int
    manifest: dict


# --- finding the recordings ----------------------------------------------------------


def find_classes(cfg: PrepareConfig) -> list[dict]:
    """The class folders: ``[{"folder": relpath, "label": 0|1, "kind": name}]``, normal first.

    Raises:
        FileNotFoundError: ``input`` missing, or a pattern matching no folder.
        ValueError: a folder given twice or inside another class folder (its recordings would
            belong to two classes); no normal or no anomaly pattern.
    """
    root = Path(cfg.input).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"input folder {root} does not exist")
    if not cfg.normal or not cfg.anomaly:
        raise ValueError("give at least one --normal and one --anomaly class folder (names or globs under --input)")
    classes = []
    for label, patterns in ((0, cfg.normal), (1, cfg.anomaly)):
        for pattern in patterns:
            if Path(pattern).is_absolute():
                raise ValueError(f"class folder {pattern!r}: give it relative to --input {root}")
            found = sorted(p for p in root.glob(pattern) if p.is_dir() and not p.name.startswith("."))
            if not found:
                flag = "--normal" if label == 0 else "--anomaly"
                raise FileNotFoundError(f"{flag} {pattern!r}: no folder matches it under {root}")
            classes += [{"folder": p.relative_to(root).as_posix(), "label": label} for p in found]
    folders = [c["folder"] for c in classes]
    for i, a in enumerate(folders):
        for b in folders[i + 1:]:
            if a == b or a.startswith(b + "/") or b.startswith(a + "/"):
                raise ValueError(f"class folders {a!r} and {b!r} overlap: a recording would belong to two classes "
                                 "(give disjoint --normal/--anomaly folders)")
    names = [Path(f).name for f in folders]
    # the folder's name is the class name unless two classes share one: then every class is named by its path
    unique = len(set(names)) == len(names)
    for c, name in zip(classes, names):
        c["kind"] = name if unique else c["folder"]
    return classes


def section_value(folders: Sequence[str], level: int, where: str) -> str:
    """The section value of a recording whose folders below its class folder are ``folders``.

    >>> section_value(["0001", "ccw_f8", "3"], -2, "x.wav"), section_value(["ccw_f8", "3"], 1, "y.wav")
    ('ccw_f8', 'ccw_f8')
    """
    if level == 0:
        return "all"
    i = level - 1 if level > 0 else level
    if not -len(folders) <= i < len(folders):
        raise ValueError(f"recording {where} has {len(folders)} folder(s) below its class folder "
                         f"({'/'.join(folders) or 'none'}); --section-level {level} needs more")
    return folders[i]


def output_samples(frames: int, rate: int) -> int:
    """Length at 16 kHz of ``frames`` samples at ``rate`` (``resample_poly``'s output length).

    >>> output_samples(44100, 44100), output_samples(44101, 44100)
    (16000, 16001)
    """
    ratio = Fraction(SAMPLE_RATE, rate)
    return -(-frames * ratio.numerator // ratio.denominator)


def find_recordings(cfg: PrepareConfig, classes: list[dict]) -> tuple[list[Recording], list[dict]]:
    """Every recording under the class folders (sorted by path) and the skipped ones (too short).

    Raises:
        ValueError: an empty class folder, an unreadable audio file, two files of one name
            but different extensions in one folder (the same recording twice?), a recording
            without the folder level of the section; each message names the file or folder.
    """
    import soundfile as sf

    root = Path(cfg.input).expanduser()
    recs, skipped = [], []
    for c in classes:
        files = _audio_files(root / c["folder"])
        if not files:
            raise ValueError(f"class folder {root / c['folder']} holds no audio file ({', '.join(AUDIO_SUFFIXES)}); "
                             "remove it from --normal/--anomaly or add its recordings")
        for path in files:
            rel = path.relative_to(root).as_posix()
            try:
                info = sf.info(str(path))
            except (RuntimeError, OSError, sf.SoundFileError) as err:
                raise ValueError(f"cannot read audio file {path}: {err}") from None
            if cfg.channel != "mean" and 1 < info.channels <= int(cfg.channel):
                raise ValueError(f"audio file {path} has {info.channels} channels; --channel {cfg.channel} does not "
                                 "exist (channels count from 0)")
            folders = path.relative_to(root / c["folder"]).parts[:-1]
            value = section_value(folders, cfg.section_level, rel)
            n_clips = output_samples(info.frames, info.samplerate) // cfg.clip_samples
            if n_clips == 0:
                skipped.append({"source": rel, "class": c["kind"], "seconds": round(info.frames / info.samplerate, 3),
                                "reason": f"shorter than one {cfg.clip_seconds:g} s clip"})
                continue
            recs.append(Recording(rel, c["kind"], c["label"], value, info.samplerate, info.channels, info.frames,
                                  path.stat().st_size, n_clips))
    if skipped:
        names = ", ".join(s["source"] for s in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        warnings.warn(f"{len(skipped)} recording(s) shorter than one {cfg.clip_seconds:g} s clip skipped "
                      f"(listed in the manifest): {names}", UserWarning, stacklevel=2)
    recs.sort(key=lambda r: r.source)
    return recs, skipped


def _audio_files(folder: Path) -> list[Path]:
    out = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        audio = sorted(f for f in files if not f.startswith(".") and f.lower().endswith(AUDIO_SUFFIXES))
        stems: dict[str, str] = {}
        for f in audio:
            stem = f.rsplit(".", 1)[0]
            if stem in stems:
                raise ValueError(f"recordings {Path(here) / stems[stem]} and {Path(here) / f} share a name in one "
                                 "folder (the same recording in two formats?); keep one of them")
            stems[stem] = f
        out += [Path(here) / f for f in audio]
    return out


# --- the plan: sections, parts, splits, names ------------------------------------------


def _share(n: int, share: float) -> int:
    """How many of n go to the smaller side: round(share * n), at least 1 and at most n - 1."""
    return min(n - 1, max(1, int(round(share * n))))


def _rng(cfg: PrepareConfig, *key: str | int) -> np.random.Generator:
    ints = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in key]
    return np.random.default_rng([int(cfg.seed), 24, *ints])


def assign_sections(recs: list[Recording], cfg: PrepareConfig) -> tuple[str, dict[int, dict]]:
    """Map section values to sections 00-05 and set each recording's ``section`` and ``part``.

    Returns:
        ``(parts mode used, {section: {"value": ..., "part": "dev" | "eval"}})``.

    Raises:
        ValueError: no recording, more values than the mode holds, bad ``dev_values``,
            too few recordings of a value to divide (by-recording).
    """
    if not recs:
        raise ValueError(f"no recording of at least {cfg.clip_seconds:g} s under {cfg.input}")
    values = sorted({r.value for r in recs})
    mode = cfg.parts if cfg.parts != "auto" else ("by-value" if len(values) >= 2 else "by-recording")
    if mode == "by-value":
        if not 2 <= len(values) <= 6:
            raise ValueError(f"--parts by-value needs 2 to 6 section values (3 development + 3 reported sections "
                             f"at most); --section-level {cfg.section_level} gives {len(values)}: {values}")
        dev = list(cfg.dev_values) if cfg.dev_values else values[:len(values) - min(3, len(values) - 1)]
        unknown = [v for v in dev if v not in values]
        if unknown or len(set(dev)) != len(dev):
            raise ValueError(f"--dev-values {dev}: unknown or repeated values {unknown}; the values are {values}")
        rep = [v for v in values if v not in dev]
        if not (1 <= len(dev) <= 3 and 1 <= len(rep) <= 3):
            raise ValueError(f"--dev-values {dev} leaves {rep} to report: each part needs 1 to 3 section values")
        sections = {i: {"value": v, "part": "dev"} for i, v in enumerate(dev)}
        sections.update({3 + i: {"value": v, "part": "eval"} for i, v in enumerate(rep)})
        where = {s["value"]: k for k, s in sections.items()}
        for r in recs:
            r.section, r.part = where[r.value], sections[where[r.value]]["part"]
        return mode, sections
    if len(values) > 3 or cfg.dev_values:
        raise ValueError(f"--parts by-recording takes at most 3 section values and no --dev-values; got {values}")
    sections = {}
    for i, v in enumerate(values):
        sections[i], sections[3 + i] = {"value": v, "part": "dev"}, {"value": v, "part": "eval"}
        for label in (0, 1):
            group = [r for r in recs if r.value == v and r.label == label]
            if len(group) < 2:
                raise ValueError(f"section value {v!r} has {len(group)} {('normal', 'anomalous')[label]} recording(s): "
                                 "--parts by-recording divides them between the two parts and needs 2 or more")
            to_eval = set(_rng(cfg, "part", v, label).permutation(len(group))[:_share(len(group), cfg.eval_share)])
            for j, r in enumerate(group):
                r.section, r.part = (3 + i, "eval") if j in to_eval else (i, "dev")
    return mode, sections


def split_recordings(recs: list[Recording], cfg: PrepareConfig, sections: dict[int, dict]) -> None:
    """Set each recording's ``split`` (by recording, seeded); anomalous recordings are all test.

    Raises:
        ValueError: a section with fewer than 2 normal recordings or no anomalous one (named).
    """
    for s, info in sections.items():
        normal = [r for r in recs if r.section == s and r.label == 0]
        n_anom = sum(r.section == s and r.label == 1 for r in recs)
        if len(normal) < 2 or n_anom < 1:
            raise ValueError(f"section {s:02d} (value {info['value']!r}, {info['part']} part) has {len(normal)} normal "
                             f"and {n_anom} anomalous recording(s) of at least {cfg.clip_seconds:g} s; it needs 2 "
                             "normal ones (one to train, one to test) and 1 anomalous one")
        test = set(_rng(cfg, "split", s).permutation(len(normal))[:_share(len(normal), cfg.test_share)])
        for j, r in enumerate(normal):
            r.split = "test" if j in test else "train"
    for r in recs:
        if r.label == 1:
            r.split = "test"


def name_clips(recs: list[Recording], cfg: PrepareConfig, sections: dict[int, dict]) -> dict[int, dict[str, int]]:
    """Set each recording's clip paths (relative to the output root); returns the labels of the
    anonymised clips of each reported section, ``{section: {file name: label}}`` (the ground truth)."""
    m = cfg.machine_type
    gt: dict[int, dict[str, int]] = {}
    for s, info in sections.items():
        ds = "dev_data" if info["part"] == "dev" else "eval_data"
        mine = [(i, r) for i, r in enumerate(recs) if r.section == s]
        counters: dict[tuple[str, int], int] = {}
        for i, r in mine:
            r.clips = []
            for k in range(r.n_clips):
                split = "train" if r.split == "train" else "test"
                n = counters[(split, r.label)] = counters.get((split, r.label), -1) + 1
                label = ("normal", "anomaly")[r.label]
                sub = "train" if split == "train" else "source_test"
                r.clips.append(f"{ds}/{m}/{sub}/section_{s:02d}_source_{split}_{label}_{n:04d}_rec_{i:04d}_clip_{k}.wav")
        if info["part"] == "eval":  # anonymise the reported test clips, in a seeded random order
            test = [(r, k) for _, r in mine if r.split == "test" for k in range(r.n_clips)]
            order = _rng(cfg, "anonymise", s).permutation(len(test))
            gt[s] = {}
            for pos, (r, k) in enumerate(test):
                name = f"section_{s:02d}_source_test_{int(order[pos]):04d}.wav"
                r.clips[k] = f"{ds}/{m}/source_test/{name}"
                gt[s][name] = r.label
    return gt


def plan_outliers(cfg: PrepareConfig) -> tuple[list[tuple[str, str]], dict]:
    """The other machine types' training clips to place: ``[(source path, relpath under out)]`` and
    the manifest's ``outliers`` record (None-like empty plan without ``--outliers``).

    Raises:
        FileNotFoundError / ValueError: the root is missing or has no clip; an asked type is
            absent; the prepared type is among them; two clips would get the same name.
    """
    if cfg.outliers is None:
        return [], {}
    from .config import DEV_SECTIONS
    from .data import index, protocol_clips
    from .provenance import find_synth_manifest

    root = Path(cfg.outliers).expanduser()
    with warnings.catch_warnings():  # unlabelled evaluation clips do not matter: only training clips are used
        warnings.simplefilter("ignore", UserWarning)
        train = protocol_clips(index(root), "train")
    present = sorted(train["machine"].unique())
    types = list(cfg.outlier_types) if cfg.outlier_types else [t for t in present if t != cfg.machine_type]
    if cfg.machine_type in types:
        raise ValueError(f"--machine-type {cfg.machine_type!r} is also an outlier type of {root}: choose another "
                         "name for the prepared type or leave that type out of --outlier-types")
    missing = [t for t in types if t not in present]
    if missing or not types:
        raise ValueError(f"outlier root {root}: no training clips of {missing or 'any other type'}; it holds {present}")
    plan, counts = [], {}
    for (m, s), g in train[train["machine"].isin(types)].groupby(["machine", "section"], sort=True):
        g = g.sort_values("path")
        if cfg.outlier_clips_per_section is not None and len(g) > cfg.outlier_clips_per_section:
            keep = _rng(cfg, "outliers", m, int(s)).choice(len(g), cfg.outlier_clips_per_section, replace=False)
            g = g.iloc[np.sort(keep)]
        for path, ds in zip(g["path"], g["dataset"]):
            ds = ds if ds in ("dev_data", "eval_data") else ("dev_data" if int(s) in DEV_SECTIONS else "eval_data")
            plan.append((path, f"{ds}/{m}/train/{Path(path).name}"))
        counts[m] = counts.get(m, 0) + len(g)
    dests = [d for _, d in plan]
    if len(set(dests)) != len(dests):
        dup = next(d for d in dests if dests.count(d) > 1)
        raise ValueError(f"outlier root {root}: two training clips would both become {dup}")
    synth = find_synth_manifest(root)
    record = {"root_name": root.resolve().name, "types": types, "clips": counts, "link": cfg.outlier_link,
              "clips_per_section": cfg.outlier_clips_per_section, "synthetic": synth is not None,
              "source_note": (synth or {}).get("note", "a DCASE-layout root (see its own manifest)"),
              "source_identity": {k: synth.get(k) for k in ("generator_version", "seed", "size")} if synth else None,
              "role": "negatives of the second cross-entropy (outlier exposure): training clips only"}
    return plan, record


# --- identity, rerun rules ------------------------------------------------------------


def _fingerprint(items: list) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()


def identity(cfg: PrepareConfig, classes: list[dict], recs: list[Recording], outliers: list[tuple[str, str]]) -> dict:
    """What the output depends on: settings, the resolved classes and the input's and outliers'
    fingerprints (relative path and size of every file; never absolute paths, so a moved input
    still resumes)."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("input", "out", "outliers", "outlier_link",
                                                                   "normal", "anomaly")}
    settings["dev_values"] = list(cfg.dev_values) if cfg.dev_values else None
    settings["outlier_types"] = list(cfg.outlier_types) if cfg.outlier_types else None
    return {"format_version": FORMAT_VERSION, "settings": settings, "classes": classes,
            "input_fingerprint": _fingerprint([[r.source, r.size, r.frames, r.sample_rate, r.channels] for r in recs]),
            "outliers_fingerprint": _fingerprint([[d, Path(p).stat().st_size] for p, d in outliers])}


def _existing_identity(out: Path) -> tuple[dict | None, str]:
    for name, state in ((MANIFEST_NAME, "finished"), (PARTIAL_NAME, "partial")):
        f = out / name
        if f.is_file():
            try:
                old = json.loads(f.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, ValueError) as err:
                raise ValueError(f"{f} is not valid JSON ({err}); delete {out} or choose another --out") from None
            return old.get("identity"), state
    return None, "none"


def check_out(cfg: PrepareConfig, ident: dict, overwrite: bool) -> str:
    """What to do with ``out``: ``"new"``, ``"up to date"``, ``"resume"`` or ``"overwrite"``.

    Raises:
        FileExistsError: ``out`` holds another output (without ``overwrite``: the differing
            parts are named) or data this command did not write (never touched).
        ValueError: ``out`` lies inside a class folder or a synthetic set (its results would
            be labelled synthetic).
    """
    from .provenance import find_synth_manifest

    out = Path(cfg.out).expanduser().resolve()
    for c in ident["classes"]:
        folder = (Path(cfg.input).expanduser() / c["folder"]).resolve()
        if out == folder or folder in out.parents:
            raise ValueError(f"--out {out} lies inside class folder {folder}: its clips would become recordings")
    if find_synth_manifest(out) is not None:
        raise ValueError(f"--out {out} lies in a minasd synthetic set: results on it would be labelled synthetic; "
                         "choose a folder outside it")
    old, state = _existing_identity(out)
    if old is None:
        ours = [out / d for d in _WRITTEN if (out / d).exists() and any((out / d).iterdir())]
        if ours:
            raise FileExistsError(f"{ours[0]} exists but {out} has no {MANIFEST_NAME}: not written by minasd prepare "
                                  "(real data?); refusing to touch it: choose another --out")
        return "new"
    if old == ident:
        return "up to date" if state == "finished" else "resume"
    if overwrite:
        return "overwrite"
    diff = [k for k in ident if old.get(k) != ident[k]]
    diff += [f"settings.{k}" for k in ident["settings"] if (old.get("settings") or {}).get(k) != ident["settings"][k]]
    raise FileExistsError(f"{out} holds data prepared with other settings or input (differs in: {', '.join(diff)}); "
                          "rerun with --overwrite to replace it, or choose another --out")


def _clear(out: Path) -> None:
    """Delete what this command wrote under ``out`` (only called for a root holding its manifest or marker)."""
    for d in _WRITTEN:
        shutil.rmtree(out / d, ignore_errors=True)
    for name in (MANIFEST_NAME, PARTIAL_NAME, CLIPS_NAME):
        (out / name).unlink(missing_ok=True)


# --- writing ----------------------------------------------------------------------------


def read_recording(path: str | os.PathLike, channel: str = "mean") -> np.ndarray:
    """A recording as float32 mono at 16 kHz: channels averaged (or channel ``int(channel)`` of a
    multi-channel file), resampled with ``resample_poly`` at the exact ratio.
    Shape ``(output_samples(frames, rate),)``.

    Raises:
        ValueError: unreadable, a channel it lacks, or non-finite samples (the file named).
    """
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (frames, channels)
    except (RuntimeError, OSError, sf.SoundFileError) as err:
        raise ValueError(f"cannot read audio file {path}: {err}") from None
    if channel == "mean":
        wave = data.mean(axis=1, dtype=np.float64)
    else:  # a mono file is used as it is; find_recordings checked that the others have the channel
        c = int(channel) if data.shape[1] > 1 else 0
        if c >= data.shape[1]:
            raise ValueError(f"audio file {path} has {data.shape[1]} channels; --channel {channel} does not exist")
        wave = data[:, c].astype(np.float64)
    if not np.isfinite(wave).all():
        raise ValueError(f"audio file {path} contains NaN or infinite samples")
    if rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        ratio = Fraction(SAMPLE_RATE, rate)
        wave = resample_poly(wave, ratio.numerator, ratio.denominator)
    return wave.astype(np.float32)


def _write_recording(cfg: PrepareConfig, rec: Recording, out: Path) -> int:
    """Write the missing clips of one recording; returns how many were written."""
    import soundfile as sf

    todo = [k for k, rel in enumerate(rec.clips) if not (out / rel).is_file()]
    if not todo:
        return 0
    wave = read_recording(Path(cfg.input).expanduser() / rec.source, cfg.channel)
    n = cfg.clip_samples
    top = 1.0 - 1.0 / 32768  # the largest 16-bit value
    clipped = int(((wave < -1.0) | (wave > top)).sum())
    if clipped:
        warnings.warn(f"recording {rec.source}: {clipped} samples outside [-1, 1) after resampling were clipped",
                      UserWarning, stacklevel=2)
    for k in todo:
        buf = io.BytesIO()
        sf.write(buf, np.clip(wave[k * n:(k + 1) * n], -1.0, top), SAMPLE_RATE, subtype="PCM_16", format="WAV")
        atomic_write_bytes(out / rec.clips[k], buf.getvalue())
    return len(todo)


def _place(src: str, dst: Path, how: str) -> str:
    """Put ``src`` at ``dst`` atomically as a hard link, symbolic link or copy; returns what was done
    (a hard link across file systems falls back to a copy)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    done = how
    if how == "hard":
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            done = "copy"
    elif how == "symbolic":
        os.symlink(os.path.abspath(src), tmp)
    else:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return done


def _clips_csv(cfg: PrepareConfig, recs: list[Recording], sections: dict[int, dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["relpath", "machine", "section", "part", "split", "label", "anomaly_kind", "source", "start_s"])
    rows = [[rel, cfg.machine_type, r.section, sections[r.section]["part"], r.split, r.label,
             "normal" if r.label == 0 else r.kind, r.source, round(k * cfg.clip_seconds, 3)]
            for r in recs for k, rel in enumerate(r.clips)]
    w.writerows(sorted(rows))
    return buf.getvalue()


def _counts(recs: list[Recording], sections: dict[int, dict]) -> dict:
    out = {}
    for s, info in sorted(sections.items()):
        mine = [r for r in recs if r.section == s]
        groups = {"train_normal": [r for r in mine if r.split == "train"],
                  "test_normal": [r for r in mine if r.split == "test" and r.label == 0],
                  "test_anomaly": [r for r in mine if r.label == 1]}
        out[f"{s:02d}"] = {"value": info["value"], "part": info["part"],
                           **{f"{k}_recordings": len(v) for k, v in groups.items()},
                           **{f"{k}_clips": sum(r.n_clips for r in v) for k, v in groups.items()}}
    return out


def _manifest(cfg, ident, mode, sections, recs, skipped, outliers, placed) -> dict:
    from . import __version__
    from .io_utils import git_commit

    return {
        "kind": "minasd.prepare", "identity": ident, "note": PREPARE_NOTE, "synthetic": False,
        "machine_type": cfg.machine_type, "input_name": Path(cfg.input).expanduser().resolve().name,
        "sample_rate": SAMPLE_RATE, "clip_seconds": cfg.clip_seconds, "domains": ["source"],
        "choices": {"channels": "averaged" if cfg.channel == "mean" else f"channel {cfg.channel}",
                    "resampling": "scipy.signal.resample_poly at the exact rational ratio",
                    "tail": "the part shorter than a clip at each recording's end is dropped",
                    "short_recordings": "a recording shorter than one clip is skipped (listed under skipped)",
                    "format": "16-bit PCM WAV", "parts": mode,
                    "split": "by recording, per section; anomalous recordings only in test",
                    "reported_sections": "anonymised, labels in ground_truth/"},
        "sections": {f"{s:02d}": v for s, v in sorted(sections.items())},
        "counts": _counts(recs, sections),
        "recordings": [{"number": i, "source": r.source, "class": r.kind, "label": r.label, "value": r.value,
                        "section": r.section, "part": r.part, "split": r.split, "sample_rate": r.sample_rate,
                        "channels": r.channels, "seconds": round(r.frames / r.sample_rate, 3), "clips": r.clips}
                       for i, r in enumerate(recs)],
        "skipped": skipped,
        "outliers": dict(outliers, placed_as=sorted(set(placed))) if outliers else None,
        "files": {"clips_table": CLIPS_NAME, "ground_truth_dir": GROUND_TRUTH_DIR},
        "minasd_version": __version__, "git_commit": git_commit(),
    }


def prepare(cfg: PrepareConfig, overwrite: bool = False, dry_run: bool = False, progress: bool = True
            ) -> PrepareOutcome:
    """Write ``cfg.input``'s recordings as a DCASE 2021 Task 2 data root under ``cfg.out``.

    Args:
        cfg: the settings.
        overwrite: replace an output prepared with other settings or input.
        dry_run: plan and check only; write nothing.
        progress: show a tqdm bar.

    Returns:
        A :class:`PrepareOutcome`.

    Raises:
        FileNotFoundError, FileExistsError, ValueError: bad input or a refused output; the
            message names the file or folder and the fix.
    """
    _check_config(cfg)
    classes = find_classes(cfg)
    recs, skipped = find_recordings(cfg, classes)
    mode, sections = assign_sections(recs, cfg)
    split_recordings(recs, cfg, sections)
    gt = name_clips(recs, cfg, sections)
    outliers, out_record = plan_outliers(cfg)
    ident = identity(cfg, classes, recs, outliers)
    out = Path(cfg.out).expanduser()
    manifest = _manifest(cfg, ident, mode, sections, recs, skipped, out_record, [])
    action = check_out(cfg, ident, overwrite)
    if dry_run:
        what = {"new": "write a new root", "resume": "resume an interrupted run", "up to date": "do nothing (up to date)",
                "overwrite": "replace the output prepared with other settings"}[action]
        return PrepareOutcome(out, f"dry run: would {what}", 0, manifest)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        action = check_out(cfg, ident, overwrite)  # again, under the lock
        expected = [c for r in recs for c in r.clips] + [d for _, d in outliers]
        if action == "up to date" and all((out / c).is_file() for c in expected):
            return PrepareOutcome(out, "up to date", 0, json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8")))
        if action == "overwrite":
            _clear(out)
        (out / MANIFEST_NAME).unlink(missing_ok=True)
        atomic_write_json(out / PARTIAL_NAME, {"kind": "minasd.prepare.partial", "identity": ident})
        for d in _WRITTEN:
            for stale in (out / d).glob("**/.*.tmp"):
                stale.unlink(missing_ok=True)
        written, placed = _write_all(cfg, recs, outliers, out, progress)
        for s, labels in gt.items():
            text = "".join(f"{name},{lab}\n" for name, lab in sorted(labels.items()))
            atomic_write_text(out / GROUND_TRUTH_DIR / f"ground_truth_{cfg.machine_type}_section_{s:02d}_source_test.csv",
                              text)
        atomic_write_text(out / CLIPS_NAME, _clips_csv(cfg, recs, sections))
        manifest = _manifest(cfg, ident, mode, sections, recs, skipped, out_record, placed)
        atomic_write_json(out / MANIFEST_NAME, manifest)
        (out / PARTIAL_NAME).unlink(missing_ok=True)
    return PrepareOutcome(out, "written" if action in ("new", "overwrite") else "resumed", written, manifest)


def _write_all(cfg, recs, outliers, out: Path, progress: bool) -> tuple[int, list[str]]:
    from .progress import tqdm

    written, placed = 0, []
    for r in tqdm(recs, desc=f"prepare {cfg.machine_type} -> {out}", unit="rec", disable=not progress):
        written += _write_recording(cfg, r, out)
    for src, rel in tqdm(outliers, desc="outlier clips", unit="clip", disable=not progress or not outliers):
        dst = out / rel
        if dst.is_file():  # placed by an earlier run: say how
            placed.append("symbolic" if dst.is_symlink() else "hard" if os.path.samefile(src, dst) else "copy")
            continue
        placed.append(_place(src, dst, cfg.outlier_link))
        written += 1
    return written, placed


def _check_config(cfg: PrepareConfig) -> None:
    if not re.match(_MACHINE, cfg.machine_type):
        raise ValueError(f"--machine-type {cfg.machine_type!r}: use letters, digits and _.+- (a folder name)")
    if cfg.clip_seconds < SEGMENT_SECONDS:
        raise ValueError(f"--clip-seconds {cfg.clip_seconds:g}: clips need at least one {SEGMENT_SECONDS:g} s segment")
    for name in ("test_share", "eval_share"):
        if not 0.0 < getattr(cfg, name) < 1.0:
            raise ValueError(f"--{name.replace('_', '-')} must lie in (0, 1), got {getattr(cfg, name)}")
    if cfg.parts not in PARTS or cfg.outlier_link not in LINKS:
        raise ValueError(f"--parts must be one of {PARTS} and --outlier-link one of {LINKS}")
    if cfg.channel != "mean" and not cfg.channel.isdigit():
        raise ValueError(f"--channel {cfg.channel!r}: 'mean' or a channel index (0, 1, ...)")
    if cfg.outlier_clips_per_section is not None and cfg.outlier_clips_per_section < 1:
        raise ValueError("--outlier-clips-per-section must be >= 1")


def read_prepare_manifest(root: str | os.PathLike) -> dict:
    """The manifest of a prepared root.

    Raises:
        FileNotFoundError: none (named) under ``root``.
    """
    f = Path(root) / MANIFEST_NAME
    if not f.is_file():
        raise FileNotFoundError(f"{f} not found: {root} is not a finished `minasd prepare` output")
    return json.loads(f.read_text(encoding="utf-8"))


def describe(manifest: dict) -> str:
    """The sections of a manifest as a small text table (what ``minasd prepare`` prints)."""
    lines = [f"{'section':>7} {'part':>4} {'value':>16} {'train rec/clips':>16} {'test normal':>12} {'test anomaly':>13}"]
    for s, c in manifest["counts"].items():
        lines.append(f"{s:>7} {c['part']:>4} {c['value'][:16]:>16} "
                     f"{c['train_normal_recordings']:>7}/{c['train_normal_clips']:<8} "
                     f"{c['test_normal_recordings']:>4}/{c['test_normal_clips']:<7} "
                     f"{c['test_anomaly_recordings']:>5}/{c['test_anomaly_clips']:<7}")
    if manifest["skipped"]:
        lines.append(f"skipped (shorter than one clip): {len(manifest['skipped'])} recording(s), "
                     f"e.g. {manifest['skipped'][0]['source']}")
    if manifest["outliers"]:
        o = manifest["outliers"]
        kind = "synthetic" if o["synthetic"] else "not synthetic"
        lines.append(f"outliers from {o['root_name']} ({kind}): " + ", ".join(f"{t} {n}" for t, n in o["clips"].items()))
    return "\n".join(lines)


# --- command line ----------------------------------------------------------------------


def add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``minasd prepare`` (Book: the real-data chapter)."""
    parser.add_argument("--input", required=True, help="folder holding the class folders")
    parser.add_argument("--out", required=True, help="output data root (DCASE 2021 layout)")
    parser.add_argument("--machine-type", required=True, help="name of the prepared machine type, e.g. uav")
    parser.add_argument("--normal", nargs="+", required=True, help="normal class folders (names or globs under --input)")
    parser.add_argument("--anomaly", nargs="+", required=True, help="anomalous class folders (names or globs)")
    parser.add_argument("--section-level", type=int, default=0,
                        help="folder level of the section value: L>=1 the L-th folder below the class folder, "
                             "L<=-1 counted up from the file (-1 = its folder), 0 one section (default 0)")
    parser.add_argument("--parts", choices=PARTS, default="auto",
                        help="development/reported parts: by-value (values divided; default with 2-6 values) or "
                             "by-recording (each value in both, recordings divided; default with 1 value)")
    parser.add_argument("--dev-values", nargs="+", default=None,
                        help="section values of the development part, sections 00.. in this order (by-value; "
                             "default: all but the last min(3, n-1) of the n sorted values, so that "
                             "03-05 are filled first)")
    parser.add_argument("--test-share", type=float, default=0.3,
                        help="share of each section's normal recordings in the test split (default 0.3)")
    parser.add_argument("--eval-share", type=float, default=0.5,
                        help="by-recording: share of each value's recordings in the reported part (default 0.5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the splits and the anonymised order (default 0)")
    parser.add_argument("--clip-seconds", type=float, default=CLIP_SECONDS, help=f"clip length (default {CLIP_SECONDS:g})")
    parser.add_argument("--channel", default="mean", help="'mean' (default: channels averaged) or a channel index")
    parser.add_argument("--outliers", default=None,
                        help="DCASE-layout root whose other machine types' training clips become the negatives "
                             "(e.g. a `minasd synth` set)")
    parser.add_argument("--outlier-types", nargs="+", default=None, help="those types (default: all but --machine-type)")
    parser.add_argument("--outlier-clips-per-section", type=int, default=None,
                        help="at most this many clips per outlier type and section (seeded; default all)")
    parser.add_argument("--outlier-link", choices=LINKS, default="hard",
                        help="hard links (default; a copy across file systems), symbolic links or copies")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    parser.add_argument("--overwrite", action="store_true", help="replace an output prepared with other settings")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> PrepareConfig:
    """The :class:`PrepareConfig` of parsed ``minasd prepare`` arguments."""
    tup = lambda v: tuple(v) if v else None  # noqa: E731
    return PrepareConfig(
        input=args.input, out=args.out, machine_type=args.machine_type, normal=tuple(args.normal),
        anomaly=tuple(args.anomaly), section_level=args.section_level, parts=args.parts,
        dev_values=tup(args.dev_values), test_share=args.test_share, eval_share=args.eval_share, seed=args.seed,
        clip_seconds=args.clip_seconds, channel=str(args.channel), outliers=args.outliers,
        outlier_types=tup(args.outlier_types), outlier_clips_per_section=args.outlier_clips_per_section,
        outlier_link=args.outlier_link)


def run_prepare(args: argparse.Namespace) -> int:
    """Run ``minasd prepare``: prints the plan or what was written.  Returns 0."""
    res = prepare(config_from_args(args), overwrite=args.overwrite, dry_run=args.dry_run, progress=not args.quiet)
    m = res.manifest
    n_clips = sum(len(r["clips"]) for r in m["recordings"])
    print(f"{m['machine_type']}: {len(m['recordings'])} recordings -> {n_clips} clips of {m['clip_seconds']:g} s "
          f"at {m['sample_rate']} Hz, parts {m['choices']['parts']}; {res.status} ({res.root}"
          + (f", {res.written} files written)" if not args.dry_run else ")"))
    print(describe(m))
    return 0
