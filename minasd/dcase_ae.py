"""The official DCASE 2021 Task 2 autoencoder baseline, reproduced in torch, beside the stack.

Each clip becomes a sequence of 640-d vectors (5 consecutive 128-bin log-mel frames side by
side); a dense autoencoder learns to reconstruct the normal training vectors, and a clip's
anomaly score is its mean squared reconstruction error (higher = more anomalous).  One model
per machine type and mode, a decision threshold from a gamma distribution fitted to the
training clips' scores.  The same code runs on CPU and GPU (:attr:`AEConfig.device`).

Every setting below is the organisers' (repository ``y-kawagu/dcase2021_task2_baseline_ae``,
HEAD 7d7f5cc, read for issue 22; file and line in brackets; their stack: keras 2.3.0 on
tensorflow 1.15, librosa 0.6.0, scipy 1.1.0) unless it says "ours".

Features (``common.py`` ``file_to_vectors`` l.111-154, ``baseline.yaml`` l.10-16):

* STFT with n_fft 1024, hop 512, window length n_fft, periodic Hann window, centred frames with
  reflect padding (librosa 0.6's defaults; librosa 0.10 later changed its padding to zeros, so
  reflect is the recipe's), power 2.
* 128 mel filters from 0 Hz to half the sample rate on librosa's default (Slaney) mel scale,
  linear below 1 kHz and logarithmic above, each triangle scaled to unit area (2 / its width in
  Hz); built here (:func:`mel_filterbank`), without librosa.  ``tests/test_dcase_ae.py`` checks
  it against torchaudio's ``melscale_fbanks(norm="slaney", mel_scale="slaney")``.
* 10 log10(max(mel power, float64 machine epsilon 2.2e-16)) (``common.py`` l.140): no reference,
  no top_db, no standardisation.
* 5 consecutive frames concatenated frame-major, one vector per frame position: a 10 s clip
  (313 frames) gives 309 vectors of 640 (``baseline.yaml`` l.12).  Training vectors are thinned
  to every ``n_hop_frames``-th (1: all; ``00_train.py`` l.115); test vectors never are
  (``01_test.py`` l.134-139).
* Audio: ours, :func:`minasd.data.load_audio` (channel 0 of a multichannel file, polyphase
  resampling of a file at another rate); the recipe's librosa load averages channels and keeps
  the file's rate (``common.py`` l.88-100).  DCASE clips are mono at 16 kHz, so both read the
  same samples.  A clip too short for one vector is an error naming the file (ours; the recipe
  silently gives it no vectors).

Network (``keras_model.py`` ``get_model`` l.14-66): 640 -> 128 x 4 -> 8 -> 128 x 4 -> 640, every
hidden layer (the bottleneck too) a Dense followed by batch normalisation and ReLU, the output
layer linear.  Keras 2.3 defaults matched in torch: Glorot-uniform weights and zero biases (torch's
own init differs); batch normalisation epsilon 1e-3 and moving-average momentum 0.99 (torch
momentum 0.01).  267,928 trainable parameters.  Both libraries update the moving variance
with the unbiased batch variance (Keras's factor n / (n - 1 - eps), torch's n / (n - 1): equal to 1e-6).

Training (``00_train.py`` l.166-225, ``baseline.yaml`` l.18-24):

* Adam, lr 1e-3, betas (0.9, 0.999), epsilon 1e-7 (Keras's ``K.epsilon()``; torch's default is
  1e-8).  Keras adds epsilon to sqrt(v) before the bias correction, torch after it: the two
  differ by a factor sqrt(1 - 0.999^t) on epsilon, which matters only in the first few hundred
  steps and only where sqrt(v) is near 1e-7 (ours: torch's form).
* Loss: mean squared error over the 640 dims and the batch, every batch (the partial last one too).
* 100 epochs, batch 512, no early stopping, no schedule: the weights after the last epoch.
* ``validation_split`` 0.1 as Keras does it: the last int(0.1 N) rows in array order, before any
  shuffling, are held out and only give ``val_loss``; the rest are shuffled anew every epoch.  The
  rows are in path order (:func:`minasd.data.protocol_clips`), as the recipe's sorted file list,
  so the held-out rows are the last clips of the last section.  Reported losses are Keras's:
  ``loss`` the batch losses averaged weighted by batch size, ``val_loss`` the mean over the held-out
  rows in inference mode.
* One model per machine type and mode (README l.7-10, l.205-212): sections 00-02 (development)
  and 03-05 (evaluation) train separate models, each on all its sections' training clips pooled,
  and each scores only its own sections.  ``AEConfig.train_groups = ("all",)`` trains one model on
  every chosen section instead (ours, an option; off by default).
* Training clips: ours, the source-domain clips only (:func:`minasd.data.protocol_clips`, the rule
  of every stage of this package); the recipe adds the 3 target-domain clips per section (README
  l.46): 9 of 3,009 clips per model on DCASE 2021, none on the synthetic sets.
* A last batch of one row (torch's batch normalisation refuses it in training mode) is merged into
  the batch before it (ours; Keras would normalise it with variance 0).
* Seeds: ours.  The recipe is unseeded; here ``AEConfig.seed`` sets the initial weights and every
  epoch's permutation (a CPU ``torch.Generator``, so the same on every device).  On a GPU, cuBLAS
  may still add run-to-run differences in the last bits.

Scoring and threshold (``01_test.py`` l.94, l.143-169; ``00_train.py`` l.186-212; ``baseline.yaml`` l.8):

* score of a clip = mean of (vector - reconstruction)^2 over all its vectors and dims, batch
  normalisation in inference mode.
* After training, every training clip (held-out ones included) is scored on its training
  vectors; a three-parameter gamma (shape, loc, scale, scipy's maximum likelihood fit) is fitted
  to those scores, and the threshold is its 0.9 quantile; a clip is anomalous iff its score is
  above it.  Ours: if the fit fails or gives a non-finite quantile (it can on a handful of clips),
  the empirical 0.9 quantile is used and ``method`` says so.  Clip lengths may differ (ours: per-clip
  vector offsets; the recipe assumes equal counts).

The per-section table has the columns of :func:`minasd.baseline.run_baseline` (AUC and pAUC with
p = 0.1 per section, ``baseline.yaml`` l.7); the threshold's decisions are in the model records.
"""
from __future__ import annotations

import math
import os
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .config import DEV_SECTIONS, EVAL_SECTIONS, SAMPLE_RATE, SECTIONS

#: The recipe's two modes: which sections each model trains on and scores.
GROUPS: dict[str, tuple[int, ...]] = {"dev": DEV_SECTIONS, "eval": EVAL_SECTIONS, "all": SECTIONS}


@dataclass(frozen=True)
class AEConfig:
    """Settings of the DCASE 2021 autoencoder (the recipe's values; the module docstring says where).

    Attributes:
        sample_rate: Hz.
        n_mels, n_fft, hop_length, power: log-mel settings (Slaney mel scale, area-normalised).
        log_floor: floor of the mel power before 10 log10 (float64 machine epsilon).
        n_frames: frames concatenated into one vector (input dim = n_frames * n_mels).
        n_hop_frames: keep every n-th training vector (1 = all).
        hidden: widths of the encoder's hidden layers (the decoder mirrors them).
        bottleneck: width of the code layer.
        epochs, batch_size, lr, adam_eps: training.
        bn_eps, bn_momentum: batch normalisation (torch's momentum = 1 - Keras's).
        validation_split: last fraction of the rows held out (Keras rule).
        decision_quantile: quantile of the fitted gamma used as threshold.
        train_groups: models trained per machine type: "dev" (00-02) and "eval" (03-05), or "all".
        seed: initial weights and per-epoch shuffles.
        device: torch device of the model ("cpu", "cuda", ...).
        threads: torch CPU threads while training and scoring (None = leave as is).
    """

    sample_rate: int = SAMPLE_RATE
    n_mels: int = 128
    n_fft: int = 1024
    hop_length: int = 512
    power: float = 2.0
    log_floor: float = sys.float_info.epsilon
    n_frames: int = 5
    n_hop_frames: int = 1
    hidden: tuple[int, ...] = (128, 128, 128, 128)
    bottleneck: int = 8
    epochs: int = 100
    batch_size: int = 512
    lr: float = 1e-3
    adam_eps: float = 1e-7
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01
    validation_split: float = 0.1
    decision_quantile: float = 0.9
    train_groups: tuple[str, ...] = ("dev", "eval")
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None

    def __post_init__(self):
        unknown = [g for g in self.train_groups if g not in GROUPS]
        if unknown or not self.train_groups:
            raise ValueError(f"train_groups must name groups of {list(GROUPS)}, got {self.train_groups}")
        if not 0.0 <= self.validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {self.validation_split}")

    @property
    def input_dim(self) -> int:
        return self.n_frames * self.n_mels

    @property
    def min_samples(self) -> int:
        """Shortest clip (samples) that gives one vector: n_frames centred STFT frames."""
        return (self.n_frames - 1) * self.hop_length


# --------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------


def hz_to_slaney(f) -> np.ndarray:
    """Slaney mel scale (librosa's default): 3 f / 200 below 1 kHz, log steps of ln(6.4) / 27 above.

    >>> float(hz_to_slaney(1000.0))
    15.0
    """
    f = np.asarray(f, dtype=np.float64)
    log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log_part, 3.0 * f / 200.0)


def slaney_to_hz(m) -> np.ndarray:
    """Inverse of :func:`hz_to_slaney`."""
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), 200.0 * m / 3.0)


@lru_cache(maxsize=4)
def _fbank(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = slaney_to_hz(np.linspace(hz_to_slaney(0.0), hz_to_slaney(sample_rate / 2), n_mels + 2))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs[:, None] - lower) / (centre - lower)
    falling = (upper - freqs[:, None]) / (upper - centre)
    tri = np.maximum(0.0, np.minimum(rising, falling))  # (n_freqs, n_mels)
    return torch.from_numpy(tri * (2.0 / (upper - lower))).float()


def mel_filterbank(cfg: AEConfig = AEConfig()) -> torch.Tensor:
    """Slaney-scale, area-normalised triangular mel bank, shape (n_fft // 2 + 1, n_mels), float32.

    >>> mel_filterbank().shape
    torch.Size([513, 128])
    """
    return _fbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels).clone()


def ae_logmel(waves: torch.Tensor, cfg: AEConfig = AEConfig()) -> torch.Tensor:
    """Waveforms (B, samples) or (samples,) -> the recipe's log-mel (B, n_mels, frames), dB, float32.

    >>> ae_logmel(torch.zeros(16000)).shape
    torch.Size([1, 128, 32])
    """
    wave = torch.as_tensor(waves, dtype=torch.float32)
    wave = wave[None] if wave.dim() == 1 else wave
    spec = torch.stft(wave, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.n_fft,
                      window=torch.hann_window(cfg.n_fft, device=wave.device), center=True, pad_mode="reflect",
                      return_complex=True)  # (B, n_fft//2+1, frames)
    power = spec.abs() ** cfg.power
    fb = _fbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels).to(wave.device)
    mel = torch.matmul(fb.T, power)  # (B, n_mels, frames)
    return 10.0 * torch.log10(torch.clamp(mel, min=cfg.log_floor))


def clip_vectors(logmel: torch.Tensor, cfg: AEConfig = AEConfig(), hop_frames: int = 1) -> torch.Tensor:
    """One clip's log-mel (n_mels, frames) -> vectors (frames - n_frames + 1, n_frames * n_mels).

    Frame-major: columns ``[n_mels * t, n_mels * (t + 1))`` of row v hold frame v + t; then every
    ``hop_frames``-th row is kept.

    >>> clip_vectors(torch.zeros(128, 313)).shape
    torch.Size([309, 640])
    """
    if logmel.shape[-1] < cfg.n_frames:
        return logmel.new_zeros((0, cfg.input_dim))
    win = logmel.unfold(-1, cfg.n_frames, 1)  # (n_mels, n_vectors, n_frames)
    return win.permute(1, 2, 0).reshape(-1, cfg.input_dim)[::hop_frames]


def _vectors_of_paths(job: tuple[Sequence[str], AEConfig, int]) -> list[np.ndarray]:
    from .data import load_audio

    paths, cfg, hop_frames = job
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread per worker; restored (workers=1 runs in the caller)
    try:
        out = []
        for p in paths:
            wave = load_audio(p, cfg.sample_rate, min_seconds=None)
            if wave.shape[0] < cfg.min_samples:
                raise ValueError(f"clip {p} is {wave.shape[0] / cfg.sample_rate:.3f} s long; the autoencoder's "
                                 f"{cfg.n_frames}-frame vectors need {cfg.min_samples / cfg.sample_rate:.3f} s")
            out.append(clip_vectors(ae_logmel(torch.from_numpy(wave), cfg)[0], cfg, hop_frames).numpy())
        return out
    finally:
        torch.set_num_threads(before)


def file_vectors(paths: Sequence[str], cfg: AEConfig = AEConfig(), hop_frames: int = 1, workers: int | None = 1,
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of audio files, stacked in file order.

    Args:
        paths: audio files.
        hop_frames: keep every n-th vector of each clip (training: ``cfg.n_hop_frames``; test: 1).
        workers: processes (None = all CPU cores; 1 = in this process).

    Returns:
        ``(vectors, offsets)``: float32 (N, n_frames * n_mels) and int64 (len(paths) + 1,); clip i
        owns rows ``offsets[i]:offsets[i + 1]``.

    Raises:
        ValueError: a clip unreadable or too short for one vector (the message names it).
    """
    from .progress import tqdm

    paths = [str(p) for p in paths]
    chunks = [paths[i:i + 16] for i in range(0, len(paths), 16)]
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(chunks)))
    bar = tqdm(total=len(paths), desc="AE features", unit="clip", disable=not progress)
    jobs = [(c, cfg, hop_frames) for c in chunks]
    parts: list[np.ndarray] = []
    if n_workers == 1:
        results = map(_vectors_of_paths, jobs)
    else:
        import multiprocessing as mp

        pool = (mp.get_context("fork") if hasattr(os, "fork") else mp.get_context()).Pool(n_workers)
        results = pool.imap(_vectors_of_paths, jobs)
    try:
        for part in results:
            parts += part
            bar.update(len(part))
    finally:
        bar.close()
        if n_workers > 1:
            pool.close()
            pool.join()
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    vectors = np.concatenate(parts) if parts else np.zeros((0, cfg.input_dim), np.float32)
    return vectors.astype(np.float32, copy=False), offsets


# --------------------------------------------------------------------------------------
# model and training
# --------------------------------------------------------------------------------------


class DenseAE(nn.Module):
    """The recipe's dense autoencoder: (B, 640) -> (B, 640).

    Hidden layers Linear -> BatchNorm1d -> ReLU (widths ``hidden``, ``bottleneck``, reversed
    ``hidden``), a linear output layer; Glorot-uniform weights, zero biases (Keras defaults), drawn
    from ``generator`` when given.

    >>> sum(p.numel() for p in DenseAE().parameters())
    267928
    """

    def __init__(self, cfg: AEConfig = AEConfig(), generator: torch.Generator | None = None):
        super().__init__()
        widths = [cfg.input_dim, *cfg.hidden, cfg.bottleneck, *reversed(cfg.hidden)]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b, eps=cfg.bn_eps, momentum=cfg.bn_momentum), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], cfg.input_dim))
        self.net = nn.Sequential(*layers)
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, generator=generator)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def validation_split(n: int, fraction: float) -> int:
    """Keras's rule: rows ``[0, split_at)`` train, the rest validate; split_at = int(n (1 - fraction)).

    >>> validation_split(55620, 0.1)
    50058
    """
    return int(n * (1.0 - fraction))


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Batches ``[lo, hi)`` of ``n`` rows, the last one partial; a last batch of one row is merged
    into the one before (batch normalisation needs two rows in training mode).

    >>> batch_bounds(1025, 512)
    [(0, 512), (512, 1025)]
    """
    bounds = [(lo, min(lo + batch_size, n)) for lo in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _mean_error(model: DenseAE, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Per-row mean squared reconstruction error (N,), float64 on CPU, in inference mode."""
    model.eval()
    with torch.no_grad():
        out = [(x[lo:hi] - model(x[lo:hi])).square().mean(1).double().cpu()
               for lo, hi in batch_bounds(len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def fit_ae(vectors: np.ndarray, cfg: AEConfig = AEConfig(), progress: bool = False) -> tuple[DenseAE, dict]:
    """Train a :class:`DenseAE` on vectors (N, input_dim) the recipe's way (module docstring).

    Returns:
        ``(model, history)``; history: ``loss`` and ``val_loss`` per epoch (``val_loss`` None
        without held-out rows), ``epoch_seconds``, ``seconds``, ``n_train``, ``n_val``,
        ``steps_per_epoch``.  The model is in inference mode.
    """
    from .progress import tqdm

    device = torch.device(cfg.device)
    x = torch.as_tensor(np.asarray(vectors, dtype=np.float32)).to(device)
    split_at = validation_split(len(x), cfg.validation_split)
    if split_at < 2:
        raise ValueError(f"the autoencoder needs at least 2 training vectors, got {split_at} of {len(x)}")
    gen = torch.Generator().manual_seed(cfg.seed)
    model = DenseAE(cfg, gen).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=cfg.adam_eps)
    bounds = batch_bounds(split_at, cfg.batch_size)
    hist = {"loss": [], "val_loss": [], "epoch_seconds": [], "n_train": split_at, "n_val": len(x) - split_at,
            "steps_per_epoch": len(bounds)}
    t_all = time.perf_counter()
    for _ in tqdm(range(cfg.epochs), desc="AE epochs", unit="epoch", disable=not progress):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(split_at, generator=gen).to(device)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for lo, hi in bounds:
            xb = x[perm[lo:hi]]
            loss = nn.functional.mse_loss(model(xb), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().double() * (hi - lo)
        hist["loss"].append(float(total) / split_at)
        val = _mean_error(model, x[split_at:], cfg.batch_size)
        hist["val_loss"].append(float(val.mean()) if len(val) else None)
        hist["epoch_seconds"].append(time.perf_counter() - t0)
    hist["seconds"] = time.perf_counter() - t_all
    model.eval()
    return model, hist


def reconstruction_scores(model: DenseAE, vectors: np.ndarray, offsets: np.ndarray,
                          cfg: AEConfig = AEConfig()) -> np.ndarray:
    """Anomaly score per clip: mean squared reconstruction error over its vectors and dims.

    Args:
        vectors: (N, input_dim) from :func:`file_vectors`; offsets: its (n_clips + 1,) offsets.

    Returns:
        float64 (n_clips,); higher = more anomalous.
    """
    device = next(model.parameters()).device
    rows = _mean_error(model, torch.as_tensor(np.asarray(vectors, np.float32)).to(device), cfg.batch_size).numpy()
    offsets = np.asarray(offsets, dtype=np.int64)
    if len(offsets) < 2:
        return np.zeros(0)
    if np.any(np.diff(offsets) < 1):
        raise ValueError("every clip needs at least one vector (offsets must increase)")
    return np.add.reduceat(rows, offsets[:-1]) / np.diff(offsets)


def gamma_threshold(train_scores, q: float = 0.9) -> dict:
    """The recipe's decision threshold: the q quantile of a gamma fitted to training-clip scores.

    Returns:
        dict ``value, method, shape, loc, scale, q``; ``method`` is "gamma" (scipy's
        three-parameter maximum likelihood fit) or "empirical" (the fit failed or gave a
        non-finite quantile: the scores' own q quantile; shape/loc/scale then None).
    """
    from scipy.stats import gamma

    s = np.asarray(train_scores, dtype=np.float64)
    if s.size == 0:
        raise ValueError("gamma_threshold needs at least one training score")
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            shape, loc, scale = gamma.fit(s)
            value = float(gamma.ppf(q, shape, loc=loc, scale=scale))
        if math.isfinite(value):
            return {"value": value, "method": "gamma", "shape": float(shape), "loc": float(loc),
                    "scale": float(scale), "q": q}
    except (ValueError, RuntimeError, FloatingPointError):
        pass
    return {"value": float(np.quantile(s, q)), "method": "empirical", "shape": None, "loc": None, "scale": None,
            "q": q}


# --------------------------------------------------------------------------------------
# the whole system on a data root
# --------------------------------------------------------------------------------------


@contextmanager
def _threads(n: int | None):
    """torch CPU threads set to ``n`` inside the block (None: unchanged), restored after it."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _decisions(y: np.ndarray, s: np.ndarray, threshold: float) -> dict:
    flag = s > threshold
    tp, fp = int((flag & (y == 1)).sum()), int((flag & (y == 0)).sum())
    fn, tn = int((~flag & (y == 1)).sum()), int((~flag & (y == 0)).sum())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": prec, "recall": rec,
            "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0}


def _run_group(machine: str, group: str, train: pd.DataFrame, test: pd.DataFrame, cfg: AEConfig,
               workers: int | None, progress: bool, clip_scores: list | None) -> tuple[list[dict], dict]:
    """Train one model on ``train`` and score ``test`` (both of one type and group), per section."""
    from .metrics import auc_pauc

    clock = [(time.perf_counter(), time.process_time())]  # wall and this process's CPU time
    tr_x, tr_off = file_vectors(train["path"].tolist(), cfg, cfg.n_hop_frames, workers, progress)
    te_x, te_off = file_vectors(test["path"].tolist(), cfg, 1, workers, progress)
    clock.append((time.perf_counter(), time.process_time()))
    with _threads(cfg.threads):
        model, hist = fit_ae(tr_x, cfg, progress)
        clock.append((time.perf_counter(), time.process_time()))
        threshold = gamma_threshold(reconstruction_scores(model, tr_x, tr_off, cfg), cfg.decision_quantile)
        scores = reconstruction_scores(model, te_x, te_off, cfg)
        clock.append((time.perf_counter(), time.process_time()))
    (feature_s, train_s, score_s), cpu = [[b[i] - a[i] for a, b in zip(clock[:-1], clock[1:])] for i in (0, 1)]
    rows, decisions = [], {}
    for section, part in test.assign(score=scores).groupby("section", sort=True):
        y, s = part["label"].astype(int).to_numpy(), part["score"].to_numpy()
        n_train = int((train["section"] == section).sum())
        if n_train < 1 or len(np.unique(y)) < 2:
            continue
        if clip_scores is not None:
            clip_scores += [{"machine": machine, "section": int(section), "clip": os.path.basename(p),
                             "label": int(lab), "score": float(v)} for p, lab, v in zip(part["path"], y, s)]
        auc, pauc = auc_pauc(y, s, section=f"{machine} section {int(section):02d}")
        rows.append({"machine": machine, "section": int(section), "auc": auc, "pauc": pauc, "n_train": n_train,
                     "n_test_normal": int((y == 0).sum()), "n_test_anomaly": int((y == 1).sum())})
        decisions[int(section)] = _decisions(y, s, threshold["value"])
    record = {"machine": machine, "group": group, "sections": sorted(int(s) for s in train["section"].unique()),
              "n_train_clips": len(train), "n_vectors": len(tr_x), "n_val_vectors": hist["n_val"],
              "history": hist, "threshold": threshold, "decisions": decisions, "feature_seconds": feature_s,
              "train_seconds": train_s, "score_seconds": score_s,
              "cpu_seconds": dict(zip(("features", "train", "score"), cpu)), "config": asdict(cfg)}
    return rows, record


def run_ae(root: str | Path, machine_types: Sequence[str] | None = None, sections: Sequence[int] = SECTIONS,
           cfg: AEConfig = AEConfig(), workers: int | None = 1, progress: bool = True,
           clip_scores: list | None = None, models: list | None = None) -> pd.DataFrame:
    """Run the DCASE 2021 autoencoder baseline on a DCASE-layout data root (real or synthetic).

    Indexes ``root`` (:func:`minasd.data.index`), takes the source-domain clips of the chosen
    types and sections (:func:`minasd.data.protocol_clips`, path order) and, per machine type and
    group of ``cfg.train_groups``, trains one model on the group's training clips and scores the
    group's labelled test clips.

    Args:
        workers: feature processes (None = all CPU cores; 1 = in this process).
        clip_scores: if a list, one dict per scored test clip is appended (``machine, section,
            clip, label, score``, as :func:`minasd.baseline.evaluate_features`).
        models: if a list, one record per trained model is appended: machine, group, sections,
            n_train_clips, n_vectors, n_val_vectors, history (:func:`fit_ae`), threshold
            (:func:`gamma_threshold`), decisions (per section: tp, fp, fn, tn, precision, recall,
            f1 of score > threshold), feature_seconds, train_seconds, score_seconds (wall; scoring
            includes the training clips' scores for the threshold), cpu_seconds (the same three as
            this process's CPU time: features, train, score; feature workers not counted), config.

    Returns:
        One row per (machine, section) with training and labelled test clips of both labels:
        machine, section, auc, pauc, n_train, n_test_normal, n_test_anomaly (the columns of
        :func:`minasd.baseline.run_baseline`).
    """
    from .data import index, protocol_clips

    df = index(root)
    train = protocol_clips(df, "train", machines=machine_types, sections=sections)
    test = protocol_clips(df, "test", machines=machine_types, sections=sections)
    test = test[test["label"].notna()]
    if train.empty or test.empty:
        raise ValueError(f"no source-domain train and labelled test clips of types {machine_types} / "
                         f"sections {list(sections)} under {root}")
    rows = []
    for machine in dict.fromkeys(train["machine"]):
        for group in cfg.train_groups:
            secs = [int(s) for s in sections if int(s) in GROUPS[group]]
            tr = train[(train["machine"] == machine) & train["section"].isin(secs)]
            te = test[(test["machine"] == machine) & test["section"].isin(secs)]
            if tr.empty or te.empty:
                continue
            part, record = _run_group(machine, group, tr, te, cfg, workers, progress, clip_scores)
            rows += part
            if models is not None:
                models.append(record)
    return pd.DataFrame(rows, columns=["machine", "section", "auc", "pauc", "n_train", "n_test_normal",
                                       "n_test_anomaly"])
