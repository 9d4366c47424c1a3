"""What a data root holds and how every caption names it (``minasd.provenance``).

One tiny synthetic set of a single type (about 2 s); the download record's case is in
``test_download.py`` (it needs the fake Zenodo server).
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from minasd import provenance, synth
from minasd.provenance import (PAPER_BACKBONE, backbone_label, data_caption, data_label, data_manifest,
                               find_synth_manifest, results_label, run_data_record)

STAND_IN = "mobilenetv3_small_050"


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    """A finished tiny synthetic set of one type (about 2 s), seed 5 so the label's seed is not a default."""
    return synth.make_dataset(tmp_path_factory.mktemp("prov_synth") / "tiny", size="tiny", seed=5,
                              machine_types=["valve"], workers=1, progress=False)


def _interrupted(folder: Path) -> Path:
    """A folder holding only the marker of an interrupted synthetic set (seed 2, size small)."""
    (folder / "dev_data").mkdir(parents=True)
    (folder / synth.PARTIAL_NAME).write_text(json.dumps(
        {"generator_version": synth.GENERATOR_VERSION, "seed": 2, "size": "small", "machine_types": ["fan"]}))
    return folder


# --------------------------------------------------------------------------------------
# the reader: which data a root holds
# --------------------------------------------------------------------------------------


def test_the_module_imports_neither_the_generator_nor_torch():
    tree = ast.parse(Path(provenance.__file__).read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {f"{'.' * n.level}{n.module or ''}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {n for n in names if "synth" in n or n.split(".")[0] == "torch"}, names


def test_synth_file_names_are_the_generators():
    assert provenance.SYNTH_MANIFEST_NAME == synth.MANIFEST_NAME
    assert provenance.SYNTH_PARTIAL_NAME == synth.PARTIAL_NAME


def test_find_synth_manifest_agrees_with_the_generators_lookup(tiny_set, tmp_path):
    for where in (tiny_set, tiny_set / "dev_data", tiny_set / "dev_data" / "valve"):
        assert find_synth_manifest(where) == synth.find_manifest(where)
    assert find_synth_manifest(tiny_set)["finished"] is True
    part = _interrupted(tmp_path / "part")
    assert find_synth_manifest(part / "dev_data") == synth.find_manifest(part / "dev_data")
    assert find_synth_manifest(part / "dev_data")["finished"] is False
    layout = tmp_path / "other" / "dev_data"
    layout.mkdir(parents=True)
    assert find_synth_manifest(layout) is None and find_synth_manifest(tmp_path / "missing") is None
    # three levels up is beyond the lookup
    deep = tiny_set / "dev_data" / "valve" / "train"
    assert find_synth_manifest(deep) is None and synth.find_manifest(deep) is None


def test_find_synth_manifest_names_a_file_that_is_not_json(tmp_path):
    part = _interrupted(tmp_path / "part")
    (part / synth.PARTIAL_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=f"marker .*{synth.PARTIAL_NAME}.*regenerate"):
        find_synth_manifest(part)
    (part / synth.MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=f"manifest .*{synth.MANIFEST_NAME}"):
        find_synth_manifest(part / "dev_data")


def test_data_manifest_of_a_synthetic_set_and_of_an_unknown_layout(tiny_set, tmp_path):
    m = synth.read_manifest(tiny_set)
    assert data_manifest(tiny_set / "dev_data") == {
        "kind": "synthetic", "synthetic": True, "seed": 5, "size": "tiny", "generator_version": synth.GENERATOR_VERSION,
        "machine_types": m["machine_types"], "finished": True, "note": synth.SYNTH_NOTE}
    part = _interrupted(tmp_path / "part")
    assert data_manifest(part)["finished"] is False and data_manifest(part)["note"].endswith(" (incomplete set)")
    assert data_manifest(tmp_path / "missing") == {"kind": "dcase_layout", "synthetic": False,
                                                   "note": provenance.UNKNOWN_DATA_NOTE}


def test_run_data_record_keeps_the_whole_synthetic_manifest(tiny_set, tmp_path):
    m = synth.find_manifest(tiny_set)
    record = run_data_record(tiny_set / "dev_data")
    assert record == {"kind": "synthetic", "synthetic": True,
                      "manifest": {k: v for k, v in m.items() if k != "manifest_path"}}
    assert record["manifest"]["n_clips"] == m["n_clips"] and "manifest_path" not in record["manifest"]
    assert run_data_record(tmp_path) == data_manifest(tmp_path)  # no synthetic set: the one record


# --------------------------------------------------------------------------------------
# data_caption / data_label
# --------------------------------------------------------------------------------------

SYNTH_DATA = {"kind": "synthetic", "synthetic": True, "generator_version": "1.2", "size": "tiny", "seed": 5}
REAL_DATA = {"kind": "dcase2021", "synthetic": False}  # downloaded and checksummed by minasd download


def test_data_caption_forms_of_synthetic_data():
    assert data_caption(SYNTH_DATA, "short") == "SYNTHETIC data"
    assert data_caption(SYNTH_DATA, "line") == "SYNTHETIC data, not DCASE"
    assert data_caption(SYNTH_DATA, "table") == "SYNTHETIC (not DCASE; not comparable with the paper)"
    assert data_caption(SYNTH_DATA) == "SYNTHETIC data (minasd.synth v1.2, size tiny, seed 5; not DCASE)"
    assert data_caption(SYNTH_DATA, "summary", counts=": 3 clips") == (
        "SYNTHETIC data (minasd.synth v1.2, size tiny: 3 clips; data seed 5; not DCASE), "
        "so never a reproduction of the paper's numbers")
    interrupted = dict(SYNTH_DATA, finished=False)
    assert data_caption(interrupted).endswith("seed 5, INCOMPLETE set; not DCASE)")
    assert data_caption(interrupted, flag_incomplete=False) == data_caption(SYNTH_DATA)
    with pytest.raises(ValueError, match="form must be one of"):
        data_caption(SYNTH_DATA, "long")


@pytest.mark.parametrize("form", list(provenance.SYNTHETIC_WORDS))
def test_data_caption_of_other_data_is_its_kind_whatever_the_form(form):
    assert data_caption(REAL_DATA, form) == provenance.REAL_DCASE_NOTE
    for data in ({"kind": "dcase_layout", "synthetic": False}, {"kind": "real", "synthetic": False}, {}):
        assert data_caption(data, form) == provenance.UNKNOWN_DATA_NOTE


def test_data_label_names_the_synthetic_generator_size_and_seed(tiny_set):
    expected = f"SYNTHETIC data (minasd.synth v{synth.GENERATOR_VERSION}, size tiny, seed 5; not DCASE)"
    assert data_label(tiny_set) == expected
    # a chapter may index the set through dev_data or one type's folder: same label
    assert data_label(tiny_set / "dev_data") == expected
    assert data_label(str(tiny_set / "dev_data" / "valve")) == expected


def test_data_label_without_any_manifest_is_of_unknown_origin(tmp_path):
    layout = tmp_path / "dcase" / "dev_data"
    (layout / "fan" / "train").mkdir(parents=True)
    assert data_label(layout) == f"DCASE layout, no minasd synth manifest (provenance unknown): {layout}"
    assert data_label(str(tmp_path / "missing")).endswith(f"(provenance unknown): {tmp_path / 'missing'}")
    assert "SYNTHETIC" not in data_label(layout) and "real" not in data_label(layout)


def test_data_label_of_an_interrupted_synthetic_set_says_incomplete(tmp_path):
    label = data_label(_interrupted(tmp_path) / "dev_data")
    assert label.startswith("SYNTHETIC data") and "size small" in label and "seed 2" in label
    assert "INCOMPLETE set" in label and label.endswith("not DCASE)")


# --------------------------------------------------------------------------------------
# backbone_label / results_label
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, "", PAPER_BACKBONE, "tf_efficientnet_b0"])
def test_backbone_label_of_the_papers_encoder(name):
    assert backbone_label(name) == "backbone EfficientNet-B0 (the paper's)"


@pytest.mark.parametrize("name", [STAND_IN, "resnet18"])
def test_backbone_label_of_a_stand_in_says_so(name):
    label = backbone_label(name)
    assert label == f"backbone {name}, a CPU stand-in, not the paper's EfficientNet-B0"
    assert "(the paper's)" not in label


def _loaded(data: dict, epochs: dict, planned=4, backbone=STAND_IN, device="cuda:0", device_name="NVIDIA H100"):
    overrides = {} if backbone is None else {"backbone": backbone}
    prov = {"data": data, "epochs": epochs, "device": device, "device_name": device_name,
            "config": {"epochs": planned, "train_overrides": overrides}}
    return {"manifest": {"provenance": prov}}


def test_results_label_names_data_epochs_backbone_and_device():
    loaded = _loaded(SYNTH_DATA, {"fan": {"proposed": 4, "no_mixup": 4}, "pump": {"proposed": 4}})
    assert results_label(loaded) == (
        "SYNTHETIC data (minasd.synth v1.2, size tiny, seed 5; not DCASE); epochs 4; "
        f"backbone {STAND_IN}, a CPU stand-in, not the paper's EfficientNet-B0; device NVIDIA H100")
    # results on an interrupted set say so in the caption too (every committed result's set is finished)
    interrupted = dict(SYNTH_DATA, finished=False)
    assert results_label(_loaded(interrupted, {})).startswith(
        "SYNTHETIC data (minasd.synth v1.2, size tiny, seed 5, INCOMPLETE set; not DCASE);")


def test_results_label_of_real_data_and_the_papers_backbone():
    label = results_label(_loaded(REAL_DATA, {"fan": {"proposed": 300}}, planned=300, backbone=None))
    assert label == ("real DCASE 2021 Task 2 data (downloaded from Zenodo and MD5-checked by minasd download); "
                     "epochs 300; backbone EfficientNet-B0 (the paper's); device NVIDIA H100")
    assert "SYNTHETIC" not in label
    # a record of unknown origin (or one an earlier minasd called "real" for want of a manifest) is not real
    for data in ({"kind": "dcase_layout", "synthetic": False}, {"kind": "real", "synthetic": False}):
        unknown = results_label(_loaded(data, {"fan": {"proposed": 300}}, planned=300, backbone=None))
        assert unknown.startswith("DCASE layout, no minasd synth manifest (provenance unknown); epochs 300;")


def test_results_label_reports_stopped_runs_against_the_plan_and_per_machine():
    # pump stopped early (2 of 4 epochs); baseline rows carry no epoch count (None).  Over all
    # types the distinct counts are listed; "of N planned" only when every run stopped short.
    loaded = _loaded(SYNTH_DATA, {"fan": {"proposed": 4, "baseline": None}, "pump": {"proposed": 2}})
    assert "; epochs 2-4 (runs differ);" in results_label(loaded)
    assert "; epochs 2 of 4 planned;" in results_label(_loaded(SYNTH_DATA, {"pump": {"proposed": 2, "no_mixup": 2}}))
    assert "; epochs 4;" in results_label(loaded, machine="fan")
    assert "; epochs 2 of 4 planned;" in results_label(loaded, machine="pump")
    assert "; epochs n/a;" in results_label(loaded, machine="ToyCar")


def test_results_label_without_epochs_or_device_name():
    label = results_label(_loaded(REAL_DATA, {}, device="cpu", device_name=None))
    assert "; epochs n/a;" in label and "planned" not in label
    assert label.endswith("; device cpu")
