"""A simple, well-known non-deep baseline: per-section Gaussian mixture on log-mel statistics
(Book: chapter 1).

Each clip becomes one vector, the mean and the standard deviation over time of its
log-mel frames (the paper's feature settings, :class:`minasd.features.LogMel`:
2 x 224 = 448 numbers).  For every section a Gaussian mixture with diagonal covariances
is fitted on that section's normal training clips; a test clip's anomaly score is its
negative log-likelihood under its own section's mixture (higher = more anomalous).  AUC and
pAUC (p = 0.1) per section come from :mod:`minasd.metrics`.

The baseline is here to show that the synthetic factory is not trivially easy: it has no
outlier exposure, no segments and no learned features, so whatever it already separates
is "easy", and the method must do better on the rest.  No amplitude normalisation is
applied (a clip's gain moves its whole mean log-mel; the mixture has to live with that,
as a baseline on raw recordings would).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .config import FEATURES, SECTIONS


@dataclass(frozen=True)
class BaselineConfig:
    """Settings of the Gaussian-mixture baseline.

    Attributes:
        n_components: mixture components per section (fewer if a section has fewer clips).
        covariance_type: scikit-learn covariance type; "diag" keeps 448-d fits stable on
            few clips.
        reg_covar: variance floor added to each diagonal entry (log-mel units squared).
        seed: random state of the mixture fit.
    """

    n_components: int = 2
    covariance_type: str = "diag"
    reg_covar: float = 1e-3
    seed: int = 0


def wave_features(waves: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Mean and std over time of the log-mel frames of each waveform.

    Args:
        waves: float array (B, samples) at 16 kHz (equal lengths).
        batch_size: clips per LogMel call.

    Returns:
        float32 array (B, 2 * n_mels) = (B, 448): the 224 means, then the 224 stds.

    Book: chapter 1.
    """
    import torch

    from .features import LogMel

    waves = np.asarray(waves, dtype=np.float32)
    if waves.ndim == 1:
        waves = waves[None]
    mel = LogMel()
    out = []
    with torch.no_grad():
        for i in range(0, waves.shape[0], batch_size):
            lm = mel(torch.from_numpy(waves[i:i + batch_size]))  # (b, 224, frames)
            out.append(torch.cat([lm.mean(-1), lm.std(-1)], dim=1).numpy())
    return np.concatenate(out, axis=0).astype(np.float32)


def _features_of_paths(paths: Sequence[str]) -> np.ndarray:
    import torch

    from .data import load_audio

    # one thread per worker process; restored afterwards, because with workers=1 this
    # runs in the caller's process and must not change its thread count
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        feats = [wave_features(load_audio(p)[None])[0] for p in paths]
    finally:
        torch.set_num_threads(before)
    return np.stack(feats) if feats else np.zeros((0, 2 * FEATURES.n_mels), np.float32)


def clip_features(paths: Sequence[str], workers: int | None = None, progress: bool = True) -> np.ndarray:
    """Features (:func:`wave_features`) of audio files, shape (len(paths), 448), float32.

    Args:
        paths: audio files (clips of any length >= 2 s).
        workers: processes (default: all CPU cores; 1 = in this process).
        progress: show a tqdm progress bar.

    Book: chapter 1.
    """
    from minasd.progress import tqdm

    paths = [str(p) for p in paths]
    chunk = 32
    chunks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(chunks)))
    bar = tqdm(total=len(paths), desc="baseline features", unit="clip", disable=not progress)
    parts = []
    if n_workers == 1:
        for c in chunks:
            parts.append(_features_of_paths(c))
            bar.update(len(c))
    else:
        import multiprocessing as mp

        ctx = mp.get_context("fork") if hasattr(os, "fork") else mp.get_context()
        with ctx.Pool(n_workers) as pool:
            for c, f in zip(chunks, pool.imap(_features_of_paths, chunks)):
                parts.append(f)
                bar.update(len(c))
    bar.close()
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, 2 * FEATURES.n_mels), np.float32)


def fit_section(train_features: np.ndarray, cfg: BaselineConfig = BaselineConfig()):
    """Fit one section's Gaussian mixture on its training features (N, D); returns the model.

    Book: chapter 1.
    """
    from sklearn.mixture import GaussianMixture

    x = np.asarray(train_features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"fit_section needs at least 2 training clips as (N, D), got shape {x.shape}")
    k = max(1, min(cfg.n_components, x.shape[0] // 2))
    gmm = GaussianMixture(n_components=k, covariance_type=cfg.covariance_type, reg_covar=cfg.reg_covar,
                          random_state=cfg.seed)
    return gmm.fit(x)


def anomaly_scores(model, features: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of each feature row under ``model``, shape (N,); higher = more anomalous."""
    return -model.score_samples(np.asarray(features, dtype=np.float64))


def evaluate_features(df: pd.DataFrame, feats: np.ndarray, cfg: BaselineConfig = BaselineConfig(),
                      clip_scores: list | None = None) -> pd.DataFrame:
    """Fit per section on the train rows of ``df`` and score its labelled test rows.

    Args:
        df: rows with ``machine``, ``section``, ``split`` ("train"/"test") and ``label``
            (0/1; test rows without a label are ignored), aligned with ``feats``.
        feats: (len(df), D) features.
        cfg: mixture settings.
        clip_scores: if a list, one dict per scored test clip is appended to it
            (``machine, section, clip`` (file name), ``label, score``), for analyses
            per clip (bootstrap, anomaly kinds).

    Returns:
        DataFrame, one row per (machine, section) that has train and labelled test clips:
        machine, section, auc, pauc, n_train, n_test_normal, n_test_anomaly.

    Book: chapter 1.
    """
    from .metrics import auc_pauc

    df = df.reset_index(drop=True)
    rows = []
    for (machine, section), part in df.groupby(["machine", "section"], sort=False):
        tr = part.index[part["split"] == "train"]
        te = part[(part["split"] == "test") & part["label"].notna()]
        if len(tr) < 2 or te.empty or te["label"].nunique() < 2:
            continue
        gmm = fit_section(feats[tr], cfg)
        s = anomaly_scores(gmm, feats[te.index])
        y = te["label"].astype(int).to_numpy()
        if clip_scores is not None:
            clip_scores += [{"machine": machine, "section": int(section), "clip": os.path.basename(p), "label": int(lab),
                             "score": float(v)} for p, lab, v in zip(te["path"], y, s)]
        auc, pauc = auc_pauc(y, s, section=f"{machine} section {int(section):02d}")
        rows.append({"machine": machine, "section": int(section), "auc": auc, "pauc": pauc, "n_train": len(tr),
                     "n_test_normal": int((y == 0).sum()), "n_test_anomaly": int((y == 1).sum())})
    return pd.DataFrame(rows)


def run_baseline(root: str | Path, machine_types: Sequence[str] | None = None, sections: Sequence[int] = SECTIONS,
                 cfg: BaselineConfig = BaselineConfig(), workers: int | None = None,
                 progress: bool = True, clip_scores: list | None = None) -> pd.DataFrame:
    """Run the baseline on a DCASE-layout data root (real or synthetic).

    Indexes ``root`` with :func:`minasd.data.index` (ground truth merged), chooses the
    train and test clips of the chosen types and sections with
    :func:`minasd.data.protocol_clips` (source domain only, the rule of every stage),
    computes their features and evaluates each section.

    Returns:
        The per-section DataFrame of :func:`evaluate_features`; pass it to
        :func:`minasd.metrics.section_table` for harmonic means.

    Book: chapter 1.
    """
    from .data import protocol_frame

    # the protocol's one clip rule (source domain only), in path order: the order the
    # committed baseline tables were computed in (the mixture fit depends on it)
    df = protocol_frame(root, machine_types, sections)
    feats = clip_features(df["path"].tolist(), workers=workers, progress=progress)
    return evaluate_features(df, feats, cfg, clip_scores=clip_scores)
