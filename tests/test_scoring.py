"""Tests of minasd.scoring: aggregation on hand-computed examples, "w/o h", embedding extraction."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from minasd.config import N_SEGMENTS, SAMPLE_RATE, SEGMENT_SECONDS
from minasd.data import NormStats, segments
from minasd.features import LogMel
from minasd.inlier import fit_inlier
from minasd.scoring import aggregate, default_aggregation, extract_embeddings, score_clips, wo_h_score

SEG = int(SEGMENT_SECONDS * SAMPLE_RATE)


def test_mean_above_median_hand_computed():
    # even S, no ties: scores above the median 4.5 are 5..9 -> mean 7
    assert aggregate(np.arange(10.0)) == pytest.approx(7.0)
    assert aggregate(np.array([1.0, 5.0, 2.0, 4.0])) == pytest.approx(4.5)
    # odd S: the top ceil(S/2) = 3 of 5, median included
    assert aggregate(np.array([10.0, 0.0, 3.0, 1.0, 2.0])) == pytest.approx((10 + 3 + 2) / 3)
    # ties counted by position: exactly ceil(S/2) values averaged
    assert aggregate(np.array([1.0, 1.0, 1.0, 3.0])) == pytest.approx(2.0)
    assert aggregate(np.array([7.0])) == 7.0
    # batched: one row per clip; the most anomalous half, not the most normal one
    s = np.array([[0.0, 1.0, 2.0, 3.0], [-4.0, -3.0, -2.0, -1.0]])
    np.testing.assert_allclose(aggregate(s), [2.5, -1.5])
    np.testing.assert_allclose(aggregate(s, "mean"), [1.5, -2.5])
    np.testing.assert_allclose(aggregate(s, "max"), [3.0, -1.0])
    np.testing.assert_allclose(aggregate(s, "median"), [1.5, -2.5])


def test_aggregate_errors_and_defaults():
    assert default_aggregation("gmm") == "mean_above_median" and default_aggregation("lof") == "mean"
    with pytest.raises(ValueError, match="unknown aggregation 'top'"):
        aggregate(np.ones(4), "top")
    with pytest.raises(ValueError, match="NaN"):
        aggregate(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="shape"):
        aggregate(np.ones((2, 3, 4)))


def test_wo_h_score():
    logits = np.zeros((2, 3, 4))  # N=2, S=3, K=4
    logits[0, :, 1] = [0.0, 2.0, -2.0]
    logits[1, :, 3] = 50.0  # confidently its own section -> score ~ 0
    expected0 = np.mean([0.5, 1 - 1 / (1 + math.exp(-2)), 1 - 1 / (1 + math.exp(2))])
    out = wo_h_score(logits, np.array([1, 3]))
    np.testing.assert_allclose(out, [expected0, 0.0], atol=1e-12)
    assert wo_h_score(logits[0], 1) == pytest.approx(expected0)
    assert wo_h_score(np.full((2, 3), -800.0), 0) == pytest.approx(1.0)  # no overflow
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        wo_h_score(logits, 4)


class Dummy(nn.Module):
    """Deterministic stand-in for ASDModel: log-mel (B, 224, T) -> (emb (B, 6), machine (B,), product (B, 3))."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(224, 6)
        torch.manual_seed(0)
        nn.init.normal_(self.proj.weight)
        self.drop = nn.Dropout(0.5)  # would make outputs random if eval() were not set

    def forward(self, x):
        e = self.drop(self.proj(x.mean(dim=2)))  # (B, 6)
        return e, e.square().sum(1), e[:, :3]


def _clips(n=3, seconds=3.0, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, int(seconds * SAMPLE_RATE))) * 0.1 + 0.02).astype(np.float32)


def test_extract_embeddings_matches_manual_and_is_batch_invariant():
    model, waves = Dummy().train(), _clips()
    stats = NormStats(mean=0.02, std=0.1, n_clips=3)
    emb, prod, mach = extract_embeddings(model, waves, stats, batch_size=64)
    assert emb.shape == (3, N_SEGMENTS, 6) and prod.shape == (3, N_SEGMENTS, 3) and mach.shape == (3, N_SEGMENTS)
    assert model.training  # mode restored
    # manual: normalise, segment, log-mel, model, for clip 1
    with torch.no_grad():
        segs = torch.from_numpy(segments(stats.apply(waves[1]), SEG, N_SEGMENTS))
        e, m, p = model.eval()(LogMel()(segs))
    np.testing.assert_allclose(emb[1], e.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mach[1], m.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(prod[1], p.numpy(), rtol=1e-4, atol=1e-4)
    for bs in (1, 25):
        np.testing.assert_allclose(extract_embeddings(model, waves, stats, batch_size=bs)[0], emb, rtol=1e-5, atol=1e-5)
    # torch input and pre-normalised waves with norm_stats=None give the same result
    pre = torch.from_numpy((waves - 0.02) / 0.1)
    np.testing.assert_allclose(extract_embeddings(model, pre, None)[0], emb, rtol=1e-4, atol=1e-4)


def test_extract_embeddings_clips_of_different_lengths_and_errors():
    model = Dummy()
    waves = [_clips(1, 2.5)[0], _clips(1, 10.0)[0]]
    emb, _, _ = extract_embeddings(model, waves, None)
    assert emb.shape == (2, N_SEGMENTS, 6) and np.isfinite(emb).all()
    with pytest.raises(ValueError, match="segments need"):
        extract_embeddings(model, [np.zeros(SEG // 2, np.float32)], None)
    with pytest.raises(ValueError, match="no clips"):
        extract_embeddings(model, [], None)


def test_score_clips_uses_paper_aggregator():
    rng = np.random.default_rng(0)
    h = fit_inlier("gmm", 2, rng.normal(size=(40, 10, 4)))
    q = rng.normal(size=(5, 10, 4))
    clip, seg = score_clips(h, q)
    np.testing.assert_allclose(clip, aggregate(seg, "mean_above_median"))
    np.testing.assert_allclose(score_clips(h, q, "mean")[0], seg.mean(1))


def test_extract_embeddings_with_asd_model():
    model_mod = pytest.importorskip("minasd.model")
    torch.manual_seed(0)
    model = model_mod.ASDModel(n_sections=3)
    waves = _clips(2, 2.2)
    emb, prod, mach = extract_embeddings(model, waves, None, batch_size=20)
    assert emb.shape == (2, N_SEGMENTS, 128) and prod.shape == (2, N_SEGMENTS, 3) and mach.shape == (2, N_SEGMENTS)
    emb1, _, _ = extract_embeddings(model, waves, None, batch_size=10)  # eval-mode BatchNorm: batch invariant
    np.testing.assert_allclose(emb1, emb, rtol=1e-3, atol=1e-4)
