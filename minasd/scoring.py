"""From clips to anomaly scores: embeddings of segments, aggregation, "w/o h" (book chapter 5).

A clip x is cut into S = 10 overlapping segments of T = 2.0 s (first at 0,
last ending at the clip's end; :func:`minasd.data.segments`); each segment
goes through log-mel and the encoder; the inlier model h scores each
segment embedding; an aggregator A turns the S segment scores into one clip
score (paper Eq. 4).  Higher always means more anomalous.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from scipy.special import expit
from minasd.progress import tqdm

from .config import N_SEGMENTS, SAMPLE_RATE, SEGMENT_SECONDS

AGGREGATIONS: tuple[str, ...] = ("mean_above_median", "mean", "max", "median")
#: The paper's aggregator for each inlier model (Sec. IV-A).
DEFAULT_AGGREGATION: dict[str, str] = {"gmm": "mean_above_median", "lof": "mean"}


def default_aggregation(kind: str) -> str:
    """The paper's aggregator for inlier model ``kind``: GMM -> mean above median, LOF -> mean.

    >>> default_aggregation("gmm")
    'mean_above_median'
    """
    try:
        return DEFAULT_AGGREGATION[kind]
    except KeyError:
        raise ValueError(f"unknown inlier kind {kind!r}; expected one of {tuple(DEFAULT_AGGREGATION)}") from None


def aggregate(scores, how: str = "mean_above_median") -> np.ndarray | float:
    """Aggregate segment scores into clip scores.

    ``"mean_above_median"`` is the mean of the most anomalous half: sort the S
    segment scores and average the largest ``ceil(S / 2)``.  For even S
    without ties this is exactly the mean of the scores strictly above the
    median; for odd S the median segment itself is included (S = 1 gives the
    score itself); tied values are counted by position, so exactly
    ``ceil(S / 2)`` values are always averaged, never more.

    Args:
        scores: (N, S) segment scores of N clips, or (S,) of one clip.
            Higher = more anomalous.
        how: ``"mean_above_median"``, ``"mean"``, ``"max"`` or ``"median"``.

    Returns:
        (N,) float64 clip scores, or a float for a (S,) input.  Book: chapter 5.

    >>> aggregate(np.array([1.0, 5.0, 2.0, 4.0]))
    4.5
    >>> aggregate(np.array([1.0, 5.0, 2.0]))  # odd S: top 2 of 3
    3.5
    """
    s = np.asarray(scores, dtype=np.float64)
    single = s.ndim == 1
    if single:
        s = s[None]
    if s.ndim != 2 or s.shape[1] == 0:
        raise ValueError(f"scores must have shape (N, S) or (S,) with S >= 1, got {np.shape(scores)}")
    if np.isnan(s).any():
        raise ValueError(f"scores contain {int(np.isnan(s).sum())} NaN values")
    if how == "mean_above_median":
        k = math.ceil(s.shape[1] / 2)
        out = np.sort(s, axis=1)[:, -k:].mean(axis=1)
    elif how == "mean":
        out = s.mean(axis=1)
    elif how == "max":
        out = s.max(axis=1)
    elif how == "median":
        out = np.median(s, axis=1)
    else:
        raise ValueError(f"unknown aggregation {how!r}; expected one of {AGGREGATIONS}")
    return float(out[0]) if single else out


def wo_h_score(product_logits, section_idx) -> np.ndarray | float:
    """The "w/o h" ablation score: mean over segments of ``1 - sigmoid(logit[k])``.

    k is the clip's own product class: the *index* of its section in the run's
    ``sections`` list (``run.json``), not the section number itself.

    Args:
        product_logits: (N, S, K) or (S, K) logits of g_product.
        section_idx: int, or (N,) ints in [0, K).

    Returns:
        (N,) float64 scores in [0, 1], or a float for a (S, K) input.  Book: chapter 5.

    >>> wo_h_score(np.zeros((10, 3)), 1)
    0.5
    """
    z = np.asarray(product_logits, dtype=np.float64)
    single = z.ndim == 2
    if single:
        z = z[None]
    if z.ndim != 3:
        raise ValueError(f"product_logits must have shape (N, S, K) or (S, K), got {np.shape(product_logits)}")
    n, _, k = z.shape
    idx = np.broadcast_to(np.asarray(section_idx), (n,)).astype(int)
    if idx.min(initial=0) < 0 or idx.max(initial=0) >= k:
        raise ValueError(f"section_idx must lie in [0, {k}) (index into the run's sections), "
                         f"got {np.unique(idx).tolist()}")
    own = z[np.arange(n), :, idx]  # (N, S)
    out = expit(-own).mean(axis=1)  # 1 - sigmoid(x) = sigmoid(-x), stable for large |x|
    return float(out[0]) if single else out


def _segment_clip(wave, norm_stats, seg_len: int, n_segments: int) -> np.ndarray:
    from .data import segments  # local: data.py needs soundfile, scoring must import without it

    if isinstance(wave, torch.Tensor):
        wave = wave.detach().cpu().numpy()
    w = np.asarray(wave, dtype=np.float32)
    if w.ndim != 1:
        raise ValueError(f"each clip must be a 1-D waveform, got shape {w.shape}")
    if norm_stats is not None:
        w = np.asarray(norm_stats.apply(w), dtype=np.float32)
    return np.asarray(segments(w, seg_len=seg_len, n_segments=n_segments), dtype=np.float32)  # (S, seg_len)


def extract_embeddings(model: torch.nn.Module, waves, norm_stats, device: str | torch.device = "cpu",
                       batch_size: int = 64, features: torch.nn.Module | None = None, amp_bf16: bool = False,
                       n_segments: int = N_SEGMENTS, seg_len: int = int(SEGMENT_SECONDS * SAMPLE_RATE),
                       progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings and head outputs of the S segments of every clip.

    Each clip is normalised with ``norm_stats`` (the target type's amplitude
    statistics), cut into ``n_segments`` segments of ``seg_len`` samples,
    turned into log-mel and passed through ``model`` in eval mode without
    gradients.  The model's train/eval mode is restored afterwards.

    Args:
        model: maps log-mel (B, 224, T) to (embedding (B, D), machine_logit (B,),
            product_logits (B, K)), like :class:`minasd.model.ASDModel`.
        waves: (N, samples) array/tensor, or a sequence of 1-D clips (lengths may differ).
        norm_stats: object with ``.apply(wave)`` (:class:`minasd.data.NormStats`),
            or None when the waves are already normalised.
        device: where features and model run.
        batch_size: segments per forward pass.
        features: waveform -> log-mel module; default :class:`minasd.features.LogMel`.
        amp_bf16: run the model under bfloat16 autocast (CUDA only; ignored on CPU).
        n_segments, seg_len: S and T in samples (config defaults: 10 x 2.0 s).
        progress: show a tqdm bar over batches.

    Returns:
        ``(embeddings (N, S, D), product_logits (N, S, K), machine_logits (N, S))``,
        float32 numpy arrays.  Book: chapter 5.
    """
    from .features import LogMel

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    clips: Sequence = list(waves) if not isinstance(waves, (np.ndarray, torch.Tensor)) else waves
    if isinstance(clips, (np.ndarray, torch.Tensor)) and clips.ndim != 2:
        raise ValueError(f"waves must be (N, samples) or a sequence of 1-D clips, got shape {tuple(clips.shape)}")
    n = len(clips)
    if n == 0:
        raise ValueError("no clips given to extract_embeddings")
    device = torch.device(device)
    feats = (features if features is not None else LogMel()).to(device)
    use_amp = amp_bf16 and device.type == "cuda"
    was_training = model.training
    model.eval()
    emb_out, prod_out, mach_out = [], [], []
    # Batches are made of whole clips, as many as fit in batch_size segments (at least one).
    clips_per_batch = max(1, batch_size // n_segments)
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, n, clips_per_batch), desc="embeddings", disable=not progress,
                              unit="batch"):
                segs = np.concatenate([_segment_clip(clips[i], norm_stats, seg_len, n_segments)
                                       for i in range(start, min(n, start + clips_per_batch))])
                x = feats(torch.from_numpy(segs).to(device))  # (B*S, 224, frames)
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                    emb, machine_logit, product_logits = model(x)
                emb_out.append(emb.float().cpu().numpy())
                mach_out.append(machine_logit.float().reshape(-1).cpu().numpy())
                prod_out.append(product_logits.float().cpu().numpy())
    finally:
        model.train(was_training)
    emb = np.concatenate(emb_out).reshape(n, n_segments, -1)
    prod = np.concatenate(prod_out).reshape(n, n_segments, -1)
    mach = np.concatenate(mach_out).reshape(n, n_segments)
    return emb, prod, mach


def score_clips(inlier, embeddings, how: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Clip scores of one section's clips with its inlier model.

    Args:
        inlier: a fitted :class:`minasd.inlier.InlierModel`.
        embeddings: (N, S, D).
        how: aggregator; default: the paper's for ``inlier.kind``.

    Returns:
        ``(clip_scores (N,), segment_scores (N, S))``.  Book: chapter 5.
    """
    seg = inlier.score(embeddings)
    if seg.ndim != 2:
        raise ValueError(f"embeddings must be (N, S, D), got shape {np.shape(embeddings)}")
    return aggregate(seg, how or default_aggregation(inlier.kind)), seg
