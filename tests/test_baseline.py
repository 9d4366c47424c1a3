"""Tests of the Gaussian-mixture baseline (minasd.baseline), CPU only."""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from minasd import baseline, synth
from minasd.config import FEATURES, SECTIONS


def test_wave_features_shape_and_meaning():
    rng = np.random.default_rng(0)
    quiet = 0.01 * rng.standard_normal((2, 32000)).astype(np.float32)
    f = baseline.wave_features(np.concatenate([quiet, 10 * quiet]))
    assert f.shape == (4, 2 * FEATURES.n_mels) and f.dtype == np.float32
    # 20 dB more gain lifts every mean log-mel bin by log(100) and leaves the stds alone
    n = FEATURES.n_mels
    assert np.allclose(f[2:, :n] - f[:2, :n], np.log(100.0), atol=1e-3)
    assert np.allclose(f[2:, n:], f[:2, n:], atol=1e-3)


def test_gross_toy_case_scores_anomalies_higher():
    """Features of clearly shifted clips get higher scores than normal ones."""
    rng = np.random.default_rng(1)
    d = 20
    train = rng.standard_normal((60, d))
    test = np.concatenate([rng.standard_normal((20, d)), rng.standard_normal((20, d)) + 3.0])
    df = pd.DataFrame({"machine": "fan", "section": 0, "split": ["train"] * 60 + ["test"] * 40,
                       "label": pd.array([0] * 80 + [1] * 20, dtype="Int64")})
    res = baseline.evaluate_features(df, np.concatenate([train, test]))
    assert len(res) == 1 and res.auc[0] > 0.99 and res.pauc[0] > 0.95


def test_audio_gross_anomaly_detected():
    """A stuck valve (continuous hiss, no closing clicks) is far from normal valve clips."""
    train = [synth.render_clip("valve", 1, seed=0, seconds=2.5, split="train", index=i)[0] for i in range(10)]
    normal = [synth.render_clip("valve", 1, seed=0, seconds=2.5, split="test_normal", index=i)[0] for i in range(4)]
    stuck = [synth.render_clip("valve", 1, "stuck", 1.0, seed=0, seconds=2.5, split="test_anomaly", index=i)[0]
             for i in range(4)]
    f = baseline.wave_features(np.stack(train + normal + stuck))
    gmm = baseline.fit_section(f[:10])
    s = baseline.anomaly_scores(gmm, f[10:])
    assert s[4:].min() > s[:4].max()


def test_fit_section_needs_two_clips():
    with pytest.raises(ValueError, match="at least 2"):
        baseline.fit_section(np.zeros((1, 5)))


def _add_target_domain_clips(root: Path) -> int:
    """Copies of a source clip named as DCASE 2021 target-domain clips (train/ and target_test/),
    as the real data holds them; the protocol must ignore every one.  Returns how many."""
    src = sorted((root / "dev_data/pump/train").glob("*.wav"))[0]
    names = ["train/section_00_target_train_normal_0000_x.wav", "train/section_00_target_train_normal_0001_x.wav",
             "target_test/section_00_target_test_normal_0000_x.wav",
             "target_test/section_00_target_test_anomaly_0000_x.wav"]
    for name in names:
        (root / "dev_data/pump" / name).parent.mkdir(exist_ok=True)
        shutil.copyfile(src, root / "dev_data/pump" / name)
    return len(names)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """A tiny synthetic set of two types plus target-domain clips; read only (shared by tests)."""
    root = synth.make_dataset(tmp_path_factory.mktemp("baseline") / "synth_tiny", "tiny", seed=0,
                              machine_types=["pump", "ToyTrain"], progress=False)
    assert _add_target_domain_clips(root) == 4
    return root


def test_run_baseline_on_tiny_uses_the_protocol_clips(tiny_root):
    from minasd.data import index, protocol_clips

    root = tiny_root
    res = baseline.run_baseline(root, workers=1, progress=False)
    assert len(res) == 2 * len(SECTIONS)  # eval sections included: labels come from the ground truth
    assert set(res.section) == set(SECTIONS)
    assert res.auc.between(0, 1).all() and res.pauc.between(0, 1).all()
    assert (res.n_train == synth.SIZES["tiny"].n_train).all()  # the target-domain clips are not fitted on
    assert (res.n_test_anomaly == synth.SIZES["tiny"].n_test_anomaly).all()
    # the same clips as minasd.data.protocol_clips chooses, section by section (one rule for every stage)
    df = index(root)
    for r in res.itertuples():
        train = protocol_clips(df, "train", machines=[r.machine], sections=[r.section])
        test = protocol_clips(df, "test", machines=[r.machine], sections=[r.section])
        assert r.n_train == len(train) and r.n_test_normal + r.n_test_anomaly == len(test)


def test_in_process_features_leave_torch_thread_count_unchanged(tmp_path):
    """workers=1 computes features in the caller's process: the worker setting (one thread)
    must not leak into it, or every later stage of that process runs single-threaded."""
    import soundfile as sf
    import torch

    wav = tmp_path / "noise.wav"
    sf.write(wav, 0.1 * np.random.default_rng(0).standard_normal(40000).astype(np.float32), FEATURES.sample_rate)
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # not 1, so that a leaked worker setting shows
    try:
        f = baseline.clip_features([wav, wav], workers=1, progress=False)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert after == 3
    assert f.shape == (2, 2 * FEATURES.n_mels) and np.allclose(f[0], f[1])


# --- benchmarks/baseline_table.py: no developer machine's paths in what it writes ----------------------

REPO = Path(__file__).resolve().parents[1]
# an absolute POSIX path (after a space, quote, '=' or bracket) or a Windows drive path
ABSOLUTE_PATH = re.compile(r"""(^|[\s"'=(\[])(/[A-Za-z~]|[A-Za-z]:[\\/])""", re.MULTILINE)


@pytest.fixture(scope="module")
def baseline_table():
    spec = importlib.util.spec_from_file_location("baseline_table", REPO / "benchmarks" / "baseline_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_baseline_table_needs_a_root(baseline_table, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:  # no default: before, it was one developer's absolute path
        baseline_table.main(["--no-generate", "--out-prefix", str(tmp_path / "res")])
    assert err.value.code == 2 and "--root" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_baseline_table_writes_relative_paths(baseline_table, tmp_path, monkeypatch):
    assert baseline_table.shown_path("data/synth_full") == "data/synth_full"
    assert baseline_table.shown_path(REPO / "benchmarks/results/x") == "benchmarks/results/x"
    monkeypatch.chdir(tmp_path)
    assert baseline_table.shown_path(tmp_path / "data" / "set") == "data/set"  # inside the current directory
    assert baseline_table.shown_path("/elsewhere/someone/synth_full") == "synth_full"  # outside: the name only
    assert baseline_table.command_line(["--root", "/a/b/synth", "--out-prefix=/c/res", "--seed", "0"]) == \
        "python benchmarks/baseline_table.py --root synth --out-prefix=res --seed 0"


def test_baseline_table_run_names_no_absolute_path(baseline_table, tiny_root, tmp_path, monkeypatch, capsys):
    """A whole (tiny, one-type) run given absolute paths writes none of them."""
    work = tmp_path / "somebody" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    out = work / "results" / "table"
    assert baseline_table.main(["--root", str(tiny_root), "--no-generate", "--machine-types", "pump",
                                "--workers", "1", "--out-prefix", str(out)]) == 0
    capsys.readouterr()
    for suffix in (".txt", ".json", ".csv"):
        text = out.with_suffix(suffix).read_text()
        assert str(tmp_path) not in text and str(tiny_root) not in text, suffix
        assert not ABSOLUTE_PATH.search(text), suffix
    header = out.with_suffix(".txt").read_text()
    assert "# data root: synth_tiny\n" in header and "--root synth_tiny" in header
    assert "--out-prefix results/table" in header
    assert len(json.loads(out.with_suffix(".json").read_text())["sections"]) == len(SECTIONS)


@pytest.mark.parametrize("rel", ["benchmarks/results/baseline_full.txt", "benchmarks/results/baseline_full.json",
                                 "benchmarks/results/baseline_full.csv", "benchmarks/synth_full_report.txt"])
def test_committed_baseline_outputs_name_no_absolute_path(rel):
    text = (REPO / rel).read_text()
    hit = ABSOLUTE_PATH.search(text)
    assert hit is None, f"{rel} holds an absolute path near {text[max(0, hit.start() - 30):hit.end() + 30]!r}"
    assert "data/synth_full" in text or rel.endswith(".csv")
