"""Tests of minasd.data: file names, index, ground truth, audio, normalisation, segments."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from minasd.config import MIN_CLIP_SECONDS, N_SEGMENTS, SAMPLE_RATE, SEGMENT_SECONDS
from minasd.data import (
    INDEX_COLUMNS,
    ClipInfo,
    NormStats,
    compute_norm_stats,
    index,
    load_audio,
    load_norm_stats,
    parse_filename,
    random_crop,
    read_ground_truth,
    save_norm_stats,
    segment_starts,
    segments,
    summarize,
)

SEG = int(SEGMENT_SECONDS * SAMPLE_RATE)


def touch(root: Path, rel: str) -> Path:
    """An empty placeholder clip: index() never reads audio."""
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.touch()
    return p


def write_wav(path: Path, wave: np.ndarray, rate: int = SAMPLE_RATE, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, rate, subtype=subtype)
    return path


# --- parse_filename -------------------------------------------------------------

@pytest.mark.parametrize("rel, expected", [
    ("dev_data/fan/train/section_02_source_train_normal_0123_strength_1_ambient.wav",
     ClipInfo("fan", 2, "source", "train", 0, "strength_1_ambient", 123, "dcase2021")),
    ("dev_data/ToyTrain/target_test/section_01_target_test_anomaly_0004_A1Spd28VMic1.wav",
     ClipInfo("ToyTrain", 1, "target", "test", 1, "A1Spd28VMic1", 4, "dcase2021")),
    ("x/gearbox/source_test/section_00_source_test_normal_0007.wav",  # attributes are optional
     ClipInfo("gearbox", 0, "source", "test", 0, "", 7, "dcase2021")),
    ("eval_data/pump/source_test/section_03_source_test_0042.wav",
     ClipInfo("pump", 3, "source", "test", None, "", 42, "dcase2021_eval")),
    ("eval_data/bandsaw/test/section_00_0199.wav",
     ClipInfo("bandsaw", 0, None, "test", None, "", 199, "dcase2022_eval")),
    ("dev_data/ToyConveyor/train/normal_id_03_00000012.wav",
     ClipInfo("ToyConveyor", 3, None, "train", 0, "", 12, "dcase2020")),
    ("eval_data/valve/test/id_05_00000001.wav",
     ClipInfo("valve", 5, None, "test", None, "", 1, "dcase2020_eval")),
    ("dev_data/bearing/test/section_00_target_test_anomaly_0021_vel_8_loc_G.wav",
     ClipInfo("bearing", 0, "target", "test", 1, "vel_8_loc_G", 21, "dcase2021")),
    ("dev/3DPrinter/train/section_00_source_train_normal_0001_noAttribute.wav",
     ClipInfo("3DPrinter", 0, "source", "train", 0, "", 1, "dcase2021")),
    ("mimii/slider/id_04/abnormal/00000031.wav", ClipInfo("slider", 4, None, None, 1, "", 31, "mimii")),
    ("d/fan/train/section_00_source_train_normal_0001_a.WAV",
     ClipInfo("fan", 0, "source", "train", 0, "a", 1, "dcase2021")),
])
def test_parse_filename_formats(rel, expected):
    assert parse_filename(rel) == expected
    assert parse_filename(Path("/abs") / rel) == expected


@pytest.mark.parametrize("rel, message", [
    ("dev_data/fan/train/clip_0001.wav", "no known DCASE pattern"),
    ("dev_data/fan/train/section_00_source_train_normal.wav", "no known DCASE pattern"),
    ("dev_data/fan/train/section_00_elsewhere_train_normal_0001.wav", "no known DCASE pattern"),
    ("dev_data/fan/validation/section_00_source_train_normal_0001.wav", "folder 'validation'"),
    ("section_00_source_train_normal_0001.wav", "expected it in a <machine>"),
    ("train/section_00_source_train_normal_0001.wav", "machine-type folder"),
    ("dev_data/fan/source_test/section_00_source_train_normal_0001.wav", "is a train clip"),
    ("dev_data/fan/target_test/section_00_source_test_normal_0001.wav", "source-domain clip"),
])
def test_parse_filename_errors_name_the_file(rel, message):
    with pytest.raises(ValueError) as err:
        parse_filename(rel)
    assert Path(rel).name in str(err.value)
    assert message in str(err.value)


def test_parse_filename_mimii_needs_id_folder():
    with pytest.raises(ValueError, match="id_XX"):
        parse_filename("mimii/fan/normal/00000000.wav")


# --- index -------------------------------------------------------------------------

DEV_CLIPS = [
    "dev_data/fan/train/section_00_source_train_normal_0000_a_1.wav",
    "dev_data/fan/train/section_01_target_train_normal_0000_a_2.wav",
    "dev_data/fan/source_test/section_00_source_test_anomaly_0000_a_1.wav",
    "dev_data/fan/target_test/section_01_target_test_normal_0001_a_2.wav",
    "dev_data/ToyCar/train/section_02_source_train_normal_0005_b.wav",
    "eval_data/fan/train/section_03_source_train_normal_0000_c.wav",
]


def test_index_columns_types_order(tmp_path):
    for rel in reversed(DEV_CLIPS):
        touch(tmp_path, rel)
    touch(tmp_path, "dev_data/fan/train/notes.txt")  # not a clip
    touch(tmp_path, ".minasd_download/tmp/fan/train/section_00_source_train_normal_0009.wav")  # hidden
    touch(tmp_path, "mimii/fan/id_00/normal/00000000.wav")  # not a DCASE subset folder
    df = index(tmp_path)
    assert tuple(df.columns) == INDEX_COLUMNS
    assert len(df) == len(DEV_CLIPS)
    assert df["path"].tolist() == sorted(df["path"])
    assert all(Path(p).is_absolute() for p in df["path"])
    assert str(df["label"].dtype) == "Int64" and df["section"].dtype == np.int64
    row = df[df["path"].str.endswith("section_00_source_test_anomaly_0000_a_1.wav")].iloc[0]
    assert (row.machine, row.section, row.domain, row.split, row.label, row.attributes, row.subset, row.dataset) == (
        "fan", 0, "source", "test", 1, "a_1", "source_test", "dev_data")
    assert set(df["dataset"]) == {"dev_data", "eval_data"}
    assert set(df["machine"]) == {"fan", "ToyCar"}
    pd.testing.assert_frame_equal(df, index(tmp_path))  # deterministic


def test_index_accepts_dataset_and_machine_folders(tmp_path):
    for rel in DEV_CLIPS:
        touch(tmp_path, rel)
    whole = index(tmp_path)
    dev = index(tmp_path / "dev_data")
    fan = index(tmp_path / "dev_data" / "fan")
    pd.testing.assert_frame_equal(dev, whole[whole.dataset == "dev_data"].reset_index(drop=True))
    pd.testing.assert_frame_equal(fan, dev[dev.machine == "fan"].reset_index(drop=True))


def test_index_2020_and_2022_layouts(tmp_path):
    touch(tmp_path, "dev_data/ToyConveyor/train/normal_id_01_00000000.wav")
    touch(tmp_path, "dev_data/ToyConveyor/test/anomaly_id_01_00000000.wav")
    touch(tmp_path, "dev_data/bearing/test/section_00_target_test_anomaly_0021_vel_8_loc_G.wav")
    df = index(tmp_path)
    assert df["subset"].tolist() == ["test", "train", "test"]
    assert df["domain"].tolist() == [None, None, "target"]
    assert df["label"].tolist() == [1, 0, 1]


def test_index_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        index(tmp_path / "nope")
    with pytest.raises(ValueError, match="no clips found under"):
        index(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotADirectoryError):
        index(tmp_path / "file.txt")
    bad = touch(tmp_path, "dev_data/fan/train/weird_name.wav")
    with pytest.raises(ValueError, match=str(bad.name)):
        index(tmp_path)
    bad.unlink()
    touch(tmp_path, "dev_data/fan/train/section_00_source_train_normal_0000.wav")
    with pytest.raises(FileNotFoundError, match="ground-truth folder"):
        index(tmp_path, ground_truth=tmp_path / "missing")


def test_summarize_counts(tmp_path):
    for rel in DEV_CLIPS:
        touch(tmp_path, rel)
    touch(tmp_path, "eval_data/fan/source_test/section_03_source_test_0000.wav")
    with pytest.warns(UserWarning, match="fan section 03"):
        clips = index(tmp_path)
    s = summarize(clips)
    assert list(s.columns) == ["dataset", "machine", "subset", "section", "normal", "anomaly", "unknown", "total"]
    assert s["total"].sum() == len(DEV_CLIPS) + 1
    row = s[(s.dataset == "eval_data") & (s.subset == "source_test")].iloc[0]
    assert (row.section, row.unknown, row.total) == (3, 1, 1)
    row = s[(s.dataset == "dev_data") & (s.subset == "source_test")].iloc[0]
    assert (row.normal, row.anomaly) == (0, 1)
    assert summarize(clips.iloc[:0]).empty


# --- ground truth ------------------------------------------------------------------

def write_gt(folder: Path, name: str, rows: dict[str, int], crlf: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    end = "\r\n" if crlf else "\n"
    path = folder / name
    path.write_text("".join(f"{k},{v}{end}" for k, v in rows.items()), newline="")
    return path


def eval_tree(root: Path, machine: str, section: int, domain: str, labels: list[int]) -> dict[str, int]:
    rows = {}
    for i, y in enumerate(labels):
        name = f"section_{section:02d}_{domain}_test_{i:04d}.wav"
        touch(root, f"eval_data/{machine}/{domain}_test/{name}")
        rows[name] = y
    return rows


def test_ground_truth_merge_2021(tmp_path):
    gt = tmp_path / "gt"
    for machine, section in [("fan", 3), ("valve", 4)]:
        for domain in ("source", "target"):
            labels = [int(i % 3 == 0) for i in range(7)]
            write_gt(gt, f"ground_truth_{machine}_section_{section:02d}_{domain}_test.csv",
                     eval_tree(tmp_path / "data", machine, section, domain, labels), crlf=domain == "target")
    write_gt(gt, "ground_truth_pump_section_03_source_test.csv", {"section_03_source_test_0000.wav": 1})  # no clips
    touch(tmp_path, "data/eval_data/fan/source_test/section_05_source_test_0000.wav")  # no CSV for section 05
    for rel in DEV_CLIPS:
        touch(tmp_path / "data", rel)
    with pytest.warns(UserWarning, match=r"fan section 05 \(1\)") as caught:
        df = index(tmp_path / "data", ground_truth=gt)
    assert "section 03" not in str(caught[0].message)  # sections with a CSV are labelled, not warned about
    ev = df[df.dataset == "eval_data"].set_index(df[df.dataset == "eval_data"]["path"].map(lambda p: Path(p).name))
    fan = ev[(ev.machine == "fan") & (ev.section == 3) & (ev.split == "test")]
    assert len(fan) == 14
    assert fan["label"].tolist() == [int(i % 3 == 0) for i in range(7)] * 2
    assert pd.isna(ev[ev.section == 5]["label"]).all()  # anonymised, no ground truth: <NA>
    assert ev[ev.split == "train"]["label"].tolist() == [0]
    # the dev labels come from the names and are untouched
    assert df[df.dataset == "dev_data"]["label"].tolist() == [0, 1, 0, 0, 0]
    # CSVs found anywhere under the root without the argument
    import shutil
    shutil.copytree(gt, tmp_path / "data" / "ground_truth")
    with pytest.warns(UserWarning, match="section 05"):
        pd.testing.assert_frame_equal(df, index(tmp_path / "data"))


def test_ground_truth_missing_row_and_extra_row(tmp_path):
    rows = eval_tree(tmp_path, "fan", 3, "source", [0, 1, 0])
    csv_path = write_gt(tmp_path / "gt", "ground_truth_fan_section_03_source_test.csv", rows)
    assert index(tmp_path, ground_truth=tmp_path / "gt")["label"].tolist() == [0, 1, 0]
    # a clip with no row
    extra = touch(tmp_path, "eval_data/fan/source_test/section_03_source_test_0003.wav")
    with pytest.raises(ValueError) as err:
        index(tmp_path, ground_truth=tmp_path / "gt")
    assert extra.name in str(err.value) and csv_path.name in str(err.value)
    extra.unlink()
    # a row with no clip
    (tmp_path / "eval_data/fan/source_test/section_03_source_test_0001.wav").unlink()
    with pytest.raises(ValueError) as err:
        index(tmp_path, ground_truth=tmp_path / "gt")
    assert "section_03_source_test_0001.wav" in str(err.value) and csv_path.name in str(err.value)


def test_ground_truth_target_domain_missing_is_an_error(tmp_path):
    """Source clips of section 03 exist, so section 03's target CSV must find its clips too."""
    rows = eval_tree(tmp_path, "fan", 3, "source", [0, 1])
    write_gt(tmp_path / "gt", "ground_truth_fan_section_03_source_test.csv", rows)
    write_gt(tmp_path / "gt", "ground_truth_fan_section_03_target_test.csv", {"section_03_target_test_0000.wav": 1})
    with pytest.raises(ValueError, match="ground_truth_fan_section_03_target_test.csv lists clip section_03_target"):
        index(tmp_path, ground_truth=tmp_path / "gt")


def test_ground_truth_2022_labels_and_domains(tmp_path):
    names = [f"section_00_{i:04d}.wav" for i in range(4)]
    for n in names:
        touch(tmp_path, f"eval_data/bandsaw/test/{n}")
    write_gt(tmp_path / "ground_truth_data", "ground_truth_bandsaw_section_00_test.csv", dict(zip(names, [0, 1, 1, 0])))
    write_gt(tmp_path / "ground_truth_domain", "ground_truth_bandsaw_section_00_test.csv",
             dict(zip(names, [1, 1, 0, 0])))
    (tmp_path / "ground_truth_attributes").mkdir()
    (tmp_path / "ground_truth_attributes" / "ground_truth_bandsaw_section_00_test.csv").write_text(
        "".join(f"{n},section_00_target_test_normal_0000_vel_12\n" for n in names))
    df = index(tmp_path)
    assert df["label"].tolist() == [0, 1, 1, 0]
    assert df["domain"].tolist() == ["target", "target", "source", "source"]


@pytest.mark.parametrize("content, message", [
    ("section_03_source_test_0000.wav,2\n", "expected '<clip>.wav,<0|1>'"),
    ("section_03_source_test_0000.wav\n", "expected '<clip>.wav,<0|1>'"),
    ("file,label\nsection_03_source_test_0000.wav,1\n", "line 1"),
    ("section_04_source_test_0000.wav,1\n", "does not start with 'section_03_source_test_'"),
    ("section_03_source_test_0000.wav,1\nsection_03_source_test_0000.wav,0\n", "listed twice"),
])
def test_read_ground_truth_errors(tmp_path, content, message):
    p = tmp_path / "ground_truth_fan_section_03_source_test.csv"
    p.write_text(content)
    with pytest.raises(ValueError) as err:
        read_ground_truth(p)
    assert p.name in str(err.value) and message in str(err.value)


def test_read_ground_truth_bad_name_and_blank_lines(tmp_path):
    p = tmp_path / "ground_truth_fan_section_03_source_test.csv"
    p.write_text("\nsection_03_source_test_0001.wav , 1 \r\n\n")
    assert read_ground_truth(p) == {"section_03_source_test_0001.wav": 1}
    q = tmp_path / "ground_truth_fan.csv"
    q.write_text("")
    with pytest.raises(ValueError, match="ground_truth_fan.csv: name must be"):
        read_ground_truth(q)


def test_read_ground_truth_binary_and_bom(tmp_path):
    p = tmp_path / "ground_truth_fan_section_03_source_test.csv"
    p.write_bytes(b"\xff\xfe\x00\x81 not text")
    with pytest.raises(ValueError, match="ground_truth_fan_section_03_source_test.csv: not UTF-8"):
        read_ground_truth(p)
    p.write_bytes("\ufeffsection_03_source_test_0002.wav,0\n".encode("utf-8"))  # a BOM is not part of the name
    assert read_ground_truth(p) == {"section_03_source_test_0002.wav": 0}


def test_conflicting_ground_truth_copies(tmp_path):
    rows = eval_tree(tmp_path, "fan", 3, "source", [0, 1])
    write_gt(tmp_path / "a", "ground_truth_fan_section_03_source_test.csv", rows)
    write_gt(tmp_path / "b", "ground_truth_fan_section_03_source_test.csv", rows)  # identical copy: fine
    assert index(tmp_path)["label"].tolist() == [0, 1]
    write_gt(tmp_path / "c", "ground_truth_fan_section_03_source_test.csv", {k: 1 - v for k, v in rows.items()})
    with pytest.raises(ValueError, match="disagree on clip section_03_source_test_0000.wav"):
        index(tmp_path)


# --- audio -------------------------------------------------------------------------

def test_load_audio_mono_float32(tmp_path):
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(SEG + 100)).clip(-1, 1)
    p = write_wav(tmp_path / "a.wav", x, subtype="PCM_16")
    y = load_audio(p)
    assert y.dtype == np.float32 and y.shape == (SEG + 100,)
    assert np.abs(y - x).max() < 1.0 / 2**15 + 1e-7


def test_load_audio_multichannel_gives_channel_0(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.5, 0.5, size=(SEG, 3))
    p = write_wav(tmp_path / "multi.wav", x, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(p), x[:, 0].astype(np.float32))


def test_load_audio_resamples_exact_ratio(tmp_path):
    rate = 44_100
    t = np.arange(int(2.5 * rate)) / rate
    p = write_wav(tmp_path / "sine.wav", 0.5 * np.sin(2 * np.pi * 1000 * t), rate=rate, subtype="FLOAT")
    y = load_audio(p)
    assert y.dtype == np.float32 and y.shape == (int(2.5 * SAMPLE_RATE),)
    ref = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(y.size) / SAMPLE_RATE)
    mid = slice(1000, -1000)  # away from the filter's edge effects
    assert np.abs(y[mid] - ref[mid]).max() < 1e-2
    # 8 kHz -> 16 kHz keeps length exact too
    p8 = write_wav(tmp_path / "low.wav", np.zeros(8000 * 3), rate=8000)
    assert load_audio(p8).shape == (48000,)


def test_load_audio_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav")
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    with pytest.raises(ValueError, match="cannot read audio file .*notes.wav"):
        load_audio(text)
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0))
    with pytest.raises(ValueError, match="empty.wav is empty"):
        load_audio(empty)
    x = np.zeros(SEG)
    x[10] = np.nan
    nan = write_wav(tmp_path / "nan.wav", x, subtype="FLOAT")
    with pytest.raises(ValueError, match="nan.wav contains NaN"):
        load_audio(nan)
    x[10] = np.inf
    inf = write_wav(tmp_path / "inf.wav", x, subtype="DOUBLE")
    with pytest.raises(ValueError, match="inf.wav contains NaN or infinite"):
        load_audio(inf)
    short = write_wav(tmp_path / "short.wav", np.zeros(int(0.4 * SAMPLE_RATE)))
    with pytest.raises(ValueError, match=r"clip .*short.wav is 0.40 s long; segments need 2.0 s"):
        load_audio(short)
    assert load_audio(short, min_seconds=None).shape == (6400,)
    assert MIN_CLIP_SECONDS == SEGMENT_SECONDS


# --- normalisation -----------------------------------------------------------------

def test_norm_stats_streaming_matches_numpy(tmp_path):
    rng = np.random.default_rng(2)
    waves = [rng.normal(0.1 * i, 0.2 + 0.05 * i, size=SEG + 500 * i).astype(np.float32) for i in range(4)]
    paths = [write_wav(tmp_path / f"c{i}.wav", w, subtype="FLOAT") for i, w in enumerate(waves)]
    stats = compute_norm_stats(paths, progress=False)
    allx = np.concatenate(waves).astype(np.float64)
    assert stats.n_clips == 4 and stats.n_samples == allx.size
    assert stats.mean == pytest.approx(allx.mean(), rel=1e-9, abs=1e-12)
    assert stats.std == pytest.approx(allx.std(), rel=1e-9)
    z = stats.apply(np.concatenate(waves))
    assert z.dtype == np.float32
    assert abs(z.mean()) < 1e-5 and z.std() == pytest.approx(1.0, abs=1e-4)
    t = stats.apply(torch.from_numpy(waves[0]))
    np.testing.assert_allclose(t.numpy(), stats.apply(waves[0]), rtol=1e-5, atol=1e-6)


def test_norm_stats_errors(tmp_path):
    with pytest.raises(ValueError, match="at least one clip"):
        compute_norm_stats([], progress=False)
    silent = write_wav(tmp_path / "silent.wav", np.zeros(SEG))
    with pytest.raises(ValueError, match="zero variance"):
        compute_norm_stats([silent], progress=False)


def test_norm_stats_save_load_roundtrip(tmp_path):
    stats = {"fan": NormStats(0.001, 0.02, 10, 1600000), "ToyCar": NormStats(-0.5, 1.5, 3, 30)}
    path = tmp_path / "sub" / "norm_stats.json"
    save_norm_stats(stats, path)
    assert load_norm_stats(path) == stats
    assert [p.name for p in path.parent.iterdir()] == ["norm_stats.json"]  # no temp files left
    with pytest.raises(ValueError, match="'bad'"):
        save_norm_stats({"bad": NormStats(0.0, 0.0, 1)}, tmp_path / "x.json")


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected"),
    (json.dumps({"kind": "other", "machines": {}}), "expected"),
    (json.dumps({"kind": "minasd.norm_stats", "machines": {"fan": {"mean": 0.0}}}), "'fan' needs mean, std, n_clips"),
    (json.dumps({"kind": "minasd.norm_stats", "machines": {"fan": {"mean": 0.0, "std": -1.0, "n_clips": 2}}}),
     "'fan' has invalid statistics"),
    (json.dumps({"kind": "minasd.norm_stats", "machines": {"fan": {"mean": "x", "std": 1.0, "n_clips": 2}}}),
     "'fan' has invalid statistics"),
    (json.dumps({"kind": "minasd.norm_stats", "machines": {"fan": {"mean": 0.0, "std": 1.0, "n_clips": 0}}}),
     "'fan' has invalid statistics"),
])
def test_load_norm_stats_errors_name_the_file(tmp_path, content, message):
    p = tmp_path / "stats.json"
    p.write_text(content)
    with pytest.raises(ValueError) as err:
        load_norm_stats(p)
    assert "stats.json" in str(err.value) and message in str(err.value)
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        load_norm_stats(tmp_path / "nothing.json")


# --- crops and segments --------------------------------------------------------------

def test_random_crop_window_and_uniform_starts():
    wave = np.arange(100, dtype=np.float32)
    rng = np.random.default_rng(0)
    starts = []
    for _ in range(2000):
        c = random_crop(wave, 30, rng)
        assert c.shape == (30,)
        np.testing.assert_array_equal(c, np.arange(c[0], c[0] + 30))
        starts.append(int(c[0]))
    assert min(starts) == 0 and max(starts) == 70  # both ends reachable
    assert len(set(starts)) == 71
    t = random_crop(torch.arange(50.0).reshape(1, 50), 50, rng)
    assert isinstance(t, torch.Tensor) and t.shape == (1, 50)
    with pytest.raises(ValueError, match="shorter than the 31-sample crop"):
        random_crop(np.zeros(30), 31, rng)


@pytest.mark.parametrize("seconds", [2.0, 2.5, 10.0, 11.0, 12.0, 20.0])
def test_segment_starts_cover_the_clip(seconds):
    n = int(seconds * SAMPLE_RATE)
    starts = segment_starts(n, SEG)
    assert starts.dtype == np.int64 and starts.shape == (N_SEGMENTS,)
    assert starts[0] == 0 and starts[-1] + SEG == n
    steps = np.diff(starts)
    assert steps.min() >= 0 and steps.max() - steps.min() <= 1  # evenly spaced
    assert steps.max() <= SEG  # no gaps: every sample lies in some segment
    covered = np.zeros(n, bool)
    for s in starts:
        covered[s:s + SEG] = True
    assert covered.all()


def test_segment_starts_errors():
    with pytest.raises(ValueError, match="6400 samples long; segments need 32000"):
        segment_starts(6400, SEG)
    with pytest.raises(ValueError, match="one segment"):
        segment_starts(SEG + 1, SEG, 1)
    assert segment_starts(SEG, SEG, 1).tolist() == [0]
    assert segment_starts(SEG, SEG).tolist() == [0] * N_SEGMENTS


def test_segments_numpy_and_torch():
    n = 10 * SAMPLE_RATE
    wave = np.arange(n, dtype=np.float32)
    seg = segments(wave)
    assert isinstance(seg, np.ndarray) and seg.shape == (N_SEGMENTS, SEG)
    starts = segment_starts(n, SEG)
    np.testing.assert_array_equal(seg[:, 0], starts)
    np.testing.assert_array_equal(seg[-1], wave[-SEG:])
    tseg = segments(torch.from_numpy(wave))
    assert isinstance(tseg, torch.Tensor) and tseg.shape == (N_SEGMENTS, SEG)
    np.testing.assert_array_equal(tseg.numpy(), seg)
    batch = segments(np.stack([wave, -wave]), seg_len=1000, n_segments=3)
    assert batch.shape == (2, 3, 1000)
    np.testing.assert_array_equal(batch[1], -batch[0])
    with pytest.raises(ValueError, match="segments need 32000 samples"):
        segments(np.zeros(100))


def test_synthetic_set_names_its_folder_by_size_seed_and_a_newer_generator(tmp_path, monkeypatch):
    from minasd import config, data, synth

    made = []

    def fake_make(root, size, seed, progress, generator):
        made.append((Path(root).name, size, seed, generator))
        return root

    monkeypatch.setattr(synth, "make_dataset", fake_make)
    assert data.synthetic_set("tiny", 3, parent=tmp_path, generator="1.2") == tmp_path / "synth_tiny_seed3"
    assert data.synthetic_set("small", 0, parent=tmp_path, generator="2.0").name == "synth_small_seed0_g2.0"
    assert data.synthetic_set("tiny", 0, root=tmp_path / "mine", parent=tmp_path).name == "mine"
    assert made[-1][3] == config.SYNTH_GENERATOR  # the default generator
    assert [m[0] for m in made] == ["synth_tiny_seed3", "synth_small_seed0_g2.0", "mine"]
    with pytest.raises(ValueError, match="parent= or root="):
        data.synthetic_set("tiny")
