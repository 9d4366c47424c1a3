"""Which training configuration learns best per CPU minute? (issue 13; Book: chapter 4).

The study behind the ``cpu`` profile (:mod:`minasd.profiles`).  For each candidate
configuration (encoder, epochs, batch size; log-mel input as in the paper) and each
machine type it trains one model on a synthetic set and measures, on the
**development sections 00-02 only** (the choice of a profile is a choice of
hyperparameters, so sections 03-05 are never looked at):

* the validation section accuracy (best epoch) and the final one;
* the dev hmean: harmonic mean of AUC and pAUC over sections 00-02, for the inlier
  model chosen on those sections from a small grid (the experiment's own selection
  rule), and the mean over that grid (less optimistic);
* the wall time of the training, as measured while the study ran.

Throughput is measured separately (``--throughput``), a few training steps per encoder
in one process, so that crops/s compares encoders under the same load.  The simple
baseline (per-section Gaussian mixture on log-mel mean/std) is measured on the same
sections as the reference a learned detector must beat.

    python benchmarks/cpu_profile_study.py --all --data data/synth_small --out study/
        # one command: the small synthetic set (made if missing), every candidate of STUDY on fan
        # (resumable: finished trainings are reused), crops/s per candidate, then the table
        # -> benchmarks/results/cpu_profile_study.{txt,json}
    python benchmarks/cpu_profile_study.py --data ... --out ... --candidates ... --machine-types ...
        # trainings only;  --throughput: crops/s only;  --report: the table from finished runs

The rule that picks the ``cpu`` profile from the table (:func:`rule_pick`): the candidate with
the shortest estimated training time among those whose validation section accuracy reaches
``ACC_GOAL`` (the demo's learning goal); among candidates within ``TIE_MIN`` minutes of it, the
best dev hmean.  The report marks the rule's pick and the profile's row, and says if they differ.

Every row states data, scale, seed and machine.  Numbers on synthetic data are not
comparable with any DCASE result.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

#: Candidate configurations: name -> (backbone, epochs, batch_size, lambda, max lr); None = Table I.
#: Table I's lambda is 0.1 for fan and ToyTrain, 10 for the other types; "lam10" fixes 10 for every type.
CANDIDATES: dict[str, tuple[str, int, int, float | None, float | None]] = {
    "mnv3s050-e10-b32": ("mobilenetv3_small_050", 10, 32, None, None),
    "mnv3s050-e20-b32": ("mobilenetv3_small_050", 20, 32, None, None),
    "mnv3s050-e20-b32-lam10": ("mobilenetv3_small_050", 20, 32, 10.0, None),
    "mnv3s050-e40-b32-lam10": ("mobilenetv3_small_050", 40, 32, 10.0, None),
    "mnv3s050-e40-b32-lam10-lr3e-3": ("mobilenetv3_small_050", 40, 32, 10.0, 0.003),
    "mnv3s050-e20-b16-lam10": ("mobilenetv3_small_050", 20, 16, 10.0, None),
    "mnv3s050-e20-b64-lam10": ("mobilenetv3_small_050", 20, 64, 10.0, None),
    "mnv3s100-e20-b32-lam10": ("mobilenetv3_small_100", 20, 32, 10.0, None),
    "effb0-e6-b32-lam10": ("efficientnet_b0", 6, 32, 10.0, None),
}
#: The candidates of the committed table (``--all``): encoder (MobileNetV3-Small 0.5x and 1.0x,
#: EfficientNet-B0), epochs (10, 20, 40), batch size (16, 32, 64) and lambda (Table I, 10).
#: The log-mel input stays the paper's (224 mel bins x 126 frames per 2 s): it defines the
#: features the method is about, and it is a small share of the step (``bench_train.py``).
STUDY = ["mnv3s050-e10-b32", "mnv3s050-e20-b32", "mnv3s050-e20-b32-lam10", "mnv3s050-e40-b32-lam10",
         "mnv3s050-e20-b16-lam10", "mnv3s050-e20-b64-lam10", "mnv3s100-e20-b32-lam10", "effb0-e6-b32-lam10"]
#: The selection rule (:func:`rule_pick`): validation section accuracy to reach, and the
#: estimated minutes within which the faster candidates count as equally fast.
ACC_GOAL = 0.8
TIE_MIN = 0.25
#: Inlier-model grid searched on sections 00-02 (kind, p).
GRID = [("gmm", 1), ("gmm", 2), ("gmm", 4), ("lof", 4), ("lof", 8), ("lof", 16)]
DEV = (0, 1, 2)
RESULTS = Path(__file__).resolve().parent / "results"


def _hmean(values):
    from minasd.metrics import harmonic_mean

    v = [x for x in values if x is not None]
    return harmonic_mean(v) if v and len(v) == len(values) and min(v) > 0 else None


def study_one(data: Path, out: Path, machine: str, name: str, seed: int) -> dict:
    """Train one candidate on one machine type and measure it on sections 00-02 (resumable)."""
    from minasd.evaluate import grid_scores, load_embeddings
    from minasd.io_utils import atomic_write_json
    from minasd.train import TrainConfig, train

    res_path = out / machine / name / "study.json"
    if res_path.is_file():
        return json.loads(res_path.read_text())
    backbone, epochs, batch, lam, lr = CANDIDATES[name]
    run = out / machine / name / "run"
    cfg = TrainConfig(machine_type=machine, data_root=str(data), out_dir=str(run), epochs=epochs,
                      batch_size=batch, lam=lam, lr=lr, backbone=backbone, device="cpu", seed=seed, progress=False)
    t0 = time.perf_counter()
    meta_path = run / "run.json"
    resume = meta_path.is_file() and json.loads(meta_path.read_text()).get("status") != "finished"
    if not (meta_path.is_file() and not resume):
        train(cfg, resume=resume)
    train_s = time.perf_counter() - t0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    embs = load_embeddings(run, data, device="cpu", progress=False)
    rows = grid_scores(embs, GRID, sections=DEV)
    per_cand = {}
    for kind, p in GRID:
        vals = []
        for r in rows:
            if r["kind"] == kind and r["p"] == p:
                vals += [r["auc"], r["pauc"]]
        per_cand[f"{kind}{p}"] = _hmean(vals)
    ok = {k: v for k, v in per_cand.items() if v is not None}
    best_key = max(ok, key=ok.get) if ok else None
    res = {
        "machine_type": machine, "candidate": name, "backbone": backbone, "epochs": epochs, "batch_size": batch,
        "lam": json.loads(meta_path.read_text())["hparams"]["lam"], "lr": json.loads(meta_path.read_text())["hparams"]["lr"],
        "seed": seed, "train_wall_s": round(sum(r["seconds"] for r in log), 1), "wall_s_this_call": round(train_s, 1),
        "steps_per_epoch": json.loads(meta_path.read_text())["counts"]["steps_per_epoch"],
        "val_section_acc_best": max(r["val_section_acc"] for r in log),
        "val_section_acc_final": log[-1]["val_section_acc"],
        "val_section_acc_curve": [round(r["val_section_acc"], 3) for r in log],
        "dev_hmean_selected": ok.get(best_key) if best_key else None, "dev_selected_h": best_key,
        "dev_hmean_grid_mean": statistics.mean(ok.values()) if ok else None,
        "dev_hmean_per_h": per_cand,
    }
    atomic_write_json(res_path, res)
    return res


def baseline_dev(data: Path, machines: list[str]) -> dict:
    from minasd.baseline import run_baseline

    df = run_baseline(data, machine_types=machines, sections=DEV, workers=1, progress=False)
    out = {}
    for m, g in df.groupby("machine"):
        out[m] = _hmean(g["auc"].tolist() + g["pauc"].tolist())
    return out


def _thr_key(backbone: str, batch: int) -> str:
    return f"{backbone}/b{batch}"


def throughput(configs: list[tuple[str, int]], steps: int, threads: int = 2) -> dict:
    """Crops/s of the trainer's whole step (:func:`minasd.train.train_step` through bench_train's
    ``NewPath``: store, crops, log-mel, Mixup, Eq. 3, optimiser) per (encoder, batch size), in one
    process, interleaved round by round, median of ``steps``.  Keys: ``"<encoder>/b<batch>"``."""
    import statistics
    import tempfile

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_train
    from minasd.config import MACHINE_TYPES

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        store = bench_train.fake_store(Path(tmp), len(MACHINE_TYPES), 64, 10.0)
        data = bench_train.train_data(store, len(MACHINE_TYPES), MACHINE_TYPES[0])
        paths = {(bb, b): bench_train.NewPath(data, MACHINE_TYPES[0], b, torch.device("cpu"), False, bb)
                 for bb, b in configs}
        for p in paths.values():
            p.whole_step()  # warm-up
        times = {c: [] for c in configs}
        for _ in range(steps):
            for c, p in paths.items():
                t0 = time.perf_counter()
                p.whole_step()
                times[c].append(time.perf_counter() - t0)
    return {_thr_key(bb, b): round(b / statistics.median(times[(bb, b)]), 1) for bb, b in configs}


def est_minutes(row: dict, thr: dict) -> float | None:
    """Training minutes of one type on an idle machine: epochs x steps/epoch x batch / crops/s."""
    cps = thr.get(_thr_key(row["backbone"], row["batch_size"]))
    return row["epochs"] * row["steps_per_epoch"] * row["batch_size"] / cps / 60 if cps else None


def rule_pick(rows: list[dict], thr: dict) -> dict | None:
    """The row the selection rule picks: among rows whose best validation section accuracy
    reaches ``ACC_GOAL``, those within ``TIE_MIN`` estimated minutes of the fastest; of these,
    the best dev hmean.  None if no row reaches the goal or speeds are missing.

    >>> thr = {"a/b32": 100.0}
    >>> r = lambda name, ep, acc, dev: dict(candidate=name, backbone="a", batch_size=32, epochs=ep,
    ...     steps_per_epoch=10, val_section_acc_best=acc, dev_hmean_selected=dev)
    >>> rule_pick([r("slow", 40, 1.0, 0.8), r("fast", 20, 0.9, 0.7), r("fastest", 10, 0.5, 0.9)], thr)["candidate"]
    'fast'
    """
    ok = [(est_minutes(r, thr), r) for r in rows if r["val_section_acc_best"] >= ACC_GOAL]
    ok = [(m, r) for m, r in ok if m is not None]
    if not ok:
        return None
    fastest = min(m for m, _ in ok)
    near = [r for m, r in ok if m <= fastest + TIE_MIN]
    return max(near, key=lambda r: r["dev_hmean_selected"] or 0.0)


def _profile_candidate(rows: list[dict]) -> str | None:
    """The row whose settings are the ``cpu`` profile's (encoder, epochs, batch, lambda)."""
    from minasd.profiles import get_profile

    prof = get_profile("cpu")
    for r in rows:
        if (r["backbone"], r["epochs"], r["batch_size"], r.get("lam")) == (prof.backbone, prof.epochs,
                                                                           prof.batch_size, prof.lam):
            return r["candidate"]
    return None


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def report(out: Path, data: Path, machines: list[str], seed: int, candidates: list[str] | None = None) -> str:
    """Write the table (``benchmarks/results/cpu_profile_study.{txt,json}``) from finished runs."""
    from minasd.io_utils import atomic_write_json, atomic_write_text, git_commit
    from minasd.provenance import find_synth_manifest

    rows = []
    for m in machines:
        for name in candidates or CANDIDATES:
            p = out / m / name / "study.json"
            if p.is_file():
                rows.append(json.loads(p.read_text()))
    base = baseline_dev(data, machines)
    manifest = find_synth_manifest(data) or {}
    thr_path = out / "throughput.json"
    thr = json.loads(thr_path.read_text()) if thr_path.is_file() else {}
    head = [
        "# CPU profile study: which configuration learns best per CPU minute (sections 00-02 only)",
        f"# date: {dt.datetime.now().isoformat(timespec='seconds')}, commit {git_commit()}, "
        f"machine {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average (1/5/15 min) "
        f"when the table was written {_load()}",
        f"# data: synthetic (generator {manifest.get('generator_version', '?')}, size {manifest.get('size', '?')}, "
        f"seed {manifest.get('seed', '?')}); training seed {seed}; types {' '.join(machines)}",
        "# dev hmean = harmonic mean of AUC and pAUC (%) over sections 00-02; 'selected' = best h of the grid "
        f"{' '.join(f'{k}{p}' for k, p in GRID)} on those sections, 'grid mean' = mean over the grid",
        "# wall min = training wall time (validation included) as the study ran it, one training at a time; "
        "crops/s = whole training step at the candidate's batch size, measured alone (--throughput)",
        "# est min = epochs x steps/epoch x batch / crops/s: training minutes of one type on an idle machine "
        "(validation excluded)",
    ]
    if os.environ.get("MINASD_STUDY_NOTE"):
        head.append(f"# note: {os.environ['MINASD_STUDY_NOTE']}")
    pick = rule_pick(rows, thr)
    prof = _profile_candidate(rows)
    lines = head + ["", f"  {'type':8s} {'candidate':30s} {'lam':>5s} {'crops/s':>8s} {'est min':>8s} "
                        f"{'wall min':>8s} {'acc best':>8s} {'acc end':>8s} {'dev sel':>8s} {'dev mean':>8s}  h"]
    for r in rows:
        cps = thr.get(_thr_key(r["backbone"], r["batch_size"]))
        est = est_minutes(r, thr)
        f = lambda v, fmt: (fmt % v) if v is not None else "-"  # noqa: E731
        mark = ("*" if pick is not None and r["candidate"] == pick["candidate"] else " ") + \
               ("P" if r["candidate"] == prof else " ")
        lines.append(f"{mark}{r['machine_type']:8s} {r['candidate']:30s} {r.get('lam', 0):5g} {f(cps, '%8.1f'):>8s} "
                     f"{f(est, '%8.1f'):>8s} "
                     f"{r['train_wall_s'] / 60:8.1f} {r['val_section_acc_best']:8.3f} {r['val_section_acc_final']:8.3f} "
                     f"{f(r['dev_hmean_selected'] and 100 * r['dev_hmean_selected'], '%8.1f'):>8s} "
                     f"{f(r['dev_hmean_grid_mean'] and 100 * r['dev_hmean_grid_mean'], '%8.1f'):>8s}  {r['dev_selected_h']}")
    lines.append("")
    for m, v in base.items():
        lines.append(f"  {m:8s} {'baseline (GMM on log-mel mean/std)':38s} dev hmean {100 * v:.1f}")
    lines += ["", f"rule: among candidates reaching validation section accuracy >= {ACC_GOAL:g}, those within "
                  f"{TIE_MIN:g} estimated minutes of the fastest; of these the best dev hmean.",
              f"*  rule's pick: {pick['candidate'] if pick else 'none (no candidate reaches the accuracy goal)'}",
              f"P  the cpu profile (minasd/profiles.py): {prof or 'not among these rows'}"]
    if pick is not None and prof is not None and pick["candidate"] != prof:
        lines.append("   the rule's pick differs from the profile: the profile was chosen on an earlier run of this "
                     "study, and the committed results were made with it")
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "cpu_profile_study.txt", text)
    atomic_write_json(RESULTS / "cpu_profile_study.json", {
        "header": head, "rows": rows, "baseline_dev_hmean": base, "throughput_crops_per_s": thr,
        "rule": {"acc_goal": ACC_GOAL, "tie_minutes": TIE_MIN, "pick": pick["candidate"] if pick else None,
                 "profile_row": prof},
        "candidates": {k: dict(zip(("backbone", "epochs", "batch_size", "lam", "lr"), v)) for k, v in CANDIDATES.items()}})
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="synthetic data root (e.g. data/synth_small; "
                                                             "--all makes the small set there if missing)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the study's runs (resumable)")
    ap.add_argument("--machine-types", nargs="+", default=["fan"])
    ap.add_argument("--candidates", nargs="+", default=STUDY, choices=list(CANDIDATES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--all", action="store_true", help="data if missing, trainings, --throughput, then --report")
    ap.add_argument("--report", action="store_true", help="write the table from finished runs")
    ap.add_argument("--throughput", action="store_true", help="measure crops/s per candidate (run alone)")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per candidate for --throughput")
    args = ap.parse_args(argv)
    if args.all and not (args.data / "dev_data").is_dir():
        from minasd.synth import make_dataset

        make_dataset(args.data, "small", seed=0, progress=False)  # every type: the others are the negatives
    if args.throughput or args.all:
        from minasd.io_utils import atomic_write_json

        configs = sorted({(CANDIDATES[c][0], CANDIDATES[c][2]) for c in args.candidates})
        thr = throughput(configs, args.steps)
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out / "throughput.json", thr)
        print(json.dumps(thr, indent=1), flush=True)
        if not args.all:
            return 0
    if args.report:
        print(report(args.out, args.data, args.machine_types, args.seed, args.candidates))
        return 0
    for m in args.machine_types:
        for name in args.candidates:
            t0 = time.perf_counter()
            r = study_one(args.data, args.out, m, name, args.seed)
            print(f"[study] {m} {name}: acc best {r['val_section_acc_best']:.3f}, dev hmean selected "
                  f"{r['dev_hmean_selected']}, {time.perf_counter() - t0:.0f} s", flush=True)
    if args.all:
        print(report(args.out, args.data, args.machine_types, args.seed, args.candidates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
