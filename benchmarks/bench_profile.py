"""Time and memory of the ``cpu`` profile for one machine type (issue 13; Book: chapter 4).

    python benchmarks/bench_profile.py --work out/bench_profile \\
        --out benchmarks/results/cpu_profile_timing.txt

For each synthetic size (``small``: 60 training clips per section, ``medium``: 200) it makes
the set (all seven machine types: the other types are the outlier-exposure negatives) under
``--work`` if missing, then trains and evaluates one machine type (``--machine-type``, default
fan), each step as its own process, exactly as a user runs them:

    minasd train --profile cpu --machine-type fan --data <set> --out <run> --device cpu --quiet
    minasd evaluate --run <run> --device cpu --quiet

and reports: seconds per epoch (median over the epochs of ``log.jsonl``: training steps and
validation), training minutes (store build included: the first run on a data root decodes the
clips once), evaluation minutes (inlier models h, scoring the test clips), and the peak memory
of each process, sampled from ``/proc/<pid>/status`` every 0.2 s: anonymous memory (RssAnon:
what the process itself holds) and resident set (VmHWM, which also counts the pages of the
memory-mapped waveform store that the page cache lends it; the kernel takes them back under
pressure).  Runs already finished under ``--work`` are not timed again: delete the folder to
remeasure.  Numbers on synthetic data; run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _status_kib(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile of a live process, in KiB ({} once it is gone)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(val.split()[0])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return {}
    return out


def run_measured(cmd: list[str], log_path: Path | None = None, env: dict | None = None) -> dict:
    """Run ``cmd``; wall seconds, exit code and peak memory (MiB) sampled every 0.2 s.

    Raises:
        subprocess.CalledProcessError: the command failed (its output is in ``log_path``).
    """
    peak = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0}
    sink = open(log_path, "w") if log_path is not None else subprocess.DEVNULL
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env)
        done = threading.Event()

        def sample():
            while not done.is_set():
                st = _status_kib(proc.pid)
                for k in peak:
                    peak[k] = max(peak[k], st.get(k, 0))
                done.wait(0.2)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        rc = proc.wait()
        done.set()
        th.join()
    finally:
        if log_path is not None:
            sink.close()
    wall = time.perf_counter() - t0
    if rc != 0:
        raise subprocess.CalledProcessError(rc, cmd)
    return {"wall_s": round(wall, 1), "peak_rss_mib": round(peak["VmHWM"] / 1024),
            "peak_anon_mib": round(peak["RssAnon"] / 1024), "peak_file_mib": round(peak["RssFile"] / 1024)}


def header(title: str, command: str) -> list[str]:
    """Date, machine, load, versions and commit: the first lines of every committed output."""
    import torch

    from minasd import __version__
    from minasd.io_utils import git_commit

    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return [title,
            f"date        {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
            f"machine     {platform.machine()}, {os.cpu_count()} cores visible; CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}; load average (1/5/15 min) before the run {load}",
            f"software    minasd {__version__}, torch {torch.__version__}, python {platform.python_version()}, "
            f"commit {git_commit()}",
            f"command     {command}"]


def emit(lines: list[str], out: Path | None) -> None:
    """Print the report and, with ``out``, write it there atomically."""
    from minasd.io_utils import atomic_write_text

    text = "\n".join(lines) + "\n"
    print(text, end="")
    if out is not None:
        atomic_write_text(out, text)


def measure_size(size: str, machine: str, work: Path) -> dict:
    """Make the set if missing, train with the cpu profile, evaluate; the figures of one size."""
    from minasd.synth import make_dataset

    data = work / f"synth_{size}"
    run = work / f"run_{size}_{machine}"
    res_path = work / f"timing_{size}_{machine}.json"
    if res_path.is_file():
        return json.loads(res_path.read_text())
    t0 = time.perf_counter()
    if not (data / "dev_data").is_dir():
        make_dataset(data, size, seed=0, progress=False)
    synth_s = time.perf_counter() - t0
    if run.exists():
        raise FileExistsError(f"{run} holds an unfinished measurement; delete it and run again")
    py = sys.executable
    tr = run_measured([py, "-m", "minasd.cli", "train", "--profile", "cpu", "--machine-type", machine,
                       "--data", str(data), "--out", str(run), "--device", "cpu", "--quiet"],
                      log_path=work / f"train_{size}_{machine}.log")
    ev = run_measured([py, "-m", "minasd.cli", "evaluate", "--run", str(run), "--device", "cpu", "--quiet"],
                      log_path=work / f"evaluate_{size}_{machine}.log")
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    meta = json.loads((run / "run.json").read_text())
    res = {"size": size, "machine_type": machine, "synth_s": round(synth_s, 1), "train": tr, "evaluate": ev,
           "epochs": len(log), "s_per_epoch_median": round(statistics.median(r["seconds"] for r in log), 2),
           "steps_per_epoch": meta["counts"]["steps_per_epoch"],
           "train_clips": meta["counts"]["target_train"],
           "val_section_acc_best": max(r["val_section_acc"] for r in log),
           "config": {k: meta["config"].get(k) for k in ("backbone", "epochs", "batch_size", "profile")},
           "runtime": meta.get("runtime")}
    work.mkdir(parents=True, exist_ok=True)
    res_path.write_text(json.dumps(res, indent=1))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="folder for the sets and runs (kept; resumable)")
    ap.add_argument("--sizes", nargs="+", default=["small", "medium"])
    ap.add_argument("--machine-type", default="fan")
    ap.add_argument("--out", type=Path, default=None, help="also write the report to this file")
    args = ap.parse_args(argv)
    from minasd.profiles import get_profile

    lines = header("minasd cpu profile: seconds per epoch, minutes and peak memory for one machine type",
                   "bench_profile.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    lines.append(f"profile     {get_profile('cpu').label()}; device cpu; 2 threads per process unless the "
                 "machine has fewer cores")
    lines.append("data        synthetic (minasd.synth, seed 0, all 7 types; one type trained and evaluated), sets "
                 "made by this script")
    lines.append("")
    lines.append(f"{'size':7s} {'type':6s} {'train clips':>11s} {'s/epoch':>8s} {'steps/ep':>8s} {'train min':>9s} "
                 f"{'eval min':>8s} {'total min':>9s} {'acc max':>8s} {'peak anon MiB':>13s} {'peak RSS MiB':>12s}")
    results = []
    for size in args.sizes:
        r = measure_size(size, args.machine_type, args.work)
        results.append(r)
        total = (r["train"]["wall_s"] + r["evaluate"]["wall_s"]) / 60
        anon = max(r["train"]["peak_anon_mib"], r["evaluate"]["peak_anon_mib"])
        rss = max(r["train"]["peak_rss_mib"], r["evaluate"]["peak_rss_mib"])
        lines.append(f"{size:7s} {r['machine_type']:6s} {r['train_clips']:11d} {r['s_per_epoch_median']:8.2f} "
                     f"{r['steps_per_epoch']:8d} {r['train']['wall_s'] / 60:9.2f} {r['evaluate']['wall_s'] / 60:8.2f} "
                     f"{total:9.2f} {r['val_section_acc_best']:8.3f} {anon:13d} {rss:12d}")
    lines.append("")
    lines.append("acc max: the highest validation section accuracy of the epochs (chance 1/6)")
    lines.append("train min: `minasd train` wall time (process start, store build on a new data root, epochs with "
                 "validation); eval min: `minasd evaluate` (h per section, test scores, result files)")
    lines.append("peak anon: the largest RssAnon of the two processes (memory the process holds); peak RSS: VmHWM "
                 "(adds the store's page-cache pages, which the kernel reclaims under pressure)")
    if len(results) > 1:
        a, b = results[0], results[-1]
        lines.append(f"ratio {b['size']}/{a['size']}: s/epoch {b['s_per_epoch_median'] / a['s_per_epoch_median']:.2f}, "
                     f"training clips {b['train_clips'] / a['train_clips']:.2f}, "
                     f"peak anon {max(b['train']['peak_anon_mib'], 1) / max(a['train']['peak_anon_mib'], 1):.2f} "
                     "(training process)")
    for r in results:
        lines.append(f"synthetic set {r['size']}: made in {r['synth_s']:.0f} s (not counted above); runtime "
                     f"{json.dumps(r['runtime'])}")
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
