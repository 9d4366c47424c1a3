"""The run folder: its names, its checks, its bookkeeping and its checkpoints (Book: chapter 4).

One training run lives in one folder (``minasd train --out DIR``), filled first by the
trainer and then by the evaluation::

    <run>/config.yaml        the TrainConfig (YAML)
    <run>/run.json           provenance and progress: machine type, sections, hparams, ablations,
                             seed, data (synthetic or real), version, commit, device, ... (:func:`begin_run_json`)
    <run>/split.json         {"train", "val", "other_train", "other_val"}: paths relative to data_root
    <run>/norm_stats.json    amplitude statistics of the target type (training split)
    <run>/log.jsonl          one JSON object per finished epoch
    <run>/checkpoints/last.pt, <run>/checkpoints/best.pt
    <run>/inlier/            h per section (minasd evaluate)
    <run>/eval/              detector.json, results.json, tables, DCASE files, cache (minasd evaluate)

This module is the one place that knows that layout (:class:`RunPaths` spells every file).  :func:`minasd.train.train` asks it
to prepare or resume the folder, to record the split, the log, ``run.json`` and the
checkpoints; :mod:`minasd.evaluate` and :class:`minasd.detector.Detector` ask it for the
names and checks of the files they need and load the model with :func:`load_model`.
Checkpoints hold plain data only and are read with ``weights_only=True`` onto the CPU
(:func:`load_checkpoint`, through :func:`minasd.model.load_torch_file`, the package's one
reader of torch files).

Resume and overwrite (``minasd train --resume`` / ``--overwrite``; :func:`prepare_run_dir`):

* an empty or new ``out_dir`` starts a fresh run;
* ``resume=True`` continues an unfinished run with the same configuration from
  ``checkpoints/last.pt`` (model, optimiser, scheduler, sampler, RNG, epoch, best value
  and the log; :func:`resume_fit`); the fields in :data:`RUNTIME_FIELDS` may differ, and
  so may the device settings derived from them (``run.json`` lists each session's in
  ``runtime_history``); with no run there yet, ``resume=True`` simply starts one;
* ``overwrite=True`` deletes the trainer's files (:data:`RUN_FILES`) and starts again;
* otherwise a run directory that holds a run (finished, unfinished, or with a different
  configuration) is refused with an error that says which flag to use.

Importing this module does not import torch (``minasd --help`` and the Detector's
module stay light); the functions that need it import it.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .io_utils import atomic_save_torch, atomic_write_json, atomic_write_text

#: Fields of TrainConfig that do not change what is trained: a run may be resumed with other values.
RUNTIME_FIELDS = ("out_dir", "device", "num_workers", "compile", "progress")
#: Files and folders the trainer writes in a run directory (``overwrite`` deletes exactly these).
RUN_FILES = ("config.yaml", "run.json", "split.json", "norm_stats.json", "log.jsonl", "checkpoints")
#: Folders and files the evaluation (:func:`minasd.evaluate.evaluate_run`) writes in a run directory.
EVAL_DIR = "eval"
INLIER_DIR = "inlier"
DETECTOR_FILE = "detector.json"
RESULTS_FILE = "results.json"
#: Version of ``eval/results.json`` and ``eval/detector.json``; bumped when keys change.
#: 2: DCASE files per domain (target-domain test clips included), ``n_target_test``,
#: ``checkpoint_sha256`` and ``heldout_excluded``; labels never taken from the cache.
EVAL_SCHEMA_VERSION = 2


@dataclass(frozen=True)
class RunPaths:
    """Where each file of a run folder lives (the layout above); the one place that spells it.

    >>> RunPaths(Path("runs/fan")).checkpoint("best").as_posix()
    'runs/fan/checkpoints/best.pt'
    """

    root: Path

    config = property(lambda self: self.root / "config.yaml")
    run_json = property(lambda self: self.root / "run.json")
    split = property(lambda self: self.root / "split.json")
    norm_stats = property(lambda self: self.root / "norm_stats.json")
    log = property(lambda self: self.root / "log.jsonl")
    inlier = property(lambda self: self.root / INLIER_DIR)
    eval = property(lambda self: self.root / EVAL_DIR)
    dcase = property(lambda self: self.root / EVAL_DIR / "dcase")
    scores = property(lambda self: self.root / EVAL_DIR / "scores.csv")
    sections = property(lambda self: self.root / EVAL_DIR / "sections.csv")
    cache = property(lambda self: self.root / EVAL_DIR / "cache")

    def checkpoint(self, which: str) -> Path:
        """``checkpoints/<which>.pt`` (``best`` or ``last``)."""
        return self.root / "checkpoints" / f"{which}.pt"


def run_paths(run_dir: str | os.PathLike) -> RunPaths:
    """The :class:`RunPaths` of ``run_dir``."""
    return RunPaths(Path(run_dir))


#: Keys every checkpoint holds (``best.pt`` and ``last.pt``).
CHECKPOINT_KEYS = ("model", "epoch", "model_spec")
#: Keys ``last.pt`` holds on top, to resume a run.
RESUME_KEYS = CHECKPOINT_KEYS + ("optimizer", "scheduler", "sampler", "torch_rng", "best_val", "best_epoch",
                                 "history", "config")


def resolve_device(name: str):
    """``"auto"`` -> CUDA if available else CPU; an explicit CUDA device without CUDA is an error.

    Returns a ``torch.device``.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available; use --device cpu")
    return dev


# --------------------------------------------------------------------------------------
# checks: which files a run folder must hold
# --------------------------------------------------------------------------------------


def need_file(run_dir: Path, rel: str, maker: str) -> Path:
    """``run_dir / rel``; a FileNotFoundError naming the command ``maker`` that writes it when absent."""
    p = run_dir / rel
    if not p.exists():
        raise FileNotFoundError(f"run folder {run_dir} lacks {rel}; it is written by `{maker}`")
    return p


def check_run_dir(run_dir: str | Path, which: str = "best") -> Path:
    """Raise FileNotFoundError naming the first trainer file the run folder lacks."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist (create it with `minasd train --out {run_dir}`)")
    for rel in ("run.json", "split.json", "norm_stats.json", f"checkpoints/{which}.pt"):
        need_file(run_dir, rel, f"minasd train --out {run_dir}")
    return run_dir


def check_evaluated_run(run_dir: str | Path) -> Path:
    """Raise FileNotFoundError naming the first file a Detector needs that the run folder lacks:
    the trainer's model and statistics, then the evaluation's h and thresholds."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    for rel in ("run.json", "norm_stats.json", "checkpoints/best.pt"):
        need_file(run_dir, rel, f"minasd train --out {run_dir}")
    for rel in (f"{INLIER_DIR}/manifest.json", f"{EVAL_DIR}/{DETECTOR_FILE}"):
        need_file(run_dir, rel, f"minasd evaluate --run {run_dir}")
    return run_dir


def _read_json(path: Path, what: str, fix: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {what}; {fix}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}): {what}; {fix}") from None


# --------------------------------------------------------------------------------------
# preparing a run folder: new, resumed or overwritten
# --------------------------------------------------------------------------------------


def prepare_run_dir(cfg, resume: bool, overwrite: bool) -> bool:
    """Make ``cfg.out_dir`` ready for the run of ``cfg`` and write its ``config.yaml``.

    Args:
        cfg: a :class:`minasd.train.TrainConfig` (``out_dir`` resolved).
        resume, overwrite: the flags of ``minasd train`` (module docstring).

    Returns:
        True when a run is to be resumed from ``checkpoints/last.pt``.
    """
    out = Path(cfg.out_dir)
    resuming = _check_flags(cfg, resume, overwrite)
    if resuming and not (out / "checkpoints" / "last.pt").exists():
        resuming = False  # interrupted before the first epoch ended: start from scratch
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.yaml")
    return resuming


def _comparable(cfg) -> dict:
    return {k: v for k, v in cfg.to_dict().items() if k not in RUNTIME_FIELDS}


def _check_flags(cfg, resume: bool, overwrite: bool) -> bool:
    """Check ``out_dir`` against the flags; returns True when a run is to be resumed."""
    out = Path(cfg.out_dir)
    if resume and overwrite:
        raise ValueError("pass either resume or overwrite, not both")
    cfg_path = out / "config.yaml"
    if not cfg_path.exists():
        leftovers = [n for n in RUN_FILES if (out / n).exists()]
        if leftovers and not overwrite:
            raise FileExistsError(f"{out} holds trainer files {leftovers} but no config.yaml; "
                                  "pass --overwrite to start a new run there")
        if overwrite:
            _remove_run_files(out)
        return False
    if overwrite:
        _remove_run_files(out)
        return False
    old = type(cfg).from_yaml(cfg_path)
    a, b = _comparable(old), _comparable(cfg)
    diff = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    if diff:
        raise FileExistsError(
            f"{out} holds a run with a different configuration ({', '.join(f'{k}: {v[0]!r} there, {v[1]!r} now' for k, v in diff.items())}); "
            "choose another --out, or pass --overwrite to delete that run"
        )
    meta_path = out / "run.json"
    if meta_path.exists():
        meta = _read_json(meta_path, f"{out} holds a damaged run", "pass --overwrite to start over")
        finished = isinstance(meta, dict) and meta.get("status") == "finished"
    else:
        finished = False
    if finished:
        raise FileExistsError(f"{out} holds a finished run; pass --overwrite to train it again, or choose another --out")
    if not resume:
        raise FileExistsError(f"{out} holds an unfinished run; pass --resume to continue it from "
                              "checkpoints/last.pt, or --overwrite to start over")
    return True


def _remove_run_files(out: Path) -> None:
    for name in RUN_FILES:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir())
        if others:
            warnings.warn(f"--overwrite removed the trainer's files in {out}; other files stay and may be stale: {others}")


def write_split(cfg, sel: Mapping, stats, resuming: bool) -> list[dict]:
    """Write ``split.json`` and ``norm_stats.json``; a resumed run's split must be the one it began with.

    Args:
        cfg: the run's TrainConfig (``data_root``, ``out_dir`` resolved).
        sel: :func:`minasd.train.select_clips` (absolute paths; stored relative to the data root).
        stats: the target type's :class:`minasd.data.NormStats`.
        resuming: True when :func:`prepare_run_dir` said so.

    Returns:
        the ``runtime_history`` of the earlier sessions of a resumed run (else empty).
    """
    from .data import save_norm_stats

    out, root = Path(cfg.out_dir), Path(cfg.data_root)
    rel = lambda p: Path(os.path.relpath(p, root)).as_posix()  # noqa: E731
    split = {"train": [rel(p) for p in sel["target_train"]], "val": [rel(p) for p in sel["target_val"]],
             "other_train": [rel(p) for p in sel["other_train"]], "other_val": [rel(p) for p in sel["other_val"]]}
    runtime_history = []
    if resuming:
        fix = "pass --overwrite to start the run over"
        old = _read_json(out / "split.json", "the run to resume has no readable split", fix)
        if old != split:
            raise ValueError(f"{out / 'split.json'} differs from the split this data root gives now; "
                             "the data changed since the run started: pass --overwrite to start over")
        try:  # run.json is rewritten next; only the earlier sessions' settings are taken from it
            old_meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
            runtime_history = list(old_meta.get("runtime_history", []))
        except (OSError, ValueError, AttributeError, TypeError):
            runtime_history = []
    atomic_write_json(out / "split.json", split)
    save_norm_stats({cfg.machine_type: stats}, out / "norm_stats.json")
    return runtime_history


# --------------------------------------------------------------------------------------
# progress of a fit: run.json, log.jsonl, checkpoints
# --------------------------------------------------------------------------------------


@dataclass
class FitState:
    """Where a fit stands: what ``last.pt`` saves and a resumed run starts from."""

    epoch: int = 0  # epochs done
    best_val: float = math.inf
    best_epoch: int | None = None
    history: list[dict] = field(default_factory=list)  # one log record per epoch done


def write_log(out: Path, history: list[dict]) -> None:
    """``<out>/log.jsonl``: one JSON line per epoch of ``history``."""
    atomic_write_text(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def begin_run_json(cfg, sel: Mapping, store, stats, rt, runtime_history: list, model_spec: dict,
                   steps_per_epoch: int, val_crops: int, state: FitState) -> dict:
    """Write this session's ``run.json`` (status ``"running"``) and return it.

    Args:
        cfg: the TrainConfig; sel: :func:`minasd.train.select_clips`; store: the
            :class:`minasd.store.WaveStore`; stats: the target type's NormStats.
        rt: the session's :class:`minasd.runtime.RuntimeSettings`, appended to
            ``runtime_history`` (the earlier sessions', :func:`write_split`).
        model_spec: :meth:`minasd.model.ASDModel.to_spec`.
        steps_per_epoch, val_crops: the counts recorded beside the clip counts.
        state: where the fit starts (:func:`resume_fit` or a new :class:`FitState`).
    """
    import dataclasses

    import torch

    from . import __version__
    from .config import FEATURES, SEGMENT_SECONDS
    from .io_utils import git_commit
    from .provenance import run_data_record

    runtime = {**rt.to_dict(), "threads": torch.get_num_threads(), "device_name": rt.device_name()}
    runtime_history.append({"from_epoch": state.epoch, **runtime})
    meta = {
        "machine_type": cfg.machine_type,
        "sections": sel["sections"],
        "hparams": cfg.hparams().to_dict(),
        "ablation": {"mixup": cfg.mixup, "machine_loss": cfg.machine_loss},
        "seed": cfg.seed,
        "pretrained": cfg.pretrained,
        "data_root": cfg.data_root,
        "data": run_data_record(Path(cfg.data_root)),
        "wave_store": {"folder": str(store.folder), "fingerprint": store.fingerprint,
                       "clips": len(store), "bytes": store.nbytes},
        "minasd_version": __version__,
        "git_commit": git_commit(),
        "device": rt.device,
        "device_name": runtime["device_name"],
        "runtime": runtime,  # this session's settings (runtime only: a resumed session may differ)
        "runtime_history": runtime_history,  # one entry per session: the epoch it started after
        "torch_version": torch.__version__,
        "features": dataclasses.asdict(FEATURES),
        "segment_seconds": SEGMENT_SECONDS,
        "model": model_spec,
        "config": cfg.to_dict(),
        "counts": {"target_train": len(sel["target_train"]), "target_val": len(sel["target_val"]),
                   "other_train": len(sel["other_train"]), "other_val": len(sel["other_val"]),
                   "steps_per_epoch": steps_per_epoch, "val_crops": val_crops},
        "norm_stats": {"mean": stats.mean, "std": stats.std, "n_clips": stats.n_clips},
        "status": "running",
        "epochs_done": state.epoch,
        "best_epoch": state.best_epoch,
        "best_val_loss": None if state.best_epoch is None else state.best_val,
    }
    atomic_write_json(Path(cfg.out_dir) / "run.json", meta)
    return meta


def save_checkpoints(cfg, model, optimizer, scheduler, state: FitState, best: bool) -> None:
    """After an epoch: ``best.pt`` (when it is the best so far) and ``last.pt`` (always).

    Both hold plain data only (tensors, numbers, strings, lists, dicts): :func:`load_checkpoint`
    reads them with ``weights_only=True``.  ``model`` is the plain (uncompiled) model.
    """
    import torch

    out = Path(cfg.out_dir)
    spec = model.to_spec()
    if best:
        atomic_save_torch({"model": model.state_dict(), "epoch": state.epoch, "val_loss": state.best_val,
                           "model_spec": spec}, out / "checkpoints" / "best.pt")
    sampler_state = {"seed": cfg.seed, "epoch": state.epoch, "batches_done": 0}
    atomic_save_torch({
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "sampler": sampler_state, "torch_rng": torch.get_rng_state(), "epoch": state.epoch,
        "best_val": state.best_val, "best_epoch": state.best_epoch, "history": state.history, "model_spec": spec,
        "config": cfg.to_dict(),
    }, out / "checkpoints" / "last.pt")


def record_epoch(out: Path, meta: dict, state: FitState) -> None:
    """After an epoch's checkpoints: the log and ``run.json``'s progress."""
    write_log(out, state.history)
    meta.update(epochs_done=state.epoch, best_epoch=state.best_epoch, best_val_loss=state.best_val)
    atomic_write_json(out / "run.json", meta)


def finish_run_json(out: Path, meta: dict) -> None:
    """Mark the run finished in ``run.json`` (a finished run is never resumed)."""
    meta.update(status="finished")
    atomic_write_json(out / "run.json", meta)


def resume_fit(out: Path, model, optimizer, scheduler, sampler) -> FitState:
    """Restore model, optimiser, scheduler, sampler and the global torch RNG from ``<out>/checkpoints/last.pt``.

    The log is rewritten from the checkpoint's history (a line written after the checkpoint
    is dropped).  Returns the :class:`FitState` the fit continues from.

    Raises:
        FileNotFoundError, ValueError: the checkpoint is missing, unreadable, of another model or
            holds states that do not fit this run (named, with the flag to start over).
    """
    import torch

    from .model import _brief

    last_path = out / "checkpoints" / "last.pt"
    ck = load_checkpoint(last_path, need=RESUME_KEYS)
    load_weights(model, ck, last_path, expected_spec=model.to_spec())
    try:
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        sampler.load_state_dict(ck["sampler"])
        torch.set_rng_state(ck["torch_rng"])  # a CPU ByteTensor: the checkpoint was loaded to the CPU
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
        raise ValueError(f"checkpoint {last_path}: its optimiser, scheduler, sampler or RNG state does not fit "
                         f"this run ({_brief(err)}); pass --overwrite to start over") from None
    state = FitState(epoch=ck["epoch"], best_val=ck["best_val"], best_epoch=ck["best_epoch"], history=ck["history"])
    write_log(out, state.history)  # drop any line written after the checkpoint
    return state


# --------------------------------------------------------------------------------------
# reading checkpoints and models
# --------------------------------------------------------------------------------------


def load_checkpoint(path: str | Path, need: tuple[str, ...] = CHECKPOINT_KEYS) -> dict:
    """Read a minasd checkpoint safely, onto the CPU (Book: chapter 4).

    ``weights_only=True`` (:func:`minasd.model.load_torch_file`): the file may hold only
    tensors, numbers, strings, lists, tuples and dicts (what :func:`minasd.train.train`
    writes), never code; a file shared by someone else cannot run anything on the reader's
    machine.  Tensors are loaded to the CPU whatever device wrote or will use them:
    ``load_state_dict`` then places model and optimiser state next to the parameters, and
    keeps AdamW's step counters on the CPU where torch expects them.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable checkpoint (truncated, not a torch file, pickled
            objects other than plain data) or without the keys ``need``; the message
            names the file.
    """
    from .model import load_torch_file

    path = Path(path)
    ck = load_torch_file(path, missing=f"checkpoint {path} does not exist",
                         unreadable=f"{path} is not a readable minasd checkpoint",
                         fix="it may be truncated or not a checkpoint at all: train the run again (--overwrite)")
    if not isinstance(ck, dict):
        raise ValueError(f"{path} is not a minasd checkpoint: it holds a {type(ck).__name__}, not a dict")
    missing = [k for k in need if k not in ck]
    if missing:
        raise ValueError(f"{path} is not a minasd checkpoint: it lacks {missing}")
    return ck


def load_weights(model, ck: dict, path: Path, expected_spec: dict | None) -> None:
    """Load ``ck["model"]`` into ``model``; a checkpoint of another model is a ValueError naming ``path``."""
    from .model import _brief

    spec = ck["model_spec"]
    if expected_spec is not None and spec != expected_spec:
        raise ValueError(f"checkpoint {path} holds the model {spec}, but this run's model is {expected_spec}: "
                         "the checkpoint belongs to another run")
    try:
        model.load_state_dict(ck["model"])
    except (RuntimeError, TypeError, AttributeError, KeyError) as err:
        raise ValueError(f"checkpoint {path}: its weights do not fit the model {model.to_spec()} "
                         f"({_brief(err)})") from None


def load_model(run_dir: str | Path, which: str = "best", device="cpu"):
    """Rebuild a run's model from ``<run_dir>/checkpoints/<which>.pt`` (Book: chapter 4).

    The checkpoint is read with :func:`load_checkpoint` (``weights_only=True``, onto
    the CPU) and must hold the model that ``run.json`` describes.

    Args:
        run_dir: a run directory written by :func:`minasd.train.train`.
        which: "best" (smallest validation loss) or "last".
        device: where to put the model (a name or a ``torch.device``).

    Returns:
        ``(model in eval mode, run_meta)``: an :class:`minasd.model.ASDModel` and
        ``run.json`` plus ``run_dir`` and ``checkpoint`` (which, epoch).

    Raises:
        FileNotFoundError: ``run.json`` or the checkpoint is missing (named).
        ValueError: ``run.json`` is not valid JSON, or the checkpoint is unreadable,
            incomplete or of another model (named).
    """
    from .model import ASDModel, _brief

    run_dir = Path(run_dir)
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    meta_path = run_dir / "run.json"
    ck_path = run_dir / "checkpoints" / f"{which}.pt"
    meta = _read_json(meta_path, f"{run_dir} is not a training run directory",
                      f"train it with `minasd train --out {run_dir}`")
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        raise ValueError(f"{meta_path} is not a run description of minasd train: it has no 'model' entry")
    if not ck_path.is_file():
        raise FileNotFoundError(f"checkpoint {ck_path} does not exist (has the run finished an epoch?)")
    ck = load_checkpoint(ck_path)
    try:
        model = ASDModel.from_spec(ck["model_spec"])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"checkpoint {ck_path}: its model_spec {ck['model_spec']!r} does not describe a model "
                         f"({_brief(err)})") from None
    load_weights(model, ck, ck_path, expected_spec=meta["model"])
    model.to(device).eval()
    meta["run_dir"] = str(run_dir)
    meta["checkpoint"] = {"which": which, "epoch": ck["epoch"]}
    return model, meta


# --------------------------------------------------------------------------------------
# train, resume or reuse (minasd demo, minasd experiment)
# --------------------------------------------------------------------------------------


def train_or_resume(cfg, notes: Mapping[str, str] | None = None) -> tuple[str, Path]:
    """Train the run of ``cfg`` unless it is finished; continue it when it was interrupted.

    A run folder whose ``run.json`` says ``"finished"`` is left as it is; one that holds a
    ``config.yaml`` (an unfinished run) is resumed (:func:`minasd.train.train` with
    ``resume=True``); anything else is trained from the start.

    Args:
        cfg: the run's TrainConfig.
        notes: a line to print before acting, per action (optional).

    Returns:
        ``(action, run_dir)``: action ``"skipped"`` (run_dir = ``Path(cfg.out_dir)``),
        ``"resumed"`` or ``"trained"`` (run_dir = what :func:`minasd.train.train` returns).
    """
    from .train import train

    out = Path(cfg.out_dir)
    meta = out / "run.json"
    if meta.is_file() and json.loads(meta.read_text()).get("status") == "finished":
        action = "skipped"
    elif (out / "config.yaml").is_file():
        action = "resumed"
    else:
        action = "trained"
    if notes and action in notes:
        print(notes[action])
    if action == "skipped":
        return action, out
    return action, train(cfg, resume=action == "resumed")
