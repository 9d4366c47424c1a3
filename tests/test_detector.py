"""Detector: loading an evaluated run, scoring files and arrays, bad input, `minasd score`."""
import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from minasd.data import load_audio
from minasd.detector import Detector, add_score_arguments, run_score
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


def test_freeze_for_cpu_matches_eager_and_falls_back():
    import warnings

    import torch

    from minasd.detector import freeze_for_cpu
    from minasd.model import ASDModel

    torch.manual_seed(0)
    model = ASDModel(n_sections=3, backbone="mobilenetv3_small_050").eval()
    frozen = freeze_for_cpu(model, n_segments=2)
    x = torch.randn(4, 224, 126)  # another batch size than traced
    with torch.inference_mode():
        for ref, got in zip(model(x), frozen(x)):
            assert got.shape == ref.shape
            assert torch.allclose(ref, got, atol=1e-3 * max(1.0, ref.abs().max().item()))
    assert frozen.training is False and frozen.eval() is frozen

    class Untraceable(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("no")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bad = Untraceable()
        assert freeze_for_cpu(bad) is bad
    assert any("optimisation unavailable" in str(w.message) for w in caught)
