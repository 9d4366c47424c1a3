"""End-to-end latency of scoring one 10 s clip with minasd.Detector (issue 6; Book: chapter 9).

    python benchmarks/bench_detector.py [--backbone mobilenetv3_small_050] [--threads 2] [--runs 20]
        [--run RUN] [--out benchmarks/results/detector_cpu.txt]

What is timed (``Detector.score(path)``, the code a user calls): read the WAV file, amplitude
normalisation, 10 segments of 2 s, log-mel, the encoder (EfficientNet-B0, the paper's, unless
--backbone says otherwise) on the 10 segments as one batch, h of the clip's section, aggregation,
threshold.  Median and 90th percentile over --runs calls after --warmup calls, on --threads CPU
threads (torch and BLAS).  Goals on 2 CPU threads (issue 13): efficientnet_b0 median <= 150 ms,
mobilenetv3_small_050 (the ``cpu`` profile's encoder) <= 30 ms.

References measured in the same run, interleaved call by call with the end-to-end call so that
all see the same load from other processes: the same Detector with the eager encoder
(``optimize=False``) end to end, and the encoder forward alone on the 10 segments' log-mel (input
already computed), eager and frozen; the ratio end-to-end / forward says what everything around
the network costs.  Also timed: loading the Detector (freezing included, paid once per
Detector; ``minasd score`` freezes only from ``FREEZE_MIN_FILES`` files on), and alone: reading the file, the log-mel, and h at full scale (GMM with
16 components and LOF with 16 neighbours fitted on 1,000 random 128-d held-out segments, the size
of a full DCASE section's 10 % split).

A run is needed: ``--run`` names an evaluated run (its encoder is then the run's), otherwise the
script writes a tiny synthetic set and trains a tiny run on it (1 epoch, few steps) and evaluates
it; latency does not depend on training quality.  With CUDA it also
measures GPU throughput in clips/s (batches of 10 s clips through the same path); without CUDA it
says that none was measured.
"""
from __future__ import annotations

import argparse
import os
import sys

_THREADS = "2"
for i, a in enumerate(sys.argv):  # BLAS reads its thread count at import: set it before numpy
    if a == "--threads" and i + 1 < len(sys.argv):
        _THREADS = sys.argv[i + 1]
    elif a.startswith("--threads="):
        _THREADS = a.split("=", 1)[1]
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = _THREADS

import datetime as dt  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402


#: Goals of issue 13 for one 10 s clip end to end on 2 CPU threads, in ms.
GOALS_MS = {"efficientnet_b0": 150.0, "mobilenetv3_small_050": 30.0}


def _h_label(cfg: dict) -> str:
    """'GMM p=2' from a run's eval/detector.json."""
    h = cfg.get("inlier", {})
    return f"{str(h.get('kind', '?')).upper()} p={h.get('p', '?')}"


def _stats(ms: list[float]) -> str:
    a = np.asarray(ms)
    return f"median {np.median(a):7.1f} ms   p90 {np.percentile(a, 90):7.1f} ms   min {a.min():7.1f} ms"


def _time(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", "--repeats", type=int, default=20, help="timed calls of each kind")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--backbone", default=None,
                   help="timm encoder of the tiny run (default: efficientnet_b0, the paper's); not with --run")
    p.add_argument("--run", type=Path, default=None,
                   help="an evaluated run to load instead of training a tiny one (its encoder is timed)")
    p.add_argument("--workdir", type=Path, default=None, help="where the tiny set and run go (default: a temp dir)")
    p.add_argument("--out", type=Path, default=None, help="also write the report to this file")
    args = p.parse_args(argv)
    if args.run is not None and args.backbone is not None:
        p.error("--backbone chooses the encoder of the tiny run; with --run the run's encoder is timed")
    if args.run is not None and not (args.run / "eval" / "detector.json").is_file():
        p.error(f"--run {args.run} is not an evaluated run (no eval/detector.json): run `minasd evaluate` first")
    torch.set_num_threads(args.threads)

    import soundfile as sf

    from minasd import __version__
    from minasd.detector import Detector
    from minasd.evaluate import evaluate_run
    from minasd.features import LogMel
    from minasd.inlier import fit_inlier
    from minasd.io_utils import atomic_write_text, git_commit
    from minasd.synth import make_dataset, render_clip
    from minasd.train import TrainConfig, train

    tmp = tempfile.TemporaryDirectory() if args.workdir is None else None
    work = Path(tmp.name) if tmp else args.workdir
    t_setup = time.perf_counter()
    if args.run is not None:
        run = args.run
    else:
        root = make_dataset(work / "tiny", size="tiny", workers=1, progress=False, machine_types=["fan", "pump"])
        run = work / f"run_fan_{args.backbone or 'efficientnet_b0'}"
        if not (run / "eval" / "results.json").exists():
            train(TrainConfig(machine_type="fan", data_root=str(root), out_dir=str(run), epochs=1, batch_size=8,
                              max_train_clips_per_section=3, device="cpu", backbone=args.backbone, progress=False))
            evaluate_run(run, p=2, device="cpu", progress=False)
    setup_s = time.perf_counter() - t_setup
    # one 10 s clip, in the DCASE layout so that its section comes from its name
    wave, _ = render_clip("fan", 0, seconds=10.0)
    clip = work / "fan" / "source_test" / "section_00_source_test_normal_0000_bench.wav"
    clip.parent.mkdir(parents=True, exist_ok=True)
    sf.write(clip, wave, 16000, subtype="PCM_16")

    from minasd.data import load_audio, segments
    from minasd.commands import FREEZE_MIN_FILES
    from minasd.detector import _FrozenEncoder

    load_before = os.getloadavg()
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:  # a healthy run must load without warning
        warnings.simplefilter("always")
        det = Detector.load(run, device="cpu")  # default on CPU: encoder traced and frozen (freeze_for_cpu)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    eager = Detector.load(run, device="cpu", optimize=False)  # the reference: the eager encoder
    load_eager_s = time.perf_counter() - t
    frozen_ok = isinstance(det.model, _FrozenEncoder)
    backbone = eager.model.backbone_name
    segs = torch.from_numpy(np.asarray(segments(det.norm.apply(load_audio(clip))), dtype=np.float32))
    mel = LogMel()
    x = mel(segs)  # (10, 224, frames)

    def forward(model):
        with torch.inference_mode():
            model(x)

    # The four kinds of call alternate, so that all see the same load from other processes.
    calls = {"e2e": lambda: det.score(clip), "e2e_eager": lambda: eager.score(clip),
             "fwd": lambda: forward(eager.model), "fwd_frozen": lambda: forward(det.model)}
    for _ in range(args.warmup):
        for fn in calls.values():
            fn()
    ms = {k: [] for k in calls}
    cpu = []
    for _ in range(args.runs):
        for k, fn in calls.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            ms[k].append(1000 * (time.perf_counter() - t))
            if k == "e2e":
                cpu.append(1000 * (time.process_time() - c))
    e2e, fwd = ms["e2e"], ms["fwd_frozen"]  # fwd: the Detector's own encoder forward
    # CPU time of this process per call: less sensitive than wall time to other processes
    # sharing the cores; with `threads` free cores the wall time is at least cpu / threads.
    cpu_ms = float(np.median(cpu))
    read = _time(lambda: load_audio(clip), args.runs, args.warmup)

    def logmel():
        with torch.inference_mode():
            mel(segs)

    def logmel_dense():  # reference: the projection before MEL_BANDS, one product with the whole filter bank
        c = mel.cfg
        with torch.inference_mode():
            spec = torch.stft(segs, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
                              window=mel.window, center=True, pad_mode="reflect", return_complex=True)
            power = spec.real.square() + spec.imag.square()
            torch.log(torch.matmul(power.transpose(1, 2), mel.fbank).transpose(1, 2) + c.log_floor)

    feat, feat_dense = [], []  # interleaved call by call, as the end-to-end kinds are
    for i in range(args.warmup + args.runs):
        for fn, out in ((logmel, feat), (logmel_dense, feat_dense)):
            t = time.perf_counter()
            fn()
            if i >= args.warmup:
                out.append(1000 * (time.perf_counter() - t))
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(1000, 128))
    q = rng.normal(size=(10, 128))
    h_gmm = fit_inlier("gmm", 16, ref)
    h_lof = fit_inlier("lof", 16, ref)
    t_gmm = _time(lambda: h_gmm.score(q), args.runs, args.warmup)
    t_lof = _time(lambda: h_lof.score(q), args.runs, args.warmup)

    med = float(np.median(e2e))
    goal = GOALS_MS.get(backbone)
    if goal is None:
        verdict = f"no goal set for {backbone} (goals: {GOALS_MS})"
    elif args.threads != 2:
        verdict = f"goal median <= {goal:.0f} ms on 2 CPU threads: n/a (not 2 threads)"
    else:
        verdict = f"goal median <= {goal:.0f} ms on 2 CPU threads: {'met' if med <= goal else 'NOT met'} ({med:.1f} ms)"
    trained = "an evaluated run, --run" if args.run is not None else \
        "tiny run trained 1 epoch on the tiny synthetic set; latency does not depend on training"
    lines = [
        "minasd Detector latency: one 10 s clip end to end (read WAV, normalise, 10 x 2 s segments, log-mel, "
        "encoder, h, aggregation, threshold)",
        f"date        {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"device      CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
        f"{args.threads} threads (torch + BLAS); load average (1/5/15 min) before timing "
        f"{', '.join(f'{v:.2f}' for v in load_before)}",
        f"software    minasd {__version__}, torch {torch.__version__}, python {platform.python_version()}, "
        f"commit {git_commit()}",
        f"encoder     {backbone} ({trained}), h = {_h_label(det.config)} of the run",
        f"Detector    encoder {'frozen (freeze_for_cpu)' if frozen_ok else 'EAGER: freezing refused'}; "
        f"warnings while loading: {[str(w.message) for w in caught] or 'none'}",
        f"runs        {args.runs} timed after {args.warmup} warm-up calls, the 4 end-to-end/forward kinds "
        f"interleaved (setup {setup_s:.0f} s)",
        "",
        f"end to end (Detector.score(path))     {_stats(e2e)}",
        f"  process CPU time per call, median {cpu_ms:7.1f} ms (all threads; wall >= {cpu_ms / args.threads:.1f} ms "
        f"on {args.threads} free cores)",
        f"end to end, eager encoder (reference) {_stats(ms['e2e_eager'])}",
        f"reference: eager model forward, 10 segments {_stats(ms['fwd'])}",
        f"frozen model forward (Detector's), 10 segments {_stats(fwd)}",
        f"eager / frozen forward               {float(np.median(ms['fwd'])) / float(np.median(fwd)):.2f} "
        f"(medians)",
        f"Detector.load: {load_s:.2f} s with freezing, {load_eager_s:.2f} s eager (once per Detector; `minasd score` "
        f"freezes from {FREEZE_MIN_FILES} files on)",
        f"ratio end to end / frozen forward            {med / float(np.median(fwd)):.2f} (medians), "
        f"{min(e2e) / min(fwd):.2f} (minima: less disturbed by other processes)",
        f"read WAV (10 s, 16-bit)               {_stats(read)}",
        f"log-mel of 10 segments                {_stats(feat)}",
        f"  reference, dense mel projection     {_stats(feat_dense)}",
        f"  dense / banded (MEL_BANDS)          {float(np.median(feat_dense)) / float(np.median(feat)):.2f} (medians)",
        f"h at full scale: GMM p=16, 1000 refs  {_stats(t_gmm)}",
        f"h at full scale: LOF p=16, 1000 refs  {_stats(t_lof)}",
        verdict,
    ]
    if torch.cuda.is_available():
        from minasd.scoring import extract_embeddings

        dev = torch.device("cuda")
        gdet = Detector.load(run, device="cuda")
        waves = np.stack([load_audio(clip)] * 256)
        hset = gdet.inlier_set

        def batch():
            emb, _, _ = extract_embeddings(gdet.model, waves, gdet.norm, device=dev, features=gdet.features,
                                           batch_size=2560, amp_bf16=True)
            hset.score(emb, np.zeros(len(waves), int))

        for _ in range(2):
            batch()
        torch.cuda.synchronize()
        t = time.perf_counter()
        n_rep = 5
        for _ in range(n_rep):
            batch()
        torch.cuda.synchronize()
        rate = n_rep * len(waves) / (time.perf_counter() - t)
        lines.append(f"GPU throughput ({torch.cuda.get_device_name(dev)}, bf16, batches of 256 clips already in "
                     f"memory, features + encoder + h): {rate:.0f} clips/s")
    else:
        lines.append("GPU throughput: not measured (no CUDA device on this machine)")
    report = "\n".join(lines) + "\n"
    print(report, end="")
    if args.out:
        atomic_write_text(args.out, report)
        print(f"written to {args.out}")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
