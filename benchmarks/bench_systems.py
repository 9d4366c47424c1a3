"""CPU cost of the comparison systems per machine type at the protocol size (issue 22).

  python benchmarks/bench_systems.py                  # protocol size, all 7 types, 100 AE epochs
        # -> benchmarks/results/systems_cpu.txt (run it on an otherwise idle machine)
  python benchmarks/bench_systems.py --size tiny --epochs 2 --types fan --out /tmp/systems.txt
        # a quick check that the script works (its numbers mean nothing)

For each machine type a one-type synthetic set of the chosen size (:data:`minasd.synth.SIZES`)
is generated (or reused, with ``--data``), then every system runs on it in this process with
one torch thread and one feature worker, so that CPU seconds (this process's
``time.process_time``) measure the work; wall seconds are printed beside them.  Data
generation is not timed, and a warm-up pays the one-off costs of first calls before the clocks run.

Systems (:data:`SYSTEMS`), each timed by phase:

* ``gmm_meanstd``: :func:`minasd.baseline.run_baseline` (features, fits and scores in one
  phase): the reference of the ratio column.
* ``ae_dcase2021``: :func:`minasd.dcase_ae.run_ae`, both models of the type (sections 00-02 and
  03-05): features (training and test clips), training (``--epochs``, default the recipe's 100),
  scoring (training clips for the threshold, then the test clips).
* ``twfr_gmm``: :mod:`minasd.twfr` with its default grid (51 r x 4 k): features (log-mel and
  the pooling of the whole r grid, all clips), gmm (the selection grid on sections 00-02, then
  the chosen (k, r) fitted and scored on every section).  Deterministic: one run, no seeds.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from minasd.config import MACHINE_TYPES
from minasd.synth import SIZES, make_dataset

OUT = Path(__file__).resolve().parent / "results" / "systems_cpu.txt"
REFERENCE = "gmm_meanstd"

Phases = dict[str, tuple[float, float]]  # phase -> (CPU seconds, wall seconds)


def bench_gmm(root: Path, machine: str, args: argparse.Namespace) -> tuple[Phases, str]:
    """The mean/std GMM baseline on one type: one phase."""
    from minasd.baseline import run_baseline

    w, c = time.perf_counter(), time.process_time()
    run_baseline(root, [machine], workers=1, progress=False)
    return {"total": (time.process_time() - c, time.perf_counter() - w)}, ""


def bench_ae(root: Path, machine: str, args: argparse.Namespace) -> tuple[Phases, str]:
    """The DCASE 2021 autoencoder on one type: features, training and scoring, both models summed."""
    from minasd.dcase_ae import AEConfig, run_ae

    models: list = []
    run_ae(root, [machine], cfg=AEConfig(epochs=args.epochs, seed=0, threads=1), workers=1, progress=False,
           models=models)
    walls = {"features": "feature_seconds", "train": "train_seconds", "score": "score_seconds"}
    phases = {ph: (sum(m["cpu_seconds"][ph] for m in models), sum(m[key] for m in models)) for ph, key in walls.items()}
    phases["total"] = tuple(sum(v[i] for v in phases.values()) for i in (0, 1))
    epoch_s = [s for m in models for s in m["history"]["epoch_seconds"]]
    note = (f"{len(models)} models, {args.epochs} epochs, {models[0]['history']['steps_per_epoch']} steps/epoch, "
            f"mean epoch {sum(epoch_s) / len(epoch_s):.3f} s wall")
    return phases, note


def bench_twfr(root: Path, machine: str, args: argparse.Namespace) -> tuple[Phases, str]:
    """TWFR-GMM on one type: features (pooled over the whole r grid), then selection grid + final fits."""
    import pandas as pd

    from minasd.data import index, protocol_clips
    from minasd.twfr import TWFRConfig, clip_pooled, evaluate_pooled

    cfg, sel = TWFRConfig(), []
    df = index(root)
    df = pd.concat([protocol_clips(df, split, machines=[machine]) for split in ("train", "test")])
    df = df.sort_values("path", kind="stable").reset_index(drop=True)  # as run_twfr
    w, c = time.perf_counter(), time.process_time()
    pooled = clip_pooled(df["path"].tolist(), cfg, workers=1, progress=False)
    phases = {"features": (time.process_time() - c, time.perf_counter() - w)}
    w, c = time.perf_counter(), time.process_time()
    evaluate_pooled(df, pooled, cfg, selection=sel)
    phases["gmm"] = (time.process_time() - c, time.perf_counter() - w)
    phases["total"] = tuple(sum(v[i] for v in phases.values()) for i in (0, 1))
    chosen = next(r for r in sel if r["chosen"])
    return phases, f"{len(sel)} candidates on 00-02; chosen k={chosen['k']}, r={chosen['r']:g}"


def warm_up() -> None:
    """Pay the first calls' one-off costs (imports, kernel set-up: about 3 s) before any clock runs."""
    import numpy as np

    from minasd.baseline import fit_section, wave_features
    from minasd.dcase_ae import AEConfig, ae_logmel, fit_ae

    rng = np.random.default_rng(0)
    fit_ae(rng.standard_normal((64, 640)).astype(np.float32), AEConfig(epochs=1))
    fit_section(rng.standard_normal((8, 448)))
    from minasd import twfr

    twfr.fit_section(rng.standard_normal((8, 128)), 2)
    twfr.twfr_logmel(np.zeros(16000, np.float32))
    wave_features(np.zeros((1, 32000), np.float32))
    ae_logmel(torch.zeros(16000))


#: name -> function(root, machine, args) returning ({phase: (cpu_s, wall_s)}, note).
SYSTEMS: dict[str, Callable[[Path, str, argparse.Namespace], tuple[Phases, str]]] = {
    "gmm_meanstd": bench_gmm,
    "ae_dcase2021": bench_ae,
    "twfr_gmm": bench_twfr,
}


def _header(args: argparse.Namespace, load_before: tuple[float, ...]) -> list[str]:
    from minasd import __version__
    from minasd.io_utils import git_commit

    spec = SIZES[args.size]
    return [
        "# bench_systems: CPU seconds per machine type and system (benchmarks/bench_systems.py)",
        f"date        {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
        f"commit      {git_commit()}",
        f"machine     {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible; one torch "
        f"thread, one process; load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}",
        f"software    minasd {__version__}, torch {torch.__version__}, python {platform.python_version()}",
        f"data        synthetic size {args.size!r}: per section {spec.n_train} training clips, "
        f"{spec.n_test_normal} + {spec.n_test_anomaly} test clips, {spec.seconds:g} s; 6 sections per type",
        f"settings    AE epochs {args.epochs}; ratio = system total CPU / {REFERENCE} total CPU of the same type",
        "",
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=list(SIZES), default="protocol", help="synthetic set size (default: protocol)")
    p.add_argument("--types", nargs="+", default=list(MACHINE_TYPES), choices=list(MACHINE_TYPES))
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    p.add_argument("--epochs", type=int, default=100, help="AE epochs (default: the recipe's 100)")
    p.add_argument("--data", type=Path, default=None, help="where the one-type sets go (default: a temp dir)")
    p.add_argument("--out", type=Path, default=OUT, help=f"report file (default: {OUT})")
    args = p.parse_args(argv)
    systems = [s for s in SYSTEMS if s in args.systems]
    if REFERENCE not in systems:
        systems.insert(0, REFERENCE)  # the ratio needs it
    torch.set_num_threads(1)
    tmp = tempfile.TemporaryDirectory() if args.data is None else None
    data = Path(tmp.name) if tmp else args.data
    warm_up()
    load_before = os.getloadavg()
    rows = [f"{'type':<10} {'system':<14} {'phase':<9} {'cpu_s':>9} {'wall_s':>9} {'x ' + REFERENCE:>14}  note"]
    totals = {s: [0.0, 0.0] for s in systems}
    for machine in args.types:
        root = make_dataset(data / f"{args.size}_{machine}", size=args.size, machine_types=[machine], workers=1,
                            progress=False)
        ref_cpu = None
        for name in systems:
            phases, note = SYSTEMS[name](root, machine, args)
            cpu, wall = phases["total"]
            ref_cpu = cpu if name == REFERENCE else ref_cpu
            totals[name] = [totals[name][0] + cpu, totals[name][1] + wall]
            for ph, (c, w) in phases.items():
                ratio = f"{c / ref_cpu:14.1f}" if ph == "total" and ref_cpu else " " * 14
                tail = note if ph == "total" else ""
                rows.append(f"{machine:<10} {name:<14} {ph:<9} {c:9.1f} {w:9.1f} {ratio}  {tail}".rstrip())
                print(rows[-1], flush=True)  # progress: a protocol-size run takes minutes per type
    rows.append("")
    for name, (c, w) in totals.items():
        ratio = c / totals[REFERENCE][0] if totals[REFERENCE][0] else float("nan")
        rows.append(f"{'all':<10} {name:<14} {'total':<9} {c:9.1f} {w:9.1f} {ratio:14.1f}  "
                    f"{c / 60:.1f} CPU-min over {len(args.types)} types")
    text = "\n".join(_header(args, load_before) + rows) + "\n"
    print(text)
    from minasd.io_utils import atomic_write_text

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    print(f"wrote {args.out}")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
