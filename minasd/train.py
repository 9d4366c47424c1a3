"""Training the encoder f with the two binary cross-entropies (Book: chapter 4).

``train(TrainConfig(...))`` trains one model for one target machine type and
writes a run directory::

    <run>/config.yaml        the TrainConfig (YAML)
    <run>/run.json           provenance: machine type, sections, hparams, ablations,
                             seed, data (synthetic or real), version, commit, device, ...
    <run>/split.json         {"train": [...], "val": [...]}, paths relative to data_root
    <run>/norm_stats.json    amplitude statistics of the target type (training split)
    <run>/log.jsonl          one JSON object per finished epoch
    <run>/checkpoints/last.pt, <run>/checkpoints/best.pt

What the trainer does, and the choices it makes (METHOD.md; the paper is silent on
the ones marked "choice"):

* Data: every source-domain *training* clip under ``data_root`` (``dev_data``
  and ``eval_data`` train folders; :func:`minasd.data.protocol_clips`) of every
  machine type present.  The target type's sections give
  the K product classes (index i = ``sections[i]``); every other type is an
  outlier-exposure negative (t = 0).
* Split: 90 % / 10 % of the target type's training clips, stratified by section
  and seeded (at least one validation clip per section with >= 2 clips); saved to
  ``split.json`` because the inlier models are fitted on the 10 %.
* Validation set (choice): the 10 % target clips plus as many clips of the other
  types (spread evenly over them, seeded, held out from the training negatives),
  so that L_machine is defined on validation.  Validation crops are
  deterministic (choice): ``val_crops_per_clip`` evenly spaced 2 s crops
  (:func:`minasd.data.segment_starts`; one crop = the centred one); no Mixup.
  The validation loss is the same Eq. 3 over the whole validation set at once.
  The checkpoint with the smallest validation loss is ``best.pt``.
* Amplitude normalisation: mean/std of the target type's training-split clips
  (the computation of :func:`minasd.data.compute_norm_stats`, on the store's
  samples), applied to every clip fed to the model, negatives included.
* Input pipeline: the clips come from the data root's waveform store
  (:mod:`minasd.store`: every source-domain training clip of the root, decoded
  once into one memory-mapped int16 file that every run and ablation shares);
  the amplitude statistics are read from it too.  Each step takes the
  sampler's indices, draws the crop starts on the host, gathers the (B, 2 s)
  int16 crops from the memory map with one vectorised indexing operation,
  moves them to the device, normalises, computes the log-mel
  (:class:`minasd.features.LogMel`), applies Mixup (:mod:`minasd.mixup`), the
  loss (:mod:`minasd.losses`) and the optimiser.  No waveforms are held in
  memory, so host memory does not grow with the data (measured figures in
  :mod:`minasd.store`).
* Device: one code path for every device.  Memory format (channels_last),
  autocast dtype (bf16 on CUDA; on CPU only for encoders where it was measured
  to help), ``torch.compile`` and pinned host copies are values chosen once by
  :func:`minasd.runtime.runtime_settings` and recorded in ``run.json``
  (``runtime``); no host synchronisation inside an epoch (running sums stay on
  the device).
* Optimisation: AdamW (weight decay 0.01, torch's default; choice), OneCycleLR
  with max lr from Table I over ``epochs * len(sampler)`` steps, batch size and
  lambda from Table I (:func:`minasd.config.hparams_for`), 300 epochs by default.
* Randomness: the sampler's batches, the crop positions (a host generator) and
  the Mixup draws (a device generator) of epoch e depend only on ``(seed, e)``,
  and the global torch RNG (CPU and CUDA) is reseeded from them each epoch, so a
  resumed run continues as the uninterrupted run would have (bit for bit on the
  same device and thread count); no CUDA generator state needs saving.

Resume and overwrite (``minasd train --resume`` / ``--overwrite``):

* an empty or new ``out_dir`` starts a fresh run;
* ``resume=True`` continues an unfinished run with the same configuration from
  ``checkpoints/last.pt`` (model, optimiser, scheduler, sampler, RNG, epoch, best
  value and the log); fields that do not change the result (device, num_workers,
  compile, progress) may differ, and so may the device settings derived from
  them (``run.json`` lists each session's in ``runtime_history``).  Checkpoints
  hold plain data only and are read with ``weights_only=True`` onto the CPU
  (:func:`load_checkpoint`);
  (with no run there yet, ``resume=True`` simply starts one);
* ``overwrite=True`` deletes the trainer's files in ``out_dir`` and starts again;
* otherwise a run directory that holds a run (finished, unfinished, or with a
  different configuration) is refused with an error that says which flag to use.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml

from . import __version__
from .config import FEATURES, SAMPLE_RATE, SEGMENT_SECONDS, TypeHParams, hparams_for
from .io_utils import atomic_save_torch, atomic_write_json, atomic_write_text, git_commit
from .losses import LossParts, two_bce_loss
from .mixup import mixup, no_mixup, product_targets
from .model import ASDModel, _brief
from .runtime import RuntimeSettings, runtime_settings
from .sampler import BalancedBatchSampler
from .store import PCM_SCALE, WaveStore, open_store

#: Fields of TrainConfig that do not change what is trained: a run may be resumed with other values.
RUNTIME_FIELDS = ("out_dir", "device", "num_workers", "compile", "progress")
#: Files and folders the trainer writes in a run directory (``overwrite`` deletes exactly these).
RUN_FILES = ("config.yaml", "run.json", "split.json", "norm_stats.json", "log.jsonl", "checkpoints")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved as ``<out_dir>/config.yaml`` (Book: chapter 4).

    Attributes:
        machine_type: target machine type (t = 1).
        data_root: DCASE-style data root (``dev_data/``, ``eval_data/``).
        out_dir: run directory.
        epochs, batch_size, lr, lam: overrides of Table I (None = Table I; epochs 300).
        device: "auto" (CUDA if available), "cpu", "cuda" or "cuda:N".
        seed: seed of split, sampler, crops, Mixup and initial weights.
        mixup: False for the "w/o Mixup" ablation.
        machine_loss: False for the "only product-ID classification" ablation (drops Eq. 2).
        pretrained: None (from scratch), "noisy_student" or a local weights file.
        backbone: timm model name of the encoder; None = ``efficientnet_b0`` (the
            paper; ``tf_efficientnet_b0`` with Noisy Student weights).  Another name
            (e.g. the 10x cheaper ``mobilenetv3_small_050``) is for CPU tests and
            quick checks only: results with it are not the paper's method.
        val_fraction: share of the target type's training clips held out per section.
        val_crops_per_clip: deterministic, evenly spaced 2 s crops per validation clip.
        weight_decay: AdamW weight decay.
        num_workers: threads that read audio files (0 = min(8, CPU count)).
        max_train_clips_per_section: keep at most this many training clips per
            (machine type, section), seeded; None = all (quick runs only).
        compile: wrap the model in ``torch.compile``.
        progress: show tqdm progress bars.
        profile: name of the training profile (:mod:`minasd.profiles`) the caller took
            its values from; recorded in ``config.yaml`` and ``run.json`` for captions.
    """

    machine_type: str
    data_root: str
    out_dir: str
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    lam: float | None = None
    device: str = "auto"
    seed: int = 0
    mixup: bool = True
    machine_loss: bool = True
    pretrained: str | None = None
    backbone: str | None = None
    val_fraction: float = 0.1
    val_crops_per_clip: int = 1
    weight_decay: float = 0.01
    num_workers: int = 0
    max_train_clips_per_section: int | None = None
    compile: bool = False
    progress: bool = True
    profile: str | None = None

    def hparams(self) -> TypeHParams:
        """Table I row of the machine type with this config's overrides."""
        return hparams_for(self.machine_type, {"epochs": self.epochs, "batch_size": self.batch_size,
                                               "lr": self.lr, "lam": self.lam})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        """Read a config written by :meth:`save` (Book: chapter 4)."""
        raw = yaml.safe_load(Path(path).read_text())
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping of TrainConfig fields")
        try:
            return cls.from_dict(raw)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from None

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, self.to_yaml())


# --------------------------------------------------------------------------------------
# data: clips, split, waveform store
# --------------------------------------------------------------------------------------


@dataclass
class TrainData:
    """The items of a run: which store clip each is, its machine type and targets (Book: chapter 4).

    Items are ordered: training items first (target type, then other types), then
    validation items (target type, then other types).  Everything here lives on the
    host; a batch's crops and targets go to the device per step.
    """

    paths: list[str]  # absolute
    machines: list[str]
    is_target: np.ndarray  # (N,) float32, 1 target type
    section_class: np.ndarray  # (N,) int64, product class index, -1 for other types
    store: WaveStore
    clips: np.ndarray  # (N,) int64, the item's clip in ``store``
    n_train: int  # items [0, n_train) are training items, the rest validation

    @property
    def lengths(self) -> np.ndarray:
        """(N,) int64, samples of each item's clip."""
        return self.store.lengths[self.clips]

    @property
    def n_val(self) -> int:
        return len(self.paths) - self.n_train


def select_clips(df, cfg: TrainConfig) -> dict[str, Any]:
    """Training clips of every type, the stratified split and the validation negatives (Book: chapter 4).

    Args:
        df: :func:`minasd.data.index` of the data root.
        cfg: the run's config (machine_type, seed, val_fraction, max_train_clips_per_section).

    Returns:
        dict with ``sections`` (sorted target sections), ``target_train``,
        ``target_val``, ``other_train``, ``other_val`` (lists of absolute paths,
        sorted within each machine type and section) and ``machine_of`` / ``section_of``.
    """
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {cfg.val_fraction}")
    from .data import protocol_clips

    train = protocol_clips(df, "train")  # source domain only (METHOD.md)
    root = Path(cfg.data_root)
    if train.empty:
        raise ValueError(f"no training clips under {root} (expected <root>/<dev_data|eval_data>/<type>/train/*.wav)")
    present = sorted(train["machine"].unique())
    if cfg.machine_type not in present:
        raise ValueError(f"no training clips of machine type {cfg.machine_type!r} under {root}; found {present}")
    if len(present) < 2:
        raise ValueError(f"outlier exposure needs training clips of at least one machine type other than "
                         f"{cfg.machine_type!r} under {root}; found only {present}")
    rng = np.random.default_rng([cfg.seed, 20220])
    groups: dict[tuple[str, int], list[str]] = {}
    for (machine, section), g in train.groupby(["machine", "section"], sort=True):
        paths = g["path"].tolist()
        if cfg.max_train_clips_per_section is not None and len(paths) > cfg.max_train_clips_per_section:
            keep = np.sort(rng.choice(len(paths), cfg.max_train_clips_per_section, replace=False))
            paths = [paths[i] for i in keep]
        groups[(machine, int(section))] = paths

    sections = sorted(s for (m, s) in groups if m == cfg.machine_type)
    target_train, target_val = [], []
    for s in sections:
        paths = groups[(cfg.machine_type, s)]
        n_val = max(1, int(round(cfg.val_fraction * len(paths)))) if len(paths) >= 2 else 0
        order = rng.permutation(len(paths))
        val = sorted(paths[i] for i in order[:n_val])
        target_val += val
        target_train += [p for p in paths if p not in set(val)]

    others = [m for m in present if m != cfg.machine_type]
    other_pool = {m: sorted(p for (mm, _), ps in groups.items() if mm == m for p in ps) for m in others}
    # as many validation negatives as validation positives, spread evenly over the other types
    n_other_val = len(target_val)
    counts = {m: n_other_val // len(others) for m in others}
    for m in others[: n_other_val % len(others)]:
        counts[m] += 1
    other_train, other_val = [], []
    for m in others:
        pool = other_pool[m]
        k = min(counts[m], max(0, len(pool) - 1))  # keep at least one training clip per type
        pick = set(rng.choice(len(pool), k, replace=False).tolist()) if k else set()
        other_val += [p for i, p in enumerate(pool) if i in pick]
        other_train += [p for i, p in enumerate(pool) if i not in pick]
    machine_of = dict(zip(train["path"], train["machine"]))
    section_of = dict(zip(train["path"], train["section"].astype(int)))
    return {"sections": sections, "target_train": target_train, "target_val": target_val,
            "other_train": other_train, "other_val": other_val,
            "machine_of": machine_of, "section_of": section_of}


class CropPipeline(torch.nn.Module):
    """Item indices -> 2 s crops from the store -> normalised log-mel on the device (Book: chapter 4).

    The crops are gathered on the host from the memory-mapped store (one vectorised
    gather per batch), moved to the device as int16 (half the bytes of float32) and
    turned into float, normalised and transformed there.

    Args:
        data: the run's :class:`TrainData`.
        mean, std: amplitude normalisation of the target type.
        seg_len: crop length in samples (2.0 s).
        runtime: the run's :class:`minasd.runtime.RuntimeSettings` (device, copies).
    """

    def __init__(self, data: TrainData, mean: float, std: float, seg_len: int, runtime: RuntimeSettings):
        super().__init__()
        from .features import LogMel

        self.data = data
        self.mean = float(mean)
        self.std = float(std)
        self.seg_len = int(seg_len)
        self.runtime = runtime
        self.logmel = LogMel(FEATURES).to(runtime.torch_device)
        short = np.flatnonzero(data.lengths < seg_len)
        if short.size:
            i = int(short[0])
            raise ValueError(f"clip {data.paths[i]} is {int(data.lengths[i]) / SAMPLE_RATE:.2f} s long; "
                             f"training crops need {seg_len / SAMPLE_RATE:.1f} s")

    def random_starts(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Uniform crop starts in [0, length - seg_len] for each item of ``idx``, (B,) int64."""
        return rng.integers(0, self.data.lengths[idx] - self.seg_len + 1).astype(np.int64)

    def host_crops(self, idx: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """(B,) items and (B,) starts -> raw crops (B, seg_len) int16, on the host."""
        return self.data.store.crops(self.data.clips[idx], starts, self.seg_len)

    def crops(self, idx: np.ndarray, starts: np.ndarray) -> torch.Tensor:
        """(B,) items and (B,) starts -> normalised waveforms (B, seg_len) float32 on the device."""
        wave = self.runtime.to_device(self.host_crops(idx, starts)).float() / PCM_SCALE
        return (wave - self.mean) / self.std

    def targets(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) items -> (t (B,) float32, section class (B,) int64) on the device."""
        return self.runtime.to_device(self.data.is_target[idx]), self.runtime.to_device(self.data.section_class[idx])

    def forward(self, idx: np.ndarray, starts: np.ndarray) -> torch.Tensor:
        return self.logmel(self.crops(idx, starts))  # (B, n_mels, frames)


def validation_starts(lengths: np.ndarray, seg_len: int, n_crops: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic crops of the validation clips: (item, start) pairs (Book: chapter 4).

    ``n_crops`` evenly spaced crops per clip (first at 0, last at the end); with
    ``n_crops = 1`` the centred crop.
    """
    from .data import segment_starts

    items, starts = [], []
    for i, n in enumerate(lengths.tolist()):
        if n_crops == 1:
            s = np.array([(n - seg_len) // 2])
        else:
            s = segment_starts(n, seg_len, n_crops)
        items += [i] * len(s)
        starts += s.tolist()
    return np.asarray(items, dtype=np.int64), np.asarray(starts, dtype=np.int64)


# --------------------------------------------------------------------------------------
# run directory
# --------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; an explicit CUDA device without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available; use --device cpu")
    return dev


def _comparable(cfg: TrainConfig) -> dict:
    return {k: v for k, v in cfg.to_dict().items() if k not in RUNTIME_FIELDS}


def _data_manifest(root: Path) -> dict:
    from .synth import find_manifest

    m = find_manifest(root)
    if m is None:  # what is known of it: the released DCASE data (minasd download's record) or unknown origin
        from .evaluate import data_manifest

        return data_manifest(root)
    return {"kind": "synthetic", "synthetic": True, "manifest": {k: v for k, v in m.items() if k != "manifest_path"}}


def _prepare_run_dir(cfg: TrainConfig, resume: bool, overwrite: bool) -> bool:
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
    old = TrainConfig.from_yaml(cfg_path)
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


def _write_log(out: Path, history: list[dict]) -> None:
    atomic_write_text(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def _plain_model(model: torch.nn.Module) -> ASDModel:
    return getattr(model, "_orig_mod", model)


# --------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------

#: Keys every checkpoint holds (``best.pt`` and ``last.pt``).
CHECKPOINT_KEYS = ("model", "epoch", "model_spec")
#: Keys ``last.pt`` holds on top, to resume a run.
RESUME_KEYS = CHECKPOINT_KEYS + ("optimizer", "scheduler", "sampler", "torch_rng", "best_val", "best_epoch",
                                 "history", "config")


def load_checkpoint(path: str | Path, need: tuple[str, ...] = CHECKPOINT_KEYS) -> dict:
    """Read a minasd checkpoint safely, onto the CPU (Book: chapter 4).

    ``weights_only=True``: the file may hold only tensors, numbers, strings, lists,
    tuples and dicts (what :func:`train` writes), never code; a file shared by
    someone else cannot run anything on the reader's machine.  Tensors are loaded
    to the CPU whatever device wrote or will use them: ``load_state_dict`` then
    places model and optimiser state next to the parameters, and keeps AdamW's
    step counters on the CPU where torch expects them.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable checkpoint (truncated, not a torch file, pickled
            objects other than plain data) or without the keys ``need``; the message
            names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, random bytes, forbidden globals: all mean "not a checkpoint"
        raise ValueError(f"{path} is not a readable minasd checkpoint ({_brief(err)}); it may be truncated or "
                         "not a checkpoint at all: train the run again (--overwrite)") from None
    if not isinstance(ck, dict):
        raise ValueError(f"{path} is not a minasd checkpoint: it holds a {type(ck).__name__}, not a dict")
    missing = [k for k in need if k not in ck]
    if missing:
        raise ValueError(f"{path} is not a minasd checkpoint: it lacks {missing}")
    return ck


def _load_weights(model: ASDModel, ck: dict, path: Path, expected_spec: dict | None) -> None:
    """Load ``ck["model"]`` into ``model``; a checkpoint of another model is a ValueError naming ``path``."""
    spec = ck["model_spec"]
    if expected_spec is not None and spec != expected_spec:
        raise ValueError(f"checkpoint {path} holds the model {spec}, but this run's model is {expected_spec}: "
                         "the checkpoint belongs to another run")
    try:
        model.load_state_dict(ck["model"])
    except (RuntimeError, TypeError, AttributeError, KeyError) as err:
        raise ValueError(f"checkpoint {path}: its weights do not fit the model {model.to_spec()} "
                         f"({_brief(err)})") from None


def _read_json(path: Path, what: str, fix: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {what}; {fix}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}): {what}; {fix}") from None


# --------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------


def _epoch_generator(device: torch.device, seed: int, epoch: int, stream: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1, np.uint64)[0] >> 1))
    return g


def _epoch_crop_rng(seed: int, epoch: int) -> np.random.Generator:
    """The host generator of epoch ``epoch``'s crop starts: a function of (seed, epoch) only."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, 0]))


@torch.no_grad()
def evaluate(model: torch.nn.Module, pipe: CropPipeline, items: np.ndarray, starts: np.ndarray,
             n_sections: int, lam: float, use_machine_loss: bool, batch_size: int) -> dict[str, float]:
    """Eq. 3 over a whole set of fixed crops, plus section and machine accuracy (Book: chapter 4).

    The set is processed in chunks, but the parts are summed so that the result is
    the loss of the whole set as one batch (L_machine averaged over all crops,
    L_product normalised by K times all target crops).

    Args:
        items, starts: (N,) int64 host arrays, the crops (item, start sample).
    """
    rt = pipe.runtime
    was_training = model.training
    model.eval()
    sums = torch.zeros(5, device=rt.torch_device, dtype=torch.float64)  # machine, product, norm, sec ok, mach ok
    for lo in range(0, items.shape[0], batch_size):
        idx, st = items[lo:lo + batch_size], starts[lo:lo + batch_size]
        x = pipe(idx, st)
        t, cls = pipe.targets(idx)
        y = product_targets(cls, t, n_sections)
        with rt.autocast():
            _, ml, pl = model(rt.model_input(x))
        parts = two_bce_loss(ml.float(), pl.float(), t, y, lam=lam)
        sums += torch.stack([parts.machine.double() * idx.shape[0], parts.product.double() * parts.n_target.double(),
                             parts.n_target.double(), ((pl.argmax(1) == cls) & (t > 0)).sum().double(),
                             ((ml > 0).float() == t).sum().double()])
    model.train(was_training)
    m_sum, p_sum, p_norm, sec_ok, mach_ok = sums.tolist()
    n = items.shape[0]
    n_target = float((pipe.data.is_target[items] > 0).sum())
    machine = m_sum / n
    product = p_sum / p_norm if p_norm > 0 else 0.0
    total = (machine if use_machine_loss else 0.0) + lam * product
    return {"val_loss": total, "val_machine": machine, "val_product": product,
            "val_section_acc": sec_ok / n_target if n_target else float("nan"),
            "val_machine_acc": mach_ok / n, "val_crops": n}


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, pipe: CropPipeline,
               idx: np.ndarray, starts: np.ndarray, generator: torch.Generator | None, n_sections: int, lam: float,
               use_mixup: bool, use_machine_loss: bool) -> LossParts:
    """One whole training step: crops, log-mel, Mixup, loss, optimiser (Book: chapter 4).

    Device, memory format and precision are those of ``pipe.runtime``.

    Args:
        idx: (B,) int64 item indices (from the sampler), host array.
        starts: (B,) int64 crop starts (:meth:`CropPipeline.random_starts`), host array.
        generator: torch generator on the device, for the Mixup draws.

    Returns:
        the batch's :class:`LossParts` (tensors on the device; no host synchronisation).
    """
    rt = pipe.runtime
    x = pipe(idx, starts)  # (B, n_mels, frames)
    t, cls = pipe.targets(idx)
    y = product_targets(cls, t, n_sections)
    batch = mixup(x, t, y, generator=generator) if use_mixup else no_mixup(x, t, y)
    with rt.autocast():
        _, ml, pl = model(rt.model_input(batch.x))
    parts = two_bce_loss(ml.float(), pl.float(), batch.t, batch.product_target, lam=lam,
                         has_target=batch.has_target, use_machine_loss=use_machine_loss)
    optimizer.zero_grad(set_to_none=True)
    parts.total.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return parts


def build_data(cfg: TrainConfig) -> tuple[TrainData, dict, Any]:
    """Index the root, select and split clips, open the waveform store, compute norm stats (Book: chapter 4).

    The amplitude statistics are read from the store (the same numbers as
    :func:`minasd.data.compute_norm_stats` on the training split, for 16-bit
    PCM clips) so that no clip is decoded twice.
    """
    from . import data as data_mod

    df = data_mod.index(cfg.data_root)
    sel = select_clips(df, cfg)
    store = open_store(cfg.data_root, df=df, workers=cfg.num_workers, progress=cfg.progress)
    order = sel["target_train"] + sel["other_train"] + sel["target_val"] + sel["other_val"]
    n_train = len(sel["target_train"]) + len(sel["other_train"])
    clips = store.index_of(order)
    stats = store.norm_stats(clips[:len(sel["target_train"])])
    class_of = {s: i for i, s in enumerate(sel["sections"])}
    machines = [sel["machine_of"][p] for p in order]
    is_target = np.asarray([1.0 if m == cfg.machine_type else 0.0 for m in machines], dtype=np.float32)
    section_class = np.asarray([class_of[sel["section_of"][p]] if m == cfg.machine_type else -1
                                for p, m in zip(order, machines)], dtype=np.int64)
    td = TrainData(paths=order, machines=machines, is_target=is_target, section_class=section_class,
                   store=store, clips=clips, n_train=n_train)
    return td, sel, stats


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False,
          callback: Callable[[int, dict], None] | None = None) -> Path:
    """Train one machine type's model and write its run directory (Book: chapter 4).

    Args:
        cfg: the run's :class:`TrainConfig`.
        resume: continue an unfinished run in ``cfg.out_dir`` from ``checkpoints/last.pt``.
        overwrite: delete the trainer's files in ``cfg.out_dir`` first.
        callback: called as ``callback(epoch, record)`` after each epoch's
            checkpoints and log are written (epoch counts from 1).

    Returns:
        the run directory.

    Raises:
        FileExistsError: ``out_dir`` holds a run that the flags do not allow to touch.
        FileNotFoundError: a file the resumed run needs is missing (named).
        ValueError: bad data, configuration or checkpoint (the message names the file or field).

    >>> train(TrainConfig("fan", "data/dcase2021", "runs/fan"))  # doctest: +SKIP
    """
    from minasd.progress import tqdm

    from . import data as data_mod

    cfg = dataclasses.replace(cfg, data_root=str(Path(cfg.data_root).resolve()),
                              out_dir=str(Path(cfg.out_dir).resolve()))
    hp = cfg.hparams()
    device = resolve_device(cfg.device)
    if not Path(cfg.data_root).is_dir():
        raise FileNotFoundError(f"data root {cfg.data_root} does not exist")
    out = Path(cfg.out_dir)
    resuming = _prepare_run_dir(cfg, resume, overwrite)
    if resuming and not (out / "checkpoints" / "last.pt").exists():
        resuming = False  # interrupted before the first epoch ended: start from scratch
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.yaml")

    td, sel, stats = build_data(cfg)
    root = Path(cfg.data_root)
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
        try:  # run.json is rewritten below; only the earlier sessions' settings are taken from it
            old_meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
            runtime_history = list(old_meta.get("runtime_history", []))
        except (OSError, ValueError, AttributeError, TypeError):
            runtime_history = []
    atomic_write_json(out / "split.json", split)
    data_mod.save_norm_stats({cfg.machine_type: stats}, out / "norm_stats.json")

    # the model's initial weights depend on the seed only
    torch.manual_seed(cfg.seed)
    n_sections = len(sel["sections"])
    plain = ASDModel(n_sections=n_sections, pretrained=cfg.pretrained, backbone=cfg.backbone)
    rt = runtime_settings(device, plain.backbone_name, compile=cfg.compile)  # the device's settings, chosen once
    plain = rt.prepare_model(plain)
    optimizer = torch.optim.AdamW(plain.parameters(), lr=hp.lr, weight_decay=cfg.weight_decay)
    train_types = td.machines[: td.n_train]
    sampler = BalancedBatchSampler(train_types, cfg.machine_type, hp.batch_size, seed=cfg.seed)
    steps_per_epoch = len(sampler)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hp.lr, total_steps=hp.epochs * steps_per_epoch)
    model = rt.maybe_compile(plain)
    rt.setup_backends()
    seg_len = int(SEGMENT_SECONDS * SAMPLE_RATE)
    pipe = CropPipeline(td, stats.mean, stats.std, seg_len, rt)
    v_items, v_starts = validation_starts(td.lengths[td.n_train:], seg_len, cfg.val_crops_per_clip)
    v_items = v_items + td.n_train

    start_epoch, best_val, best_epoch, history = 0, math.inf, None, []
    if resuming:
        last_path = out / "checkpoints" / "last.pt"
        ck = load_checkpoint(last_path, need=RESUME_KEYS)
        _load_weights(plain, ck, last_path, expected_spec=plain.to_spec())
        try:
            optimizer.load_state_dict(ck["optimizer"])
            scheduler.load_state_dict(ck["scheduler"])
            sampler.load_state_dict(ck["sampler"])
            torch.set_rng_state(ck["torch_rng"])  # a CPU ByteTensor: the checkpoint was loaded to the CPU
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
            raise ValueError(f"checkpoint {last_path}: its optimiser, scheduler, sampler or RNG state does not fit "
                             f"this run ({_brief(err)}); pass --overwrite to start over") from None
        start_epoch, best_val, best_epoch, history = ck["epoch"], ck["best_val"], ck["best_epoch"], ck["history"]
        _write_log(out, history)  # drop any line written after the checkpoint
        print(f"[train] resuming {out} after epoch {start_epoch} of {hp.epochs}")
    runtime = {**rt.to_dict(), "threads": torch.get_num_threads(), "device_name": rt.device_name()}
    runtime_history.append({"from_epoch": start_epoch, **runtime})

    meta = {
        "machine_type": cfg.machine_type,
        "sections": sel["sections"],
        "hparams": hp.to_dict(),
        "ablation": {"mixup": cfg.mixup, "machine_loss": cfg.machine_loss},
        "seed": cfg.seed,
        "pretrained": cfg.pretrained,
        "data_root": cfg.data_root,
        "data": _data_manifest(root),
        "wave_store": {"folder": str(td.store.folder), "fingerprint": td.store.fingerprint,
                       "clips": len(td.store), "bytes": td.store.nbytes},
        "minasd_version": __version__,
        "git_commit": git_commit(),
        "device": rt.device,
        "device_name": runtime["device_name"],
        "runtime": runtime,  # this session's settings (runtime only: a resumed session may differ)
        "runtime_history": runtime_history,  # one entry per session: the epoch it started after
        "torch_version": torch.__version__,
        "features": dataclasses.asdict(FEATURES),
        "segment_seconds": SEGMENT_SECONDS,
        "model": plain.to_spec(),
        "config": cfg.to_dict(),
        "counts": {"target_train": len(sel["target_train"]), "target_val": len(sel["target_val"]),
                   "other_train": len(sel["other_train"]), "other_val": len(sel["other_val"]),
                   "steps_per_epoch": steps_per_epoch, "val_crops": int(v_items.shape[0])},
        "norm_stats": {"mean": stats.mean, "std": stats.std, "n_clips": stats.n_clips},
        "status": "running",
        "epochs_done": start_epoch,
        "best_epoch": best_epoch,
        "best_val_loss": None if best_epoch is None else best_val,
    }
    atomic_write_json(out / "run.json", meta)
    print(f"[train] {cfg.machine_type}: {meta['counts']['target_train']} target + "
          f"{meta['counts']['other_train']} other-type training clips, {meta['counts']['target_val']} + "
          f"{meta['counts']['other_val']} validation clips, K={n_sections}, device {rt.device} "
          f"({rt.memory_format}, autocast {rt.autocast_dtype or 'off'}), "
          f"{hp.epochs} epochs x {steps_per_epoch} steps of {hp.batch_size}")

    bar = tqdm(total=hp.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch, desc=f"train {cfg.machine_type}",
               unit="step", disable=not cfg.progress)
    model.train()
    for epoch in range(start_epoch, hp.epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        batches = sampler.epoch_batches()
        crop_rng = _epoch_crop_rng(cfg.seed, epoch)
        gen = _epoch_generator(rt.torch_device, cfg.seed, epoch, 1)  # Mixup draws
        torch.manual_seed(cfg.seed * 100003 + epoch)  # any stray use of the global RNG (CPU and CUDA)
        sums = torch.zeros(3, device=rt.torch_device, dtype=torch.float64)
        n_crops = 0
        for idx in batches:
            starts = pipe.random_starts(idx, crop_rng)
            parts = train_step(model, optimizer, scheduler, pipe, idx, starts, gen, n_sections, hp.lam,
                               cfg.mixup, cfg.machine_loss)
            sums += torch.stack([parts.total.detach(), parts.machine.detach(), parts.product.detach()]).double()
            n_crops += idx.shape[0]
            bar.update(1)
        rt.synchronize()
        train_seconds = time.perf_counter() - t0
        means = (sums / len(batches)).tolist()
        val = evaluate(model, pipe, v_items, v_starts, n_sections, hp.lam, cfg.machine_loss,
                       batch_size=max(hp.batch_size, 64))
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "train_loss": means[0], "train_machine": means[1], "train_product": means[2],
                  **val, "lr": scheduler.get_last_lr()[0], "seconds": seconds, "train_seconds": train_seconds,
                  "crops_per_s": n_crops / train_seconds, "best": False}
        if val["val_loss"] < best_val:
            best_val, best_epoch, record["best"] = val["val_loss"], epoch + 1, True
        history.append(record)
        bar.set_postfix(loss=f"{means[0]:.3f}", val=f"{val['val_loss']:.3f}", acc=f"{val['val_section_acc']:.2f}")
        spec = plain.to_spec()
        if record["best"]:
            atomic_save_torch({"model": plain.state_dict(), "epoch": epoch + 1, "val_loss": best_val,
                               "model_spec": spec}, out / "checkpoints" / "best.pt")
        sampler_state = {"seed": cfg.seed, "epoch": epoch + 1, "batches_done": 0}
        atomic_save_torch({
            "model": plain.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "sampler": sampler_state, "torch_rng": torch.get_rng_state(), "epoch": epoch + 1,
            "best_val": best_val, "best_epoch": best_epoch, "history": history, "model_spec": spec,
            "config": cfg.to_dict(),
        }, out / "checkpoints" / "last.pt")
        _write_log(out, history)
        meta.update(epochs_done=epoch + 1, best_epoch=best_epoch, best_val_loss=best_val)
        atomic_write_json(out / "run.json", meta)
        if callback is not None:
            callback(epoch + 1, record)
    bar.close()
    meta.update(status="finished")
    atomic_write_json(out / "run.json", meta)
    print(f"[train] done: best validation loss {best_val:.4f} at epoch {best_epoch}; run in {out}")
    return out


def load_model(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu") -> tuple[ASDModel, dict]:
    """Rebuild a run's model from ``<run_dir>/checkpoints/<which>.pt`` (Book: chapter 4).

    The checkpoint is read with :func:`load_checkpoint` (``weights_only=True``, onto
    the CPU) and must hold the model that ``run.json`` describes.

    Args:
        run_dir: a run directory written by :func:`train`.
        which: "best" (smallest validation loss) or "last".
        device: where to put the model.

    Returns:
        ``(model in eval mode, run_meta)``; ``run_meta`` is ``run.json`` plus
        ``run_dir`` and ``checkpoint`` (which, epoch).

    Raises:
        FileNotFoundError: ``run.json`` or the checkpoint is missing (named).
        ValueError: ``run.json`` is not valid JSON, or the checkpoint is unreadable,
            incomplete or of another model (named).
    """
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
    _load_weights(model, ck, ck_path, expected_spec=meta["model"])
    model.to(device).eval()
    meta["run_dir"] = str(run_dir)
    meta["checkpoint"] = {"which": which, "epoch": ck["epoch"]}
    return model, meta


# --------------------------------------------------------------------------------------
# command line (wired into `minasd train` by minasd.cli)
# --------------------------------------------------------------------------------------


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``minasd train`` (Book: chapter 4)."""
    parser.add_argument("--machine-type", required=True, help="target machine type, e.g. fan")
    parser.add_argument("--data", required=True, type=Path, help="DCASE-style data root (dev_data/, eval_data/)")
    parser.add_argument("--out", required=True, type=Path, help="run directory, e.g. runs/fan")
    from .profiles import PROFILES

    parser.add_argument("--profile", default="paper", choices=sorted(PROFILES),
                        help="training profile (minasd.profiles): paper (default: Table I, EfficientNet-B0, 300 "
                             "epochs) or cpu (the configuration that learns best per CPU minute); the options "
                             "below override it")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the profile's)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: Table I)")
    parser.add_argument("--lr", type=float, default=None, help="max learning rate of OneCycleLR (default: Table I)")
    parser.add_argument("--lam", type=float, default=None, help="lambda of Eq. 3 (default: Table I)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--no-mixup", action="store_true", help="ablation: train without Mixup")
    parser.add_argument("--product-loss-only", action="store_true",
                        help="ablation: drop L_machine (Eq. 2), only product-ID classification")
    parser.add_argument("--pretrained", default=None,
                        help="'noisy_student' (needs the Hugging Face hub) or a local EfficientNet-B0 state dict; "
                             "default: from scratch")
    parser.add_argument("--backbone", default=None,
                        help="timm encoder (default efficientnet_b0, the paper's); others are for quick checks only")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="held-out share per section (default 0.1)")
    parser.add_argument("--val-crops-per-clip", type=int, default=1, help="fixed validation crops per clip (default 1)")
    parser.add_argument("--max-train-clips-per-section", type=int, default=None,
                        help="use at most this many training clips per type and section (quick runs)")
    parser.add_argument("--num-workers", type=int, default=0, help="threads reading audio (default: auto)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue the unfinished run in --out from checkpoints/last.pt (same configuration)")
    group.add_argument("--overwrite", action="store_true",
                       help="delete the trainer's files in --out and train from scratch")


def run_train(args: argparse.Namespace) -> int:
    """Run ``minasd train`` (Book: chapter 4)."""
    from .profiles import get_profile

    settings = get_profile(args.profile).settings(epochs=args.epochs, backbone=args.backbone,
                                                  batch_size=args.batch_size, lam=args.lam)
    cfg = TrainConfig(
        machine_type=args.machine_type, data_root=str(args.data), out_dir=str(args.out), **settings, lr=args.lr,
        device=args.device, seed=args.seed, mixup=not args.no_mixup, machine_loss=not args.product_loss_only,
        pretrained=args.pretrained, val_fraction=args.val_fraction, val_crops_per_clip=args.val_crops_per_clip,
        num_workers=args.num_workers, max_train_clips_per_section=args.max_train_clips_per_section,
        compile=args.compile, progress=not args.quiet,
    )
    train(cfg, resume=args.resume, overwrite=args.overwrite)
    return 0
