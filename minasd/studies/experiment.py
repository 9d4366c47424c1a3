"""The paper's protocol end to end: every type, the method, its ablations, the comparison systems (Book: chapter 6).

``minasd experiment --data ROOT --out DIR`` (or :func:`experiment`) runs, for every
machine type present under ROOT:

* **proposed**: the two-BCE model (``minasd.train``), one model per lambda of the
  grid (default :data:`minasd.profiles.DEFAULT_GRID_LAM`: Table I's values, {0.1, 10});
* **no_mixup**: the proposed method trained without Mixup (Table III, "w/o Mixup");
* **product_only**: only the product-ID loss, no machine loss (Table III, "only
  product-ID classification");
* **wo_h**: no training; the selected proposed model scored with its product head
  (``1 - sigmoid(g_product)[k]``, Table III "w/o h");
* the **comparison systems** (:data:`SYSTEMS`), computed from the data alone (no run of the
  method, no lambda):

  - **ae_dcase2021**: the official DCASE 2021 Task 2 autoencoder baseline,
    :mod:`minasd.dcase_ae` (one model per type for sections 00-02 and one for 03-05, seeded by
    the experiment's seed; 100 epochs);
  - **twfr_gmm**: TWFR-GMM, :mod:`minasd.twfr` (global weighted ranking pooling of log-mel, its
    r and the mixture's k chosen per type on sections 00-02 only);
  - **gmm_meanstd**: a per-section Gaussian mixture on each clip's log-mel mean and standard
    deviation, :mod:`minasd.baseline` (no selection; called "baseline" before schema 4).

  The two GMM systems have no training randomness but the mixture's initialisation, which takes
  the experiment's seed; the autoencoder's initialisation and shuffling take it too.

Selection (never on sections 03-05): for the proposed method, lambda, the inlier
kind and p are chosen **jointly** by the harmonic mean of the AUCs and pAUCs of the
development sections 00-02 (the paper's validation sections); the grid is every
lambda x (GMM p in {1, 2, 4, 8, 16, 32, 64} and LOF p in {4, 8, 16, 32}) by
default, each kind with the paper's aggregator (GMM: mean above the median, LOF:
mean).  A p that does not fit a section's held-out segments is skipped (recorded
with the reason).  The ablations are trained with the lambda chosen for the
proposed method and get their own kind/p chosen the same way.  Ties go to the
first candidate in grid order.  The tables report sections 03-05 only, and a
type's figure is over all three of them or not reported (:func:`summary_table`).

Clips: every stage chooses them with :func:`minasd.data.protocol_clips` (source
domain): the types that can be trained, the other types' test clips of the t-SNE
figure, the comparison systems and the evaluation
(:mod:`minasd.evaluate`).

Layout of ``OUT``::

    OUT/runs/<type>/<variant>_lam<lambda>/     training runs (+ eval/ from minasd.evaluate)
    OUT/results/manifest.json                  schema, grids, selection rule, provenance, file list
    OUT/results/table2.{json,csv}              proposed and the comparison systems: per type AUC/pAUC/hmean over
                                               03-05, All, note
    OUT/results/table3.{json,csv}              proposed, no_mixup, wo_h, product_only: same
    OUT/results/sections.{json,csv}            per variant, type and section (00-05; role dev/eval)
    OUT/results/selection.{json,csv}           every grid candidate's development-section score, the chosen one
    OUT/results/roc/<type>.json                ROC points per variant and section
    OUT/results/logs/<type>/<run>.jsonl        per-epoch training logs (copies)
    OUT/results/tsne/<type>_<variant>.npz      <= 300 target + <= 300 other-type clips: clip embeddings
                                               (mean over segments) and 2-D t-SNE coordinates
    OUT/results/types/<type>.json              everything of one type (resume unit)
    OUT/results/scores/<type>.csv              per labelled test clip (all sections): machine, section, clip,
                                               label, variant, seed, score (:data:`SCORE_COLUMNS`)
    OUT/dcase/<variant>/                       the official DCASE 2021 result files of every type
                                               (anomaly_score_<type>_section_<XX>_<domain>_test.csv,
                                               decision_result_...), copied from the chosen run of each type:
                                               a "team folder" for the official evaluator (:func:`write_dcase_teams`)
    OUT/dcase/manifest.json                    per variant and type: the run each file came from, types missing

Resuming: a finished training run is skipped, an unfinished one resumed
(``train(resume=True)``), embeddings come from each run's cache, and a type whose
``types/<type>.json`` matches the configuration is not recomputed.  A type whose record differs
from the configuration only in the comparison systems keeps its method variants (their records,
clip scores, ROC points, logs and t-SNE files, with where they came from under ``kept``) and
computes only the systems: adding a comparison system never trains the method again
(:func:`_reusable`; records of schema 3 qualify, their ``baseline`` recomputed as ``gmm_meanstd``,
and the largest difference between the two is recorded).  The compact
files under ``OUT/results`` are what the book renders; :func:`load_results`
validates them against :data:`RESULTS_SCHEMA_VERSION`.  ``OUT/dcase`` is rebuilt
from the runs after every invocation, like the tables (:func:`write_dcase_teams`).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from ..config import DEV_SECTIONS, EVAL_SECTIONS, MACHINE_TYPES, hparams_for
from ..io_utils import (atomic_savez, atomic_write_bytes, atomic_write_json, atomic_write_text, folder_lock,
                       git_commit, sha256_file)
from ..profiles import DEFAULT_GRID_LAM
from ..runs import run_paths
from .jobs import now

RESULTS_SCHEMA = "minasd.experiment"
#: Version of the files under OUT/results; bump when a column or key changes.
#: 2: table2/table3 gained ``note`` (incomplete types reported, not dropped; All's coverage).
#: 3: per-clip scores (``scores/<type>.csv``); the baseline's mixture fit takes the experiment's seed.
#: 4: the comparison systems ae_dcase2021 and twfr_gmm; ``baseline`` renamed ``gmm_meanstd``; a type's ``kept``.
RESULTS_SCHEMA_VERSION = 4
#: Schema versions whose type records can lend their method variants to this one (:func:`_reusable`).
REUSABLE_SCHEMA_VERSIONS = (3, 4)
#: The method and its ablations: they need training runs of the method (or, w/o h, the proposed one's).
METHOD_VARIANTS: tuple[str, ...] = ("proposed", "no_mixup", "product_only", "wo_h")
#: The comparison systems: from the data alone, so a type's record can gain one without training.
SYSTEMS: tuple[str, ...] = ("ae_dcase2021", "twfr_gmm", "gmm_meanstd")
VARIANTS: tuple[str, ...] = METHOD_VARIANTS + SYSTEMS
#: What each variant is, in the words of the tables' captions.
VARIANT_LABELS: dict[str, str] = {
    "proposed": "proposed (serial two-BCE)", "no_mixup": "w/o Mixup", "product_only": "only product-ID",
    "wo_h": "w/o h", "ae_dcase2021": "DCASE 2021 autoencoder", "twfr_gmm": "TWFR-GMM",
    "gmm_meanstd": "GMM on log-mel mean/std"}
#: TrainConfig changes of each trained variant.
TRAINED: dict[str, dict] = {"proposed": {}, "no_mixup": {"mixup": False}, "product_only": {"machine_loss": False}}
TABLE2_VARIANTS = ("proposed",) + SYSTEMS
TABLE3_VARIANTS = ("proposed", "no_mixup", "wo_h", "product_only")
DEFAULT_GRID_P: dict[str, tuple[int, ...]] = {"gmm": (1, 2, 4, 8, 16, 32, 64), "lof": (4, 8, 16, 32)}
#: Columns of ``OUT/results/scores/<type>.csv``: one row per labelled test clip, variant and seed
#: (higher score = more anomalous), the input of :mod:`minasd.studies.analysis` (which takes them from here).
SCORE_COLUMNS: tuple[str, ...] = ("machine", "section", "clip", "label", "variant", "seed", "score")
TSNE_MAX_TARGET = 300
TSNE_MAX_OTHER = 300
SELECTION_RULE = ("lambda, inlier kind and p chosen jointly by the harmonic mean of the AUCs and pAUCs of sections "
                  "00-02 (development/validation) only; ties -> first in grid order; tables report sections 03-05")

#: Columns of every CSV table under OUT/results (the JSON twin holds the same rows).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "table2": ("variant", "machine", "AUC", "pAUC", "hmean", "note"),
    "table3": ("variant", "machine", "AUC", "pAUC", "hmean", "note"),
    "sections": ("variant", "machine", "section", "role", "AUC", "pAUC", "hmean"),
    "selection": ("machine", "variant", "lam", "kind", "p", "aggregation", "dev_hmean", "n_dev_sections", "skipped",
                  "chosen"),
}
MANIFEST_KEYS = ("schema", "schema_version", "grids", "selection_rule", "variants", "machine_types", "tables",
                 "files", "provenance")
TSNE_KEYS = ("coords", "embeddings", "groups", "anomalous", "machine", "section", "label")
#: ``OUT/dcase``: one folder per variant holding every type's official DCASE 2021 result files.
DCASE_DIR = "dcase"
DCASE_SCHEMA = "minasd.dcase_teams"
#: Variants whose chosen run writes the official files (its h scores and decisions, minasd.evaluate).
DCASE_TEAM_VARIANTS: tuple[str, ...] = ("proposed", "no_mixup", "product_only")
#: Variants that get no team folder, and why (recorded in ``OUT/dcase/manifest.json``).
DCASE_NOT_WRITTEN: dict[str, str] = {
    "wo_h": "scored by the proposed run's product head; that run's official files hold h's scores, and no "
            "decision threshold is fitted for the w/o-h score",
    **{v: "a comparison system scores only the labelled source-domain test clips of the protocol; the evaluator "
          "needs every test clip of both domains" for v in SYSTEMS},
}
_DCASE_PREFIXES = ("anomaly_score", "decision_result")


def _fmt_lam(lam: float) -> str:
    return f"{float(lam):g}"


def run_name(variant: str, lam: float) -> str:
    """Run folder name of a trained variant.

    >>> run_name("proposed", 0.1)
    'proposed_lam0.1'
    """
    return f"{variant}_lam{_fmt_lam(lam)}"


# --------------------------------------------------------------------------------------
# selection on the development sections (the rule itself: minasd.selection.select_on_dev)
# --------------------------------------------------------------------------------------


def candidates(grid_p: Mapping[str, Sequence[int]]) -> list[tuple[str, int]]:
    """(kind, p) pairs of a grid, GMM first."""
    return [(kind, int(p)) for kind in ("gmm", "lof") for p in grid_p.get(kind, ())]


# --------------------------------------------------------------------------------------
# one type
# --------------------------------------------------------------------------------------


def _train_or_resume(cfg, progress: bool) -> dict:
    """Train a run unless finished; resume it when interrupted (:func:`minasd.runs.train_or_resume`).
    Returns what happened."""
    from ..runs import train_or_resume

    out = Path(cfg.out_dir)
    notes = {"skipped": f"[experiment] {out}: finished run, skipped",
             "resumed": f"[experiment] {out}: resuming unfinished run"} if progress else None
    action, _ = train_or_resume(cfg, notes=notes)
    return {"action": action}


def _evaluate_chosen(run_dir: Path, data_root: Path, kind: str, p: int, device: str, progress: bool) -> dict:
    """evaluate_run with the chosen h, reusing an evaluation of the same setting."""
    from ..evaluate import evaluate_run, load_eval_results
    from ..scoring import default_aggregation

    try:
        old = load_eval_results(run_dir)
        if (old["inlier"]["kind"], old["inlier"]["p"], old["inlier"]["aggregation"]) == (kind, p,
                                                                                         default_aggregation(kind)):
            return old
    except (FileNotFoundError, ValueError):
        pass
    # The experiment owns this run folder: an evaluation with another h is replaced.
    return evaluate_run(run_dir, data_root=data_root, inlier=kind, p=p, device=device, overwrite=True,
                        progress=progress)


def _run_epochs(run_dir: Path) -> dict:
    meta = json.loads(run_paths(run_dir).run_json.read_text())
    log = run_paths(run_dir).log
    secs = sum(json.loads(line).get("seconds", 0.0) for line in log.read_text().splitlines() if line.strip()) \
        if log.is_file() else None
    return {"epochs_done": meta.get("epochs_done"), "epochs_planned": meta.get("hparams", {}).get("epochs"),
            "best_epoch": meta.get("best_epoch"), "train_seconds": secs, "device": meta.get("device"),
            "device_name": meta.get("device_name"), "backbone": meta.get("model", {}).get("backbone"),
            "pretrained": meta.get("pretrained"), "status": meta.get("status")}


def _clip_scores(run_dir: Path, machine: str, variant: str, seed: int, column: str) -> list[dict]:
    """Per-clip anomaly scores of an evaluated run (labelled protocol test clips), in :data:`SCORE_COLUMNS`."""
    import pandas as pd

    df = pd.read_csv(run_paths(run_dir).scores)
    df = df[df["label"] >= 0]
    return [{"machine": machine, "section": int(r.section), "clip": Path(r.path).name, "label": int(r.label),
             "variant": variant, "seed": int(seed), "score": float(getattr(r, column))} for r in df.itertuples()]


def _section_records(variant: str, eval_res: dict, score: str = "h") -> list[dict]:
    ka, kp = ("auc", "pauc") if score == "h" else (f"auc_{score}", f"pauc_{score}")
    return [{"variant": variant, "machine": r["machine"], "section": int(r["section"]), "role": r["role"],
             "auc": r[ka], "pauc": r[kp]} for r in eval_res["sections"] if r[ka] is not None]


def _tsne_sample(embs, model_run: Path, other_df, data_root: Path, device: str, seed: int,
                 max_target: int, max_other: int, progress: bool) -> dict:
    """Clip embeddings (mean over segments) of <= max_target target test clips (from the cache)
    and <= max_other other-type test clips (extracted with the run's model), with t-SNE coords."""
    from ..data import load_audio, load_norm_stats
    from ..runs import load_model, resolve_device
    from ..scoring import extract_embeddings
    from ..viz import OTHER_GROUP, tsne_2d

    rng = np.random.default_rng([seed, 3])
    t = embs.test
    ti = np.sort(rng.choice(len(t.paths), min(max_target, len(t.paths)), replace=False))
    machine = embs.meta["machine_type"]
    # others: spread evenly over the other types, seeded
    picks = []
    if len(other_df):
        types = sorted(other_df["machine"].unique())
        per = max(1, max_other // len(types))
        for m in types:
            idx = np.flatnonzero(other_df["machine"].to_numpy() == m)
            picks += sorted(rng.choice(idx, min(per, len(idx)), replace=False).tolist())
        picks = picks[:max_other]
    emb_t = t.emb[ti].mean(axis=1)
    if picks:
        dev = resolve_device(device)
        model, _ = load_model(model_run, device=dev)
        norm = load_norm_stats(run_paths(model_run).norm_stats)[machine]
        sub = other_df.iloc[picks]
        waves = [load_audio(p) for p in sub["path"]]
        e, _, _ = extract_embeddings(model, waves, norm, device=dev, progress=progress)
        emb_o = e.mean(axis=1)
        o_mach = sub["machine"].astype(str).to_numpy()
        o_sec = sub["section"].to_numpy(int)
        o_lab = sub["label"].fillna(-1).astype(int).to_numpy()
    else:
        emb_o = np.zeros((0, emb_t.shape[1]), np.float32)
        o_mach, o_sec, o_lab = np.zeros(0, str), np.zeros(0, int), np.zeros(0, int)
    emb = np.concatenate([emb_t, emb_o]).astype(np.float32)
    groups = np.array([f"section {s:02d}" for s in t.sections[ti]] + [OTHER_GROUP] * len(emb_o), dtype=str)
    # perplexity 30 (scikit-learn's default) unless the sample is too small for it
    coords = (tsne_2d(emb, seed=seed, perplexity=min(30.0, (len(emb) - 1) / 3.0)) if len(emb) >= 4
              else np.zeros((len(emb), 2), np.float32))
    return {"coords": coords,
            "embeddings": emb, "groups": groups,
            "anomalous": np.concatenate([t.labels[ti] == 1, o_lab == 1]),
            "machine": np.concatenate([np.full(len(ti), machine), o_mach]).astype(str),
            "section": np.concatenate([t.sections[ti], o_sec]).astype(int),
            "label": np.concatenate([t.labels[ti], o_lab]).astype(int)}


def _savez(path: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    return atomic_savez(path, **arrays)


def type_files(res_dir: Path, machine: str) -> list[str]:
    """The files under ``res_dir`` (``OUT/results``) that belong to one type, relative to it."""
    own = [f"roc/{machine}.json", f"scores/{machine}.csv", f"types/{machine}.json"]
    own += [f"tsne/{machine}_{v}.npz" for v in VARIANTS]
    found = [f for f in own if (res_dir / f).is_file()]
    found += [str(p.relative_to(res_dir)) for p in sorted((res_dir / "logs" / machine).glob("*.jsonl"))]
    return sorted(found)


@dataclass
class _TypeWork:
    """One type's computation in :func:`run_type`: what it reads, and what it gathers for the commit."""

    machine: str
    data_root: Path
    out: Path
    cfg: dict
    progress: bool
    table1: object  # the type's Table I row (:func:`minasd.config.hparams_for`): the fallback selection
    runs: dict = field(default_factory=dict)  # run name -> what training did (trained, resumed, skipped)
    selection: list = field(default_factory=list)  # rows of the selection table
    sections: list = field(default_factory=list)  # per variant and section: auc, pauc
    roc: dict = field(default_factory=dict)  # variant -> section -> ROC points
    evals: dict = field(default_factory=dict)  # variant -> run, selection, inlier, training
    clip_scores: list = field(default_factory=list)  # rows of scores/<type>.csv
    kept: dict | None = None  # where the method variants came from, when reused (:func:`_reuse_method_part`)
    # (path under results/, writer, payload): this type's files, committed together at the end
    writes: list[tuple[str, Callable, object]] = field(default_factory=list)


def _train_config(w: _TypeWork, variant: str, lam: float):
    """The :class:`minasd.train.TrainConfig` of one trained variant at one lambda."""
    from ..train import TrainConfig

    return TrainConfig(machine_type=w.machine, data_root=str(w.data_root),
                       out_dir=str(w.out / "runs" / w.machine / run_name(variant, lam)), epochs=w.cfg["epochs"],
                       lam=float(lam), device=w.cfg["device"], seed=w.cfg["seed"], progress=w.progress,
                       **w.cfg["train_overrides"], **TRAINED[variant])


def _choose(rows: list[dict], lams: Sequence[float], table1) -> tuple[dict, list[dict], str]:
    """:func:`minasd.selection.select_on_dev` over lambda, kind and p; Table I's choice when no development section
    is labelled.

    Returns:
        ``(chosen, table, how)``: how it was chosen (``"dev"``, or ``"table1 (<why>)"``)."""
    from ..selection import select_on_dev

    try:
        chosen, table = select_on_dev(rows, ("lam", "kind", "p"))
        return chosen, table, "dev"
    except ValueError as err:  # no labelled development sections: fall back to Table I
        lam0 = min(lams, key=lambda v: abs(v - table1.lam))
        return {"lam": float(lam0), "kind": table1.inlier, "p": table1.p}, [], f"table1 ({err})"


def _select_and_evaluate(w: _TypeWork, variant: str, lams: Sequence[float]):
    """Train (or resume) ``variant`` at each lambda, choose lambda, kind and p on the development
    sections, evaluate the chosen run, and gather its records and logs into ``w``.

    Returns:
        ``(chosen, run_dir, evaluation, embeddings)`` of the chosen run."""
    from ..evaluate import grid_scores, load_embeddings

    rows = []
    embs_by_lam = {}
    for lam in lams:
        cfg_t = _train_config(w, variant, lam)
        w.runs[run_name(variant, lam)] = _train_or_resume(cfg_t, w.progress)
        embs = load_embeddings(cfg_t.out_dir, w.data_root, device=w.cfg["device"], progress=w.progress)
        embs_by_lam[lam] = embs
        # Only the development sections are scored for selection: 03-05 are never looked at here.
        present_dev = [s for s in DEV_SECTIONS if (embs.test.sections == s).any()]
        for r in grid_scores(embs, candidates(w.cfg["grid_p"]), sections=present_dev, seed=w.cfg["seed"]):
            rows.append({"lam": float(lam), **r})
    chosen, table, how = _choose(rows, lams, w.table1)
    for row in table:
        agg = next((r["aggregation"] for r in rows if (r["kind"], r["p"]) == (row["kind"], row["p"])), None)
        w.selection.append({"machine": w.machine, "variant": variant, **row, "aggregation": agg})
    embs = embs_by_lam[chosen["lam"]]
    run_dir = Path(_train_config(w, variant, chosen["lam"]).out_dir)
    ev = _evaluate_chosen(run_dir, w.data_root, chosen["kind"], int(chosen["p"]), w.cfg["device"], w.progress)
    w.evals[variant] = {"run": str(run_dir.relative_to(w.out)), "selected": {**chosen, "how": how},
                        "inlier": ev["inlier"], "training": _run_epochs(run_dir),
                        "eval_duration_s": ev["provenance"]["duration_s"]}
    w.sections.extend(_section_records(variant, ev))
    w.clip_scores.extend(_clip_scores(run_dir, w.machine, variant, w.cfg["seed"], "score_h"))
    w.roc[variant] = ev["roc"]["h"]
    # copy every per-epoch log of this variant
    for lam in lams:
        src = run_paths(w.out / "runs" / w.machine / run_name(variant, lam)).log
        if src.is_file():
            w.writes.append((f"logs/{w.machine}/{run_name(variant, lam)}.jsonl", atomic_write_text, src.read_text()))
    return chosen, run_dir, ev, embs


def _add_tsne(w: _TypeWork, variant: str, embs, run_dir: Path, other_df) -> None:
    """The t-SNE sample of a variant's chosen run (:func:`_tsne_sample`), to be written with the type."""
    tsne = _tsne_sample(embs, run_dir, other_df, w.data_root, w.cfg["device"], w.cfg["seed"], w.cfg["tsne_max_target"],
                        w.cfg["tsne_max_other"], w.progress)
    w.writes.append((f"tsne/{w.machine}_{variant}.npz", _savez, tsne))


def _add_wo_h(w: _TypeWork, prop_run: Path, prop_eval: dict, lam: float) -> None:
    """The "w/o h" variant: the chosen proposed run scored with its product head (no training)."""
    w.sections.extend(_section_records("wo_h", prop_eval, "wo_h"))
    w.clip_scores.extend(_clip_scores(prop_run, w.machine, "wo_h", w.cfg["seed"], "score_wo_h"))
    w.roc["wo_h"] = prop_eval["roc"]["wo_h"]
    w.evals["wo_h"] = {"run": w.evals["proposed"]["run"], "selected": {"lam": lam, "how": "proposed's"},
                       "inlier": None, "training": w.evals["proposed"]["training"]}


def _system_scores(w: _TypeWork, variant: str) -> tuple[object, list[dict], dict]:
    """Run one comparison system (:data:`SYSTEMS`) on the type: per-section rows, clip scores, and what to
    record of it (its choice on sections 00-02, its training)."""
    clips: list[dict] = []
    seed, workers = w.cfg["seed"], w.cfg.get("workers")
    settings = dict(w.cfg.get("system_settings", {}).get(variant, {}))
    if variant == "gmm_meanstd":
        from ..baseline import BaselineConfig, run_baseline

        cfg = BaselineConfig(**{"seed": seed, **settings})
        df = run_baseline(w.data_root, machine_types=[w.machine], cfg=cfg, workers=workers, progress=w.progress,
                          clip_scores=clips)
        return df, clips, {"settings": {"n_components": cfg.n_components, "covariance_type": cfg.covariance_type}}
    if variant == "twfr_gmm":
        from ..twfr import TWFRConfig, run_twfr

        selection: list[dict] = []
        df = run_twfr(w.data_root, machine_types=[w.machine], cfg=TWFRConfig(**{"seed": seed, **settings}),
                      workers=workers,
                      progress=w.progress, clip_scores=clips, selection=selection)
        chosen = next(r for r in selection if r.get("chosen"))
        return df, clips, {"selected": {"k": int(chosen["k"]), "r": float(chosen["r"]),
                                        "dev_hmean": chosen["dev_hmean"], "how": chosen["how"]},
                           "candidates": len(selection)}
    from ..dcase_ae import AEConfig, run_ae
    from ..runs import resolve_device

    models: list[dict] = []
    cfg = AEConfig(**{"seed": seed, "device": str(resolve_device(w.cfg["device"])), **settings})
    df = run_ae(w.data_root, machine_types=[w.machine], cfg=cfg, workers=workers, progress=w.progress,
                clip_scores=clips, models=models)
    compact = [{k: v for k, v in m.items() if k != "config"} for m in models]
    return df, clips, {"training": {"epochs_done": cfg.epochs, "epochs_planned": cfg.epochs,
                                    "train_seconds": sum(m["train_seconds"] for m in models),
                                    "device": cfg.device, "backbone": "dense autoencoder 640-128x4-8-128x4-640"},
                       "models": compact, "settings": {k: v for k, v in models[0]["config"].items()} if models else {}}


def _add_system(w: _TypeWork, variant: str) -> None:
    """A comparison system (:data:`SYSTEMS`): its sections, clip scores, ROC points and record, with its
    wall and CPU seconds (this process's CPU: feature worker processes, if any, are not counted)."""
    from ..evaluate import section_role
    from ..metrics import roc_points

    t0, c0 = time.perf_counter(), time.process_time()
    df, clips, extra = _system_scores(w, variant)
    w.clip_scores.extend({**r, "variant": variant, "seed": w.cfg["seed"]} for r in clips)
    for r in df.itertuples():
        w.sections.append({"variant": variant, "machine": w.machine, "section": int(r.section),
                           "role": section_role(int(r.section)), "auc": float(r.auc), "pauc": float(r.pauc)})
    roc = {}
    for sec in sorted({int(r["section"]) for r in clips}):
        part = [r for r in clips if int(r["section"]) == sec]
        fpr, tpr = roc_points([r["label"] for r in part], [r["score"] for r in part])
        roc[f"{sec:02d}"] = {"fpr": fpr.round(6).tolist(), "tpr": tpr.round(6).tolist()}
    w.roc[variant] = roc
    w.evals[variant] = {"run": None, "selected": extra.pop("selected", None), "inlier": None,
                        "training": extra.pop("training", None), **extra,
                        "eval_duration_s": round(time.perf_counter() - t0, 3),
                        "cpu_s": round(time.process_time() - c0, 3), "workers": w.cfg.get("workers")}


def _commit_type(w: _TypeWork, t0: float) -> dict:
    """Write the type's files together under the folder's lock, ``types/<type>.json`` last; returns its record."""
    import pandas as pd

    w.writes.append((f"roc/{w.machine}.json", atomic_write_json, w.roc))
    w.writes.append((f"scores/{w.machine}.csv", atomic_write_text,
                     pd.DataFrame(w.clip_scores, columns=list(SCORE_COLUMNS)).to_csv(index=False)))
    result = {"schema": RESULTS_SCHEMA, "schema_version": RESULTS_SCHEMA_VERSION, "machine_type": w.machine,
              "config_signature": _signature(w.cfg), "variants": w.evals, "runs": w.runs, "sections": w.sections,
              "selection": w.selection, "duration_s": round(time.perf_counter() - t0, 3),
              "finished_at": now(), **({"kept": w.kept} if w.kept else {})}
    w.writes.append((f"types/{w.machine}.json", atomic_write_json, result))  # last: it marks the type done
    res_dir = w.out / "results"
    with folder_lock(w.out):
        for rel, write, payload in w.writes:
            write(res_dir / rel, payload)
    if w.progress:
        print(f"[experiment] {w.machine}: wrote {res_dir / 'types' / f'{w.machine}.json'}, roc/, logs/, tsne/")
    return result


def run_type(machine: str, data_root: Path, out: Path, cfg: dict, other_df, progress: bool = True,
             reuse: Mapping | None = None) -> dict:
    """Everything of one machine type (resume unit); writes ``results/types/<type>.json``.

    One writer per file: the type's files (:func:`type_files`) are written only here, all at
    the end under the folder's lock (:func:`minasd.io_utils.folder_lock`), ``types/<type>.json``
    last; an earlier ``types/<type>.json`` is removed first, so the tables never pair this
    type's new files with its old record (nor, after an interruption, with half of them).

    Args:
        machine: target machine type.
        data_root: data root.
        out: experiment folder.
        cfg: the experiment configuration (see :func:`experiment`).
        other_df: index rows of other types' source test clips (for t-SNE).
        reuse: an earlier record of this type whose method variants are kept (:func:`_reusable`);
            only the comparison systems are computed.

    Returns:
        the per-type result dict.  Book: chapter 6.
    """
    t0 = time.perf_counter()
    variants = cfg["variants"]
    w = _TypeWork(machine=machine, data_root=data_root, out=out, cfg=cfg, progress=progress,
                  table1=hparams_for(machine))
    if reuse is not None:  # read before the record is withdrawn: the type's files are rewritten at the end
        _reuse_method_part(w, reuse)
    with folder_lock(out):  # an earlier result of this type leaves the tables until the new one is committed
        old = out / "results" / "types" / f"{machine}.json"
        if old.is_file():
            old.unlink()
            print(f"[experiment] {machine}: {old} (another configuration) withdrawn; computing it again"
                  if reuse is None else f"[experiment] {machine}: {old} withdrawn; its method variants are "
                  "kept and the comparison systems computed")
    chosen_lam = None
    if reuse is None and any(v in variants for v in METHOD_VARIANTS):  # they need proposed's lambda
        chosen, prun, pev, pembs = _select_and_evaluate(w, "proposed", cfg["grid_lam"])
        chosen_lam = chosen["lam"]
        if "proposed" not in variants:
            w.sections[:] = [r for r in w.sections if r["variant"] != "proposed"]
            w.clip_scores[:] = [r for r in w.clip_scores if r["variant"] != "proposed"]
            w.roc.pop("proposed", None)
        if "wo_h" in variants:
            _add_wo_h(w, prun, pev, chosen_lam)
        if "proposed" in variants:
            _add_tsne(w, "proposed", pembs, prun, other_df)
    for variant in ("no_mixup", "product_only"):
        if variant in variants and reuse is None:
            _, vrun, _, vembs = _select_and_evaluate(w, variant, [chosen_lam])
            if variant == "product_only":
                _add_tsne(w, variant, vembs, vrun, other_df)
    for variant in SYSTEMS:
        if variant in variants:
            _add_system(w, variant)
    if w.kept is not None and w.kept.pop("baseline_sections", None) is not None:
        _check_against_baseline(w, reuse)
    return _commit_type(w, t0)


def _reusable(old: Mapping | None, cfg: dict) -> Mapping | None:
    """``old`` (a type's record) if its method variants can be kept for ``cfg``: the configuration
    differs at most in the comparison systems, and both ask for the same method variants (some)."""
    if old is None or old.get("schema_version") not in REUSABLE_SCHEMA_VERSIONS:
        return None
    sig_old, sig_new = dict(old.get("config_signature") or {}), _signature(cfg)
    v_old = {v for v in sig_old.pop("variants", []) if v in METHOD_VARIANTS}
    v_new = {v for v in sig_new.pop("variants") if v in METHOD_VARIANTS}
    sig_old.pop("system_settings", None)
    sig_new.pop("system_settings", None)
    if not v_new or v_old != v_new or sig_old != sig_new:
        return None
    return old


def _reuse_method_part(w: _TypeWork, old: Mapping) -> None:
    """Take the method variants of ``old`` into ``w``: records, runs, selection, sections, and from the
    type's files its ROC points and clip scores (logs and t-SNE files stay where they are)."""
    import pandas as pd

    res_dir = w.out / "results"
    keep = [v for v in old["variants"] if v in METHOD_VARIANTS]
    w.evals.update({v: old["variants"][v] for v in keep})
    w.runs.update(old.get("runs", {}))
    w.selection.extend(old.get("selection", []))
    w.sections.extend(r for r in old["sections"] if r["variant"] in keep)
    roc = json.loads((res_dir / "roc" / f"{w.machine}.json").read_text())
    w.roc.update({v: roc[v] for v in keep if v in roc})
    sc = pd.read_csv(res_dir / "scores" / f"{w.machine}.csv")
    w.clip_scores.extend(sc[sc["variant"].isin(keep)].to_dict(orient="records"))
    w.kept = {"variants": keep, "schema_version": old["schema_version"], "finished_at": old.get("finished_at"),
              "duration_s": old.get("duration_s"),
              "baseline_sections": [r for r in old["sections"] if r["variant"] == "baseline"] or None}


def _check_against_baseline(w: _TypeWork, old: Mapping) -> None:
    """Schema 3's ``baseline`` is today's ``gmm_meanstd``: record (and print) how far the recomputed one is
    from it, section by section (0 when the data and the code are the same)."""
    before = {int(r["section"]): (r["auc"], r["pauc"]) for r in old["sections"] if r["variant"] == "baseline"}
    now_ = {int(r["section"]): (r["auc"], r["pauc"]) for r in w.sections if r["variant"] == "gmm_meanstd"}
    common = sorted(set(before) & set(now_))
    diff = max((abs(a - b) for s in common for a, b in zip(before[s], now_[s])), default=None)
    w.kept["gmm_meanstd_vs_schema3_baseline"] = {"sections": common, "max_abs_diff": diff}
    print(f"[experiment] {w.machine}: gmm_meanstd against the earlier record's baseline, sections "
          f"{', '.join(f'{s:02d}' for s in common)}: largest AUC/pAUC difference {diff}")


# --------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------


def _finished_types(res_dir: Path) -> dict[str, dict]:
    """The type records (``types/<type>.json``) of this schema version under ``res_dir``."""
    return _type_records(res_dir, (RESULTS_SCHEMA_VERSION,))


def _type_records(res_dir: Path, versions: Sequence[int]) -> dict[str, dict]:
    """The type records under ``res_dir`` of the schema ``versions``.  A record withdrawn between
    listing and reading (another job began computing its type again: :func:`run_type`) is not there."""
    found = {}
    for f in sorted((res_dir / "types").glob("*.json")):
        try:
            obj = json.loads(f.read_text())
        except FileNotFoundError:
            continue
        if obj.get("schema_version") in versions:
            found[obj["machine_type"]] = obj
    return found


def _reusable_records(res_dir: Path) -> dict[str, dict]:
    """The type records under ``res_dir`` of any version in :data:`REUSABLE_SCHEMA_VERSIONS`."""
    return _type_records(res_dir, REUSABLE_SCHEMA_VERSIONS)


def _percent(value: float | None) -> float | None:
    return None if value is None else 100 * value


def _signature(cfg: dict) -> dict:
    keep = ("variants", "grid_p", "grid_lam", "epochs", "seed", "train_overrides", "tsne_max_target", "tsne_max_other")
    sig = {k: cfg[k] for k in keep}
    if cfg.get("system_settings"):  # only when set: signatures of the default settings stay as they were
        sig["system_settings"] = cfg["system_settings"]
    return json.loads(json.dumps(sig))


def summary_table(section_rows: Sequence[Mapping], variants: Sequence[str],
                  sections: Iterable[int] = EVAL_SECTIONS, machines: Sequence[str] | None = None) -> list[dict]:
    """Table II/III analogue: per variant and type, harmonic means of AUC, pAUC and of both,
    over ``sections`` (default the test sections 03-05), and an ``"All"`` row per variant.

    The rule (the paper's Table II is over all three test sections of a type):

    * a type's figures are over **all** of ``sections`` or not reported: a type that
      lacks some of them (no labels, not evaluated) still gets a row, with AUC, pAUC and
      hmean None and a ``note`` that names the sections missing;
    * an AUC or pAUC of 0 counts as 0 (:func:`minasd.metrics.hmean_or_none`, the one rule):
      the figures it enters are 0, and the ``note`` names the section;
    * ``"All"`` is computed over the **complete** types only, and its ``note`` names the
      types it covers and the incomplete ones it left out (chosen over "All is not
      reported when one type is incomplete" because runs of a subset of types are
      normal and the note makes the coverage explicit).  When no type is complete the
      All row has None values and says so.

    Args:
        section_rows: dicts ``variant, machine, section, auc, pauc`` (fractions).
        variants: the variants to tabulate, in order.
        sections: the sections a type's figure is over.
        machines: the types every variant should report (default: every type with a
            row of that variant in any section, so that a type with none of ``sections``
            is listed as incomplete rather than silently dropped).

    Returns:
        rows ``variant, machine, AUC, pAUC, hmean, note``, values in percent.  Book: chapter 6.

    Raises:
        ValueError: a (variant, type, section) appears twice.
    """
    from ..metrics import ALL_LABEL, hmean_or_none

    secs = sorted({int(s) for s in sections})
    out = []
    for v in variants:
        rows = [r for r in section_rows if r["variant"] == v]
        if machines is not None:
            types = list(machines)
        else:
            seen = {r["machine"] for r in rows}
            types = [m for m in MACHINE_TYPES if m in seen] + sorted(seen - set(MACHINE_TYPES))
        complete, left_out, all_a, all_p = [], [], [], []
        for m in types:
            got: dict[int, tuple] = {}
            for r in rows:
                if r["machine"] == m and int(r["section"]) in secs:
                    if int(r["section"]) in got:
                        raise ValueError(f"summary_table: {v} {m} section {int(r['section']):02d} appears twice")
                    got[int(r["section"])] = (r["auc"], r["pauc"])
            missing = [s for s in secs if s not in got or hmean_or_none(got[s]) is None]
            if missing:
                out.append({"variant": v, "machine": m, "AUC": None, "pAUC": None, "hmean": None,
                            "note": f"section{'s' if len(missing) > 1 else ''} "
                                    f"{', '.join(f'{s:02d}' for s in missing)} missing: not reported"})
                left_out.append(m)
                continue
            a = [got[s][0] for s in secs]
            p = [got[s][1] for s in secs]
            all_a += a
            all_p += p
            complete.append(m)
            zero = [f"{s:02d}" for s in secs if min(got[s]) == 0]
            out.append({"variant": v, "machine": m, "AUC": _percent(hmean_or_none(a)),
                        "pAUC": _percent(hmean_or_none(p)), "hmean": _percent(hmean_or_none(a + p)),
                        "note": f"AUC or pAUC of 0 in {', '.join(zero)}" if zero else ""})
        if not types:
            continue
        if complete:
            note = f"over {', '.join(complete)}" + (f"; left out (incomplete): {', '.join(left_out)}"
                                                      if left_out else "")
            out.append({"variant": v, "machine": ALL_LABEL, "AUC": _percent(hmean_or_none(all_a)),
                        "pAUC": _percent(hmean_or_none(all_p)), "hmean": _percent(hmean_or_none(all_a + all_p)),
                        "note": note})
        else:
            out.append({"variant": v, "machine": ALL_LABEL, "AUC": None, "pAUC": None, "hmean": None,
                        "note": f"no type has all of sections {', '.join(f'{s:02d}' for s in secs)}: not reported"})
    return out


def _write_table(res_dir: Path, name: str, rows: list[dict]) -> list[str]:
    import pandas as pd

    cols = list(TABLE_COLUMNS[name])
    df = pd.DataFrame(rows, columns=cols)
    atomic_write_text(res_dir / f"{name}.csv", df.to_csv(index=False))
    atomic_write_json(res_dir / f"{name}.json", {"schema": RESULTS_SCHEMA, "schema_version": RESULTS_SCHEMA_VERSION,
                                                 "columns": cols, "rows": df.astype(object).where(df.notna(), None)
                                                 .to_dict(orient="records")})
    return [f"{name}.csv", f"{name}.json"]


def write_tables(out: Path, cfg: dict, types: dict[str, dict], provenance: dict) -> Path:
    """Rebuild the aggregated tables and the manifest from the per-type files.

    The caller holds the folder's lock (:func:`minasd.io_utils.folder_lock`): one process
    writes these files at a time.  The manifest, written last, holds every listed file's
    SHA-256, so a reader of a set left half rewritten by an interruption is told so."""
    from ..metrics import hmean_or_none

    res_dir = out / "results"
    sec_rows, sel_rows = [], []
    for m in [t for t in MACHINE_TYPES if t in types] + sorted(set(types) - set(MACHINE_TYPES)):
        for r in types[m]["sections"]:
            a, p = r["auc"], r["pauc"]
            sec_rows.append({"variant": r["variant"], "machine": r["machine"], "section": f"{int(r['section']):02d}",
                             "role": r["role"], "AUC": 100 * a, "pAUC": 100 * p,
                             "hmean": _percent(hmean_or_none([a, p]))})
        sel_rows += [{k: r.get(k) for k in TABLE_COLUMNS["selection"]} for r in types[m]["selection"]]
    raw = [{"variant": r["variant"], "machine": r["machine"], "section": int(r["section"]), "auc": r["AUC"] / 100,
            "pauc": r["pAUC"] / 100} for r in sec_rows]
    files = []
    files += _write_table(res_dir, "sections", sec_rows)
    files += _write_table(res_dir, "selection", sel_rows)
    order = [t for t in MACHINE_TYPES if t in types] + sorted(set(types) - set(MACHINE_TYPES))
    files += _write_table(res_dir, "table2", summary_table(raw, [v for v in TABLE2_VARIANTS if v in cfg["variants"]],
                                                           machines=order))
    files += _write_table(res_dir, "table3", summary_table(raw, [v for v in TABLE3_VARIANTS if v in cfg["variants"]],
                                                           machines=order))
    # only the files of the types tabulated: a type being computed by another job is not half listed
    extra = sorted(f for m in types for f in type_files(res_dir, m))
    manifest = {
        "schema": RESULTS_SCHEMA, "schema_version": RESULTS_SCHEMA_VERSION,
        "grids": {"lam": list(cfg["grid_lam"]), "p": {k: list(v) for k, v in cfg["grid_p"].items()},
                  "aggregation": "the paper's per kind: gmm mean_above_median, lof mean"},
        "selection_rule": SELECTION_RULE, "variants": list(cfg["variants"]), "machine_types": sorted(types),
        "tables": {k: list(v) for k, v in TABLE_COLUMNS.items()},
        "report_sections": list(EVAL_SECTIONS), "selection_sections": list(DEV_SECTIONS),
        "files": files + extra, "provenance": provenance,
        # written last: a table written after it (an interrupted rewrite) no longer matches (load_results)
        "checksums": {f: sha256_file(res_dir / f) for f in files + extra},
    }
    atomic_write_json(res_dir / "manifest.json", manifest)
    return res_dir


# --------------------------------------------------------------------------------------
# official DCASE result files, one folder per variant
# --------------------------------------------------------------------------------------


def _chosen_dcase_files(run_dir: Path, inlier: Mapping | None) -> tuple[list[str] | None, str]:
    """Names of the official files the run's evaluation wrote, or None and why they cannot be used.

    The run's ``eval/results.json`` (written last by :func:`minasd.evaluate.evaluate_run`) lists
    them; it must be the evaluation with the chosen h (not one made later by hand with another)."""
    rj = run_dir / "eval" / "results.json"
    if not rj.is_file():
        return None, (f"{rj} does not exist (the training runs are not in this folder: the files are copied "
                      "from the runs, which only the experiment's own folder holds)")
    ev = json.loads(rj.read_text())
    names = ev.get("files", {}).get("dcase_files")
    if names is None:
        return None, f"{rj} lists no DCASE files (evaluated by an older minasd)"
    if inlier is not None and any(ev.get("inlier", {}).get(k) != inlier.get(k) for k in ("kind", "p", "aggregation")):
        return None, (f"{rj} holds an evaluation with h = {ev.get('inlier')}, not the chosen {dict(inlier)}; "
                      "remove the type's results/types/<type>.json and run the experiment again")
    absent = [n for n in names if not (run_paths(run_dir).dcase / n).is_file()]
    if absent:
        return None, f"{run_dir / 'eval' / 'dcase'} lacks {absent[:3]}"
    return sorted(names), ""


def write_dcase_teams(out: str | Path, variants: Sequence[str], types: Mapping[str, Mapping],
                      progress: bool = True) -> dict:
    """Write ``OUT/dcase/<variant>/``: every type's official DCASE 2021 result files of one system.

    The official evaluator (``y-kawagu/dcase2021_task2_evaluator``) reads a folder
    ``teams/<team>/`` holding the ``anomaly_score_<type>_section_<XX>_<domain>_test.csv``
    and ``decision_result_...`` files of every machine type in its ``ground_truth_data/``.
    For each variant of :data:`DCASE_TEAM_VARIANTS` that was run, the files of each type are
    copied (byte for byte, atomically) from that type's chosen run (``<run>/eval/dcase``,
    :func:`minasd.dcase_files.write_dcase_files`), so the folder can be copied to ``teams/`` as
    it is.  The variants of :data:`DCASE_NOT_WRITTEN` get none (the manifest says why).

    A derived output, rebuilt from the runs after every invocation, as the tables are:

    * a file equal to its run's is left alone; one that differs is replaced **and said so**
      (printed, and listed under ``replaced`` in the manifest);
    * result files no type's run accounts for (a type's section no longer evaluated, a type
      no longer in the results) are removed, printed and listed under ``removed``;
    * a type whose run folder is absent (restored results, a new checkout: runs are not
      published) keeps the files copied earlier, if any (``source: "kept"``); with none it
      is listed under ``missing`` with the reason, and printed.

    ``OUT/dcase/manifest.json`` (written last) names, per variant and type, the run, the
    chosen h and the files.

    Args:
        out: the experiment folder.
        variants: the experiment's variants.
        types: machine type -> its ``results/types/<type>.json`` dict.
        progress: a line per team folder written.

    Returns:
        the manifest.  Book: chapter 6.
    """
    out = Path(out)
    base = out / DCASE_DIR
    order = [t for t in MACHINE_TYPES if t in types] + sorted(set(types) - set(MACHINE_TYPES))
    manifest = {"schema": DCASE_SCHEMA, "schema_version": 1,
                "evaluator": "https://github.com/y-kawagu/dcase2021_task2_evaluator: copy OUT/dcase/<variant> to "
                             "its teams/<team name>/",
                "variants": {}, "not_written": {v: DCASE_NOT_WRITTEN[v] for v in variants if v in DCASE_NOT_WRITTEN}}
    for v in [x for x in DCASE_TEAM_VARIANTS if x in variants]:
        team = base / v
        entry: dict = {"types": {}, "missing": {}, "replaced": [], "removed": []}
        keep: set[str] = set()
        for m in order:
            ev = types[m].get("variants", {}).get(v)
            if not ev or not ev.get("run"):
                entry["missing"][m] = f"{v} was not run for {m}"
                continue
            run_dir = out / ev["run"]
            names, why = _chosen_dcase_files(run_dir, ev.get("inlier"))
            why = why.replace(f"{out}/", "")  # paths relative to the experiment folder: the manifest gets published
            if names is None:
                earlier = sorted(f.name for p in _DCASE_PREFIXES for f in team.glob(f"{p}_{m}_section_*.csv"))
                if earlier:
                    keep.update(earlier)
                    entry["types"][m] = {"run": ev["run"], "inlier": ev.get("inlier"), "files": earlier,
                                         "source": "kept", "note": f"copied by an earlier invocation; {why}"}
                else:
                    entry["missing"][m] = why
                continue
            src = run_paths(run_dir).dcase
            for n in names:
                data = (src / n).read_bytes()
                dst = team / n
                if dst.is_file():
                    if dst.read_bytes() == data:
                        continue
                    entry["replaced"].append(n)
                    print(f"[experiment] {DCASE_DIR}/{v}/{n} differs from {ev['run']}/eval/dcase/{n}: replaced")
                atomic_write_bytes(dst, data)
            keep.update(names)
            entry["types"][m] = {"run": ev["run"], "inlier": ev.get("inlier"), "files": names, "source": "run"}
        if team.is_dir():
            for f in sorted(team.glob("*.csv")):
                if f.name.startswith(tuple(f"{p}_" for p in _DCASE_PREFIXES)) and f.name not in keep:
                    f.unlink()
                    entry["removed"].append(f.name)
                    print(f"[experiment] {DCASE_DIR}/{v}/{f.name}: no run of this experiment writes it: removed")
        manifest["variants"][v] = entry
        lost = [m for m, why in entry["missing"].items() if not why.startswith(f"{v} was not run")]
        if lost:  # said whatever progress is: the folder is not what a reader would expect
            print(f"[experiment] {DCASE_DIR}/{v}: no files of {', '.join(lost)}: {entry['missing'][lost[0]]}")
        if progress:
            n_files = sum(len(t["files"]) for t in entry["types"].values())
            print(f"[experiment] {base / v}: {n_files} DCASE files of {len(entry['types'])} type(s)"
                  + (f"; missing: {', '.join(entry['missing'])}" if entry["missing"] else ""))
    atomic_write_json(base / "manifest.json", manifest)
    return manifest


# --------------------------------------------------------------------------------------
# load / validate
# --------------------------------------------------------------------------------------


def _load_manifest(d: Path) -> dict:
    """``d/manifest.json``, checked: keys, schema and version, table columns, every listed file
    present and (where recorded) with the checksum it was listed with."""
    mf = d / "manifest.json"
    if not mf.is_file():
        raise FileNotFoundError(f"{mf} does not exist; run `minasd experiment --out ...` first")
    manifest = json.loads(mf.read_text())
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing:
        raise ValueError(f"{mf} lacks the keys {missing}")
    if manifest["schema"] != RESULTS_SCHEMA or manifest["schema_version"] != RESULTS_SCHEMA_VERSION:
        raise ValueError(f"{mf} has schema {manifest['schema']!r} version {manifest['schema_version']}; this minasd "
                         f"reads {RESULTS_SCHEMA!r} version {RESULTS_SCHEMA_VERSION}")
    if {k: tuple(v) for k, v in manifest["tables"].items()} != TABLE_COLUMNS:
        raise ValueError(f"{mf}: table columns {manifest['tables']} differ from the schema {TABLE_COLUMNS}")
    for f in manifest["files"]:
        if not (d / f).is_file():
            raise FileNotFoundError(f"{d / f} is listed in {mf} but does not exist")
    for f, digest in manifest.get("checksums", {}).items():  # absent in manifests of earlier minasd
        if sha256_file(d / f) != digest:
            raise ValueError(f"{d / f} differs from the file {mf} was written with: the tables were left half "
                             "rewritten (an interrupted run?); run the experiment (or `minasd results`) again to "
                             "rewrite them")
    return manifest


def _load_table(d: Path, name: str, cols: tuple[str, ...]):
    """One table (``<name>.csv`` and its JSON twin) as a DataFrame, checked against the schema."""
    import pandas as pd

    csv_path, json_path = d / f"{name}.csv", d / f"{name}.json"
    if not csv_path.is_file() or not json_path.is_file():
        raise FileNotFoundError(f"{csv_path if not csv_path.is_file() else json_path} does not exist")
    df = pd.read_csv(csv_path, dtype={"section": str})
    if tuple(df.columns) != cols:
        raise ValueError(f"{csv_path} has columns {list(df.columns)}; the schema says {list(cols)}")
    js = json.loads(json_path.read_text())
    if js.get("schema_version") != RESULTS_SCHEMA_VERSION or tuple(js.get("columns", ())) != cols:
        raise ValueError(f"{json_path} has schema version {js.get('schema_version')} and columns "
                         f"{js.get('columns')}; the schema says v{RESULTS_SCHEMA_VERSION}, {list(cols)}")
    if len(js["rows"]) != len(df) or any(tuple(r) != cols for r in js["rows"]):
        raise ValueError(f"{json_path} rows disagree with {csv_path} or with the columns {list(cols)}")
    for c in ("AUC", "pAUC", "hmean"):
        if c in df and not df[c].dropna().between(0, 100).all():
            raise ValueError(f"{csv_path}: column {c} has values outside [0, 100]")
    if "note" in cols:
        silent = df[df["hmean"].isna() & df["note"].fillna("").astype(str).str.strip().eq("")]
        if len(silent):
            r = silent.iloc[0]
            raise ValueError(f"{csv_path}: {r['variant']} {r['machine']} has no hmean and no note saying why")
    return df


def _load_roc(p: Path) -> dict:
    """A ``roc/<type>.json``, checked: per variant and section, monotone ``fpr``/``tpr`` of equal length."""
    obj = json.loads(p.read_text())
    for variant, per_sec in obj.items():
        for sec, pts in per_sec.items():
            fpr, tpr = np.asarray(pts.get("fpr", [])), np.asarray(pts.get("tpr", []))
            if fpr.size < 2 or fpr.shape != tpr.shape or (np.diff(fpr) < 0).any() or (np.diff(tpr) < 0).any():
                raise ValueError(f"{p}: ROC of {variant} section {sec} is not two monotone lists of "
                                 "equal length")
    return obj


def _load_tsne(p: Path) -> dict[str, np.ndarray]:
    """A ``tsne/<type>_<variant>.npz``, checked: the schema's arrays (:data:`TSNE_KEYS`), of one length."""
    with np.load(p, allow_pickle=False) as z:
        arrs = {k: z[k] for k in z.files}
    if set(arrs) != set(TSNE_KEYS):
        raise ValueError(f"{p} holds arrays {sorted(arrs)}; the schema says {sorted(TSNE_KEYS)}")
    n = len(arrs["coords"])
    if arrs["coords"].shape != (n, 2) or any(len(arrs[k]) != n for k in TSNE_KEYS):
        raise ValueError(f"{p}: arrays disagree in length or coords are not (N, 2)")
    return arrs


def load_results(directory: str | Path) -> dict:
    """Load and validate the compact result files of an experiment (``OUT`` or ``OUT/results``).

    Checks the manifest's schema and version, that every listed file exists (and, where the
    manifest records them, has the checksum it was listed with), that
    every table's CSV and JSON have exactly the schema's columns, that ROC files
    hold monotone ``fpr``/``tpr`` lists of equal length, and that t-SNE files hold
    the schema's arrays with matching lengths.

    Returns:
        dict: ``manifest``, ``tables`` (name -> DataFrame), ``roc`` (type -> dict),
        ``tsne`` (file stem -> dict of arrays), ``logs`` (relative path -> list of records),
        ``types`` (type -> dict).  Book: chapter 6.

    Raises:
        FileNotFoundError: the manifest or a listed file is missing.
        ValueError: a file does not match the schema (the message names it).
    """
    import pandas as pd

    d = Path(directory)
    if (d / "results" / "manifest.json").is_file():
        d = d / "results"
    manifest = _load_manifest(d)
    tables = {name: _load_table(d, name, cols) for name, cols in TABLE_COLUMNS.items()}
    roc, tsne, logs, types, scores = {}, {}, {}, {}, []
    for f in manifest["files"]:
        p = d / f
        if f.startswith("roc/"):
            roc[p.stem] = _load_roc(p)
        elif f.startswith("tsne/"):
            tsne[p.stem] = _load_tsne(p)
        elif f.startswith("logs/"):
            logs[f] = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        elif f.startswith("types/"):
            obj = json.loads(p.read_text())
            if obj.get("schema_version") != RESULTS_SCHEMA_VERSION:
                raise ValueError(f"{p} has schema version {obj.get('schema_version')}")
            types[obj["machine_type"]] = obj
        elif f.startswith("scores/"):
            sc = pd.read_csv(p)
            if tuple(sc.columns) != SCORE_COLUMNS:
                raise ValueError(f"{p} has columns {list(sc.columns)}; the schema says {list(SCORE_COLUMNS)}")
            if sc["score"].isna().any() or not sc["label"].isin([0, 1]).all():
                raise ValueError(f"{p}: every row needs a score and a label of 0 or 1")
            scores.append(sc)
    return {"manifest": manifest, "tables": tables, "roc": roc, "tsne": tsne, "logs": logs, "types": types,
            "scores": pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(columns=SCORE_COLUMNS),
            "dir": str(d)}


# --------------------------------------------------------------------------------------
# the whole protocol
# --------------------------------------------------------------------------------------


def _tables_provenance(cfg: dict, root: Path, data: dict, dev, done: Mapping[str, Mapping], t0: float) -> dict:
    """The manifest's ``provenance``: configuration, versions, data, device, and per finished type its
    epochs, configuration and duration (``t0``: when this invocation started)."""
    from .. import __version__

    return {
        "config": json.loads(json.dumps(cfg)), "minasd_version": __version__, "git_commit": git_commit(),
        "data_root": str(root), "data": data, "device": str(dev),
        "device_name": __import__("torch").cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "epochs": {m: {v: e["training"]["epochs_done"] for v, e in done[m]["variants"].items()
                       if e.get("training")} for m in done},
        # types computed in other invocations (sessions) may have used another configuration: each says its own
        "per_type_config": {m: done[m]["config_signature"] for m in done},
        "duration_s": {"this_invocation": round(time.perf_counter() - t0, 3),
                       "per_type_last_computed": {m: done[m]["duration_s"] for m in done}},
        "written_at": now(),
    }


def experiment(data_root: str | Path, out_dir: str | Path, machine_types: Sequence[str] | None = None,
               epochs: int | None = None, device: str = "auto", variants: Sequence[str] = VARIANTS,
               grid_p: Mapping[str, Sequence[int]] | None = None, grid_lam: Sequence[float] = DEFAULT_GRID_LAM,
               seed: int = 0, train_overrides: Mapping | None = None, tsne_max_target: int = TSNE_MAX_TARGET,
               tsne_max_other: int = TSNE_MAX_OTHER, workers: int | None = None, progress: bool = True,
               tables: bool = True, system_settings: Mapping[str, Mapping] | None = None) -> dict | None:
    """Run (or resume) the protocol and write ``OUT/results`` (module docstring).

    Args:
        data_root: DCASE-style data root (real or synthetic).
        out_dir: experiment folder.
        machine_types: target types (default: every type with training clips under ``data_root``).
        epochs: training epochs (default Table I: 300).
        device: "auto", "cpu", "cuda", ...
        variants: subset of :data:`VARIANTS`.
        grid_p: {"gmm": [...], "lof": [...]} (default :data:`DEFAULT_GRID_P`).
        grid_lam: lambda grid (default :data:`minasd.profiles.DEFAULT_GRID_LAM`, {0.1, 10}).
        seed: seed of training, GMM fits and subsamples.
        train_overrides: other :class:`minasd.train.TrainConfig` fields (batch_size, lr,
            backbone, max_train_clips_per_section, val_fraction, num_workers, ...).
        tsne_max_target, tsne_max_other: clips in each t-SNE sample.
        workers: processes of the comparison systems' feature extraction (None: every core).
        progress: tqdm bars and a line per written file.
        tables: write the tables, the manifest and ``OUT/dcase`` (under the folder's lock).
            False in a job of :mod:`minasd.studies.results` or :mod:`minasd.studies.controlled`: a job writes
            only its types' own files, and the one scheduling process merges them (calling
            this again with ``tables=True``, which finds every type done).
        system_settings: per comparison system, fields of its configuration to change
            (``{"ae_dcase2021": {"epochs": 2}}``: :class:`minasd.dcase_ae.AEConfig`,
            :class:`minasd.twfr.TWFRConfig`, :class:`minasd.baseline.BaselineConfig`); default the
            published settings.  Quick runs and tests only.

    Returns:
        :func:`load_results` of the written files (None when ``tables`` is False).  Book: chapter 6.
    """
    from ..data import index, protocol_clips
    from ..provenance import data_manifest
    from ..runs import resolve_device

    t0 = time.perf_counter()
    variants = list(variants)
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        raise ValueError(f"unknown variants {bad}; choose from {list(VARIANTS)}")
    grid_p = {k: [int(p) for p in v] for k, v in (grid_p or DEFAULT_GRID_P).items()}
    if set(grid_p) - {"gmm", "lof"} or not candidates(grid_p):
        raise ValueError(f"grid_p must map 'gmm'/'lof' to lists of p, got {grid_p}")
    grid_lam = [float(v) for v in grid_lam]
    if not grid_lam:
        raise ValueError("grid_lam is empty")
    root = Path(data_root).resolve()
    out = Path(out_dir).resolve()
    df = index(root)
    # one clip rule for every stage (source domain): which types can be trained, which clips are others
    trainable = set(protocol_clips(df, "train")["machine"])
    present = [m for m in MACHINE_TYPES if m in trainable] + sorted(trainable - set(MACHINE_TYPES))
    types = list(machine_types) if machine_types else present
    missing = [m for m in types if m not in present]
    if missing:
        raise ValueError(f"no training clips of {missing} under {root}; found {present}")
    overrides = dict(train_overrides or {})
    for k in ("machine_type", "data_root", "out_dir", "epochs", "lam", "device", "seed", "mixup", "machine_loss"):
        if k in overrides:
            raise ValueError(f"train_overrides may not set {k!r}; it is set by the experiment")
    cfg = {"variants": variants, "grid_p": grid_p, "grid_lam": grid_lam, "epochs": epochs, "seed": seed,
           "device": device, "train_overrides": overrides, "tsne_max_target": tsne_max_target,
           "tsne_max_other": tsne_max_other, "workers": workers}
    unknown = sorted(set(system_settings or {}) - set(SYSTEMS))
    if unknown:
        raise ValueError(f"system_settings for {unknown}: not comparison systems ({', '.join(SYSTEMS)})")
    if system_settings:
        cfg["system_settings"] = {k: dict(v) for k, v in system_settings.items()}
    test_df = protocol_clips(df, "test")
    res_dir = out / "results"
    done = _finished_types(res_dir)  # types finished before (other sessions)
    earlier = _reusable_records(res_dir)
    if progress:
        print(f"[experiment] {len(types)} machine types {types}, variants {variants}, lambda grid {grid_lam}, "
              f"p grid {grid_p}; output {out}")
    for m in types:
        if m in done and done[m].get("config_signature") == _signature(cfg):
            if progress:
                print(f"[experiment] {m}: results/types/{m}.json is up to date, skipped")
            continue
        done[m] = run_type(m, root, out, cfg, test_df[test_df["machine"] != m].reset_index(drop=True), progress,
                           reuse=_reusable(earlier.get(m), cfg))
    if not tables:
        return None
    dev = resolve_device(device)
    data = data_manifest(root)
    with folder_lock(out):
        # every type on disk now, this invocation's and those other jobs committed meanwhile (a type another
        # job is computing again has withdrawn its record: it is left out rather than half listed)
        done = _finished_types(res_dir)
        res = write_tables(out, cfg, done, _tables_provenance(cfg, root, data, dev, done, t0))
        if progress:
            print(f"[experiment] wrote {res}/manifest.json, table2/table3/sections/selection (.csv, .json)")
        write_dcase_teams(out, variants, done, progress=progress)
        return load_results(res)


def format_results(loaded: dict) -> str:
    """Table II and III analogues as text (percent), with the notes of incomplete types and of All."""
    import pandas as pd

    from ..metrics import ALL_LABEL
    from ..provenance import data_caption

    lines = [f"data: {data_caption(loaded['manifest']['provenance']['data'], 'table')}"]
    for name in ("table2", "table3"):
        df = loaded["tables"][name]
        if len(df):
            piv = df.pivot(index="variant", columns="machine", values="hmean")
            piv = piv.reindex([v for v in VARIANTS if v in piv.index])
            lines.append(f"{name} (harmonic mean of AUC and pAUC over sections 03-05, %):")
            lines.append(piv.round(2).to_string())
            for r in df.itertuples():
                if isinstance(r.note, str) and r.note.strip() and (r.machine == ALL_LABEL or pd.isna(r.hmean)):
                    lines.append(f"  {r.variant} {r.machine}: {r.note}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# command line (wired into `minasd experiment` by minasd.cli)
# --------------------------------------------------------------------------------------


def add_experiment_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``minasd experiment`` (Book: chapter 6)."""
    from ..profiles import PROFILES

    parser.add_argument("--data", required=True, type=Path, help="DCASE-style data root")
    parser.add_argument("--out", required=True, type=Path, help="experiment folder (runs/ and results/)")
    parser.add_argument("--machine-types", nargs="+", default=None, help="target types (default: all present)")
    parser.add_argument("--profile", default="paper", choices=sorted(PROFILES),
                        help="training profile (minasd.profiles): paper (default: EfficientNet-B0, 300 epochs, "
                             "Table I batch sizes) or cpu; --epochs, --batch-size, --backbone override it")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the profile's)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated subset of {','.join(VARIANTS)} (default: all)")
    parser.add_argument("--grid-p", nargs="+", default=None, metavar="KIND:P,P",
                        help="inlier grid, e.g. gmm:1,2,4,8,16,32,64 lof:4,8,16,32 (the default)")
    parser.add_argument("--grid-lam", type=float, nargs="+", default=list(DEFAULT_GRID_LAM),
                        help=f"lambda grid (default {' '.join(f'{v:g}' for v in DEFAULT_GRID_LAM)}: Table I's values); "
                             "one model is trained per value")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: the profile's)")
    parser.add_argument("--backbone", default=None, help="timm encoder (default: the profile's)")
    parser.add_argument("--max-train-clips-per-section", type=int, default=None, help="quick runs only")
    parser.add_argument("--ae-epochs", type=int, default=None,
                        help="epochs of the DCASE 2021 autoencoder (default: the recipe's 100; quick runs only)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _parse_grid_p(items: Sequence[str] | None) -> dict | None:
    if not items:
        return None
    grid = {}
    for it in items:
        kind, _, ps = it.partition(":")
        if kind not in ("gmm", "lof") or not ps:
            raise ValueError(f"--grid-p item {it!r}: expected gmm:P,P,... or lof:P,P,...")
        grid[kind] = [int(p) for p in ps.split(",") if p]
    return grid


def run_experiment(args: argparse.Namespace) -> int:
    """Run ``minasd experiment`` and print the tables (Book: chapter 6)."""
    from ..profiles import get_profile

    epochs, overrides = get_profile(args.profile).experiment_settings(
        epochs=args.epochs, backbone=args.backbone, batch_size=args.batch_size,
        max_train_clips_per_section=args.max_train_clips_per_section)
    loaded = experiment(args.data, args.out, machine_types=args.machine_types, epochs=epochs,
                        device=args.device,
                        variants=[v.strip() for v in args.variants.split(",") if v.strip()],
                        grid_p=_parse_grid_p(args.grid_p), grid_lam=args.grid_lam, seed=args.seed,
                        train_overrides=overrides, progress=not args.quiet,
                        system_settings={"ae_dcase2021": {"epochs": args.ae_epochs}} if args.ae_epochs else None)
    print(format_results(loaded))
    return 0


__all__ = ["experiment", "load_results", "summary_table", "run_type", "write_dcase_teams",
           "RESULTS_SCHEMA_VERSION",
           "VARIANTS", "DEFAULT_GRID_P", "DEFAULT_GRID_LAM", "add_experiment_arguments", "run_experiment"]
