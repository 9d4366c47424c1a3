"""Controlled experiments: one change at a time against a reference, to explain a loss to the baseline.

``minasd controlled --data ROOT --work WORK --out OUT`` (or :func:`run_controlled`)
trains and evaluates, per machine type, one **row** per controlled change, each through
:func:`minasd.studies.experiment.experiment` in its own experiment folder ``WORK/rows/<row>/``
(so a row is resumable: the experiment skips finished types, an interrupted training
resumes), and writes one table::

    minasd controlled --data out/results_work/data/synth_protocol_seed0 --work out/controlled_work \\
        --out results/controlled --machine-types fan

The question it answers (the issue): *if the method loses to the baseline, why?*  (The
baseline: the GMM on log-mel mean/std, :mod:`minasd.baseline`; see below.)  The table is a
diagnosis, never a selection: **nothing in the factory, the profile or the
protocol may be changed because of a row's score on sections 03-05**; choices are made on
sections 00-02 only (inside each row, the experiment chooses the inlier kind and p on
00-02 as always).

Rows (:data:`ROWS`; ``--rows`` picks a subset, in any order):

* ``reference``: the profile (default ``cpu``: mobilenetv3_small_050, 20 epochs, batch 32)
  as is, with lambda = ``--lam``.  That value must come from a choice made on sections
  00-02: the default 10 is what the committed seed-0 results chose on 00-02 for fan
  (``results/experiment/seed0``); pass the value the 00-02 choice gave for the types run.
* ``clips_15``, ``clips_30``: at most 15 / 30 training clips per section (TrainConfig
  ``max_train_clips_per_section``, seeded) on the **same** data set, so the test set is
  identical; the cap applies to every type's clips (the other types' clips of the outlier
  exposure too).  More clips than the set holds (60 per section in the ``protocol`` size)
  cannot be tested on the same test set.  The baseline is also refitted on the same clips
  (columns ``baseline_same_clips_*``): the ``baseline_*`` columns stay the full-data bar.
* ``epochs_10``, ``epochs_40``: 10 / 40 training epochs instead of the profile's.
* ``encoder_s100``: timm ``mobilenetv3_small_100`` (2x the width of the cpu encoder).
* ``encoder_b0``: EfficientNet-B0, the paper's encoder (about 10x the cost on a CPU: leave
  it out with ``--rows`` when the budget is short).
* ``h_30pct``: ``val_fraction`` 0.3: h is fitted on 3x as many held-out clips; the encoder
  then trains on 70 % of the clips instead of 90 % (the two are confounded).
* ``no_mixup``: the experiment's "w/o Mixup" variant trained at ``--lam``.  Its proposed
  run (needed by the experiment) is copied from the reference row when that run exists
  with the same settings, so it is not trained twice.
* ``lam_0.1``, ``lam_1``, ``lam_10``: lambda 0.1 / 1 / 10.  The row whose value is ``--lam``
  equals ``reference``: its run is copied from the reference row, not retrained (leave it out
  with ``--rows``).
* ``whole_clip``: no training.  The reference row's model; each clip is represented by the
  **mean of its S = 10 segment embeddings**, h is fitted on the held-out clips' means, and
  the clip score is h's score of the mean (no aggregation).  Kind and p are chosen on
  sections 00-02 with :func:`minasd.selection.select_on_dev` over the experiment's grid;
  note that h then has one point per held-out clip (6 per section at 60 clips and 10 %),
  so the larger p of the grid are skipped (recorded in ``detail``).
* ``section_distance``: no training.  The reference row's numbers next to how far apart
  the sections of the type are: the validation section accuracy of the reference run,
  ``emb_section_acc`` (leave-one-out nearest-centroid accuracy of the section of the
  normal test clips from their clip-mean embeddings, all sections) and, on synthetic data,
  the spread of the factory's per-section generation parameters
  (:func:`minasd.synth.section_params`): for every pair of sections the largest relative
  difference over the parameters, and the nearest pair (in ``detail`` and the JSON).

"The baseline" here (the ``baseline_*`` columns, the ``WORK/baseline`` folder) is the GMM on each
clip's log-mel mean and standard deviation, :mod:`minasd.baseline`: the experiment's comparison
system ``gmm_meanstd`` (called ``baseline`` before results schema 4; the columns keep their names).
The other comparison systems (the DCASE 2021 autoencoder, TWFR-GMM) are not run here.  The
baseline does not depend on any row's change: it is computed once per type in its own experiment
folder ``WORK/baseline`` (variants ``["gmm_meanstd"]``) and every row is compared with it.

Output (``OUT`` is meant to be committed; every path in it is relative):

* ``OUT/controlled.csv``: one line per (row, machine type), columns :data:`COLUMNS`:

  - ``row``, ``machine``, ``variant`` (the experiment variant in the ``method_*`` columns:
    ``proposed``, ``no_mixup``, or ``proposed_clip_mean`` for ``whole_clip``), ``change``
    (one line);
  - ``method_{dev,eval}_{auc,pauc,hmean}``, ``baseline_{dev,eval}_{auc,pauc,hmean}``:
    harmonic means over sections 00-02 (dev) and 03-05 (eval), in percent, by
    :func:`minasd.studies.experiment.summary_table` (a type missing a section gets none);
  - ``diff_dev_hmean``, ``diff_eval_hmean``: method minus baseline (points);
  - ``baseline_same_clips_{dev,eval}_hmean``: the baseline refitted on the row's clips
    (``clips_*`` rows only);
  - ``method_eval_auc_{subtle,gross}``, ``baseline_eval_auc_{subtle,gross}``: on synthetic
    data, AUC (percent) of the normal clips of sections 03-05 against the anomalies of one
    severity class (:func:`minasd.studies.analysis.auc_by_class`);
  - ``val_section_acc``: the validation section accuracy (fraction) at the best epoch
    (the run's log), ``best_epoch``, ``epochs``, ``lam``, ``kind``, ``p`` (h chosen on
    00-02), ``train_clips_per_section`` (target clips, train + held out, per section);
  - ``emb_section_acc`` (``section_distance`` only), ``wall_s`` (seconds this line's
    computation took: training, embeddings, h, the baseline refit; not the shared
    baseline), ``train_s`` (the run's training seconds, from its log), ``detail``.
* ``OUT/controlled.json``: the same lines as records (with the selection, training facts
  and details), the row definitions, and provenance: the command, the data manifest
  (:func:`minasd.provenance.data_manifest`), the profile, seed, lambda, git commit, the
  machine, wall time per row, and the CSV's SHA-256 (``csv_sha256``: written after the CSV, so
  :func:`load_controlled` tells a pair left half rewritten by an interruption).  Rewritten
  (atomically) after every finished line, by the scheduling process only: the jobs write
  nothing but their own types' files in their row folders (``experiment(tables=False)``), run
  ``--jobs`` at a time by :class:`minasd.studies.jobs.JobRunner` (as in ``minasd results``).  The
  resume unit is one (row, type); a rerun skips the lines whose settings are unchanged.

Runs that already exist with the same settings (``--reuse-runs DIR``: e.g. the seed folder of
``minasd results`` on the same data, seed and profile, which holds proposed runs at lambda 0.1
and 10 and the ablations at the chosen lambda) are copied instead of retrained; ``detail`` says
which.

Cost at the cpu profile on the ``protocol`` set (per type, 2 threads): a training row
about 150 s of training + 55 s of embeddings + selection; ``epochs_40`` twice the training,
``encoder_s100`` about 2x, ``encoder_b0`` about 10x; ``whole_clip`` and
``section_distance`` seconds (cached embeddings of the reference); the shared baseline and
each ``clips_*`` baseline refit about a minute of log-mel features.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..config import DEV_SECTIONS, EVAL_SECTIONS, MACHINE_TYPES
from ..io_utils import atomic_savez, atomic_write_json, atomic_write_text, sha256_file
from ..runs import run_paths
from .jobs import JobRunner, command_line, in_log, now, run_provenance

SCHEMA = "minasd.controlled"
#: Version of ``controlled.csv``/``controlled.json``; bump when a column or key changes.
SCHEMA_VERSION = 1
CSV_NAME = "controlled.csv"
JSON_NAME = "controlled.json"
BASELINE_DIR = "baseline"
#: The experiment variant of the baseline: the GMM on log-mel mean/std (:mod:`minasd.baseline`).
BASELINE_VARIANT = "gmm_meanstd"
ROWS_DIR = "rows"
REFERENCE = "reference"
#: Rows that need the reference row's trained model.
NEEDS_REFERENCE = ("whole_clip", "section_distance")

COLUMNS: tuple[str, ...] = (
    "row", "machine", "variant", "change",
    "method_dev_auc", "method_dev_pauc", "method_dev_hmean", "method_eval_auc", "method_eval_pauc", "method_eval_hmean",
    "baseline_dev_auc", "baseline_dev_pauc", "baseline_dev_hmean",
    "baseline_eval_auc", "baseline_eval_pauc", "baseline_eval_hmean",
    "diff_dev_hmean", "diff_eval_hmean", "baseline_same_clips_dev_hmean", "baseline_same_clips_eval_hmean",
    "method_eval_auc_subtle", "method_eval_auc_gross", "baseline_eval_auc_subtle", "baseline_eval_auc_gross",
    "val_section_acc", "best_epoch", "epochs", "lam", "kind", "p", "train_clips_per_section", "emb_section_acc",
    "wall_s", "train_s", "detail",
)


@dataclass(frozen=True)
class RowSpec:
    """One controlled change against the reference.

    Attributes:
        name: the row's name (``--rows``).
        change: one line saying what differs from the reference.
        kind: ``"train"`` (an experiment of its own), ``"whole_clip"`` or
            ``"section_distance"`` (no training: the reference's model).
        epochs: training epochs; None = the profile's (or ``--epochs``).
        lam: lambda; None = ``--lam``.
        overrides: :class:`minasd.train.TrainConfig` fields that differ from the profile's.
        variant: the experiment variant whose numbers the row reports.
    """

    name: str
    change: str
    kind: str = "train"
    epochs: int | None = None
    lam: float | None = None
    overrides: Mapping = field(default_factory=dict)
    variant: str = "proposed"


ROWS: dict[str, RowSpec] = {r.name: r for r in (
    RowSpec(REFERENCE, "the profile as is, lambda --lam (chosen on sections 00-02)"),
    RowSpec("clips_15", "at most 15 training clips per section (same test set)",
            overrides={"max_train_clips_per_section": 15}),
    RowSpec("clips_30", "at most 30 training clips per section (same test set)",
            overrides={"max_train_clips_per_section": 30}),
    RowSpec("epochs_10", "10 training epochs", epochs=10),
    RowSpec("epochs_40", "40 training epochs", epochs=40),
    RowSpec("encoder_s100", "encoder mobilenetv3_small_100", overrides={"backbone": "mobilenetv3_small_100"}),
    RowSpec("encoder_b0", "encoder EfficientNet-B0 (the paper's)", overrides={"backbone": None}),
    RowSpec("h_30pct", "h fitted on 30 % of the training clips (the encoder trains on 70 %)",
            overrides={"val_fraction": 0.3}),
    RowSpec("no_mixup", "trained without Mixup", variant="no_mixup"),
    RowSpec("lam_0.1", "lambda 0.1", lam=0.1),
    RowSpec("lam_1", "lambda 1", lam=1.0),
    RowSpec("lam_10", "lambda 10", lam=10.0),
    RowSpec("whole_clip", "reference model; h on the clip-mean embedding instead of segments + aggregation",
            kind="whole_clip", variant="proposed_clip_mean"),
    RowSpec("section_distance", "reference numbers next to how far apart the sections are", kind="section_distance"),
)}


@dataclass(frozen=True)
class Context:
    """What every row shares (picklable: it travels to the worker processes)."""

    root: Path
    work: Path
    profile: str
    epochs: int
    lam: float
    seed: int
    device: str
    progress: bool
    reuse: tuple[Path, ...] = ()

    def experiment_kwargs(self, row: RowSpec, machine: str) -> dict:
        """Arguments of :func:`minasd.studies.experiment.experiment` for one training row and type."""
        from ..profiles import get_profile

        epochs, overrides = get_profile(self.profile).experiment_settings(epochs=row.epochs or self.epochs)
        overrides.update(row.overrides)  # the row's change, None included (encoder_b0: backbone None = B0)
        variants = ["proposed"] if row.variant == "proposed" else ["proposed", row.variant]
        return dict(data_root=self.root, out_dir=self.work / ROWS_DIR / row.name, machine_types=[machine],
                    epochs=epochs, device=self.device, variants=variants,
                    grid_lam=[self.lam if row.lam is None else float(row.lam)], seed=self.seed,
                    train_overrides=overrides, tsne_max_target=0, tsne_max_other=0, workers=1,
                    progress=self.progress)


def parse_rows(names: Sequence[str] | None) -> list[str]:
    """Validated row names in :data:`ROWS` order (default: all).

    >>> parse_rows(["whole_clip", "reference"])
    ['reference', 'whole_clip']
    """
    if not names:
        return list(ROWS)
    flat = [n.strip() for item in names for n in str(item).split(",") if n.strip()]
    bad = [n for n in flat if n not in ROWS]
    if bad or not flat:
        raise ValueError(f"unknown rows {bad}; choose from {', '.join(ROWS)}")
    return [n for n in ROWS if n in flat]


def signature(ctx: Context, row: RowSpec) -> dict:
    """Everything a (row, type) line depends on; a line with another signature is recomputed."""
    from .experiment import DEFAULT_GRID_P
    from ..profiles import get_profile
    from ..provenance import data_manifest

    def train_sig(r: RowSpec) -> dict:
        kw = ctx.experiment_kwargs(r, "-")
        return {k: kw[k] for k in ("epochs", "variants", "grid_lam", "seed", "train_overrides")}

    data = data_manifest(ctx.root)
    sig = {"row": row.name, "kind": row.kind, "profile": get_profile(ctx.profile).to_dict(),
           "grid_p": {k: list(v) for k, v in DEFAULT_GRID_P.items()},
           "data": {k: data.get(k) for k in ("kind", "seed", "size", "generator_version")},
           "train": train_sig(ROWS[REFERENCE] if row.kind in NEEDS_REFERENCE else row)}
    return json.loads(json.dumps(sig))


# --------------------------------------------------------------------------------------
# one (row, type): the method's part (runs in a worker process)
# --------------------------------------------------------------------------------------


def _type_result(out_dir: Path, machine: str) -> dict:
    return json.loads((out_dir / "results" / "types" / f"{machine}.json").read_text())


def _best_epoch_acc(log: Path, best_epoch) -> float | None:
    if not log.is_file() or best_epoch is None:
        return None
    for line in log.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            if rec.get("epoch") == best_epoch:
                acc = rec.get("val_section_acc")
                return None if acc is None or not np.isfinite(acc) else float(acc)
    return None


def _train_clips_per_section(run_dir: Path) -> float | None:
    """Mean number of target clips (train + held out) per section of a run, from ``split.json``."""
    import re

    split = run_paths(run_dir).split
    if not split.is_file():
        return None
    sp = json.loads(split.read_text())
    secs = [re.search(r"section_(\d+)_", Path(p).name) for p in sp["train"] + sp["val"]]
    secs = [int(m.group(1)) for m in secs if m]
    return len(secs) / len(set(secs)) if secs else None


def _experiment_part(out_dir: Path, machine: str, variant: str, work: Path) -> dict:
    """The method's numbers of one experiment folder and type (sections, clip scores, selection, training)."""
    import pandas as pd

    obj = _type_result(out_dir, machine)
    ev = obj["variants"][variant]
    run_dir = out_dir / ev["run"]
    training = ev["training"]
    scores = pd.read_csv(out_dir / "results" / "scores" / f"{machine}.csv")
    scores = scores[scores["variant"] == variant]
    return {"sections": [{"section": int(r["section"]), "auc": r["auc"], "pauc": r["pauc"]}
                         for r in obj["sections"] if r["variant"] == variant],
            "scores": scores.drop(columns="variant").to_dict(orient="records"),
            "selected": ev["selected"], "training": training,
            "val_section_acc": _best_epoch_acc(run_paths(run_dir).log, training.get("best_epoch")),
            "train_clips_per_section": _train_clips_per_section(run_dir),
            "run": os.path.relpath(run_dir, work), "detail": {}}


#: TrainConfig fields that do not change what a run learns (compared apart or not at all).
_RUN_FIELDS_IGNORED = ("out_dir", "progress", "num_workers", "data_root", "device")


def _same_finished_run(src: Path, want: dict, root: Path, device: str) -> bool:
    """True when ``src`` is a finished training run whose configuration is ``want`` (every field that
    changes what is learned; the data root compared resolved, the device after resolving ``auto``)."""
    from ..runs import resolve_device
    from ..train import TrainConfig

    meta = run_paths(src).run_json
    if not meta.is_file() or json.loads(meta.read_text()).get("status") != "finished":
        return False
    have = TrainConfig.from_yaml(run_paths(src).config).to_dict()
    if Path(have["data_root"]).resolve() != Path(root).resolve():
        return False
    try:
        if resolve_device(have["device"]).type != resolve_device(device).type:
            return False
    except ValueError:  # a CUDA run found on a machine without CUDA: not the same run here
        return False
    return all(have.get(k) == v for k, v in want.items() if k not in _RUN_FIELDS_IGNORED)


def _shown_path(path: Path) -> str:
    """``path`` as committed files may name it: relative to the working directory (a checkout), or only
    its last four parts when it lies outside (no machine's folders in a committed file)."""
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else "<outside>/" + "/".join(Path(path).parts[-4:])


def _reuse_runs(ctx: Context, row: RowSpec, machine: str) -> list[str]:
    """Copy into ``row``'s experiment folder the finished runs it needs that already exist with the same
    settings: in the reference row's folder (the ``no_mixup`` row's experiment needs a proposed run
    first) or in the folders of ``ctx.reuse`` (experiment folders, such as a seed of ``minasd results``).  A copied
    run is the same training, not a retraining; returns one note per copied run (recorded in ``detail``)."""
    from .experiment import TRAINED, run_name
    from ..train import TrainConfig

    kw = ctx.experiment_kwargs(row, machine)
    sources = [ctx.work / ROWS_DIR / REFERENCE] + [Path(d) for d in ctx.reuse]
    notes = []
    for variant in kw["variants"]:
        for lam in kw["grid_lam"]:
            name = run_name(variant, lam)
            dst = Path(kw["out_dir"]) / "runs" / machine / name
            if dst.exists():
                continue
            want = TrainConfig(machine_type=machine, data_root=str(ctx.root), out_dir=str(dst), epochs=kw["epochs"],
                               lam=float(lam), device=ctx.device, seed=ctx.seed, **kw["train_overrides"],
                               **TRAINED[variant]).to_dict()
            for src_root in sources:
                src = src_root / "runs" / machine / name
                if src.resolve() == dst.resolve() or not _same_finished_run(src, want, ctx.root, ctx.device):
                    continue
                tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
                if tmp.exists():
                    shutil.rmtree(tmp)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(src, tmp)
                tmp.rename(dst)
                notes.append(f"{name} copied from {_shown_path(src)} (same settings), not retrained")
                break
    return notes


def _clip_mean(embs):
    """The run's embeddings with every clip reduced to one 'segment': the mean of its S segments."""
    def mean(cs):
        return dataclasses.replace(cs, emb=cs.emb.mean(axis=1, keepdims=True),
                                   prod=cs.prod.mean(axis=1, keepdims=True), mach=cs.mach.mean(axis=1, keepdims=True))

    return dataclasses.replace(embs, heldout=mean(embs.heldout), test=mean(embs.test), target=None)


def whole_clip_part(ctx: Context, machine: str) -> dict:
    """The ``whole_clip`` row of one type: the reference's model, h on clip-mean embeddings.

    Kind and p are chosen on the development sections (00-02) with
    :func:`minasd.selection.select_on_dev` over :data:`minasd.studies.experiment.DEFAULT_GRID_P`;
    a candidate with more components/neighbours than held-out clips is skipped.
    """
    from ..evaluate import fit_sections, grid_scores, load_embeddings, section_scores
    from .experiment import DEFAULT_GRID_P, candidates, experiment
    from ..metrics import auc_pauc
    from ..selection import select_on_dev

    kw = ctx.experiment_kwargs(ROWS[REFERENCE], machine)
    experiment(**kw, tables=False)  # nothing to do when the reference row has run; otherwise it trains it
    part = _experiment_part(Path(kw["out_dir"]), machine, "proposed", ctx.work)
    embs = _clip_mean(load_embeddings(ctx.work / part["run"], ctx.root, device=ctx.device, progress=ctx.progress))
    present = sorted(int(s) for s in np.unique(embs.test.sections))
    dev = [s for s in DEV_SECTIONS if s in present]
    n_held = {int(s): int((embs.heldout.sections == s).sum()) for s in present}
    rows = grid_scores(embs, candidates(DEFAULT_GRID_P), sections=dev, seed=ctx.seed)
    try:
        chosen, table = select_on_dev(rows, ("kind", "p"))
    except ValueError:  # too few held-out clips for any h of the grid: a line without numbers, saying why
        why = next((r["skipped"] for r in rows if r["skipped"]), "no development-section labels")
        part.update(sections=[], scores=[], selected={"lam": part["selected"]["lam"], "kind": None, "p": None},
                    detail={"heldout_clips_per_section": n_held, "not_computed": f"no h of the grid fits the "
                            f"held-out clip means ({why})"})
        return part
    kind, p = chosen["kind"], int(chosen["p"])
    agg = next(r["aggregation"] for r in rows if (r["kind"], r["p"]) == (kind, p))
    sc = section_scores(embs, fit_sections(embs, kind, p, present, seed=ctx.seed), agg, present)
    sections, scores = [], []
    for s, d in sc.items():
        y, h = d["clips"].labels, d["h"]
        known = y >= 0
        if len(np.unique(y[known])) == 2:
            auc, pauc = auc_pauc(y[known], h[known], section=f"{machine} section {s:02d}")
            sections.append({"section": s, "auc": auc, "pauc": pauc})
        scores += [{"machine": machine, "section": s, "clip": Path(str(c)).name, "label": int(lab), "seed": ctx.seed,
                    "score": float(v)} for c, lab, v in zip(d["clips"].paths, y, h) if lab >= 0]
    skipped = [f"{r['kind']}:{r['p']}" for r in table if r["skipped"]]
    part.update(sections=sections, scores=scores,
                selected={"lam": part["selected"]["lam"], "kind": kind, "p": p, "how": "dev (clip-mean h)"},
                detail={"heldout_clips_per_section": n_held, "skipped_candidates": skipped,
                        "selection": [{k: r[k] for k in ("kind", "p", "dev_hmean", "chosen")} for r in table]})
    return part


def _param_values(v) -> np.ndarray | None:
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return a.ravel()


def section_param_distance(machine: str, sections: Sequence[int], generator: str | None = None) -> dict:
    """How far apart the synthetic factory (``generator``; None: the package's) makes a type's sections
    (:func:`minasd.synth_info.section_params`).

    For a pair of sections and a numeric parameter, the relative difference is
    ``max |a - b| / max(|a|, |b|)`` over its entries (1 when the shapes differ, e.g. a
    different number of resonances); the pair's distance is the largest over the
    parameters.

    Returns:
        dict ``pairs`` (``"00-01"`` -> {distance, differing: {param: rel. difference}}),
        ``nearest`` (the closest pair), ``ranges`` (scalar parameters: ``(max - min) / mean``
        over the sections).

    >>> d = section_param_distance("fan", [0, 1, 2], "1.2")
    >>> d["nearest"]["pair"], round(d["pairs"]["00-01"]["differing"]["f_rot"], 3)
    ('00-01', 0.04)
    """
    from ..synth_info import section_params

    params = {s: section_params(machine, s, generator) for s in sections}
    pairs = {}
    for i, a in enumerate(sections):
        for b in sections[i + 1:]:
            diff = {}
            for k in params[a]:
                va, vb = _param_values(params[a][k]), _param_values(params[b].get(k))
                if va is None or vb is None:
                    continue
                if va.shape != vb.shape:
                    diff[k] = 1.0
                    continue
                den = np.maximum(np.maximum(np.abs(va), np.abs(vb)), 1e-12)
                rel = float(np.max(np.abs(va - vb) / den)) if va.size else 0.0
                if rel > 0:
                    diff[k] = round(rel, 4)
            pairs[f"{a:02d}-{b:02d}"] = {"distance": max(diff.values(), default=0.0), "differing": diff}
    nearest = min(pairs, key=lambda k: pairs[k]["distance"]) if pairs else None
    ranges = {}
    for k in params[sections[0]]:
        vals = [_param_values(params[s][k]) for s in sections]
        if all(v is not None and v.size == 1 for v in vals):
            x = np.array([float(v[0]) for v in vals])
            if abs(x.mean()) > 0:
                ranges[k] = round(float((x.max() - x.min()) / abs(x.mean())), 4)
    return {"pairs": pairs, "ranges": ranges,
            "nearest": None if nearest is None else {"pair": nearest, **pairs[nearest]}}


def embedding_section_accuracy(emb: np.ndarray, sections: np.ndarray) -> dict:
    """Leave-one-out nearest-centroid accuracy of the section of each clip, and the closest pair of sections.

    Args:
        emb: (N, D) clip embeddings (e.g. the mean over segments) of normal clips.
        sections: (N,) their sections.

    Returns:
        dict ``accuracy`` (fraction), ``nearest`` (pair ``"00-04"``), ``separation`` (that
        pair's centroid distance over the root-mean-square within-section spread).

    >>> rng = np.random.default_rng(0)
    >>> e = np.concatenate([rng.normal(0, 1, (20, 3)), rng.normal(10, 1, (20, 3))])
    >>> embedding_section_accuracy(e, np.repeat([0, 1], 20))["accuracy"]
    1.0
    """
    x = np.asarray(emb, np.float64)
    s = np.asarray(sections, int)
    secs = sorted(set(s.tolist()))
    if len(secs) < 2:
        return {"accuracy": None, "nearest": None, "separation": None}
    sums = {k: x[s == k].sum(axis=0) for k in secs}
    counts = {k: int((s == k).sum()) for k in secs}
    correct = 0
    for i in range(len(x)):
        best, best_d = None, np.inf
        for k in secs:
            n = counts[k] - (s[i] == k)
            if n == 0:
                continue
            c = (sums[k] - (x[i] if s[i] == k else 0.0)) / n
            d = float(((x[i] - c) ** 2).sum())
            if d < best_d:
                best, best_d = k, d
        correct += int(best == s[i])
    cent = {k: sums[k] / counts[k] for k in secs}
    spread = {k: float(((x[s == k] - cent[k]) ** 2).sum(axis=1).mean()) for k in secs}
    sep = {f"{a:02d}-{b:02d}": float(np.linalg.norm(cent[a] - cent[b]) / max(np.sqrt((spread[a] + spread[b]) / 2),
                                                                             1e-12))
           for i, a in enumerate(secs) for b in secs[i + 1:]}
    near = min(sep, key=sep.get)
    return {"accuracy": float(correct / len(x)), "nearest": near, "separation": round(sep[near], 4),
            "separations": {k: round(v, 4) for k, v in sep.items()}}


def section_distance_part(ctx: Context, machine: str) -> dict:
    """The ``section_distance`` row of one type: the reference's numbers, section accuracy of the
    head and of the embedding, and (synthetic data) the spread of the generation parameters."""
    from ..evaluate import load_embeddings
    from .experiment import experiment
    from ..provenance import find_synth_manifest

    kw = ctx.experiment_kwargs(ROWS[REFERENCE], machine)
    experiment(**kw, tables=False)
    part = _experiment_part(Path(kw["out_dir"]), machine, "proposed", ctx.work)
    embs = load_embeddings(ctx.work / part["run"], ctx.root, device=ctx.device, progress=ctx.progress)
    normal = embs.test.labels == 0
    emb = embedding_section_accuracy(embs.test.emb[normal].mean(axis=1), embs.test.sections[normal])
    detail = {"embedding": emb}
    secs = sorted(int(s) for s in np.unique(embs.test.sections))
    manifest = find_synth_manifest(ctx.root)
    if manifest is not None:
        try:  # the generator that made the data (sets made before versions were recorded: 1.2)
            detail["params"] = section_param_distance(machine, secs, manifest.get("generator_version", "1.2"))
        except (KeyError, IndexError, ValueError) as err:  # a type or section the factory does not make
            detail["params"] = {"note": f"no generation parameters: {err}"}
    part["detail"] = detail
    return part


def baseline_part(ctx: Context, machine: str) -> dict:
    """The baseline of one type (the experiment's ``gmm_meanstd``, :mod:`minasd.baseline`), from the shared
    experiment folder ``WORK/baseline``."""
    from .experiment import experiment

    out_dir = ctx.work / BASELINE_DIR
    experiment(ctx.root, out_dir, machine_types=[machine], variants=[BASELINE_VARIANT], seed=ctx.seed, workers=1,
               tsne_max_target=0, tsne_max_other=0, progress=ctx.progress, tables=False)
    import pandas as pd

    obj = _type_result(out_dir, machine)
    scores = pd.read_csv(out_dir / "results" / "scores" / f"{machine}.csv")
    scores = scores[scores["variant"] == BASELINE_VARIANT]
    return {"sections": [{"section": int(r["section"]), "auc": r["auc"], "pauc": r["pauc"]}
                         for r in obj["sections"] if r["variant"] == BASELINE_VARIANT],
            "scores": scores.drop(columns="variant").to_dict(orient="records")}


def baseline_on_clips(root: Path, machine: str, train_relpaths: Sequence[str] | None, seed: int,
                      cache: Path | None = None, progress: bool = False) -> list[dict]:
    """The baseline of one type fitted on a subset of its training clips (all of them: None).

    Same clips, order and mixture as :func:`minasd.baseline.run_baseline` (with all clips
    it gives the same numbers); the log-mel features of the type's clips are cached in
    ``cache`` (an .npz, reused when the clip list is the same).

    Returns:
        one dict per section: ``section, auc, pauc``.
    """
    import pandas as pd

    from ..baseline import BaselineConfig, clip_features, evaluate_features
    from ..data import index, protocol_clips

    df = index(root)
    df = pd.concat([protocol_clips(df, split, machines=[machine]) for split in ("train", "test")])
    df = df.sort_values("path", kind="stable").reset_index(drop=True)
    feats = None
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if z["paths"].tolist() == [os.path.relpath(p, root) for p in df["path"]]:
                feats = z["feats"]
    if feats is None:
        feats = clip_features(df["path"].tolist(), workers=1, progress=progress)
        if cache is not None:
            atomic_savez(cache, paths=np.array([os.path.relpath(p, root) for p in df["path"]]), feats=feats)
    if train_relpaths is not None:
        keep = {Path(p).as_posix() for p in train_relpaths}
        rel = np.array([Path(os.path.relpath(p, root)).as_posix() for p in df["path"]])
        mask = (df["split"] != "train").to_numpy() | np.isin(rel, list(keep))
        df, feats = df[mask].reset_index(drop=True), feats[mask]
    res = evaluate_features(df, feats, BaselineConfig(seed=seed))
    return [{"section": int(r.section), "auc": float(r.auc), "pauc": float(r.pauc)} for r in res.itertuples()]


def method_part(ctx: Context, row_name: str, machine: str) -> dict:
    """The method's part of one (row, type): trains (or resumes, or skips) and reads the results."""
    from .experiment import experiment

    row = ROWS[row_name]
    t0 = time.perf_counter()
    if row.kind == "whole_clip":
        part = whole_clip_part(ctx, machine)
    elif row.kind == "section_distance":
        part = section_distance_part(ctx, machine)
    else:
        notes = _reuse_runs(ctx, row, machine)
        kw = ctx.experiment_kwargs(row, machine)
        experiment(**kw, tables=False)
        part = _experiment_part(Path(kw["out_dir"]), machine, row.variant, ctx.work)
        if notes:
            part["detail"]["reused"] = "; ".join(notes)
        if "max_train_clips_per_section" in row.overrides:
            split = json.loads(run_paths(ctx.work / part["run"]).split.read_text())
            part["baseline_same_clips"] = baseline_on_clips(
                ctx.root, machine, split["train"] + split["val"], ctx.seed,
                cache=ctx.work / BASELINE_DIR / "features" / f"{machine}.npz", progress=ctx.progress)
    part["wall_s"] = round(time.perf_counter() - t0, 1)
    return part


def _run_task(kind: str, ctx: Context, row_name: str | None, machine: str, log_path: str | None) -> dict:
    """One task in a worker (or inline): ``"baseline"`` or a row's method part; with a log path its
    output goes there (parallel runs)."""
    if kind == "baseline":
        return in_log(log_path, baseline_part, ctx, machine)
    return in_log(log_path, method_part, ctx, row_name, machine)


# --------------------------------------------------------------------------------------
# one line of the table
# --------------------------------------------------------------------------------------


def _summary(sections: list[dict], machine: str, secs) -> dict:
    from .experiment import summary_table

    raw = [{"variant": "x", "machine": machine, **s} for s in sections if s["auc"] is not None]
    rows = summary_table(raw, ["x"], sections=secs, machines=[machine])
    return next(r for r in rows if r["machine"] == machine)


def _sub(a, b):
    return None if a is None or b is None else a - b


def assemble(row: RowSpec, machine: str, part: dict, base: dict, labels, seed: int) -> dict:
    """One CSV line (:data:`COLUMNS`) from the method's and the baseline's parts."""
    import pandas as pd

    line = {c: None for c in COLUMNS}
    line.update(row=row.name, machine=machine, variant=row.variant, change=row.change)
    for who, secs_rows in (("method", part["sections"]), ("baseline", base["sections"])):
        for role, secs in (("dev", DEV_SECTIONS), ("eval", EVAL_SECTIONS)):
            s = _summary(secs_rows, machine, secs)
            line.update({f"{who}_{role}_auc": s["AUC"], f"{who}_{role}_pauc": s["pAUC"],
                         f"{who}_{role}_hmean": s["hmean"]})
    for role in ("dev", "eval"):
        line[f"diff_{role}_hmean"] = _sub(line[f"method_{role}_hmean"], line[f"baseline_{role}_hmean"])
    if part.get("baseline_same_clips"):
        for role, secs in (("dev", DEV_SECTIONS), ("eval", EVAL_SECTIONS)):
            line[f"baseline_same_clips_{role}_hmean"] = _summary(part["baseline_same_clips"], machine, secs)["hmean"]
    notes = []
    if labels is not None:
        from .analysis import auc_by_class

        df = pd.concat([pd.DataFrame(part["scores"]).assign(variant="method"),
                        pd.DataFrame(base["scores"]).assign(variant="baseline")], ignore_index=True)
        df["seed"] = seed
        try:
            cls = auc_by_class(df, labels)
            for r in cls.itertuples():
                col = f"{r.variant}_eval_auc_{r.severity_class}"
                if col in line:
                    line[col] = 100.0 * float(r.auc)
        except ValueError as err:
            notes.append(f"no AUC by severity class: {err}")
    sel, tr = part.get("selected") or {}, part.get("training") or {}
    line.update(val_section_acc=part.get("val_section_acc"), best_epoch=tr.get("best_epoch"),
                epochs=tr.get("epochs_done"), lam=sel.get("lam"), kind=sel.get("kind"), p=sel.get("p"),
                train_clips_per_section=part.get("train_clips_per_section"), wall_s=part.get("wall_s"),
                train_s=None if tr.get("train_seconds") is None else round(float(tr["train_seconds"]), 1))
    det = part.get("detail") or {}
    cap = row.overrides.get("max_train_clips_per_section")
    if cap is not None and part.get("train_clips_per_section") is not None and part["train_clips_per_section"] < cap:
        notes.append(f"the set holds fewer than {cap} clips per section: no reduction")
    if "embedding" in det:
        line["emb_section_acc"] = det["embedding"]["accuracy"]
        notes.append(f"closest sections in the embedding {det['embedding']['nearest']} "
                     f"(separation {det['embedding']['separation']:.2f})")
    if isinstance(det.get("params"), dict) and det["params"].get("nearest"):
        nr = det["params"]["nearest"]
        diffs = ", ".join(f"{k} {100 * v:.1f} %" for k, v in nr["differing"].items())
        notes.append(f"closest sections in the factory's parameters {nr['pair']} ({diffs})")
    if "skipped_candidates" in det:
        notes.append(f"held-out clips per section {sorted(set(det['heldout_clips_per_section'].values()))}; "
                     f"skipped {', '.join(det['skipped_candidates']) or 'none'}")
    if "not_computed" in det:
        notes.append(det["not_computed"])
    if "reused" in det:
        notes.append(det["reused"])
    line["detail"] = "; ".join(notes)
    return line


# --------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------


def _order(records: list[dict]) -> list[dict]:
    rank = {n: i for i, n in enumerate(ROWS)}
    mrank = {m: i for i, m in enumerate(MACHINE_TYPES)}
    return sorted(records, key=lambda r: (rank.get(r["row"], len(rank)), mrank.get(r["machine"], len(mrank)),
                                          r["machine"]))


def write_table(out: Path, records: list[dict], provenance: dict) -> None:
    """Write ``controlled.csv`` and ``controlled.json`` (atomically) from the records."""
    import pandas as pd

    records = _order(records)
    df = pd.DataFrame([r["line"] for r in records], columns=list(COLUMNS))
    csv_text = df.to_csv(index=False, float_format="%.6g")
    atomic_write_text(out / CSV_NAME, csv_text)
    atomic_write_json(out / JSON_NAME, {"csv_sha256": hashlib.sha256(csv_text.encode("utf-8")).hexdigest(),
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "columns": list(COLUMNS),
        "rows_defined": {n: {"change": r.change, "kind": r.kind, "epochs": r.epochs, "lam": r.lam,
                             "overrides": dict(r.overrides), "variant": r.variant} for n, r in ROWS.items()},
        "selection_rule": "inside each row the experiment's rule: kind and p (and lambda where it has a grid) "
                          "chosen on sections 00-02 only; no setting is chosen from this table",
        "records": records, "provenance": provenance})


def load_controlled(out: str | Path) -> dict:
    """Read and check ``OUT/controlled.{csv,json}``: ``table`` (DataFrame), ``records``, ``provenance``.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: another schema version, other columns, or the CSV and JSON disagree (in
            length, or the CSV is not the one the JSON was written with).
    """
    import pandas as pd

    out = Path(out)
    js_path, csv_path = out / JSON_NAME, out / CSV_NAME
    for p in (js_path, csv_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} does not exist; run `minasd controlled --out {out}` first")
    js = json.loads(js_path.read_text())
    if js.get("schema") != SCHEMA or js.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{js_path} has schema {js.get('schema')!r} v{js.get('schema_version')}; this minasd reads "
                         f"{SCHEMA!r} v{SCHEMA_VERSION}")
    if "csv_sha256" in js and sha256_file(csv_path) != js["csv_sha256"]:  # absent in tables of earlier minasd
        raise ValueError(f"{csv_path} is not the table {js_path} was written with: the pair was left half "
                         f"rewritten (an interrupted run?); run `minasd controlled --out {out}` again")
    df = pd.read_csv(csv_path)
    if tuple(df.columns) != COLUMNS:
        raise ValueError(f"{csv_path} has columns {list(df.columns)}; the schema says {list(COLUMNS)}")
    if len(df) != len(js["records"]):
        raise ValueError(f"{csv_path} has {len(df)} lines, {js_path} {len(js['records'])} records")
    return {"table": df, "records": js["records"], "provenance": js.get("provenance", {})}


def load_controlled_tables(parent: str | Path) -> dict | None:
    """Every committed controlled table under ``parent`` (``parent`` itself or its sub-folders, e.g.
    ``results/controlled/<type>/``), concatenated: ``table`` (DataFrame with a ``source`` column naming
    the folder), ``provenance`` (folder name -> provenance); None when there is none.

    Raises:
        ValueError: a table is broken (:func:`load_controlled`), or two tables hold the same (row, type).
    """
    import pandas as pd

    parent = Path(parent)
    folders = [parent] if (parent / JSON_NAME).is_file() else sorted(d for d in parent.glob("*") if (d / JSON_NAME).is_file())
    if not folders:
        return None
    parts, prov = [], {}
    for d in folders:
        loaded = load_controlled(d)
        parts.append(loaded["table"].assign(source=d.name))
        prov[d.name] = loaded["provenance"]
    table = pd.concat(parts, ignore_index=True)
    dup = table[table.duplicated(["row", "machine"], keep=False)]
    if len(dup):
        raise ValueError(f"{parent}: (row, type) lines in more than one table: "
                         f"{sorted(set(zip(dup['row'], dup['machine'], dup['source'])))}")
    return {"table": table, "provenance": prov}


def controlled_label(prov: Mapping) -> str:
    """One caption line for a controlled table: data, profile, seed, lambda, machine.

    >>> controlled_label({"data": {"synthetic": True, "generator_version": "1.2", "size": "nope", "seed": 0},
    ...                   "profile": {"name": "cpu", "backbone": "mobilenetv3_small_050", "batch_size": 32},
    ...                   "epochs": 20, "seed": 0, "lam": 10.0, "machine": {"cpu_count": 2, "device": "cpu"}}
    ...                  ).split(") unless ")[1]
    'the row changes it; training seed 0 (one seed: differences of a few points are within seed spread); reference lambda 10; sections 03-05 reported, h chosen on 00-02; 2 CPU cores (cpu).'
    """
    from .summary_view import manifest_caption, profile_label

    machine = prov.get("machine") or {}
    run = profile_label(prov)
    return (f"{manifest_caption(prov.get('data') or {})}. {run[0].upper()}{run[1:]} unless the row changes it; training seed "
            f"{prov.get('seed')} (one seed: differences of a few points are within seed spread); reference lambda "
            f"{prov.get('lam'):g}; sections 03-05 reported, h chosen on 00-02; {machine.get('cpu_count')} CPU cores "
            f"({machine.get('device')}).")


def format_controlled(table) -> str:
    """The table as text: per type, one line per row (hmean in percent, accuracy as a fraction).

    Args:
        table: the DataFrame of ``controlled.csv`` (or :func:`load_controlled`'s dict).
    """
    import pandas as pd

    df = table["table"] if isinstance(table, dict) else pd.DataFrame(table)
    cols = {"row": "row", "method_dev_hmean": "dev", "baseline_dev_hmean": "dev base", "diff_dev_hmean": "dev diff",
            "method_eval_hmean": "eval", "baseline_eval_hmean": "eval base", "diff_eval_hmean": "eval diff",
            "method_eval_auc_subtle": "subtle", "method_eval_auc_gross": "gross", "val_section_acc": "sec acc",
            "kind": "h", "p": "p", "wall_s": "wall s"}
    lines = ["controlled experiments: hmean of AUC and pAUC (%) over sections 00-02 (dev) and 03-05 (eval); "
             "method minus baseline; nothing here is a selection"]
    for m in [t for t in MACHINE_TYPES if t in set(df["machine"])] + sorted(set(df["machine"]) - set(MACHINE_TYPES)):
        part = df[df["machine"] == m][list(cols)].copy()
        part["p"] = part["p"].map(lambda v: "-" if pd.isna(v) else str(int(v)))
        part = part.rename(columns=cols)
        lines.append(f"{m}:")
        lines.append(part.to_string(index=False, float_format=lambda v: f"{v:.3g}" if abs(v) < 1 else f"{v:.1f}",
                                    na_rep="-"))
        for r in df[(df["machine"] == m) & df["detail"].fillna("").astype(str).str.len().gt(0)].itertuples():
            lines.append(f"  {r.row}: {r.detail}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------


def _command_line(args: argparse.Namespace) -> str:
    rel = os.path.relpath  # OUT names no machine's folders: paths relative to the working directory
    return command_line("controlled", [
        ("--data", rel(args.data)), ("--work", rel(args.work)), ("--out", rel(args.out)), ("--profile", args.profile),
        ("--lam", f"{args.lam:g}"), ("--seed", args.seed), ("--rows", args.rows or None),
        ("--machine-types", args.machine_types or None), ("--epochs", args.epochs or None),
        ("--reuse-runs", [_shown_path(Path(d).resolve()) for d in args.reuse_runs] if args.reuse_runs else None)])


def _machine_types(root: Path, wanted: Sequence[str] | None) -> list[str]:
    """``--machine-types`` (each must have training clips under ``root``), or every type present, in
    :data:`minasd.config.MACHINE_TYPES` order."""
    from ..data import index, protocol_clips

    present = sorted(set(protocol_clips(index(root), "train")["machine"]))
    types = wanted or [m for m in MACHINE_TYPES if m in present] + sorted(set(present) - set(MACHINE_TYPES))
    missing = [m for m in types if m not in present]
    if missing:
        raise ValueError(f"no training clips of {missing} under {root}; found {present}")
    return types


def _earlier_table(out: Path) -> tuple[dict, dict]:
    """The lines ((row, type) -> record) and the provenance of an earlier ``OUT/controlled.json``;
    none when there is none or it has another schema version."""
    old = json.loads((out / JSON_NAME).read_text()) if (out / JSON_NAME).is_file() else {}
    if old and old.get("schema_version") != SCHEMA_VERSION:
        print(f"[controlled] {out / JSON_NAME} has schema v{old.get('schema_version')}: every line is recomputed")
        old = {}
    return {(r["row"], r["machine"]): r for r in old.get("records", [])}, old.get("provenance", {})


def _rows_waiting_for_reference(lam: float) -> set[str]:
    """Rows that wait for the reference row of their type: they need its model, or copy its run (a
    variant other than proposed, such as no_mixup, needs a proposed run; a lambda row at ``--lam``)."""
    return set(NEEDS_REFERENCE) | {n for n, r in ROWS.items() if r.kind == "train" and (
        r.variant != "proposed" or (r.lam is not None and float(r.lam) == lam))}


def _update_provenance(prov: dict, records: Mapping, args: argparse.Namespace, ctx: Context, profile,
                       runner: JobRunner) -> dict:
    """``prov`` updated for the table of ``records`` (every key but ``invocations``)."""
    from ..provenance import data_manifest

    root = Path(args.data)
    wall = {}
    for r in records.values():
        wall[r["row"]] = round(wall.get(r["row"], 0.0) + float(r["line"].get("wall_s") or 0.0), 1)
    prov.update({
        "command": _command_line(args), "data": data_manifest(root), "data_root": os.path.relpath(root),
        "profile": profile.to_dict(), "epochs": ctx.epochs, "lam": ctx.lam, "seed": ctx.seed,
        "machine_types": sorted({r["machine"] for r in records.values()}),
        **run_provenance(runner, args.device),  # git_commit, machine, parallel
        "wall_s_per_row": wall,
        "shared_baseline": f"{BASELINE_DIR}/ under --work (variants ['{BASELINE_VARIANT}']: the GMM on log-mel "
                           "mean/std)",
        "updated_at": now()})
    return prov


def run_controlled(args: argparse.Namespace) -> int:
    """Run ``minasd controlled`` (module docstring) and print :func:`format_controlled`."""
    from ..profiles import get_profile
    from ..provenance import find_synth_manifest
    from ..synth import read_labels

    t_start = time.perf_counter()
    rows = parse_rows(args.rows)
    profile = get_profile(args.profile)
    root, work, out = Path(args.data), Path(args.work), Path(args.out)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist (pass --data)")
    types = _machine_types(root, args.machine_types)
    runner = JobRunner.plan(args.jobs, args.device, work / "logs")
    ctx = Context(root=root.resolve(), work=work.resolve(), profile=profile.name,
                  epochs=profile.settings(epochs=args.epochs)["epochs"],
                  lam=float(args.lam), seed=args.seed, device=args.device, progress=not args.quiet,
                  reuse=tuple(Path(d).resolve() for d in (args.reuse_runs or ())))
    for d in ctx.reuse:
        if not (d / "runs").is_dir():
            raise FileNotFoundError(f"--reuse-runs {d}: not an experiment folder (no runs/ in it)")
    labels = read_labels(root) if find_synth_manifest(root) is not None else None

    records, prov = _earlier_table(out)
    sigs = {n: signature(ctx, ROWS[n]) for n in rows}
    todo = [(n, m) for n in rows for m in types
            if (n, m) not in records or records[(n, m)].get("signature") != sigs[n]]
    for n in rows:
        for m in types:
            if (n, m) not in todo:
                print(f"[controlled] {n} {m}: up to date in {out / JSON_NAME}, skipped")

    # tasks: the shared baseline of each type with work to do, then the rows; a row that needs the
    # reference's model (or reuses its run: no_mixup) waits for the reference of its type
    tasks = [("baseline", None, m) for m in types if any(t[1] == m for t in todo)]
    tasks += [("row", n, m) for n, m in todo]
    waits_for_ref = _rows_waiting_for_reference(ctx.lam)
    bases: dict[str, dict] = {}
    parts: dict[tuple[str, str], dict] = {}
    print(f"[controlled] {len(todo)} (row, type) lines to compute: {todo}; {runner.jobs} job(s) at a time"
          f"{runner.note()}", flush=True)

    def waits(task: tuple, queued: list) -> bool:
        kind, n, m = task
        return kind == "row" and n in waits_for_ref and n != REFERENCE and ("row", REFERENCE, m) in queued

    def submit(pool, task: tuple):
        kind, n, m = task
        log = runner.log(f"{n or 'baseline'}_{m}")
        print(f"[controlled] {n or 'baseline'} {m}: started" + (f" (log {log})" if log else ""), flush=True)
        return pool.submit(_run_task, kind, ctx, n, m, log)

    def keep(task: tuple, result: dict) -> None:
        kind, n, m = task
        if kind == "baseline":
            bases[m] = result
        else:
            parts[(n, m)] = result

    def flush() -> None:
        """Write every line whose method part and baseline are both in."""
        for (n, m) in list(parts):
            if m in bases:
                part = parts.pop((n, m))
                line = assemble(ROWS[n], m, part, bases[m], labels, ctx.seed)
                records[(n, m)] = {"row": n, "machine": m, "signature": sigs[n], "line": line,
                                   "selected": part.get("selected"), "training": part.get("training"),
                                   "run": part.get("run"), "detail": part.get("detail"), "finished_at": now()}
                write_table(out, list(records.values()), _update_provenance(prov, records, args, ctx, profile, runner))
                print(f"[controlled] {n} {m}: eval hmean {line['method_eval_hmean']} vs baseline "
                      f"{line['baseline_eval_hmean']}; {line['wall_s']} s; wrote {out / CSV_NAME}", flush=True)

    runner.run(tasks, submit, keep, waits, after_round=flush)
    prov = _update_provenance(prov, records, args, ctx, profile, runner)
    prov.setdefault("invocations", []).append({"wall_s": round(time.perf_counter() - t_start, 1), "rows": rows,
                                               "machine_types": types, "computed": [list(t) for t in todo],
                                               "finished_at": now()})
    write_table(out, list(records.values()), prov)
    print(format_controlled(load_controlled(out)))
    return 0


def add_controlled_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``minasd controlled``."""
    parser.add_argument("--data", required=True, type=Path, help="DCASE-style data root (e.g. the synthetic "
                        "protocol set made by `minasd results` under its --work)")
    parser.add_argument("--work", required=True, type=Path,
                        help="experiment folders of the rows and the shared baseline (not committed)")
    parser.add_argument("--out", required=True, type=Path, help="controlled.csv and controlled.json (committed)")
    parser.add_argument("--machine-types", nargs="+", default=None, help="types (default: all present)")
    parser.add_argument("--rows", nargs="+", default=None,
                        help=f"rows to compute (default all): {', '.join(ROWS)}")
    parser.add_argument("--lam", type=float, default=10.0,
                        help="lambda of the reference (default 10: the seed-0 choice on sections 00-02 for fan; "
                             "it must come from a choice on 00-02)")
    parser.add_argument("--profile", default="cpu", help="training profile of the reference (default cpu)")
    parser.add_argument("--reuse-runs", nargs="+", type=Path, default=None, metavar="DIR",
                        help="experiment folders (e.g. a seed folder of `minasd results --work`) whose finished "
                             "runs are copied instead of retrained when their settings are the row's")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the profile's epochs (quick runs; the epochs_* rows keep theirs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=None,
                        help="tasks at once, the cores shared among them (default: 2 on a CPU with 2+ cores, "
                             "1 on a GPU)")
    parser.add_argument("--quiet", action="store_true")


__all__ = ["ROWS", "RowSpec", "COLUMNS", "parse_rows", "load_controlled_tables", "controlled_label", "assemble", "whole_clip_part", "section_distance_part",
           "section_param_distance", "embedding_section_accuracy", "baseline_on_clips", "load_controlled",
           "format_controlled", "add_controlled_arguments", "run_controlled"]
