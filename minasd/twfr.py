"""TWFR-GMM (Guan et al., ICASSP 2023): a Gaussian mixture on time-weighted log-mel, beside the stack.

Each clip becomes one 128-d vector: per mel bin, the clip's frames sorted from loudest to
quietest and averaged with weights r^0, r^1, r^2, ... (normalised to sum 1): global weighted
ranking pooling (GWRP).  r = 1 is mean pooling, r = 0 is max pooling, and between them about
1 / (1 - r) of the loudest frames count.  One Gaussian mixture per section is fitted on the
section's normal training vectors; a test clip's score is the negative log density of its
vector (higher = more anomalous).  r and the number of components are chosen per machine
type on the development sections.

Every setting below is the authors' (repository ``liuyoude/TWFR-GMM``, HEAD 31c8109, read for
issue 22; file and line of each in brackets) unless it says "ours".

Features (``utils.py`` ``Wave2Mel`` l.319-337, ``extractor.py`` l.55-69):

* audio at 16 kHz, truncated to its first 10 s (``extractor.py`` l.62-63; ``config.yaml`` l.38).
  Ours: read with :func:`minasd.data.load_audio` (channel 0 of a multichannel file, polyphase
  resampling of a file at another rate); the authors' librosa load averages channels and uses
  librosa's resampler.  DCASE clips are mono at 16 kHz, so both read the same samples.
* torchaudio ``MelSpectrogram`` with n_fft 1024, win_length 1024, hop 512, power 2, 128 mels,
  and torchaudio's defaults for the rest: periodic Hann window, centred frames with reflect
  padding, f_min 0, f_max 8 kHz, HTK mel scale, no filter normalisation (``utils.py``
  l.320-332).  A 10 s clip gives 313 frames.
* ``AmplitudeToDB(stype="power")``: 10 log10(max(mel power, 1e-10)), reference 1, no top_db
  (``utils.py`` l.333).  No standardisation of the features.

Pooling (``utils.py`` ``gwrp`` l.358-367; ``extractor.py`` l.71-85): per mel bin, frames
sorted descending, weights r^i (i = 0..T-1, 0^0 = 1) divided by their sum.  Ours: the whole r
grid is pooled with one matrix product on the sorted frames (:func:`gwrp_grid`), and the two
ends are taken as the plain max and mean of the frames, so that r = 0 and r = 1 are exactly
max and mean pooling (the product differs from them only by float rounding).  Pooling is done
in float64.

Mixture (``gmmer.py`` ``fit_GMM`` l.41-46, ``test`` l.87-136): scikit-learn
``GaussianMixture`` with full covariance, reg_covar 1e-6, tol 1e-6 and the library defaults
max_iter 100, n_init 1, init_params "kmeans"; features raw (dB).  One mixture per section.

* Training clips: ours: the section's source-domain normal training clips
  (:func:`minasd.data.protocol_clips`, the rule of every stage of this package).  The authors
  used source and target training clips (``gmmer.py`` l.93-95); on DCASE 2021 that is 3 of
  1,003 clips per section, and the synthetic sets have no target domain.
* random_state: ours: ``TWFRConfig.seed`` (default 0); :mod:`minasd.studies.experiment` passes
  its seed, so with k > 1 the seeds' fits differ by the mixtures' initialisation, and with k = 1
  the fit is the sample mean and covariance (plus ``reg_covar``) whatever the seed.  The authors
  pass None, which draws from numpy's global state seeded 526 (``run.py`` l.90).
* A section with fewer training clips than components (or a fit scikit-learn refuses): that
  candidate is skipped (ours; the authors' sections never had that few clips), and a section
  with fewer training clips than the chosen k is left out of the results table.

Score (``gmmer.py`` l.130, l.233, l.303): the negative of the best single component's log
density, max over k of log N(x | mu_k, Sigma_k), without the mixing weights.  Ours: computed
from the fitted mixture's public ``means_`` and ``precisions_cholesky_`` (:func:`component_nll`),
not from scikit-learn's private method.  ``TWFRConfig.score = "mixture_nll"`` gives the
mixture's negative log-likelihood instead (the two agree for one component).

Selection (``gmmer.py`` ``search`` l.245-366; ``run.py`` l.50-79): r in 0, 0.02, ..., 1 (51
values) and the number of components in (1, 2, 4, 8), candidates in the authors' order
(components outer, r inner, ascending), a candidate wins only if strictly better, so ties go
to the first.  Ours: the criterion is :func:`minasd.selection.select_on_dev`, the harmonic mean
of AUC and pAUC (p = 0.1) over sections 00-02 only, the rule of every choice in this package;
sections 03-05 are never read.  The authors summed the harmonic means of source AUC, target AUC
and pAUC, and chose on the labelled development test clips whose numbers their README reports
(``config.yaml`` l.21-28; README "Todo" l.47-48), so their development figures are in-sample.

Named settings (:data:`SETTINGS`): ``twfr_gmm`` (the grid above), ``mean_gmm`` (r = 1 only)
and ``max_gmm`` (r = 0 only), the two ends the authors report as mean-GMM and max-GMM; each of
these still chooses its number of components on 00-02, as the authors chose one per pooling
(``config.yaml`` l.46-61).

Threads (ours): every mixture fit and score runs with one BLAS/OpenMP thread
(``threadpoolctl``).  The fits are small (tens of 128-d vectors); with the default thread pools
scikit-learn's k-means initialisation took 0.4-1.2 s per fit on a busy 2-core machine against
0.01-0.04 s on one thread, and one thread also keeps the numbers independent of the core count.

Caveat (issue 22 design note, section 4): at the protocol size a section has 60 training clips
for a 128-d full covariance, so with k components each covariance has rank below 128 and
reg_covar is what makes it invertible; the scores then mostly measure the distance to the span
of the training vectors.  The setting is run as published.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .config import DEV_SECTIONS, SAMPLE_RATE, SECTIONS


@dataclass(frozen=True)
class TWFRConfig:
    """Settings of TWFR-GMM (the authors' values; see the module docstring for where each comes from).

    Attributes:
        sample_rate: Hz.
        n_mels, n_fft, hop_length, power: log-mel settings (HTK mel scale, no filter normalisation).
        amin: floor of the mel power before 10 log10.
        clip_seconds: only the first this many seconds of a clip are used.
        r_grid: GWRP decay values searched (0 = max pooling, 1 = mean pooling).
        k_grid: mixture sizes searched, in the order candidates are tried.
        covariance_type, reg_covar, tol, max_iter: the scikit-learn mixture settings.
        score: ``"max_component"`` (the authors' code) or ``"mixture_nll"``.
        seed: random state of every mixture fit (its initialisation; no effect when k = 1).
    """

    sample_rate: int = SAMPLE_RATE
    n_mels: int = 128
    n_fft: int = 1024
    hop_length: int = 512
    power: float = 2.0
    amin: float = 1e-10
    clip_seconds: float = 10.0
    r_grid: tuple[float, ...] = tuple(i / 50 for i in range(51))
    k_grid: tuple[int, ...] = (1, 2, 4, 8)
    covariance_type: str = "full"
    reg_covar: float = 1e-6
    tol: float = 1e-6
    max_iter: int = 100
    score: str = "max_component"
    seed: int = 0

    def __post_init__(self):
        if self.score not in ("max_component", "mixture_nll"):
            raise ValueError(f"score must be 'max_component' or 'mixture_nll', got {self.score!r}")
        if not self.r_grid or any(not 0.0 <= r <= 1.0 for r in self.r_grid):
            raise ValueError(f"r_grid needs values in [0, 1], got {self.r_grid}")
        if not self.k_grid or any(int(k) < 1 for k in self.k_grid):
            raise ValueError(f"k_grid needs positive component counts, got {self.k_grid}")


#: The named settings: TWFR-GMM and its two ends (mean-GMM, max-GMM), each choosing k on 00-02.
SETTINGS: dict[str, TWFRConfig] = {"twfr_gmm": TWFRConfig(), "mean_gmm": TWFRConfig(r_grid=(1.0,)),
                                   "max_gmm": TWFRConfig(r_grid=(0.0,))}


# --------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _mel_transform(sample_rate: int, n_fft: int, hop_length: int, power: float, n_mels: int):
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, win_length=n_fft,
                                                hop_length=hop_length, power=power, n_mels=n_mels)


def twfr_logmel(waves, cfg: TWFRConfig = TWFRConfig()):
    """The authors' log-mel of waveforms: (B, n_mels, frames) float32 torch tensor, dB.

    Args:
        waves: array or tensor (B, samples) or (samples,) at ``cfg.sample_rate``; samples past
            ``cfg.clip_seconds`` are dropped.

    >>> import torch
    >>> tuple(twfr_logmel(torch.zeros(1, 160000)).shape), float(twfr_logmel(torch.zeros(1, 1024)).max())
    ((1, 128, 313), -100.0)
    """
    import torch

    x = torch.as_tensor(np.asarray(waves, dtype=np.float32))
    if x.ndim == 1:
        x = x[None]
    x = x[:, :int(round(cfg.clip_seconds * cfg.sample_rate))]
    mel = _mel_transform(cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.power, cfg.n_mels)
    with torch.no_grad():
        return 10.0 * torch.log10(torch.clamp(mel(x), min=cfg.amin))


def gwrp_weights(r: float, n: int) -> np.ndarray:
    """GWRP weights r^i / sum_j r^j for i = 0..n-1, float64 (r = 0: one-hot on the largest; r = 1: uniform).

    >>> gwrp_weights(0.5, 3).round(4).tolist(), gwrp_weights(0.0, 3).tolist()
    ([0.5714, 0.2857, 0.1429], [1.0, 0.0, 0.0])
    """
    w = float(r) ** np.arange(n, dtype=np.float64)  # 0.0 ** 0 == 1: max pooling at r = 0
    return w / w.sum()


def gwrp_grid(logmel, rs: Sequence[float]) -> np.ndarray:
    """GWRP of log-mel frames for every r of ``rs`` at once: (..., n_mels, T) -> (..., n_mels, len(rs)), float64.

    The frames of each bin are sorted once (descending) and pooled with one matrix product
    against the (T, len(rs)) weight matrix; columns with r = 0 and r = 1 are the plain max and
    mean of the frames, exactly.

    >>> x = np.array([[1.0, 3.0, 2.0]])
    >>> gwrp_grid(x, [0.0, 0.5, 1.0]).round(4).tolist()
    [[3.0, 2.4286, 2.0]]
    """
    x = np.asarray(logmel, dtype=np.float64)
    rs = [float(r) for r in rs]
    ranked = -np.sort(-x, axis=-1)  # (..., n_mels, T), loudest frame first
    weights = np.stack([gwrp_weights(r, x.shape[-1]) for r in rs], axis=1)  # (T, R)
    pooled = ranked @ weights
    for j, r in enumerate(rs):
        if r == 0.0:
            pooled[..., j] = x.max(axis=-1)
        elif r == 1.0:
            pooled[..., j] = x.mean(axis=-1)
    return pooled


def gwrp(logmel, r: float) -> np.ndarray:
    """GWRP of log-mel frames at one r: (..., n_mels, T) -> (..., n_mels), float64."""
    return gwrp_grid(logmel, [r])[..., 0]


def _pooled_of_paths(job: tuple[Sequence[str], TWFRConfig]) -> np.ndarray:
    import torch
    from threadpoolctl import threadpool_limits

    from .data import load_audio

    paths, cfg = job
    before = torch.get_num_threads()  # restored: with workers=1 this runs in the caller's process
    torch.set_num_threads(1)
    try:
        out = []
        with threadpool_limits(limits=1):
            for p in paths:
                wave = load_audio(p, sample_rate=cfg.sample_rate, min_seconds=None)
                if wave.shape[0] <= cfg.n_fft // 2:
                    raise ValueError(f"clip {p} has {wave.shape[0]} samples; TWFR-GMM's centred {cfg.n_fft}-point "
                                     f"frames need more than {cfg.n_fft // 2} "
                                     f"({(cfg.n_fft // 2 + 1) / cfg.sample_rate:.3f} s)")
                out.append(gwrp_grid(twfr_logmel(wave, cfg)[0].numpy(), cfg.r_grid))
    finally:
        torch.set_num_threads(before)
    return np.stack(out) if out else np.zeros((0, cfg.n_mels, len(cfg.r_grid)))


def clip_pooled(paths: Sequence[str], cfg: TWFRConfig = TWFRConfig(), workers: int | None = None,
                progress: bool = True) -> np.ndarray:
    """GWRP vectors of audio files for the whole r grid: (len(paths), n_mels, len(cfg.r_grid)), float64.

    Args:
        paths: audio files (any length over half a frame; the first ``cfg.clip_seconds`` are used).
        workers: processes (default: all CPU cores; 1 = in this process).
        progress: show a tqdm progress bar.

    Raises:
        ValueError: an unreadable, empty or too short clip; the message names the file.

    Book: chapter 1.
    """
    from minasd.progress import tqdm

    paths = [str(p) for p in paths]
    chunks = [(paths[i:i + 32], cfg) for i in range(0, len(paths), 32)]
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(chunks)))
    bar = tqdm(total=len(paths), desc="TWFR features", unit="clip", disable=not progress)
    parts = []
    if n_workers == 1:
        for c in chunks:
            parts.append(_pooled_of_paths(c))
            bar.update(len(c[0]))
    else:
        import multiprocessing as mp

        ctx = mp.get_context("fork") if hasattr(os, "fork") else mp.get_context()
        with ctx.Pool(n_workers) as pool:
            for c, f in zip(chunks, pool.imap(_pooled_of_paths, chunks)):
                parts.append(f)
                bar.update(len(c[0]))
    bar.close()
    return np.concatenate(parts) if parts else np.zeros((0, cfg.n_mels, len(cfg.r_grid)))


# --------------------------------------------------------------------------------------
# mixture and score
# --------------------------------------------------------------------------------------


def fit_section(train_features: np.ndarray, k: int, cfg: TWFRConfig = TWFRConfig()):
    """Fit one section's mixture of ``k`` components on its pooled training vectors (N, D); returns it.

    Raises:
        ValueError: fewer training vectors than components.
    """
    from sklearn.mixture import GaussianMixture

    x = np.asarray(train_features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < max(int(k), 1):
        raise ValueError(f"a {k}-component mixture needs at least {k} training clips as (N, D), got {x.shape}")
    gmm = GaussianMixture(n_components=int(k), covariance_type=cfg.covariance_type, reg_covar=cfg.reg_covar,
                          tol=cfg.tol, max_iter=cfg.max_iter, random_state=cfg.seed)
    return gmm.fit(x)


def component_log_density(gmm, features: np.ndarray) -> np.ndarray:
    """log N(x | mu_k, Sigma_k) of each row under each component, (N, K).

    Computed from the fitted mixture's public ``means_`` and ``precisions_cholesky_``
    (any of scikit-learn's four covariance types).
    """
    x = np.asarray(features, dtype=np.float64)
    mu, pc, kind = gmm.means_, gmm.precisions_cholesky_, gmm.covariance_type
    n_comp, d = mu.shape
    if kind == "full":
        log_det = np.log(np.diagonal(pc, axis1=1, axis2=2)).sum(axis=1)  # (K,)
        maha = np.stack([(((x - mu[k]) @ pc[k]) ** 2).sum(axis=1) for k in range(n_comp)], axis=1)
    elif kind == "tied":
        log_det = np.full(n_comp, np.log(np.diag(pc)).sum())
        maha = np.stack([(((x - mu[k]) @ pc) ** 2).sum(axis=1) for k in range(n_comp)], axis=1)
    elif kind == "diag":
        log_det = np.log(pc).sum(axis=1)
        maha = (((x[:, None, :] - mu[None]) * pc[None]) ** 2).sum(axis=2)
    elif kind == "spherical":
        log_det = d * np.log(pc)
        maha = ((x[:, None, :] - mu[None]) ** 2).sum(axis=2) * pc[None] ** 2
    else:
        raise ValueError(f"unknown covariance_type {kind!r}")
    return -0.5 * (d * np.log(2 * np.pi) + maha) + log_det[None, :]


def component_nll(gmm, features: np.ndarray) -> np.ndarray:
    """The authors' score: minus the best single component's log density, (N,); higher = more anomalous."""
    return -component_log_density(gmm, features).max(axis=1)


def anomaly_scores(gmm, features: np.ndarray, cfg: TWFRConfig = TWFRConfig()) -> np.ndarray:
    """Scores of pooled vectors (N, D) under a section's mixture, by ``cfg.score``; (N,)."""
    if cfg.score == "mixture_nll":
        return -gmm.score_samples(np.asarray(features, dtype=np.float64))
    return component_nll(gmm, features)


# --------------------------------------------------------------------------------------
# grid, selection, evaluation
# --------------------------------------------------------------------------------------


def _section_parts(df: pd.DataFrame, section: int) -> tuple[np.ndarray, pd.DataFrame] | None:
    part = df[df["section"] == section]
    tr = part.index[part["split"] == "train"].to_numpy()
    te = part[(part["split"] == "test") & part["label"].notna()]
    if len(tr) == 0 or te.empty or te["label"].nunique() < 2:
        return None
    return tr, te


def grid_rows(df: pd.DataFrame, pooled: np.ndarray, cfg: TWFRConfig = TWFRConfig(),
              sections: Sequence[int] = DEV_SECTIONS) -> list[dict]:
    """AUC and pAUC of every (k, r) candidate on each of ``sections`` of one machine type.

    Args:
        df: one machine type's clips (``section``, ``split``, ``label``), index 0..N-1
            aligned with ``pooled``.
        pooled: (N, n_mels, len(cfg.r_grid)) from :func:`clip_pooled`.
        sections: the sections scored (the development sections: only these are read).

    Returns:
        one dict per (k, r, section), components outer and r inner (the authors' order):
        ``k, r, section, auc, pauc, skipped`` (a reason, or None).
    """
    from .metrics import auc_pauc

    parts = {int(s): _section_parts(df, int(s)) for s in sections}
    parts = {s: p for s, p in parts.items() if p is not None}
    rows = []
    for k in cfg.k_grid:
        for j, r in enumerate(cfg.r_grid):
            for s, (tr, te) in parts.items():
                row = {"k": int(k), "r": float(r), "section": s, "auc": None, "pauc": None, "skipped": None}
                if len(tr) < k:
                    row["skipped"] = f"{k} components but {len(tr)} training clips in section {s:02d}"
                    rows.append(row)
                    continue
                try:
                    gmm = fit_section(pooled[tr, :, j], k, cfg)
                except ValueError as err:  # scikit-learn: a component's covariance is ill-defined
                    row["skipped"] = f"mixture fit failed in section {s:02d}: {err}"
                    rows.append(row)
                    continue
                y = te["label"].astype(int).to_numpy()
                row["auc"], row["pauc"] = auc_pauc(y, anomaly_scores(gmm, pooled[te.index, :, j], cfg))
                rows.append(row)
    return rows


def choose(rows: list[dict], cfg: TWFRConfig = TWFRConfig()) -> tuple[dict, list[dict], str]:
    """The (k, r) with the best harmonic mean of AUC and pAUC over sections 00-02.

    The rule is :func:`minasd.selection.select_on_dev` (ties to the first candidate in the order of ``rows``).

    Returns:
        ``(chosen, table, how)``: ``{"k", "r"}``, one row per candidate, and ``"dev"``; a
        grid of one candidate needs no labels (``how = "single candidate"``).

    Raises:
        ValueError: several candidates and none has AUC and pAUC on every development section.
    """
    from .selection import select_on_dev

    try:
        chosen, table = select_on_dev(rows, ("k", "r"), DEV_SECTIONS)
        return chosen, table, "dev"
    except ValueError:
        if len(cfg.k_grid) == 1 and len(cfg.r_grid) == 1:
            only = {"k": int(cfg.k_grid[0]), "r": float(cfg.r_grid[0])}
            return only, [{**only, "dev_hmean": None, "n_dev_sections": 0, "skipped": None, "chosen": True}], \
                "single candidate"
        raise


def _machine_table(machine: str, df: pd.DataFrame, pooled: np.ndarray, cfg: TWFRConfig, chosen: dict,
                   clip_scores: list | None) -> list[dict]:
    from .metrics import auc_pauc

    j, k, rows = list(cfg.r_grid).index(chosen["r"]), int(chosen["k"]), []
    for s in sorted(df["section"].unique()):
        parts = _section_parts(df, int(s))
        if parts is None or len(parts[0]) < k:
            continue
        tr, te = parts
        score = anomaly_scores(fit_section(pooled[tr, :, j], k, cfg), pooled[te.index, :, j], cfg)
        y = te["label"].astype(int).to_numpy()
        if clip_scores is not None:
            clip_scores += [{"machine": machine, "section": int(s), "clip": os.path.basename(p), "label": int(lab),
                             "score": float(v)} for p, lab, v in zip(te["path"], y, score)]
        auc, pauc = auc_pauc(y, score, section=f"{machine} section {int(s):02d}")
        rows.append({"machine": machine, "section": int(s), "auc": auc, "pauc": pauc, "n_train": len(tr),
                     "n_test_normal": int((y == 0).sum()), "n_test_anomaly": int((y == 1).sum())})
    return rows


def evaluate_pooled(df: pd.DataFrame, pooled: np.ndarray, cfg: TWFRConfig = TWFRConfig(),
                    clip_scores: list | None = None, selection: list | None = None,
                    grid: list | None = None) -> pd.DataFrame:
    """Choose (k, r) per machine type on 00-02, then fit each section's mixture and score its test clips.

    Args:
        df: clips with ``machine, section, split, label`` (and ``path`` for ``clip_scores``),
            aligned with ``pooled``.
        pooled: (len(df), n_mels, len(cfg.r_grid)) from :func:`clip_pooled`.
        clip_scores: if a list, one dict per scored test clip is appended
            (``machine, section, clip, label, score``, as :func:`minasd.baseline.evaluate_features`).
        selection: if a list, one dict per (machine, candidate) is appended: ``machine, k, r,
            dev_hmean, n_dev_sections, skipped, chosen, how``.
        grid: if a list, the development rows of :func:`grid_rows` are appended, with ``machine``.

    Returns:
        DataFrame, one row per (machine, section) with training and labelled test clips:
        machine, section, auc, pauc, n_train, n_test_normal, n_test_anomaly (the columns of
        :func:`minasd.baseline.evaluate_features`), for the chosen (k, r) of the type.
    """
    from importlib import import_module

    from threadpoolctl import threadpool_limits

    import_module("sklearn.mixture")  # loads scipy's BLAS now, so that the thread limit below covers it

    df = df.reset_index(drop=True)
    out = []
    for machine, part in df.groupby("machine", sort=False):
        sub = part.reset_index(drop=True)
        feats = pooled[part.index.to_numpy()]
        with threadpool_limits(limits=1):  # one BLAS/OpenMP thread: see "Threads" in the module docstring
            rows = grid_rows(sub, feats, cfg, DEV_SECTIONS)
        try:
            chosen, table, how = choose(rows, cfg)
        except ValueError as err:
            raise ValueError(f"TWFR-GMM for {machine}: cannot choose r and k on sections 00-02 ({err})") from None
        if grid is not None:
            grid += [{"machine": machine, **r} for r in rows]
        if selection is not None:
            selection += [{"machine": machine, **r, "how": how} for r in table]
        with threadpool_limits(limits=1):
            out += _machine_table(machine, sub, feats, cfg, chosen, clip_scores)
    return pd.DataFrame(out, columns=["machine", "section", "auc", "pauc", "n_train", "n_test_normal",
                                      "n_test_anomaly"])


def run_twfr(root: str | Path, machine_types: Sequence[str] | None = None, sections: Sequence[int] = SECTIONS,
             cfg: TWFRConfig = TWFRConfig(), workers: int | None = None, progress: bool = True,
             clip_scores: list | None = None, selection: list | None = None,
             grid: list | None = None) -> pd.DataFrame:
    """Run TWFR-GMM on a DCASE-layout data root (real or synthetic).

    Indexes ``root`` (:func:`minasd.data.index`), keeps the source-domain clips of the chosen
    types and sections (:func:`minasd.data.protocol_clips`, in path order), pools their log-mel
    over the whole r grid once, chooses (k, r) per type on sections 00-02 and evaluates every
    section with it (:func:`evaluate_pooled`; ``clip_scores``, ``selection`` and ``grid`` as there).

    Returns:
        The per-section DataFrame (columns of :func:`minasd.baseline.run_baseline`); pass it to
        :func:`minasd.metrics.section_table` for harmonic means.

    >>> run_twfr("data/synth", ["fan"], cfg=SETTINGS["max_gmm"])  # doctest: +SKIP

    Book: chapter 1.
    """
    from .data import protocol_frame

    df = protocol_frame(root, machine_types, sections)
    pooled = clip_pooled(df["path"].tolist(), cfg, workers=workers, progress=progress)
    return evaluate_pooled(df, pooled, cfg, clip_scores=clip_scores, selection=selection, grid=grid)


__all__ = ["TWFRConfig", "SETTINGS", "twfr_logmel", "gwrp_weights", "gwrp_grid", "gwrp", "clip_pooled",
           "fit_section", "component_log_density", "component_nll", "anomaly_scores", "grid_rows", "choose",
           "evaluate_pooled", "run_twfr"]
