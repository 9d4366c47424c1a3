"""Tests of the Gaussian-mixture baseline (minasd.baseline), CPU only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from minasd import baseline, synth
from minasd.config import FEATURES, SECTIONS


def test_wave_features_shape_and_meaning():
    rng = np.random.default_rng(0)
    quiet = 0.01 * rng.standard_normal((2, 32000)).astype(np.float32)
    f = baseline.wave_features(np.concatenate([quiet, 10 * quiet]))
    assert f.shape == (4, 2 * FEATURES.n_mels) and f.dtype == np.float32
    # 20 dB more gain lifts every mean log-mel bin by log(100) and leaves the stds alone
    n = FEATURES.n_mels
    assert np.allclose(f[2:, :n] - f[:2, :n], np.log(100.0), atol=1e-3)
    assert np.allclose(f[2:, n:], f[:2, n:], atol=1e-3)


def test_gross_toy_case_scores_anomalies_higher():
    """Features of clearly shifted clips get higher scores than normal ones."""
    rng = np.random.default_rng(1)
    d = 20
    train = rng.standard_normal((60, d))
    test = np.concatenate([rng.standard_normal((20, d)), rng.standard_normal((20, d)) + 3.0])
    df = pd.DataFrame({"machine": "fan", "section": 0, "split": ["train"] * 60 + ["test"] * 40,
                       "label": pd.array([0] * 80 + [1] * 20, dtype="Int64")})
    res = baseline.evaluate_features(df, np.concatenate([train, test]))
    assert len(res) == 1 and res.auc[0] > 0.99 and res.pauc[0] > 0.95


def test_audio_gross_anomaly_detected():
    """A stuck valve (continuous hiss, no closing clicks) is far from normal valve clips."""
    train = [synth.render_clip("valve", 1, seed=0, seconds=2.5, split="train", index=i)[0] for i in range(10)]
    normal = [synth.render_clip("valve", 1, seed=0, seconds=2.5, split="test_normal", index=i)[0] for i in range(4)]
    stuck = [synth.render_clip("valve", 1, "stuck", 1.0, seed=0, seconds=2.5, split="test_anomaly", index=i)[0]
             for i in range(4)]
    f = baseline.wave_features(np.stack(train + normal + stuck))
    gmm = baseline.fit_section(f[:10])
    s = baseline.anomaly_scores(gmm, f[10:])
    assert s[4:].min() > s[:4].max()


def test_fit_section_needs_two_clips():
    with pytest.raises(ValueError, match="at least 2"):
        baseline.fit_section(np.zeros((1, 5)))


def test_run_baseline_on_tiny(tmp_path):
    root = synth.make_dataset(tmp_path / "tiny", "tiny", seed=0, machine_types=["pump", "ToyTrain"], progress=False)
    res = baseline.run_baseline(root, workers=1, progress=False)
    assert len(res) == 2 * len(SECTIONS)  # eval sections included: labels come from the ground truth
    assert set(res.section) == set(SECTIONS)
    assert res.auc.between(0, 1).all() and res.pauc.between(0, 1).all()
    assert (res.n_train == synth.SIZES["tiny"].n_train).all()
    assert (res.n_test_anomaly == synth.SIZES["tiny"].n_test_anomaly).all()
