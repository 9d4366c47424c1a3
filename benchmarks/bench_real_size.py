"""Memory, disk and the input pipeline of a one-type run at the real data's size (issue 24; Book: chapter 11).

    python benchmarks/bench_real_size.py --work out/bench_real_size \\
        --out benchmarks/results/real_size_one_type.txt

DCASE 2021 Task 2 gives each machine type about 1,000 source-domain training clips per section
in six sections (10 s at 16 kHz), and a one-type run reads the other six types' training clips
too (the negatives of the second cross-entropy).  This script builds a data root of exactly
that size and measures what a reader's machine (a free Colab session: 12.7 GB of host memory)
must hold:

1. **Data**: the target type (``--machine-type``, default fan) at the synthetic size ``full``
   (1,000 training clips per section, 100 normal and 100 anomalous test clips per section, six
   sections: 7,200 clips) made by :func:`minasd.synth.make_dataset`.  The **negatives** are six
   more machine-type folders of 6,000 training clips each, **hard links of the target type's own
   training clips** under the other types' names: the same number, length and format of files
   as the real negatives, so the same store, the same crops and the same memory, while they
   take no disk of their own here (their disk on a real machine is reported from their count
   and size).  What this run learns is meaningless (negatives equal to positives) and is not
   reported: only resources are.
2. **Store build** (:func:`minasd.store.open_store`, its own process): wall time, peak memory,
   and the store's size on disk.
3. **Training** (``minasd train --profile <profile> --epochs <epochs>``, its own process) and
   **evaluation** (``minasd evaluate``: embeddings of every training and test clip of the type,
   the inlier models, the scores), peak anonymous memory (RssAnon: what the process holds) and
   peak resident set (VmHWM: adds the store's page-cache pages, which the kernel takes back
   under pressure), sampled every 0.2 s (:func:`bench_profile.run_measured`).
4. **Input pipeline**: crops per second of the host side of a training step (random items of
   the whole store, random 2 s starts, :meth:`minasd.store.WaveStore.crops`, then int16 to a
   normalised float32 tensor), the part a GPU run does on the CPU, in one thread, at batch
   sizes 32 and 128; and, as the reference measured in the same run, the CPU's own training
   step rate from step 3 (crops per second of the epoch).  A GPU run is starved only if its
   step rate is above the host pipeline's rate.

Run it on an otherwise idle machine (steps 2 and 4 are timed).  Finished steps are kept under
``--work`` and not measured again: delete the folder to remeasure.  Numbers on synthetic data.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_profile import emit, header, run_measured  # noqa: E402

CLIP_BYTES = 160_000 * 2 + 44  # one 10 s, 16 kHz, 16-bit mono WAV file


def _du(path: Path) -> int:
    """Bytes of the files under ``path``, each hard-linked file counted once."""
    seen, total = set(), 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def make_root(root: Path, machine: str) -> dict:
    """The target type at size ``full`` plus six types of hard-linked negatives; their counts."""
    from minasd.config import MACHINE_TYPES
    from minasd.synth import make_dataset

    t0 = time.perf_counter()
    make_dataset(root, "full", seed=0, machine_types=[machine], progress=False)
    synth_s = time.perf_counter() - t0
    clips = sorted(p for d in ("dev_data", "eval_data") for p in (root / d / machine / "train").glob("*.wav"))
    others = [m for m in MACHINE_TYPES if m != machine]
    for m in others:
        for p in clips:
            dst = root / p.parent.parent.parent.name / m / "train" / p.name
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.link(p, dst)
    n_test = sum(1 for d in ("dev_data", "eval_data") for _ in (root / d / machine).glob("*_test/*.wav"))
    return {"synth_s": round(synth_s, 1), "target_train": len(clips), "target_test": n_test,
            "negative_types": others, "negatives": len(clips) * len(others)}


def build_store(root: Path, work: Path) -> dict:
    """Open (build) the store in its own process: time, memory, size."""
    res = run_measured([sys.executable, "-c", f"from minasd.store import open_store; open_store({str(root)!r}, progress=False)"],
                       log_path=work / "store.log")
    return dict(res, bytes=_du(root / ".minasd_store"))


def set_page_cache(path: str, state: str) -> None:
    """``"cold"``: ask the kernel to drop the file's cached pages (``posix_fadvise`` DONTNEED: only
    pages no process has mapped); ``"warm"``: read the whole file once, so its pages are cached."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if state == "cold":
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        else:
            while os.read(fd, 1 << 24):
                pass
    finally:
        os.close(fd)


def pipeline_rate(root: Path, batch: int, n_batches: int, cache: str, seed: int = 0) -> float:
    """Host-side crops per second: store crops of random items and starts -> normalised float32 tensor.

    ``cache`` is the store file's page-cache state at the start (:func:`set_page_cache`): "cold"
    reads every crop from the disk (a store larger than the memory left for the page cache, as
    on a 12.7 GB Colab runtime with a 12.5 GiB store, is mostly cold), "warm" from memory.
    """
    import torch

    from minasd.store import open_store

    torch.set_num_threads(1)
    store = open_store(root, progress=False)
    set_page_cache(store.waves.filename, cache)
    seg = 32_000
    rng = np.random.default_rng([seed, batch, cache == "cold"])
    clips = rng.integers(0, len(store.paths), size=(n_batches, batch))
    t0 = time.perf_counter()
    for b in range(n_batches):
        starts = rng.integers(0, store.lengths[clips[b]] - seg + 1)
        wave = torch.from_numpy(store.crops(clips[b], starts, seg)).float() / 32768.0
        wave = (wave - 0.0) / 1.0
    return n_batches * batch / (time.perf_counter() - t0)


def run_training(root: Path, work: Path, machine: str, profile: str, epochs: int) -> dict:
    """``minasd train`` then ``minasd evaluate``, each measured; the run's own counts."""
    run = work / f"run_{machine}_{profile}_e{epochs}"
    if run.exists():
        raise FileExistsError(f"{run} holds an unfinished measurement; delete it and run again")
    py = sys.executable
    tr = run_measured([py, "-m", "minasd.cli", "train", "--profile", profile, "--epochs", str(epochs),
                       "--machine-type", machine, "--data", str(root), "--out", str(run), "--device", "cpu",
                       "--quiet"], log_path=work / "train.log")
    ev = run_measured([py, "-m", "minasd.cli", "evaluate", "--run", str(run), "--device", "cpu", "--quiet"],
                      log_path=work / "evaluate.log")
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    meta = json.loads((run / "run.json").read_text())
    counts = meta["counts"]
    batch = meta["config"].get("batch_size") or meta.get("hparams", {}).get("batch_size")
    step_s = [r["seconds"] for r in log]
    return {"train": tr, "evaluate": ev, "counts": counts, "epochs": len(log), "s_per_epoch": step_s,
            "batch_size": batch, "config": {k: meta["config"].get(k) for k in ("backbone", "epochs", "batch_size",
                                                                                  "profile")}}


def _step(work: Path, name: str, fn):
    """Run ``fn`` once; its JSON result is kept under ``work`` and returned on later runs."""
    f = work / f"{name}.json"
    if f.is_file():
        return json.loads(f.read_text())
    res = fn()
    from minasd.io_utils import atomic_write_json

    atomic_write_json(f, res)
    return res


def report(data: dict, store: dict, tr: dict, rates: dict, args) -> list[str]:
    gib = 1024 ** 3
    real_disk = (data["target_train"] + data["target_test"] + data["negatives"]) * CLIP_BYTES
    steps = tr["counts"].get("steps_per_epoch")
    crops_epoch = steps * tr["batch_size"] if steps and tr["batch_size"] else None
    cpu_rate = crops_epoch / float(np.median(tr["s_per_epoch"])) if crops_epoch else None
    lines = [
        f"data        synthetic (minasd.synth, size full, seed 0) for {args.machine_type}: {data['target_train']} "
        f"training + {data['target_test']} test clips; negatives: {data['negatives']} training clips under "
        f"{len(data['negative_types'])} other type names (hard links of the target's clips: same count and size)",
        f"profile     {tr['config']} trained {tr['epochs']} epoch(s) on the CPU (resources only; accuracy not reported)",
        "",
        "disk",
        f"  WAV files of a real one-type root (7 types' training clips + the type's test clips): "
        f"{real_disk / gib:.2f} GiB ({data['target_train'] + data['target_test'] + data['negatives']} files "
        f"x {CLIP_BYTES} bytes)",
        f"  waveform store (measured): {store['bytes'] / gib:.2f} GiB; built in {store['wall_s']:.0f} s, "
        f"peak anon {store['peak_anon_mib']} MiB",
        f"  together: {(real_disk + store['bytes']) / gib:.2f} GiB",
        "",
        "host memory (MiB)             peak anon   peak RSS   wall s",
        f"  minasd train ({tr['epochs']} epoch)   {tr['train']['peak_anon_mib']:>9}  {tr['train']['peak_rss_mib']:>9}"
        f"  {tr['train']['wall_s']:>7.0f}",
        f"  minasd evaluate           {tr['evaluate']['peak_anon_mib']:>9}  {tr['evaluate']['peak_rss_mib']:>9}"
        f"  {tr['evaluate']['wall_s']:>7.0f}",
        f"  Colab free session: 12.7 GB host memory; largest peak anon here "
        f"{max(tr['train']['peak_anon_mib'], tr['evaluate']['peak_anon_mib'], store['peak_anon_mib']) / 1024:.2f} GiB",
        "",
        "input pipeline (host side of a step, 1 thread, random items of the whole store)",
    ]
    from minasd.profiles import colab_estimate

    t4 = colab_estimate(1)["crops_per_s"]
    for key, r in rates.items():
        cache, b = key.split()
        ratio = f"; {r / cpu_rate:.0f}x this CPU's training step rate" if cpu_rate else ""
        lines.append(f"  page cache {cache}, batch {b:>4}: {r:>8,.0f} crops/s; {r / t4:.1f}x the T4 ESTIMATE{ratio}")
    if cpu_rate:
        lines.append(f"  reference, measured in this run: the CPU training step, {cpu_rate:.1f} crops/s "
                     f"({crops_epoch} crops per epoch, median {np.median(tr['s_per_epoch']):.0f} s per epoch; "
                     "timed while other jobs shared the 2 cores: see the load average above)")
    lines.append(f"  the T4 ESTIMATE (not measured; minasd.profiles.colab_estimate): {t4:,.0f} crops/s of EfficientNet-B0 "
                 "training with mixed precision")
    lines.append("  cold: the store's pages dropped from the page cache first (posix_fadvise), so every crop is read "
                 "from this machine's disk (not Colab's); warm: the whole store read once first")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--work", required=True, help="data, store and runs (about 4 GiB; not committed)")
    p.add_argument("--out", default=None, help="the report (text); a .json beside it holds the figures")
    p.add_argument("--machine-type", default="fan")
    p.add_argument("--profile", default="colab", help="training profile of the measured run (default colab)")
    p.add_argument("--epochs", type=int, default=1, help="epochs of the measured run (default 1)")
    p.add_argument("--batches", type=int, default=300, help="batches per input-pipeline measurement")
    args = p.parse_args(argv)
    work = Path(args.work)
    root = work / "data"
    work.mkdir(parents=True, exist_ok=True)
    data = _step(work, "data", lambda: make_root(root, args.machine_type))
    store = _step(work, "store", lambda: build_store(root, work))
    tr = _step(work, f"train_{args.profile}_e{args.epochs}",
               lambda: run_training(root, work, args.machine_type, args.profile, args.epochs))
    rates = {f"{cache} {b}": pipeline_rate(root, b, args.batches, cache) for cache in ("cold", "warm")
             for b in (32, 128)}
    lines = header("minasd: memory, disk and input pipeline of a one-type run at the real data's size",
                   " ".join(["bench_real_size.py"] + (argv if argv is not None else sys.argv[1:]))) + [""]
    lines += report(data, store, tr, rates, args)
    emit(lines, Path(args.out) if args.out else None)
    if args.out:
        from minasd.io_utils import atomic_write_json

        atomic_write_json(Path(args.out).with_suffix(".json"), {"data": data, "store": store, "training": tr,
                                                                "pipeline_crops_per_s": rates})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
