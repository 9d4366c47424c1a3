"""Speed of the training step (issue 5; Book: chapter 4).

Modes (the step timed is the trainer's own code: minasd.train.train_step and CropPipeline):

  python benchmarks/bench_train.py --device cpu                 # CPU: s/step at batch 32, 2 threads, peak RSS
  python benchmarks/bench_train.py --device cuda [--compile]    # GPU: (a) model-only vs (b) whole step, batch 128
  python benchmarks/bench_train.py --device cuda --concurrent 7 --seconds 120
        # GPU: 7 machine types trained at once on full-size data (7 x 6000 clips x 10 s, int16 on
        # the GPU), one thread and CUDA stream per type, for a timed part; extrapolated to the
        # paper's protocol (7 types x 300 epochs x 10,800 crops = 22.7 M crops)

(a) model-only step: the same model, batch and precision (bf16 autocast + channels_last on
CUDA), input a log-mel tensor already on the device, loss Eq. 3 without Mixup, backward,
AdamW + OneCycleLR.  (b) the whole step: sampler indices -> random 2 s crops by gather on
the device -> amplitude normalisation -> log-mel -> Mixup -> Eq. 3 -> backward -> optimiser.
The ratio (b)/(a) says how much the input pipeline costs (goal on the GPU: >= 0.90).

Waveforms are random 16-bit noise of the real sizes (the step's cost does not depend on what
the audio holds); nothing is read from disk.  Output: one block of text with the date, the
device, the versions and the commit; commit it under benchmarks/results/.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import resource
import threading
import time

import numpy as np
import torch

from minasd.config import MACHINE_TYPES, SAMPLE_RATE, SEGMENT_SECONDS, hparams_for
from minasd.io_utils import git_commit
from minasd.losses import two_bce_loss
from minasd.mixup import product_targets
from minasd.model import ASDModel
from minasd.sampler import BalancedBatchSampler
from minasd.train import CropPipeline, TrainData, _to_model_input, train_step

PAPER_CROPS = 7 * 300 * 2 * 5400  # 7 types x 300 epochs x (5,400 positives + as many negatives)
N_SECTIONS = 6


def fake_data(n_types: int, clips_per_type: int, seconds: float, device: torch.device, target: int = 0,
              seed: int = 0) -> TrainData:
    """Random int16 waveforms of ``n_types`` x ``clips_per_type`` clips, flat on ``device``."""
    n = n_types * clips_per_type
    n_samples = int(seconds * SAMPLE_RATE)
    g = torch.Generator(device=device).manual_seed(seed)
    # 1/8 of full scale, like machine recordings; int16 as the trainer stores them; made in
    # chunks so that no float copy of the whole set is ever held
    waves = torch.empty(n * n_samples, dtype=torch.int16, device=device)
    chunk = 64 * n_samples
    for lo in range(0, waves.numel(), chunk):
        hi = min(lo + chunk, waves.numel())
        waves[lo:hi] = (torch.randn(hi - lo, generator=g, device=device) * 4096).clamp(-32768, 32767).to(torch.int16)
    machines = [MACHINE_TYPES[i % len(MACHINE_TYPES)] for i in range(n_types) for _ in range(clips_per_type)]
    return retarget(TrainData(
        paths=[f"clip_{i}.wav" for i in range(n)], machines=machines,
        is_target=torch.zeros(n, device=device), section_class=torch.zeros(n, dtype=torch.int64, device=device),
        offsets=torch.arange(n, device=device) * n_samples, lengths=torch.full((n,), n_samples, device=device),
        waves=waves, n_train=n), MACHINE_TYPES[target])


def retarget(data: TrainData, machine: str) -> TrainData:
    """The same waveforms (shared, not copied) with ``machine`` as the target type."""
    dev = data.waves.device
    is_t = torch.tensor([m == machine for m in data.machines], device=dev, dtype=torch.float32)
    pos = torch.cumsum(is_t, 0).long() - 1
    section = torch.where(is_t > 0, pos % N_SECTIONS, torch.full_like(pos, -1))
    return dataclasses.replace(data, is_target=is_t, section_class=section)


class Trainer:
    """One machine type's model, optimiser, sampler and pipeline over shared waveforms."""

    def __init__(self, data: TrainData, machine: str, batch: int, device: torch.device, compile_: bool,
                 backbone: str | None = None, seed: int = 0):
        self.device = device
        self.data = retarget(data, machine)
        torch.manual_seed(seed)
        model = ASDModel(N_SECTIONS, backbone=backbone).to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        self.sampler = BalancedBatchSampler(self.data.machines, machine, batch, seed=seed)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=1e-3, total_steps=10**7)
        self.model = torch.compile(model) if compile_ else model
        self.pipe = CropPipeline(self.data, 0.0, 4096 / 32768, int(SEGMENT_SECONDS * SAMPLE_RATE))
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.amp = torch.bfloat16 if device.type == "cuda" else None
        self.lam = hparams_for(machine).lam
        self.batches = self._batches()

    def _batches(self):
        epoch = 0
        while True:
            self.sampler.set_epoch(epoch)
            flat = torch.from_numpy(np.concatenate(self.sampler.epoch_batches())).to(self.device)
            bs = self.sampler.batch_size
            for b in range(len(self.sampler) - 1):  # full batches only: constant shapes
                yield flat[b * bs:(b + 1) * bs]
            epoch += 1

    def whole_step(self) -> int:
        idx = next(self.batches)
        train_step(self.model, self.opt, self.sched, self.pipe, idx, self.gen, N_SECTIONS, self.lam,
                   True, True, self.amp)
        return idx.shape[0]

    def model_only_step(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> int:
        with torch.autocast(device_type=self.device.type, dtype=self.amp or torch.bfloat16,
                            enabled=self.amp is not None):
            _, ml, pl = self.model(_to_model_input(x))
        loss = two_bce_loss(ml.float(), pl.float(), t, y, lam=self.lam).total
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        return x.shape[0]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, steps: int, warmup: int, device: torch.device) -> tuple[float, int]:
    """Seconds and crops of ``steps`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    crops = sum(fn() for _ in range(steps))
    _sync(device)
    return time.perf_counter() - t0, crops


def header(device: torch.device, args) -> list[str]:
    import timm

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return [
        f"date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
        f"device: {device} ({name}); torch {torch.__version__}, timm {timm.__version__}; "
        f"threads {torch.get_num_threads()}",
        f"commit: {git_commit()}",
        f"load average before the run (1/5/15 min): {' '.join(f'{v:.2f}' for v in os.getloadavg())}",
        f"command: bench_train.py {' '.join(args._argv)}",
    ]


def step_comparison(args, device: torch.device) -> list[str]:
    data = fake_data(len(MACHINE_TYPES), args.clips_per_type, args.clip_seconds, device)
    tr = Trainer(data, MACHINE_TYPES[0], args.batch, device, args.compile, args.backbone)
    g = torch.Generator(device=device).manual_seed(1)
    frames = (int(SEGMENT_SECONDS * SAMPLE_RATE)) // 256 + 1
    x = torch.randn(args.batch, 224, frames, generator=g, device=device)
    t = (torch.arange(args.batch, device=device) < args.batch // 2).float()
    y = product_targets(torch.arange(args.batch, device=device) % N_SECTIONS, t, N_SECTIONS)
    sec_a, crops_a = timed(lambda: tr.model_only_step(x, t, y), args.steps, args.warmup, device)
    sec_b, crops_b = timed(tr.whole_step, args.steps, args.warmup, device)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    prec = "bf16 autocast + channels_last" if device.type == "cuda" else "float32"
    lines = [
        f"model: {tr.model.__class__.__name__ if not args.backbone else args.backbone} "
        f"({'EfficientNet-B0' if not args.backbone else 'not the paper encoder'}), batch {args.batch}, "
        f"input 1x224x{frames}, {prec}, compile={args.compile}, {args.steps} timed steps after {args.warmup} warm-up",
        f"(a) model-only step : {sec_a / args.steps:8.4f} s/step  {crops_a / sec_a:9.1f} crops/s",
        f"(b) whole step      : {sec_b / args.steps:8.4f} s/step  {crops_b / sec_b:9.1f} crops/s",
        f"ratio (b)/(a)       : {(crops_b / sec_b) / (crops_a / sec_a):.3f}",
        f"peak RSS            : {rss_mb:.0f} MiB",
    ]
    if device.type == "cuda":
        lines.append(f"peak GPU memory     : {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    return lines


def concurrent(args, device: torch.device) -> list[str]:
    """Train ``args.concurrent`` machine types at once for ``args.seconds``, one thread + stream each."""
    t0 = time.perf_counter()
    data = fake_data(len(MACHINE_TYPES), args.clips_per_type, args.clip_seconds, device)
    _sync(device)
    load_s = time.perf_counter() - t0
    types = list(MACHINE_TYPES[: args.concurrent])
    trainers = [Trainer(data, m, hparams_for(m).batch_size if args.table1_batch else args.batch, device,
                        args.compile, args.backbone, seed=i) for i, m in enumerate(types)]
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
             f"data {len(MACHINE_TYPES)} x {args.clips_per_type} clips x {args.clip_seconds:g} s int16 on {device} "
             f"({data.waves.numel() * 2 / 2**30:.1f} GiB, made in {load_s:.0f} s)"]
    lines += [f"  {m:9s}: {c:8d} crops  {c / wall:8.1f} crops/s" for m, c in zip(types, crops)]
    lines += [f"aggregate: {rate:.1f} crops/s over {wall:.1f} s",
              f"paper protocol: {PAPER_CROPS / 1e6:.2f} M crops / {rate:.1f} crops/s = {PAPER_CROPS / rate / 60:.1f} min"
              " (training steps only; validation adds about 1,200 forward-only crops per type and epoch)"]
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
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: 50 CUDA, 5 CPU)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: 10 CUDA, 2 CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--backbone", default=None, help="timm encoder (default efficientnet_b0)")
    p.add_argument("--clips-per-type", type=int, default=None,
                   help="clips per machine type (default: 6000 = full size for --concurrent, else 200 CUDA / 40 CPU)")
    p.add_argument("--clip-seconds", type=float, default=10.0)
    p.add_argument("--concurrent", type=int, default=0, help="train this many machine types at once")
    p.add_argument("--seconds", type=float, default=120.0, help="timed part of --concurrent")
    p.add_argument("--table1-batch", action="store_true", help="--concurrent: each type at its Table I batch size")
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
    if cuda:
        torch.backends.cudnn.benchmark = True
    lines = header(device, args)
    lines += concurrent(args, device) if args.concurrent else step_comparison(args, device)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
