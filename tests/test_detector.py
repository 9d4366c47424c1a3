"""Detector: loading an evaluated run, scoring files and arrays, bad input, `minasd score`."""
import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from minasd.data import load_audio
from minasd.commands import add_score_arguments, run_score
from minasd.detector import Detector
from minasd.evaluate import evaluate_run

from conftest import shared_trained_run  # noqa: E402  (one trained run per session)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root, run = shared_trained_run(tmp_path_factory)
    copy = tmp_path_factory.mktemp("det") / "run_fan"
    shutil.copytree(run, copy)
    evaluate_run(copy, p=2, device="cpu", progress=False)
    return root, copy


@pytest.fixture(scope="module")
def detector(evaluated):
    return Detector.load(evaluated[1])


def _clip(root: Path, section: int = 3) -> Path:
    folder = "eval_data" if section >= 3 else "dev_data"
    return sorted((root / folder / "fan" / "source_test").glob(f"section_{section:02d}_*.wav"))[0]


def test_file_and_array_agree_with_each_other_and_with_evaluate(evaluated, detector):
    root, run = evaluated
    f = _clip(root, 3)
    a = detector.score(f)
    b = detector.score(load_audio(f), section=3)
    assert a.section == b.section == 3 and a.segment_scores.shape == (10,)
    np.testing.assert_allclose(a.segment_scores, b.segment_scores, rtol=1e-6)
    assert a.score == pytest.approx(b.score) and a.is_anomaly == b.is_anomaly == (a.score > a.threshold)
    cfg = json.loads((run / "eval" / "detector.json").read_text())
    assert a.threshold == cfg["thresholds"]["03"]["value"]
    scores = pd.read_csv(run / "eval" / "scores.csv")
    row = scores[scores.path == f.relative_to(root).as_posix()].iloc[0]
    assert a.score == pytest.approx(row.score_h, rel=1e-5)  # the detector is the evaluation's scoring path
    assert detector.sections == [0, 1, 2, 3, 4, 5] and detector.machine_type == "fan"


def test_missing_files_name_the_file_and_the_command(evaluated, tmp_path):
    run = evaluated[1]
    for rel, cmd in (("inlier", "minasd evaluate"), ("eval/detector.json", "minasd evaluate"),
                     ("checkpoints/best.pt", "minasd train"), ("norm_stats.json", "minasd train")):
        dst = tmp_path / rel.replace("/", "_")
        shutil.copytree(run, dst, ignore=shutil.ignore_patterns("cache"))
        p = dst / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
        with pytest.raises(FileNotFoundError, match=f"{rel}.*{cmd}"):
            Detector.load(dst)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Detector.load(tmp_path / "nowhere")


def test_unknown_section_and_missing_section(evaluated, detector, tmp_path):
    root = evaluated[0]
    wave = load_audio(_clip(root, 0))
    with pytest.raises(ValueError, match="section 07.*known sections: 00, 01, 02, 03, 04, 05"):
        detector.score(wave, section=7)
    odd = tmp_path / "fan" / "source_test" / "section_07_source_test_normal_0000_x.wav"
    odd.parent.mkdir(parents=True)
    shutil.copy(_clip(root, 0), odd)
    with pytest.raises(ValueError, match=r"section_07.*section 07.*known sections"):
        detector.score(odd)
    with pytest.raises(ValueError, match="section="):
        detector.score(wave)
    pump = sorted((root / "dev_data" / "pump" / "source_test").glob("*.wav"))[0]
    with pytest.raises(ValueError, match="pump clip.*fan"):
        detector.score(pump)


def test_score_command_prints_and_writes_csv_once(evaluated, capsys, tmp_path):
    root, run = evaluated
    files = [_clip(root, 0), _clip(root, 4)]
    parser = argparse.ArgumentParser()
    add_score_arguments(parser)
    out = tmp_path / "scores.csv"
    args = parser.parse_args(["--run", str(run), *map(str, files), "--csv", str(out)])
    assert run_score(args) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "threshold" in ln]
    assert len(lines) == 2 and "section 00" in lines[0] and "section 04" in lines[1]
    df = pd.read_csv(out, dtype={"section": str})
    assert list(df.columns) == ["file", "machine_type", "section", "score", "threshold", "is_anomaly"]
    assert list(df.section) == ["00", "04"] and set(df.is_anomaly) <= {0, 1}
    with pytest.raises(FileExistsError, match="scores.csv"):
        run_score(args)


def test_score_command_freezes_the_encoder_only_for_many_files(evaluated, monkeypatch, capsys):
    import minasd.commands as commands_module

    root, run = evaluated
    seen = []
    load = Detector.load.__func__

    def spy(cls, run_dir, device="cpu", optimize=None):
        det = load(cls, run_dir, device=device, optimize=optimize)
        seen.append((optimize, type(det.model).__name__))
        return det

    monkeypatch.setattr(Detector, "load", classmethod(spy))
    parser = argparse.ArgumentParser()
    add_score_arguments(parser)
    files = [str(_clip(root, 0)), str(_clip(root, 4))]
    assert run_score(parser.parse_args(["--run", str(run), files[0]])) == 0
    # freezing costs ~1-2 s and saves ~10-35 ms a clip: not worth it for one clip
    assert seen == [(False, "ASDModel")]
    monkeypatch.setattr(commands_module, "FREEZE_MIN_FILES", 2)
    assert run_score(parser.parse_args(["--run", str(run), *files])) == 0
    assert seen[1] == (None, "_FrozenEncoder")
    assert len([ln for ln in capsys.readouterr().out.splitlines() if "threshold" in ln]) == 3


def _real_logmel(root: Path, run: Path, n_clips: int):
    """Log-mel (n_clips * S, 224, 126) of the first fan training clips, normalised as the run does."""
    import torch

    from minasd.data import load_norm_stats, segments
    from minasd.features import LogMel

    norm = load_norm_stats(run / "norm_stats.json")["fan"]
    files = sorted((root / "dev_data" / "fan" / "train").glob("*.wav"))[:n_clips]
    with torch.no_grad():
        return torch.cat([LogMel()(torch.from_numpy(np.asarray(segments(norm.apply(load_audio(f))), np.float32)))
                          for f in files])


def _relative_error(got, ref) -> float:
    return max(((g - r).abs().max() / r.abs().max().clamp_min(1.0)).item() for g, r in zip(got, ref))


def test_freeze_for_cpu_freezes_a_trained_encoder_and_matches_it(evaluated):
    import warnings

    import torch

    from minasd.detector import _FrozenEncoder, freeze_for_cpu
    from minasd.runs import load_model

    root, run = evaluated
    model, _ = load_model(run, which="best", device="cpu")
    model = model.eval().to(memory_format=torch.channels_last)  # as Detector.load prepares it
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert any(not torch.allclose(m.running_var, torch.ones_like(m.running_var)) for m in bns)  # trained statistics
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frozen = freeze_for_cpu(model, n_segments=2)
    # really the frozen graph, batch norms folded away (what makes it faster), not the eager model
    assert isinstance(frozen, _FrozenEncoder) and isinstance(frozen.scripted, torch.jit.ScriptModule)
    assert "batch_norm" not in str(frozen.scripted.graph) and len(bns) > 10
    x = _real_logmel(root, run, 1)  # 10 segments: another batch size than traced
    with torch.inference_mode():
        ref, got = model(x), frozen(x)
    assert [g.shape for g in got] == [r.shape for r in ref]
    assert _relative_error(got, ref) < 1e-4  # float32 rounding (measured ~1e-6), not a different model
    assert frozen.training is False and frozen.eval() is frozen
    with pytest.raises(RuntimeError, match="inference only"):
        frozen.train()


def test_freeze_for_cpu_of_an_efficientnet_with_trained_batch_norms_does_not_warn(evaluated):
    """Issue 13: EfficientNet-B0 with the batch-norm statistics of real log-mel (as training
    leaves them) was refused with "differs from eager by 0.388", because the check fed it
    Gaussian noise as log-mel, where float32 rounding alone moves its outputs by ~10 %."""
    import warnings

    import torch

    from minasd.detector import _FrozenEncoder, freeze_for_cpu
    from minasd.model import ASDModel

    root, run = evaluated
    x = _real_logmel(root, run, 2)  # (20, 224, 126)
    torch.manual_seed(0)
    model = ASDModel(n_sections=6, backbone="efficientnet_b0")
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # running statistics = plain averages over the batches seen
    with torch.no_grad():
        model.train()(x)
    model.eval()
    # the cause: on the old probe the eager model disagrees with itself in another memory layout
    old_probe = torch.randn(10, 224, 126, generator=torch.Generator().manual_seed(1)) * 3.0
    with torch.inference_mode():
        contiguous = model(old_probe)
        model.to(memory_format=torch.channels_last)
        assert _relative_error(model(old_probe), contiguous) > 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frozen = freeze_for_cpu(model)
    assert isinstance(frozen, _FrozenEncoder)
    with torch.inference_mode():
        assert _relative_error(frozen(x[:10]), model(x[:10])) < 1e-4


def test_freeze_for_cpu_accepts_rounding_and_refuses_a_different_model():
    import warnings

    import torch
    from torch import nn

    from minasd.detector import _FrozenEncoder, _probe_logmel, freeze_for_cpu

    class Cancelling(nn.Module):
        """conv(x) + 1e4 - running_mean: the eager model loses ~4 digits to cancellation,
        the frozen one (bias folded first) does not; they differ by the eager model's rounding."""

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv, self.bn = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)
            with torch.no_grad():
                self.conv.bias.fill_(1e4)
                y = self.conv(_probe_logmel(4, seed=5).unsqueeze(1))
                self.bn.running_mean.copy_(y.mean((0, 2, 3)))
                self.bn.running_var.copy_(y.var((0, 2, 3)))

        def forward(self, x):
            return (self.bn(self.conv(x.unsqueeze(1))).mean((1, 2, 3)),)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(freeze_for_cpu(Cancelling(), n_segments=4), _FrozenEncoder)

    class BakesAConstant(nn.Module):
        def forward(self, x):
            return (x * float(x[0, 0, 0]),)  # the tracer records the example's value as a constant

    class Untraceable(nn.Module):
        def forward(self, x):
            raise RuntimeError("no")

    for bad, why in ((BakesAConstant(), "differs from eager"), (Untraceable(), "no")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert freeze_for_cpu(bad, n_segments=2) is bad
        assert any("optimisation unavailable" in str(w.message) and why in str(w.message) for w in caught)


def test_detector_scores_a_trained_run_without_warning_as_the_eager_model(evaluated):
    import warnings

    from minasd.detector import _FrozenEncoder

    root, run = evaluated
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither loading nor scoring may warn on a healthy run
        det = Detector.load(run)
        got = [det.score(_clip(root, s)) for s in (0, 4)]
    assert isinstance(det.model, _FrozenEncoder)
    eager = Detector.load(run, optimize=False)
    assert not isinstance(eager.model, _FrozenEncoder)
    for g, s in zip(got, (0, 4)):
        ref = eager.score(_clip(root, s))
        np.testing.assert_allclose(g.segment_scores, ref.segment_scores, rtol=1e-4, atol=1e-4)
        assert g.score == pytest.approx(ref.score, rel=1e-4, abs=1e-4) and g.is_anomaly == ref.is_anomaly


@pytest.fixture(scope="module")
def evaluated_b0(tmp_path_factory):
    """(data_root, run) of a *trained and evaluated* EfficientNet-B0 run, the paper's encoder.

    Kept small for a 2-core CPU: a copy of the shared tiny set cut to two fan sections (two
    training clips each, one normal and one anomalous test clip each) and two pump training
    clips; 1 epoch of B0 (one step of 8 crops), then ``minasd evaluate``.  A cut copy rather
    than ``max_train_clips_per_section``: that option thins the training clips only, and
    evaluating would still embed every test clip of all six sections with B0."""
    from minasd.train import TrainConfig, train

    shared, _ = shared_trained_run(tmp_path_factory)
    base = tmp_path_factory.mktemp("b0")
    root, run = base / "data", base / "run_fan_b0"
    keep = ["fan/train/section_0[01]_source_train_normal_000[01]_*.wav",
            "fan/source_test/section_0[01]_source_test_normal_0000_*.wav",
            "fan/source_test/section_0[01]_source_test_anomaly_0000_*.wav",
            "pump/train/section_00_source_train_normal_000[01]_*.wav"]
    for pattern in keep:
        for src in (shared / "dev_data").glob(pattern):
            dst = root / "dev_data" / src.relative_to(shared / "dev_data")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    assert len(list(root.rglob("*.wav"))) == 10
    train(TrainConfig(machine_type="fan", data_root=str(root), out_dir=str(run), epochs=1, batch_size=8,
                      device="cpu", backbone="efficientnet_b0", progress=False))
    evaluate_run(run, p=1, device="cpu", progress=False)
    return root, run


def test_detector_freezes_a_trained_b0_run_and_scores_as_the_eager_model(evaluated_b0):
    """Issue 12, item 11: the frozen CPU path on a trained EfficientNet-B0 checkpoint loaded
    through Detector.load (where it once failed with "differs from eager by 0.388"): no
    warning, really frozen, and the same scores as the eager model."""
    import warnings

    import torch

    from minasd.detector import _FrozenEncoder

    root, run = evaluated_b0
    assert json.loads((run / "run.json").read_text())["model"]["backbone"] == "efficientnet_b0"
    clips = sorted((root / "dev_data" / "fan" / "source_test").glob("*.wav"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback to the eager model would be a warning
        det = Detector.load(run)
        got = [det.score(c) for c in clips]
    assert isinstance(det.model, _FrozenEncoder) and isinstance(det.model.scripted, torch.jit.ScriptModule)
    assert "batch_norm" not in str(det.model.scripted.graph)  # batch norms folded: not the eager model
    eager = Detector.load(run, optimize=False)
    assert not isinstance(eager.model, _FrozenEncoder)
    bns = [m for m in eager.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert any(not torch.allclose(m.running_var, torch.ones_like(m.running_var)) for m in bns)  # trained
    for g, c in zip(got, clips):
        ref = eager.score(c)
        assert g.section == ref.section and g.segment_scores.shape == ref.segment_scores.shape == (10,)
        np.testing.assert_allclose(g.segment_scores, ref.segment_scores, rtol=1e-4, atol=1e-4)
        assert g.score == pytest.approx(ref.score, rel=1e-5, abs=1e-5) and g.is_anomaly == ref.is_anomaly
