"""The main job on a fresh output folder: minutes, accuracy, peak memory (issue 13; README).

    python benchmarks/bench_demo.py --work out/bench_demo --out benchmarks/results/demo_cpu.txt

Runs ``minasd demo --out <work>/demo`` exactly as the README's quick start does (the
small synthetic set is made inside it, so its time counts), in its own process, on a
folder that must not exist yet (a rerun of the demo would reuse its work and time nothing).
Reports the wall time against the goal (10 minutes on 2 cores, data included), the
validation section accuracy the model reached against the goal (0.8), the hmean of the learned
model and of each comparison system the demo ran (by default the GMM on log-mel mean/std and
TWFR-GMM) from the demo's ``summary.json``, the peak memory of the process, and
the demo's own printed output.  The set-up (``bash ci/setup.sh``: the virtual environment
and the pinned requirements) is not included: it is paid once per machine.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_profile import emit, header, run_measured  # noqa: E402

#: Goals of issue 13 for `minasd demo` on a fresh 2-core machine.
GOAL_MINUTES = 10.0
GOAL_ACCURACY = 0.8


def _relative(text: str) -> str:
    """The demo prints some paths resolved; the committed copy names no machine's folders."""
    return text.replace(f"{Path.cwd().resolve()}/", "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="a folder that does not exist yet")
    ap.add_argument("--out", type=Path, default=None, help="also write the report to this file")
    ap.add_argument("demo_args", nargs="*", help="extra arguments for minasd demo (after --)")
    args = ap.parse_args(argv)
    if args.work.exists():
        raise SystemExit(f"{args.work} exists: the demo would reuse its work; give a new --work folder")
    args.work.mkdir(parents=True)
    demo_out = args.work / "demo"
    cmd = [sys.executable, "-m", "minasd.cli", "demo", "--out", str(demo_out), "--quiet", *args.demo_args]
    lines = header("minasd demo (the README's main job) from an empty output folder",
                   "bench_demo.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    log = args.work / "demo.log"
    m = run_measured(cmd, log_path=log)
    summary = json.loads((demo_out / "summary.json").read_text())
    minutes = m["wall_s"] / 60
    lines += [f"run         {' '.join(['minasd', *cmd[3:]])}", "",
              f"wall time   {m['wall_s']:.0f} s = {minutes:.1f} min (synthetic set included; goal <= {GOAL_MINUTES:g} "
              f"min: {'met' if minutes <= GOAL_MINUTES else 'NOT met'})"]
    for mt, t in summary["types"].items():
        acc = t["val_section_acc"]["at_best"]
        lines.append(f"{mt}: validation section accuracy at the best epoch {acc:.3f} (goal >= {GOAL_ACCURACY:g}: "
                     f"{'met' if acc >= GOAL_ACCURACY else 'NOT met'}; chance 1/6 = 0.167, first epoch "
                     f"{t['val_section_acc']['first']:.3f})")
        pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}"  # noqa: E731  (a section not scored: None)
        systems = "".join(f", {s['label']} {pct(s['hmean_dev'])} / {pct(s['hmean_eval'])}"
                          for s in t["systems"].values())
        lines.append(f"{mt}: hmean of AUC and pAUC (%), sections 00-02 / 03-05: two-BCE model {pct(t['hmean_dev'])} / "
                     f"{pct(t['hmean_eval'])}{systems} ({summary['data']})")
    lines += [f"peak memory anonymous {m['peak_anon_mib']} MiB, resident {m['peak_rss_mib']} MiB (VmHWM, "
              "page cache of the store included)", "", "--- the demo's output (paths shown relative to the "
              "working directory) ---", _relative(log.read_text()).rstrip(), ""]
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
