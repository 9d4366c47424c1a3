"""The calibration freeze (issue 23): the proposed method never trains or scores on a factory that is
still being calibrated, and a frozen version's generator files cannot change unnoticed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from minasd import provenance
from minasd.provenance import generator_fingerprint, require_calibrated
from minasd.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]


def _synthetic_root(tmp_path: Path, version: str) -> Path:
    root = tmp_path / f"set_{version}"
    (root / "dev_data" / "fan" / "train").mkdir(parents=True)
    (root / "minasd_synth.json").write_text(json.dumps({"generator_version": version, "seed": 0, "size": "tiny",
                                                        "machine_types": ["fan"]}))
    return root


def _frozen(tmp_path: Path, records: dict) -> Path:
    """A frozen-versions record beside copies of the package's generator files (the fingerprint's folder)."""
    folder = tmp_path / "pkg"
    folder.mkdir(exist_ok=True)
    for name in provenance.GENERATOR_FILES:
        src = provenance.FROZEN_FILE.parent / name
        if src.is_file():
            (folder / name).write_bytes(src.read_bytes())
    f = folder / "synth_frozen.json"
    f.write_text(json.dumps(records))
    return f


def test_sets_older_than_the_rule_and_non_synthetic_roots_pass(tmp_path):
    require_calibrated(_synthetic_root(tmp_path, "1.2"))
    (tmp_path / "real" / "dev_data").mkdir(parents=True)
    require_calibrated(tmp_path / "real")


def test_an_unfrozen_version_is_refused_naming_the_manifest(tmp_path):
    root = _synthetic_root(tmp_path, "2.0")
    with pytest.raises(ValueError, match="not calibrated and frozen") as err:
        require_calibrated(root, _frozen(tmp_path, {}))
    assert str(root / "minasd_synth.json") in str(err.value)
    with pytest.raises(ValueError, match="not calibrated"):  # no record file at all
        require_calibrated(root, tmp_path / "absent.json")


def test_a_frozen_version_passes_until_a_generator_file_changes(tmp_path):
    root = _synthetic_root(tmp_path, "2.0")
    f = _frozen(tmp_path, {})
    f.write_text(json.dumps({"2.0": {"sha256": generator_fingerprint(f.parent)["sha256"], "report": "r.json"}}))
    require_calibrated(root, f)
    synth_py = f.parent / "synth.py"
    text = synth_py.read_text()
    synth_py.write_text(text.replace('GENERATOR_VERSION = "1.2"', 'GENERATOR_VERSION = "2.0"  # the default now')
                        .replace('"""', '"""Edited. ', 1) + "\n# a comment\n")
    knobs = f.parent / "synth_knobs.json"
    notes = json.loads(knobs.read_text())
    knobs.write_text(json.dumps({**notes, "status": "calibrated"}, indent=3))
    require_calibrated(root, f)  # docstrings, comments, the default version, notes and layout are not the generator
    _edit_knob(knobs)
    with pytest.raises(ValueError, match="changed after version 2.0 was frozen"):
        require_calibrated(root, f)
    _edit_knob(knobs, back=True)
    require_calibrated(root, f)
    synth_py.write_text(text.replace("0.999", "0.998"))  # what a clip holds: a new generator
    with pytest.raises(ValueError, match="changed after version 2.0 was frozen"):
        require_calibrated(root, f)


def _edit_knob(knobs: Path, back: bool = False) -> None:
    data = json.loads(knobs.read_text())
    data["types"]["fan"]["sigma"] = data["types"]["fan"]["sigma"] * (1 / 1.5 if back else 1.5)
    knobs.write_text(json.dumps(data))


def test_a_malformed_record_is_named(tmp_path):
    f = _frozen(tmp_path, {})
    f.write_text('{"2.0": "abc"}')
    with pytest.raises(ValueError, match="synth_frozen.json"):
        require_calibrated(_synthetic_root(tmp_path, "2.0"), f)


def test_training_refuses_an_uncalibrated_factory_before_reading_any_clip(tmp_path):
    if "2.0" in provenance.frozen_generators():
        pytest.skip("generator 2.0 is frozen in this checkout")
    root = _synthetic_root(tmp_path, "2.0")
    with pytest.raises(ValueError, match="not calibrated and frozen"):
        train(TrainConfig("fan", str(root), str(tmp_path / "run"), epochs=1, device="cpu"))


def test_every_frozen_version_matches_the_package_and_its_report():
    """The committed record: each frozen version's fingerprint is the installed generator's, and its
    calibration report (committed with it) states the same fingerprint."""
    for version, entry in provenance.frozen_generators().items():
        assert entry["sha256"] == generator_fingerprint()["sha256"], f"generator {version} changed after its freeze"
        report = json.loads((REPO / entry["report"]).read_text())
        assert report["generator"] == version and report["fingerprint"]["sha256"] == entry["sha256"]


def test_freeze_lists_a_calibrated_version_once_and_never_overwrites_it(tmp_path):
    from minasd.calibrate import freeze

    frozen = _frozen(tmp_path, {})
    frozen.unlink()  # no record yet
    sha = generator_fingerprint(frozen.parent)["sha256"]
    report = tmp_path / "factory_calibration.json"
    report.write_text(json.dumps({"generator": "2.0", "fingerprint": {"sha256": sha},
                                  "summary": {"targets_met": False}}))
    root = _synthetic_root(tmp_path, "2.0")
    with pytest.raises(ValueError, match="not calibrated"):
        require_calibrated(root, frozen)
    entry = freeze(report, frozen)
    assert entry["sha256"] == sha and entry["targets_met"] is False
    require_calibrated(root, frozen)  # now the method may run on it
    assert freeze(report, frozen) == entry  # the same files again: nothing changes
    _edit_knob(frozen.parent / "synth_knobs.json")
    with pytest.raises(ValueError, match="is not that of the generator files"):
        freeze(report, frozen)  # the report no longer describes the files
    report.write_text(json.dumps({"generator": "2.0", "fingerprint": {"sha256": generator_fingerprint(frozen.parent)
                                                                      ["sha256"]}}))
    with pytest.raises(ValueError, match="frozen already with other files"):
        freeze(report, frozen)
    assert json.loads(frozen.read_text())["2.0"] == entry
    report.write_text(json.dumps({"generator": "1.2", "fingerprint": {"sha256": "x"}}))
    with pytest.raises(ValueError, match="predates the calibration"):
        freeze(report, frozen)
