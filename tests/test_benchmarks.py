"""The benchmark scripts run (at toy size) and their pure parts are right.

The committed figures come from running these scripts at full size on an idle machine;
these tests only keep the scripts from breaking unnoticed (no timing is asserted).
"""
from __future__ import annotations

import doctest
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_bench_train_cpu_mode_runs_the_trainers_step_and_writes_its_report(tmp_path, keep_threads):
    bench_train = _load("bench_train")
    out = tmp_path / "train.txt"
    bench_train.main(["--device", "cpu", "--backbone", "mobilenetv3_small_050", "--batch", "4", "--steps", "1",
                      "--warmup", "0", "--clips-per-type", "2", "--clip-seconds", "3", "--tmp", str(tmp_path),
                      "--out", str(out)])
    text = out.read_text()
    for needle in ("new / old, whole step", "whole / model-only, new path", "runtime_settings", "commit"):
        assert needle in text


def test_study_rule_picks_the_fastest_candidate_reaching_the_accuracy_goal():
    study = _load("cpu_profile_study")
    assert doctest.testmod(study).failed == 0
    thr = {"m/b32": 100.0, "m/b16": 60.0}

    def row(name, batch, epochs, acc, dev):
        return dict(candidate=name, backbone="m", batch_size=batch, epochs=epochs, steps_per_epoch=640 // batch,
                    val_section_acc_best=acc, dev_hmean_selected=dev)

    rows = [row("b32-e20", 32, 20, 0.85, 0.60), row("b16-e20", 16, 20, 0.95, 0.70), row("b32-e10", 32, 10, 0.5, 0.9)]
    # b32-e20: 2.13 min; b16-e20 3.56 min (slower crops/s): the goal is met by both, the faster wins
    assert study.rule_pick(rows, thr)["candidate"] == "b32-e20"
    assert study.est_minutes(rows[1], thr) == pytest.approx(20 * 40 * 16 / 60.0 / 60)
    assert study.rule_pick([rows[2]], thr) is None  # nothing reaches the goal
    assert set(study.STUDY) <= set(study.CANDIDATES)


def test_run_measured_reports_time_and_peak_memory_and_fails_loudly(tmp_path):
    bench_profile = _load("bench_profile")
    code = "import numpy as np, time; a = np.ones(64 * 2**20 // 8); time.sleep(0.6); print('ok')"
    m = bench_profile.run_measured([sys.executable, "-c", code], log_path=tmp_path / "log.txt")
    assert (tmp_path / "log.txt").read_text().strip() == "ok"
    assert m["peak_anon_mib"] >= 60 and m["peak_rss_mib"] >= m["peak_anon_mib"] and m["wall_s"] >= 0.6
    with pytest.raises(Exception, match="returned non-zero"):
        bench_profile.run_measured([sys.executable, "-c", "raise SystemExit(3)"])


def test_bench_demo_refuses_an_existing_work_folder(tmp_path):
    bench_demo = _load("bench_demo")
    with pytest.raises(SystemExit, match="exists"):
        bench_demo.main(["--work", str(tmp_path)])


def test_bench_systems_runs_every_system_at_toy_size(tmp_path, keep_threads):
    bench_systems = _load("bench_systems")
    out = tmp_path / "systems.txt"
    assert bench_systems.main(["--size", "tiny", "--types", "fan", "--epochs", "2", "--data", str(tmp_path / "d"),
                               "--out", str(out)]) == 0
    text = out.read_text()
    for name in ("gmm_meanstd", "ae_dcase2021", "twfr_gmm"):
        assert f"fan        {name}" in text
    assert "synthetic size 'tiny'" in text


def test_bench_synth_times_both_generators_on_the_same_clips_and_writes_its_report(tmp_path):
    bench_synth = _load("bench_synth")
    out = tmp_path / "synth.txt"
    bench_synth.main(["--size", "tiny", "--machine-types", "valve", "--sections", "0", "--repeats", "2",
                      "--tmp", str(tmp_path), "--out", str(out)])
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith("valve"))
    from minasd.synth import SIZES

    tiny = SIZES["tiny"]  # one section's clips, the same count for both versions
    assert int(row.split()[1]) == tiny.n_train + tiny.n_test_normal + tiny.n_test_anomaly
    for needle in ("2.0/1.2 s per clip", "all types: 1.2", "commit", "not DCASE"):
        assert needle in text
    assert not [p for p in tmp_path.iterdir() if p != out]  # no set is kept
