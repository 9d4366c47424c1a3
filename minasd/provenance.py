"""Which data a root holds, and the words every table, figure and command uses for it (Book: chapter 1).

A data root is one of three things, and :func:`data_manifest` says which:

* **synthetic**: ``minasd synth`` left its manifest (``minasd_synth.json``) in the root or
  up to two folders above it, or the marker of an interrupted set
  (``minasd_synth.partial.json``); :func:`find_synth_manifest` reads it;
* **dcase2021**: ``minasd download`` left its record in the root
  (:func:`minasd.download.download_manifest`) and every archive came from Zenodo's DCASE
  2021 Task 2 records with its published MD5: the released files;
* **prepared**: ``minasd prepare`` left its manifest (``minasd_prepare.json``) in the root:
  one's own recordings cut into the layout (:mod:`minasd.prepare`), named by the input folder,
  with the origin of the outlier types placed beside them (synthetic or not);
* **dcase_layout**: anything else (another generator's set, a copy of unknown origin):
  nothing says it is the released data, and no caption calls it real.

Its record (keys ``kind``, ``synthetic``, ``note`` and what the kind adds) is what the
results manifests and ``<run>/eval/results.json`` store as ``data``; run.json stores the
form of :func:`run_data_record`.  Every caption names the data through
:func:`data_caption` (or :func:`data_label` for a root, :func:`results_label` for results
of ``minasd experiment``), so a reader always knows whether a number came from the
synthetic factory or from real DCASE recordings.

This module reads the synthetic set's manifest file itself and imports neither the
generator (:mod:`minasd.synth`) nor torch: the training core and every caption can ask it
cheaply.  (``synth.find_manifest`` does the same lookup and could later call
:func:`find_synth_manifest`; the file names below must stay those of :mod:`minasd.synth`.)
"""
from __future__ import annotations

import ast
import hashlib
import io
import json
import tokenize
from pathlib import Path
from typing import Collection, Mapping, Sequence

from .download import download_manifest
from .io_utils import sha256_file

#: The finished synthetic set's manifest and an interrupted set's marker (the names of :mod:`minasd.synth`).
SYNTH_MANIFEST_NAME = "minasd_synth.json"
SYNTH_PARTIAL_NAME = "minasd_synth.partial.json"
#: The manifest of a root written by ``minasd prepare`` (the name of :mod:`minasd.prepare`).
PREPARE_MANIFEST_NAME = "minasd_prepare.json"

#: What :func:`data_manifest` says of a root known to hold the released DCASE 2021 files.
REAL_DCASE_NOTE = "real DCASE 2021 Task 2 data (downloaded from Zenodo and MD5-checked by minasd download)"
#: ... and of a root of unknown origin (no synthetic manifest, no download manifest).
UNKNOWN_DATA_NOTE = "DCASE layout, no minasd synth manifest (provenance unknown)"

#: The synthetic generator's files (code, then knobs) in the package, in the order their fingerprint hashes them.
GENERATOR_FILES: tuple[str, ...] = ("synth.py", "synth_machines.py", "synth_scenes.py", "synth_knobs.json")
#: Generator versions made before the calibration rule of issue 23 (uncalibrated; labelled synthetic as any other).
PRE_CALIBRATION_GENERATORS: tuple[str, ...] = ("1.0", "1.1", "1.2")
#: The record of frozen generator versions, ``{version: {"sha256": fingerprint, "report": path}}``, written
#: when a calibrated version is committed (``minasd calibrate``, docs/factory_v2_design.md section 3).
FROZEN_FILE = Path(__file__).resolve().with_name("synth_frozen.json")

#: The encoder of the paper; results of any other backbone are labelled as a stand-in.
PAPER_BACKBONE = "efficientnet_b0"


# --------------------------------------------------------------------------------------
# what a root holds
# --------------------------------------------------------------------------------------


def find_synth_manifest(path: str | Path, levels: int = 2) -> dict | None:
    """The synthetic-set manifest that covers ``path``, or None for data that is not synthetic.

    Looks in ``path`` and up to ``levels`` folders above it (a set may be indexed through
    ``<set>/dev_data`` or ``<set>/dev_data/fan``) for the finished manifest or, failing
    that, the marker of an interrupted set.  Returns the file's content plus
    ``manifest_path`` and ``finished`` (False for an interrupted set).

    Raises:
        ValueError: a manifest or marker that is not valid JSON (named, with the fix).

    >>> find_synth_manifest("/nonexistent") is None
    True
    """
    here = Path(path).resolve()
    for folder in [here, *here.parents][: levels + 1]:
        for name, finished in ((SYNTH_MANIFEST_NAME, True), (SYNTH_PARTIAL_NAME, False)):
            f = folder / name
            if f.is_file():
                return {**_read_synth_json(f, finished), "manifest_path": str(f), "finished": finished}
    return None


def _read_synth_json(f: Path, finished: bool) -> dict:
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        what = "manifest" if finished else "marker"
        raise ValueError(f"synthetic-set {what} {f} is not valid JSON ({err}); regenerate the set") from None


def data_manifest(root: str | Path) -> dict:
    """What is known of the data root: keys ``kind``, ``synthetic`` and ``note`` always.

    ``kind`` is ``"synthetic"`` (adds seed, size, generator version, machine types and
    ``finished``; the note says "(incomplete set)" for an interrupted one), ``"dcase2021"``
    (adds the machine types and parts downloaded), ``"prepared"`` (adds the prepared type,
    the input folder's name and the outliers' origin) or ``"dcase_layout"`` (module docstring).
    This record is the ``data`` of the results manifests and of ``<run>/eval/results.json``.

    >>> data_manifest("/nonexistent")["kind"]
    'dcase_layout'
    """
    m = find_synth_manifest(root)
    if m is not None:
        note = m.get("note", "synthetic data - not DCASE") + ("" if m["finished"] else " (incomplete set)")
        return {"kind": "synthetic", "synthetic": True, "seed": m.get("seed"), "size": m.get("size"),
                "generator_version": m.get("generator_version"), "machine_types": m.get("machine_types"),
                "finished": m["finished"], "note": note}
    dl = download_manifest(root)
    if dl is not None and dl.get("zenodo"):
        return {"kind": "dcase2021", "synthetic": False, "machine_types": dl["machine_types"], "parts": dl["parts"],
                "note": REAL_DCASE_NOTE}
    prepared = _prepared_record(root)
    if prepared is not None:
        return prepared
    return {"kind": "dcase_layout", "synthetic": False, "note": UNKNOWN_DATA_NOTE}


def _prepared_record(root: str | Path) -> dict | None:
    """:func:`data_manifest`'s record of a root written by ``minasd prepare``, or None.

    Raises:
        ValueError: the manifest is there but unreadable (named).
    """
    f = Path(root) / PREPARE_MANIFEST_NAME
    if not f.is_file():
        return None
    try:
        m = json.loads(f.read_text(encoding="utf-8"))
        machine, source = m["machine_type"], m["input_name"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{f}: not a readable minasd prepare manifest ({e})") from e
    out = m.get("outliers") or {}
    if out:
        ident = out.get("source_identity") or {}
        origin = (f"synthetic, minasd.synth v{ident.get('generator_version')} size {ident.get('size')}"
                  if out.get("synthetic") else "not synthetic")
        outliers = f"; outlier types {', '.join(out.get('types', []))} from {out.get('root_name')} ({origin})"
    else:
        outliers = ""
    note = f"recordings of {source!r} as machine type {machine!r}, prepared by minasd prepare (not DCASE){outliers}"
    dev = sorted(int(k) for k, v in (m.get("sections") or {}).items() if isinstance(v, dict) and v.get("part") == "dev")
    return {"kind": "prepared", "synthetic": False, "machine_type": machine, "input_name": source,
            "outliers_synthetic": out.get("synthetic") if out else None, "dev_sections": dev, "note": note}


def run_data_record(root: str | Path) -> dict:
    """The ``data`` of a training run's run.json: :func:`data_manifest`'s record, except that a
    synthetic set keeps its whole manifest under ``manifest`` (the form run.json has always had:
    ``{"kind": "synthetic", "synthetic": True, "manifest": {...}}``).

    >>> run_data_record("/nonexistent") == data_manifest("/nonexistent")
    True
    """
    m = find_synth_manifest(root)
    if m is None:
        return data_manifest(root)
    return {"kind": "synthetic", "synthetic": True, "manifest": {k: v for k, v in m.items() if k != "manifest_path"}}


# --------------------------------------------------------------------------------------
# the words of captions, titles and printed lines
# --------------------------------------------------------------------------------------

#: How a caption names synthetic data, by form (:func:`data_caption`).
SYNTHETIC_WORDS = {
    "short": "SYNTHETIC data",  # the chapters' source lines
    "line": "SYNTHETIC data, not DCASE",  # minasd evaluate's printed line
    "table": "SYNTHETIC (not DCASE; not comparable with the paper)",  # minasd experiment's text tables
    "label": "SYNTHETIC data (minasd.synth v{version}, size {size}, seed {seed}{incomplete}; not DCASE)",
    "summary": ("SYNTHETIC data (minasd.synth v{version}, size {size}{counts}; data seed {seed}; not DCASE), "
                "so never a reproduction of the paper's numbers"),
}


def data_kind_label(data: Mapping) -> str:
    """A caption's words for a data manifest that is not synthetic (:func:`data_manifest`).

    Only a ``"dcase2021"`` record is called real DCASE data; a ``"prepared"`` one is named by
    its own note (the recordings' folder and the outliers' origin); any other (also
    ``"real"``, which an earlier minasd wrote for every root without a synthetic manifest) is of
    unknown origin.

    >>> data_kind_label({"kind": "real", "synthetic": False})
    'DCASE layout, no minasd synth manifest (provenance unknown)'
    """
    if data.get("kind") == "prepared" and data.get("note"):
        return data["note"]
    return REAL_DCASE_NOTE if data.get("kind") == "dcase2021" else UNKNOWN_DATA_NOTE


def data_caption(data: Mapping, form: str = "label", counts: str = "", flag_incomplete: bool = True) -> str:
    """The words that name the data of a :func:`data_manifest` record in a caption.

    Synthetic data is named in one of the forms of :data:`SYNTHETIC_WORDS`; any other data by
    :func:`data_kind_label` whatever the form.

    Args:
        data: a :func:`data_manifest` record (as stored in a results manifest).
        form: ``"short"``, ``"line"``, ``"table"``, ``"label"`` or ``"summary"``.
        counts: the ``"summary"`` form's clip counts of the set's size (``": 60 training clips ..."``).
        flag_incomplete: the ``"label"`` form says ``INCOMPLETE set`` for an interrupted set
            (:func:`data_label` and :func:`results_label` do).

    >>> data_caption({"synthetic": True, "generator_version": "1.2", "size": "tiny", "seed": 5, "finished": False})
    'SYNTHETIC data (minasd.synth v1.2, size tiny, seed 5, INCOMPLETE set; not DCASE)'
    >>> data_caption({"kind": "dcase2021", "synthetic": False}, "short")
    'real DCASE 2021 Task 2 data (downloaded from Zenodo and MD5-checked by minasd download)'
    """
    if form not in SYNTHETIC_WORDS:
        raise ValueError(f"form must be one of {list(SYNTHETIC_WORDS)}, got {form!r}")
    if not data.get("synthetic"):
        return data_kind_label(data)
    incomplete = ", INCOMPLETE set" if flag_incomplete and data.get("finished") is False else ""
    return SYNTHETIC_WORDS[form].format(version=data.get("generator_version"), size=data.get("size"),
                                        seed=data.get("seed"), counts=counts, incomplete=incomplete)


def data_label(root: str | Path) -> str:
    """A one-line description of the data under ``root`` for captions and table titles (Book: chapter 1).

    >>> data_label("/nonexistent")  # no synthetic manifest, no download manifest: origin unknown
    'DCASE layout, no minasd synth manifest (provenance unknown): /nonexistent'
    """
    data = data_manifest(root)
    if not data["synthetic"]:
        return f"{data_kind_label(data)}: {root}"
    return data_caption(data, "label")


def backbone_label(backbone: str | None) -> str:
    """Caption words for an encoder: the paper's, or a stand-in said plainly.

    >>> backbone_label("mobilenetv3_small_050")
    "backbone mobilenetv3_small_050, a CPU stand-in, not the paper's EfficientNet-B0"
    """
    if not backbone or backbone in (PAPER_BACKBONE, "tf_efficientnet_b0"):
        return "backbone EfficientNet-B0 (the paper's)"
    return f"backbone {backbone}, a CPU stand-in, not the paper's EfficientNet-B0"


def _epochs_words(prov: Mapping, machine: str | None) -> str:
    """``epochs 4``, ``epochs 2-4 (runs differ)``, ``epochs 2 of 4 planned`` or ``epochs n/a``."""
    ep = prov.get("epochs", {})
    done = sorted({int(v) for m, per in ep.items() if machine in (None, m) for v in per.values() if v is not None})
    planned = prov.get("config", {}).get("epochs")
    if not done:
        words = "epochs n/a"
    elif len(done) == 1:
        words = f"epochs {done[0]}"
    else:
        words = f"epochs {done[0]}-{done[-1]} (runs differ)"
    return words + (f" of {planned} planned" if planned and done and max(done) < planned else "")


def results_label(loaded: dict, machine: str | None = None) -> str:
    """One caption line for results of ``minasd experiment``: data, scale, epochs, backbone, device.

    Args:
        loaded: :func:`minasd.studies.experiment.load_results` output.
        machine: restrict the epoch count to this machine type.

    Book: chapters 4-9.
    """
    prov = loaded["manifest"]["provenance"]
    what = data_caption(prov.get("data", {}), "label")
    overrides = prov.get("config", {}).get("train_overrides", {})
    backbone = backbone_label(overrides.get("backbone"))
    profile = f"profile {overrides['profile']}; " if overrides.get("profile") else ""
    seed = prov.get("config", {}).get("seed")
    seeds = f"; seed {seed}" if seed is not None else ""
    device = prov.get("device_name") or prov.get("device")
    return f"{what}; {profile}{_epochs_words(prov, machine)}; {backbone}{seeds}; device {device}"


# --------------------------------------------------------------------------------------
# the calibration freeze
# --------------------------------------------------------------------------------------


#: Top-level names of the generator files that say which generator is the default and how the
#: command line reads its arguments, not how a clip sounds: left out of the fingerprint, so that
#: making a frozen version the default is not a new version.
UNHASHED_NAMES: frozenset[str] = frozenset({"GENERATOR_VERSION", "add_synth_arguments", "run_synth"})


def source_text(text: str, drop: Collection[str] = UNHASHED_NAMES) -> str:
    """The part of a Python source that can change what it computes: without docstrings, comments,
    blank lines, trailing spaces and the top-level definitions named in ``drop``.

    Line based (the lines that :mod:`ast` reports), so the same on every Python version and line ending.

    >>> source_text('"Doc."\\nX = 1  # one\\n\\ndef f():\\n    "Doc."\\n    return X\\nGENERATOR_VERSION = "9"\\n')
    'X = 1\\ndef f():\\n    return X'
    """
    tree = ast.parse(text)
    lines = text.splitlines()
    cut: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str) and first.lineno != getattr(node, "lineno", 0)):
                cut.update(range(first.lineno, first.end_lineno + 1))
    for node in tree.body:
        targets = (node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign)
                   else [])
        names = {getattr(node, "name", None), *(getattr(t, "id", None) for t in targets)}
        if names & set(drop):
            start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            cut.update(range(start, node.end_lineno + 1))
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            lines[row - 1] = lines[row - 1][:col]
    return "\n".join(line.rstrip() for i, line in enumerate(lines, 1) if i not in cut and line.strip())


def file_digest(path: str | Path) -> str:
    """SHA-256 of a generator file as the fingerprint reads it: :func:`source_text` of a ``.py``
    file; of a JSON file its ``types`` (the knob values, not the notes beside them) in canonical form."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        text = source_text(text)
    elif path.suffix == ".json":
        data = json.loads(text)
        text = json.dumps(data.get("types", data) if isinstance(data, dict) else data, sort_keys=True,
                          separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def generator_fingerprint(folder: str | Path | None = None, names: Sequence[str] = GENERATOR_FILES,
                          knobs_file: str | Path | None = None) -> dict:
    """A digest of each generator file that exists in ``folder`` (default: the package) and one over all.

    Each file's digest is :func:`file_digest`: what the code computes and the knob values, so an
    edit of a docstring, a comment, the default version or the command line is not a new generator.

    Args:
        knobs_file: read in place of the folder's ``synth_knobs.json`` (the knobs a calibration used).

    Returns:
        ``{"files": {name: hex}, "sha256": hex}``; the combined hash is the SHA-256 of the lines
        ``"<name> <hex>\\n"`` in the order of ``names``.
    """
    folder = FROZEN_FILE.parent if folder is None else Path(folder)
    paths = {n: (Path(knobs_file) if knobs_file is not None and n == "synth_knobs.json" else folder / n) for n in names}
    files = {n: file_digest(f) for n, f in paths.items() if f.is_file()}
    combined = hashlib.sha256("".join(f"{n} {h}\n" for n, h in files.items()).encode()).hexdigest()
    return {"files": files, "sha256": combined}


def frozen_generators(path: str | Path = FROZEN_FILE) -> dict:
    """The frozen generator versions (:data:`FROZEN_FILE`): ``{}`` while none is frozen."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        frozen = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable JSON record of frozen generators ({err})") from err
    if not isinstance(frozen, dict) or not all(isinstance(v, dict) and "sha256" in v for v in frozen.values()):
        raise ValueError(f"{path}: expected {{version: {{\"sha256\": ..., \"report\": ...}}}}")
    return frozen


def require_calibrated(root: str | Path, frozen_file: str | Path = FROZEN_FILE) -> None:
    """Refuse the proposed method on a synthetic set whose generator is still being calibrated.

    Issue 23: the factory is calibrated on methods other than ours and frozen (committed with its
    report) *before* the proposed method sees it.  A set of a version made before that rule
    (:data:`PRE_CALIBRATION_GENERATORS`), real data and prepared recordings pass; a newer version
    passes only when :data:`FROZEN_FILE` holds it and the installed generator's files still have
    the fingerprint frozen with it (an edit after the freeze is a new version and a new calibration).

    Raises:
        ValueError: naming the root's manifest, the version and what to do.
    """
    manifest = find_synth_manifest(root)
    version = None if manifest is None else manifest.get("generator_version")
    if manifest is None or version in PRE_CALIBRATION_GENERATORS:
        return
    entry = frozen_generators(frozen_file).get(str(version))
    where = f"data root {Path(root)}: {manifest['manifest_path']} says generator {version}"
    if entry is None:
        raise ValueError(f"{where}: this generator version is not calibrated and frozen yet "
                         f"({Path(frozen_file).name} does not list it); the proposed method never sees a factory "
                         "before its calibration on other systems is committed (minasd calibrate; issue 23)")
    now = generator_fingerprint(Path(frozen_file).parent)["sha256"]
    if now != entry["sha256"]:
        raise ValueError(f"{where}: the installed generator's files changed after version {version} was frozen "
                         f"(sha256 {now[:12]} against {str(entry['sha256'])[:12]}); an edit is a new version "
                         "and a new calibration")
