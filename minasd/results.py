"""The committed results set: the whole protocol at a profile, over seeds (Book: chapters 6-8).

``minasd results`` runs :func:`minasd.experiment.experiment` once per seed and
aggregates what the book renders::

    minasd results --out results/experiment --work out/results_work   # synthetic protocol set, profile cpu

* **data**: a DCASE-style root (``--data``), or by default the synthetic factory's
  ``protocol`` size (test sections at the paper's size, 100 normal + 100 anomalous
  clips per section; training clips as many as the CPU budget allows), made once
  under ``WORK/data``.
* **seed 0**: every variant (proposed with lambda chosen on sections 00-02, w/o
  Mixup, only product-ID classification, w/o h, the baseline);
* **further seeds** (``--seeds``): proposed and baseline, with the lambda that seed
  0 chose on sections 00-02 for that type (no new selection: the choice is made
  once, on the development sections); the ablations too for the seeds named by
  ``--ablation-seeds``.
* Each seed's compact files are copied to ``OUT/seed<k>/`` (the
  :func:`minasd.experiment.load_results` layout, per-clip scores included), and
  ``OUT/summary/`` is rebuilt from all of them by :func:`aggregate`: per-type
  harmonic means per seed, their mean and spread, paired bootstrap intervals
  (proposed minus baseline, and each ablation against proposed), and on synthetic
  data AUC by anomaly kind, by subtle/gross class and by severity, and which
  anomalies one system catches that the other misses (:mod:`minasd.analysis`).
* ``OUT/summary/provenance.json``: profile, data manifest, seeds, commit,
  machine, wall time of each seed's experiment.

Resumable at every level: a finished seed's types are skipped by the experiment
itself, an interrupted training resumes from its last checkpoint; rerunning the
command after an interruption (or in another session) continues where it stopped
and refreshes ``OUT``.  Training runs (checkpoints, caches) stay under ``WORK``;
only ``OUT`` is meant to be committed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

from .io_utils import atomic_write_json, atomic_write_text, git_commit

SUMMARY_DIR = "summary"
ABLATIONS = ("no_mixup", "product_only", "wo_h")


def _seed_dirs(out: Path) -> list[tuple[int, Path]]:
    found = []
    for p in sorted(out.glob("seed*")):
        if p.is_dir() and p.name[4:].isdigit() and (p / "manifest.json").is_file():
            found.append((int(p.name[4:]), p))
    return sorted(found)


def publish(work_seed: Path, out_seed: Path) -> Path:
    """Copy a seed's compact result files (``WORK/seed<k>/results``) to ``OUT/seed<k>``, replacing the
    previous copy only once the new one is complete (copy to a temporary folder, then rename)."""
    src = work_seed / "results"
    if not (src / "manifest.json").is_file():
        raise FileNotFoundError(f"{src / 'manifest.json'} does not exist: that seed's experiment has not written "
                                "its tables yet")
    tmp = out_seed.with_name(f".{out_seed.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    old = out_seed.with_name(f".{out_seed.name}.old-{os.getpid()}")
    if out_seed.exists():
        out_seed.rename(old)
    tmp.rename(out_seed)
    if old.exists():
        shutil.rmtree(old)
    return out_seed


def restore(out_seed: Path, work_seed: Path) -> None:
    """Continue in a new checkout: copy a published seed's files (``OUT/seed<k>``) into an empty
    ``WORK/seed<k>/results``, so that the experiment skips the types finished in an earlier session."""
    dst = work_seed / "results"
    if (out_seed / "manifest.json").is_file() and not (dst / "types").is_dir():
        shutil.copytree(out_seed, dst, dirs_exist_ok=True)
        print(f"[results] {out_seed}: finished types restored into {dst}")


def load_scores(out: str | Path):
    """Per-clip scores of every published seed under ``out`` (one DataFrame, :data:`minasd.experiment.SCORE_COLUMNS`)."""
    import pandas as pd

    from .experiment import load_results

    parts = [load_results(d)["scores"] for _, d in _seed_dirs(Path(out))]
    parts = [p for p in parts if len(p)]
    if not parts:
        raise FileNotFoundError(f"no per-clip scores under {out}/seed*/scores/")
    return pd.concat(parts, ignore_index=True)


def _csv(path: Path, df) -> str:
    atomic_write_text(path, df.to_csv(index=False, float_format="%.6g"))
    return path.name


def aggregate(out: str | Path, data_root: str | Path | None = None, n_boot: int = 1000) -> dict:
    """Rebuild ``OUT/summary/`` from the published seeds (module docstring); returns what it wrote.

    Args:
        out: the results folder (``OUT``).
        data_root: the data root, for the synthetic factory's anomaly labels (skipped on real data).
        n_boot: bootstrap replicates.
    """
    from . import analysis
    from .config import EVAL_SECTIONS

    out = Path(out)
    scores = load_scores(out)
    summ = out / SUMMARY_DIR
    summ.mkdir(parents=True, exist_ok=True)
    written = []
    eval_scores = scores[scores["section"].isin(EVAL_SECTIONS)]
    sm = analysis.section_metrics(eval_scores)
    written.append(_csv(summ / "sections_by_seed.csv", sm.sections))
    written.append(_csv(summ / "types_by_seed.csv", sm.summary))
    written.append(_csv(summ / "types_over_seeds.csv", analysis.seed_summary(sm.summary, "hmean")))
    pairs = [("proposed", "baseline")] + [(v, "proposed") for v in ABLATIONS]
    boots = []
    present = set(eval_scores["variant"])
    for a, b in pairs:
        if a in present and b in present:
            boots.append(analysis.paired_bootstrap(eval_scores, a, b, n_boot=n_boot, seed=0))
    if boots:
        import pandas as pd

        written.append(_csv(summ / "paired_bootstrap.csv", pd.concat(boots, ignore_index=True)))
    kinds = None
    if data_root is not None:
        from .synth import find_manifest, read_labels

        if find_manifest(data_root) is not None:
            labels = read_labels(data_root)
            kinds = {
                "auc_by_kind": analysis.auc_by_kind(scores, labels),
                "auc_by_class": analysis.auc_by_class(scores, labels),
                "auc_by_severity": analysis.auc_by_severity(scores, labels),
                "detection_by_severity": analysis.detection_rate_by_severity(scores, labels),
            }
            if {"proposed", "baseline"} <= present:
                kinds["caught_missed"] = analysis.caught_missed(scores, labels, "proposed", "baseline")
            for name, table in kinds.items():
                written.append(_csv(summ / f"{name}.csv", table))
    return {"dir": str(summ), "files": written, "seeds": sorted(int(s) for s in scores["seed"].unique())}


def chosen_lambdas(seed0_results: Path) -> dict[str, float]:
    """Lambda chosen on sections 00-02 per type by the seed-0 experiment."""
    out = {}
    for f in sorted((seed0_results / "types").glob("*.json")):
        obj = json.loads(f.read_text())
        sel = obj["variants"].get("proposed", {}).get("selected") or {}
        if "lam" in sel:
            out[obj["machine_type"]] = float(sel["lam"])
    return out


def run_results(args: argparse.Namespace) -> int:
    """Run ``minasd results`` (module docstring)."""
    from .data import index, protocol_clips
    from .experiment import DEFAULT_GRID_LAM, VARIANTS, experiment
    from .profiles import get_profile

    profile = get_profile(args.profile)
    work, out = Path(args.work), Path(args.out)
    if args.data is None:
        from .synth import make_dataset

        root = work / "data" / f"synth_{args.synth_size}_seed{args.synth_seed}"
        print(f"[results] synthetic data ({args.synth_size}, seed {args.synth_seed}) -> {root}")
        make_dataset(root, size=args.synth_size, seed=args.synth_seed, progress=not args.quiet)
    else:
        root = Path(args.data)
    types = args.machine_types or sorted(set(protocol_clips(index(root), "train")["machine"]))
    overrides = {"backbone": profile.backbone, "profile": profile.name}
    if profile.batch_size is not None:
        overrides["batch_size"] = profile.batch_size
    epochs = args.epochs or profile.epochs
    grid_lam = [float(v) for v in (args.grid_lam or DEFAULT_GRID_LAM)]
    provenance_path = out / SUMMARY_DIR / "provenance.json"
    prov = json.loads(provenance_path.read_text()) if provenance_path.is_file() else {"seeds": {}}
    lams: dict[str, float] = {}
    for k in args.seeds:
        seed_work, seed_out = work / f"seed{k}", out / f"seed{k}"
        restore(seed_out, seed_work)
        first = k == args.seeds[0]
        variants = list(VARIANTS) if first or k in args.ablation_seeds else ["proposed", "baseline"]
        for m in types:  # one type at a time: each finished type is published at once (resume unit)
            t0 = time.perf_counter()
            experiment(root, seed_work, machine_types=[m], epochs=epochs, device=args.device, variants=variants,
                       grid_lam=grid_lam if first else [lams[m]], seed=k, train_overrides=overrides, workers=1,
                       progress=not args.quiet)
            if first:
                lams = chosen_lambdas(seed_work / "results")
            publish(seed_work, seed_out)
            agg = aggregate(out, root, n_boot=args.n_boot)
            from .evaluate import data_manifest

            wall = prov["seeds"].setdefault(str(k), {}).setdefault("wall_s_per_type", {})
            wall[m] = wall.get(m, 0.0) + round(time.perf_counter() - t0, 1)
            prov.update({
                "command": _command_line(args), "profile": profile.to_dict(), "epochs": epochs,
                "grid_lam_first_seed": grid_lam, "chosen_lam": lams, "variants_per_seed": {
                    **prov.get("variants_per_seed", {}), str(k): variants},
                "data": data_manifest(root), "data_root": os.path.relpath(root), "machine_types": types,
                "git_commit": git_commit(), "machine": {"platform": platform.platform(),
                                                        "processor": platform.processor(),
                                                        "cpu_count": os.cpu_count(), "device": args.device},
                "seeds_published": agg["seeds"], "summary_files": agg["files"],
                "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            })
            atomic_write_json(provenance_path, prov)
            print(f"[results] seed {k} {m}: published to {seed_out}; summary in {out / SUMMARY_DIR}")
    return 0


def add_results_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``minasd results``."""
    parser.add_argument("--out", type=Path, default=Path("results/experiment"),
                        help="compact results, committed (default results/experiment)")
    parser.add_argument("--work", type=Path, default=Path("out/results_work"),
                        help="training runs, caches and the synthetic set (default out/results_work; not committed)")
    parser.add_argument("--data", type=Path, default=None, help="DCASE-style data root (default: synthetic)")
    parser.add_argument("--synth-size", default="protocol", help="synthetic size when --data is absent")
    parser.add_argument("--synth-seed", type=int, default=0)
    parser.add_argument("--profile", default="cpu", help="training profile (default cpu)")
    parser.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds; the first runs every variant and chooses lambda (default 0 1 2)")
    parser.add_argument("--ablation-seeds", type=int, nargs="*", default=[],
                        help="further seeds that also train the ablations (default none)")
    parser.add_argument("--grid-lam", type=float, nargs="+", default=[0.1, 10.0],
                        help="lambda grid of the first seed (default 0.1 10)")
    parser.add_argument("--machine-types", nargs="+", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (default 1000)")
    parser.add_argument("--quiet", action="store_true")


def _command_line(args: argparse.Namespace) -> str:
    """The command as a reader would retype it (paths as given, relative by default)."""
    parts = ["minasd results", f"--out {args.out}", f"--work {args.work}", f"--profile {args.profile}",
             "--seeds " + " ".join(map(str, args.seeds))]
    if args.data is not None:
        parts.append(f"--data {args.data}")
    else:
        parts.append(f"--synth-size {args.synth_size} --synth-seed {args.synth_seed}")
    if args.ablation_seeds:
        parts.append("--ablation-seeds " + " ".join(map(str, args.ablation_seeds)))
    if args.epochs:
        parts.append(f"--epochs {args.epochs}")
    if args.machine_types:
        parts.append("--machine-types " + " ".join(args.machine_types))
    return " ".join(parts)
