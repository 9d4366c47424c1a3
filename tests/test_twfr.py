"""Tests of TWFR-GMM (minasd.twfr), CPU only, seconds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from minasd import synth, twfr
from minasd.config import DEV_SECTIONS, SECTIONS, FeatureConfig
from minasd.features import mel_filterbank
from minasd.selection import select_on_dev

SMALL = twfr.TWFRConfig(r_grid=(0.0, 0.5, 1.0), k_grid=(1, 2))


def test_config_holds_the_authors_settings_and_the_named_ends():
    cfg = twfr.TWFRConfig()
    assert (cfg.n_fft, cfg.hop_length, cfg.n_mels, cfg.power, cfg.amin, cfg.clip_seconds) == (1024, 512, 128, 2.0,
                                                                                              1e-10, 10.0)
    assert len(cfg.r_grid) == 51 and cfg.r_grid[0] == 0.0 and cfg.r_grid[-1] == 1.0 and cfg.r_grid[1] == 0.02
    assert cfg.k_grid == (1, 2, 4, 8) and (cfg.covariance_type, cfg.reg_covar, cfg.tol) == ("full", 1e-6, 1e-6)
    assert twfr.SETTINGS["mean_gmm"].r_grid == (1.0,) and twfr.SETTINGS["max_gmm"].r_grid == (0.0,)
    assert twfr.SETTINGS["twfr_gmm"] == cfg
    with pytest.raises(ValueError, match="score"):
        twfr.TWFRConfig(score="nll")


def test_logmel_is_htk_unnormalised_power_in_db_of_the_first_10_s():
    sr = 16000
    t = np.arange(12 * sr) / sr
    wave = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    lm = twfr.twfr_logmel(wave)
    assert tuple(lm.shape) == (1, 128, 313)  # 12 s truncated to 10 s: 1 + 160000 // 512 frames
    # oracle: the package's own HTK bank (no normalisation) over 0-8 kHz on a centred, reflect-padded STFT
    fb = mel_filterbank(FeatureConfig(n_fft=1024, win_length=1024, hop_length=512, n_mels=128, f_min=0.0, f_max=8000.0))
    spec = torch.stft(torch.from_numpy(wave[:10 * sr]), 1024, 512, window=torch.hann_window(1024), center=True,
                      pad_mode="reflect", return_complex=True).abs() ** 2
    ref = 10 * torch.log10(torch.clamp(fb.T @ spec, min=1e-10))
    assert torch.allclose(lm[0], ref, atol=1e-3)
    peak = int(lm[0].mean(-1).argmax())
    centres = torch.from_numpy(np.arange(513) * 8000 / 512)[fb.argmax(0)]
    assert abs(float(centres[peak]) - 1000.0) < 60.0
    assert float(twfr.twfr_logmel(np.zeros(4000)).max()) == -100.0  # floor 1e-10, no top_db


def test_gwrp_ends_are_exactly_max_and_mean_pooling():
    x = np.random.default_rng(0).normal(-40, 8, (5, 128, 313)).astype(np.float32)
    x64 = x.astype(np.float64)
    assert np.array_equal(twfr.gwrp(x, 0.0), x64.max(axis=-1))
    assert np.array_equal(twfr.gwrp(x, 1.0), x64.mean(axis=-1))
    w = twfr.gwrp_weights(0.9, 313)
    assert w.sum() == pytest.approx(1.0) and np.all(np.diff(w) < 0)
    assert twfr.gwrp_weights(0.0, 4).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert np.allclose(twfr.gwrp_weights(1.0, 4), 0.25)


def test_the_grid_product_equals_pooling_one_r_at_a_time():
    x = np.random.default_rng(1).normal(-40, 8, (3, 16, 50))
    rs = twfr.TWFRConfig().r_grid
    grid = twfr.gwrp_grid(x, rs)
    assert grid.shape == (3, 16, len(rs))
    ranked = -np.sort(-x, axis=-1)
    for j, r in enumerate(rs):
        w = np.array([r ** i for i in range(50)])  # direct formula: sum_i r^i x_(i) / sum_i r^i
        assert np.allclose(grid[..., j], (ranked * w).sum(-1) / w.sum(), rtol=1e-12, atol=1e-12)
        assert np.allclose(grid[..., j], twfr.gwrp(x, r), rtol=1e-12, atol=1e-12)
    assert np.all(np.diff(grid, axis=-1) <= 1e-9)  # pooled value falls from the max to the mean as r grows


def _auc_at(r: float, kind: str, seed: int) -> float:
    """AUC of a 1-component mixture on GWRP features at ``r``: stationary noise vs a click or a level shift."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    train, test = rng.standard_normal((100, 16, 313)), rng.standard_normal((40, 16, 313))
    if kind == "click":
        test[20:, :, 100:102] += 4.0  # two loud frames in every bin
    else:
        test[20:] += 0.1  # a slight broadband level change over all frames
    gmm = twfr.fit_section(twfr.gwrp(train, r), 1)
    return roc_auc_score(np.r_[np.zeros(20), np.ones(20)], twfr.component_nll(gmm, twfr.gwrp(test, r)))


def test_the_pooling_parameter_moves_the_score_as_mean_and_max_pooling_would():
    """The issue's test of learning: a short click is caught near max pooling, a level shift near mean pooling."""
    click = {r: _auc_at(r, "click", 0) for r in (0.0, 0.5, 1.0)}
    level = {r: _auc_at(r, "level", 0) for r in (0.0, 0.5, 1.0)}
    assert click[0.0] > 0.95 and click[0.0] > click[1.0] + 0.3 and click[0.5] > click[1.0]
    assert level[1.0] > 0.95 and level[1.0] > level[0.0] + 0.3 and level[1.0] > level[0.5]


def test_component_nll_is_the_best_components_negative_log_density():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 1, (40, 6)), rng.normal(5, 2, (40, 6))])
    probe = rng.normal(2, 3, (30, 6))
    one = twfr.fit_section(x, 1)
    assert np.allclose(twfr.component_nll(one, probe), -one.score_samples(probe), rtol=1e-10)
    for cov in ("full", "tied", "diag", "spherical"):
        gmm = twfr.fit_section(x, 3, twfr.TWFRConfig(covariance_type=cov))
        oracle = -gmm._estimate_log_prob(probe).max(axis=1)  # test-only use of scikit-learn's private API
        assert np.allclose(twfr.component_nll(gmm, probe), oracle, rtol=1e-10)
    three = twfr.fit_section(x, 3)
    assert np.allclose(twfr.anomaly_scores(three, probe, twfr.TWFRConfig(score="mixture_nll")),
                       -three.score_samples(probe))
    with pytest.raises(ValueError, match="3-component"):
        twfr.fit_section(x[:2], 3)


def _fake_type(eval_flipped: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """One type, six sections: on 00-02 max pooling (column 0) separates best, on 03-05 only mean pooling
    (column 1) does; ``eval_flipped`` swaps the labels of the 03-05 test clips."""
    rng = np.random.default_rng(3)
    rows, feats = [], []
    for s in SECTIONS:
        for i in range(30):
            split, label = ("train", 0) if i < 20 else ("test", int(i >= 25))
            f = rng.standard_normal((4, 2))
            if label and s in DEV_SECTIONS:
                f[:, 0] += 3.0
                f[:, 1] += rng.choice([0.0, 3.0])  # mean pooling catches about half
            elif label:
                f[:, 1] += 4.0
            if s not in DEV_SECTIONS and split == "test" and eval_flipped:
                label = 1 - label
            rows.append({"machine": "fan", "section": s, "split": split, "label": label, "path": f"/x/{s}_{i}.wav"})
            feats.append(f)
    return pd.DataFrame(rows).astype({"label": "Int64"}), np.stack(feats)


def test_selection_reads_sections_00_to_02_only():
    cfg = twfr.TWFRConfig(r_grid=(0.0, 1.0), k_grid=(1,))
    df, pooled = _fake_type(eval_flipped=False)
    # precondition: choosing on all six sections would pick mean pooling (r = 1)
    everything = twfr.grid_rows(df, pooled, cfg, sections=SECTIONS)
    assert select_on_dev(everything, ("k", "r"), SECTIONS)[0] == {"k": 1, "r": 1.0}
    picks = []
    for flipped in (False, True):
        df, pooled = _fake_type(flipped)
        sel, grid = [], []
        table = twfr.evaluate_pooled(df, pooled, cfg, selection=sel, grid=grid)
        assert {r["section"] for r in grid} == set(DEV_SECTIONS)
        picks.append(([(r["k"], r["r"], r["dev_hmean"], r["chosen"]) for r in sel],
                      [(r["section"], r["auc"], r["pauc"]) for r in grid]))
        assert [(r["k"], r["r"]) for r in sel if r["chosen"]] == [(1, 0.0)]
        assert table["section"].tolist() == list(SECTIONS)
    assert picks[0] == picks[1]  # other labels on 03-05: the same grid and the same choice


def test_ties_go_to_the_first_candidate_in_the_authors_order():
    rows = [{"k": k, "r": r, "section": 0, "auc": 1.0, "pauc": 1.0} for k in (1, 2) for r in (0.0, 0.5)]
    assert twfr.choose(rows, twfr.TWFRConfig(r_grid=(0.0, 0.5), k_grid=(1, 2)))[0] == {"k": 1, "r": 0.0}


def test_run_twfr_on_a_tiny_synthetic_set(tmp_path):
    root = synth.make_dataset(tmp_path / "data", size="tiny", machine_types=["fan"], workers=1, progress=False)
    clips, sel, grid = [], [], []
    table = twfr.run_twfr(root, ["fan"], cfg=SMALL, workers=1, progress=False, clip_scores=clips, selection=sel,
                          grid=grid)
    assert list(table.columns) == ["machine", "section", "auc", "pauc", "n_train", "n_test_normal", "n_test_anomaly"]
    assert table["section"].tolist() == list(SECTIONS) and (table["n_train"] == 8).all()
    assert (table["n_test_normal"] == 3).all() and (table["n_test_anomaly"] == 3).all()
    assert table["auc"].between(0, 1).all() and table["pauc"].between(0, 1).all()
    assert len(clips) == 36 and set(clips[0]) == {"machine", "section", "clip", "label", "score"}
    assert clips[0]["clip"].endswith(".wav") and all(np.isfinite(c["score"]) for c in clips)
    assert len(sel) == 6 and sum(r["chosen"] for r in sel) == 1 and {r["how"] for r in sel} == {"dev"}
    assert len(grid) == 6 * 3 and {r["section"] for r in grid} == set(DEV_SECTIONS)
    # deterministic, and the same with two worker processes
    again = twfr.run_twfr(root, ["fan"], cfg=SMALL, workers=2, progress=False)
    pd.testing.assert_frame_equal(table, again)
    # a grid of one candidate (the max-pooled GMM at one k) still runs
    one = twfr.run_twfr(root, ["fan"], sections=(3, 4, 5), cfg=twfr.TWFRConfig(r_grid=(0.0,), k_grid=(1,)),
                        workers=1, progress=False)
    assert one["section"].tolist() == [3, 4, 5]
    with pytest.raises(ValueError, match="cannot choose r and k on sections 00-02"):
        twfr.run_twfr(root, ["fan"], sections=(3, 4, 5), cfg=SMALL, workers=1, progress=False)


def test_a_bad_clip_raises_an_error_naming_the_file(tmp_path):
    bad = tmp_path / "section_00_source_train_normal_0000.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(ValueError, match=bad.name):
        twfr.clip_pooled([bad], workers=1, progress=False)
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(300, np.float32), 16000)
    with pytest.raises(ValueError, match=r"short\.wav has 300 samples"):
        twfr.clip_pooled([short], workers=1, progress=False)
