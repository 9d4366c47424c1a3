"""The main job (``minasd demo``): the whole pipeline at small scale.

Without ``--data`` it writes (or reuses) a small synthetic data set in the
DCASE 2021 Task 2 layout, then summarises what ``minasd.data.index`` finds.
Everything it prints about synthetic data says so.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

DEFAULT_OUT = Path("out/demo")


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help="DCASE-style data root to use instead of the synthetic set")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default {DEFAULT_OUT}); the synthetic set goes to OUT/data")
    parser.add_argument("--size", default="small", choices=["tiny", "small"],
                        help="synthetic set size when --data is not given (default small)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic set and training")


def run_demo(args: argparse.Namespace) -> int:
    from . import data

    t0 = time.perf_counter()
    root = args.data
    if root is None:
        from . import synth

        root = args.out / "data" / f"synth_{args.size}_seed{args.seed}"
        print(f"[demo] synthetic data ({args.size}, seed {args.seed}) -> {root}")
        synth.make_dataset(root, size=args.size, seed=args.seed)
    df = data.index(root)
    print(f"[demo] {len(df)} clips under {root}")
    print(data.summarize(df).to_string())
    print(f"[demo] done in {time.perf_counter() - t0:.1f} s")
    return 0
