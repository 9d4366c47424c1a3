"""Run the Gaussian-mixture baseline (minasd.baseline) on a synthetic (or real) data root and
print AUC / pAUC per machine type and section, with harmonic means per type for the paper's
test sections 03-05 and the validation sections 00-02.

Usage (from the repository root; the committed table was made with the first line, its
header records the command):

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/baseline_table.py --root data/synth_full --size full --force
    python benchmarks/baseline_table.py --root data/synth_small --size small --out-prefix out/baseline_small

``--root`` is required: the full set is 16 GB and where it lives is the user's choice
(``data/`` in the repository is ignored by git).  Paths written into the results are
relative (see :func:`shown_path`), so committed outputs name no one's machine.

If ``--root`` holds no finished synthetic set it is generated first (``minasd.synth.make_dataset``;
an interrupted set resumes), and the generation time and disk size go to
``benchmarks/synth_full_report.txt`` (for ``--size full``).  Results: ``<out-prefix>.txt``
(the printed table), ``.json`` and ``.csv``; existing results are kept unless ``--force``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from minasd import baseline, synth  # noqa: E402
from minasd.config import DEV_SECTIONS, EVAL_SECTIONS, MACHINE_TYPES, SYNTH_GENERATOR  # noqa: E402
from minasd.io_utils import atomic_write_json, atomic_write_text, git_commit  # noqa: E402
from minasd.metrics import section_table  # noqa: E402


def shown_path(path: str | Path) -> str:
    """A path as the results write it: never an absolute path of the machine that ran them.

    A relative path is kept as given; an absolute one inside the repository is written
    relative to the repository (the same text wherever the script ran from), one inside the
    current directory relative to that; any other absolute path is reduced to its last
    component, because the folders above a data root say nothing about the numbers.

    >>> shown_path("data/synth_full")
    'data/synth_full'
    >>> shown_path(REPO / "benchmarks" / "results" / "baseline_full")
    'benchmarks/results/baseline_full'
    """
    p = Path(path)
    if not p.is_absolute():
        return str(p)
    for base in (REPO, Path.cwd()):
        try:
            return str(p.resolve().relative_to(base.resolve()))
        except ValueError:
            pass
    return p.name


def command_line(argv: list[str]) -> str:
    """The command that ran this script, as recorded in the results, with absolute paths in
    its arguments (``--root /x/y`` or ``--root=/x/y``) written by :func:`shown_path`."""
    def one(arg: str) -> str:
        flag, eq, value = arg.partition("=")
        if eq and flag.startswith("--"):
            return f"{flag}={shown_path(value)}" if Path(value).is_absolute() else arg
        return shown_path(arg) if Path(arg).is_absolute() else arg

    return " ".join(shlex.quote(a) for a in ["python", "benchmarks/baseline_table.py", *map(one, argv)])


def _du(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.returncode == 0 else -1


def _generate(root: Path, size: str, seed: int, workers: int | None, report: Path | None, command: str) -> str:
    t0 = time.time()
    # the factory version every synthetic set of the book follows (config.SYNTH_GENERATOR), not make_dataset's own default
    synth.make_dataset(root, size=size, seed=seed, workers=workers, generator=SYNTH_GENERATOR)
    wall = time.time() - t0
    man = synth.read_manifest(root)
    written = man["last_run"]["written"]
    nbytes = _du(root)
    text = (
        f"# synthetic set generation ({synth.SYNTH_NOTE})\n"
        f"command: {command}\n"
        f"date: {dt.datetime.now().isoformat(timespec='seconds')}\n"
        f"commit: {git_commit(REPO)}\n"
        f"root: {shown_path(root)}\nsize: {size}  seed: {seed}  generator_version: {man.get('generator_version')}\n"
        f"clips in set: {man['n_clips']}  clips written by this invocation: {written} "
        "(the rest existed from an earlier, interrupted run)\n"
        f"wall time of this invocation: {wall:.0f} s  ({written / max(wall, 1e-9):.1f} clips/s)\n"
        f"workers: {workers or os.cpu_count()}  cpu cores: {os.cpu_count()}  load average at end: "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}  (machine shared with other jobs)\n"
        f"disk size: {nbytes / 1e9:.2f} GB ({nbytes} bytes)\n"
    )
    if report is not None:
        atomic_write_text(report, text)
    print(text)
    return text


def format_table(res, title: str) -> str:
    """Per type: sections 00-05 AUC/pAUC/hmean (%), Har-mean over 00-02 and over 03-05."""
    recs = res.to_dict("records")
    dev = section_table([r for r in recs if r["section"] in DEV_SECTIONS])
    test = section_table([r for r in recs if r["section"] in EVAL_SECTIONS])
    lines = [title, "", f"{'machine':9s} {'section':>14s} {'AUC':>6s} {'pAUC':>6s} {'hmean':>6s}"]
    for part, name in ((dev, "00-02 (val)"), (test, "03-05 (test)")):
        lines.append(f"--- sections {name} ---")
        for r in part.itertuples():
            sec = r.section if r.section != "Har-mean" else f"Har-mean {name[:5]}"
            lines.append(f"{r.machine:9s} {sec:>14s} {r.AUC:6.1f} {r.pAUC:6.1f} {r.hmean:6.1f}")
    summ = test[test.section == "Har-mean"].set_index("machine")["hmean"]
    lines += ["", "Summary (Table II layout, hmean of AUC and pAUC over sections 03-05, %):",
              "  ".join(f"{m}={v:.1f}" for m, v in summ.items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="data root, e.g. data/synth_full (generated there if absent)")
    ap.add_argument("--size", default="full", choices=list(synth.SIZES), help="size to generate if absent")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    ap.add_argument("--machine-types", nargs="+", default=None, choices=list(MACHINE_TYPES))
    ap.add_argument("--out-prefix", default=str(REPO / "benchmarks" / "results" / "baseline_full"))
    ap.add_argument("--no-generate", action="store_true", help="fail instead of generating a missing set")
    ap.add_argument("--force", action="store_true", help="overwrite existing result files")
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)

    root = Path(args.root)
    out = Path(args.out_prefix)
    targets = [out.with_suffix(s) for s in (".txt", ".json", ".csv")]
    if not args.force and any(t.exists() for t in targets):
        sys.exit(f"{shown_path(out)}.txt/.json/.csv exist; pass --force to overwrite or choose --out-prefix")
    finished = (root / synth.MANIFEST_NAME).exists() and not (root / synth.PARTIAL_NAME).exists()
    real = (root / "dev_data").exists() and not (root / synth.MANIFEST_NAME).exists() \
        and not (root / synth.PARTIAL_NAME).exists()
    if not finished and not real:
        if args.no_generate:
            sys.exit(f"{shown_path(root)} holds no finished synthetic set (and --no-generate was given)")
        report = REPO / "benchmarks" / "synth_full_report.txt" if args.size == "full" else None
        gen_text = _generate(root, args.size, args.seed, args.workers, report, command_line(argv))
    else:
        report, gen_text = None, None
    manifest = synth.read_manifest(root) if (root / synth.MANIFEST_NAME).exists() else {"synthetic": False}
    synthetic = bool(manifest.get("synthetic"))
    data_note = (f"SYNTHETIC (minasd.synth v{manifest.get('generator_version')}, size {manifest.get('size')}, "
                 f"seed {manifest.get('seed')}; not DCASE)" if synthetic else f"real data from {shown_path(root)}")

    cfg = baseline.BaselineConfig()
    t0 = time.time()
    res = baseline.run_baseline(root, machine_types=args.machine_types, cfg=cfg, workers=args.workers)
    wall = time.time() - t0
    cmd = command_line(argv)
    # how this process was actually run: thread cap and niceness as observed, not assumed
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS",) if k in os.environ)
    niceness = os.nice(0)
    cmd = " ".join(x for x in (env, f"nice -n {niceness}" if niceness else "", cmd) if x)
    man_short = {k: manifest.get(k) for k in ("synthetic", "note", "generator_version", "seed", "size", "n_clips",
                                              "clip_seconds")}
    header = "\n".join([
        f"# command: {cmd}",
        f"# data: {data_note}",
        f"# date: {dt.datetime.now().isoformat(timespec='seconds')}",
        f"# commit: {git_commit(REPO)}",
        f"# data root: {shown_path(root)}",
        f"# data manifest: {json.dumps(man_short, ensure_ascii=False)}",
        f"# scale: {manifest.get('size', 'real')}; per section: train {res.n_train.min()}-{res.n_train.max()}, "
        f"test normal {res.n_test_normal.min()}-{res.n_test_normal.max()}, "
        f"test anomalous {res.n_test_anomaly.min()}-{res.n_test_anomaly.max()} (source domain)",
        f"# baseline: {cfg} on [mean, std] of log-mel frames (448-d), score = negative log-likelihood",
        f"# wall time (features + fits): {wall:.0f} s  (workers: {args.workers or os.cpu_count()}, "
        f"cpu cores: {os.cpu_count()}, load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())})",
        *([f"# generation in this invocation: {ln}" for ln in gen_text.splitlines()
           if ln.startswith(("wall time", "disk size"))] if gen_text else []),
        "# AUC and pAUC (p = 0.1, McClish, sklearn roc_auc_score max_fpr=0.1) in %; hmean = harmonic mean.",
        *(["# Synthetic data: these numbers are not comparable to any DCASE 2021 result."] if synthetic else []),
    ])
    text = header + "\n\n" + format_table(res, "Gaussian-mixture baseline on log-mel statistics")
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".txt"), text)
    atomic_write_text(out.with_suffix(".csv"), res.assign(data=data_note).to_csv(index=False))
    if report is not None:
        # the generation report also records what the same invocation then spent on the baseline
        atomic_write_text(report, gen_text + f"baseline (features + fits) wall time: {wall:.0f} s, "
                          f"results in {shown_path(out)}.txt/.json/.csv\n")
    atomic_write_json(out.with_suffix(".json"), {"command": cmd, "data": data_note, "manifest": manifest, "baseline": str(cfg),
                                                 "commit": git_commit(REPO), "wall_seconds": wall,
                                                 "sections": res.to_dict("records")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
