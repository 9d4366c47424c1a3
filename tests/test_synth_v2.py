"""Tests of generator 2.0 of the synthetic factory (synth_machines, synth_scenes) and of 1.2 staying unchanged.

Tiny sizes and 3-6 s clips, CPU only.  Generator 2.0 is uncalibrated: nothing here scores a
detector on it (issue 23: the method's scores are computed only after the calibration freeze).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from minasd import synth, synth_machines, synth_scenes
from minasd.config import DEV_SECTIONS, EVAL_SECTIONS, MACHINE_TYPES, SAMPLE_RATE, SECTIONS
from minasd.data import index, parse_filename

TINY = synth.SIZES["tiny"]
RE_DEV = re.compile(r"^section_0[0-2]_source_(train_normal|test_(normal|anomaly))_\d{4}_[A-Za-z0-9_.]+\.wav$")
RE_EVAL_TRAIN = re.compile(r"^section_0[3-5]_source_train_normal_\d{4}_[A-Za-z0-9_.]+\.wav$")
RE_EVAL_TEST = re.compile(r"^section_0[3-5]_source_test_\d{4}\.wav$")
V2_TYPES = ["valve", "ToyCar"]  # one MIMII-rule type, one ToyADMOS2-rule type


@pytest.fixture(scope="module")
def tiny2(tmp_path_factory) -> Path:
    """A tiny generator-2.0 set: two types, all six sections."""
    return synth.make_dataset(tmp_path_factory.mktemp("tiny2"), "tiny", seed=0, machine_types=V2_TYPES, workers=1,
                              progress=False, generator="2.0")


def _pcm_sha(wave: np.ndarray) -> str:
    pcm = np.round(np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()
    return hashlib.sha256(pcm).hexdigest()[:16]


# Computed with generator 1.2 *before* generator 2.0 was added (PCM-16 samples of render_clip, in a fresh
# process, by the code of commit 365af97; the same values whatever the order the clips are rendered in).
V12_CHECKSUMS = [
    (("fan", 0, None, None, 0, 2.0, "train", 5), "01fe59c470c9ce8b"),
    (("valve", 1, "stuck", None, 3, 2.0, "test_anomaly", 1), "7a68f65fcb146301"),
    (("ToyTrain", 4, "flat_wheel", 0.7, 1, 2.0, "test_anomaly", 3), "046f106cb0d634bf"),
    (("gearbox", 2, None, None, 0, 2.0, "test_normal", 2), "6f2849dade378a02"),
    (("slider", 3, "rail_damage", None, 2, 2.0, "test_anomaly", 0), "b3ecd986efee92be"),
    (("pump", 5, "leak", 0.4, 0, 2.0, "demo", 0), "b4dbf0390a4db89f"),
    (("ToyCar", 0, "gear_wear", None, 7, 2.0, "test_anomaly", 4), "a06853ade3f2122d"),
]


def test_v12_clips_unchanged():
    for args, sha in V12_CHECKSUMS:
        wave, info = synth.render_clip(*args)
        assert _pcm_sha(wave) == sha, args
        assert "scene" not in info and "damage_level" not in info
    assert synth.GENERATOR_VERSION == "1.2"  # 2.0 is not the default before the calibration freeze


def test_v2_layout_names_and_labels(tiny2):
    files = sorted(tiny2.rglob("*.wav"))
    assert len(files) == len(V2_TYPES) * len(SECTIONS) * (TINY.n_train + TINY.n_test_normal + TINY.n_test_anomaly)
    for f in files:
        dataset, machine, subset, name = f.relative_to(tiny2).parts
        info = parse_filename(f)
        assert info.machine == machine in V2_TYPES
        if dataset == "dev_data":
            assert info.section in DEV_SECTIONS and RE_DEV.match(name), name
        elif subset == "train":
            assert info.section in EVAL_SECTIONS and RE_EVAL_TRAIN.match(name), name
        else:
            assert RE_EVAL_TEST.match(name), name
    attrs = {parse_filename(f).attributes for f in files if f.parts[-4] == "dev_data"}
    assert any(re.fullmatch(r"pattern_0[0-2]_(no|with)_pump", a) for a in attrs)
    assert any(re.fullmatch(r"[A-C][12]Spd(28|31|34|37|40)VMic[12]", a) for a in attrs)
    m = json.loads((tiny2 / synth.MANIFEST_NAME).read_text())
    assert m["generator_version"] == "2.0" and m["sections"] == list(SECTIONS) and m["knobs_status"] == "uncalibrated"
    assert len(m["knobs_sha256"]) == 16 and set(m["knobs"]) == set(V2_TYPES) and m["n_clipped"] == 0
    lab = synth.read_labels(tiny2)
    assert list(lab.columns) == list(synth.LABEL_COLUMNS + synth.LABEL_COLUMNS_V2)
    for (mach, sec), part in lab.groupby(["machine", "section"]):
        an = part[part.label == 1]
        assert set(an.damage_level) == {"low", "mid", "high"} and set(an.severity_class) == {"subtle", "gross"}
        assert ((an.damage_level == "high") == (an.severity_class == "gross")).all()
        kinds = {k.name for k in synth.anomaly_kinds(mach, generator="2.0")}
        assert set(an.anomaly_kind) <= kinds and (part[part.label == 0].damage_level == "none").all()
        assert set(part.scene) == {synth_machines.MODELS_V2[mach].sections[sec]["scene"]}
    assert len(index(tiny2)) == len(files)


def test_v2_severity_replay_and_file_bytes(tiny2):
    """The labels' severity is the clip's own draw, and a written file is render_clip's wave."""
    lab = synth.read_labels(tiny2)
    rows = lab[(lab.label == 1) & lab.relpath.str.startswith("dev_data/valve")].head(3)
    for r in rows.itertuples():
        idx = int(re.search(r"_anomaly_(\d{4})_", r.relpath).group(1))
        wave, info = synth.render_clip("valve", r.section, r.anomaly_kind, None, seed=0, seconds=TINY.seconds,
                                       split="test_anomaly", index=idx, generator="2.0")
        lo, hi = synth_machines.LEVEL_RANGES[r.damage_level]
        assert info["severity"] == pytest.approx(r.severity, abs=1e-4) and lo <= r.severity <= hi
        assert info["damage_level"] == r.damage_level
        x, _ = sf.read(str(tiny2 / r.relpath), dtype="float32")
        assert np.abs(x - wave).max() <= 1.0 / 32767


def test_v2_determinism_and_same_clip_whatever_the_size():
    a = synth.render_clip("pump", 1, "contamination", None, seed=2, seconds=3.0, split="test_anomaly", index=4,
                          generator="2.0")
    b = synth.render_clip("pump", 1, "contamination", None, seed=2, seconds=3.0, split="test_anomaly", index=4,
                          generator="2.0")
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    knobs = synth_machines.load_knobs()
    small, _, _ = synth._plan(TINY, 0, ["fan"], (0,), "2.0", knobs)
    sweep, _, _ = synth._plan(synth.SIZES["sweep"], 0, ["fan"], (0,), "2.0", knobs)
    assert synth.SIZES["sweep"] == synth.SizeSpec(500, 100, 100, 10.0)
    key = lambda j: (j.relpath, j.split, j.index, j.anomaly)  # noqa: E731
    assert {key(j) for j in small} <= {key(j) for j in sweep}


def test_sections_subset_and_identity(tmp_path):
    root = synth.make_dataset(tmp_path / "dev", "tiny", seed=0, machine_types=["gearbox"], workers=1, progress=False,
                              generator="2.0", sections=(0, 1, 2))
    assert not (root / "eval_data").exists() and not (root / synth.GROUND_TRUTH_DIR).exists()
    secs = {parse_filename(f).section for f in root.rglob("*.wav")}
    m = json.loads((root / synth.MANIFEST_NAME).read_text())
    assert secs == {0, 1, 2} and m["sections"] == [0, 1, 2] and set(m["counts"]["gearbox"]) == {"00", "01", "02"}
    with pytest.raises(ValueError, match="knobs_sha256"):  # other knobs: another set
        synth.make_dataset(root, "tiny", seed=0, machine_types=["gearbox"], workers=1, progress=False,
                           generator="2.0", sections=(0, 1, 2), knobs={"gearbox": {"sigma": 2.0}})
    with pytest.raises(ValueError, match="sections"):
        synth.make_dataset(root, "tiny", seed=0, machine_types=["gearbox"], workers=1, progress=False,
                           generator="2.0", sections=(0, 1))
    with pytest.raises(ValueError, match="generator_version"):
        synth.make_dataset(root, "tiny", seed=0, machine_types=["gearbox"], workers=1, progress=False, sections=(0, 1, 2))
    old = synth.make_dataset(tmp_path / "v12", "tiny", seed=0, machine_types=["gearbox"], workers=1, progress=False,
                             sections=(0,))
    with pytest.raises(ValueError, match="generator_version"):
        synth.make_dataset(old, "tiny", seed=0, machine_types=["gearbox"], workers=1, progress=False, generator="2.0",
                           sections=(0,))
    assert list(synth.read_labels(old).columns) == list(synth.LABEL_COLUMNS)  # 1.2 keeps its seven columns
    marker = json.loads((old / synth.MANIFEST_NAME).read_text())
    del marker["sections"]  # a set written before `sections` existed holds all six
    (old / synth.MANIFEST_NAME).write_text(json.dumps(marker))
    with pytest.raises(ValueError, match="sections: \\[0, 1, 2, 3, 4, 5\\] there"):
        synth.make_dataset(old, "tiny", seed=0, machine_types=["gearbox"], workers=1, progress=False, sections=(0,))
    with pytest.raises(ValueError, match="knobs belong to generator 2.0"):
        synth.make_dataset(tmp_path / "x", "tiny", machine_types=["fan"], knobs={"fan": {"sigma": 2.0}})
    with pytest.raises(ValueError, match="no knob"):
        synth_machines.load_knobs({"fan": {"gain": 1.0}})


def test_knob_override_moves_faults_not_normals():
    kw = dict(seed=0, seconds=3.0, split="test_anomaly", index=2, generator="2.0")
    unit = {"fan": {"sigma": 1.0}}  # explicit: the package's calibrated scale is whatever the calibration chose
    n1 = synth.render_clip("fan", 0, knobs=unit, **kw)[0]
    n2 = synth.render_clip("fan", 0, knobs={"fan": {"sigma": 2.0}}, **kw)[0]
    a1, i1 = synth.render_clip("fan", 0, "clogging", 0.5, knobs=unit, **kw)
    a2, i2 = synth.render_clip("fan", 0, "clogging", 0.5, knobs={"fan": {"sigma": 2.0}}, **kw)
    assert np.array_equal(n1, n2) and not np.array_equal(a1, a2)
    assert (i1["effective"], i2["effective"]) == (0.5, 1.0)
    raw = json.loads(synth_machines.KNOBS_FILE.read_text(encoding="utf-8"))  # the file's own shape works too
    raw["types"]["fan"]["sigma"] = 2.0
    assert synth_machines.load_knobs(raw) == synth_machines.load_knobs({"fan": {"sigma": 2.0}})


def test_catalogue_v2_sources():
    for m, faults in synth.anomaly_kinds(generator="2.0").items():
        assert m in MACHINE_TYPES and len(faults) >= 3
        for f in faults:
            assert f.source in synth_machines.SOURCES and f.character in ("stationary", "event")
            assert f.documented == (f.source not in ("2ND", "none")), f
    assert [f.documented for f in synth.anomaly_kinds("fan", generator="2.0")] == [True, False, False, False]
    with pytest.raises(ValueError, match="unknown anomaly kind"):
        synth.render_clip("fan", 0, "imbalance", generator="2.0")
    with pytest.raises(ValueError, match="generator"):
        synth.render_clip("fan", 0, generator="3.0")
    args = synth.add_synth_arguments(argparse.ArgumentParser()).parse_args(
        ["--out", "x", "--generator", "2.0", "--sections", "0", "1", "2"])
    assert args.generator == "2.0" and args.sections == [0, 1, 2]


def _band(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    return float(spec[(f >= lo) & (f <= hi)].sum())


def test_unbalance_raises_the_rotation_line():
    kw = dict(seed=0, seconds=4.0, split="test_anomaly", index=0, generator="2.0")
    normal, info = synth.render_clip("fan", 0, **kw)
    unbal, _ = synth.render_clip("fan", 0, "unbalance", 1.0, **kw)
    speed = {"1": 0.96, "2": 1.0, "3": 1.04}[info["attributes"].split("_")[1]]
    f_rot = synth_machines.MODELS_V2["fan"].sections[0]["f_rot"] * speed
    assert _band(unbal, 0.9 * f_rot, 1.1 * f_rot) > 8 * _band(normal, 0.9 * f_rot, 1.1 * f_rot)


def test_rail_damage_knocks_at_a_fixed_stroke_phase():
    kw = dict(seed=1, seconds=6.0, split="test_anomaly", index=0, generator="2.0")
    trace: dict = {}
    normal, _ = synth.render_clip("slider", 0, **kw)
    damaged, _ = synth.render_clip("slider", 0, "rail_damage", 1.0, trace=trace, **kw)
    diff = np.abs(damaged - normal)
    starts, half = trace["starts"], trace["period"] / 2
    delays = {0: [], 1: []}
    for k, s0 in enumerate(starts):
        i0, i1 = int(s0 * SAMPLE_RATE), int((s0 + half) * SAMPLE_RATE)
        if i0 >= 0 and i1 <= len(diff):
            w = diff[i0:i1]
            onset = int(np.argmax(w > 0.2 * w.max()))  # the knock's first loud sample
            delays[k % 2].append((i0 + onset) / SAMPLE_RATE - s0)
    assert len(delays[0]) >= 2 and len(delays[1]) >= 2
    for d in delays.values():  # the same phase of every stroke in one direction (within 3 ms)
        assert np.ptp(d) < 0.003, delays
    assert abs(np.mean(delays[0]) - np.mean(delays[1])) > 0.01  # the other direction: the mirrored phase


@pytest.mark.parametrize("kind", ["contamination_seat", "contamination_bounce", "contamination_damping"])
def test_valve_contamination_changes_only_frames_near_transients(kind):
    kw = dict(seed=0, seconds=5.0, split="test_anomaly", index=1, generator="2.0",
              knobs={"valve": {"sigma": 1.0}})  # full-scale faults: the calibrated scale makes some rare
    trace: dict = {}
    normal, _ = synth.render_clip("valve", 0, trace=trace, **kw)
    faulty, _ = synth.render_clip("valve", 0, kind, 1.0, **kw)
    frame = 160  # 10 ms
    changed = np.abs(faulty - normal)[: len(normal) // frame * frame].reshape(-1, frame).max(axis=1) > 1e-6
    assert changed.any()
    # seat and bounce act after a close; damping rings every transient (opens too)
    events = trace["close"] if kind != "contamination_damping" else np.concatenate([trace["open"], trace["close"]])
    t = np.arange(changed.shape[0]) * frame / SAMPLE_RATE
    # a frame is near when it overlaps [event - 10 ms, event + 300 ms] (10 ms: the flow gate's smoothing)
    near = ((t[:, None] + frame / SAMPLE_RATE > events[None, :] - 0.01) & (t[:, None] < events[None, :] + 0.3)).any(axis=1)
    assert not (changed & ~near).any()


@pytest.mark.parametrize("machine,kind", [("fan", "clogging"), ("ToyCar", "gear_melted")])
def test_mixing_keeps_an_anomalous_clips_level_ratio(machine, kind):
    """No per-clip gain: a louder faulted machine stays louder by the same ratio after mixing."""
    kw = dict(seed=0, seconds=3.0, split="test_anomaly", index=5, generator="2.0")
    unit = {machine: {"sigma": 1.0}}  # full-scale faults, whatever scale the calibration chose
    knobs_t = synth_machines.load_knobs(unit)[machine]
    n = 3 * SAMPLE_RATE
    x_n = synth_machines.machine_signal(machine, 0, None, None, 5, synth.clip_rng(0, machine, 0, "test_anomaly", 5),
                                        n, knobs_t)[0]
    x_a = synth_machines.machine_signal(machine, 0, kind, 1.0, 5, synth.clip_rng(0, machine, 0, "test_anomaly", 5),
                                        n, knobs_t)[0]
    quiet = {machine: {"snr": 60, "sigma": 1.0}}  # scene 60 dB down: the mix is the machine part times the type's gain
    w_n = synth.render_clip(machine, 0, knobs=quiet, **kw)[0]
    w_a = synth.render_clip(machine, 0, kind, 1.0, knobs=quiet, **kw)[0]
    ratio = synth._rms(x_a) / synth._rms(x_n)
    assert ratio > 1.1 and synth._rms(w_a) / synth._rms(w_n) == pytest.approx(ratio, rel=0.01)
    if synth_machines.MODELS_V2[machine].rule == "mimii":  # at the set's SNR: the noise cancels exactly
        d = synth.render_clip(machine, 0, kind, 1.0, knobs=unit, **kw)[0] - synth.render_clip(machine, 0, knobs=unit, **kw)[0]
        g = synth_scenes.output_gain(machine, knobs_t)
        assert np.allclose(d, g * (x_a - x_n), atol=1e-5)
