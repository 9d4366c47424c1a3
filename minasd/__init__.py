"""minasd: anomalous sound detection with two binary cross-entropies for outlier
exposure (Kuroyanagi et al., 2022), as a small library and a Jupyter Book.

Modules, one responsibility each (ARCHITECTURE.md draws the layers): the method's
``data`` (DCASE layout, audio), ``features`` (log-mel), ``model``, ``losses``,
``sampler``, ``mixup``, ``train``, ``runs`` (the run folder), ``inlier``, ``scoring``,
``metrics``, ``evaluate`` and ``detector``; around it ``config`` (shared facts, Table I),
``profiles``, ``provenance`` (what data a root holds), ``dcase_files`` (the evaluator's
files), ``commands`` and ``cli``, ``download`` (Zenodo), ``synth`` (synthetic factory),
the comparison systems ``baseline`` (a GMM on log-mel mean and std), ``dcase_ae`` (the
official DCASE 2021 autoencoder baseline) and ``twfr`` (TWFR-GMM),
``selection`` (choices on sections 00-02 only), ``paper`` (the paper's Tables II and III, typed in) and ``viz``; the studies
built on the method live in ``minasd.studies``.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Detector", "__version__"]


def __getattr__(name: str):
    # ``minasd.Detector`` is imported on first use, so ``import minasd`` (and ``minasd --help``)
    # stays light: ``minasd --help`` imports only ``minasd.cli`` (tests/test_cli.py checks it).
    if name == "Detector":
        from .detector import Detector

        return Detector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
