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

    >>> data_label("/nonexistent")  # no synthetic manifest: taken as real data
    'real data from /nonexistent'
    """
    from . import synth

    try:
        m = synth.read_manifest(root)
    except FileNotFoundError:
        return f"real data from {root}"
    return (f"SYNTHETIC data (minasd.synth v{m.get('generator_version')}, size {m.get('size')}, "
            f"seed {m.get('seed')}; not DCASE)")


def in_colab() -> bool:
    """True inside Google Colab (chapters install minasd there)."""
    import sys

    return "google.colab" in sys.modules
