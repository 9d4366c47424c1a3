import math

import pytest
import torch
import torchaudio

from minasd.config import FEATURES, FeatureConfig
from minasd.features import LogMel, mel_filterbank, n_frames


def reference_logmel(wave: torch.Tensor, cfg: FeatureConfig = FEATURES) -> torch.Tensor:
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.win_length, hop_length=cfg.hop_length,
        f_min=cfg.f_min, f_max=cfg.f_max, n_mels=cfg.n_mels, power=2.0, center=True, pad_mode="reflect",
        norm=None, mel_scale="htk",
    ).double()
    return torch.log(mel(wave.double()) + cfg.log_floor)


def test_shape_of_two_seconds_is_224_by_126():
    out = LogMel()(torch.randn(4, 32000))
    assert out.shape == (4, 224, 126)
    assert n_frames(2.0) == 126
    assert n_frames(10.0) == 626


def test_matches_torchaudio_within_1e4_relative():
    torch.manual_seed(0)
    wave = torch.randn(3, 32000)
    ours = LogMel()(wave).double()
    ref = reference_logmel(wave)
    # relative error on the mel power (the quantity the log compresses)
    rel = (ours.exp() - ref.exp()).abs() / ref.exp().clamp_min(1e-6)
    assert rel.max().item() < 1e-4
    # and on the log itself
    assert ((ours - ref).abs() / ref.abs().clamp_min(1e-3)).max().item() < 1e-4


def test_sine_peaks_in_the_right_mel_bin():
    sr = FEATURES.sample_rate
    t = torch.arange(32000) / sr
    wave = torch.sin(2 * math.pi * 1000.0 * t)[None]
    spec = LogMel()(wave)[0].mean(dim=1)  # (224,)
    fb = mel_filterbank()
    freqs = torch.linspace(0, sr / 2, fb.shape[0])
    centres = freqs[fb.argmax(dim=0)]
    peak = centres[spec.argmax()].item()
    assert abs(peak - 1000.0) < 40.0


def test_filterbank_covers_50_to_7800_hz():
    fb = mel_filterbank()
    freqs = torch.linspace(0, FEATURES.sample_rate / 2, fb.shape[0])
    support = freqs[fb.sum(dim=1) > 0]
    assert support.min() >= 50.0 - 8 and support.max() <= 7800.0 + 8
    assert (fb.sum(dim=0) > 0).all(), "every mel band must receive energy from some FFT bin"


def test_log_floor_keeps_silence_finite():
    out = LogMel()(torch.zeros(1, 32000))
    assert torch.isfinite(out).all()
    assert torch.allclose(out, torch.full_like(out, math.log(FEATURES.log_floor)))


def test_batched_equals_one_by_one_and_accepts_1d():
    torch.manual_seed(1)
    wave = torch.randn(3, 16000)
    m = LogMel()
    batched = m(wave)
    for i in range(3):
        assert torch.allclose(batched[i], m(wave[i]), atol=1e-5)


def test_rejects_bad_shape():
    with pytest.raises(ValueError, match="expects"):
        LogMel()(torch.zeros(1, 1, 100))
