"""minasd.prepare on a tiny tree of recordings built here: odd lengths, stereo, 44.1 kHz, a
recording shorter than a clip, name clashes, an empty class folder; the split by recording;
the output read by minasd.data.index and protocol_clips; reruns."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from minasd.config import SAMPLE_RATE
from minasd.data import index, parse_filename, protocol_clips
from minasd.provenance import PREPARE_MANIFEST_NAME, data_kind_label, data_manifest
from minasd.prepare import (CLIPS_NAME, MANIFEST_NAME, PARTIAL_NAME, PrepareConfig, Recording, add_prepare_arguments,
                            assign_sections, output_samples, prepare, run_prepare, section_value)

CLIP_S = 2.0  # short clips keep the tree tiny; the default is 10 s


def _wave(seconds: float, rate: int, channels: int = 1, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return np.stack([x * (c + 1) / channels for c in range(channels)], axis=1).astype(np.float32)


def _write(path, seconds, rate=SAMPLE_RATE, channels=1, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, _wave(seconds, rate, channels, **kw), rate)


def _tree(root):
    """normal/<mission>/<n>/ch1.wav and broken/<config>/<mission>/<n>/ch1.wav, as the UAV set is laid out."""
    for m, mission in enumerate(("loop", "square")):
        for i in range(4):
            rate = 44_100 if i == 0 else SAMPLE_RATE  # a 44.1 kHz recording in each mission
            channels = 2 if i == 1 else 1  # and a stereo one
            _write(root / "normal" / mission / str(i) / "ch1.wav", 4.37 + i, rate, channels, seed=10 * m + i)
        for cfg in ("01", "10"):
            _write(root / "broken" / cfg / mission / "1" / "ch1.wav", 5.1, freq=600.0, seed=7)
    _write(root / "normal" / "loop" / "9" / "ch1.wav", 1.5)  # shorter than one clip
    (root / "normal" / "README.txt").write_text("not audio: ignored")
    return root


def _cfg(tmp_path, **kw) -> PrepareConfig:
    base = dict(input=str(tmp_path / "rec"), out=str(tmp_path / "out"), machine_type="mine", normal=("normal",),
                anomaly=("broken",), section_level=-2, clip_seconds=CLIP_S)
    return PrepareConfig(**{**base, **kw})


def _prepare_tree(base):
    _tree(base / "rec")
    cfg = _cfg(base)
    with pytest.warns(UserWarning, match="shorter than one 2 s clip skipped.*normal/loop/9/ch1.wav"):
        res = prepare(cfg, progress=False)
    return cfg, res


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One prepared tree for the tests that only read it."""
    return _prepare_tree(tmp_path_factory.mktemp("prepare_shared"))


@pytest.fixture
def prepared(tmp_path):
    """A prepared tree of the test's own, for the tests that change it."""
    return _prepare_tree(tmp_path)


def test_output_is_a_dcase_root_for_index_and_protocol(shared):
    cfg, res = shared
    m = res.manifest
    assert res.status == "written" and m["sections"] == {"00": {"value": "loop", "part": "dev"},
                                                         "03": {"value": "square", "part": "eval"}}
    df = index(cfg.out)
    mine = df[df["machine"] == "mine"]
    assert set(mine["section"]) == {0, 3} and mine["label"].notna().all()  # reported labels from ground truth
    assert set(mine.loc[mine["section"] == 0, "dataset"]) == {"dev_data"}
    assert set(mine.loc[mine["section"] == 3, "dataset"]) == {"eval_data"}
    for split in ("train", "test"):
        clips = protocol_clips(df, split, machines=["mine"])
        for sec, c in m["counts"].items():
            got = clips[clips["section"] == int(sec)]
            if split == "train":
                assert len(got) == c["train_normal_clips"] and (got["label"] == 0).all()
            else:
                assert (got["label"] == 0).sum() == c["test_normal_clips"]
                assert (got["label"] == 1).sum() == c["test_anomaly_clips"] > 0
    # reported test clips are anonymised: their names say nothing of the label
    rep = mine[(mine["section"] == 3) & (mine["split"] == "test")]
    assert all(parse_filename(p).scheme == "dcase2021_eval" for p in rep["path"])
    # every clip: 16-bit PCM, mono, 16 kHz, exactly one clip long
    for p in mine["path"]:
        info = sf.info(p)
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (SAMPLE_RATE, 1, 32_000, "PCM_16")
    assert len(mine) == sum(len(r["clips"]) for r in m["recordings"]) == len(pd.read_csv(os.path.join(cfg.out,
                                                                                                   CLIPS_NAME)))


def test_clips_per_recording_odd_lengths_and_rates(shared):
    cfg, res = shared
    recs = {r["source"]: r for r in res.manifest["recordings"]}
    # 4.37 s at 44.1 kHz: 69,920 samples at 16 kHz -> 2 clips, the 0.37 s tail dropped
    r = recs["normal/loop/0/ch1.wav"]
    assert (r["sample_rate"], r["channels"]) == (44_100, 1)
    assert output_samples(round(4.37 * 44_100), 44_100) // 32_000 == len(r["clips"]) == 2
    assert [len(recs[f"normal/loop/{i}/ch1.wav"]["clips"]) for i in (1, 2, 3)] == [2, 3, 3]  # 5.37, 6.37, 7.37 s
    assert res.manifest["skipped"] == [{"source": "normal/loop/9/ch1.wav", "class": "normal", "seconds": 1.5,
                                        "reason": "shorter than one 2 s clip"}]
    # the 44.1 kHz sine keeps its 440 Hz after resampling
    clip, rate = sf.read(os.path.join(cfg.out, r["clips"][0]))
    spectrum = np.abs(np.fft.rfft(clip))
    assert abs(np.argmax(spectrum) * rate / clip.size - 440.0) <= 1.0


def test_stereo_channels_are_averaged_or_picked(tmp_path, shared):
    cfg, res = shared
    r = next(r for r in res.manifest["recordings"] if r["source"] == "normal/loop/1/ch1.wav")
    assert r["channels"] == 2
    stereo, _ = sf.read(os.path.join(cfg.input, r["source"]), dtype="float32")
    clip, _ = sf.read(os.path.join(cfg.out, r["clips"][0]), dtype="float32")
    np.testing.assert_allclose(clip, stereo[:32_000].mean(axis=1), atol=1 / 16_000)
    with pytest.warns(UserWarning, match="skipped"):  # mono files are used as they are
        picked = prepare(dataclasses.replace(cfg, out=str(tmp_path / "out_ch1"), channel="1"), progress=False)
    r1 = next(r for r in picked.manifest["recordings"] if r["source"] == "normal/loop/1/ch1.wav")
    clip1, _ = sf.read(os.path.join(picked.root, r1["clips"][0]), dtype="float32")
    np.testing.assert_allclose(clip1, stereo[:32_000, 1], atol=1 / 16_000)


def test_split_is_by_recording_and_reported_anomalies_stay_reported(shared):
    cfg, res = shared
    clips = pd.read_csv(os.path.join(cfg.out, CLIPS_NAME))
    per_rec = clips.groupby("source").agg(splits=("split", "nunique"), sections=("section", "nunique"))
    assert (per_rec["splits"] == 1).all() and (per_rec["sections"] == 1).all()
    assert (clips.loc[clips["label"] == 1, "split"] == "test").all()
    anomalies = clips[clips["label"] == 1]
    assert set(anomalies["anomaly_kind"]) == {"broken"}
    dev_rec = set(clips.loc[clips["part"] == "dev", "source"])
    rep_rec = set(clips.loc[clips["part"] == "eval", "source"])
    assert not dev_rec & rep_rec
    # the reported part's anomalies are only under eval_data/ (names anonymised)
    assert all(p.startswith("eval_data/mine/source_test/") for p in anomalies.loc[anomalies["part"] == "eval", "relpath"])
    # each section has normal recordings on both sides of the split
    for sec, c in res.manifest["counts"].items():
        assert c["train_normal_recordings"] >= 1 and c["test_normal_recordings"] >= 1


def test_by_recording_parts_divide_each_value(tmp_path):
    _tree(tmp_path / "rec")
    with pytest.warns(UserWarning, match="skipped"):
        res = prepare(_cfg(tmp_path, section_level=0), progress=False)
    m = res.manifest
    assert m["choices"]["parts"] == "by-recording"
    assert m["sections"] == {"00": {"value": "all", "part": "dev"}, "03": {"value": "all", "part": "eval"}}
    parts = {}
    for r in m["recordings"]:
        parts.setdefault(r["source"], set()).add(r["part"])
    assert all(len(p) == 1 for p in parts.values())
    assert {r["part"] for r in m["recordings"] if r["label"] == 1} == {"dev", "eval"}


def test_default_parts_fill_the_reported_sections_first(tmp_path):
    def recs(values):
        return [Recording(f"{v}/{i}.wav", "normal", 0, v, SAMPLE_RATE, 1, 32_000, 0, 1) for v in values for i in range(2)]

    for values, want in ((["a", "b"], {0: "a", 3: "b"}), (["a", "b", "c"], {0: "a", 3: "b", 4: "c"}),
                         (["a", "b", "c", "d"], {0: "a", 3: "b", 4: "c", 5: "d"}),
                         (list("abcdef"), {0: "a", 1: "b", 2: "c", 3: "d", 4: "e", 5: "f"})):
        mode, sections = assign_sections(recs(values), _cfg(tmp_path))
        assert mode == "by-value" and {s: v["value"] for s, v in sections.items()} == want
    mode, sections = assign_sections(recs("abcd"), _cfg(tmp_path, dev_values=("c", "a")))
    assert {s: v["value"] for s, v in sections.items()} == {0: "c", 1: "a", 3: "b", 4: "d"}
    with pytest.raises(ValueError, match="2 to 6 section values"):
        assign_sections(recs("abcdefg"), _cfg(tmp_path))


def test_rerun_is_a_no_op_and_a_different_rerun_is_refused(tmp_path, prepared):
    cfg, res = prepared
    out = tmp_path / "out"
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.warns(UserWarning, match="skipped"):
        again = prepare(cfg, progress=False)
    assert (again.status, again.written) == ("up to date", 0)
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.warns(UserWarning, match="skipped"), pytest.raises(FileExistsError, match="settings.seed.*--overwrite"):
        prepare(dataclasses.replace(cfg, seed=1), progress=False)
    with pytest.warns(UserWarning, match="skipped"):
        dry = prepare(dataclasses.replace(cfg, seed=1), overwrite=True, dry_run=True, progress=False)
    assert dry.status.startswith("dry run: would replace") and json.loads((out / MANIFEST_NAME).read_text())[
        "identity"]["settings"]["seed"] == 0
    with pytest.warns(UserWarning, match="skipped"):
        new = prepare(dataclasses.replace(cfg, seed=1), overwrite=True, progress=False)
    assert new.status == "written" and new.manifest["identity"]["settings"]["seed"] == 1
    assert len(index(out)) == sum(len(r["clips"]) for r in new.manifest["recordings"])  # no stale clips left


def test_interrupted_run_resumes(prepared):
    cfg, res = prepared
    out = os.path.abspath(cfg.out)
    os.replace(os.path.join(out, MANIFEST_NAME), os.path.join(out, PARTIAL_NAME))  # as if stopped before the end
    os.remove(os.path.join(out, res.manifest["recordings"][0]["clips"][0]))
    with pytest.warns(UserWarning, match="skipped"):
        again = prepare(cfg, progress=False)
    assert (again.status, again.written) == ("resumed", 1)
    assert os.path.isfile(os.path.join(out, MANIFEST_NAME)) and not os.path.exists(os.path.join(out, PARTIAL_NAME))


def test_foreign_data_in_out_is_never_touched(tmp_path):
    _tree(tmp_path / "rec")
    foreign = tmp_path / "out" / "dev_data" / "fan" / "train" / "section_00_source_train_normal_0000.wav"
    _write(foreign, 3.0)
    with pytest.warns(UserWarning, match="skipped"), pytest.raises(FileExistsError, match="not written by minasd"):
        prepare(_cfg(tmp_path), overwrite=True, progress=False)
    assert foreign.is_file()


def test_name_clash_and_overlapping_classes_are_errors(tmp_path):
    root = _tree(tmp_path / "rec")
    _write(root / "normal" / "loop" / "2" / "ch1.flac", 3.0)  # ch1.wav and ch1.flac in one folder
    with pytest.raises(ValueError, match=r"ch1.flac and .*ch1.wav share a name in one folder"):
        prepare(_cfg(tmp_path), progress=False)
    (root / "normal" / "loop" / "2" / "ch1.flac").unlink()
    with pytest.raises(ValueError, match="overlap"):
        prepare(_cfg(tmp_path, anomaly=("broken", "broken/01")), progress=False)


def test_empty_class_folder_and_missing_pattern_are_errors(tmp_path):
    root = _tree(tmp_path / "rec")
    (root / "scratched").mkdir()
    (root / "scratched" / "notes.txt").write_text("no audio here")
    with pytest.raises(ValueError, match=r"class folder .*scratched holds no audio file"):
        prepare(_cfg(tmp_path, anomaly=("broken", "scratched")), progress=False)
    with pytest.raises(FileNotFoundError, match="--anomaly 'cracked': no folder matches"):
        prepare(_cfg(tmp_path, anomaly=("cracked",)), progress=False)


def test_sections_need_the_folder_level_and_enough_recordings(tmp_path):
    _tree(tmp_path / "rec")
    with pytest.raises(ValueError, match=r"recording normal/loop/0/ch1.wav has 2 folder\(s\) below its class folder "
                                         r"\(loop/0\); --section-level 3 needs more"):
        prepare(_cfg(tmp_path, section_level=3), progress=False)
    with pytest.warns(UserWarning, match="skipped"), pytest.raises(ValueError, match=r"--dev-values \['loop', 'square'\]"):
        prepare(_cfg(tmp_path, dev_values=("loop", "square")), progress=False)
    # 3 normal recordings of 'loop' left after the short one is skipped ... drop two more: one left, no split possible
    for i in (1, 2, 3):
        os.remove(tmp_path / "rec" / "normal" / "loop" / str(i) / "ch1.wav")
    with pytest.warns(UserWarning, match="skipped"), pytest.raises(ValueError, match=r"section 00 \(value 'loop'"):
        prepare(_cfg(tmp_path), progress=False)
    assert section_value(["cfg", "loop", "3"], -2, "x") == section_value(["loop", "3"], 1, "y") == "loop"


def _outlier_root(root):
    """A hand-made DCASE-layout root with one other type, 'gadget': two training clips per section, one test clip."""
    for sec, ds in ((0, "dev_data"), (3, "eval_data")):
        for i in range(2):
            _write(root / ds / "gadget" / "train" / f"section_{sec:02d}_source_train_normal_{i:04d}_a_1.wav", 3.0)
        _write(root / ds / "gadget" / "source_test" / f"section_{sec:02d}_source_test_anomaly_0000_a_1.wav", 3.0)
        _write(root / ds / "mine" / "train" / f"section_{sec:02d}_source_train_normal_0000_a_1.wav", 3.0)
    return root


def test_outliers_are_linked_from_another_root(tmp_path):
    _tree(tmp_path / "rec")
    other = _outlier_root(tmp_path / "other")
    with pytest.warns(UserWarning, match="skipped"), pytest.raises(ValueError, match="also an outlier type"):
        prepare(_cfg(tmp_path, outliers=str(other), outlier_types=("gadget", "mine")), progress=False)
    with pytest.warns(UserWarning, match="skipped"):
        res = prepare(_cfg(tmp_path, outliers=str(other), outlier_clips_per_section=1), progress=False)
    o = res.manifest["outliers"]
    assert (o["types"], o["clips"], o["synthetic"], o["placed_as"]) == (["gadget"], {"gadget": 2}, False, ["hard"])
    df = index(res.root)
    gadget = df[df["machine"] == "gadget"]
    assert set(gadget["split"]) == {"train"} and sorted(gadget["section"]) == [0, 3]  # test clips never copied
    src = other / "dev_data" / "gadget" / "train"
    assert any(os.path.samefile(p, src / os.path.basename(p)) for p in gadget["path"] if "dev_data" in p)
    # the prepared type's own clips come from the recordings only, never from the outlier root
    assert not df[(df["machine"] == "mine")]["path"].str.contains("_a_1.wav").any()
    # every caption names the root as prepared recordings, with the outliers' origin
    data = data_manifest(res.root)
    assert (data["kind"], data["synthetic"], data["machine_type"], data["outliers_synthetic"]) == (
        "prepared", False, "mine", False)
    assert data_kind_label(data) == data["note"] and "'rec'" in data["note"] and "gadget from other" in data["note"]
    assert PREPARE_MANIFEST_NAME == MANIFEST_NAME


def test_an_unreadable_prepare_manifest_is_named(tmp_path):
    (tmp_path / MANIFEST_NAME).write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{MANIFEST_NAME}: not a readable minasd prepare manifest"):
        data_manifest(tmp_path)


def test_command_line_dry_run_writes_nothing(tmp_path, capsys):
    _tree(tmp_path / "rec")
    parser = argparse.ArgumentParser()
    add_prepare_arguments(parser)
    args = parser.parse_args(["--input", str(tmp_path / "rec"), "--out", str(tmp_path / "out"), "--machine-type", "mine",
                              "--normal", "normal", "--anomaly", "br*", "--section-level", "-2",
                              "--clip-seconds", "2", "--dry-run", "--quiet"])
    with pytest.warns(UserWarning, match="skipped"):
        assert run_prepare(args) == 0
    text = capsys.readouterr().out
    assert "dry run: would write a new root" in text and "     03 eval           square" in text
    assert not (tmp_path / "out").exists()
