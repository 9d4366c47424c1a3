"""Figures of the book (chapters 1-9).

Every function returns a :class:`matplotlib.figure.Figure` built without
pyplot (no global figure state, nothing shown twice in a notebook, no
``plt.show``), and every figure prints its ``caption``: one line saying which
data (real DCASE 2021 or synthetic, which run, which split) and which scale
produced it.  The chapter decides whether to display or save it.
"""
from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .config import FEATURES

OTHER_GROUP = "other types"  # group name drawn in grey in plot_tsne


def _check_caption(caption: str) -> None:
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError("every figure needs a caption saying which data and scale produced it")


def _figure(caption: str, width: float = 6.4, height: float = 4.2, **subplot_kw) -> tuple[Figure, np.ndarray]:
    _check_caption(caption)
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(squeeze=False, **subplot_kw)
    # The caption is the figure's supxlabel: constrained layout reserves room for it.
    fig.supxlabel("\n".join(textwrap.wrap(caption, width=int(width * 15))), fontsize=7.5, ha="left", x=0.01,
                  color="0.3")
    return fig, axes


def plot_roc(curves: Mapping[str, tuple], *, caption: str, max_fpr: float | None = 0.1,
             title: str | None = None) -> Figure:
    """ROC curves, one line per entry of ``curves`` (name -> (fpr, tpr)).

    The region FPR <= ``max_fpr`` (where pAUC is measured) is shaded.  Book: chapter 5.
    """
    fig, axes = _figure(caption, 4.8, 4.6)
    ax = axes[0, 0]
    if max_fpr:
        ax.axvspan(0, max_fpr, color="0.92", zorder=0, label=f"pAUC region (FPR <= {max_fpr:g})")
    ax.plot([0, 1], [0, 1], ls=":", color="0.5", lw=1)
    for name, (fpr, tpr) in curves.items():
        ax.plot(fpr, tpr, drawstyle="default", label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false-positive rate", ylabel="true-positive rate",
           title=title or "ROC", aspect="equal")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_score_distributions(scores, labels, *, caption: str, names: tuple[str, str] = ("normal", "anomalous"),
                             threshold: float | None = None, bins: int = 30, title: str | None = None,
                             xlabel: str = "anomaly score (higher = more anomalous)") -> Figure:
    """Histograms of anomaly scores of normal (label 0) and anomalous (label 1) clips.

    Book: chapter 5.
    """
    s, y = np.asarray(scores, dtype=float), np.asarray(labels)
    fig, axes = _figure(caption)
    ax = axes[0, 0]
    edges = np.histogram_bin_edges(s, bins=bins)
    for value, name, color in ((0, names[0], "tab:blue"), (1, names[1], "tab:red")):
        if (y == value).any():
            ax.hist(s[y == value], bins=edges, alpha=0.55, color=color, label=f"{name} (n={(y == value).sum()})")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.3g}")
    ax.set(xlabel=xlabel, ylabel="clips", title=title or "score distributions")
    ax.legend(fontsize=8)
    return fig


def tsne_2d(embeddings, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE coordinates of (N, D) embeddings (stored in result files for the book).

    Perplexity must be below N; for small N it is lowered to ``(N - 1) / 3``
    (a warning says so) rather than failing.

    Returns:
        (N, 2) float32 coordinates.  Book: chapter 8.
    """
    import warnings

    from sklearn.manifold import TSNE

    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 4:
        raise ValueError(f"t-SNE needs (N, D) embeddings with N >= 4, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings for t-SNE contain NaN or inf")
    limit = (x.shape[0] - 1) / 3.0
    if perplexity > limit:
        warnings.warn(f"perplexity {perplexity} too large for {x.shape[0]} points; using {limit:.1f}", stacklevel=2)
        perplexity = limit
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(x).astype(np.float32)


def plot_tsne(embeddings, groups: Sequence[str], anomalous=None, *, caption: str, coords=None,
              perplexity: float = 30.0, seed: int = 0, title: str | None = None) -> Figure:
    """The paper's Fig. 3: t-SNE of embeddings, colour = group, marker = normal/anomalous.

    Typical groups: ``"section 03"``, ``"section 04"``, ... for the target type's
    test clips and ``"other types"`` (drawn in grey, behind) for the other
    machine types.

    Args:
        embeddings: (N, D) embeddings, or None when ``coords`` is given.
        groups: (N,) group name of each point.
        anomalous: (N,) bool, True for anomalous clips (marker x); None = all normal.
        coords: precomputed (N, 2) coordinates (e.g. from a result file); skips t-SNE.
        perplexity, seed: passed to :func:`tsne_2d`.

    Book: chapter 8.
    """
    xy = np.asarray(coords if coords is not None else tsne_2d(embeddings, seed, perplexity), dtype=float)
    g = np.asarray(groups).astype(str)
    a = np.zeros(len(g), bool) if anomalous is None else np.asarray(anomalous, bool)
    if xy.shape != (len(g), 2) or a.shape != g.shape:
        raise ValueError(f"coords {xy.shape}, groups {g.shape} and anomalous {a.shape} must describe the same N points")
    fig, axes = _figure(caption, 6.4, 5.2)
    ax = axes[0, 0]
    names = [n for n in dict.fromkeys(g) if n != OTHER_GROUP]
    colors = {n: f"C{i % 10}" for i, n in enumerate(names)}
    colors[OTHER_GROUP] = "0.75"
    for name in ([OTHER_GROUP] if OTHER_GROUP in g else []) + names:
        for flag, marker, kind in ((False, "o", "normal"), (True, "x", "anomalous")):
            m = (g == name) & (a == flag)
            if m.any():
                ax.scatter(xy[m, 0], xy[m, 1], s=10 if marker == "o" else 14, marker=marker, c=colors[name],
                           linewidths=0.8, alpha=0.8, label=f"{name}, {kind}")
    ax.set(xticks=[], yticks=[], title=title or "t-SNE of embeddings")
    ax.legend(fontsize=7, markerscale=1.5, loc="best")
    return fig


#: Columns of ``log.jsonl`` drawn by :func:`plot_training_curves`, and how.  Losses share
#: one panel (train solid, validation dashed, one colour per term of Eq. 3); accuracies
#: get their own panel on [0, 1].  Everything else in the log (seconds, crops per second,
#: learning rate, the ``best`` flag) is bookkeeping, not a training curve, and is not drawn.
LOSS_COLUMNS: dict[str, tuple[str, str]] = {
    "train_loss": ("C0", "-"), "val_loss": ("C0", "--"),
    "train_machine": ("C1", "-"), "val_machine": ("C1", "--"),
    "train_product": ("C2", "-"), "val_product": ("C2", "--"),
}
ACCURACY_COLUMNS: dict[str, tuple[str, str]] = {
    "val_section_acc": ("C3", "-"), "val_machine_acc": ("C4", "-"),
}


def plot_training_curves(records: Sequence[Mapping], *, caption: str, keys: Sequence[str] | None = None,
                         title: str | None = None) -> Figure:
    """Per-epoch curves from ``log.jsonl`` records: losses left, accuracies right, x = epoch.

    Always two panels, so every training figure reads the same way.  The loss panel
    holds ``train_loss``/``val_loss`` (Eq. 3) and, where logged, their parts
    ``*_machine`` and ``*_product``; the accuracy panel holds ``val_section_acc`` and
    ``val_machine_acc`` on a fixed [0, 1] axis.  Other log columns (seconds, crops,
    learning rate) are never drawn: on a shared axis they flattened the curves.

    Args:
        records: one dict per epoch, each with an integer ``epoch``.
        caption: which data (real or synthetic), scale, profile and seeds produced the
            run; the caller knows them, the log does not.
        keys: columns to draw, a subset of :data:`LOSS_COLUMNS` and
            :data:`ACCURACY_COLUMNS`; default every one of them present in the log.
        title: title of the loss panel (default "training").

    Raises:
        ValueError: no records, a record without ``epoch``, a requested column that is
            not a loss or an accuracy, no drawable column, or an accuracy outside [0, 1].

    >>> recs = [{"epoch": e, "train_loss": 1.0 / e, "val_section_acc": 0.5, "lr": 1e-3} for e in (1, 2)]
    >>> [len(ax.get_lines()) for ax in plot_training_curves(recs, caption="synthetic tiny, seed 0").axes]
    [1, 1]

    Book: chapter 4.
    """
    if not records:
        raise ValueError("no training-log records to plot")
    for i, r in enumerate(records):
        if not isinstance(r.get("epoch"), int) or isinstance(r.get("epoch"), bool):
            raise ValueError(f"training-log record {i} has no integer 'epoch' (keys: {sorted(r)})")
    known = {**LOSS_COLUMNS, **ACCURACY_COLUMNS}
    if keys is not None:
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise ValueError(f"plot_training_curves draws losses and accuracies only; {unknown} is neither "
                             f"(choose from {list(known)})")
    present = {k for r in records for k, v in r.items() if v is not None}
    wanted = [k for k in known if k in present and (keys is None or k in keys)]
    if not wanted:
        raise ValueError(f"no loss or accuracy column to plot in the training log (keys: {sorted(present)})")

    fig, axes = _figure(caption, 8.4, 3.6, ncols=2)
    ax_loss, ax_acc = axes[0]
    for ax, columns in ((ax_loss, LOSS_COLUMNS), (ax_acc, ACCURACY_COLUMNS)):
        for k in (k for k in columns if k in wanted):
            pts = [(r["epoch"], float(r[k])) for r in records if r.get(k) is not None]  # NaN draws a gap
            y = np.array([p[1] for p in pts])
            outside = y[(y < 0) | (y > 1)]
            if columns is ACCURACY_COLUMNS and outside.size:
                raise ValueError(f"{k} must be a fraction in [0, 1]; the log holds {outside[0]:g}")
            color, ls = columns[k]
            # accuracies may sit on 1.0, the top of their fixed axis: draw those markers whole
            ax.plot([p[0] for p in pts], y, color=color, ls=ls, marker=".", label=k,
                    clip_on=columns is LOSS_COLUMNS)
        if ax.get_lines():
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "not in this log", transform=ax.transAxes, ha="center", va="center", color="0.5")
    ax_loss.set(xlabel="epoch", ylabel="loss", title=title or "training")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (validation)", ylim=(0, 1), title="validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def plot_spectrogram(logmel, *, caption: str, title: str | None = None, cfg=FEATURES) -> Figure:
    """A log-mel spectrogram (n_mels, frames), time in seconds on x.  Book: chapter 2."""
    m = np.asarray(logmel, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"log-mel must be (n_mels, frames), got shape {m.shape}")
    fig, axes = _figure(caption, 6.4, 3.6)
    ax = axes[0, 0]
    seconds = m.shape[1] * cfg.hop_length / cfg.sample_rate
    im = ax.imshow(m, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, m.shape[0]))
    ax.set(xlabel="time [s]", ylabel=f"mel bin ({cfg.f_min:g}-{cfg.f_max:g} Hz)", title=title or "log-mel spectrogram")
    fig.colorbar(im, ax=ax, label="log mel power")
    return fig


def plot_spectrogram_grid(logmels: Mapping[str, object], *, caption: str, ncols: int = 4,
                          title: str | None = None, cfg=FEATURES) -> Figure:
    """Several log-mel spectrograms (name -> (n_mels, frames)) on a shared colour scale.

    Book: chapter 1 (one panel per machine type, or per anomaly kind).
    """
    if not logmels:
        raise ValueError("no spectrograms to plot")
    names = list(logmels)
    mats = [np.asarray(logmels[k], dtype=float) for k in names]
    for name, m in zip(names, mats):
        if m.ndim != 2:
            raise ValueError(f"log-mel {name!r} must be (n_mels, frames), got shape {m.shape}")
    ncols = min(ncols, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = _figure(caption, 3.0 * ncols + 0.6, 2.3 * nrows + 0.5, nrows=nrows, ncols=ncols,
                        sharex=True, sharey=True)
    lo = float(np.percentile(np.concatenate([m.ravel() for m in mats]), 1))
    hi = float(max(m.max() for m in mats))
    im = None
    for ax, name, m in zip(axes.ravel(), names, mats):
        seconds = m.shape[1] * cfg.hop_length / cfg.sample_rate
        im = ax.imshow(m, origin="lower", aspect="auto", cmap="magma", vmin=lo, vmax=hi,
                       extent=(0, seconds, 0, m.shape[0]))
        ax.set_title(name, fontsize=9)
    for ax in axes.ravel()[len(names):]:
        ax.set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel("mel bin")
    for ax in axes[-1, :]:
        ax.set_xlabel("time [s]")
    fig.colorbar(im, ax=axes.ravel().tolist(), label="log mel power", shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def plot_batch_composition(batches: Sequence[Sequence[str]], *, target: str, caption: str,
                           title: str | None = None) -> Figure:
    """Stacked bars: how many samples of each machine type every batch holds.

    Args:
        batches: per batch, the machine type of each sample.
        target: the target machine type (drawn first, in black).

    Book: chapter 3.
    """
    if not batches:
        raise ValueError("no batches to plot")
    types = [target] + sorted({m for b in batches for m in b} - {target})
    counts = np.array([[sum(1 for m in b if m == t) for t in types] for b in batches])  # (n_batches, n_types)
    fig, axes = _figure(caption, 6.4, 3.8)
    ax = axes[0, 0]
    bottom = np.zeros(len(batches))
    for j, t in enumerate(types):
        ax.bar(np.arange(len(batches)), counts[:, j], bottom=bottom, color="0.15" if t == target else f"C{j % 10}",
               label=f"{t} (target)" if t == target else t, width=0.85)
        bottom += counts[:, j]
    ax.set(xlabel="batch", ylabel="samples", title=title or f"batch composition, target = {target}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return fig


def plot_section_table(table, *, caption: str, value: str = "AUC", title: str | None = None) -> Figure:
    """Heatmap of ``value`` per machine type (rows) and section (columns) from
    :func:`minasd.metrics.section_table` (summary rows included).  Book: chapter 6."""
    if value not in table.columns:
        raise ValueError(f"column {value!r} not in the table; columns are {list(table.columns)}")
    grid = table.pivot(index="machine", columns="section", values=value)
    grid = grid.reindex(index=list(dict.fromkeys(table["machine"])), columns=list(dict.fromkeys(table["section"])))
    fig, axes = _figure(caption, 1.1 * grid.shape[1] + 2.5, 0.45 * grid.shape[0] + 1.8)
    ax = axes[0, 0]
    data = grid.to_numpy(dtype=float)
    im = ax.imshow(data, cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(data):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7,
                    color="w" if v < np.nanmean(data) else "k")
    ax.set_xticks(range(grid.shape[1]), grid.columns)
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set(xlabel="section", title=title or value)
    fig.colorbar(im, ax=ax, label=value)
    return fig


def plot_variant_bars(table, *, caption: str, title: str) -> Figure:
    """Grouped bars of a Table II / III analogue: one group per column (machine type, and
    All/Har-mean), one bar per row (variant), harmonic mean of AUC and pAUC [%]; a dotted
    line at chance (50 %).  All-NaN columns (types not run) are left out.  Book: chapter 7.

    Args:
        table: variants x columns, in percent (e.g. the ``table3`` pivot of
            :func:`minasd.studies.experiment.load_results`, rows renamed for the reader).
    """
    _check_caption(caption)
    table = table.dropna(axis=1, how="all")
    fig = Figure(figsize=(1.3 * table.shape[1] + 2.5, 3.8), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(table)
    x = np.arange(table.shape[1])
    for i, (variant, row) in enumerate(table.iterrows()):
        ax.bar(x + (i - (len(table) - 1) / 2) * width, row.to_numpy(float), width, label=variant)
    ax.axhline(50, color="0.4", ls=":", lw=1)
    ax.set_xticks(x, table.columns)
    ax.set(ylabel="harmonic mean of AUC, pAUC [%]", ylim=(0, 100), title=title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    # the caption wraps with the figure's width (matplotlib's wrap), unlike _figure's fixed-width text
    fig.supxlabel(caption, fontsize=7.5, ha="left", x=0.01, color="0.3", wrap=True)
    return fig


# --- figures of chapters 2 and 3 (features, crops and segments, Mixup) ------------------


def plot_histograms(panels: Mapping[str, Mapping[str, object]], *, caption: str, xlabel: str, bins: int = 80,
                    logy: bool = False, density: bool = True, sharex: bool = False,
                    title: str | None = None) -> Figure:
    """Step histograms, one panel per entry of ``panels`` (panel -> {series -> values}).

    Used for the amplitude of each machine type before and after normalisation
    (chapter 2) and for the Mixup weights (chapter 3).  Each series is drawn as an
    outline on bins shared within its panel, so many series stay readable.

    Args:
        panels: panel title -> (series name -> 1-D values).
        xlabel: label of every x axis.
        bins: bins per panel.
        logy: logarithmic y axis (shows the tails of sample-value distributions).
        density: normalise each series to unit area (series of different sizes compare).
        sharex: one x range for all panels.

    Book: chapters 2 and 3.
    """
    if not panels or any(not series for series in panels.values()):
        raise ValueError("plot_histograms needs at least one panel, each with at least one series")
    fig, axes = _figure(caption, 4.0 * len(panels) + 0.4, 3.6, ncols=len(panels), sharex=sharex)
    for ax, (name, series) in zip(axes[0], panels.items()):
        values = {k: np.asarray(v, dtype=float).ravel() for k, v in series.items()}
        edges = np.histogram_bin_edges(np.concatenate(list(values.values())), bins=bins)
        for i, (label, v) in enumerate(values.items()):
            ax.hist(v, bins=edges, histtype="step", density=density, color=f"C{i % 10}", lw=1.2, label=label)
        ax.set(xlabel=xlabel, ylabel="density" if density else "count", title=name)
        if logy:
            ax.set_yscale("log")
        if len(values) > 1:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def plot_filterbank(fbank, *, caption: str, cfg=FEATURES, every: int = 8, title: str | None = None) -> Figure:
    """The mel filter bank (n_fft // 2 + 1, n_mels): filters over Hz, and centre frequency per mel bin.

    Left: every ``every``-th triangular filter (weight over frequency).  Right: the
    centre frequency of each mel bin, which shows how the mel scale spends its bins
    (dense at low frequencies, sparse at high ones).

    Book: chapter 2.
    """
    fb = np.asarray(fbank, dtype=float)
    n_freqs = cfg.n_fft // 2 + 1
    if fb.ndim != 2 or fb.shape[0] != n_freqs:
        raise ValueError(f"filter bank must be ({n_freqs}, n_mels) for n_fft={cfg.n_fft}, got shape {fb.shape}")
    freqs = np.linspace(0.0, cfg.sample_rate / 2, n_freqs)
    fig, axes = _figure(caption, 9.0, 3.4, ncols=2)
    ax = axes[0, 0]
    for j in range(0, fb.shape[1], every):
        ax.plot(freqs, fb[:, j], lw=0.9, color=f"C{(j // every) % 10}")
    ax.axvspan(0, cfg.f_min, color="0.9", zorder=0)
    ax.axvspan(cfg.f_max, cfg.sample_rate / 2, color="0.9", zorder=0, label="outside f_min..f_max")
    ax.set(xlabel="frequency [Hz]", ylabel="weight", xlim=(0, cfg.sample_rate / 2),
           title=f"every {every}th of {fb.shape[1]} triangular filters")
    ax.legend(fontsize=7, loc="upper right")
    ax = axes[0, 1]
    centres = freqs[np.argmax(fb, axis=0)]
    ax.plot(np.arange(fb.shape[1]), centres, color="k", lw=1.2)
    ax.set(xlabel="mel bin", ylabel="centre frequency [Hz]", title="centre frequency of each mel bin")
    ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def plot_windows(n_total: int, windows: Mapping[str, Sequence[int]], seg_len: int, *, caption: str,
                 wave=None, sample_rate: int = FEATURES.sample_rate, title: str | None = None) -> Figure:
    """Where fixed-length windows land on a clip: one panel per group, one bar per window.

    Used for the random 2 s training crops and the S evenly spaced inference
    segments of a clip (chapter 2).  With ``wave``, a panel with the waveform's
    envelope comes first, on the same time axis.

    Args:
        n_total: clip length in samples.
        windows: group name -> start samples of its windows (each ``seg_len`` long).
        seg_len: window length in samples.
        wave: optional (n_total,) waveform drawn on top.

    Book: chapter 2.
    """
    if not windows:
        raise ValueError("no windows to plot")
    for name, starts in windows.items():
        s = np.asarray(starts)
        if s.size and (s.min() < 0 or s.max() + seg_len > n_total):
            raise ValueError(f"windows {name!r} reach outside the clip of {n_total} samples")
    rows = [max(1, len(s)) for s in windows.values()]
    heights = ([1.2] if wave is not None else []) + [0.5 + 0.18 * r for r in rows]
    fig, axes = _figure(caption, 7.0, sum(heights) + 0.9, nrows=len(heights), sharex=True,
                        gridspec_kw={"height_ratios": heights})
    axes = axes[:, 0]
    seconds = n_total / sample_rate
    if wave is not None:
        w = np.asarray(wave, dtype=float).ravel()
        if w.size != n_total:
            raise ValueError(f"wave has {w.size} samples, n_total is {n_total}")
        ax = axes[0]
        ax.plot(np.arange(w.size) / sample_rate, w, lw=0.3, color="0.3")
        ax.set(ylabel="amplitude", title="waveform")
        axes = axes[1:]
    for ax, (name, starts) in zip(axes, windows.items()):
        starts = np.asarray(starts, dtype=float)
        for i, s in enumerate(starts):
            ax.broken_barh([(s / sample_rate, seg_len / sample_rate)], (i - 0.38, 0.76),
                           facecolors=f"C{i % 10}", alpha=0.75)
        ax.set(ylabel="window", ylim=(-0.7, max(len(starts), 1) - 0.3), title=name)
        ax.set_yticks(range(len(starts)))
        ax.tick_params(axis="y", labelsize=6)
        ax.invert_yaxis()
    axes[-1].set(xlabel="time [s]", xlim=(0, seconds))
    if title:
        fig.suptitle(title)
    return fig


# --- figures of chapter 6, "when does the method win": anomaly kind and severity ----------
#
# Both take the per-seed tables of minasd.studies.analysis and average over seeds (and over
# machine types where a panel holds several): the book shows means, the seed spread
# as a band.


def _class_order(values) -> list[str]:
    """Severity classes subtle, gross first, then any other in order of appearance."""
    seen = list(dict.fromkeys(str(v) for v in values))
    return [c for c in ("subtle", "gross") if c in seen] + [c for c in seen if c not in ("subtle", "gross")]


def _variant_order(table, variants: Sequence[str] | None) -> list[str]:
    """``variants`` as given (order of lines / columns), checked; default order of appearance."""
    have = list(dict.fromkeys(table["variant"].astype(str)))
    if variants is None:
        return have
    lacking = [v for v in variants if v not in have]
    if lacking:
        raise ValueError(f"variants {lacking} are not in the table (have {have})")
    return list(variants)


def _value_column(table, value: str | None, choices: Sequence[str]) -> str:
    if value is None:
        value = next((c for c in choices if c in table.columns), None)
    if value is None or value not in table.columns:
        raise ValueError(f"table has no column {value or ' or '.join(choices)!r}; columns are {list(table.columns)}")
    return value


def plot_auc_by_severity(table, *, caption: str, value: str | None = None, panel: str = "severity_class",
                         chance: float | None = None, variants: Sequence[str] | None = None,
                         title: str | None = None) -> Figure:
    """AUC (or detection rate) against anomaly severity, one line per variant.

    Args:
        table: :func:`minasd.studies.analysis.auc_by_severity` or
            :func:`minasd.studies.analysis.detection_rate_by_severity` (columns ``variant,
            severity_class, sev_lo, sev_hi`` and the value; ``seed`` and ``machine``
            optional).  Filter it to one machine type first to show that type alone.
        value: the column drawn; default ``auc``, else ``detection_rate``.
        panel: ``"severity_class"`` (one panel per class; each point is the mean over
            machine types and seeds) or ``"machine"`` (one panel per type; solid lines
            gross, dashed subtle).
        chance: height of the dotted reference line; default 0.5 for AUC (a random
            score) and 0.1 for the detection rate (the FPR of the threshold, what a
            random score catches).
        variants: which variants to draw, in this order (default all, in table order).

    x is the middle of each severity bin, y the mean; with several seeds a band spans
    the lowest and highest seed (each seed averaged over the types of the panel first).

    Book: chapter 10 (when does the method win).
    """
    value = _value_column(table, value, ("auc", "detection_rate"))
    need = ["variant", "severity_class", "sev_lo", "sev_hi", value] + ([panel] if panel == "machine" else [])
    missing = [c for c in need if c not in table.columns]
    if missing or panel not in ("severity_class", "machine"):
        raise ValueError(f"plot_auc_by_severity: panel must be 'severity_class' or 'machine' and the table needs "
                         f"columns {need}; missing {missing}")
    if len(table) == 0:
        raise ValueError("plot_auc_by_severity: empty table")
    t = table.assign(_x=(table["sev_lo"] + table["sev_hi"]) / 2.0)
    if "seed" not in t.columns:
        t = t.assign(seed=0)
    panels = _class_order(t[panel]) if panel == "severity_class" else list(dict.fromkeys(t[panel].astype(str)))
    variants = _variant_order(t, variants)
    if chance is None:
        chance = 0.5 if value == "auc" else 0.1
    fig, axes = _figure(caption, 3.6 * len(panels) + 0.8, 3.6, ncols=len(panels), sharey=True)
    for ax, name in zip(axes[0], panels):
        part = t[t[panel].astype(str) == name]
        ax.axhline(chance, color="0.5", ls=":", lw=1)
        for i, variant in enumerate(variants):
            for cls in _class_order(part["severity_class"]) if panel == "machine" else [name]:
                sel = part[(part["variant"].astype(str) == variant) & (part["severity_class"].astype(str) == cls)]
                if sel.empty:
                    continue
                per_seed = sel.groupby(["seed", "_x"])[value].mean()  # mean over the panel's types
                band = per_seed.groupby("_x").agg(["mean", "min", "max"])
                ls = "--" if panel == "machine" and cls == "subtle" else "-"
                label = variant if panel == "severity_class" else f"{variant}, {cls}"
                ax.plot(band.index, band["mean"], color=f"C{i % 10}", ls=ls, marker="o", ms=3, label=label)
                if per_seed.index.get_level_values("seed").nunique() > 1:
                    ax.fill_between(band.index, band["min"], band["max"], color=f"C{i % 10}", alpha=0.15, lw=0)
        ax.set(xlabel="severity (factory scale 0-1)", ylim=(0, 1.02), title=str(name))
        ax.legend(fontsize=7, loc="lower right")
    axes[0, 0].set_ylabel("AUC" if value == "auc" else value.replace("_", " "))
    if title:
        fig.suptitle(title)
    return fig


def plot_kind_auc(table, *, caption: str, value: str = "auc", machine: str | None = None,
                  variants: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """Heatmap of AUC by anomaly kind (rows) and variant (columns), mean over seeds.

    Args:
        table: :func:`minasd.studies.analysis.auc_by_kind` (columns ``variant, machine,
            severity_class, anomaly_kind`` and ``value``; ``seed`` optional).
        value: ``auc`` or ``detection_rate``.
        machine: draw one machine type only; default every type in the table (rows
            ``type: kind``).
        variants: the columns, in this order (default all, in table order).

    Rows are grouped subtle first, then gross; the colour scale is centred on chance
    (0.5 for AUC) so that kinds detected worse than a random score show red.

    Book: chapter 10 (when does the method win).
    """
    value = _value_column(table, value, ("auc", "detection_rate"))
    need = ["variant", "machine", "severity_class", "anomaly_kind", value]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"plot_kind_auc: the table needs columns {need}; missing {missing}")
    t = table if machine is None else table[table["machine"] == machine]
    if len(t) == 0:
        raise ValueError(f"plot_kind_auc: no rows{'' if machine is None else f' for machine type {machine!r}'}")
    machines = list(dict.fromkeys(t["machine"].astype(str)))
    variants = _variant_order(t, variants)
    rows = []  # (machine, class, kind) in display order
    for m in machines:
        mt = t[t["machine"].astype(str) == m]
        for cls in _class_order(mt["severity_class"]):
            kinds = mt.loc[mt["severity_class"].astype(str) == cls, "anomaly_kind"].astype(str)
            rows += [(m, cls, k) for k in dict.fromkeys(kinds)]
    means = t.groupby([t["machine"].astype(str), t["severity_class"].astype(str), t["anomaly_kind"].astype(str),
                       t["variant"].astype(str)])[value].mean()
    data = np.array([[means.get((*r, v), np.nan) for v in variants] for r in rows], dtype=float)
    fig, axes = _figure(caption, 1.3 * len(variants) + 3.4, 0.32 * len(rows) + 1.8)
    ax = axes[0, 0]
    centre = 0.5 if value == "auc" else 0.1
    span = max(1.0 - centre, centre)
    im = ax.imshow(data, cmap="RdBu", vmin=centre - span, vmax=centre + span, aspect="auto")
    for (i, j), v in np.ndenumerate(data):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="w" if abs(v - centre) > 0.6 * span else "k")
    names = [f"{k} ({c})" if machine is not None or len(machines) == 1 else f"{m}: {k} ({c})" for m, c, k in rows]
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    label = "AUC" if value == "auc" else value.replace("_", " ")
    ax.set(xlabel="variant", title=title or f"{label} by anomaly kind" + (f", {machines[0]}" if len(machines) == 1 else ""))
    fig.colorbar(im, ax=ax, label=label)
    return fig


def plot_controlled(table, *, caption: str, machine: str) -> Figure:
    """The controlled experiments of one machine type (``minasd controlled``): per row, the method's
    harmonic mean minus the baseline's on sections 00-02 and 03-05 (left), and its AUC against the
    subtle and the gross anomalies with the baseline's as dashed lines (right).  The baseline of
    ``minasd controlled`` is the GMM on log-mel mean and std (the comparison system ``gmm_meanstd``;
    its columns keep the name ``baseline_*``), and the figure names it so.

    Args:
        table: ``controlled.csv`` as a DataFrame (:func:`minasd.studies.controlled.load_controlled_tables`).
        machine: the machine type drawn.

    Book: chapter 10 (why does the method lose?).
    """
    need = ["row", "machine", "diff_dev_hmean", "diff_eval_hmean", "method_eval_auc_subtle", "method_eval_auc_gross",
            "baseline_eval_auc_subtle", "baseline_eval_auc_gross"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"plot_controlled: the table needs columns {need}; missing {missing}")
    t = table[table["machine"] == machine]
    if len(t) == 0:
        raise ValueError(f"plot_controlled: no rows for machine type {machine!r}")
    y = np.arange(len(t))[::-1]
    fig, axes = _figure(caption, 9.0, 0.32 * len(t) + 1.9, ncols=2, sharey=True)
    ax = axes[0, 0]
    ax.barh(y + 0.2, t["diff_dev_hmean"], height=0.4, color="0.65", label="sections 00-02")
    ax.barh(y - 0.2, t["diff_eval_hmean"], height=0.4, color="C0", label="sections 03-05")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, list(t["row"]))
    ax.set(xlabel="method minus mean/std GMM, hmean [points]", title=f"{machine}: against the mean/std GMM")
    ax.legend(fontsize=7, loc="best")
    ax = axes[0, 1]
    for cls, colour, marker in (("subtle", "C2", "o"), ("gross", "C3", "s")):
        ax.plot(t[f"method_eval_auc_{cls}"], y, marker, color=colour, label=f"{cls} (method)")
        base = t[f"baseline_eval_auc_{cls}"].dropna()
        if len(base):
            ax.axvline(float(base.iloc[0]), color=colour, ls="--", lw=1, label=f"{cls} (mean/std GMM)")
    ax.axvline(50, color="0.5", lw=0.8, ls=":")
    ax.set(xlabel="AUC, sections 03-05 [%]", title="by anomaly class")
    ax.legend(fontsize=7, loc="best")
    return fig


def plot_saturation(curve, targets: Mapping[str, float], *, caption: str, n_star: int | None = None) -> Figure:
    """AE AUC over training clips per section, one line per machine type (mean over the seeds measured
    at each size, the seeds as dots), each type's real-data target as a short dash at the right.

    Args:
        curve: rows ``machine, clips, seed, AE AUC`` (:func:`minasd.calibrate.store_view`).
        targets: per type, the real-data number the calibration aims at.
        n_star: the size chosen for the calibration (a vertical line), if any.
    """
    fig, axes = _figure(caption, width=7.0, height=4.4)
    ax = axes[0, 0]
    colours = {}
    for machine, part in curve.groupby("machine", sort=False):
        mean = part.groupby("clips")["AE AUC"].mean().sort_index()
        (line,) = ax.plot(mean.index, mean.values, marker="o", ms=3, label=machine)
        colours[machine] = line.get_color()
        ax.scatter(part["clips"], part["AE AUC"], s=8, color=line.get_color(), alpha=0.45)
    right = float(curve["clips"].max()) if len(curve) else 1.0
    for machine, target in targets.items():
        if machine in colours:
            ax.plot([right * 1.08, right * 1.25], [target, target], color=colours[machine], lw=2.5)
    if n_star:
        ax.axvline(n_star, color="0.5", ls=":", lw=1)
    ax.set_xscale("log")
    sizes = sorted({int(n) for n in curve["clips"]})
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training clips per section (log scale); dashes at the right: real-data targets")
    ax.set_ylabel("AE AUC, hmean over sections 00-02 [%]")
    ax.legend(fontsize=7, ncol=2)
    return fig


def plot_search(search, *, caption: str) -> Figure:
    """The calibration search, one panel per machine type: AE AUC against the fault scale.

    Hollow dots: trials at the smallest size (the bisection), with its goal dashed (the target
    minus the saturation's offset); filled dots: trials at the largest size (n*), with the
    real-data target solid.  Book: chapter 13.

    Args:
        search: rows ``machine, clips, sigma, AE AUC, target, goal`` (:func:`minasd.calibrate.store_view`).
    """
    machines = list(dict.fromkeys(search["machine"]))
    if not machines:
        raise ValueError("plot_search: no search trial to draw")
    cols = min(4, len(machines))
    rows = -(-len(machines) // cols)
    fig, axes = _figure(caption, width=2.1 * cols + 0.6, height=2.2 * rows + 0.9, nrows=rows, ncols=cols,
                        sharey=True)
    small, large = int(search["clips"].min()), int(search["clips"].max())
    for ax, machine in zip(axes.flat, machines):
        part = search[search["machine"] == machine]
        for n, filled in ((small, False), (large, True)):
            at = part[part["clips"] == n].sort_values("sigma")
            if at.empty:
                continue
            colour = "C1" if filled else "C0"
            ax.plot(at["sigma"], at["AE AUC"], marker="o", ms=4, lw=0.8, color=colour,
                    mfc=colour if filled else "white", label=f"{n} clips")
            goal = at["goal"].dropna()
            if len(goal):
                ax.axhline(float(goal.iloc[0]), color=colour, ls="-" if filled else "--", lw=1)
        if part[part["clips"] == large].empty or large == small:
            ax.axhline(float(part["target"].iloc[0]), color="C1", ls="-", lw=1)
        ax.set_title(machine, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("fault scale sigma", fontsize=7)
    for ax in list(axes.flat)[len(machines):]:
        ax.set_axis_off()
    axes[0, 0].set_ylabel("AE AUC, sections 00-02 [%]", fontsize=8)
    axes[0, 0].legend(fontsize=6, loc="lower right")
    return fig
