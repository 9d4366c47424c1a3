"""Speed of the training step: the old input path against the new one, in one run (issues 12, 13; Book: chapter 4).

Modes:

  python benchmarks/bench_train.py --device cpu --out benchmarks/results/train_cpu.txt
        # CPU: old vs new path, B0, batch 32, 2 threads
  python benchmarks/bench_train.py --device cuda [--compile]    # GPU: the same comparison at batch 128
  python benchmarks/bench_train.py --device cuda --concurrent 7 --seconds 120
        # GPU: 7 machine types trained at once (new path) on full-size data (7 x 6000 clips x 10 s
        # in a memory-mapped store on disk), one thread and CUDA stream per type, for a timed part;
        # extrapolated to the paper's protocol (7 types x 300 epochs x 10,800 crops = 22.7 M crops)

The comparison times four steps on the same encoder (EfficientNet-B0 unless --backbone), batch
and data, interleaved round by round so that a change of machine load hits all four alike;
each figure is the median over the timed steps:

* **old path** (the trainer before the waveform store; re-implemented here as the reference):
  every clip in one int16 tensor on the device, crops cut by a gather on the device, float32
  in the contiguous layout on CPU (bf16 autocast + channels_last on CUDA).
* **new path** (the trainer's own code: :func:`minasd.train.train_step`,
  :class:`minasd.train.CropPipeline`): crops gathered on the host from the memory-mapped
  store, the device settings of :func:`minasd.runtime.runtime_settings`.
* for each: (a) the model-only step (log-mel input already on the device; forward, Eq. 3
  without Mixup, backward, AdamW + OneCycleLR) and (b) the whole step (sampler indices ->
  crops -> normalisation -> log-mel -> Mixup -> Eq. 3 -> backward -> optimiser).

Reported: s/step and crops/s of each, new/old (goal on CPU >= 1.5), whole/model-only of the
new path (goal >= 0.95), and the share of the whole step spent on crop + log-mel (timed on
its own, without gradients).  Waveforms are random 16-bit noise of the real sizes (the
step's cost does not depend on what the audio holds), written to a temporary store.  Output:
one block of text with the date, the device, the versions, the commit and the machine load;
commit it under benchmarks/results/ when the machine was otherwise idle.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from minasd.config import MACHINE_TYPES, SAMPLE_RATE, SEGMENT_SECONDS, hparams_for
from minasd.io_utils import git_commit
from minasd.losses import two_bce_loss
from minasd.mixup import mixup, product_targets
from minasd.model import ASDModel
from minasd.runtime import RuntimeSettings, runtime_settings
from minasd.sampler import BalancedBatchSampler
from minasd.store import PCM_SCALE, WaveStore
from minasd.train import CropPipeline, TrainData, train_step

PAPER_CROPS = 7 * 300 * 2 * 5400  # 7 types x 300 epochs x (5,400 positives + as many negatives)
N_SECTIONS = 6
SEG_LEN = int(SEGMENT_SECONDS * SAMPLE_RATE)
STD = 4096 / PCM_SCALE  # the noise's amplitude: 1/8 of full scale, like machine recordings


def fake_store(folder: Path, n_types: int, clips_per_type: int, seconds: float, seed: int = 0) -> WaveStore:
    """A store of random int16 clips written in chunks to ``folder`` (no float copy of the whole set)."""
    n = n_types * clips_per_type
    n_samples = int(seconds * SAMPLE_RATE)
    path = folder / "waves.int16"
    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        for lo in range(0, n, 64):
            k = min(64, n - lo) * n_samples
            fh.write(np.clip(rng.standard_normal(k, dtype=np.float32) * 4096, -32768, 32767).astype(np.int16).tobytes())
    waves = np.memmap(path, dtype=np.int16, mode="r", shape=(n * n_samples,))
    return WaveStore(folder, folder, "fake", [f"clip_{i}.wav" for i in range(n)],
                     np.arange(n, dtype=np.int64) * n_samples, np.full(n, n_samples, dtype=np.int64), waves)


def train_data(store: WaveStore, n_types: int, machine: str) -> TrainData:
    """Items = every clip of the store; types in blocks; ``machine``'s clips are the positives."""
    per = len(store) // n_types
    machines = [MACHINE_TYPES[i // per] for i in range(len(store))]
    is_t = np.asarray([m == machine for m in machines], dtype=np.float32)
    section = np.where(is_t > 0, (np.cumsum(is_t) - 1) % N_SECTIONS, -1).astype(np.int64)
    return TrainData(paths=list(store.paths), machines=machines, is_target=is_t, section_class=section,
                     store=store, clips=np.arange(len(store), dtype=np.int64), n_train=len(store))


class _Batches:
    """Endless full batches of the balanced sampler (constant shapes), epoch after epoch."""

    def __init__(self, machines: list[str], machine: str, batch: int, seed: int):
        self.sampler = BalancedBatchSampler(machines, machine, batch, seed=seed)
        if self.sampler.positives.size < batch // 2:
            raise SystemExit(f"bench_train.py: {self.sampler.positives.size} clips per type make no full batch of "
                             f"{batch}; pass --clips-per-type >= {batch // 2}")
        self.batch = batch
        self.it = self._gen()

    def _gen(self):
        epoch = 0
        while True:
            self.sampler.set_epoch(epoch)
            yield from (b for b in self.sampler.epoch_batches() if len(b) == self.batch)  # constant shapes
            epoch += 1

    def __next__(self) -> np.ndarray:
        return next(self.it)


class NewPath:
    """The trainer's path: store, CropPipeline, train_step, runtime settings."""

    def __init__(self, data: TrainData, machine: str, batch: int, device: torch.device, compile_: bool,
                 backbone: str | None, seed: int = 0):
        torch.manual_seed(seed)
        model = ASDModel(N_SECTIONS, backbone=backbone)
        self.rt = runtime_settings(device, model.backbone_name, compile=compile_)
        self.plain = self.rt.prepare_model(model)
        self.opt = torch.optim.AdamW(self.plain.parameters(), lr=1e-3)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=1e-3, total_steps=10**7)
        self.model = self.rt.maybe_compile(self.plain)
        self.pipe = CropPipeline(data, 0.0, STD, SEG_LEN, self.rt)
        self.batches = _Batches(data.machines, machine, batch, seed)
        self.crop_rng = np.random.default_rng(seed)
        self.gen = torch.Generator(device=self.rt.torch_device).manual_seed(seed)
        self.lam = hparams_for(machine).lam

    def whole_step(self) -> int:
        idx = next(self.batches)
        starts = self.pipe.random_starts(idx, self.crop_rng)
        train_step(self.model, self.opt, self.sched, self.pipe, idx, starts, self.gen, N_SECTIONS, self.lam,
                   True, True)
        return idx.shape[0]

    @torch.no_grad()
    def features(self) -> int:
        """Crop + log-mel only (the input pipeline's share of the step)."""
        idx = next(self.batches)
        self.pipe(idx, self.pipe.random_starts(idx, self.crop_rng))
        return idx.shape[0]

    def model_only_step(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> int:
        with self.rt.autocast():
            _, ml, pl = self.model(self.rt.model_input(x))
        loss = two_bce_loss(ml.float(), pl.float(), t, y, lam=self.lam).total
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        return x.shape[0]


class OldPath:
    """The trainer before the store, as the reference: all waveforms in one int16 tensor on the
    device, crops cut there by one gather; float32 contiguous on CPU, bf16 + channels_last on CUDA."""

    def __init__(self, data: TrainData, machine: str, batch: int, device: torch.device, compile_: bool,
                 backbone: str | None, seed: int = 0):
        from minasd.features import LogMel

        self.device = device
        cuda = device.type == "cuda"
        self.waves = torch.from_numpy(np.array(data.store.waves)).to(device)  # (total,) int16, in memory
        self.offsets = torch.from_numpy(data.store.offsets[data.clips]).to(device)
        self.lengths = torch.from_numpy(data.lengths).to(device)
        self.is_target = torch.from_numpy(data.is_target).to(device)
        self.section_class = torch.from_numpy(data.section_class).to(device)
        self.ramp = torch.arange(SEG_LEN, device=device)
        self.logmel = LogMel().to(device)
        torch.manual_seed(seed)
        model = ASDModel(N_SECTIONS, backbone=backbone).to(device)
        self.layout = torch.channels_last if cuda else torch.contiguous_format
        self.plain = model.to(memory_format=self.layout)
        self.amp = torch.bfloat16 if cuda else None
        self.opt = torch.optim.AdamW(self.plain.parameters(), lr=1e-3)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=1e-3, total_steps=10**7)
        self.model = torch.compile(self.plain) if compile_ else self.plain
        self.batches = _Batches(data.machines, machine, batch, seed)
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.lam = hparams_for(machine).lam

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1).contiguous(memory_format=self.layout)

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=self.amp or torch.bfloat16,
                              enabled=self.amp is not None)

    def _features(self, idx: torch.Tensor) -> torch.Tensor:
        room = (self.lengths[idx] - SEG_LEN + 1).double()
        u = torch.rand(idx.shape[0], generator=self.gen, device=self.device, dtype=torch.float64)
        starts = torch.minimum((u * room).long(), (room - 1).long())
        pos = (self.offsets[idx] + starts)[:, None] + self.ramp[None, :]  # (B, seg_len)
        wave = self.waves[pos].float() / PCM_SCALE
        return self.logmel((wave - 0.0) / STD)

    def whole_step(self) -> int:
        idx = torch.from_numpy(next(self.batches)).to(self.device)
        x = self._features(idx)
        t = self.is_target[idx]
        y = product_targets(self.section_class[idx], t, N_SECTIONS)
        batch = mixup(x, t, y, generator=self.gen)
        with self._autocast():
            _, ml, pl = self.model(self._input(batch.x))
        parts = two_bce_loss(ml.float(), pl.float(), batch.t, batch.product_target, lam=self.lam,
                             has_target=batch.has_target)
        self.opt.zero_grad(set_to_none=True)
        parts.total.backward()
        self.opt.step()
        self.sched.step()
        return idx.shape[0]

    @torch.no_grad()
    def features(self) -> int:
        idx = torch.from_numpy(next(self.batches)).to(self.device)
        self._features(idx)
        return idx.shape[0]

    def model_only_step(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> int:
        with self._autocast():
            _, ml, pl = self.model(self._input(x))
        loss = two_bce_loss(ml.float(), pl.float(), t, y, lam=self.lam).total
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        return x.shape[0]


def _sync(device: torch.device) -> None:
    RuntimeSettings(str(device)).synchronize()


def step_times(fn, steps: int, device: torch.device) -> list[tuple[float, int]]:
    """(seconds, crops) of each of ``steps`` calls of ``fn``."""
    out = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        crops = fn()
        _sync(device)
        out.append((time.perf_counter() - t0, crops))
    return out


def header(device: torch.device, args) -> list[str]:
    import timm

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return [
        f"date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
        f"device: {device} ({name}; CPU capability {torch.backends.cpu.get_cpu_capability()}); "
        f"torch {torch.__version__}, timm {timm.__version__}; threads {torch.get_num_threads()}",
        f"commit: {git_commit()}",
        f"load average before the run (1/5/15 min): {' '.join(f'{v:.2f}' for v in os.getloadavg())}",
        f"command: bench_train.py {' '.join(args._argv)}",
    ]


def step_comparison(args, device: torch.device, folder: Path) -> list[str]:
    n_types = len(MACHINE_TYPES)
    store = fake_store(folder, n_types, args.clips_per_type, args.clip_seconds)
    data = train_data(store, n_types, MACHINE_TYPES[0])
    paths = {"old": OldPath(data, MACHINE_TYPES[0], args.batch, device, args.compile, args.backbone),
             "new": NewPath(data, MACHINE_TYPES[0], args.batch, device, args.compile, args.backbone)}
    g = torch.Generator(device=device).manual_seed(1)
    frames = SEG_LEN // 256 + 1
    x = torch.randn(args.batch, 224, frames, generator=g, device=device)
    t = (torch.arange(args.batch, device=device) < args.batch // 2).float()
    y = product_targets(torch.arange(args.batch, device=device) % N_SECTIONS, t, N_SECTIONS)
    runs = {f"{p} {kind}": [] for p in paths for kind in ("model-only", "whole", "crop+log-mel")}
    for p in paths.values():  # warm-up (and compilation) outside the timed part
        for _ in range(args.warmup):
            p.model_only_step(x, t, y)
            p.whole_step()
            p.features()
    for _ in range(args.steps):  # interleaved: a change of load hits every variant alike
        for name, p in paths.items():
            runs[f"{name} model-only"] += step_times(lambda: p.model_only_step(x, t, y), 1, device)
            runs[f"{name} whole"] += step_times(p.whole_step, 1, device)
            runs[f"{name} crop+log-mel"] += step_times(p.features, 1, device)
    med = {k: statistics.median(s for s, _ in v) for k, v in runs.items()}
    rate = {k: args.batch / v for k, v in med.items()}
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    new_rt = paths["new"].rt
    old_prec = "bf16 autocast + channels_last" if device.type == "cuda" else "float32, contiguous"
    new_prec = f"{new_rt.autocast_dtype or 'float32'}, {new_rt.memory_format}"
    lines = [
        f"model: {args.backbone or 'efficientnet_b0'} ({'EfficientNet-B0' if not args.backbone else 'not the paper encoder'}), "
        f"batch {args.batch}, input 1x224x{frames}, compile={args.compile}; "
        f"median of {args.steps} interleaved timed steps after {args.warmup} warm-up",
        f"data: {n_types} x {args.clips_per_type} clips x {args.clip_seconds:g} s int16 ({store.nbytes / 2**20:.0f} MiB)",
        f"old path: crops from an int16 tensor on {device}, {old_prec}",
        f"new path: crops from the memory-mapped store, runtime_settings = {new_rt.to_dict()}",
    ]
    for k in runs:
        lines.append(f"  {k:22s}: {med[k]:8.4f} s/step  {rate[k]:9.1f} crops/s")
    lines += [
        f"new / old, whole step         : {rate['new whole'] / rate['old whole']:.2f}x  (goal on CPU >= 1.5)",
        f"new / old, model-only step    : {rate['new model-only'] / rate['old model-only']:.2f}x",
        f"whole / model-only, new path  : {rate['new whole'] / rate['new model-only']:.3f}  (goal >= 0.95)",
        f"whole / model-only, old path  : {rate['old whole'] / rate['old model-only']:.3f}",
        f"crop + log-mel share of the whole step: new {med['new crop+log-mel'] / med['new whole']:.1%}, "
        f"old {med['old crop+log-mel'] / med['old whole']:.1%}",
        f"peak RSS (both paths, old path's waveforms included): {rss_mb:.0f} MiB",
    ]
    if device.type == "cuda":
        lines.append(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    return lines


def concurrent(args, device: torch.device, folder: Path) -> list[str]:
    """Train ``args.concurrent`` machine types at once for ``args.seconds``, one thread + stream each (new path)."""
    t0 = time.perf_counter()
    n_types = len(MACHINE_TYPES)
    store = fake_store(folder, n_types, args.clips_per_type, args.clip_seconds)
    load_s = time.perf_counter() - t0
    types = list(MACHINE_TYPES[: args.concurrent])
    trainers = [NewPath(train_data(store, n_types, m), m, hparams_for(m).batch_size if args.table1_batch else args.batch,
                        device, args.compile, args.backbone, seed=i) for i, m in enumerate(types)]
    for tr in trainers:  # warm-up (and compilation) outside the timed part
        for _ in range(args.warmup):
            tr.whole_step()
    _sync(device)
    crops = [0] * len(trainers)
    stop = time.perf_counter() + args.seconds

    def work(i: int) -> None:
        stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        ctx = torch.cuda.stream(stream) if stream is not None else _Null()
        with ctx:
            while time.perf_counter() < stop:
                crops[i] += trainers[i].whole_step()
        if stream is not None:
            stream.synchronize()

    t1 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(trainers))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    _sync(device)
    wall = time.perf_counter() - t1
    rate = sum(crops) / wall
    lines = [f"concurrent: {len(types)} types {types}, batch {'Table I' if args.table1_batch else args.batch}, "
             f"data {n_types} x {args.clips_per_type} clips x {args.clip_seconds:g} s int16 in a store on disk "
             f"({store.nbytes / 2**30:.1f} GiB, written in {load_s:.0f} s)"]
    lines += [f"  {m:9s}: {c:8d} crops  {c / wall:8.1f} crops/s" for m, c in zip(types, crops)]
    lines += [f"aggregate: {rate:.1f} crops/s over {wall:.1f} s",
              f"paper protocol: {PAPER_CROPS / 1e6:.2f} M crops / {rate:.1f} crops/s = {PAPER_CROPS / rate / 60:.1f} min"
              " (training steps only; validation adds about 1,200 forward-only crops per type and epoch)",
              f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"]
    if device.type == "cuda":
        lines.append(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    return lines


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main(argv=None) -> None:
    import sys

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: 128 on CUDA, 32 on CPU)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (CPU mode; default 2)")
    p.add_argument("--steps", type=int, default=None, help="timed steps of each variant (default: 50 CUDA, 5 CPU)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: 10 CUDA, 2 CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--backbone", default=None, help="timm encoder (default efficientnet_b0)")
    p.add_argument("--clips-per-type", type=int, default=None,
                   help="clips per machine type (default: 6000 = full size for --concurrent, else 200 CUDA / 40 CPU)")
    p.add_argument("--clip-seconds", type=float, default=10.0)
    p.add_argument("--concurrent", type=int, default=0, help="train this many machine types at once")
    p.add_argument("--seconds", type=float, default=120.0, help="timed part of --concurrent")
    p.add_argument("--table1-batch", action="store_true", help="--concurrent: each type at its Table I batch size")
    p.add_argument("--tmp", type=Path, default=None, help="folder for the temporary store (default: system temp)")
    p.add_argument("--out", type=Path, default=None, help="also write the report to this file (atomically)")
    args = p.parse_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("bench_train.py: CUDA is not available; use --device cpu")
    if not cuda:
        torch.set_num_threads(args.threads)
    args.batch = args.batch or (128 if cuda else 32)
    args.steps = args.steps or (50 if cuda else 5)
    args.warmup = args.warmup if args.warmup is not None else (10 if cuda else 2)
    if args.clips_per_type is None:
        args.clips_per_type = 6000 if args.concurrent else (200 if cuda else 40)
    RuntimeSettings(str(device)).setup_backends()
    lines = header(device, args)
    with tempfile.TemporaryDirectory(prefix="bench_train_", dir=args.tmp) as tmp:
        lines += concurrent(args, device, Path(tmp)) if args.concurrent else step_comparison(args, device, Path(tmp))
    print("\n".join(lines))
    if args.out is not None:
        from minasd.io_utils import atomic_write_text

        atomic_write_text(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
