"""The book's shared helpers (``minasd.book``): data labels, caption lines, committed results.

Nothing is trained here: the one synthetic set is tiny with a single machine type, and
result folders are written with :func:`minasd.experiment.write_tables` from no machine
types at all (a schema-valid, empty experiment), which is all ``load_results`` needs.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from minasd import book, synth
from minasd.book import (PAPER_BACKBONE, backbone_label, data_label, default_cache, in_colab, live_experiment,
                         load_committed, prepare_data, results_label)
from minasd.experiment import RESULTS_SCHEMA, RESULTS_SCHEMA_VERSION, TABLE_COLUMNS, load_results, write_tables

STAND_IN = "mobilenetv3_small_050"


# --------------------------------------------------------------------------------------
# data_label / prepare_data / default_cache
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    """A finished tiny synthetic set of one type (about 2 s), seed 5 so the label's seed is not a default."""
    return synth.make_dataset(tmp_path_factory.mktemp("book_synth") / "tiny", size="tiny", seed=5,
                              machine_types=["valve"], workers=1, progress=False)


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
    (tmp_path / "dev_data").mkdir()
    (tmp_path / synth.PARTIAL_NAME).write_text(json.dumps(
        {"generator_version": synth.GENERATOR_VERSION, "seed": 2, "size": "small", "machine_types": ["fan"]}))
    label = data_label(tmp_path / "dev_data")
    assert label.startswith("SYNTHETIC data") and "size small" in label and "seed 2" in label
    assert "INCOMPLETE set" in label and label.endswith("not DCASE)")


def test_default_cache_follows_minasd_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MINASD_CACHE", str(tmp_path / "c"))
    assert default_cache() == tmp_path / "c"
    monkeypatch.delenv("MINASD_CACHE")
    assert default_cache() == Path.home() / ".cache" / "minasd"


def test_prepare_data_rejects_an_unknown_scale_without_writing(tmp_path):
    with pytest.raises(ValueError, match="size must be one of"):
        prepare_data(tmp_path / "d", scale="huge")
    assert not (tmp_path / "d").exists()


def test_in_colab_looks_for_the_colab_module(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert in_colab() is False
    monkeypatch.setitem(sys.modules, "google.colab", object())
    assert in_colab() is True


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


SYNTH_DATA = {"kind": "synthetic", "synthetic": True, "generator_version": "1.2", "size": "tiny", "seed": 5}
REAL_DATA = {"kind": "dcase2021", "synthetic": False}  # downloaded and checksummed by minasd download


def test_results_label_names_data_epochs_backbone_and_device():
    loaded = _loaded(SYNTH_DATA, {"fan": {"proposed": 4, "no_mixup": 4}, "pump": {"proposed": 4}})
    assert results_label(loaded) == (
        "SYNTHETIC data (minasd.synth v1.2, size tiny, seed 5; not DCASE); epochs 4; "
        f"backbone {STAND_IN}, a CPU stand-in, not the paper's EfficientNet-B0; device NVIDIA H100")


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


# --------------------------------------------------------------------------------------
# load_committed (results folders written without training)
# --------------------------------------------------------------------------------------


def _empty_experiment(out: Path, data_root: Path, config: dict | None = None) -> Path:
    """An experiment folder ``out`` whose ``results/`` match the schema but hold no machine type."""
    from minasd.evaluate import data_manifest

    cfg = {"variants": ["proposed", "baseline"], "grid_lam": [0.1, 10.0], "grid_p": {"gmm": [1, 2], "lof": [4]}}
    prov = {"config": dict(config or {}, grid_lam=cfg["grid_lam"]), "data_root": str(Path(data_root).resolve()),
            "data": data_manifest(data_root), "device": "cpu", "device_name": "cpu", "epochs": {}}
    write_tables(out, cfg, {}, prov)
    return out


def test_load_committed_is_none_without_a_manifest(tmp_path):
    assert load_committed(None) is None
    assert load_committed("") is None
    assert load_committed(tmp_path / "missing") is None
    stale = tmp_path / "no_manifest"
    (stale / "results").mkdir(parents=True)
    (stale / "results" / "table2.csv").write_text("variant,machine,AUC,pAUC,hmean\n")
    assert load_committed(stale) is None
    assert load_committed(str(stale / "results")) is None


def test_load_committed_loads_a_schema_valid_folder(tmp_path):
    out = _empty_experiment(tmp_path / "exp", tmp_path / "data")
    for where in (out, out / "results", str(out)):
        loaded = load_committed(where)
        assert loaded is not None
        assert loaded["manifest"]["schema"] == RESULTS_SCHEMA
        assert loaded["manifest"]["schema_version"] == RESULTS_SCHEMA_VERSION
        assert set(loaded["tables"]) == set(TABLE_COLUMNS)
        assert tuple(loaded["tables"]["table2"].columns) == TABLE_COLUMNS["table2"]
        assert Path(loaded["dir"]) == out / "results"
    assert load_committed(out)["manifest"] == load_results(out)["manifest"]
    # and the caption of such results
    assert results_label(load_committed(out)) == ("DCASE layout, no minasd synth manifest (provenance unknown); "
                                                  "epochs n/a; backbone EfficientNet-B0 (the paper's); device cpu")


def test_load_committed_raises_on_a_folder_of_another_schema_version(tmp_path):
    out = _empty_experiment(tmp_path / "exp", tmp_path / "data")
    mf = out / "results" / "manifest.json"
    manifest = json.loads(mf.read_text())
    manifest["schema_version"] = RESULTS_SCHEMA_VERSION + 1
    mf.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="schema"):
        load_committed(out)


def test_load_committed_raises_on_changed_table_columns(tmp_path):
    out = _empty_experiment(tmp_path / "exp", tmp_path / "data")
    csv = out / "results" / "table2.csv"
    csv.write_text("variant,machine,AUC,pAUC\n")
    with pytest.raises(ValueError, match="table2.csv"):
        load_committed(out)


def test_load_committed_raises_when_a_listed_file_is_missing(tmp_path):
    """A manifest whose files are gone is stale, not "no results": it raises, never returns None."""
    out = _empty_experiment(tmp_path / "exp", tmp_path / "data")
    (out / "results" / "selection.json").unlink()
    with pytest.raises(FileNotFoundError, match="selection.json"):
        load_committed(out)


def test_load_committed_raises_on_a_manifest_lacking_keys(tmp_path):
    d = tmp_path / "results"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"schema": RESULTS_SCHEMA, "schema_version": RESULTS_SCHEMA_VERSION}))
    with pytest.raises(ValueError, match="lacks the keys"):
        load_committed(d)


# --------------------------------------------------------------------------------------
# live_experiment: only the check that needs no training
# --------------------------------------------------------------------------------------


def test_live_experiment_refuses_results_of_another_data_set(tmp_path):
    out = _empty_experiment(tmp_path / "exp", tmp_path / "data_a")
    with pytest.raises(ValueError, match="another data set"):
        live_experiment(out, tmp_path / "data_b", progress=False)


def test_split_words_accepts_papermill_scalars_and_lists():
    assert book._split_words("fan ToyCar") == ["fan", "ToyCar"]
    assert book._split_words("fan,ToyCar") == ["fan", "ToyCar"]
    assert book._split_words(["fan", 3]) == ["fan", "3"]
    assert book._split_words(None) == []
