"""Evaluate one trained run: fit h, score the test clips, AUC/pAUC, DCASE files (Book: chapter 5).

``evaluate_run(run_dir)`` (``minasd evaluate --run DIR``) does, for the run's
target machine type:

1. loads the model (``checkpoints/best.pt``), the amplitude statistics and
   ``split.json``;
2. chooses the clips by the protocol's one rule (:func:`minasd.data.protocol_clips`:
   source domain; names without a domain count as source): the held-out clips of
   ``split.json`` "val" (the 10 % the trainer kept out; target-domain clips a run
   made before the rule may list are dropped and reported) and the test clips of the
   run's sections (development sections 00-02 are labelled by their names,
   evaluation sections 03-05 are anonymised and labelled from the ground-truth CSVs
   by :func:`minasd.data.index`).  The target-domain test clips of the same
   sections are embedded too, for the DCASE files only: they never enter an AUC;
3. extracts the embeddings of the S = 10 segments of every clip, cached in
   ``<run>/eval/cache/`` under a key of everything they depend on
   (:func:`cache_key`: the checkpoint's bytes, the clip list, the data root, the
   normalisation statistics, the inference settings), so that a grid over p or
   aggregators never extracts twice and nothing stale is ever reused.  Labels are
   not cached: they come from the current index on every call, so ground truth
   added after a first evaluation is used by the next one;
4. fits one inlier model h per section on the held-out embeddings
   (:class:`minasd.inlier.InlierSet`; kind and p from Table I via ``run.json``
   unless given) and saves it to ``<run>/inlier/``;
5. scores the test clips: h + aggregation (the paper's score), the "w/o h"
   score of the product head and, for completeness, the machine-logit score
   ``mean over segments of 1 - sigmoid(g_affine)`` (the model's own "is this the
   target type" head: a low target probability means anomalous);
6. AUC and pAUC (p = 0.1) per section over the protocol's test clips, ROC points,
   the official DCASE files (both domains, the format the DCASE 2021 evaluator
   reads: :mod:`minasd.dcase_files`), a per-clip score table (protocol clips), the
   decision thresholds used by :class:`minasd.detector.Detector`, and
   ``results.json`` (written last: a run with ``eval/results.json`` is evaluated).

Decision threshold (the rule, stored in ``<run>/eval/detector.json``): per
section, the **90th percentile** (numpy's linear interpolation) of the clip
scores of that section's **held-out normal training clips**, the same 10 % that
h is fitted on.  Because scoring a clip with a model fitted on it is optimistic,
those held-out scores are computed **out of fold** when possible: the held-out
clips are split into min(5, n) folds (every n-th clip), h (same kind, p and
seed) is fitted on the other folds and scores the clips of the left-out fold.
When a section has a single held-out clip, or a fold's remaining segments are
too few for p, the in-sample scores of the final h are used instead, and the
method is recorded as ``"in_sample"``.  A clip is declared anomalous when its
score is strictly above the threshold; by construction about 10 % of normal
clips are flagged (a false-alarm budget, the spirit of the DCASE baselines'
90th-percentile rule, which those baselines apply to a fitted gamma
distribution of training scores).

Layout written into the run folder::

    <run>/inlier/manifest.json, section_XX.npz     the fitted h (no pickle)
    <run>/eval/detector.json                         kind, p, aggregation, thresholds, rule
    <run>/eval/dcase/anomaly_score_<type>_section_XX_<source|target>_test.csv, decision_result_...
    <run>/eval/scores.csv                            one row per protocol (source-domain) test clip
    <run>/eval/sections.csv                          one row per section
    <run>/eval/results.json                          everything + provenance (written last)
    <run>/eval/cache/heldout.npz, test.npz, target_test.npz   embeddings (N, S, D), head outputs, key
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .config import DEV_SECTIONS, EVAL_SECTIONS, FEATURES, N_SEGMENTS, SAMPLE_RATE, SEGMENT_SECONDS
from .dcase_files import write_dcase_files
from .io_utils import atomic_savez, atomic_write_json, atomic_write_text, git_commit, sha256_file
from .metrics import hmean_or_none
from .provenance import data_manifest, require_calibrated
from .runs import (DETECTOR_FILE, EVAL_DIR, EVAL_SCHEMA_VERSION, INLIER_DIR, RESULTS_FILE, check_run_dir, load_model,
                   resolve_device, run_paths)

#: Percentile of the held-out normal clip scores used as the decision threshold.
THRESHOLD_PERCENTILE = 90.0
#: Folds of the out-of-fold held-out scores behind the threshold.
THRESHOLD_FOLDS = 5
#: Score kinds written per section: the paper's (h), "w/o h", machine logit.
SCORE_KINDS: tuple[str, ...] = ("h", "wo_h", "machine")

THRESHOLD_RULE = (
    f"per section: the {THRESHOLD_PERCENTILE:g}th percentile (linear interpolation) of the clip scores of that "
    f"section's held-out normal training clips (split.json 'val'), scored out of fold ({THRESHOLD_FOLDS} folds, "
    "h refitted without the fold) when possible, else in sample; anomalous = score > threshold"
)


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------


def section_role(section: int) -> str:
    """``"dev"`` for sections 00-02 (validation: choose hyperparameters here), ``"eval"`` for 03-05
    (test: report here, never choose here), ``"other"`` otherwise."""
    s = int(section)
    return "dev" if s in DEV_SECTIONS else "eval" if s in EVAL_SECTIONS else "other"


# --------------------------------------------------------------------------------------
# embeddings (cached)
# --------------------------------------------------------------------------------------

#: Version of the embedding cache files (``<run>/eval/cache/*.npz``); bumped when their
#: layout or their key changes, so that older caches are recomputed rather than misread.
CACHE_VERSION = 2
#: Cache files: the held-out clips h is fitted on, the protocol's (source-domain) test
#: clips, and the other test clips of the run's sections (target domain; DCASE files only).
CACHE_FILES = {"heldout": "heldout.npz", "test": "test.npz", "target": "target_test.npz"}


def inference_settings() -> dict:
    """The inference settings that change embeddings; part of every cache key.

    Segments (S and T), the log-mel configuration and the model's memory layout.  The
    device is left out on purpose: CPU and GPU embeddings of one checkpoint differ by
    rounding only, and a run evaluated on a GPU should reuse its cache on a laptop.
    """
    return {"n_segments": N_SEGMENTS, "segment_samples": int(round(SEGMENT_SECONDS * SAMPLE_RATE)),
            "features": asdict(FEATURES), "memory_format": "channels_last", "autocast": None}


def cache_key(checkpoint_sha256: str, which: str, model_spec, data_root: Path, rel_paths: Sequence[str],
              norm) -> dict:
    """Everything the cached embeddings of a clip list depend on (Book: chapter 5).

    The checkpoint's bytes (SHA-256) and the model spec, the resolved data root, the clip
    list with each clip's size and modification time (a regenerated or replaced clip of
    the same name is noticed), the normalisation statistics (mean, std) and
    :func:`inference_settings`.  Labels are not part of the key and are never cached:
    they always come from the current index, so that ground truth added later is used.
    """
    clips = hashlib.sha256()
    for rel in rel_paths:
        st = (data_root / rel).stat()
        clips.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return {"cache_version": CACHE_VERSION, "checkpoint": {"which": which, "sha256": checkpoint_sha256},
            "model": model_spec, "data_root": str(Path(data_root).resolve()), "n_clips": len(rel_paths),
            "clips_sha256": clips.hexdigest(), "norm": {"mean": float(norm.mean), "std": float(norm.std)},
            "inference": inference_settings()}


def _key_text(key: dict) -> str:
    return json.dumps(key, sort_keys=True, default=str)


@dataclass
class ClipSet:
    """Embeddings and head outputs of a set of clips.

    Attributes:
        paths: (N,) paths relative to the data root (posix).
        sections: (N,) int section numbers.
        labels: (N,) int, 0 normal, 1 anomalous, -1 unknown (from the current index,
            never from the cache).
        emb: (N, S, D) float32 segment embeddings.
        prod: (N, S, K) float32 product logits.
        mach: (N, S) float32 machine logits.
    """

    paths: np.ndarray
    sections: np.ndarray
    labels: np.ndarray
    emb: np.ndarray
    prod: np.ndarray
    mach: np.ndarray

    def subset(self, mask) -> "ClipSet":
        return ClipSet(self.paths[mask], self.sections[mask], self.labels[mask], self.emb[mask], self.prod[mask],
                       self.mach[mask])

    def of_section(self, section: int) -> "ClipSet":
        return self.subset(self.sections == int(section))


@dataclass
class RunEmbeddings:
    """Held-out and test embeddings of one run (what :func:`load_embeddings` returns).

    ``test`` holds the protocol's test clips (source domain: what AUC tables use);
    ``target`` the other test clips of the run's sections (target domain), scored only
    for the DCASE result files, or None when not asked for.
    """

    run_dir: Path
    data_root: Path
    meta: dict  # run.json + checkpoint
    heldout: ClipSet
    test: ClipSet
    device: str
    extracted: bool  # False when every set came from the cache
    target: ClipSet | None = None
    checkpoint_sha256: str = ""
    heldout_excluded: list = field(default_factory=list)  # split.json "val" clips the protocol rule drops


def _save_cached(path: Path, rel_paths: Sequence[str], sections, arrays, key: dict) -> None:
    e, pr, ma = arrays
    atomic_savez(path, paths=np.asarray(rel_paths, dtype=str), sections=np.asarray(sections, dtype=int), emb=e,
                 prod=pr, mach=ma, key=np.array(_key_text(key)))


def _load_cached(path: Path, key: dict, rel_paths: Sequence[str]):
    """``(emb, prod, mach)`` from a cache file whose key equals ``key``, else None.

    A cache of another key is silently replaced (the normal case after retraining); an
    unreadable one is replaced with a warning naming it.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != _key_text(key) or list(z["paths"].astype(str)) != list(rel_paths):
                return None
            e, pr, ma = z["emb"], z["prod"], z["mach"]
        n = len(rel_paths)
        if e.ndim != 3 or (n, N_SEGMENTS) != e.shape[:2] or (n, N_SEGMENTS) != pr.shape[:2] \
                or (n, N_SEGMENTS) != ma.shape:
            raise ValueError(f"arrays of shapes {e.shape}, {pr.shape}, {ma.shape} do not fit {n} clips")
        return e, pr, ma
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
        warnings.warn(f"embedding cache {path} is unreadable ({type(err).__name__}: {err}); recomputing it",
                      UserWarning, stacklevel=3)
        return None


def _extract(model, norm, abs_paths: Sequence[str], device, progress: bool, desc: str):
    from .data import load_audio
    from .scoring import extract_embeddings

    # Chunks of clips bound the memory of decoded audio (600 clips of 10 s would be 384 MB at
    # once); on the CPU smaller chunks also let the bar move while a section is scored.
    cpu = str(device) == "cpu"
    chunk = 64 if cpu else 256
    parts = []
    with _tqdm(total=len(abs_paths), desc=f"embeddings of {desc}", disable=not progress) as bar:
        for i in range(0, len(abs_paths), chunk):
            waves = [load_audio(p) for p in abs_paths[i:i + chunk]]
            parts.append(extract_embeddings(model, waves, norm, device=device, batch_size=64 if cpu else 640,
                                            n_segments=N_SEGMENTS))
            bar.update(len(waves))
    return tuple(np.concatenate([p[j] for p in parts]) for j in range(3))


def _tqdm(it=None, **kw):
    from minasd.progress import tqdm

    kw.setdefault("unit", "clip")
    return tqdm(it, **kw)


def split_test_clips(df, machine_type: str, sections: Iterable[int]):
    """``(protocol, other)``: the test clips of one type and sections, split by the protocol rule.

    ``protocol`` = :func:`minasd.data.protocol_clips` (source domain, and clips whose name
    gives no domain): the clips every AUC of this package is computed on.  ``other`` = the
    remaining test clips of the same type and sections (the target domain): scored by the
    same model and inlier model for the DCASE result files, never in a table.  Both sorted
    by section and path, index 0..n-1.  Book: chapter 5.
    """
    from .data import protocol_clips

    secs = [int(s) for s in sections]
    proto = protocol_clips(df, "test", machines=[machine_type], sections=secs)
    every = df[(df["split"] == "test") & (df["machine"] == machine_type) & df["section"].isin(secs)]
    other = every[~every.index.isin(proto.index)]
    tidy = lambda d: d.sort_values(["section", "path"], kind="stable").reset_index(drop=True)  # noqa: E731
    return tidy(proto), tidy(other)


def _heldout_paths(root: Path, run_dir: Path) -> tuple[list[str], list[int], list[str]]:
    """split.json's held-out clips that the protocol rule keeps: ``(paths, sections, excluded)``.

    A run trained before the domain rule may list target-domain clips in "val": they are
    dropped here (and reported), so that h is fitted on the source domain only.
    """
    import pandas as pd

    from .data import parse_filename, protocol_clips

    split_file = run_paths(run_dir).split
    val = sorted(json.loads(split_file.read_text()).get("val", []))
    missing = [p for p in val if not (root / p).is_file()]
    if missing:
        raise FileNotFoundError(f"held-out clip {root / missing[0]} ({split_file}) does not exist; "
                                f"{len(missing)} of {len(val)} are missing: is {root} the run's data root?")
    infos = [parse_filename(root / p) for p in val]
    not_train = [p for p, i in zip(val, infos) if i.split != "train"]
    if not_train:
        raise ValueError(f"{split_file} lists {not_train[0]} as a held-out training clip, but it is a "
                         f"{parse_filename(root / not_train[0]).split} clip")
    vdf = pd.DataFrame({"path": val, "machine": [i.machine for i in infos], "section": [i.section for i in infos],
                        "split": [i.split for i in infos], "domain": [i.domain for i in infos]})
    kept = protocol_clips(vdf, "train")
    excluded = sorted(set(val) - set(kept["path"]))
    return kept["path"].tolist(), kept["section"].astype(int).tolist(), excluded


@dataclass
class _Embedder:
    """Embeds clip lists of one run's checkpoint, through the cache in ``<run>/eval/cache/``."""

    model: object
    norm: object  # the target type's NormStats
    device: object
    root: Path
    cache: Path
    checkpoint_sha256: str
    which: str
    model_spec: dict | None
    n_classes: int  # K: width of the product logits
    progress: bool
    extracted: bool = False  # True once a set was extracted rather than read from the cache

    def __call__(self, name: str, rel: list[str], sections: Sequence[int], labels, desc: str) -> ClipSet:
        """The :class:`ClipSet` of clips ``rel`` (relative to the root), cached as ``CACHE_FILES[name]``."""
        if not rel:
            return ClipSet(np.zeros(0, dtype=str), np.zeros(0, int), np.zeros(0, int),
                           np.zeros((0, N_SEGMENTS, 0), np.float32),
                           np.zeros((0, N_SEGMENTS, self.n_classes), np.float32), np.zeros((0, N_SEGMENTS), np.float32))
        key = cache_key(self.checkpoint_sha256, self.which, self.model_spec, self.root, rel, self.norm)
        arrays = _load_cached(self.cache / CACHE_FILES[name], key, rel)
        if arrays is None:
            arrays = _extract(self.model, self.norm, [str(self.root / p) for p in rel], self.device, self.progress,
                              desc)
            _save_cached(self.cache / CACHE_FILES[name], rel, sections, arrays, key)
            self.extracted = True
        return ClipSet(np.array(rel, dtype=str), np.asarray(sections, dtype=int), np.asarray(labels, dtype=int),
                       *arrays)

    def test_set(self, name: str, df, desc: str) -> ClipSet:
        """:meth:`__call__` on rows of :func:`split_test_clips` (absolute paths, labels from the index)."""
        rel = [Path(os.path.relpath(p, self.root)).as_posix() for p in df["path"]]
        labels = df["label"].astype("Int64").fillna(-1).astype(int).to_numpy()
        return self(name, rel, df["section"].to_numpy(int), labels, desc)


def _target_norm(run_dir: Path, machine: str):
    """The run's amplitude statistics of its target type (``norm_stats.json``)."""
    from .data import load_norm_stats

    norm_all = load_norm_stats(run_paths(run_dir).norm_stats)
    if machine not in norm_all:
        raise ValueError(f"{run_dir / 'norm_stats.json'} has no statistics of {machine!r} (it has {sorted(norm_all)})")
    return norm_all[machine]


def load_embeddings(run_dir: str | Path, data_root: str | Path | None = None, device: str = "auto",
                    which: str = "best", progress: bool = True, target: bool = False) -> RunEmbeddings:
    """Embeddings of a run's held-out clips and test clips, from the cache or extracted.

    Clips are chosen by the protocol rule (:func:`minasd.data.protocol_clips`): the
    held-out clips of ``split.json`` and the test clips of the run's sections, source
    domain.  Each set is cached in ``<run>/eval/cache/`` under :func:`cache_key`; labels
    are never cached but read from the current index on every call.

    Args:
        run_dir: a training run folder.
        data_root: the data root (default: the one in ``run.json``).
        device: "auto", "cpu", "cuda", ...
        which: checkpoint, "best" (default) or "last".
        progress: tqdm bars.
        target: also embed the other (target-domain) test clips of the run's sections,
            for the DCASE result files.

    Returns:
        :class:`RunEmbeddings`.  Book: chapter 5.
    """
    import torch

    from .data import index

    run_dir = check_run_dir(run_dir, which)
    dev = resolve_device(device)
    model, meta = load_model(run_dir, which=which, device=dev)
    # the layout the Detector uses too (faster on CPU with oneDNN; identical numbers up to ~1e-8)
    model = model.to(memory_format=torch.channels_last)
    root = Path(data_root if data_root is not None else meta["data_root"]).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist (pass --data to say where the data are)")
    require_calibrated(root)  # no proposed-method scores on a factory still being calibrated (issue 23)
    machine = meta["machine_type"]
    norm = _target_norm(run_dir, machine)
    embed = _Embedder(model, norm, dev, root, run_paths(run_dir).cache,
                      sha256_file(run_paths(run_dir).checkpoint(which)), which, meta.get("model"),
                      int(meta["model"]["n_sections"]), progress)

    val, val_sections, excluded = _heldout_paths(root, run_dir)
    if excluded:
        warnings.warn(f"{run_dir / 'split.json'} holds {len(excluded)} held-out clip(s) outside the source-domain "
                      f"protocol (e.g. {excluded[0]}); h is fitted without them", UserWarning, stacklevel=2)
    held = embed("heldout", val, val_sections, np.zeros(len(val), int), "held-out clips")

    proto, other = split_test_clips(index(root), machine, meta["sections"])
    if proto.empty:
        raise ValueError(f"no source-domain test clips of {machine} sections "
                         f"{[f'{s:02d}' for s in meta['sections']]} under {root}")
    test = embed.test_set("test", proto, "test clips")
    tgt = embed.test_set("target", other, "target-domain test clips") if target else None
    return RunEmbeddings(run_dir, root, meta, held, test, str(dev), embed.extracted, target=tgt,
                         checkpoint_sha256=embed.checkpoint_sha256, heldout_excluded=excluded)


# --------------------------------------------------------------------------------------
# inlier models, thresholds, scores
# --------------------------------------------------------------------------------------


def fit_sections(embs: RunEmbeddings, kind: str, p: int, sections: Iterable[int], seed: int = 0):
    """Fit h per section on the held-out embeddings; errors name the section that has no
    held-out clips or too few segments for p.  Returns an :class:`minasd.inlier.InlierSet`.
    Book: chapter 6."""
    from .inlier import InlierSet

    by_sec = {}
    for s in sections:
        part = embs.heldout.of_section(s)
        if len(part.paths) == 0:
            raise ValueError(f"{embs.meta['machine_type']} section {int(s):02d} has no held-out clips in "
                             f"{embs.run_dir / 'split.json'} ('val'); h cannot be fitted. Retrain with more "
                             "training clips in that section or a larger val_fraction")
        by_sec[int(s)] = part.emb
    return InlierSet.fit(kind, p, by_sec, seed=seed)


def heldout_threshold(kind: str, p: int, emb: np.ndarray, aggregation: str, final_model, seed: int = 0,
                      percentile: float = THRESHOLD_PERCENTILE, n_folds: int = THRESHOLD_FOLDS) -> dict:
    """The decision threshold of one section from its held-out normal clips (rule: module docstring).

    Args:
        kind, p, seed: the inlier model's settings (refitted per fold).
        emb: (N, S, D) held-out segment embeddings of the section.
        aggregation: the clip-score aggregator.
        final_model: the h fitted on all N clips (used for the in-sample fallback).

    Returns:
        dict ``value`` (threshold), ``method`` ("out_of_fold_<k>" or "in_sample"),
        ``n_clips``, ``percentile``, ``heldout_scores`` (N,) list.  Book: chapter 5.
    """
    from .inlier import fit_inlier
    from .scoring import aggregate

    n, s = emb.shape[:2]
    k = min(n_folds, n)
    need = p if kind == "gmm" else p + 1
    folds = [np.arange(n)[i::k] for i in range(k)] if k >= 2 else []
    scores = None
    if folds and all((n - len(f)) * s >= need for f in folds):
        scores = np.empty(n)
        for f in folds:
            rest = np.setdiff1d(np.arange(n), f)
            m = fit_inlier(kind, p, emb[rest], seed=seed)
            scores[f] = aggregate(m.score(emb[f]), aggregation)
        method = f"out_of_fold_{k}"
    else:
        scores = np.atleast_1d(aggregate(final_model.score(emb), aggregation))
        method = "in_sample"
    return {"value": float(np.percentile(scores, percentile)), "method": method, "n_clips": int(n),
            "percentile": float(percentile), "heldout_scores": scores.tolist()}


def machine_score(machine_logits) -> np.ndarray:
    """Anomaly score from the machine head: mean over segments of ``1 - sigmoid(logit)``.

    Args:
        machine_logits: (N, S) logits of g_affine (high = target machine type).

    Returns:
        (N,) scores in [0, 1].  Book: chapter 5.
    """
    from scipy.special import expit

    return expit(-np.asarray(machine_logits, dtype=np.float64)).mean(axis=1)


def section_scores(embs: RunEmbeddings, inlier_set, aggregation: str, sections: Iterable[int],
                   clips: ClipSet | None = None) -> dict:
    """Clip scores of every kind for the test clips of ``sections``.

    Args:
        clips: the clips to score (default ``embs.test``, the protocol's test clips;
            ``embs.target`` for the target-domain clips of the DCASE files).

    Returns:
        dict section -> {"clips": ClipSet, "h": (N,), "segments": (N, S), "wo_h": (N,), "machine": (N,)};
        sections without clips are left out.
    """
    from .scoring import aggregate, wo_h_score

    run_sections = [int(s) for s in embs.meta["sections"]]
    clips = embs.test if clips is None else clips
    out = {}
    for s in sections:
        cs = clips.of_section(s)
        if len(cs.paths) == 0:
            continue
        seg = inlier_set.model(s).score(cs.emb)
        out[int(s)] = {"clips": cs, "segments": seg, "h": np.asarray(aggregate(seg, aggregation)),
                       "wo_h": np.asarray(wo_h_score(cs.prod, run_sections.index(int(s)))),
                       "machine": machine_score(cs.mach)}
    return out


def _metrics(labels: np.ndarray, scores: np.ndarray, where: str) -> tuple[float | None, float | None]:
    from .metrics import auc_pauc

    known = labels >= 0
    y = labels[known]
    if y.size == 0 or len(np.unique(y)) < 2:
        return None, None
    return auc_pauc(y, scores[known], section=where)


def grid_scores(embs: RunEmbeddings, candidates: Iterable[tuple[str, int]], sections: Iterable[int] | None = None,
                aggregation: str | None = None, seed: int = 0, progress: bool = False) -> list[dict]:
    """AUC/pAUC per section for each (kind, p) candidate, from cached embeddings (no extraction).

    A candidate whose p does not fit a section's held-out segments is returned with
    ``skipped`` = the reason instead of numbers.

    Args:
        embs: from :func:`load_embeddings`.
        candidates: (kind, p) pairs, e.g. ``[("gmm", 1), ("gmm", 2), ("lof", 4)]``.
        sections: sections to score (default: all the run's sections with test clips).
        aggregation: aggregator (default: the paper's per kind).

    Returns:
        one dict per (candidate, section): kind, p, aggregation, section, role, auc, pauc, skipped.
        Book: chapter 5.
    """
    from .scoring import default_aggregation

    sections = [int(s) for s in (sections if sections is not None else embs.meta["sections"])]
    sections = [s for s in sections if (embs.test.sections == s).any()]
    rows = []
    for kind, p in _tqdm(list(candidates), desc="inlier grid", unit="model", disable=not progress):
        agg = aggregation or default_aggregation(kind)
        try:
            hset = fit_sections(embs, kind, int(p), sections, seed=seed)
        except ValueError as err:
            rows += [{"kind": kind, "p": int(p), "aggregation": agg, "section": s, "role": section_role(s),
                      "auc": None, "pauc": None, "skipped": str(err)} for s in sections]
            continue
        sc = section_scores(embs, hset, agg, sections)
        for s in sections:
            auc, pauc = _metrics(sc[s]["clips"].labels, sc[s]["h"], f"{embs.meta['machine_type']} section {s:02d}")
            rows.append({"kind": kind, "p": int(p), "aggregation": agg, "section": s, "role": section_role(s),
                         "auc": auc, "pauc": pauc, "skipped": None})
    return rows


# --------------------------------------------------------------------------------------
# evaluate_run
# --------------------------------------------------------------------------------------


def _evaluation_settings(run_dir: Path, inlier: str | None, p: int | None, aggregation: str | None,
                         sections: Iterable[int] | None) -> tuple[str, int, str, list[int], list[int]]:
    """``(kind, p, aggregation, run_sections, sections)``: the arguments, else Table I from ``run.json``; checked."""
    from .scoring import AGGREGATIONS, default_aggregation

    meta0 = json.loads(run_paths(run_dir).run_json.read_text())
    hp = meta0.get("hparams", {})
    kind = inlier or hp.get("inlier")
    p = int(p if p is not None else hp.get("p"))
    if kind not in ("gmm", "lof"):
        raise ValueError(f"inlier must be 'gmm' or 'lof', got {kind!r}")
    agg = aggregation or default_aggregation(kind)
    if agg not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {agg!r}")
    run_sections = [int(s) for s in meta0["sections"]]
    secs = run_sections if sections is None else [int(s) for s in sections]
    unknown = [s for s in secs if s not in run_sections]
    if unknown:
        raise ValueError(f"section(s) {[f'{s:02d}' for s in unknown]} are not sections of {run_dir} "
                         f"(it knows {[f'{s:02d}' for s in run_sections]})")
    return kind, p, agg, run_sections, secs


def _section_tables(machine: str, secs: list[int], sc: dict, sc_target: dict,
                    thresholds: dict) -> tuple[list[dict], list[dict], dict]:
    """``(rows, clip_rows, roc)``: one row per section (``sections.csv``) and per protocol test clip
    (``scores.csv``), and the ROC points of each score kind per section."""
    from .metrics import roc_points

    rows, clip_rows, roc = [], [], {k: {} for k in SCORE_KINDS}
    for s in secs:
        thr = thresholds[s]["value"]
        if s not in sc:
            continue
        r = sc[s]
        decisions = (r["h"] > thr).astype(int)
        labels = r["clips"].labels
        n_target = len(sc_target[s]["clips"].paths) if s in sc_target else 0
        row = {"machine": machine, "section": s, "role": section_role(s), "n_test": int(len(labels)),
               "n_normal": int((labels == 0).sum()), "n_anomaly": int((labels == 1).sum()),
               "n_unlabelled": int((labels < 0).sum()), "n_target_test": int(n_target),
               "n_heldout": thresholds[s]["n_clips"],
               "threshold": thr, "threshold_method": thresholds[s]["method"], "n_flagged": int(decisions.sum())}
        for k in SCORE_KINDS:
            auc, pauc = _metrics(labels, r[k], f"{machine} section {s:02d}")
            row[f"auc_{k}" if k != "h" else "auc"] = auc
            row[f"pauc_{k}" if k != "h" else "pauc"] = pauc
            if auc is not None:
                known = labels >= 0
                fpr, tpr = roc_points(labels[known], r[k][known])
                roc[k][f"{s:02d}"] = {"fpr": fpr.round(6).tolist(), "tpr": tpr.round(6).tolist()}
        rows.append(row)
        for i, path in enumerate(r["clips"].paths):
            clip_rows.append({"path": path, "section": s, "label": int(labels[i]), "score_h": float(r["h"][i]),
                              "score_wo_h": float(r["wo_h"][i]), "score_machine": float(r["machine"][i]),
                              "decision": int(decisions[i])})
    return rows, clip_rows, roc


def _summary_hmean(rows: list[dict]) -> dict:
    """Score kind -> role ("dev", "eval") -> harmonic mean of the AUCs and pAUCs of those sections."""
    summary = {}
    for k in SCORE_KINDS:
        ka, kp = ("auc", "pauc") if k == "h" else (f"auc_{k}", f"pauc_{k}")
        summary[k] = {role: hmean_or_none([x for r in rows if r["role"] == role for x in (r[ka], r[kp])])
                      for role in ("dev", "eval")}
    return summary


def _results_record(run_dir: Path, embs: RunEmbeddings, secs: list[int], h: dict, rows: list[dict], roc: dict,
                    dcase_files: list[str], t0: float) -> dict:
    """What ``eval/results.json`` holds (schema :data:`minasd.runs.EVAL_SCHEMA_VERSION`)."""
    from . import __version__

    meta = embs.meta
    return {
        "schema": "minasd.eval", "schema_version": EVAL_SCHEMA_VERSION, "run_dir": str(run_dir),
        "machine_type": meta["machine_type"], "sections_evaluated": secs,
        "inlier": h,
        "threshold_rule": THRESHOLD_RULE,
        "sections": rows,
        "summary_hmean": _summary_hmean(rows),
        "roc": roc,
        "files": {"dcase": "eval/dcase", "dcase_files": dcase_files, "scores": "eval/scores.csv",
                  "sections": "eval/sections.csv", "detector": f"eval/{DETECTOR_FILE}", "inlier": INLIER_DIR,
                  "cache": "eval/cache"},
        "provenance": {
            "minasd_version": __version__, "git_commit": git_commit(), "device": embs.device,
            "duration_s": round(time.perf_counter() - t0, 3), "embeddings_extracted": embs.extracted,
            "data_root": str(embs.data_root), "data": data_manifest(embs.data_root),
            "checkpoint": meta["checkpoint"], "checkpoint_sha256": embs.checkpoint_sha256,
            "heldout_excluded": embs.heldout_excluded, "epochs_trained": meta.get("epochs_done"),
            "epochs_planned": meta.get("hparams", {}).get("epochs"), "train_status": meta.get("status"),
            "train_config": meta.get("config"), "model": meta.get("model"), "train_git_commit": meta.get("git_commit"),
            "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }


def evaluate_run(run_dir: str | Path, data_root: str | Path | None = None, inlier: str | None = None,
                 p: int | None = None, aggregation: str | None = None, sections: Iterable[int] | None = None,
                 device: str = "auto", overwrite: bool = False, which: str = "best", seed: int = 0,
                 progress: bool = True) -> dict:
    """Fit h on the held-out clips, score the test clips, write every result file (module docstring).

    Args:
        run_dir: a training run folder (``minasd train``).
        data_root: data root (default: the run's, from ``run.json``).
        inlier: "gmm" or "lof" (default: Table I, ``run.json`` hparams).
        p: GMM components / LOF neighbours (default: Table I).
        aggregation: segment aggregator (default: GMM mean above median, LOF mean).
        sections: sections to fit and evaluate (default: all of the run's).
        device: "auto", "cpu", "cuda", ...
        overwrite: replace an existing ``eval/results.json`` (and everything beside it).
        which: checkpoint, "best" (the paper: smallest validation loss) or "last".
        seed: random state of the GMM fits.
        progress: tqdm bars and a line per written file.

    Returns:
        The results dict, as written to ``<run>/eval/results.json``.

    Raises:
        FileExistsError: the run is already evaluated and ``overwrite`` is False.
        FileNotFoundError: the run folder lacks a file (named, with the command that writes it).
        ValueError: a section without held-out clips, p too large for the held-out
            segments, an unknown section.  Book: chapter 5.
    """
    import pandas as pd

    t0 = time.perf_counter()
    run_dir = check_run_dir(run_dir, which)
    out = run_dir / EVAL_DIR
    if (out / RESULTS_FILE).exists() and not overwrite:
        raise FileExistsError(f"{out / RESULTS_FILE} exists: {run_dir} is already evaluated; pass overwrite=True "
                              "(--overwrite) to replace its results")
    given = inlier is not None or p is not None
    kind, p, agg, run_sections, secs = _evaluation_settings(run_dir, inlier, p, aggregation, sections)
    # source: who chose h ("argument": the caller, e.g. the experiment's selection on sections 00-02;
    # "table1": the run's Table I setting); table1: whether (kind, p) is Table I's, however chosen
    hp = json.loads(run_paths(run_dir).run_json.read_text()).get("hparams", {})
    h = {"kind": kind, "p": p, "aggregation": agg, "seed": seed, "source": "argument" if given else "table1",
         "table1": (kind, p) == (hp.get("inlier"), None if hp.get("p") is None else int(hp["p"]))}

    embs = load_embeddings(run_dir, data_root, device=device, which=which, progress=progress, target=True)
    machine = embs.meta["machine_type"]
    hset = fit_sections(embs, kind, p, secs, seed=seed)
    thresholds = {s: heldout_threshold(kind, p, embs.heldout.of_section(s).emb, agg, hset.model(s), seed=seed)
                  for s in secs}
    sc = section_scores(embs, hset, agg, secs)
    sc_target = section_scores(embs, hset, agg, secs, clips=embs.target)

    # ---- write: inlier set, detector config, DCASE files, tables; results.json last
    hset.save(run_dir, INLIER_DIR, overwrite=True)  # results.json absent or overwrite: replace leftovers
    detector = {"schema_version": EVAL_SCHEMA_VERSION, "machine_type": machine, "run_sections": run_sections,
                "sections": secs, "inlier": {"kind": kind, "p": p, "seed": seed}, "aggregation": agg,
                "checkpoint": embs.meta["checkpoint"], "threshold_rule": THRESHOLD_RULE,
                "thresholds": {f"{s:02d}": {k: v for k, v in thresholds[s].items()} for s in secs},
                "n_segments": N_SEGMENTS}
    atomic_write_json(out / DETECTOR_FILE, detector)
    dcase_files = write_dcase_files(out / "dcase", machine, embs.data_root,
                                    {s: [x for x in (sc.get(s), sc_target.get(s)) if x is not None] for s in secs},
                                    {s: thresholds[s]["value"] for s in secs})
    rows, clip_rows, roc = _section_tables(machine, secs, sc, sc_target, thresholds)
    atomic_write_text(out / "sections.csv", pd.DataFrame(rows).to_csv(index=False))
    atomic_write_text(out / "scores.csv", pd.DataFrame(clip_rows).to_csv(index=False))
    results = _results_record(run_dir, embs, secs, h, rows, roc, dcase_files, t0)
    atomic_write_json(out / RESULTS_FILE, results)
    if progress:
        print(f"[evaluate] {machine}: h = {kind} p={p} ({agg}); wrote {out / RESULTS_FILE}, "
              f"{out / 'sections.csv'}, {out / 'dcase'}/ ({len(dcase_files)} DCASE files), {run_dir / INLIER_DIR}/")
    return results


def load_eval_results(run_dir: str | Path) -> dict:
    """Read ``<run>/eval/results.json``; raises naming the file when absent or of another schema."""
    f = Path(run_dir) / EVAL_DIR / RESULTS_FILE
    if not f.is_file():
        raise FileNotFoundError(f"{f} does not exist; run `minasd evaluate --run {run_dir}` first")
    r = json.loads(f.read_text())
    if r.get("schema") != "minasd.eval" or r.get("schema_version") != EVAL_SCHEMA_VERSION:
        raise ValueError(f"{f} has schema {r.get('schema')!r} v{r.get('schema_version')}; this minasd reads "
                         f"minasd.eval v{EVAL_SCHEMA_VERSION}")
    return r
