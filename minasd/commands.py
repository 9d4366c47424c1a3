"""The method's commands: ``minasd train``, ``minasd evaluate`` and ``minasd score``.

Each command is an ``add_<name>_arguments(parser)`` and ``run_<name>(args)`` pair that
:mod:`minasd.cli` wires; the work is done by :func:`minasd.train.train`,
:func:`minasd.evaluate.evaluate_run` and :class:`minasd.detector.Detector`, imported only
when a command runs.
"""
from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Sequence


# --- minasd train ---


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``minasd train`` (Book: chapter 4)."""
    parser.add_argument("--machine-type", required=True, help="target machine type, e.g. fan")
    parser.add_argument("--data", required=True, type=Path, help="DCASE-style data root (dev_data/, eval_data/)")
    parser.add_argument("--out", required=True, type=Path, help="run directory, e.g. runs/fan")
    from .profiles import PROFILES

    parser.add_argument("--profile", default="paper", choices=sorted(PROFILES),
                        help="training profile (minasd.profiles): paper (default: Table I, EfficientNet-B0, 300 "
                             "epochs) or cpu (the configuration that learns best per CPU minute); the options "
                             "below override it")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the profile's)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: Table I)")
    parser.add_argument("--lr", type=float, default=None, help="max learning rate of OneCycleLR (default: Table I)")
    parser.add_argument("--lam", type=float, default=None, help="lambda of Eq. 3 (default: Table I)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--no-mixup", action="store_true", help="ablation: train without Mixup")
    parser.add_argument("--product-loss-only", action="store_true",
                        help="ablation: drop L_machine (Eq. 2), only product-ID classification")
    parser.add_argument("--pretrained", default=None,
                        help="'noisy_student' (needs the Hugging Face hub) or a local EfficientNet-B0 state dict; "
                             "default: from scratch")
    parser.add_argument("--backbone", default=None,
                        help="timm encoder (default efficientnet_b0, the paper's); others are for quick checks only")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="held-out share per section (default 0.1)")
    parser.add_argument("--val-crops-per-clip", type=int, default=1, help="fixed validation crops per clip (default 1)")
    parser.add_argument("--max-train-clips-per-section", type=int, default=None,
                        help="use at most this many training clips per type and section (quick runs)")
    parser.add_argument("--num-workers", type=int, default=0, help="threads reading audio (default: auto)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue the unfinished run in --out from checkpoints/last.pt (same configuration)")
    group.add_argument("--overwrite", action="store_true",
                       help="delete the trainer's files in --out and train from scratch")


def run_train(args: argparse.Namespace) -> int:
    """Run ``minasd train`` (Book: chapter 4)."""
    from .profiles import get_profile
    from .train import TrainConfig, train

    settings = get_profile(args.profile).settings(epochs=args.epochs, backbone=args.backbone,
                                                  batch_size=args.batch_size, lam=args.lam)
    cfg = TrainConfig(
        machine_type=args.machine_type, data_root=str(args.data), out_dir=str(args.out), **settings, lr=args.lr,
        device=args.device, seed=args.seed, mixup=not args.no_mixup, machine_loss=not args.product_loss_only,
        pretrained=args.pretrained, val_fraction=args.val_fraction, val_crops_per_clip=args.val_crops_per_clip,
        num_workers=args.num_workers, max_train_clips_per_section=args.max_train_clips_per_section,
        compile=args.compile, progress=not args.quiet,
    )
    train(cfg, resume=args.resume, overwrite=args.overwrite)
    return 0


# --- minasd evaluate ---


def format_table(results: dict) -> str:
    """The per-section table of a results dict as text (percent)."""
    lines = [f"{'section':>8} {'role':>5} {'AUC':>7} {'pAUC':>7} {'AUC w/o h':>10} {'thr':>10} {'flagged':>8}"]
    pct = lambda v: "    n/a" if v is None else f"{100 * v:7.2f}"  # noqa: E731
    for r in results["sections"]:
        sec = f"{r['section']:02d}"
        lines.append(f"{sec:>8} {r['role']:>5} {pct(r['auc'])} {pct(r['pauc'])} {pct(r['auc_wo_h']):>10} "
                     f"{r['threshold']:10.4g} {r['n_flagged']:>4}/{r['n_test']}")
    return "\n".join(lines)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``minasd evaluate`` (Book: chapter 5)."""
    parser.add_argument("--run", required=True, type=Path, help="training run folder (minasd train --out)")
    parser.add_argument("--data", type=Path, default=None, help="data root (default: the run's)")
    parser.add_argument("--inlier", choices=["gmm", "lof"], default=None, help="inlier model h (default: Table I)")
    parser.add_argument("--p", type=int, default=None, help="GMM components / LOF neighbours (default: Table I)")
    parser.add_argument("--aggregation", default=None,
                        help="mean_above_median, mean, max or median (default: GMM mean_above_median, LOF mean)")
    parser.add_argument("--sections", type=int, nargs="+", default=None, help="sections (default: all of the run's)")
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best", help="checkpoint (default best)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--overwrite", action="store_true", help="replace existing results of this run")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``minasd evaluate`` and print the per-section table (Book: chapter 5)."""
    from .evaluate import evaluate_run
    from .provenance import data_caption

    res = evaluate_run(args.run, data_root=args.data, inlier=args.inlier, p=args.p, aggregation=args.aggregation,
                       sections=args.sections, device=args.device, overwrite=args.overwrite, which=args.checkpoint,
                       progress=not args.quiet)
    data = res["provenance"]["data"]
    print(f"{res['machine_type']} ({data_caption(data, 'line')}); "
          f"h = {res['inlier']['kind']} p={res['inlier']['p']}")
    print(format_table(res))
    return 0


# --- minasd score ---


def results_csv(results: Sequence) -> str:
    """CSV text of :class:`minasd.detector.DetectionResult` rows: file, machine_type, section, score,
    threshold, is_anomaly."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "machine_type", "section", "score", "threshold", "is_anomaly"])
    for r in results:
        w.writerow([r.source, r.machine_type, f"{r.section:02d}", repr(r.score), repr(r.threshold), int(r.is_anomaly)])
    return buf.getvalue()


def add_score_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``minasd score`` (Book: chapter 9)."""
    parser.add_argument("--run", required=True, type=Path, help="an evaluated run folder")
    parser.add_argument("files", nargs="+", type=Path, help="audio clips to score")
    parser.add_argument("--section", type=int, default=None,
                        help="section of every clip (default: read from each DCASE-style file name)")
    parser.add_argument("--csv", type=Path, default=None, help="also write the results to this CSV (never overwritten)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")


#: ``minasd score`` freezes the encoder (:func:`minasd.detector.freeze_for_cpu`) only for at least this many
#: files: freezing costs about 0.7 s (mobilenetv3_small_050) to 1.7 s (efficientnet_b0) once and
#: saves about 10 ms to 35 ms per clip on 2 threads (``benchmarks/results/detector_cpu*.txt``), so
#: it pays only over many clips.
FREEZE_MIN_FILES = 64


def run_score(args: argparse.Namespace) -> int:
    """Run ``minasd score``: one line per file, optional CSV (Book: chapter 9)."""
    from .detector import Detector
    from .io_utils import atomic_write_text

    if args.csv is not None and Path(args.csv).exists():
        raise FileExistsError(f"{args.csv} exists; choose another --csv path (results are never overwritten)")
    many = len(args.files) >= FREEZE_MIN_FILES
    det = Detector.load(args.run, device=args.device, optimize=None if many else False)
    results = []
    for f in args.files:
        r = det.score(f, args.section)
        print(r.line(), flush=True)
        results.append(r)
    if args.csv is not None:
        atomic_write_text(args.csv, results_csv(results))
        print(f"wrote {args.csv}")
    return 0
