"""minasd.calibrate: jobs, views, the search and saturation rules, the report's arithmetic, method independence.

Tiny synthetic sets (generator 1.2, 3 s clips), one machine type, the autoencoder for one epoch:
the numbers measured here mean nothing; the tests check what is written, reused and computed.
"""
from __future__ import annotations

import ast
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from minasd import calibrate as cal
from minasd import cli, synth
from minasd.config import DEV_SECTIONS, MACHINE_TYPES
from minasd.data import index, parse_filename

FORBIDDEN = ("minasd.model", "minasd.train", "minasd.detector", "minasd.inlier", "minasd.studies.experiment")


@pytest.fixture(scope="module")
def sat(tmp_path_factory):
    """A saturation stage on a tiny valve set: training sizes 4 (a view) and 8 (the base set), seed 0."""
    work = tmp_path_factory.mktemp("calib")
    cfg = cal.CalibConfig(work=work, machine_types=("valve",), seeds=(0,), sizes=(4, 8), jobs=1, ae_epochs=1,
                          generator="1.2", knobs=work / "no_knobs.json", knobs_out=work / "knobs_out.json",
                          report=work / "report.json", data_size="tiny", workers=1)
    return cfg, cal.run_saturation(cfg)


def _jobs(cfg):
    return {j.n_train: j for j in cal.saturation_jobs(cfg, None)}


def test_saturation_writes_one_job_file_per_size_and_a_rerun_skips_them(sat, monkeypatch):
    cfg, summary = sat
    jobs = _jobs(cfg)
    assert sorted(jobs) == [4, 8]
    for n, job in jobs.items():
        r = json.loads(job.path(cfg.work).read_text())
        assert r["key"] == job.key and r["job"]["n_train"] == n and r["synthetic"] is True
        assert sorted(r["ae"]["sections"]) == ["00", "01", "02"]  # sections 00-02 only
        assert 0 < r["ae"]["hmean_auc"] <= 100 and r["cpu_s"] > 0 and r["wall_s"] > 0
        # where it ran: the job's device and the versions that computed it
        assert r["machine"]["device"] == "cpu" and r["machine"]["device_name"]
        assert r["machine"]["numpy"] == np.__version__ and r["machine"]["cpu_count"] >= 1
        assert math.isclose(r["gmm"]["max_minus_mean"], r["gmm"]["max_gmm"]["hmean_auc"]
                            - r["gmm"]["mean_gmm"]["hmean_auc"])
        assert summary["curve"]["valve"][str(n)]["0"] == r["ae"]["hmean_auc"]
    assert summary["n_star"] in (4, 8) and summary["n_small"] == 4
    stamps = {n: j.path(cfg.work).stat().st_mtime_ns for n, j in jobs.items()}

    def boom(*args, **kwargs):
        raise AssertionError("a finished job was measured again")

    monkeypatch.setattr(cal, "measure", boom)
    again = cal.run_saturation(cfg)
    assert again["curve"] == summary["curve"]
    assert {n: j.path(cfg.work).stat().st_mtime_ns for n, j in jobs.items()} == stamps


def test_a_measurement_another_stage_made_is_reused_not_rerun(sat, tmp_path, monkeypatch):
    """A check job equal to a finished saturation job but for the stage: copied, marked, not measured."""
    cfg, _ = sat
    store = tmp_path / "store"
    shutil.copytree(Path(cfg.work) / "jobs", store / "jobs")
    done = _jobs(cfg)[8]
    check = replace(done, stage="check")
    other_seed = replace(done, stage="check", seed=1)
    assert cal.same_measurement(check, store) == done.path(store)
    assert cal.same_measurement(other_seed, store) is None  # another seed is another measurement

    def boom(*args, **kwargs):
        raise AssertionError("a measurement another stage made was run again")

    monkeypatch.setattr(cal, "run_tasks", lambda cfg, tasks: {k: boom() for k in tasks})
    out = cal.run_jobs(replace(cfg, store=store), [check])
    source = json.loads(done.path(store).read_text())
    r = out[check.key]
    assert r["reused_from"] == done.key and r["key"] == check.key and r["job"]["stage"] == "check"
    assert r["ae"] == source["ae"] and r["gmm"] == source["gmm"]
    assert json.loads(check.path(store).read_text()) == r  # written under its own key
    assert "reused_from" not in source  # the source is untouched


def test_a_store_carries_finished_jobs_to_a_fresh_work_folder(sat, tmp_path, monkeypatch):
    """Job results copied into --store (as a commit carries them to the next session) are not run again,
    and the stage's summary is written there, not under the new, empty --work."""
    cfg, summary = sat
    store, work = tmp_path / "store", tmp_path / "fresh_work"
    shutil.copytree(Path(cfg.work) / "jobs", store / "jobs")

    def boom(*args, **kwargs):
        raise AssertionError("a job found in the store was measured again")

    monkeypatch.setattr(cal, "measure", boom)
    again = cal.run_saturation(replace(cfg, work=work, store=store))
    assert again["curve"] == summary["curve"]
    assert (store / cal.SATURATION_NAME).is_file() and not (work / cal.SATURATION_NAME).exists()
    assert not (work / "data").exists()  # no data made for a finished job
    assert "--store" in cal.rerun_command(replace(cfg, store=store), 8, (0,))


def test_the_saturation_view_holds_every_finished_size_of_the_store(sat, monkeypatch):
    """A run for one more size (or one type) keeps the sizes and types measured before in its curve."""
    cfg, summary = sat

    def boom(*args, **kwargs):
        raise AssertionError("a finished job was measured again")

    monkeypatch.setattr(cal, "measure", boom)
    one = cal.run_saturation(replace(cfg, sizes=(8,)))
    assert one["sizes"] == [4, 8] and one["curve"] == summary["curve"] and one["n_small"] == 4
    assert one["type_codes"] == {"valve": cal.type_code_hash("valve", "1.2")}
    assert one["incomplete_sizes"] == []


def test_n_star_comes_only_from_sizes_every_type_was_measured_at(tmp_path, monkeypatch):
    # fan was not measured at 500; pump alone looks flat from 250 to 500, but fan was still rising
    curve = {"fan": {60: 55.0, 120: 60.0, 250: 65.0}, "pump": {60: 70.0, 120: 72.0, 250: 75.0, 500: 75.2}}
    cfg = cal.CalibConfig(work=tmp_path, machine_types=("fan",), seeds=(0,), sizes=(60,), jobs=1, generator="1.2",
                          knobs=tmp_path / "no_knobs.json")
    for m, by_n in curve.items():
        for n, auc in by_n.items():
            job = cal._job(cfg, "saturation", m, 0, n, None, data_size="sweep")
            job.path(tmp_path).parent.mkdir(parents=True, exist_ok=True)
            job.path(tmp_path).write_text(json.dumps({"key": job.key, "job": {"machine": m, "n_train": n, "seed": 0},
                                                      "ae": {"hmean_auc": auc}}))
    monkeypatch.setattr(cal, "measure", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran a job")))
    summary = cal.run_saturation(cfg)
    assert summary["sizes"] == [60, 120, 250, 500] and summary["incomplete_sizes"] == [500]
    seed1 = cal._job(cfg, "saturation", "fan", 1, 60, None, data_size="sweep")
    seed1.path(tmp_path).write_text(json.dumps({"key": seed1.key, "job": {"machine": "fan", "n_train": 60, "seed": 1},
                                                "ae": {"hmean_auc": 56.0}}))
    # the seeds are those of the store's jobs, not of the command that wrote the view (--seeds 0)
    assert cal.run_saturation(cfg)["seeds"] == [0, 1]
    assert summary["n_star"] == 250 and summary["saturated"] is False
    assert cal.saturation_point({m: {n: {0: v} for n, v in by_n.items()} for m, by_n in curve.items()},
                                [60, 120, 250, 500])["saturated"] is True  # what the rule would say on all sizes


def test_a_view_is_an_exact_subset_that_index_reads(sat):
    cfg, _ = sat
    jobs = _jobs(cfg)
    base, view = jobs[8].root(cfg.work), jobs[4].root(cfg.work)
    assert base == jobs[4].base_root(cfg.work) and view != base
    for folder, dirs, _ in os.walk(view):
        assert not any(os.path.islink(os.path.join(folder, d)) for d in dirs)  # real folders: os.walk enters them
    seen, full = index(view), index(base)
    full = full[full["section"].isin(DEV_SECTIONS)]
    train = seen[seen["split"] == "train"]
    assert train.groupby("section").size().to_dict() == {s: 4 for s in DEV_SECTIONS}
    want = {p for p in full.loc[full["split"] == "train", "path"] if parse_filename(p).number < 4}
    assert {os.path.realpath(p) for p in train["path"]} == {os.path.realpath(p) for p in want}
    test_seen = {os.path.realpath(p) for p in seen.loc[seen["split"] == "test", "path"]}
    assert test_seen == {os.path.realpath(p) for p in full.loc[full["split"] == "test", "path"]}
    manifest = synth.read_manifest(view)
    assert (view / manifest["view_of"]).resolve() == base.resolve() and manifest["view_n_train"] == 4
    labels = synth.read_labels(view)
    assert len(labels) == len(test_seen) and set(labels["section"]) == set(DEV_SECTIONS)


def test_a_knob_change_is_a_new_job_and_a_new_data_set(tmp_path, monkeypatch):
    knobs = {"status": "notes", "types": {"fan": {"sigma": 1.0, "snr": 0}, "pump": {"sigma": 1.0}}}
    cfg = cal.CalibConfig(work=tmp_path, machine_types=("fan",), seeds=(0,), jobs=1, ae_epochs=1, generator="2.0",
                          data_size="tiny", workers=1)
    job = cal._job(cfg, "check", "fan", 0, 8, knobs)
    moved = cal._job(cfg, "check", "fan", 0, 8, cal.with_sigma(knobs, "fan", 1.5))
    other = cal._job(cfg, "check", "fan", 0, 8, dict(cal.with_sigma(knobs, "pump", 2.0), status="edited"))
    assert moved.key != job.key and moved.base_root(tmp_path) != job.base_root(tmp_path)
    assert other.key == job.key  # another type's knobs and the notes do not touch fan's clips
    assert cal._job(cfg, "check", "fan", 0, 8, knobs).key == job.key
    assert cal._job(replace(cfg, ae_epochs=2), "check", "fan", 0, 8, knobs).key != job.key

    made, measured = [], []

    def fake_set(j, root, workers):  # the generator's part is the other module's business: a marker only
        made.append(json.loads(j.knobs)["types"]["fan"]["sigma"])
        root.mkdir(parents=True)
        (root / synth.MANIFEST_NAME).write_text("{}")

    def fake_measure(root, machine, seed, epochs, device):
        measured.append(root)
        return {"ae": {"hmean_auc": 60.0}, "gmm": {"max_minus_mean": 0.0}, "wall_s": 0.0, "cpu_s": 0.0}

    monkeypatch.setattr(cal, "_make_set", fake_set)
    monkeypatch.setattr(cal, "measure", fake_measure)
    cal.run_jobs(cfg, [job])
    cal.run_jobs(cfg, [job, other])
    assert made == [1.0] and len(measured) == 1
    cal.run_jobs(cfg, [moved])
    assert made == [1.0, 1.5] and len(measured) == 2
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == sorted([f"{job.key}.json", f"{moved.key}.json"])
    assert json.loads(moved.path(tmp_path).read_text())["knobs"]["type"]["sigma"] == 1.5


def test_bisect_sigma_approaches_the_goal_and_flags_a_goal_beyond_the_bracket():
    def auc(s):
        return 50 + 10 * math.log(s)

    found = cal.bisect_sigma(auc, 55.0)
    assert len(found["trials"]) == cal.SEARCH_STEPS and found["bracket_end"] is None
    assert abs(found["miss"]) == min(abs(t["miss"]) for t in found["trials"])
    assert abs(found["sigma"] - math.exp(0.5)) / math.exp(0.5) < 0.2
    assert all(cal.SIGMA_BRACKET[0] < t["sigma"] < cal.SIGMA_BRACKET[1] for t in found["trials"])
    high = cal.bisect_sigma(auc, 99.0)
    assert high["bracket_end"] == "upper" and [t["sigma"] for t in high["trials"]] == sorted(
        t["sigma"] for t in high["trials"])
    assert cal.bisect_sigma(auc, 1.0)["bracket_end"] == "lower"


def _faked_search(tmp_path, monkeypatch, gain_at_n_star: float, knobs: dict,
                  slope_at_n_star: float = 10.0) -> tuple[dict, dict]:
    """run_search for fan with the generator and the measurement faked: AE AUC = 60 + 10 ln(sigma) at
    60 clips and ``gain_at_n_star`` + ``slope_at_n_star`` ln(sigma) at n* = 500, while the saturation
    offset says 3.

    Returns:
        (the search's result for fan, {data root: sigma it was made with}).
    """
    knobs_in = tmp_path / "knobs.json"
    knobs_in.write_text(json.dumps(knobs))
    (tmp_path / cal.SATURATION_NAME).write_text(json.dumps(
        {"n_star": 500, "curve": {"fan": {"60": {"0": 55.0}, "500": {"0": 58.0}}}}))
    sigma_of_root = {}

    def fake_set(job, root, workers):
        sigma_of_root[root] = json.loads(job.knobs)["types"]["fan"]["sigma"]
        root.mkdir(parents=True)
        (root / synth.MANIFEST_NAME).write_text("{}")

    def fake_measure(root, machine, seed, epochs, device):
        large = root.name.endswith("sweep")
        auc = 60 + (slope_at_n_star if large else 10) * math.log(sigma_of_root[root]) + (gain_at_n_star if large else 0.0)
        return {"ae": {"hmean_auc": auc}, "gmm": {"max_minus_mean": 1.0}, "wall_s": 0.0, "cpu_s": 0.0}

    monkeypatch.setattr(cal, "_make_set", fake_set)
    monkeypatch.setattr(cal, "measure", fake_measure)
    monkeypatch.setitem(synth.SIZES, "sweep", synth.SizeSpec(500, 100, 100, 10.0))
    cfg = cal.CalibConfig(work=tmp_path, machine_types=("fan",), sizes=(60, 500), jobs=1, ae_epochs=1,
                          generator="2.0", knobs=knobs_in, knobs_out=tmp_path / "knobs_out.json")
    return cal.run_search(cfg)["fan"], sigma_of_root


def test_search_bisects_toward_target_minus_offset_and_writes_knobs_and_log(tmp_path, monkeypatch):
    found, sigma_of_root = _faked_search(tmp_path, monkeypatch, 3.0,
                                         {"status": "notes", "types": {"fan": {"sigma": 1.0, "snr": 0}}})
    goal = cal.TARGETS["fan"] - 3.0
    assert math.isclose(found["goal"], goal) and len(found["trials"]) == cal.SEARCH_STEPS
    chosen = json.loads((tmp_path / "knobs_out.json").read_text())
    assert chosen["status"] == "notes" and chosen["types"]["fan"]["snr"] == 0
    assert abs(chosen["types"]["fan"]["sigma"] - math.exp((goal - 60) / 10)) < 0.1
    assert abs(found["at_n_star"]["ae"] - cal.TARGETS["fan"]) < 1.0
    log = json.loads((tmp_path / cal.SEARCH_LOG_NAME).read_text())["types"]["fan"]
    assert log["knobs_before"]["sigma"] == 1.0 and log["knobs_after"] == chosen["types"]["fan"]
    kept = [root for root in sigma_of_root if root.exists()]
    assert [root.name for root in kept] == ["s0_sweep"]  # the trials' sets are removed, n*'s kept
    assert len(list((tmp_path / "jobs").glob("search_fan_*.json"))) == cal.SEARCH_STEPS + len(found["trials_n_star"])


def test_search_corrects_at_n_star_when_the_offset_was_wrong(tmp_path, monkeypatch):
    # 12 points more at n* where the offset said 3: the bisection's sigma misses there, a correction finds it
    found, _ = _faked_search(tmp_path, monkeypatch, 12.0, {"types": {"fan": {"sigma": 1.0}}})
    first = found["trials_n_star"][0]
    assert abs(first["miss"] - 9.0) < 1.0  # the offset's guess: 9 points too easy at n*
    assert 2 <= len(found["trials_n_star"]) <= 1 + cal.REFINE_STEPS
    assert abs(found["at_n_star"]["ae"] - cal.TARGETS["fan"]) <= cal.REFINE_WITHIN
    assert found["sigma"] == min(found["trials_n_star"], key=lambda t: abs(t["miss"]))["sigma"]


def test_later_corrections_at_n_star_use_the_slope_measured_there(tmp_path, monkeypatch):
    # at n* the AUC rises three times as fast with ln(sigma) as at 60 clips: the small size's slope
    # overshoots (ToyCar, 2026-12-08); the second correction takes the secant through the trials at n*
    found, _ = _faked_search(tmp_path, monkeypatch, -10.0, {"types": {"fan": {"sigma": 1.0}}}, slope_at_n_star=30.0)
    steps = found["trials_n_star"]
    assert len(steps) == 3 and abs(steps[1]["miss"]) > cal.REFINE_WITHIN  # the first correction overshot
    assert steps[0]["next_slope"] == pytest.approx(found["slope"]) and steps[1]["next_slope"] == pytest.approx(30.0, rel=1e-3)
    assert abs(steps[2]["miss"]) < 0.05 and found["sigma"] == steps[2]["sigma"]  # sigma is kept to 4 decimals


def test_saturation_sizes_up_to_500_share_one_base_set_and_1000_has_its_own():
    cfg = cal.CalibConfig(machine_types=("fan",), sizes=(60, 250, 500, 1000), generator="1.2")
    jobs = cal.saturation_jobs(cfg, None)
    assert {(j.seed, j.n_train): j.data_size for j in jobs} == {
        (0, 60): "sweep", (0, 250): "sweep", (0, 500): "sweep", (0, 1000): "full",
        (1, 60): "sweep", (1, 250): "sweep", (1, 500): "sweep"}  # seed 1: all but the largest size


def test_the_calibration_script_runs_the_stages_in_order_from_the_saturations_knobs():
    text = (Path(cal.__file__).parents[1] / "benchmarks" / "run_calibration.sh").read_text()
    stages = [line.split()[1] for line in text.splitlines() if line.startswith('"${CAL[@]}"')]
    assert stages == ["saturation", "search", "check"]
    store = Path(cal.__file__).parents[1] / "benchmarks" / "results" / "calibration"
    start = json.loads((store / "knobs_saturation.json").read_text())
    sat = json.loads((store / cal.SATURATION_NAME).read_text())
    assert {m: cal.knob_hash(start, m) for m in sat["knob_hashes"]} == sat["knob_hashes"]


def test_saturation_point_rule():
    sizes = [60, 120, 250, 500]
    rising = {"fan": {n: {0: 50 + n / 10} for n in sizes}}
    point = cal.saturation_point(rising, sizes)
    assert point["n_star"] == 500 and point["saturated"] is False and len(point["steps"]) == 3
    flat_mean = {"fan": {60: {0: 60.0}, 120: {0: 61.0}, 250: {0: 61.0}, 500: {0: 61.0}},
                 "pump": {60: {0: 60.0}, 120: {0: 63.0}, 250: {0: 63.0}, 500: {0: 63.0}}}
    # 60 -> 120: mean gain 2 > 1; 120 -> 250: flat
    assert cal.saturation_point(flat_mean, sizes)["n_star"] == 120
    one_type_rises = {"fan": {60: {0: 60.0}, 120: {0: 60.0}, 250: {0: 60.0}},
                      "pump": {60: {0: 60.0}, 120: {0: 62.5}, 250: {0: 62.5}},
                      "valve": {60: {0: 60.0}, 120: {0: 59.0}, 250: {0: 59.0}}}
    # 60 -> 120: mean gain 0.5 but pump gains 2.5 > 2
    assert cal.saturation_point(one_type_rises, [60, 120, 250])["n_star"] == 120
    seeds = {"fan": {60: {0: 60.0, 1: 70.0}, 120: {0: 60.5}}}  # only seed 0 is compared
    point = cal.saturation_point(seeds, [60, 120])
    assert point["n_star"] == 60 and point["steps"][0]["gains"] == {"fan": 0.5}
    assert cal.offsets_at(seeds, 120, 60) == {"fan": 0.5}


def _fake(machine, seed, auc, diff, stage="check"):
    sections = {f"{s:02d}": {"auc": auc + d, "pauc": 55.0} for s, d in zip(DEV_SECTIONS, (-1.0, 0.0, 1.0))}
    return {"job": {"machine": machine, "seed": seed, "stage": stage}, "ae": {"hmean_auc": auc, "sections": sections},
            "gmm": {"max_minus_mean": diff}, "separability": 0.9, "knobs": {"shared": {}, "type": {"sigma": 1.2}}}


def test_report_lists_every_target_with_pass_and_fail_computed():
    # fabricated job results: a test of the report's arithmetic only
    offset = {"fan": 1.0, "gearbox": -2.0, "pump": 0.0, "valve": 6.0, "slider": -1.0, "ToyCar": 2.0, "ToyTrain": 0.5}
    signs = {"valve": [5.0, 4.0, 3.0], "ToyCar": [-3.0, -4.0, 1.0], "gearbox": [-1.0, -1.0, -1.0]}
    check = [_fake(m, s, cal.TARGETS[m] + offset[m] + (s - 1) * 0.5, signs.get(m, [0.0] * 3)[s])
             for m in MACHINE_TYPES for s in (0, 1, 2)]
    before = [_fake(m, 0, 50.0, 0.0, "baseline") for m in MACHINE_TYPES]
    log = {"types": {"fan": {"knobs_before": {"sigma": 1.0}}}}
    rep = cal.build_report(check, before, None, log, {"generator": "2.0", "rerun": "minasd calibrate check"})
    rows = {r["machine"]: r for r in rep["types"]}
    assert list(rows) == [m for m in MACHINE_TYPES]
    for m, r in rows.items():
        assert r["target"] == cal.TARGETS[m] and r["seeds"] == [0, 1, 2] and r["v1_2"] == 50.0
        assert math.isclose(r["mean"], cal.TARGETS[m] + offset[m]) and math.isclose(r["sd"], 0.5)
        assert math.isclose(r["abs_diff"], abs(offset[m])) and r["pass"] == (abs(offset[m]) <= 5)
        assert math.isclose(r["sections"]["02"] - r["sections"]["00"], 2.0)
    assert rows["valve"]["pass"] is False and rows["ToyCar"]["pass"] is True
    assert rows["valve"]["sign"]["pass"] is True  # mean +4 >= 2, every seed +
    assert rows["ToyCar"]["sign"]["pass"] is False  # one seed on the wrong side
    assert rows["gearbox"]["sign"]["pass"] is False  # right sign, margin 1 < 2
    assert rows["fan"]["sign"]["pass"] is None and rows["fan"]["knobs_before"] == {"sigma": 1.0}
    s = rep["summary"]
    assert math.isclose(s["mean_abs_diff"], sum(abs(v) for v in offset.values()) / 7)
    assert s["mean_pass"] is True and s["types_passing"] == 6 and s["targets_met"] is False
    assert s["signs_met"] is False and s["types_missing"] == []
    md = cal.report_markdown(rep)
    assert all(f"| {m} | {cal.TARGETS[m]:.1f} |" in md for m in MACHINE_TYPES)
    assert "sigma 1->1.2" in md and "minasd calibrate check" in md and "not DCASE" in md

    fixed = [c if c["job"]["machine"] != "valve" else {**c, "ae": {**c["ae"], "hmean_auc": 56.0}} for c in check]
    assert cal.build_report(fixed)["summary"]["targets_met"] is True
    partial = cal.build_report([c for c in fixed if c["job"]["machine"] != "pump"])
    assert partial["summary"]["types_missing"] == ["pump"] and partial["summary"]["targets_met"] is False
    assert "| pump | 70.9 | – | not measured |" in cal.report_markdown(partial)


def test_gmm_pair_equals_run_twfr_with_each_setting(sat):
    from minasd.twfr import SETTINGS, run_twfr

    cfg, _ = sat
    root = _jobs(cfg)[8].root(cfg.work)
    pair = cal.gmm_pair(root, "valve", seed=0)
    for name in ("mean_gmm", "max_gmm"):
        rows = run_twfr(root, ["valve"], DEV_SECTIONS, cfg=replace(SETTINGS[name], seed=0), workers=1, progress=False)
        for r in rows.itertuples():
            got = pair["gmm"][name]["sections"][f"{r.section:02d}"]
            assert math.isclose(got["auc"], 100 * r.auc) and math.isclose(got["pauc"], 100 * r.pauc)
    assert 0.0 <= pair["separability"] <= 1.0


def test_check_command_writes_the_report_and_bad_input_is_one_line(sat, capsys):
    cfg, summary = sat
    report = Path(cfg.work) / "out" / "factory_calibration.json"
    argv = ["calibrate", "check", "--work", str(cfg.work), "--machine-types", "valve", "--seeds", "0",
            "--data-size", "tiny", "--ae-epochs", "1", "--generator", "1.2", "--jobs", "1", "--report", str(report)]
    assert cli.main(argv) == 0
    rep = json.loads(report.read_text())
    assert [r["machine"] for r in rep["types"]] == list(MACHINE_TYPES) and rep["n_star"] == summary["n_star"]
    assert rep["summary"]["types_missing"] == [m for m in MACHINE_TYPES if m != "valve"]
    assert rep["summary"]["targets_met"] is False and rep["generator"] == "1.2"
    assert rep["fingerprint"]["files"]["synth.py"] == cal.generator_fingerprint()["files"]["synth.py"]
    assert rep["rerun"].startswith("minasd calibrate check") and "--size" in rep["rerun"]
    assert report.with_suffix(".md").read_text().count("| valve | 54.4 |") == 1
    capsys.readouterr()
    assert cli.main(["calibrate", "search", "--work", str(cfg.work), "--generator", "1.2"]) == 1
    err = capsys.readouterr().err
    assert "moves knobs" in err and "Traceback" not in err


def test_calibrate_imports_nothing_of_the_method():
    probe = ("import sys, minasd.calibrate\n"
             f"print([m for m in {FORBIDDEN!r} if m in sys.modules])")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]"
    # nor later, inside a function: every import of the module names an allowed module
    tree = ast.parse(Path(cal.__file__).read_text(encoding="utf-8"))
    ours = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.level:
            ours |= {f".{n.module}"} if n.module else {f".{a.name}" for a in n.names}
    allowed = {".synth", ".synth_machines", ".synth_scenes", ".config", ".data", ".dcase_ae", ".io_utils", ".metrics", ".provenance", ".twfr",
                   ".studies.jobs"}
    assert ours <= allowed, ours - allowed
    assert not any(a.name.startswith("minasd") for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names)


def test_a_types_code_hash_covers_its_renderer_its_scenes_and_nothing_else(tmp_path):
    """Editing one type's banner section re-keys that type and the types that play or use it, only."""
    pkg = Path(cal.__file__).parent
    for name in cal.CODE_FILES:
        (tmp_path / name).write_text((pkg / name).read_text(encoding="utf-8"), encoding="utf-8")
    before = {m: cal.type_code_hash(m, "2.0", str(tmp_path)) for m in MACHINE_TYPES}
    assert before == {m: cal.type_code_hash(m) for m in MACHINE_TYPES}
    text = (tmp_path / "synth_machines.py").read_text(encoding="utf-8")
    shared, own = cal.machine_sections(text)
    assert set(own) == set(MACHINE_TYPES) and "MODELS_V2" in shared  # the registry is shared
    edited = tmp_path / "edited"
    edited.mkdir()
    for name in cal.CODE_FILES:
        (edited / name).write_text((tmp_path / name).read_text(encoding="utf-8"), encoding="utf-8")

    def after_editing(machine, line="_EDITED = 1"):
        body = own[machine]
        (edited / "synth_machines.py").write_text(text.replace(body, body + f"\n{line}\n"), encoding="utf-8")
        cal.type_code_hash.cache_clear()
        return {m for m in MACHINE_TYPES if cal.type_code_hash(m, "2.0", str(edited)) != before[m]}

    assert after_editing("fan", "# a comment, not code") == set()

    assert after_editing("valve") == {"valve"}  # no scene plays a valve
    assert after_editing("pump") >= {"pump", "valve", "fan", "gearbox"}  # valve's with_pump scene, line scenes
    assert after_editing("ToyCar") == {"ToyCar", "ToyTrain"}  # ToyTrain uses ToyCar's microphone filter
    assert after_editing("slider") == {"slider"}
    cal.type_code_hash.cache_clear()


@pytest.mark.parametrize("machine", MACHINE_TYPES)
def test_scene_machines_lists_every_type_a_scene_plays(machine, monkeypatch):
    from minasd import synth_machines, synth_scenes

    allowed = {machine, *cal.scene_machines(machine)}

    def refuse(name):
        def render(*args, **kwargs):
            raise AssertionError(f"{machine}'s scenes rendered a {name}, not in scene_machines")
        return render

    models = {m: (mod if m in allowed else replace(mod, render=refuse(m))) for m, mod in synth_machines.MODELS_V2.items()}
    monkeypatch.setattr(synth_machines, "MODELS_V2", models)
    monkeypatch.setattr(synth_scenes, "MODELS_V2", models)
    monkeypatch.setattr(synth_scenes, "_BANK_CACHE", type(synth_scenes._BANK_CACHE)())
    for scene in {s["scene"] for s in models[machine].sections}:
        for j in range(4):
            synth_scenes.bank_clip(0, machine, scene, j, 1600, 1.0)


def test_the_stages_run_end_to_end_on_generator_2_and_the_report_freezes(tmp_path):
    """saturation -> search -> check -> freeze on tiny generator-2.0 valve sets (AE for 1 epoch): the
    knobs the search writes are the ones the check uses, the report's fingerprint names them, and the
    frozen record lets the method's gate pass a 2.0 set."""
    from minasd import provenance

    pkg = tmp_path / "pkg"  # the generator's files as a package would hold them after the search
    pkg.mkdir()
    for name in provenance.GENERATOR_FILES:
        shutil.copy(provenance.FROZEN_FILE.parent / name, pkg / name)
    start = tmp_path / "knobs_saturation.json"
    knobs = json.loads((pkg / "synth_knobs.json").read_text())
    knobs["types"]["valve"]["sigma"] = 1.0  # the saturation's start, whatever scale the package holds now
    start.write_text(json.dumps(knobs))
    cfg = cal.CalibConfig(work=tmp_path / "work", store=tmp_path / "store", machine_types=("valve",), sizes=(4, 8),
                          jobs=1, ae_epochs=1, generator="2.0", knobs=start, knobs_out=pkg / "synth_knobs.json",
                          report=tmp_path / "report.json", data_size="tiny", workers=1)
    sat = cal.run_saturation(cfg)
    assert sat["n_star"] in (4, 8) and set(sat["curve"]) == {"valve"}
    found = cal.run_search(cfg)["valve"]
    searched = json.loads((pkg / "synth_knobs.json").read_text())
    assert searched["types"]["valve"]["sigma"] == pytest.approx(found["sigma"], rel=1e-3)
    assert searched["types"]["valve"]["duty"] == json.loads(start.read_text())["types"]["valve"]["duty"]
    report = cal.run_check(replace(cfg, knobs=pkg / "synth_knobs.json"))
    row = next(r for r in report["types"] if r["machine"] == "valve")
    assert report["n_star"] == sat["n_star"] and report["seeds"] == [0, 1, 2]
    assert report["summary"]["types_missing"] == [m for m in MACHINE_TYPES if m != "valve"]
    assert row["seeds"] == [0, 1, 2] and len(row["per_seed"]) == 3 and row["target"] == cal.TARGETS["valve"]
    assert row["knobs_before"]["sigma"] == 1.0 and row["knobs"]["sigma"] == searched["types"]["valve"]["sigma"]
    assert report["fingerprint"] == provenance.generator_fingerprint(pkg)
    assert report["fingerprint"] != provenance.generator_fingerprint(knobs_file=start)  # the searched knobs count
    entry = cal.freeze(cfg.report, pkg / "synth_frozen.json")
    assert entry["sha256"] == report["fingerprint"]["sha256"]
    root = tmp_path / "set"
    root.mkdir()
    (root / "minasd_synth.json").write_text(json.dumps({"generator_version": "2.0", "seed": 0, "size": "tiny",
                                                        "machine_types": ["valve"]}))
    provenance.require_calibrated(root, pkg / "synth_frozen.json")
