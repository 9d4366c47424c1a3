"""Tests of the DCASE 2021 autoencoder baseline (minasd.dcase_ae), CPU only, seconds."""
from __future__ import annotations

import math
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from minasd import baseline, dcase_ae, synth
from minasd.dcase_ae import AEConfig, DenseAE

FAST = AEConfig(epochs=2, threads=1)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return synth.make_dataset(tmp_path_factory.mktemp("ae") / "data", size="tiny", machine_types=["fan"],
                              workers=1, progress=False)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --- features --------------------------------------------------------------------------


def test_slaney_scale_breaks_at_1khz():
    assert dcase_ae.hz_to_slaney(500.0) == pytest.approx(7.5)  # linear part, 3 f / 200
    assert dcase_ae.hz_to_slaney(1000.0) == pytest.approx(15.0)
    assert dcase_ae.hz_to_slaney(6400.0) == pytest.approx(15.0 + 27.0)  # ln(6.4)/27 per mel above 1 kHz
    f = np.array([0.0, 400.0, 999.0, 1000.0, 3000.0, 8000.0])
    assert np.allclose(dcase_ae.slaney_to_hz(dcase_ae.hz_to_slaney(f)), f)


def test_mel_bank_is_librosas_slaney_bank():
    import torchaudio

    fb = dcase_ae.mel_filterbank()
    assert fb.shape == (513, 128) and fb.dtype == torch.float32
    ref = torchaudio.functional.melscale_fbanks(513, 0.0, 8000.0, 128, 16000, norm="slaney", mel_scale="slaney")
    assert torch.allclose(fb, ref, rtol=1e-5, atol=1e-6)
    # area normalisation: each triangle's peak is 2 / its width in Hz, so it integrates to 1 over Hz;
    # the sum over FFT bins (15.625 Hz apart) approximates that where a triangle spans many bins
    edges = dcase_ae.slaney_to_hz(np.linspace(0, dcase_ae.hz_to_slaney(8000.0), 130))
    assert np.all(fb.double().max(0).values.numpy() <= 2.0 / (edges[2:] - edges[:-2]) * (1 + 1e-6))
    area = fb.double().sum(0) * (8000.0 / 512)
    assert torch.allclose(area[60:], torch.ones(68, dtype=torch.float64), atol=0.03)
    assert float(area[60:].mean()) == pytest.approx(1.0, abs=0.005)


def test_logmel_peak_and_floor():
    cfg = AEConfig()
    t = np.arange(16000) / 16000
    lm = dcase_ae.ae_logmel(torch.from_numpy(np.sin(2 * np.pi * 1000 * t).astype(np.float32)), cfg)
    centres = dcase_ae.slaney_to_hz(np.linspace(0, dcase_ae.hz_to_slaney(8000.0), 130))[1:-1]
    assert abs(centres[int(lm[0, :, 10].argmax())] - 1000.0) < 40.0
    zero = dcase_ae.ae_logmel(torch.zeros(16000), cfg)
    assert torch.allclose(zero, torch.tensor(10 * math.log10(sys.float_info.epsilon)))  # about -156.5 dB


def test_clip_vectors_shape_and_layout():
    cfg = AEConfig()
    wave = torch.from_numpy(np.random.default_rng(0).standard_normal(160000).astype(np.float32))
    lm = dcase_ae.ae_logmel(wave, cfg)[0]
    assert lm.shape == (128, 313)
    v = dcase_ae.clip_vectors(lm, cfg)
    assert v.shape == (309, 640)
    for row, t in [(0, 0), (7, 3), (308, 4)]:
        assert torch.equal(v[row, 128 * t:128 * (t + 1)], lm[:, row + t])
    assert dcase_ae.clip_vectors(lm, cfg, hop_frames=2).shape == (155, 640)
    assert dcase_ae.clip_vectors(lm[:, :4], cfg).shape == (0, 640)


def test_bad_clip_error_names_the_file(tmp_path):
    short = tmp_path / "section_00_source_train_normal_0000.wav"
    sf.write(short, np.zeros(1000, np.float32), 16000)
    with pytest.raises(ValueError, match=r"section_00_source_train_normal_0000\.wav is 0\.062 s long"):
        dcase_ae.file_vectors([short])
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        dcase_ae.file_vectors([tmp_path / "missing.wav"])


# --- model and training ------------------------------------------------------------------


def test_dense_ae_layers_init_and_batch_norm():
    model = DenseAE(AEConfig(), torch.Generator().manual_seed(0))
    lins = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in lins] == [128] * 4 + [8] + [128] * 4 + [640]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 267_928
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bns) == 9 and all(b.eps == 1e-3 and b.momentum == 0.01 for b in bns)
    assert isinstance(model.net[-1], torch.nn.Linear)  # linear output
    for m in lins:
        w = m.weight.detach()
        bound = math.sqrt(6.0 / (m.in_features + m.out_features))  # Glorot uniform
        assert float(w.abs().max()) <= bound and torch.all(m.bias == 0)
    w = lins[0].weight.detach()
    assert float(w.std()) == pytest.approx(math.sqrt(6.0 / (640 + 128)) / math.sqrt(3), rel=0.05)


def test_keras_validation_split_rows_never_train():
    assert dcase_ae.validation_split(55620, 0.1) == 50058
    assert dcase_ae.batch_bounds(1025, 512) == [(0, 512), (512, 1025)]  # a lone last row joins its batch
    x = np.random.default_rng(0).standard_normal((1200, 640)).astype(np.float32)
    x[1080:] = np.nan  # the last 10 %: a NaN there would poison any batch it entered
    model, hist = dcase_ae.fit_ae(x, FAST)
    assert hist["n_train"] == 1080 and hist["n_val"] == 120
    assert hist["steps_per_epoch"] == math.ceil(1080 / 512)
    assert all(np.isfinite(hist["loss"])) and all(math.isnan(v) for v in hist["val_loss"])
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_training_is_deterministic_under_a_seed():
    x = np.random.default_rng(1).standard_normal((600, 640)).astype(np.float32)
    _, h1 = dcase_ae.fit_ae(x, FAST)
    _, h2 = dcase_ae.fit_ae(x, FAST)
    _, h3 = dcase_ae.fit_ae(x, AEConfig(epochs=2, seed=1))
    assert h1["loss"] == h2["loss"] and h1["val_loss"] == h2["val_loss"]
    assert h1["loss"] != h3["loss"]


def test_training_lowers_the_reconstruction_error_of_normal_clips(tiny_root):
    from minasd.data import index, protocol_clips

    df = index(tiny_root)
    train = protocol_clips(df, "train", sections=[0])["path"].tolist()
    test = protocol_clips(df, "test", sections=[0])
    test_normal = test[test["label"] == 0]["path"].tolist()
    cfg = AEConfig(epochs=15, batch_size=64)  # 8 clips x 90 vectors: smaller batches, more steps
    x, off = dcase_ae.file_vectors(train, cfg)
    xt, offt = dcase_ae.file_vectors(test_normal, cfg)
    untrained = DenseAE(cfg, torch.Generator().manual_seed(cfg.seed)).eval()
    model, hist = dcase_ae.fit_ae(x, cfg)
    for vec, o in ((x, off), (xt, offt)):
        before = dcase_ae.reconstruction_scores(untrained, vec, o, cfg)
        after = dcase_ae.reconstruction_scores(model, vec, o, cfg)
        assert after.mean() < 0.5 * before.mean()
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]


def test_gamma_threshold_is_scipys_quantile_with_a_fallback():
    from scipy.stats import gamma

    s = np.random.default_rng(0).gamma(4.0, 2.0, 200) + 10.0
    th = dcase_ae.gamma_threshold(s)
    assert th["method"] == "gamma"
    assert th["value"] == pytest.approx(gamma.ppf(0.9, *gamma.fit(s)))
    assert np.quantile(s, 0.8) < th["value"] < np.quantile(s, 0.97)
    flat = dcase_ae.gamma_threshold(np.full(5, 3.0))
    assert flat["method"] == "empirical" and flat["value"] == 3.0 and flat["shape"] is None


# --- the whole system --------------------------------------------------------------------


def test_run_ae_table_like_the_baselines(tiny_root):
    from minasd.data import index

    clips, models = [], []
    res = dcase_ae.run_ae(tiny_root, cfg=FAST, progress=False, clip_scores=clips, models=models)
    # the baseline's table and clip keys, from its own evaluate_features on stand-in features
    df = index(tiny_root)
    df = df[df["section"] == 0].reset_index(drop=True)
    base_clips: list = []
    base = baseline.evaluate_features(df, np.random.default_rng(0).standard_normal((len(df), 4)),
                                      clip_scores=base_clips)
    assert list(res.columns) == list(base.columns)
    assert sorted(res["section"]) == list(range(6)) and set(res["n_train"]) == {8}
    assert set(res["n_test_normal"]) == {3} and set(res["n_test_anomaly"]) == {3}
    assert res["auc"].between(0, 1).all() and res["pauc"].between(0, 1).all()
    assert len(clips) == 36 and set(clips[0]) == set(base_clips[0])
    assert [(m["group"], m["sections"]) for m in models] == [("dev", [0, 1, 2]), ("eval", [3, 4, 5])]
    m = models[0]
    assert m["n_train_clips"] == 24 and m["n_vectors"] == 24 * 90 and m["n_val_vectors"] == 216
    assert len(m["history"]["loss"]) == 2 and m["threshold"]["q"] == 0.9
    assert set(m["decisions"]) == {0, 1, 2} and sum(m["decisions"][0][k] for k in ("tp", "fp", "fn", "tn")) == 6
    one: list = []
    dcase_ae.run_ae(tiny_root, sections=[0, 3], cfg=AEConfig(epochs=1, train_groups=("all",)), progress=False,
                    models=one)
    assert [(m["group"], m["sections"]) for m in one] == [("all", [0, 3])]
    assert isinstance(res, pd.DataFrame)
