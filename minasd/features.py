"""Log-compressed mel spectrogram with the paper's settings (book chapter 2).

The module is plain torch (an STFT and one matrix product with a mel filter
bank built here), so the same code runs batched on CPU and GPU and inside
``torch.compile``.  The filter bank uses the HTK mel scale with triangular,
unnormalised filters, the same convention as ``torchaudio``'s
``MelSpectrogram(mel_scale="htk", norm=None)``; ``tests/test_features.py``
checks the two agree.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import FEATURES, FeatureConfig


def _hz_to_mel(f: torch.Tensor | float) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def _mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(cfg: FeatureConfig = FEATURES) -> torch.Tensor:
    """Triangular HTK-mel filter bank, shape (n_fft // 2 + 1, n_mels), float32.

    >>> mel_filterbank().shape
    torch.Size([1025, 224])
    """
    n_freqs = cfg.n_fft // 2 + 1
    freqs = torch.linspace(0.0, cfg.sample_rate / 2, n_freqs, dtype=torch.float64)
    mels = torch.linspace(float(_hz_to_mel(cfg.f_min)), float(_hz_to_mel(cfg.f_max)), cfg.n_mels + 2, dtype=torch.float64)
    edges = _mel_to_hz(mels)  # (n_mels + 2,)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs[:, None] - lower[None, :]) / (centre - lower)[None, :]
    falling = (upper[None, :] - freqs[:, None]) / (upper - centre)[None, :]
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


class LogMel(nn.Module):
    """Waveforms (B, samples) -> log-mel (B, n_mels, frames).

    Power spectrum of a Hann-windowed, centred STFT (reflect padding), projected
    on the mel filter bank, then ``log(mel + log_floor)``.  A 2.0 s crop at
    16 kHz gives 224 x 126.

    >>> LogMel()(torch.zeros(3, 32000)).shape
    torch.Size([3, 224, 126])
    """

    def __init__(self, cfg: FeatureConfig = FEATURES):
        super().__init__()
        self.cfg = cfg
        # Buffers follow .to(device) and are saved with the module's state.
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)
        self.register_buffer("fbank", mel_filterbank(cfg), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave[None]
        if wave.dim() != 2:
            raise ValueError(f"LogMel expects (B, samples) or (samples,), got shape {tuple(wave.shape)}")
        # The STFT runs in float32 even under autocast: bf16 would lose the
        # dynamic range the log is there to keep.
        with torch.autocast(device_type=wave.device.type, enabled=False):
            spec = torch.stft(
                wave.float(),
                n_fft=self.cfg.n_fft,
                hop_length=self.cfg.hop_length,
                win_length=self.cfg.win_length,
                window=self.window,
                center=True,
                pad_mode="reflect",
                return_complex=True,
            )  # (B, n_fft//2+1, frames)
            power = spec.real.square() + spec.imag.square()
            mel = torch.matmul(power.transpose(1, 2), self.fbank).transpose(1, 2)  # (B, n_mels, frames)
            return torch.log(mel + self.cfg.log_floor)


def n_frames(seconds: float, cfg: FeatureConfig = FEATURES) -> int:
    """Frames of the log-mel of ``seconds`` of audio.

    >>> n_frames(2.0)
    126
    """
    return cfg.n_frames(int(math.floor(seconds * cfg.sample_rate)))
