"""The main job (``minasd demo``): the whole pipeline at small scale, on CPU.

1. data: a small synthetic set in the DCASE 2021 Task 2 layout (or ``--data ROOT``);
2. train the two-BCE model for one or two machine types with the ``cpu`` profile
   (:mod:`minasd.profiles`: the configuration that learned best per CPU minute);
   every other machine type present is the outlier-exposure negative;
3. fit the inlier model h per section on the held-out 10 %, score the test
   clips, AUC / pAUC per section, official DCASE files (``minasd.evaluate``);
4. print the per-section table beside the validation section accuracy the model
   reached and, on the same sections, the field's comparison systems
   (:data:`minasd.studies.experiment.SYSTEMS`): a GMM on each clip's log-mel mean
   and std (``gmm_meanstd``, :mod:`minasd.baseline`) and TWFR-GMM (``twfr_gmm``,
   :mod:`minasd.twfr`), both published, strong pooled-log-mel + GMM detectors,
   and, only with ``--with-ae`` (minutes of CPU training), the official DCASE 2021
   autoencoder baseline (``ae_dcase2021``, :mod:`minasd.dcase_ae`); write figures
   and a summary JSON.

Re-running it resumes: finished trainings, evaluations and comparison systems
are reused (each system's result is cached in ``OUT/systems/<variant>/<type>.json``
with the data and settings it was computed for; the cache of older demos,
``OUT/baseline/``, is not read: the mean/std GMM is computed again), an
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
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the synthetic set, of training and of the comparison systems")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--with-ae", action="store_true",
                        help="also train and score the official DCASE 2021 autoencoder baseline (2 models x 100 "
                             "epochs per type: minutes of CPU, see benchmarks/results/systems_cpu.txt)")
    # for tests only: the autoencoder's epochs (the recipe's 100 otherwise); not shown in --help
    parser.add_argument("--ae-epochs", type=int, default=None, help=argparse.SUPPRESS)


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


#: The comparison systems in the order the demo prints them (:data:`minasd.studies.experiment.SYSTEMS`):
#: the two GMMs always run (21.8 and 25.7 CPU s for fan at the protocol size, 60 training clips per
#: section as in the small set: benchmarks/results/systems_cpu.txt); the autoencoder only with ``--with-ae``.
DEMO_SYSTEMS = ("gmm_meanstd", "twfr_gmm", "ae_dcase2021")
#: Why the autoencoder is not run by default, and how to run it (benchmarks/results/systems_cpu.txt:
#: 462.8 CPU s for fan at 60 training clips per section, the small set's size).
AE_NOT_RUN = ("not run (it trains 2 models x 100 epochs per type: 7.7 CPU min for fan at 60 training clips per "
              "section, benchmarks/results/systems_cpu.txt: the demo would pass its 10-minute goal); "
              "add --with-ae to run it")


def _system_config(variant: str, seed: int, device: str, ae_epochs: int | None):
    """The system's published settings with the demo's seed (as ``minasd experiment`` passes its seed)."""
    if variant == "gmm_meanstd":
        from .baseline import BaselineConfig

        return BaselineConfig(seed=seed)
    if variant == "twfr_gmm":
        from .twfr import TWFRConfig

        return TWFRConfig(seed=seed)
    from .dcase_ae import AEConfig
    from .runs import resolve_device

    epochs = {} if ae_epochs is None else {"epochs": ae_epochs}
    return AEConfig(seed=seed, device=str(resolve_device(device)), **epochs)


def _system_rows(variant: str, root: Path, machine: str, cfg, progress: bool):
    """One system on one type: its per-section DataFrame and what it chose or trained."""
    if variant == "gmm_meanstd":
        from .baseline import run_baseline

        return run_baseline(root, [machine], cfg=cfg, workers=1, progress=progress), {}
    if variant == "twfr_gmm":
        from .twfr import run_twfr

        selection: list[dict] = []
        df = run_twfr(root, [machine], cfg=cfg, workers=1, progress=progress, selection=selection)
        chosen = next(r for r in selection if r.get("chosen"))  # k and r chosen on sections 00-02
        return df, {"k": int(chosen["k"]), "r": float(chosen["r"]), "how": chosen["how"]}
    from .dcase_ae import run_ae

    models: list[dict] = []
    df = run_ae(root, [machine], cfg=cfg, workers=1, progress=progress, models=models)
    return df, {"models": len(models), "epochs": cfg.epochs, "device": cfg.device}


def _system_or_reuse(variant: str, root: Path, machine: str, cfg, path: Path, progress: bool) -> dict:
    """One comparison system on the demo's sections: per-section AUC/pAUC and hmeans, cached in ``path``
    for the data (root, synthetic manifest) and settings it was computed for."""
    from dataclasses import asdict

    from .config import DEV_SECTIONS, EVAL_SECTIONS
    from .io_utils import atomic_write_json
    from .metrics import hmean_or_none
    from .provenance import find_synth_manifest
    from .studies.experiment import VARIANT_LABELS

    manifest = find_synth_manifest(root)
    volatile = ("manifest_path", "last_run")  # last_run changes each time the demo re-checks the set
    key = json.loads(json.dumps({
        "variant": variant, "root": str(Path(root).resolve()), "machine": machine, "settings": asdict(cfg),
        "manifest": None if manifest is None else {k: v for k, v in manifest.items() if k not in volatile}}))
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("key") == key:
            print(f"[demo] {machine}: {VARIANT_LABELS[variant]} found in {path}, reused")
            return old
    c0 = time.process_time()
    df, chosen = _system_rows(variant, root, machine, cfg, progress)
    sections = {int(r.section): {"auc": float(r.auc), "pauc": float(r.pauc)} for r in df.itertuples()}

    def hm(secs):  # a section the system could not score is missing: None
        return hmean_or_none([sections.get(s, {}).get(k) for s in secs for k in ("auc", "pauc")])

    out = {"key": key, "variant": variant, "label": VARIANT_LABELS[variant], "sections": sections,
           "hmean_dev": hm(DEV_SECTIONS), "hmean_eval": hm(EVAL_SECTIONS), "chosen": chosen,
           "cpu_s": round(time.process_time() - c0, 1)}
    atomic_write_json(path, out)
    return out


def _run_systems(args: argparse.Namespace, root: Path, machine: str, progress: bool) -> dict[str, dict]:
    """The comparison systems of this run (:data:`DEMO_SYSTEMS`; the autoencoder only with ``--with-ae``)."""
    systems = {}
    for variant in DEMO_SYSTEMS:
        if variant == "ae_dcase2021" and not args.with_ae:
            continue
        cfg = _system_config(variant, args.seed, args.device, args.ae_epochs)
        path = args.out / "systems" / variant / f"{machine}.json"
        systems[variant] = _system_or_reuse(variant, root, machine, cfg, path, progress)
    return systems


def format_comparison(machine: str, res: dict, systems: dict[str, dict], acc: dict) -> str:
    """What a newcomer needs at a glance: did it learn, and how does it compare with the field's systems?"""
    from .studies.experiment import VARIANT_LABELS

    fmt = lambda v: "  n/a" if v is None else f"{100 * v:5.1f}"  # noqa: E731
    hm = res["summary_hmean"]["h"]
    lines = [
        f"[demo] {machine}: validation section accuracy {acc['at_best']:.2f} at the best epoch ({acc['best_epoch']}), "
        f"{acc['final']:.2f} at the end (chance {1 / len(res['sections']):.2f})",
        f"[demo] {machine}: harmonic mean of AUC and pAUC (%)   sections 00-02   sections 03-05",
        f"         {'two-BCE model (trained above)':<40} {fmt(hm['dev'])}            {fmt(hm['eval'])}",
    ]
    for variant in DEMO_SYSTEMS:
        label = VARIANT_LABELS[variant]
        if variant in systems:
            s = systems[variant]
            lines.append(f"         {label:<40} {fmt(s['hmean_dev'])}            {fmt(s['hmean_eval'])}")
        elif variant == "ae_dcase2021":
            lines.append(f"         {label}: {AE_NOT_RUN}")
    return "\n".join(lines) + "\n"


def _data_root(args: argparse.Namespace, progress: bool) -> Path:
    """``--data``, or the synthetic set of ``--size`` and ``--seed`` under ``OUT/data`` (made when absent)."""
    if args.data is not None:
        return args.data
    from .data import synthetic_set

    print(f"[demo] synthetic data ({args.size}, seed {args.seed}) under {args.out / 'data'}")
    return synthetic_set(args.size, args.seed, parent=args.out / "data", progress=progress)


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
               "backbone": backbone, "seed": args.seed, "types": {},
               "systems_not_run": {} if args.with_ae else {"ae_dcase2021": AE_NOT_RUN}}
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
        systems = _run_systems(args, root, machine, progress)
        print(format_comparison(machine, res, systems, acc))
        for w in _write_figures(machine, log, res, run_dir, scale, args.out / "figures"):
            print(f"[demo] wrote {w}")
        hm = res["summary_hmean"]["h"]
        summary["types"][machine] = {"run_dir": str(run_dir), "hmean_dev": hm["dev"], "hmean_eval": hm["eval"],
                                     "val_section_acc": acc, "systems": systems,
                                     "sections": res["sections"], "seconds": round(time.perf_counter() - t_type, 1)}

    from .io_utils import atomic_write_json

    summary["seconds"] = round(time.perf_counter() - t0, 1)
    out = atomic_write_json(args.out / "summary.json", summary)
    print(f"[demo] wrote {out}; done in {summary['seconds']:.0f} s")
    return 0
