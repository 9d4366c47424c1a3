"""Inlier models h: one per section, fitted on held-out embeddings (book chapter 5).

The paper (Sec. IV-A) fits, for every product ID (section), an inlier model h
on the embeddings of the segments of that section's 10 % held-out training
clips: a Gaussian mixture with p components (anomaly score = negative
log-likelihood) or a local outlier factor with p neighbours in novelty mode
(anomaly score = the outlier score).  One convention everywhere: **a higher
score means more anomalous**, so both scores are ``-score_samples``.

Models are stored without pickle, so loading a run never executes code from a
file: a GMM as its fitted parameters in an ``.npz`` (weights, means,
covariances, Cholesky factors of the precisions), rebuilt by setting the
fitted attributes of a fresh ``GaussianMixture``; a LOF as its reference
embeddings, refitted on load (LOF fitting is a deterministic nearest-neighbour
computation, so the reloaded scores equal the original ones).

Layout of a fitted set inside a run folder::

    <run>/inlier/manifest.json      kind, p, sections, files, sizes, versions
    <run>/inlier/section_03.npz     one file per section
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import LocalOutlierFactor

from .io_utils import atomic_savez, atomic_write_json

INLIER_KINDS: tuple[str, ...] = ("gmm", "lof")
#: Version of the .npz layout; bumped when keys change.
FORMAT_VERSION = 1
#: GMM covariance regulariser: scikit-learn's default.  Held-out sets are small
#: (about 100 clips x 10 segments per section) against 128-d embeddings, so
#: components with few members would have singular covariances without it.
DEFAULT_REG_COVAR = 1e-6


def _where(section: int | None) -> str:
    return f"section {section:02d}" if section is not None else "inlier model"


def _as_segment_matrix(embeddings, section: int | None, what: str) -> np.ndarray:
    """(N, D) or (N, S, D) -> float64 (M, D), with the checks every caller needs."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim == 3:
        x = x.reshape(-1, x.shape[-1])
    if x.ndim != 2:
        raise ValueError(f"{_where(section)}: {what} must have shape (N, D) or (N, S, D), got {np.shape(embeddings)}")
    if x.shape[0] == 0:
        raise ValueError(f"{_where(section)}: no {what} (0 rows); does the section have held-out clips?")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(f"{_where(section)}: {int(bad.sum())} of {x.shape[0]} {what} contain NaN or inf "
                         "(did training diverge?)")
    return x


@dataclass
class InlierModel:
    """A fitted inlier model h of one section.

    Attributes:
        kind: ``"gmm"`` or ``"lof"``.
        p: GMM components or LOF neighbours.
        estimator: the fitted scikit-learn object.
        section: section number it belongs to (None if not tied to one).
        n_fit: number of segment embeddings it was fitted on.
        seed: random state of the GMM fit (unused by LOF).
        reg_covar: GMM covariance regulariser (unused by LOF).
    """

    kind: str
    p: int
    estimator: GaussianMixture | LocalOutlierFactor
    section: int | None = None
    n_fit: int = 0
    seed: int = 0
    reg_covar: float = DEFAULT_REG_COVAR
    #: LOF only: the (n_fit, D) float64 embeddings it was fitted on (what is saved).
    references: np.ndarray | None = None

    @property
    def dim(self) -> int:
        """Embedding dimension D the model expects."""
        return int(self.estimator.n_features_in_)

    def score(self, embeddings) -> np.ndarray:
        """Anomaly score of each embedding (higher = more anomalous).

        Args:
            embeddings: (M, D) or (N, S, D) segment embeddings.

        Returns:
            float64 scores of shape (M,) or (N, S).  Book: chapter 5.
        """
        arr = np.asarray(embeddings)
        lead = arr.shape[:-1]
        x = _as_segment_matrix(arr, self.section, "embeddings to score")
        if x.shape[1] != self.dim:
            raise ValueError(f"{_where(self.section)}: embeddings have D={x.shape[1]}, "
                             f"the model was fitted on D={self.dim}")
        return (-self.estimator.score_samples(x)).reshape(lead)

    # -- persistence (no pickle) --------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The model as plain arrays (what :meth:`save` writes)."""
        out = {
            "format_version": np.array(FORMAT_VERSION),
            "kind": np.array(self.kind),
            "p": np.array(self.p),
            "section": np.array(-1 if self.section is None else self.section),
            "n_fit": np.array(self.n_fit),
            "seed": np.array(self.seed),
            "reg_covar": np.array(self.reg_covar),
        }
        est = self.estimator
        if self.kind == "gmm":
            out.update(weights=est.weights_, means=est.means_, covariances=est.covariances_,
                       precisions_cholesky=est.precisions_cholesky_,
                       converged=np.array(bool(est.converged_)), n_iter=np.array(int(est.n_iter_)),
                       lower_bound=np.array(float(est.lower_bound_)))
        else:
            out.update(references=self.references)
        return out

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the model to ``path`` (.npz, atomically, no pickle).

        Raises:
            FileExistsError: ``path`` exists and ``overwrite`` is False.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        return atomic_savez(path, **self.to_arrays())

    @classmethod
    def load(cls, path: str | Path) -> "InlierModel":
        """Rebuild a model written by :meth:`save`.  Book: chapter 5.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file is not a readable inlier-model .npz.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"inlier model file {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
            raise ValueError(f"inlier model file {path} is corrupt or not an .npz: {err}") from None

        def need(key):
            if key not in arrays:
                raise ValueError(f"inlier model file {path} lacks the array {key!r}")
            return arrays[key]

        version = int(need("format_version"))
        if version != FORMAT_VERSION:
            raise ValueError(f"inlier model file {path} has format {version}; this minasd reads {FORMAT_VERSION}")
        kind, p = str(need("kind")), int(need("p"))
        section = int(need("section"))
        section = None if section < 0 else section
        common = dict(kind=kind, p=p, section=section, n_fit=int(need("n_fit")), seed=int(need("seed")),
                      reg_covar=float(need("reg_covar")))
        if kind == "gmm":
            est = _gmm_from_arrays(p, common["seed"], common["reg_covar"], need("weights"), need("means"),
                                   need("covariances"), need("precisions_cholesky"))
            est.converged_ = bool(need("converged"))
            est.n_iter_ = int(need("n_iter"))
            est.lower_bound_ = float(need("lower_bound"))
        elif kind == "lof":
            common["references"] = np.asarray(need("references"), dtype=np.float64)
            est = _fit_lof(common["references"], p)
        else:
            raise ValueError(f"inlier model file {path}: unknown kind {kind!r}; expected one of {INLIER_KINDS}")
        return cls(estimator=est, **common)


def _gmm_from_arrays(p, seed, reg_covar, weights, means, covariances, precisions_cholesky) -> GaussianMixture:
    """A GaussianMixture whose fitted attributes are set from arrays (no fit, no pickle)."""
    gm = GaussianMixture(n_components=p, covariance_type="full", reg_covar=reg_covar, random_state=seed)
    gm.weights_ = np.asarray(weights, dtype=np.float64)
    gm.means_ = np.asarray(means, dtype=np.float64)
    gm.covariances_ = np.asarray(covariances, dtype=np.float64)
    gm.precisions_cholesky_ = np.asarray(precisions_cholesky, dtype=np.float64)
    gm.precisions_ = np.einsum("kij,klj->kil", gm.precisions_cholesky_, gm.precisions_cholesky_)
    gm.n_features_in_ = gm.means_.shape[1]
    return gm


def _fit_lof(x: np.ndarray, p: int) -> LocalOutlierFactor:
    # novelty=True: the model scores new points (test segments) against the fitted ones.
    return LocalOutlierFactor(n_neighbors=p, novelty=True).fit(np.asarray(x, dtype=np.float64))


def fit_inlier(kind: str, p: int, embeddings, seed: int = 0, section: int | None = None,
               reg_covar: float = DEFAULT_REG_COVAR) -> InlierModel:
    """Fit an inlier model h on held-out segment embeddings of one section.

    Args:
        kind: ``"gmm"`` (GaussianMixture, p components, full covariance; score =
            negative log-likelihood) or ``"lof"`` (LocalOutlierFactor, p
            neighbours, novelty=True; score = ``-score_samples``).
        p: components (GMM) or neighbours (LOF), Table I of the paper.
        embeddings: (N, D) or (N, S, D) embeddings; segments are pooled.
        seed: random state of the GMM initialisation.
        section: section number, used in error messages and saved with the model.
        reg_covar: added to the GMM covariance diagonals.

    Returns:
        The fitted :class:`InlierModel`.  Book: chapter 5.

    Raises:
        ValueError: unknown kind, p < 1, no embeddings, NaN/inf embeddings, or
            p too large for the number of embeddings.

    >>> rng = np.random.default_rng(0)
    >>> h = fit_inlier("gmm", 2, rng.normal(size=(50, 4)))
    >>> h.score(rng.normal(size=(3, 10, 4))).shape
    (3, 10)
    """
    if kind not in INLIER_KINDS:
        raise ValueError(f"{_where(section)}: inlier kind must be one of {INLIER_KINDS}, got {kind!r}")
    if int(p) != p or p < 1:
        raise ValueError(f"{_where(section)}: p must be a positive integer, got {p!r}")
    p = int(p)
    x = _as_segment_matrix(embeddings, section, "held-out embeddings")
    n = x.shape[0]
    if kind == "gmm":
        if p > n:
            raise ValueError(f"{_where(section)}: GMM with p={p} components needs at least {p} held-out segment "
                             f"embeddings, got {n}; lower p or hold out more clips")
        est = GaussianMixture(n_components=p, covariance_type="full", reg_covar=reg_covar, random_state=seed).fit(x)
    else:
        # LOF's neighbours of a fitted point exclude the point itself, so it needs p + 1 points.
        if p >= n:
            raise ValueError(f"{_where(section)}: LOF with p={p} neighbours needs more than {p} held-out segment "
                             f"embeddings, got {n}; lower p or hold out more clips")
        est = _fit_lof(x, p)
    return InlierModel(kind=kind, p=p, estimator=est, section=section, n_fit=n, seed=seed, reg_covar=reg_covar,
                       references=x if kind == "lof" else None)


def section_file(section: int) -> str:
    """File name of one section's model inside the inlier folder: ``section_03.npz``."""
    return f"section_{int(section):02d}.npz"


@dataclass
class InlierSet:
    """One inlier model per section of a machine type.

    Attributes:
        kind: ``"gmm"`` or ``"lof"`` (the same for every section).
        p: the same p for every section.
        models: section number -> fitted :class:`InlierModel`.
    """

    kind: str
    p: int
    models: dict[int, InlierModel] = field(default_factory=dict)

    @property
    def sections(self) -> list[int]:
        return sorted(self.models)

    @classmethod
    def fit(cls, kind: str, p: int, embeddings_by_section: Mapping[int, np.ndarray], seed: int = 0,
            reg_covar: float = DEFAULT_REG_COVAR) -> "InlierSet":
        """Fit one model per section.  Book: chapter 5.

        Args:
            kind, p, seed, reg_covar: as in :func:`fit_inlier`.
            embeddings_by_section: section number -> (N, S, D) or (M, D)
                embeddings of that section's held-out clips.
        """
        if not embeddings_by_section:
            raise ValueError("no sections given to fit inlier models on")
        models = {int(s): fit_inlier(kind, p, e, seed=seed, section=int(s), reg_covar=reg_covar)
                  for s, e in embeddings_by_section.items()}
        return cls(kind=kind, p=int(p), models=models)

    def model(self, section: int) -> InlierModel:
        """The model of ``section``; KeyError names the known sections."""
        try:
            return self.models[int(section)]
        except KeyError:
            raise KeyError(f"no inlier model for section {int(section):02d}; this set has sections "
                           f"{[f'{s:02d}' for s in self.sections]}") from None

    def score(self, embeddings, sections) -> np.ndarray:
        """Segment scores of clips from (possibly) different sections.

        Args:
            embeddings: (N, S, D) clip embeddings.
            sections: (N,) section number of each clip.

        Returns:
            (N, S) float64 anomaly scores.  Book: chapter 5.
        """
        emb = np.asarray(embeddings)
        sec = np.asarray(sections).astype(int).reshape(-1)
        if emb.ndim != 3 or emb.shape[0] != sec.shape[0]:
            raise ValueError(f"embeddings must be (N, S, D) with N = len(sections); "
                             f"got {emb.shape} and {sec.shape[0]} sections")
        out = np.empty(emb.shape[:2], dtype=np.float64)
        for s in np.unique(sec):
            mask = sec == s
            out[mask] = self.model(s).score(emb[mask])
        return out

    def save(self, run_dir: str | Path, subdir: str = "inlier", overwrite: bool = False) -> Path:
        """Write ``<run_dir>/<subdir>/section_XX.npz`` + ``manifest.json``; returns the folder.

        Raises:
            FileExistsError: the folder already holds a manifest and ``overwrite`` is False.
        """
        from . import __version__

        folder = Path(run_dir) / subdir
        manifest_path = folder / "manifest.json"
        if manifest_path.exists() and not overwrite:
            raise FileExistsError(f"{manifest_path} exists; pass overwrite=True to replace the inlier models")
        folder.mkdir(parents=True, exist_ok=True)
        entries = {}
        for s in self.sections:
            m = self.models[s]
            m.save(folder / section_file(s), overwrite=True)
            entries[f"{s:02d}"] = {"file": section_file(s), "n_fit": m.n_fit}
        # The manifest is written last: a folder with a manifest is complete.
        atomic_write_json(manifest_path, {"format_version": FORMAT_VERSION, "kind": self.kind, "p": self.p,
                                          "sections": self.sections, "models": entries,
                                          "minasd_version": __version__})
        return folder

    @classmethod
    def load(cls, run_dir: str | Path, subdir: str = "inlier") -> "InlierSet":
        """Load a set written by :meth:`save`.  Book: chapter 5.

        Raises:
            FileNotFoundError: the manifest or a section file is missing (named).
            ValueError: a file is corrupt or disagrees with the manifest.
        """
        folder = Path(run_dir) / subdir
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{manifest_path} does not exist; fit the inlier models first "
                                    "(minasd evaluate fits and saves them)")
        try:
            manifest = json.loads(manifest_path.read_text())
            kind, p, sections = manifest["kind"], int(manifest["p"]), [int(s) for s in manifest["sections"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{manifest_path} is not a valid inlier manifest: {err}") from None
        models = {}
        for s in sections:
            m = InlierModel.load(folder / section_file(s))
            if (m.kind, m.p, m.section) != (kind, p, s):
                raise ValueError(f"{folder / section_file(s)} holds kind={m.kind} p={m.p} section={m.section}; "
                                 f"{manifest_path} says kind={kind} p={p} section={s}")
            models[s] = m
        return cls(kind=kind, p=p, models=models)
