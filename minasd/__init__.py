"""minasd: anomalous sound detection with two binary cross-entropies for outlier
exposure (Kuroyanagi et al., 2022), as a small library and a Jupyter Book.

Modules, one responsibility each: ``config`` (shared facts, Table I),
``data`` (DCASE layout, audio), ``download`` (Zenodo), ``synth`` (synthetic
factory), ``features`` (log-mel), ``model``, ``losses``, ``sampler``,
``mixup``, ``train``, ``inlier``, ``scoring``, ``metrics``, ``viz``, ``cli``.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .detector import Detector  # noqa: E402  (no torch import until used)

__all__ = ["Detector", "__version__"]
