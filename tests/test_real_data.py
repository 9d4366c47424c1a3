"""Real-data fixtures (../shared/data/real): file names, MIMII loading, DCASE 2021 ground truth.

The folder lives outside the repository (its audio may not be copied in); locate it with
the environment variable MINASD_REAL_DATA or beside the checkout.  Where it is absent the
tests skip on a developer's machine but fail under CI (``CI=true``): a CI run that silently
skips every real-data test would report green without having checked real file names.  That
gate is tested in ``test_real_data_gate.py``, outside this module's gate, so that it always runs.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from minasd.config import SAMPLE_RATE
from minasd.data import index, load_audio, parse_filename, read_ground_truth

REAL = Path(os.environ.get("MINASD_REAL_DATA") or Path(__file__).resolve().parents[2] / "shared/data/real")
GT_DIR = REAL / "dcase2021_eval_ground_truth"


def under_ci() -> bool:
    """True where the environment says CI (GitHub Actions, GitLab and most runners set CI=true)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_folders(*folders: Path) -> None:
    """Skip (a developer's machine) or fail (under CI) unless every folder exists."""
    for folder in folders:
        if not folder.is_dir():
            message = (f"real-data fixtures not found at {folder}: set MINASD_REAL_DATA to the "
                       "shared/data/real folder (or place it beside the checkout as ../shared/data/real)")
            if under_ci():
                pytest.fail(f"CI=true but {message}", pytrace=False)
            pytest.skip(message)


@pytest.fixture(autouse=True)
def real_data() -> Path:
    """The one gate of this module: the real-data folder and its DCASE 2021 ground truth
    (part of the same shared fixtures) must exist; see :func:`require_folders`."""
    require_folders(REAL, GT_DIR)
    return REAL


def wavs(sub: str) -> list[Path]:
    return sorted((REAL / sub).rglob("*.wav"))


def test_every_real_clip_parses():
    every = sorted(REAL.rglob("*.wav"))
    assert len(every) >= 60
    for p in every:
        info = parse_filename(p)
        assert info.machine == (p.parts[-4] if info.scheme == "mimii" else p.parts[-3])


# DCASE 2020: machine -> section id of the samples (../shared/data/README.md)
DCASE2020_IDS = {"fan": 6, "pump": 4, "slider": 0, "valve": 2, "ToyCar": 4, "ToyConveyor": 1}


def test_dcase2020_fields():
    clips = wavs("dcase2020")
    assert len(clips) == 36
    for p in clips:
        info = parse_filename(p)
        assert info.scheme == "dcase2020"
        assert info.section == DCASE2020_IDS[info.machine]
        assert (info.split, info.domain, info.attributes) == ("test", None, "")
        assert info.label == (1 if p.name.startswith("anomaly_") else 0)
        assert info.number == int(p.stem.split("_")[-1])
    assert set(parse_filename(p).machine for p in clips) == set(DCASE2020_IDS)


DCASE2023_SAMPLES = {
    "gearbox/train/section_00_source_train_normal_0073_volt_1.5_wt_0.wav":
        ("gearbox", 0, "source", "train", 0, "volt_1.5_wt_0", 73),
    "bearing/test/section_00_target_test_anomaly_0021_vel_8_loc_G.wav":
        ("bearing", 0, "target", "test", 1, "vel_8_loc_G", 21),
    "ToyCar/test/section_00_source_test_normal_0028_car_C2_spd_34V_mic_1.wav":
        ("ToyCar", 0, "source", "test", 0, "car_C2_spd_34V_mic_1", 28),
    "fan/test/section_00_source_test_anomaly_0022_m-n_W.wav": ("fan", 0, "source", "test", 1, "m-n_W", 22),
    "slider/train/section_00_source_train_normal_0853_vel_500_ac_0.30.wav":
        ("slider", 0, "source", "train", 0, "vel_500_ac_0.30", 853),
    "valve/test/section_00_target_test_normal_0044_pat_03.wav": ("valve", 0, "target", "test", 0, "pat_03", 44),
    "ToyTrain/test/section_00_target_test_anomaly_0015_car_A2_spd_6_mic_2.wav":
        ("ToyTrain", 0, "target", "test", 1, "car_A2_spd_6_mic_2", 15),
}


def test_dcase2023_fields():
    clips = wavs("dcase2023")
    assert len(clips) == 28
    for p in clips:
        info = parse_filename(p)
        assert info.scheme == "dcase2021" and info.section == 0
        assert info.split == p.parent.name
        assert info.domain == ("target" if "_target_" in p.name else "source")
        assert info.label == (1 if "_anomaly_" in p.name else 0)
        assert info.attributes and p.stem.endswith(info.attributes)
    for rel, expected in DCASE2023_SAMPLES.items():
        info = parse_filename(REAL / "dcase2023/dev_data" / rel)
        assert (info.machine, info.section, info.domain, info.split, info.label, info.attributes,
                info.number) == expected


def test_index_of_real_folders():
    df = index(REAL)  # MIMII clips are not in a DCASE subset folder; GT CSVs have no anonymised clips
    assert len(df) == 36 + 28
    assert df["label"].notna().all()
    assert set(df["subset"]) == {"train", "test"}
    assert (df.groupby("machine").size()["ToyConveyor"]) == 6


def test_mimii_eight_channels_load_to_mono():
    clips = wavs("mimii")
    assert len(clips) == 4
    for p in clips:
        info = parse_filename(p)
        assert (info.machine, info.section, info.split, info.scheme) == ("fan", 0, None, "mimii")
        assert info.label == (1 if p.parent.name == "abnormal" else 0)
        raw, rate = sf.read(p, dtype="float32", always_2d=True)
        assert raw.shape[1] == 8 and rate == SAMPLE_RATE
        y = load_audio(p)
        assert y.dtype == np.float32 and y.shape == (10 * SAMPLE_RATE,)
        np.testing.assert_array_equal(y, raw[:, 0])


def test_dcase_clips_load():
    for p in [wavs("dcase2020")[0], wavs("dcase2023")[0]]:
        y = load_audio(p)
        assert y.dtype == np.float32 and y.ndim == 1 and y.size >= 10 * SAMPLE_RATE
        assert np.isfinite(y).all() and 0 < np.abs(y).max() <= 1


# --- DCASE 2021 evaluation ground truth -------------------------------------------

# fan 05 target uses Windows line ends; gearbox sections have more than 200 clips.
GT_CASES = [("fan", 5), ("gearbox", 3), ("ToyCar", 4)]


def build_eval_tree(root: Path, cases=GT_CASES) -> dict[tuple[str, str], int]:
    """Silent 2 s clips named after the CSV rows (hard links of one file: fast)."""
    silent = root / "silent.wav"
    sf.write(silent, np.zeros(2 * SAMPLE_RATE, np.float32), SAMPLE_RATE, subtype="PCM_16")
    expected = {}
    for machine, section in cases:
        for domain in ("source", "target"):
            folder = root / "eval_data" / machine / f"{domain}_test"
            folder.mkdir(parents=True, exist_ok=True)
            rows = read_ground_truth(GT_DIR / f"ground_truth_{machine}_section_{section:02d}_{domain}_test.csv")
            for name, label in rows.items():
                try:
                    os.link(silent, folder / name)
                except OSError:
                    shutil.copyfile(silent, folder / name)
                expected[(machine, name)] = label
    silent.unlink()
    return expected


def test_real_ground_truth_merges(tmp_path):
    expected = build_eval_tree(tmp_path)
    df = index(tmp_path, ground_truth=GT_DIR)  # all 42 CSVs offered; those without clips are ignored
    assert len(df) == len(expected) == 200 + 200 + 234 + 286 + 200 + 200
    got = {(m, Path(p).name): y for m, p, y in zip(df["machine"], df["path"], df["label"])}
    assert got == expected
    assert df["label"].notna().all() and set(df["label"].unique()) == {0, 1}
    assert (df["domain"] == df["subset"].str.split("_").str[0]).all()
    assert load_audio(df["path"].iloc[0]).shape == (2 * SAMPLE_RATE,)
    # the CSVs are also found under the root itself
    shutil.copytree(GT_DIR, tmp_path / "ground_truth")
    pd.testing.assert_frame_equal(df, index(tmp_path))


def test_real_ground_truth_mismatches_are_errors(tmp_path):
    build_eval_tree(tmp_path, cases=[("fan", 5)])
    gone = tmp_path / "eval_data/fan/target_test/section_05_target_test_0123.wav"
    gone.unlink()
    with pytest.raises(ValueError) as err:
        index(tmp_path, ground_truth=GT_DIR)
    assert "ground_truth_fan_section_05_target_test.csv" in str(err.value) and gone.name in str(err.value)
    extra = tmp_path / "eval_data/fan/target_test/section_05_target_test_0200.wav"
    sf.write(gone, np.zeros(2 * SAMPLE_RATE), SAMPLE_RATE)
    sf.write(extra, np.zeros(2 * SAMPLE_RATE), SAMPLE_RATE)
    with pytest.raises(ValueError) as err:
        index(tmp_path, ground_truth=GT_DIR)
    assert extra.name in str(err.value) and "has no row" in str(err.value)
    extra.unlink()
    # no ground truth at all: anonymised clips keep <NA>
    (tmp_path / "empty").mkdir()
    with pytest.warns(UserWarning, match="no ground-truth CSV"):
        df = index(tmp_path / "eval_data", ground_truth=tmp_path / "empty")
    assert len(df) == 400 and df["label"].isna().all()


def test_every_dcase2021_ground_truth_csv_parses():
    """All 42 official CSVs (7 types x sections 03-05 x source/target), not only the merged ones."""
    from minasd.config import EVAL_SECTIONS, MACHINE_TYPES

    expected = {f"ground_truth_{m}_section_{s:02d}_{d}_test.csv"
                for m in MACHINE_TYPES for s in EVAL_SECTIONS for d in ("source", "target")}
    found = {p.name: p for p in GT_DIR.glob("ground_truth_*.csv")}
    assert set(found) == expected
    for name, p in found.items():
        rows = read_ground_truth(p)
        assert len(rows) >= 100, name
        assert set(rows.values()) == {0, 1}, name  # every file holds normal and anomalous clips



def test_real_clips_without_a_download_manifest_are_not_called_real():
    # real DCASE recordings, but nothing in the folder records that they are the released files
    from minasd.provenance import data_manifest

    root = REAL / "dcase2023"
    require_folders(root / "dev_data")
    assert data_manifest(root)["kind"] == "dcase_layout" and "provenance unknown" in data_manifest(root)["note"]
