"""Training the encoder f with the two binary cross-entropies (Book: chapter 4).

``train(TrainConfig(...))`` trains one model for one target machine type and
writes a run directory (config.yaml, run.json, split.json, norm_stats.json,
log.jsonl, checkpoints/; :mod:`minasd.runs` owns that layout and its resume rules).

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

The run directory itself (its names, resume and overwrite, ``run.json``, the
checkpoints and :func:`~minasd.runs.load_model`) belongs to :mod:`minasd.runs`;
``minasd train --resume`` / ``--overwrite`` are described there.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml

from .config import FEATURES, SAMPLE_RATE, SEGMENT_SECONDS, TypeHParams, hparams_for
from .io_utils import atomic_write_text
from .losses import LossParts, two_bce_loss
from .mixup import mixup, no_mixup, product_targets
from .model import ASDModel
from .runs import (FitState, begin_run_json, finish_run_json, prepare_run_dir, record_epoch, resolve_device,
                   resume_fit, save_checkpoints, write_split)
from .runtime import RuntimeSettings, runtime_settings
from .sampler import BalancedBatchSampler
from .store import PCM_SCALE, WaveStore, open_store


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
               use_mixup: bool, use_machine_loss: bool, scaler: "torch.amp.GradScaler | None" = None) -> LossParts:
    """One whole training step: crops, log-mel, Mixup, loss, optimiser (Book: chapter 4).

    Device, memory format and precision are those of ``pipe.runtime``.

    Args:
        idx: (B,) int64 item indices (from the sampler), host array.
        starts: (B,) int64 crop starts (:meth:`CropPipeline.random_starts`), host array.
        generator: torch generator on the device, for the Mixup draws.
        scaler: the run's loss scaler (:meth:`minasd.runtime.RuntimeSettings.grad_scaler`:
            active for float16 autocast, a pass-through otherwise); None: a pass-through.

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
    scaler = scaler if scaler is not None else torch.amp.GradScaler(rt.torch_device.type, enabled=False)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(parts.total).backward()
    scaler.step(optimizer)  # skipped (and the scale lowered) when a float16 gradient overflowed
    scaler.update()
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
    from .provenance import require_calibrated

    require_calibrated(cfg.data_root)  # no proposed-method run on a factory still being calibrated (issue 23)
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


@dataclass
class Fit:
    """What the fit loop works with (:func:`build_fit`; Book: chapter 4)."""

    hp: TypeHParams  # Table I row with the config's overrides
    plain: ASDModel  # the uncompiled model: its weights are what checkpoints hold
    model: torch.nn.Module  # ``plain``, or its ``torch.compile`` wrapper: what the steps call
    optimizer: torch.optim.Optimizer
    scheduler: Any  # OneCycleLR over every step of the run
    sampler: BalancedBatchSampler
    rt: RuntimeSettings
    pipe: CropPipeline
    val_items: np.ndarray  # (V,) int64, the fixed validation crops: item ...
    val_starts: np.ndarray  # (V,) int64 ... and start sample
    n_sections: int  # K
    scaler: Any = None  # the loss scaler (:meth:`RuntimeSettings.grad_scaler`); not checkpointed: it recalibrates


def build_fit(cfg: TrainConfig, td: TrainData, stats, n_sections: int, device: torch.device) -> Fit:
    """Model, optimiser, schedule, sampler and crop pipeline of a run, on its device (Book: chapter 4).

    The model's initial weights depend on the seed only: the global torch RNG is seeded
    just before the model is built.
    """
    hp = cfg.hparams()
    torch.manual_seed(cfg.seed)
    plain = ASDModel(n_sections=n_sections, pretrained=cfg.pretrained, backbone=cfg.backbone)
    rt = runtime_settings(device, plain.backbone_name, compile=cfg.compile)  # the device's settings, chosen once
    plain = rt.prepare_model(plain)
    optimizer = torch.optim.AdamW(plain.parameters(), lr=hp.lr, weight_decay=cfg.weight_decay)
    sampler = BalancedBatchSampler(td.machines[: td.n_train], cfg.machine_type, hp.batch_size, seed=cfg.seed)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hp.lr, total_steps=hp.epochs * len(sampler))
    model = rt.maybe_compile(plain)
    rt.setup_backends()
    seg_len = int(SEGMENT_SECONDS * SAMPLE_RATE)
    pipe = CropPipeline(td, stats.mean, stats.std, seg_len, rt)
    v_items, v_starts = validation_starts(td.lengths[td.n_train:], seg_len, cfg.val_crops_per_clip)
    return Fit(hp=hp, plain=plain, model=model, optimizer=optimizer, scheduler=scheduler, sampler=sampler, rt=rt,
               pipe=pipe, val_items=v_items + td.n_train, val_starts=v_starts, n_sections=n_sections,
               scaler=rt.grad_scaler())


def run_epoch(cfg: TrainConfig, fit: Fit, epoch: int, bar=None) -> dict:
    """One epoch (``epoch`` counts from 0): its training steps, then the validation loss (Book: chapter 4).

    The sampler's batches, the crop starts and the Mixup draws depend only on
    ``(seed, epoch)``, and the global torch RNG is reseeded from them, so a resumed run
    continues as the uninterrupted one would have.

    Returns:
        the epoch's log record (``best`` False; the caller marks the best epoch).
    """
    hp, rt, pipe = fit.hp, fit.rt, fit.pipe
    t0 = time.perf_counter()
    fit.sampler.set_epoch(epoch)
    batches = fit.sampler.epoch_batches()
    crop_rng = _epoch_crop_rng(cfg.seed, epoch)
    gen = _epoch_generator(rt.torch_device, cfg.seed, epoch, 1)  # Mixup draws
    torch.manual_seed(cfg.seed * 100003 + epoch)  # any stray use of the global RNG (CPU and CUDA)
    sums = torch.zeros(3, device=rt.torch_device, dtype=torch.float64)
    n_crops = 0
    for idx in batches:
        starts = pipe.random_starts(idx, crop_rng)
        parts = train_step(fit.model, fit.optimizer, fit.scheduler, pipe, idx, starts, gen, fit.n_sections, hp.lam,
                           cfg.mixup, cfg.machine_loss, scaler=fit.scaler)
        sums += torch.stack([parts.total.detach(), parts.machine.detach(), parts.product.detach()]).double()
        n_crops += idx.shape[0]
        if bar is not None:
            bar.update(1)
    rt.synchronize()
    train_seconds = time.perf_counter() - t0
    means = (sums / len(batches)).tolist()
    val = evaluate(fit.model, pipe, fit.val_items, fit.val_starts, fit.n_sections, hp.lam, cfg.machine_loss,
                   batch_size=max(hp.batch_size, 64))
    seconds = time.perf_counter() - t0
    return {"epoch": epoch + 1, "train_loss": means[0], "train_machine": means[1], "train_product": means[2],
            **val, "lr": fit.scheduler.get_last_lr()[0], "seconds": seconds, "train_seconds": train_seconds,
            "crops_per_s": n_crops / train_seconds, "best": False}


def fit_epochs(cfg: TrainConfig, fit: Fit, state: FitState, meta: dict,
               callback: Callable[[int, dict], None] | None = None) -> None:
    """The fit loop: every epoch after ``state.epoch``, each followed by its checkpoints, log and run.json."""
    from minasd.progress import tqdm

    out, steps = Path(cfg.out_dir), len(fit.sampler)
    bar = tqdm(total=fit.hp.epochs * steps, initial=state.epoch * steps, desc=f"train {cfg.machine_type}",
               unit="step", disable=not cfg.progress)
    fit.model.train()
    for epoch in range(state.epoch, fit.hp.epochs):
        record = run_epoch(cfg, fit, epoch, bar)
        if record["val_loss"] < state.best_val:
            state.best_val, state.best_epoch, record["best"] = record["val_loss"], epoch + 1, True
        state.epoch = epoch + 1
        state.history.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{record['val_loss']:.3f}",
                        acc=f"{record['val_section_acc']:.2f}")
        save_checkpoints(cfg, fit.plain, fit.optimizer, fit.scheduler, state, best=record["best"])
        record_epoch(out, meta, state)
        if callback is not None:
            callback(epoch + 1, record)
    bar.close()
    finish_run_json(out, meta)
    print(f"[train] done: best validation loss {state.best_val:.4f} at epoch {state.best_epoch}; run in {out}")


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False,
          callback: Callable[[int, dict], None] | None = None) -> Path:
    """Train one machine type's model and write its run directory (Book: chapter 4).

    Data (:func:`build_data`), model and optimiser (:func:`build_fit`), then the fit loop
    (:func:`fit_epochs`); the run directory's bookkeeping (resume, split, run.json,
    checkpoints) is :mod:`minasd.runs`'.

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
    cfg = dataclasses.replace(cfg, data_root=str(Path(cfg.data_root).resolve()),
                              out_dir=str(Path(cfg.out_dir).resolve()))
    hp = cfg.hparams()
    device = resolve_device(cfg.device)
    if not Path(cfg.data_root).is_dir():
        raise FileNotFoundError(f"data root {cfg.data_root} does not exist")
    out = Path(cfg.out_dir)
    resuming = prepare_run_dir(cfg, resume, overwrite)

    td, sel, stats = build_data(cfg)
    runtime_history = write_split(cfg, sel, stats, resuming)
    fit = build_fit(cfg, td, stats, len(sel["sections"]), device)
    state = FitState()
    if resuming:
        state = resume_fit(out, fit.plain, fit.optimizer, fit.scheduler, fit.sampler)
        print(f"[train] resuming {out} after epoch {state.epoch} of {hp.epochs}")
    meta = begin_run_json(cfg, sel, td.store, stats, fit.rt, runtime_history, fit.plain.to_spec(),
                          steps_per_epoch=len(fit.sampler), val_crops=int(fit.val_items.shape[0]), state=state)
    counts, rt = meta["counts"], fit.rt
    print(f"[train] {cfg.machine_type}: {counts['target_train']} target + {counts['other_train']} other-type "
          f"training clips, {counts['target_val']} + {counts['other_val']} validation clips, K={fit.n_sections}, "
          f"device {rt.device} ({rt.memory_format}, autocast {rt.autocast_dtype or 'off'}), "
          f"{hp.epochs} epochs x {len(fit.sampler)} steps of {hp.batch_size}")
    fit_epochs(cfg, fit, state, meta, callback)
    return out
