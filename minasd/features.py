"""Log-compressed mel spectrogram with the paper's settings (book chapter 2).

The module is plain torch (an STFT and a product with a mel filter bank built
here), so the same code runs batched on CPU and GPU and inside
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


#: The mel projection is done in this many bands of consecutive filters, each over only the
#: FFT bins its filters touch.  A triangular filter covers a few bins, so over 99 % of the
#: dense (n_fft // 2 + 1) x n_mels product multiplies by zero; 8 bands do 12 % of it.  Same
#: numbers to float32 rounding (summation order).  ``benchmarks/bench_detector.py`` times the
#: whole log-mel of 10 segments against the dense product in the same run
#: (``benchmarks/results/detector_cpu*.txt``).
MEL_BANDS = 8


def mel_bands(fbank: torch.Tensor, n_bands: int = MEL_BANDS) -> list[tuple[int, int, torch.Tensor]]:
    """Split a filter bank (n_freqs, n_mels) into bands of consecutive filters.

    Returns a list of ``(lo, hi, weights)``: the band's filters are nonzero only on FFT
    bins ``lo:hi``, and ``weights`` (filters of the band, hi - lo) is their transposed
    slice; concatenating ``weights @ power[lo:hi]`` over the bands gives ``fbank.T @ power``.

    >>> [(lo, hi, tuple(w.shape)) for lo, hi, w in mel_bands(mel_filterbank(), 2)]
    [(7, 236, (112, 229)), (232, 999, (112, 767))]
    """
    n_mels = fbank.shape[1]
    if not 1 <= n_bands <= n_mels:
        raise ValueError(f"n_bands must be in 1..{n_mels}, got {n_bands}")
    bands = []
    for b in range(n_bands):
        m0, m1 = b * n_mels // n_bands, (b + 1) * n_mels // n_bands
        used = torch.nonzero(fbank[:, m0:m1].sum(dim=1) > 0).flatten()
        lo, hi = (int(used.min()), int(used.max()) + 1) if len(used) else (0, 1)
        bands.append((lo, hi, fbank[lo:hi, m0:m1].T.contiguous()))
    return bands


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
        # The banded form of fbank used by forward (MEL_BANDS); buffers, so they follow .to().
        self._bins: list[tuple[int, int]] = []
        for b, (lo, hi, w) in enumerate(mel_bands(self.fbank)):
            self.register_buffer(f"band{b}", w, persistent=False)
            self._bins.append((lo, hi))

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
            mel = torch.cat([torch.matmul(getattr(self, f"band{b}"), power[:, lo:hi])
                             for b, (lo, hi) in enumerate(self._bins)], dim=1)  # (B, n_mels, frames)
            return torch.log(mel + self.cfg.log_floor)


def n_frames(seconds: float, cfg: FeatureConfig = FEATURES) -> int:
    """Frames of the log-mel of ``seconds`` of audio.

    >>> n_frames(2.0)
    126
    """
    return cfg.n_frames(int(math.floor(seconds * cfg.sample_rate)))
