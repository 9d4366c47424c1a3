"""The committed results set: the whole protocol at a profile, over seeds (Book: chapters 6-8).

``minasd results`` runs :func:`minasd.studies.experiment.experiment` once per seed and
aggregates what the book renders::

    minasd results --out results/experiment --work out/results_work   # synthetic protocol set, profile cpu

* **data**: a DCASE-style root (``--data``), or by default the synthetic factory's
  ``protocol`` size (test sections at the paper's size, 100 normal + 100 anomalous
  clips per section; training clips as many as the CPU budget allows), made once
  under ``WORK/data``.
* **the first seed** of ``--seeds`` (default 0 1 2: seed 0): every variant of ``--variants``
  (default all: proposed with lambda chosen on sections 00-02, w/o Mixup, only product-ID
  classification, w/o h, and the comparison systems :data:`minasd.studies.experiment.SYSTEMS`:
  the DCASE 2021 autoencoder ``ae_dcase2021``, ``twfr_gmm`` and the GMM on each clip's log-mel
  mean and standard deviation ``gmm_meanstd``, :mod:`minasd.baseline`, called "baseline" before
  results schema 4);
* **further seeds**: proposed and the comparison systems of ``--variants``, with the lambda that
  the first seed chose on sections 00-02 for that type (no new selection: the choice is made
  once, on the development sections); the ablations too for the seeds named by
  ``--ablation-seeds``.  Every seed's systems take that seed (mixture initialisation; the
  autoencoder's weights and shuffling).  ``--ae-epochs`` shortens the autoencoder's training
  (quick runs and tests only; default the recipe's 100 epochs).
* Each seed's compact files are copied to ``OUT/seed<k>/`` (the
  :func:`minasd.studies.experiment.load_results` layout, per-clip scores included; the
  official DCASE result files of each variant in ``OUT/seed<k>/dcase/<variant>/``,
  the experiment's team folders, :func:`minasd.studies.experiment.write_dcase_teams`), and
  ``OUT/summary/`` is rebuilt from all of them by :func:`aggregate`: per-type
  harmonic means per seed, their mean and spread, paired bootstrap intervals
  (proposed minus each comparison system, and each ablation against proposed), and on synthetic
  data AUC by anomaly kind, by subtle/gross class and by severity, and which
  anomalies the proposed method catches that each comparison system misses and the other way
  round (:mod:`minasd.studies.analysis`).
* ``OUT/summary/provenance.json``: the command, profile, data manifest, seeds, the comparison
  systems' settings changed from the published ones (``system_settings``; empty: none), commit,
  machine, wall time of each seed's experiment.

Adding a comparison system to committed results (or changing ``--ae-epochs``) trains nothing,
as long as the method variants of ``--variants`` and every other setting are the ones the results
were made with: each (seed, type) keeps its method variants and computes only the systems
(:func:`minasd.studies.experiment.run_type`); another method variant or setting computes the
type again.

One writer per file: the (seed, type) jobs run side by side (``--jobs``) and each writes
only its own type's files in ``WORK/seed<k>/results`` (:func:`minasd.studies.experiment.run_type`,
committed under the seed folder's lock); the scheduling process alone rewrites the seed's
tables, manifest and team folders from the finished types and publishes them, under the
same lock (:func:`merge_and_publish`), and alone writes ``OUT``.  The manifest holds every
file's checksum, so a set left half rewritten by an interruption is refused by
:func:`minasd.studies.experiment.load_results` until the next run rewrites it.  ``minasd
controlled`` shares the rule and the job runner (:class:`minasd.studies.jobs.JobRunner`: the pool,
a log per job under ``WORK/logs``, the provenance's machine block).

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
import shutil
import time
from pathlib import Path

from ..io_utils import atomic_write_json, atomic_write_text, folder_lock, git_commit
from ..profiles import DEFAULT_GRID_LAM
from .experiment import METHOD_VARIANTS, SYSTEMS, VARIANTS
from .jobs import JobRunner, command_line, in_log, now, run_provenance

SUMMARY_DIR = "summary"
ABLATIONS = ("no_mixup", "product_only", "wo_h")


def _seed_dirs(out: Path) -> list[tuple[int, Path]]:
    found = []
    for p in sorted(out.glob("seed*")):
        if p.is_dir() and p.name[4:].isdigit() and (p / "manifest.json").is_file():
            found.append((int(p.name[4:]), p))
    return sorted(found)


def publish(work_seed: Path, out_seed: Path, data_root: Path | None = None) -> Path:
    """Copy a seed's compact result files (``WORK/seed<k>/results``) to ``OUT/seed<k>``, replacing the
    previous copy only once the new one is complete (copy to a temporary folder, then rename).

    The copy names the data root as given (``data_root``, relative to the working directory), not
    the absolute path the experiment resolved: OUT is committed and names no machine's folders.
    The experiment's DCASE team folders (``WORK/seed<k>/dcase``) go to ``OUT/seed<k>/dcase``."""
    from .experiment import DCASE_DIR

    src = work_seed / "results"
    if not (src / "manifest.json").is_file():
        raise FileNotFoundError(f"{src / 'manifest.json'} does not exist: that seed's experiment has not written "
                                "its tables yet")
    tmp = out_seed.with_name(f".{out_seed.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    if (work_seed / DCASE_DIR).is_dir():
        shutil.copytree(work_seed / DCASE_DIR, tmp / DCASE_DIR, ignore=shutil.ignore_patterns(".*"))
    if data_root is not None:
        manifest = json.loads((tmp / "manifest.json").read_text())
        manifest.setdefault("provenance", {})["data_root"] = os.path.relpath(data_root)
        atomic_write_json(tmp / "manifest.json", manifest)
    old = out_seed.with_name(f".{out_seed.name}.old-{os.getpid()}")
    if out_seed.exists():
        out_seed.rename(old)
    tmp.rename(out_seed)
    if old.exists():
        shutil.rmtree(old)
    return out_seed


def restore(out_seed: Path, work_seed: Path) -> None:
    """Continue in a new checkout: copy a published seed's files (``OUT/seed<k>``) into an empty
    ``WORK/seed<k>/results``, so that the experiment skips the types finished in an earlier session.
    The published DCASE team folders go back to ``WORK/seed<k>/dcase``: the runs they were copied
    from are not published, so the experiment keeps these copies
    (:func:`minasd.studies.experiment.write_dcase_teams`)."""
    from .experiment import DCASE_DIR

    dst = work_seed / "results"
    if (out_seed / "manifest.json").is_file() and not (dst / "types").is_dir():
        shutil.copytree(out_seed, dst, dirs_exist_ok=True,
                        ignore=lambda d, names: [DCASE_DIR] if Path(d) == out_seed else [])
        if (out_seed / DCASE_DIR).is_dir() and not (work_seed / DCASE_DIR).exists():
            shutil.copytree(out_seed / DCASE_DIR, work_seed / DCASE_DIR)
        print(f"[results] {out_seed}: finished types restored into {dst}")


def load_scores(out: str | Path):
    """Per-clip scores of every published seed under ``out``: one DataFrame, columns
    :data:`minasd.studies.experiment.SCORE_COLUMNS`."""
    import pandas as pd

    from .experiment import RESULTS_SCHEMA_VERSION, load_results

    parts = []
    for k, d in _seed_dirs(Path(out)):
        version = json.loads((d / "manifest.json").read_text()).get("schema_version")
        if version != RESULTS_SCHEMA_VERSION:  # a seed not rewritten yet by this version (an upgrade under way)
            print(f"[results] {d}: schema version {version}, not {RESULTS_SCHEMA_VERSION}: left out of the summary "
                  "until `minasd results` rewrites it")
            continue
        parts.append(load_results(d)["scores"])
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
    from ..config import EVAL_SECTIONS

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
    pairs = [("proposed", v) for v in SYSTEMS] + [(v, "proposed") for v in ABLATIONS]
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
        from ..provenance import find_synth_manifest
        from ..synth import read_labels

        if find_synth_manifest(data_root) is not None:
            labels = read_labels(data_root)
            kinds = {
                "auc_by_kind": analysis.auc_by_kind(scores, labels),
                "auc_by_class": analysis.auc_by_class(scores, labels),
                "auc_by_severity": analysis.auc_by_severity(scores, labels),
                "detection_by_severity": analysis.detection_rate_by_severity(scores, labels),
            }
            caught = [analysis.caught_missed(scores, labels, "proposed", v)
                      for v in SYSTEMS if {"proposed", v} <= present]
            if caught:
                import pandas as pd

                kinds["caught_missed"] = pd.concat(caught, ignore_index=True)
            for name, table in kinds.items():
                written.append(_csv(summ / f"{name}.csv", table))
    return {"dir": str(summ), "files": written, "seeds": sorted(int(s) for s in scores["seed"].unique())}


def chosen_lambdas(seed0_results: Path) -> dict[str, float]:
    """Lambda chosen on sections 00-02 per type by the seed-0 experiment."""
    from .experiment import REUSABLE_SCHEMA_VERSIONS, _type_records

    out = {}
    # a record another job has just withdrawn (computing its type again) is skipped: its lambda
    # comes back when that job commits the type
    for machine, obj in _type_records(seed0_results, REUSABLE_SCHEMA_VERSIONS).items():
        sel = obj["variants"].get("proposed", {}).get("selected") or {}
        if "lam" in sel:
            out[machine] = float(sel["lam"])
    return out


def _run_task(kwargs: dict, log_path: str | None) -> float:
    """One (seed, type) experiment in a job: it writes only that type's own files (``tables=False``);
    the scheduling process merges them (:func:`merge_and_publish`).  With a log path its output goes
    there (parallel runs).  Returns its wall time in seconds."""
    from .experiment import experiment

    t0 = time.perf_counter()
    in_log(log_path, experiment, **kwargs, tables=False)
    return time.perf_counter() - t0


def merge_and_publish(kwargs: dict, work_seed: Path, out_seed: Path, data_root: Path) -> Path:
    """Merge a seed's finished types into its tables and publish them (the one writer of both).

    Under the seed folder's lock (:func:`minasd.io_utils.folder_lock`), which a job also takes
    to commit a type's files: the experiment rewrites the tables, the manifest and the DCASE
    team folders from every finished type (no training: the job has just finished its type),
    and the published copy is taken before any job can commit another type."""
    from .experiment import experiment

    with folder_lock(work_seed):
        experiment(**{**kwargs, "progress": False})
        return publish(work_seed, out_seed, data_root)


def _data_root(args: argparse.Namespace, work: Path) -> Path:
    """``--data``, or the synthetic set of ``--synth-size`` and ``--synth-seed``, made once under ``WORK/data``."""
    if args.data is not None:
        return Path(args.data)
    from ..data import synthetic_set

    print(f"[results] synthetic data ({args.synth_size}, seed {args.synth_seed}) under {work / 'data'}")
    return synthetic_set(args.synth_size, args.synth_seed, parent=work / "data", progress=not args.quiet)


def run_results(args: argparse.Namespace) -> int:
    """Run ``minasd results`` (module docstring)."""
    from ..data import index, protocol_clips
    from ..profiles import get_profile
    from ..provenance import data_manifest

    t_start = time.perf_counter()
    profile = get_profile(args.profile)
    work, out = Path(args.work), Path(args.out)
    runner = JobRunner.plan(args.jobs, args.device, work / "logs")
    root = _data_root(args, work)
    types = args.machine_types or sorted(set(protocol_clips(index(root), "train")["machine"]))
    epochs, overrides = profile.experiment_settings(epochs=args.epochs)
    grid_lam = [float(v) for v in args.grid_lam]
    provenance_path = out / SUMMARY_DIR / "provenance.json"
    prov = json.loads(provenance_path.read_text()) if provenance_path.is_file() else {"seeds": {}}
    first = args.seeds[0]
    chosen = parse_variants(args.variants) if args.variants else list(VARIANTS)
    if args.ae_epochs is not None and args.ae_epochs < 1:
        raise ValueError(f"--ae-epochs {args.ae_epochs}: the autoencoder needs at least 1 epoch")
    system_settings = {"ae_dcase2021": {"epochs": args.ae_epochs}} if args.ae_epochs else None
    for k in args.seeds:
        restore(out / f"seed{k}", work / f"seed{k}")
    lams: dict[str, float] = chosen_lambdas(work / f"seed{first}" / "results")

    def seed_variants(k: int) -> list[str]:
        return (chosen if k == first or k in args.ablation_seeds
                else [v for v in chosen if v == "proposed" or v in SYSTEMS])

    def needs_lam(k: int) -> bool:
        """A later seed trains the method at the first seed's lambda; the comparison systems need none."""
        return k != first and any(v in METHOD_VARIANTS for v in seed_variants(k))

    def task_kwargs(k: int, m: str) -> dict:
        return dict(data_root=root, out_dir=work / f"seed{k}", machine_types=[m], epochs=epochs,
                    device=args.device, variants=seed_variants(k), grid_lam=[lams[m]] if needs_lam(k) else grid_lam,
                    seed=k, train_overrides=overrides, workers=1, progress=not args.quiet,
                    system_settings=system_settings)

    def waits(task: tuple[int, str], queued: list) -> bool:
        """A later seed of a type waits for the first seed's lambda choice of that type."""
        k, m = task
        if not needs_lam(k) or m in lams:
            return False
        if (first, m) not in queued:
            raise RuntimeError(f"seed {first} chose no lambda for {m}: see {work / f'seed{first}'}")
        return True

    def submit(pool, task: tuple[int, str]):
        k, m = task
        log = runner.log(f"seed{k}_{m}")
        if log:
            print(f"[results] seed {k} {m}: started (log {log})", flush=True)
        return pool.submit(_run_task, task_kwargs(k, m), log)

    def finish(task: tuple[int, str], wall: float) -> None:
        """Rewrite seed k's tables with every finished type (a no-training call: m is up to date),
        publish it and rebuild the summary; the resume unit is one (seed, type)."""
        nonlocal lams
        k, m = task
        kw = task_kwargs(k, m)
        seed_out = merge_and_publish(kw, work / f"seed{k}", out / f"seed{k}", root)
        if k == first:
            lams = chosen_lambdas(work / f"seed{k}" / "results")
        agg = aggregate(out, root, n_boot=args.n_boot)
        entry = prov["seeds"].setdefault(str(k), {})
        entry.setdefault("wall_s_per_type", {})[m] = entry.get("wall_s_per_type", {}).get(m, 0.0) + round(wall, 1)
        entry["variants"] = kw["variants"]
        prov.update({
            "command": _command_line(args), "profile": profile.to_dict(), "epochs": epochs,
            "system_settings": system_settings or {},
            "grid_lam_first_seed": grid_lam, "chosen_lam": lams,
            "data": data_manifest(root), "data_root": os.path.relpath(root), "machine_types": types,
            **run_provenance(runner, args.device),  # git_commit, machine, parallel
            "seeds_published": agg["seeds"], "summary_files": agg["files"], "updated_at": now(),
        })
        prov.pop("variants_per_seed", None)
        atomic_write_json(provenance_path, prov)
        print(f"[results] seed {k} {m}: {wall / 60:.1f} min; published to {seed_out}; summary in "
              f"{out / SUMMARY_DIR}", flush=True)

    tasks = [(k, m) for k in args.seeds for m in types]
    print(f"[results] {len(tasks)} (seed, type) runs, {runner.jobs} at a time{runner.note()}", flush=True)
    runner.run(tasks, submit, finish, waits)
    prov.setdefault("invocations", []).append({
        "wall_s": round(time.perf_counter() - t_start, 1), "jobs": runner.jobs, "seeds": list(args.seeds),
        "machine_types": types, "finished_at": now(), "git_commit": git_commit()})
    atomic_write_json(provenance_path, prov)
    print(f"[results] done in {(time.perf_counter() - t_start) / 60:.1f} min", flush=True)
    return 0


def parse_variants(text: str) -> list[str]:
    """``--variants``: a comma-separated subset of :data:`minasd.studies.experiment.VARIANTS`, in that order.

    >>> parse_variants("gmm_meanstd, proposed")
    ['proposed', 'gmm_meanstd']
    """
    from .experiment import VARIANTS

    asked = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in asked if v not in VARIANTS]
    if bad or not asked:
        raise ValueError(f"--variants {text!r}: unknown {bad}; choose from {','.join(VARIANTS)}")
    return [v for v in VARIANTS if v in asked]


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
    parser.add_argument("--variants", default=None,
                        help="comma-separated subset of the variants (default all: "
                             "proposed,no_mixup,product_only,wo_h,ae_dcase2021,twfr_gmm,gmm_meanstd); later seeds run "
                             "proposed and the comparison systems of them")
    parser.add_argument("--ae-epochs", type=int, default=None,
                        help="training epochs of the DCASE 2021 autoencoder (default: the recipe's 100; "
                             "quick runs and tests only)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds; the first runs every variant and chooses lambda (default 0 1 2)")
    parser.add_argument("--ablation-seeds", type=int, nargs="*", default=[],
                        help="further seeds that also train the ablations (default none)")
    parser.add_argument("--grid-lam", type=float, nargs="+", default=list(DEFAULT_GRID_LAM),
                        help="lambda grid of the first seed (default "
                             f"{' '.join(f'{v:g}' for v in DEFAULT_GRID_LAM)}: Table I's values)")
    parser.add_argument("--machine-types", nargs="+", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=None,
                        help="trainings at once, the cores shared among them (default: 2 on a CPU with 2+ cores, "
                             "1 on a GPU)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (default 1000)")
    parser.add_argument("--quiet", action="store_true")


def _command_line(args: argparse.Namespace) -> str:
    """The command as a reader would retype it (paths as given, relative by default)."""
    synthetic = args.data is None
    return command_line("results", [
        ("--out", args.out), ("--work", args.work), ("--profile", args.profile), ("--seeds", args.seeds),
        ("--data", args.data), ("--synth-size", args.synth_size if synthetic else None),
        ("--synth-seed", args.synth_seed if synthetic else None), ("--ablation-seeds", args.ablation_seeds or None),
        ("--epochs", args.epochs or None), ("--machine-types", args.machine_types or None),
        ("--variants", args.variants), ("--ae-epochs", args.ae_epochs)])
