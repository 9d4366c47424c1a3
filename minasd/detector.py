"""A detector for people who monitor machines: load a run, score clips (Book: chapter 9).

>>> det = Detector.load("runs/fan")                                # doctest: +SKIP
>>> r = det.score("dev_data/fan/source_test/section_00_source_test_normal_0000_x.wav")  # doctest: +SKIP
>>> r.score, r.is_anomaly, r.threshold                             # doctest: +SKIP

A run is usable once ``minasd train`` wrote the model and ``minasd evaluate``
fitted the inlier models h and stored the decision thresholds.  Scoring a clip
is exactly the evaluation's path: amplitude normalisation with the run's
statistics, S = 10 segments of 2 s, log-mel, encoder, h of the clip's section,
aggregation, then ``score > threshold``.

Threshold rule (set by :func:`minasd.evaluate.evaluate_run`, stored in
``<run>/eval/detector.json``): per section, the 90th percentile of the clip
scores of that section's held-out normal training clips, scored out of fold
where possible (see :mod:`minasd.evaluate`).  About 10 % of normal clips are
therefore flagged: a false-alarm budget, not a tuned operating point.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .runs import (DETECTOR_FILE, EVAL_DIR, EVAL_SCHEMA_VERSION, INLIER_DIR, check_evaluated_run, load_model,
                   resolve_device, run_paths)


@dataclass
class DetectionResult:
    """The result of scoring one clip.

    Attributes:
        score: clip anomaly score (higher = more anomalous).
        segment_scores: (S,) scores of the segments.
        is_anomaly: ``score > threshold``.
        threshold: the section's threshold.
        section: the section whose h scored the clip.
        machine_type: the run's machine type.
        source: the file path, or ``"<array>"``.
    """

    score: float
    segment_scores: np.ndarray
    is_anomaly: bool
    threshold: float
    section: int
    machine_type: str
    source: str

    def line(self) -> str:
        """One human-readable line: file, section, score, threshold, decision."""
        verdict = "ANOMALY" if self.is_anomaly else "normal"
        return (f"{self.source}  {self.machine_type} section {self.section:02d}  score {self.score:.6g}  "
                f"threshold {self.threshold:.6g}  {verdict}")


def _probe_logmel(n: int, seed: int):
    """Log-mel (n, n_mels, frames) of n segments of unit-variance Gaussian noise: what a clip
    looks like to the encoder after amplitude normalisation, so a probe inside the range of
    inputs the encoder was trained on (see :func:`freeze_for_cpu` for why that matters)."""
    import torch

    from .config import SAMPLE_RATE, SEGMENT_SECONDS
    from .features import LogMel

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return LogMel()(torch.randn(n, int(SEGMENT_SECONDS * SAMPLE_RATE), generator=gen))


def _max_error(outputs, reference) -> list[float]:
    """Largest absolute difference of each output from the reference, in units of that
    reference output's largest magnitude (at least 1)."""
    return [((got.double() - ref.double()).abs().max() / ref.abs().max().clamp_min(1.0)).item()
            for got, ref in zip(outputs, reference)]


def freeze_for_cpu(model, n_segments: int | None = None, tolerance: float = 1e-4):
    """The encoder traced and frozen with TorchScript for CPU inference, or ``model`` itself.

    ``torch.jit.freeze`` inlines the weights, folds every batch norm into the
    convolution or linear layer before it and runs the graph without Python's
    per-layer overhead.  Measured on 2 threads, 10 segments, eager channels_last
    vs frozen in one process, interleaved, medians (a shared, loaded machine, so
    ratios only): mobilenetv3_small_050 about 1.75x faster, efficientnet_b0 about
    1.25x.  ``torch.jit.optimize_for_inference`` (oneDNN layouts) was measured as
    well and brought nothing on top, so it is not used.  Freezing costs a few
    seconds once, when the Detector loads (tracing, and TorchScript's first calls,
    which profile and optimise the graph: done here, so that the first clip scored
    is as fast as the next ones).

    Check.  The frozen module must give the eager model's outputs on a probe that
    looks like real input: the log-mel of S segments of unit-variance noise (a
    normalised clip).  Why not random log-mel values: a trained encoder amplifies
    input far from its training data layer after layer (its batch norms divide by
    the small running variances of real log-mel), so on white Gaussian "log-mel"
    EfficientNet-B0's activations reach 1e4-1e8 and float32 rounding alone moves
    the outputs by about 10 %: eager contiguous and eager channels_last then
    differ from each other, and from float64, as much as frozen and eager do.
    The earlier check used such a probe; that was the "differs from eager by
    0.388" warning of issue 13 (Book: chapter 9).  Should the probe still
    disagree by more than ``tolerance`` (relative to each output's scale), both
    modules are compared with the eager model in float64, and the frozen one is
    refused only if it is further from it than ``tolerance`` and than 4x the
    eager float32 model's own rounding error.

    Args:
        model: an eval-able encoder mapping log-mel (B, n_mels, frames) to a tuple of tensors.
        n_segments: batch size traced and checked (default: S of the config).
        tolerance: allowed relative difference.

    Returns:
        A :class:`_FrozenEncoder`, or ``model`` with a warning if tracing fails or the
        frozen module is not the eager model.
    """
    import copy
    import warnings

    import torch

    from .config import N_SEGMENTS

    model = model.eval()
    n = n_segments or N_SEGMENTS
    try:
        example, probe = _probe_logmel(n, seed=0), _probe_logmel(n, seed=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape checks in forward()
            with torch.no_grad():
                frozen = torch.jit.freeze(torch.jit.trace(model, example, check_trace=False))
        with torch.inference_mode():
            ref, got = model(probe), frozen(probe)
            err = max(_max_error(got, ref))
            if err > tolerance:  # rounding of an ill-conditioned input, or a real difference?
                ref64 = copy.deepcopy(model).double()(probe.double())
                err_frozen, err_eager = max(_max_error(got, ref64)), max(_max_error(ref, ref64))
                if err_frozen > max(tolerance, 4 * err_eager):
                    raise RuntimeError(f"frozen model differs from eager by {err:.3g} (relative); from float64 by "
                                       f"{err_frozen:.3g}, where eager float32 differs by {err_eager:.3g}")
            for _ in range(2):  # TorchScript profiles and optimises the graph over its first calls: do them now
                frozen(probe)
    except Exception as err:  # an optimisation must never stop scoring
        warnings.warn(f"CPU inference optimisation unavailable ({err}); using the eager model")
        return model
    return _FrozenEncoder(frozen, model)


class _FrozenEncoder:
    """A frozen TorchScript encoder behind the small part of the nn.Module interface
    that scoring uses (``__call__``, ``eval``/``train``, ``training``); frozen modules
    have no training mode, and this one is inference-only.  ``scripted`` is the frozen
    ``torch.jit.ScriptModule``."""

    def __init__(self, frozen, eager):
        self.scripted = frozen
        self.backbone_name = getattr(eager, "backbone_name", None)
        self.training = False

    def __call__(self, x):
        return self.scripted(x)

    def eval(self):
        return self

    def train(self, mode: bool = True):
        if mode:
            raise RuntimeError("a frozen encoder is for inference only; load the run with optimize=False to train")
        return self


class Detector:
    """A trained and evaluated run, ready to score clips.  Book: chapter 9.

    Build with :meth:`load`; attributes: ``machine_type``, ``sections`` (those with
    an h and a threshold), ``thresholds`` (section -> float), ``inlier_set``,
    ``aggregation``, ``model``, ``norm``, ``device``.
    """

    def __init__(self, model, features, norm, inlier_set, aggregation: str, thresholds: dict[int, float],
                 machine_type: str, device, run_dir: Path, config: dict):
        self.model = model
        self.features = features
        self.norm = norm
        self.inlier_set = inlier_set
        self.aggregation = aggregation
        self.thresholds = thresholds
        self.machine_type = machine_type
        self.device = device
        self.run_dir = run_dir
        self.config = config

    @property
    def sections(self) -> list[int]:
        return sorted(self.thresholds)

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "cpu", optimize: bool | None = None) -> "Detector":
        """Load the model (best checkpoint), norm statistics, h and thresholds of a run.

        Args:
            run_dir: a run folder written by ``minasd train`` and ``minasd evaluate``.
            device: "cpu", "cuda", "auto", ...
            optimize: on CPU, trace and freeze the encoder for inference
                (:func:`freeze_for_cpu`: batch norms folded into the layers before
                them, no Python overhead per layer); default True on CPU, False
                elsewhere.  Scores agree with the eager model to within float32
                rounding (checked when loading, which costs a few seconds).

        Raises:
            FileNotFoundError: the folder or a file in it is missing (named, with the
                command that writes it).
            ValueError: the files disagree (e.g. h and thresholds of different sections).
        """
        import torch

        from .data import load_norm_stats
        from .features import LogMel
        from .inlier import InlierSet

        run_dir = check_evaluated_run(run_dir)
        eval_cmd = f"minasd evaluate --run {run_dir}"
        cfg_path = run_dir / EVAL_DIR / DETECTOR_FILE
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("schema_version") != EVAL_SCHEMA_VERSION:
            raise ValueError(f"{cfg_path} has schema version {cfg.get('schema_version')}; this minasd reads "
                             f"{EVAL_SCHEMA_VERSION}: re-run `{eval_cmd} --overwrite`")
        dev = resolve_device(device)
        model, meta = load_model(run_dir, which=cfg["checkpoint"]["which"], device=dev)
        # channels_last: oneDNN's faster convolution layout on CPU (measured about 1.5x for
        # EfficientNet-B0 on 2 threads) and the trainer's layout on CUDA; same numbers (< 1e-8).
        model = model.to(memory_format=torch.channels_last)
        if meta["checkpoint"]["epoch"] != cfg["checkpoint"]["epoch"]:
            raise ValueError(f"{cfg_path} was made with the checkpoint of epoch {cfg['checkpoint']['epoch']}, the run "
                             f"now holds epoch {meta['checkpoint']['epoch']}: re-run `{eval_cmd} --overwrite`")
        machine = meta["machine_type"]
        norm = load_norm_stats(run_paths(run_dir).norm_stats)[machine]
        hset = InlierSet.load(run_dir, INLIER_DIR)
        thresholds = {int(k): float(v["value"]) for k, v in cfg["thresholds"].items()}
        if sorted(thresholds) != hset.sections:
            raise ValueError(f"{cfg_path} has thresholds of sections {sorted(thresholds)} but {run_dir / INLIER_DIR} "
                             f"holds h of sections {hset.sections}: re-run `{eval_cmd} --overwrite`")
        feats = LogMel().to(dev)
        if optimize is None:
            optimize = dev.type == "cpu"
        if optimize:
            model = freeze_for_cpu(model)
        return cls(model, feats, norm, hset, cfg["aggregation"], thresholds, machine, dev, run_dir, cfg)

    def _section_of(self, source: str | Path | None, section: int | None) -> int:
        if section is None:
            if source is None:
                raise ValueError("scoring a waveform array needs section= (the clip's section number, "
                                 f"one of {[f'{s:02d}' for s in self.sections]})")
            from .data import parse_filename

            try:
                info = parse_filename(source)
            except ValueError as err:
                raise ValueError(f"cannot tell the section of {source} from its name ({err}); pass section= "
                                 "(--section on the command line)") from None
            if info.machine != self.machine_type:
                raise ValueError(f"clip {source} is a {info.machine} clip; this detector was trained for "
                                 f"{self.machine_type} (pass section= to score it anyway)")
            section = info.section
        section = int(section)
        if section not in self.thresholds:
            where = f"clip {source}" if source is not None else "the waveform"
            raise ValueError(f"{where} is of section {section:02d}, which this {self.machine_type} detector does not "
                             f"know; known sections: {', '.join(f'{s:02d}' for s in self.sections)}")
        return section

    def score(self, clip, section: int | None = None) -> DetectionResult:
        """Score one clip.

        Args:
            clip: a path to an audio file (its section is read from its DCASE-style
                name unless ``section`` is given), or a 1-D float waveform at 16 kHz
                (raw amplitude, as :func:`minasd.data.load_audio` returns; needs ``section``).
            section: the clip's section number.

        Returns:
            :class:`DetectionResult` with the clip score, the (S,) segment scores and the
            decision.  Book: chapter 9.
        """
        from .data import load_audio
        from .scoring import aggregate, extract_embeddings

        if isinstance(clip, (str, Path)):
            source = str(clip)
            sec = self._section_of(clip, section)
            wave = load_audio(clip)
        else:
            source = "<array>"
            sec = self._section_of(None, section)
            wave = np.asarray(clip, dtype=np.float32)
            if wave.ndim != 1:
                raise ValueError(f"a waveform must be 1-D (samples,), got shape {wave.shape}")
        emb, _, _ = extract_embeddings(self.model, [wave], self.norm, device=self.device, features=self.features,
                                       batch_size=self.config.get("n_segments", 10))
        seg = self.inlier_set.model(sec).score(emb)[0]  # (S,)
        s = float(aggregate(seg, self.aggregation))
        thr = self.thresholds[sec]
        return DetectionResult(score=s, segment_scores=seg, is_anomaly=bool(s > thr), threshold=thr, section=sec,
                               machine_type=self.machine_type, source=source)

    def score_files(self, paths: Sequence[str | Path], section: int | None = None) -> list[DetectionResult]:
        """:meth:`score` for each path, in order."""
        return [self.score(p, section) for p in paths]
