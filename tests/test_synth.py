"""Tests of the synthetic factory (minasd.synth) on the tiny size, CPU only."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from minasd import synth
from minasd.config import DEV_SECTIONS, EVAL_SECTIONS, MACHINE_TYPES, SAMPLE_RATE, SECTIONS
from minasd.data import index, parse_filename

TINY = synth.SIZES["tiny"]
RE_DEV = re.compile(r"^section_0[0-2]_source_(train_normal|test_(normal|anomaly))_\d{4}_[A-Za-z0-9_.]+\.wav$")
RE_EVAL_TRAIN = re.compile(r"^section_0[3-5]_source_train_normal_\d{4}_[A-Za-z0-9_.]+\.wav$")
RE_EVAL_TEST = re.compile(r"^section_0[3-5]_source_test_\d{4}\.wav$")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """The default tiny set: all 7 types, all 6 sections."""
    return synth.make_dataset(tmp_path_factory.mktemp("tiny"), "tiny", seed=0, progress=False)


@pytest.fixture(scope="module")
def tiny_index(tiny) -> pd.DataFrame:
    return index(tiny)


def _wavs(root: Path) -> list[Path]:
    return sorted(root.rglob("*.wav"))


def test_layout_and_exact_names(tiny, tiny_index):
    files = _wavs(tiny)
    n_per_section = TINY.n_train + TINY.n_test_normal + TINY.n_test_anomaly
    assert len(files) == len(MACHINE_TYPES) * len(SECTIONS) * n_per_section
    for f in files:
        rel = f.relative_to(tiny)
        dataset, machine, subset, name = rel.parts
        assert machine in MACHINE_TYPES
        info = parse_filename(f)  # raises on any unknown pattern
        assert info.machine == machine and info.domain in ("source", None)
        if dataset == "dev_data":
            assert info.section in DEV_SECTIONS and RE_DEV.match(name), rel
            assert (subset == "train") == (info.split == "train")
            assert info.attributes  # dev names carry attributes
        else:
            assert dataset == "eval_data" and info.section in EVAL_SECTIONS
            if subset == "train":
                assert RE_EVAL_TRAIN.match(name), rel
            else:
                assert subset == "source_test" and RE_EVAL_TEST.match(name), rel
    counts = tiny_index.groupby(["machine", "section", "subset"]).size()
    for m in MACHINE_TYPES:
        for s in SECTIONS:
            assert counts[(m, s, "train")] == TINY.n_train
            assert counts[(m, s, "source_test")] == TINY.n_test_normal + TINY.n_test_anomaly
    # eval test numbers are 0000..n-1 per section
    ev = tiny_index[(tiny_index.dataset == "eval_data") & (tiny_index.subset == "source_test")]
    for (m, s), part in ev.groupby(["machine", "section"]):
        nums = sorted(int(Path(p).stem[-4:]) for p in part.path)
        assert nums == list(range(TINY.n_test_normal + TINY.n_test_anomaly))


def test_audio_format(tiny):
    for f in _wavs(tiny)[::97]:
        info = sf.info(str(f))
        assert info.samplerate == SAMPLE_RATE and info.channels == 1 and info.subtype == "PCM_16"
        assert info.frames == int(TINY.seconds * SAMPLE_RATE)
        x, _ = sf.read(str(f))
        assert 0 < np.abs(x).max() < 1.0 and np.std(x) > 1e-3


def test_manifest(tiny):
    m = json.loads((tiny / synth.MANIFEST_NAME).read_text())
    assert m["synthetic"] is True and m["note"] == synth.SYNTH_NOTE
    assert m["generator_version"] == synth.GENERATOR_VERSION and m["seed"] == 0 and m["size"] == "tiny"
    assert m["machine_types"] == list(MACHINE_TYPES)
    assert m["counts"]["valve"]["04"] == {"train": 8, "source_test_normal": 3, "source_test_anomaly": 3}
    assert m["n_clips"] == len(_wavs(tiny))
    assert not (tiny / synth.PARTIAL_NAME).exists()


def test_both_anomaly_classes_in_every_test_section(tiny):
    lab = synth.read_labels(tiny)
    assert len(lab) == len(MACHINE_TYPES) * len(SECTIONS) * (TINY.n_test_normal + TINY.n_test_anomaly)
    for (m, s), part in lab.groupby(["machine", "section"]):
        an = part[part.label == 1]
        assert set(an.severity_class) == {"subtle", "gross"}, (m, s)
        kinds = {k.name: k.severity for k in synth.anomaly_kinds(m)}
        assert all(kinds[k] == c for k, c in zip(an.anomaly_kind, an.severity_class))
        assert ((an.severity > 0) & (an.severity <= 1)).all()
        assert (part[part.label == 0].anomaly_kind == "normal").all()


def test_labels_merge_and_ground_truth_format(tiny, tiny_index):
    lab = synth.read_labels(tiny).set_index("relpath")
    test = tiny_index[tiny_index.split == "test"]
    assert test.label.notna().all()
    for row in test.itertuples():
        rel = Path(row.path).relative_to(tiny).as_posix()
        assert int(row.label) == int(lab.loc[rel, "label"]), rel
    patterns = []
    for m in MACHINE_TYPES:
        for s in EVAL_SECTIONS:
            f = tiny / synth.GROUND_TRUTH_DIR / f"ground_truth_{m}_section_{s:02d}_source_test.csv"
            rows = list(csv.reader(f.read_text().splitlines()))
            assert [r[0] for r in rows] == [f"section_{s:02d}_source_test_{i:04d}.wav" for i in range(len(rows))]
            assert {r[1] for r in rows} <= {"0", "1"}
            patterns.append("".join(r[1] for r in rows))
    # the anonymised order is shuffled: it does not always put normals (or anomalies) first
    assert len(set(patterns)) > 3


def test_determinism_and_seed(tiny, tmp_path):
    same = synth.make_dataset(tmp_path / "same", "tiny", seed=0, machine_types=["valve", "ToyCar"], workers=1,
                              progress=False)
    other = synth.make_dataset(tmp_path / "other", "tiny", seed=1, machine_types=["valve"], workers=1, progress=False)
    rels = [p.relative_to(same) for p in _wavs(same / "dev_data" / "valve")[:4]]
    rels += [p.relative_to(same) for p in _wavs(same / "eval_data" / "ToyCar")[-3:]]
    for rel in rels:
        assert (same / rel).read_bytes() == (tiny / rel).read_bytes(), rel  # 2 workers vs 1, 7 types vs 2
    a = sf.read(str(_wavs(same / "eval_data" / "valve" / "train")[0]))[0]
    b = sf.read(str(_wavs(other / "eval_data" / "valve" / "train")[0]))[0]
    assert a.shape == b.shape and not np.array_equal(a, b)
    w1, i1 = synth.render_clip("fan", 2, "bearing_tone", 0.5, seed=3, seconds=1.0)
    w2, i2 = synth.render_clip("fan", 2, "bearing_tone", 0.5, seed=3, seconds=1.0)
    assert np.array_equal(w1, w2) and i1 == i2


def test_resume_rewrites_only_missing(tmp_path):
    root = synth.make_dataset(tmp_path / "r", "tiny", seed=0, machine_types=["slider"], workers=1, progress=False)
    files = _wavs(root)
    victim = files[5]
    data = victim.read_bytes()
    victim.unlink()
    before = {f: f.stat().st_mtime_ns for f in files if f != victim}
    synth.make_dataset(root, "tiny", seed=0, machine_types=["slider"], workers=1, progress=False)
    assert victim.read_bytes() == data
    assert {f: f.stat().st_mtime_ns for f in files if f != victim} == before
    assert json.loads((root / synth.MANIFEST_NAME).read_text())["last_run"]["written"] == 1


def test_refuses_mismatched_rerun(tmp_path):
    root = synth.make_dataset(tmp_path / "r", "tiny", seed=0, machine_types=["valve"], workers=1, progress=False)
    with pytest.raises(ValueError, match="seed"):
        synth.make_dataset(root, "tiny", seed=1, machine_types=["valve"], workers=1, progress=False)
    with pytest.raises(ValueError, match="size"):
        synth.make_dataset(root, "small", seed=0, machine_types=["valve"], workers=1, progress=False)
    with pytest.raises(ValueError, match="machine_types"):
        synth.make_dataset(root, "tiny", seed=0, machine_types=["fan"], workers=1, progress=False)
    # an interrupted run (marker but no manifest) refuses too
    (root / synth.MANIFEST_NAME).unlink()
    (root / synth.PARTIAL_NAME).write_text(json.dumps({"generator_version": "0.0", "seed": 0, "size": "tiny",
                                                        "machine_types": ["valve"]}))
    with pytest.raises(ValueError, match="generator_version"):
        synth.make_dataset(root, "tiny", seed=0, machine_types=["valve"], workers=1, progress=False)
    foreign = tmp_path / "real"
    (foreign / "dev_data" / "fan" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="not a minasd synthetic"):
        synth.make_dataset(foreign, "tiny", machine_types=["fan"], workers=1, progress=False)
    with pytest.raises(ValueError, match="size"):
        synth.make_dataset(tmp_path / "x", "huge")


def test_catalogue_and_render_errors():
    desc = synth.describe_machines()
    assert list(desc) == list(MACHINE_TYPES) and all(len(d) > 20 for d in desc.values())
    for m, kinds in synth.anomaly_kinds().items():
        assert {k.severity for k in kinds} == {"subtle", "gross"}, m
        assert len({k.name for k in kinds}) == len(kinds)
    with pytest.raises(ValueError, match="unknown anomaly kind"):
        synth.render_clip("fan", 0, "scraping")
    with pytest.raises(ValueError, match="section"):
        synth.render_clip("fan", 7)


def _peak_hz(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    f = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    band = (f >= lo) & (f <= hi)
    return float(f[band][np.argmax(spec[band])])


def test_fan_blade_pass_tone_and_speed_shift():
    p = synth.section_params("fan", 2)
    strength = {"strength_1_ambient": 0.96, "strength_2_ambient": 1.0, "strength_3_ambient": 1.04}
    w, info = synth.render_clip("fan", 2, seed=0, seconds=4.0)
    bpf = p["f_rot"] * p["blades"] * strength[info["attributes"]]
    assert abs(_peak_hz(w, 0.7 * bpf, 1.3 * bpf) / bpf - 1) < 0.04  # jitter and drift are ~1 %
    # the same clip with a strong speed shift moves the tone by 4.5 % (direction is random)
    w2, _ = synth.render_clip("fan", 2, "speed_shift", 1.0, seed=0, seconds=4.0)
    assert abs(abs(_peak_hz(w2, 0.7 * bpf, 1.3 * bpf) / _peak_hz(w, 0.7 * bpf, 1.3 * bpf) - 1) - 0.045) < 0.015


def test_gross_anomaly_adds_energy():
    """A stuck valve hisses all the time: the quiet gaps between strokes fill up."""
    normal, _ = synth.render_clip("valve", 0, seed=0, seconds=3.0)
    stuck, _ = synth.render_clip("valve", 0, "stuck", 1.0, seed=0, seconds=3.0)
    frames = lambda x: np.sqrt(np.mean(x[: len(x) // 400 * 400].reshape(-1, 400) ** 2, axis=1))
    assert np.percentile(frames(stuck), 20) > 2 * np.percentile(frames(normal), 20)


def test_find_manifest_labels_subfolders_interrupted_and_real(tiny, tmp_path):
    from minasd.provenance import data_label, data_manifest

    for where in (tiny, tiny / "dev_data", tiny / "dev_data" / "fan"):
        m = synth.find_manifest(where)
        assert m["finished"] and m["seed"] == 0 and m["size"] == "tiny", where
        assert data_manifest(where)["synthetic"] and data_label(where).startswith("SYNTHETIC")
    layout = tmp_path / "other" / "dev_data"
    layout.mkdir(parents=True)
    assert synth.find_manifest(layout) is None and "provenance unknown" in data_label(layout)
    assert data_manifest(layout)["kind"] == "dcase_layout"
    # an interrupted set is still synthetic, and says it is incomplete
    part = tmp_path / "part"
    (part / "dev_data").mkdir(parents=True)
    (part / synth.PARTIAL_NAME).write_text(json.dumps({"generator_version": synth.GENERATOR_VERSION, "seed": 4,
                                                       "size": "tiny", "machine_types": ["fan"]}))
    assert synth.find_manifest(part / "dev_data")["finished"] is False
    assert "INCOMPLETE" in data_label(part) and "incomplete" in data_manifest(part)["note"]
    (part / synth.PARTIAL_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=synth.PARTIAL_NAME):
        synth.find_manifest(part)
    (part / synth.MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=f"manifest .*{synth.MANIFEST_NAME}"):
        synth.read_manifest(part)
    with pytest.raises(ValueError, match=f"manifest .*{synth.MANIFEST_NAME}"):
        synth.find_manifest(part / "dev_data")
