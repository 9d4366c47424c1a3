"""Helpers the book's chapters share: where the data comes from and how to label it.

Every chapter starts with the same three parameters (``dataset``, ``data_root``,
``scale``/``seed``) and calls :func:`prepare_data`; every figure caption and
table title uses :func:`data_label`, so a reader always knows whether a number
came from the synthetic factory or from real DCASE recordings.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

DATASETS = ("synthetic", "dcase2021")


def default_cache() -> Path:
    """Where chapters put data when no ``data_root`` is given (``$MINASD_CACHE`` or ~/.cache/minasd)."""
    return Path(os.environ.get("MINASD_CACHE", Path.home() / ".cache" / "minasd"))


def prepare_data(data_root: str | Path | None = None, dataset: str = "synthetic", scale: str = "small",
                 seed: int = 0, machine_types: Sequence[str] | None = None) -> Path:
    """Return a DCASE-style data root, making or downloading it first if needed.

    Args:
        data_root: folder to use; default: a folder under :func:`default_cache`.
        dataset: ``"synthetic"`` (``minasd.synth`` at ``scale`` and ``seed``; reuses a finished
            set) or ``"dcase2021"`` (the real data, downloaded by ``minasd.download`` for
            ``machine_types``: several hundred MB per type, resumable).
        scale: synthetic size (``tiny``, ``small``, ``medium``, ``full``).
        machine_types: types to download (``dcase2021`` only); default all.

    Book: chapter 1.
    """
    if dataset == "synthetic":
        from . import synth

        root = Path(data_root) if data_root else default_cache() / f"synth_{scale}_seed{seed}"
        return Path(synth.make_dataset(root, size=scale, seed=seed))
    if dataset == "dcase2021":
        from . import download
        from .config import MACHINE_TYPES

        root = Path(data_root) if data_root else default_cache() / "dcase2021"
        download.download_dcase2021(list(machine_types or MACHINE_TYPES), root)
        return root
    raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def data_label(root: str | Path) -> str:
    """A one-line description of the data under ``root`` for captions and table titles.

    >>> data_label("/nonexistent")  # no synthetic manifest, no download manifest: origin unknown
    'DCASE layout, no minasd synth manifest (provenance unknown): /nonexistent'
    """
    from .evaluate import data_kind_label, data_manifest
    from .synth import find_manifest

    m = find_manifest(root)
    if m is None:
        return f"{data_kind_label(data_manifest(root))}: {root}"
    return (f"SYNTHETIC data (minasd.synth v{m.get('generator_version')}, size {m.get('size')}, "
            f"seed {m.get('seed')}{'' if m['finished'] else ', INCOMPLETE set'}; not DCASE)")


def display_options() -> None:
    """The book's pandas display settings (every chapter calls this once): whole tables
    (every row and column, the whole text of every cell: no "...") and blanks for missing
    values in styled tables (a table that calls ``Styler.format`` passes ``na_rep`` itself)."""
    import pandas as pd

    for key, value in (("display.max_rows", None), ("display.max_columns", None), ("display.max_colwidth", None),
                       ("styler.format.na_rep", "")):
        pd.set_option(key, value)


def in_colab() -> bool:
    """True inside Google Colab (chapters install minasd there)."""
    import sys

    return "google.colab" in sys.modules


# --------------------------------------------------------------------------------------
# results of `minasd experiment` in the chapters (4-9): committed full-scale and live
# --------------------------------------------------------------------------------------

#: The encoder of the paper; results of any other backbone are labelled as a stand-in.
PAPER_BACKBONE = "efficientnet_b0"


def _split_words(value) -> list[str]:
    """``"fan ToyCar"`` or ``["fan", "ToyCar"]`` -> ``["fan", "ToyCar"]`` (papermill passes flat scalars)."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.replace(",", " ").split()
    return [str(v) for v in value]


def _has_manifest(directory: Path) -> bool:
    return (directory / "manifest.json").is_file() or (directory / "results" / "manifest.json").is_file()


def load_committed(results_dir: str | Path | None) -> dict | None:
    """The committed full-scale results under ``results_dir``, or None when there are none.

    Only an absent manifest counts as "none": a result folder that exists but no longer
    matches the package's result schema raises (so CI fails on stale committed files).

    Returns:
        :func:`minasd.experiment.load_results` of the folder, or None.  Book: chapters 4-8.
    """
    from .experiment import load_results

    if not results_dir or not _has_manifest(Path(results_dir)):
        return None
    return load_results(results_dir)


def live_experiment(experiment_dir: str | Path, data_root: str | Path, machine_types="fan ToyCar",
                    epochs: int | None = None, backbone: str | None = None, grid_lam=None,
                    seed: int = 0, device: str = "cpu", max_train_clips_per_section: int | None = None,
                    tsne_max_other: int | None = None, progress: bool = True, profile: str = "cpu") -> dict:
    """Results of ``minasd experiment`` in ``experiment_dir``, running (or resuming) it first if needed.

    The chapters and ``ci/book.sh`` call this with the same flat parameters, so CI runs
    the experiment once and every chapter reads it.  A finished experiment whose
    settings match is loaded without recomputing anything; otherwise
    :func:`minasd.experiment.experiment` runs, which itself skips finished training
    runs and finished machine types.

    Args:
        experiment_dir: the experiment folder (``runs/`` and ``results/``).
        data_root: DCASE-style data root.
        machine_types: target types, a space-separated string or a list.
        epochs: training epochs (None = the profile's).
        backbone: timm encoder (None = the profile's).  Any other name than the paper's
            EfficientNet-B0 is a cheaper stand-in (CPU) and every caption says so.
        grid_lam: lambda grid, a space-separated string or a list (None or empty:
            :data:`minasd.profiles.DEFAULT_GRID_LAM`).
        seed, device: as in :func:`minasd.experiment.experiment`.
        max_train_clips_per_section: keep at most this many training clips per type and section.
        tsne_max_other: other-type clips in each t-SNE sample (None = the experiment's default).
        progress: progress bars and log lines.
        profile: training profile (:mod:`minasd.profiles`): encoder and batch size unless
            given here; lambda is chosen from ``grid_lam`` on sections 00-02 as always.

    Returns:
        :func:`minasd.experiment.load_results` of the folder.  Book: chapters 4-9.
    """
    from .experiment import TSNE_MAX_OTHER, VARIANTS, experiment, load_results
    from .profiles import DEFAULT_GRID_LAM, get_profile

    # papermill parameters: an empty value is "not given"
    epochs, overrides = get_profile(profile).experiment_settings(
        epochs=int(epochs) if epochs else None, backbone=backbone or None,
        max_train_clips_per_section=max_train_clips_per_section)
    types = _split_words(machine_types)
    lams = [float(v) for v in _split_words(grid_lam or list(DEFAULT_GRID_LAM))]
    tsne_other = TSNE_MAX_OTHER if tsne_max_other is None else int(tsne_max_other)
    d = Path(experiment_dir)
    if (d / "results" / "manifest.json").is_file():
        from .evaluate import data_manifest

        loaded = load_results(d)
        prov = loaded["manifest"]["provenance"]
        if prov.get("data") != data_manifest(data_root) or Path(prov["data_root"]) != Path(data_root).resolve():
            raise ValueError(f"{d} holds results of another data set ({prov.get('data_root')}: {prov.get('data')}); "
                             f"delete {d} or choose another experiment_dir for {data_root}")
        cfg = prov["config"]
        same = (set(types) <= set(loaded["manifest"]["machine_types"]) and cfg.get("epochs") == epochs
                and [float(v) for v in cfg.get("grid_lam", [])] == lams and cfg.get("seed") == seed
                and cfg.get("train_overrides", {}) == overrides and cfg.get("tsne_max_other") == tsne_other
                and list(cfg.get("variants", [])) == list(VARIANTS))
        if same:
            if progress:
                print(f"[book] experiment in {d} is finished with these settings: loaded, nothing recomputed")
            return loaded
    return experiment(data_root, d, machine_types=types or None, epochs=epochs, device=device, grid_lam=lams,
                      seed=seed, train_overrides=overrides, tsne_max_other=tsne_other, progress=progress)


def backbone_label(backbone: str | None) -> str:
    """Caption words for an encoder: the paper's, or a stand-in said plainly.

    >>> backbone_label("mobilenetv3_small_050")
    "backbone mobilenetv3_small_050, a CPU stand-in, not the paper's EfficientNet-B0"
    """
    if not backbone or backbone in (PAPER_BACKBONE, "tf_efficientnet_b0"):
        return "backbone EfficientNet-B0 (the paper's)"
    return f"backbone {backbone}, a CPU stand-in, not the paper's EfficientNet-B0"


def results_label(loaded: dict, machine: str | None = None) -> str:
    """One caption line for results of ``minasd experiment``: data, scale, epochs, backbone, device.

    Args:
        loaded: :func:`minasd.experiment.load_results` output.
        machine: restrict the epoch count to this machine type.

    Book: chapters 4-9.
    """
    from .evaluate import data_kind_label

    prov = loaded["manifest"]["provenance"]
    data = prov.get("data", {})
    if data.get("synthetic"):
        what = (f"SYNTHETIC data (minasd.synth v{data.get('generator_version')}, size {data.get('size')}, "
                f"seed {data.get('seed')}; not DCASE)")
    else:
        what = data_kind_label(data)
    ep = prov.get("epochs", {})
    done = sorted({int(v) for m, per in ep.items() if machine in (None, m) for v in per.values() if v is not None})
    planned = prov.get("config", {}).get("epochs")
    if not done:
        epochs = "epochs n/a"
    elif len(done) == 1:
        epochs = f"epochs {done[0]}"
    else:
        epochs = f"epochs {done[0]}-{done[-1]} (runs differ)"
    epochs += (
        f" of {planned} planned" if planned and done and max(done) < planned else "")
    overrides = prov.get("config", {}).get("train_overrides", {})
    backbone = backbone_label(overrides.get("backbone"))
    profile = f"profile {overrides['profile']}; " if overrides.get("profile") else ""
    seed = prov.get("config", {}).get("seed")
    seeds = f"; seed {seed}" if seed is not None else ""
    device = prov.get("device_name") or prov.get("device")
    return f"{what}; {profile}{epochs}; {backbone}{seeds}; device {device}"
