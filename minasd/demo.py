"""The main job (``minasd demo``): the whole pipeline at small scale, on CPU.

1. data: a small synthetic set in the DCASE 2021 Task 2 layout (or ``--data ROOT``);
2. train the two-BCE model for one or two machine types with the ``cpu`` profile
   (:mod:`minasd.profiles`: the configuration that learned best per CPU minute);
   every other machine type present is the outlier-exposure negative;
3. fit the inlier model h per section on the held-out 10 %, score the test
   clips, AUC / pAUC per section, official DCASE files (``minasd.evaluate``);
4. print the per-section table beside the validation section accuracy the model
   reached and the simple baseline's numbers on the same sections (a detector
   with no learning: the learned one has to beat it), and write figures and a
   summary JSON.

Re-running it resumes: finished trainings and evaluations are reused, an
interrupted training continues from its last checkpoint. Nothing is
overwritten silently. Everything printed about synthetic data says so. The
``cpu`` profile's encoder is not the paper's EfficientNet-B0 (``--profile
paper`` is the paper's configuration: 300 epochs, a GPU's work); a demo is a
demonstration of the pipeline, not the paper's result.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .profiles import PROFILES
from .runs import run_paths

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
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES),
                        help="training profile (default cpu: the configuration that learns best per CPU minute; "
                             "paper: EfficientNet-B0, 300 epochs)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the profile's)")
    parser.add_argument("--backbone", default=None, help="timm encoder (default: the profile's)")
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
    """The run of one type: a finished one reused, an unfinished one resumed (:func:`minasd.runs.train_or_resume`)."""
    from .runs import train_or_resume

    _, run_dir = train_or_resume(cfg, notes={
        "skipped": f"[demo] {cfg.machine_type}: finished run found in {cfg.out_dir}, reused",
        "resumed": f"[demo] {cfg.machine_type}: resuming the unfinished run in {cfg.out_dir}"})
    return run_dir


def _inlier_that_fits(run_dir: Path, machine: str) -> tuple[str, int]:
    """Table I's inlier model, with p lowered to the largest power of two that the
    smallest section's held-out segments can support (small data sets hold out
    only a few clips per section). Says so when it lowers p."""
    from collections import Counter

    from .config import N_SEGMENTS, hparams_for
    from .data import parse_filename

    hp = hparams_for(machine)
    val = json.loads((run_paths(run_dir).split).read_text())["val"]
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


def _section_accuracy(log: list[dict]) -> dict:
    """Validation section accuracy: at the best epoch (the checkpoint evaluated), the final and the first."""
    best = min(log, key=lambda r: r["val_loss"])
    return {"best_epoch": best["epoch"], "at_best": best["val_section_acc"], "final": log[-1]["val_section_acc"],
            "first": log[0]["val_section_acc"], "max": max(r["val_section_acc"] for r in log)}


def _baseline_or_reuse(root: Path, machine: str, path: Path, progress: bool) -> dict:
    """The simple baseline (no learning) on the same sections: per-section AUC/pAUC and hmeans; cached."""
    from .baseline import run_baseline
    from .io_utils import atomic_write_json
    from .metrics import hmean_or_none
    from .provenance import find_synth_manifest

    manifest = find_synth_manifest(root)
    key = {"root": str(Path(root).resolve()), "machine": machine,
           "manifest": None if manifest is None else {k: v for k, v in manifest.items() if k != "manifest_path"}}
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("key") == key:
            return old
    df = run_baseline(root, machine_types=[machine], workers=1, progress=progress)
    sections = {int(r.section): {"auc": float(r.auc), "pauc": float(r.pauc)} for r in df.itertuples()}

    def hm(secs):  # a section the baseline could not score is missing: None
        return hmean_or_none([sections.get(s, {}).get(k) for s in secs for k in ("auc", "pauc")])

    out = {"key": key, "sections": sections, "hmean_dev": hm((0, 1, 2)), "hmean_eval": hm((3, 4, 5)),
           "method": "per-section Gaussian mixture on log-mel mean/std (minasd.baseline)"}
    atomic_write_json(path, out)
    return out


def format_comparison(machine: str, res: dict, base: dict, acc: dict) -> str:
    """What a newcomer needs at a glance: did it learn, and does it beat a detector with no learning?"""
    fmt = lambda v: "  n/a" if v is None else f"{100 * v:5.1f}"  # noqa: E731
    hm = res["summary_hmean"]["h"]
    lines = [
        f"[demo] {machine}: validation section accuracy {acc['at_best']:.2f} at the best epoch ({acc['best_epoch']}), "
        f"{acc['final']:.2f} at the end (chance {1 / len(res['sections']):.2f})",
        f"[demo] {machine}: harmonic mean of AUC and pAUC (%)   sections 00-02   sections 03-05",
        f"         two-BCE model (learned)                  {fmt(hm['dev'])}            {fmt(hm['eval'])}",
        f"         baseline (no learning)                   {fmt(base['hmean_dev'])}            {fmt(base['hmean_eval'])}",
    ]
    return "\n".join(lines) + "\n"


def _data_root(args: argparse.Namespace, progress: bool) -> Path:
    """``--data``, or the synthetic set of ``--size`` and ``--seed`` under ``OUT/data`` (made when absent)."""
    if args.data is not None:
        return args.data
    from . import synth

    root = args.out / "data" / f"synth_{args.size}_seed{args.seed}"
    print(f"[demo] synthetic data ({args.size}, seed {args.seed}) -> {root}")
    synth.make_dataset(root, size=args.size, seed=args.seed, progress=progress)
    return root


def _evaluate_or_reuse(run_dir: Path, machine: str, device: str, progress: bool) -> dict:
    """The run's evaluation: reused when there, made again (and said so) when of an older minasd."""
    from .evaluate import evaluate_run, load_eval_results

    try:
        res = load_eval_results(run_dir)
        print(f"[demo] {machine}: evaluation found in {run_dir / 'eval'}, reused")
    except (FileNotFoundError, ValueError) as err:
        stale = isinstance(err, ValueError)  # results of an older minasd: evaluated again, said so
        if stale:
            print(f"[demo] {machine}: {err}; evaluating again")
        kind, p = _inlier_that_fits(run_dir, machine)
        res = evaluate_run(run_dir, p=p, inlier=kind, device=device, overwrite=stale, progress=progress)
    return res


def _write_figures(machine: str, log: list[dict], res: dict, run_dir: Path, scale: str, fig_dir: Path) -> list[Path]:
    """Training curves, ROC per section and score distributions of one type, as PNG files."""
    import pandas as pd

    from . import viz

    written = [_save_figure(viz.plot_training_curves(log, caption=f"{machine} training curves. Data: {scale}."),
                            fig_dir / f"{machine}_training.png")]
    curves = {f"section {s}": (v["fpr"], v["tpr"]) for s, v in res["roc"]["h"].items()}
    if curves:
        written.append(_save_figure(viz.plot_roc(curves, caption=f"{machine} ROC per section (h + aggregation). "
                                                                 f"Data: {scale}."),
                                    fig_dir / f"{machine}_roc.png"))
    scores = pd.read_csv(run_paths(run_dir).scores)
    known = scores[scores.label >= 0]
    if len(known):
        written.append(_save_figure(
            viz.plot_score_distributions(known.score_h.to_numpy(), known.label.to_numpy(),
                                         caption=f"{machine} anomaly scores of labelled test clips, all sections. "
                                                 f"Data: {scale}."),
            fig_dir / f"{machine}_scores.png"))
    return written


def run_demo(args: argparse.Namespace) -> int:
    """Run ``minasd demo``: data, then per machine type train, evaluate, compare, figures (module docstring)."""
    from . import data
    from .commands import format_table
    from .profiles import get_profile
    from .provenance import data_label
    from .train import TrainConfig

    t0 = time.perf_counter()
    progress = not args.quiet
    root = _data_root(args, progress)
    label = data_label(root)
    df = data.index(root)
    types_present = sorted(df.machine.unique())
    print(f"[demo] {len(df)} clips of {len(types_present)} machine types under {root}: {label}")
    unknown = [m for m in args.machine_types if m not in types_present]
    if unknown:
        raise ValueError(f"machine types {unknown} have no clips under {root} (present: {types_present})")

    profile = get_profile(args.profile)
    settings = profile.settings(epochs=args.epochs, backbone=args.backbone)
    backbone, epochs = settings["backbone"], settings["epochs"]
    summary = {"data_root": str(root), "data": label, "profile": profile.to_dict(), "epochs": epochs,
               "backbone": backbone, "seed": args.seed, "types": {}}
    for machine in args.machine_types:
        t_type = time.perf_counter()
        cfg = TrainConfig(machine_type=machine, data_root=str(root), out_dir=str(args.out / "runs" / machine),
                          **settings, device=args.device, seed=args.seed, progress=progress)
        run_dir = _train_or_reuse(cfg, progress)
        log = [json.loads(line) for line in (run_paths(run_dir).log).read_text().splitlines() if line.strip()]
        acc = _section_accuracy(log)
        res = _evaluate_or_reuse(run_dir, machine, args.device, progress)
        scale = (f"{label}; profile {profile.name}: {backbone}, {epochs} epochs, seed {args.seed}, "
                 f"device {res['provenance']['device']}")
        print(f"\n[demo] {machine}: per-section results (h = {res['inlier']['kind']} p={res['inlier']['p']}), {scale}")
        print(format_table(res))
        base = _baseline_or_reuse(root, machine, args.out / "baseline" / f"{machine}.json", progress)
        print(format_comparison(machine, res, base, acc))
        for w in _write_figures(machine, log, res, run_dir, scale, args.out / "figures"):
            print(f"[demo] wrote {w}")
        hm = res["summary_hmean"]["h"]
        summary["types"][machine] = {"run_dir": str(run_dir), "hmean_dev": hm["dev"], "hmean_eval": hm["eval"],
                                     "val_section_acc": acc, "baseline": base,
                                     "sections": res["sections"], "seconds": round(time.perf_counter() - t_type, 1)}

    from .io_utils import atomic_write_json

    summary["seconds"] = round(time.perf_counter() - t0, 1)
    out = atomic_write_json(args.out / "summary.json", summary)
    print(f"[demo] wrote {out}; done in {summary['seconds']:.0f} s")
    return 0
