"""The main job (``minasd demo``): the whole pipeline at small scale, on CPU.

1. data: a small synthetic set in the DCASE 2021 Task 2 layout (or ``--data ROOT``);
2. train the two-BCE model for one or two machine types for a few epochs
   (every other machine type present is the outlier-exposure negative);
3. fit the inlier model h per section on the held-out 10 %, score the test
   clips, AUC / pAUC per section, official DCASE files (``minasd.evaluate``);
4. print the per-section table and write figures and a summary JSON.

Re-running it resumes: finished trainings and evaluations are reused, an
interrupted training continues from its last checkpoint. Nothing is
overwritten silently. Everything printed about synthetic data says so. A few
epochs on a CPU are a demonstration of the pipeline, not the paper's result
(300 epochs on a GPU; chapter 6 of the book).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_OUT = Path("out/demo")


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help="DCASE-style data root to use instead of the synthetic set")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default {DEFAULT_OUT}); the synthetic set goes to OUT/data")
    parser.add_argument("--size", default="small", choices=["tiny", "small", "medium"],
                        help="synthetic set size when --data is not given (default small)")
    parser.add_argument("--machine-types", nargs="+", default=["fan"],
                        help="machine types to train and evaluate (default: fan)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default 3; the paper: 300)")
    parser.add_argument("--backbone", default=None,
                        help="timm encoder (default efficientnet_b0, the paper's; mobilenetv3_small_050 is ~10x "
                             "cheaper on CPU but is not the paper's method)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic set and of training")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _save_figure(fig, path: Path) -> Path:
    """Save a Figure as PNG atomically."""
    import io

    from .io_utils import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return atomic_write_bytes(path, buf.getvalue())


def _train_or_reuse(cfg, progress: bool) -> Path:
    from .train import train

    meta = Path(cfg.out_dir) / "run.json"
    if meta.exists():
        status = json.loads(meta.read_text()).get("status")
        if status == "finished":
            print(f"[demo] {cfg.machine_type}: finished run found in {cfg.out_dir}, reused")
            return Path(cfg.out_dir)
        print(f"[demo] {cfg.machine_type}: resuming the unfinished run in {cfg.out_dir}")
        return train(cfg, resume=True)
    return train(cfg)


def _inlier_that_fits(run_dir: Path, machine: str) -> tuple[str, int]:
    """Table I's inlier model, with p lowered to the largest power of two that the
    smallest section's held-out segments can support (small data sets hold out
    only a few clips per section). Says so when it lowers p."""
    from collections import Counter

    from .config import N_SEGMENTS, hparams_for
    from .data import parse_filename

    hp = hparams_for(machine)
    val = json.loads((run_dir / "split.json").read_text())["val"]
    per_section = Counter(parse_filename(v).section for v in val)
    n_min = min(per_section.values()) * N_SEGMENTS
    limit = n_min if hp.inlier == "gmm" else n_min - 1  # LOF needs more points than neighbours
    p = hp.p
    while p > max(1, limit):
        p //= 2
    if p != hp.p:
        print(f"[demo] {machine}: Table I's {hp.inlier.upper()} p={hp.p} needs more held-out segments than the "
              f"{n_min} of the smallest section; using p={p}")
    return hp.inlier, max(p, 1)


def run_demo(args: argparse.Namespace) -> int:
    import pandas as pd

    from . import data, viz
    from .book import data_label
    from .evaluate import evaluate_run, format_table, load_eval_results
    from .train import TrainConfig

    t0 = time.perf_counter()
    progress = not args.quiet
    root = args.data
    if root is None:
        from . import synth

        root = args.out / "data" / f"synth_{args.size}_seed{args.seed}"
        print(f"[demo] synthetic data ({args.size}, seed {args.seed}) -> {root}")
        synth.make_dataset(root, size=args.size, seed=args.seed, progress=progress)
    label = data_label(root)
    df = data.index(root)
    types_present = sorted(df.machine.unique())
    print(f"[demo] {len(df)} clips of {len(types_present)} machine types under {root}: {label}")
    unknown = [m for m in args.machine_types if m not in types_present]
    if unknown:
        raise ValueError(f"machine types {unknown} have no clips under {root} (present: {types_present})")

    backbone = args.backbone or "efficientnet_b0"
    summary = {"data_root": str(root), "data": label, "epochs": args.epochs, "backbone": backbone, "types": {}}
    fig_dir = args.out / "figures"
    for machine in args.machine_types:
        t_type = time.perf_counter()
        cfg = TrainConfig(machine_type=machine, data_root=str(root), out_dir=str(args.out / "runs" / machine),
                          epochs=args.epochs, device=args.device, seed=args.seed, backbone=args.backbone,
                          progress=progress)
        run_dir = _train_or_reuse(cfg, progress)
        try:
            res = load_eval_results(run_dir)
            print(f"[demo] {machine}: evaluation found in {run_dir / 'eval'}, reused")
        except FileNotFoundError:
            kind, p = _inlier_that_fits(run_dir, machine)
            res = evaluate_run(run_dir, p=p, inlier=kind, device=args.device, progress=progress)
        scale = f"{label}; {args.epochs} epochs, backbone {backbone}, device {res['provenance']['device']}"
        print(f"\n[demo] {machine}: per-section results (h = {res['inlier']['kind']} p={res['inlier']['p']}), {scale}")
        print(format_table(res))
        hm = res["summary_hmean"]["h"]
        fmt = lambda v: "n/a" if v is None else f"{100 * v:.2f}"  # noqa: E731
        print(f"[demo] {machine}: harmonic mean of AUC and pAUC: sections 00-02 {fmt(hm['dev'])}, "
              f"sections 03-05 {fmt(hm['eval'])}\n")

        # figures: training curves, ROC per section, score distributions
        log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
        written = [_save_figure(viz.plot_training_curves(log, caption=f"{machine} training curves. Data: {scale}."),
                                fig_dir / f"{machine}_training.png")]
        curves = {f"section {s}": (v["fpr"], v["tpr"]) for s, v in res["roc"]["h"].items()}
        if curves:
            written.append(_save_figure(viz.plot_roc(curves, caption=f"{machine} ROC per section (h + aggregation). "
                                                                     f"Data: {scale}."),
                                        fig_dir / f"{machine}_roc.png"))
        scores = pd.read_csv(run_dir / "eval" / "scores.csv")
        known = scores[scores.label >= 0]
        if len(known):
            written.append(_save_figure(
                viz.plot_score_distributions(known.score_h.to_numpy(), known.label.to_numpy(),
                                             caption=f"{machine} anomaly scores of labelled test clips, all sections. "
                                                     f"Data: {scale}."),
                fig_dir / f"{machine}_scores.png"))
        for w in written:
            print(f"[demo] wrote {w}")
        summary["types"][machine] = {"run_dir": str(run_dir), "hmean_dev": hm["dev"], "hmean_eval": hm["eval"],
                                     "sections": res["sections"], "seconds": round(time.perf_counter() - t_type, 1)}

    from .io_utils import atomic_write_json

    summary["seconds"] = round(time.perf_counter() - t0, 1)
    out = atomic_write_json(args.out / "summary.json", summary)
    print(f"[demo] wrote {out}; done in {summary['seconds']:.0f} s")
    return 0
