"""minasd: anomalous sound detection with two binary cross-entropies for outlier
exposure (Kuroyanagi et al., 2022), as a small library and a Jupyter Book.

Modules, one responsibility each: ``config`` (shared facts, Table I), ``paper``
(the paper's Tables II and III, typed in),
``data`` (DCASE layout, audio), ``download`` (Zenodo), ``synth`` (synthetic
factory), ``features`` (log-mel), ``model``, ``losses``, ``sampler``,
``mixup``, ``train``, ``inlier``, ``scoring``, ``metrics``, ``viz``, ``cli``.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Detector", "__version__"]


def __getattr__(name: str):
    # ``minasd.Detector`` is imported on first use, so ``import minasd`` (and ``minasd --help``)
    # stays light: the detector's module pulls in evaluation, scikit-learn and, when used, torch.
    if name == "Detector":
        from .detector import Detector

        return Detector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
