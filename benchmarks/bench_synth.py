"""Generation speed of the synthetic factory: generator 2.0 against 1.2, per machine type, in one run (issue 23).

    python benchmarks/bench_synth.py --size small --out benchmarks/results/synth_speed.txt

Issue 23 asks that the new generator keep generation "within today's time".  For each machine type
the same set (named size, seed, sections 00-05 or ``--sections``) is written by generator 1.2 and
by generator 2.0 (its knobs: ``minasd/synth_knobs.json``, or ``--knobs``) into fresh temporary
folders, one process (``workers=1``), the two versions alternating and their order swapped on each
repeat, so that a change of machine load hits both alike.  Reported per type and in total: clips
per second of each and the ratio 2.0 / 1.2 of seconds per clip (the reference is 1.2 measured in
the same run); the ratio over all types is the factor by which a whole set's generation time
changes.  2.0's speed depends on its knobs (the fault scale and the noise scenes): rerun after the
calibration moves them.  Synthetic data — not DCASE; no clip is kept.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minasd import synth  # noqa: E402
from minasd.config import MACHINE_TYPES, SECTIONS  # noqa: E402
from minasd.io_utils import atomic_write_text, git_commit  # noqa: E402

VERSIONS = ("1.2", "2.0")


def time_one(version: str, size: str, seed: int, machine: str, sections: tuple[int, ...], knobs: dict | None,
             folder: Path) -> tuple[float, int]:
    """Seconds and clips of writing one type's set with ``version`` into a fresh folder under ``folder``."""
    root = Path(tempfile.mkdtemp(dir=folder))
    try:
        t0 = time.perf_counter()
        synth.make_dataset(root, size=size, seed=seed, machine_types=[machine], workers=1, progress=False,
                           generator=version, sections=sections, knobs=knobs if version != "1.2" else None)
        seconds = time.perf_counter() - t0
        clips = sum(1 for _ in root.rglob("*.wav"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return seconds, clips


def bench(size: str, seed: int, machines: list[str], sections: tuple[int, ...], knobs: dict | None,
          repeats: int, folder: Path) -> dict:
    """``{machine: {version: {"s_per_clip": median, "clips": n}}}`` over ``repeats`` alternating rounds."""
    out = {}
    for m in machines:
        per = {v: [] for v in VERSIONS}
        clips = {}
        for r in range(repeats):
            for v in (VERSIONS if r % 2 == 0 else VERSIONS[::-1]):
                s, n = time_one(v, size, seed, m, sections, knobs, folder)
                per[v].append(s / n)
                clips[v] = n
        out[m] = {v: {"s_per_clip": statistics.median(per[v]), "clips": clips[v]} for v in VERSIONS}
        print(f"{m:9s} " + "  ".join(f"{v}: {1 / out[m][v]['s_per_clip']:6.1f} clips/s" for v in VERSIONS)
              + f"  ratio {out[m]['2.0']['s_per_clip'] / out[m]['1.2']['s_per_clip']:.2f}", flush=True)
    return out


def report(res: dict, args, load_before: tuple, load_after: tuple) -> list[str]:
    lines = ["# synthetic factory generation speed, generator 2.0 against 1.2 (synthetic data — not DCASE)",
             f"date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
             f"commit: {git_commit()}",
             f"command: bench_synth.py {' '.join(sys.argv[1:])}",
             f"cpu cores: {os.cpu_count()}; one process per set; load average before {load_before}, after {load_after}"
             + ("  (machine shared with other jobs: the ratio, measured alternating, is the figure to use)"
                if max(load_before[0], load_after[0]) > 0.5 else ""),
             f"set: size {args.size}, seed {args.seed}, sections {' '.join(f'{s:02d}' for s in args.sections)}; "
             f"2.0 knobs: {args.knobs or 'minasd/synth_knobs.json'}; median of {args.repeats} alternating round(s)",
             "",
             f"{'type':9s} {'clips':>6s} {'1.2 clips/s':>12s} {'2.0 clips/s':>12s} {'2.0/1.2 s per clip':>19s}"]
    tot = {v: 0.0 for v in VERSIONS}
    for m, r in res.items():
        for v in VERSIONS:
            tot[v] += r[v]["s_per_clip"] * r[v]["clips"]
        lines.append(f"{m:9s} {r['1.2']['clips']:6d} {1 / r['1.2']['s_per_clip']:12.1f} {1 / r['2.0']['s_per_clip']:12.1f} "
                     f"{r['2.0']['s_per_clip'] / r['1.2']['s_per_clip']:19.2f}")
    ratio = tot["2.0"] / tot["1.2"]
    lines += ["", f"all types: 1.2 {tot['1.2']:.0f} s, 2.0 {tot['2.0']:.0f} s for the same clips: ratio {ratio:.2f} "
                  "(the whole set's generation time scales by about this)"]
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="small", choices=list(synth.SIZES), help="named size (default: small)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--machine-types", nargs="+", default=list(MACHINE_TYPES))
    p.add_argument("--sections", type=int, nargs="+", default=list(SECTIONS))
    p.add_argument("--knobs", type=Path, default=None, help="generator 2.0's knobs file (default: the package's)")
    p.add_argument("--repeats", type=int, default=1, help="alternating rounds per type (default 1)")
    p.add_argument("--tmp", type=Path, default=None, help="folder for the temporary sets (default: the system's)")
    p.add_argument("--out", type=Path, default=None, help="also write the report here (atomically)")
    args = p.parse_args(argv)
    args.sections = tuple(args.sections)
    knobs = json.loads(args.knobs.read_text(encoding="utf-8")) if args.knobs else None
    before = tuple(round(x, 2) for x in os.getloadavg())
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        res = bench(args.size, args.seed, args.machine_types, args.sections, knobs, args.repeats, Path(folder))
    lines = report(res, args, before, tuple(round(x, 2) for x in os.getloadavg()))
    print("\n".join(lines))
    if args.out:
        atomic_write_text(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
