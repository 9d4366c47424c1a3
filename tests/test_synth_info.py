"""minasd.synth_info: a generator version's machine descriptions and section parameters, read from
that version's own models, outside every fingerprint and code hash."""
import pytest

from minasd import calibrate, config, synth, synth_info
from minasd.provenance import GENERATOR_FILES
from minasd.synth_machines import MODELS_V2


def test_each_version_reads_its_own_models():
    assert synth_info.describe_machines("1.2") == synth.describe_machines()
    assert synth_info.describe_machines("2.0") == {m: MODELS_V2[m].description for m in config.MACHINE_TYPES}
    for m in config.MACHINE_TYPES:
        for s in range(6):
            assert synth_info.section_params(m, s, "1.2") == synth.section_params(m, s)
            assert synth_info.section_params(m, s, "2.0") == dict(MODELS_V2[m].sections[s])
    assert "scene" in synth_info.section_params("fan", 0, "2.0")


def test_the_default_is_the_packages_generator(monkeypatch):
    assert synth_info.generator_of() == config.SYNTH_GENERATOR
    monkeypatch.setattr(synth_info, "SYNTH_GENERATOR", "2.0")
    assert synth_info.describe_machines() == synth_info.describe_machines("2.0")
    assert synth_info.section_params("valve", 1) == synth_info.section_params("valve", 1, "2.0")


def test_a_copy_is_returned():
    p = synth_info.section_params("pump", 0, "2.0")
    p["scene"] = "changed"
    assert synth_info.section_params("pump", 0, "2.0")["scene"] != "changed"


@pytest.mark.parametrize("args, words", [(("fan", 0, "3.0"), "generator must be one of"),
                                         (("drill", 0, "2.0"), "machine type must be one of"),
                                         (("fan", 6, "1.2"), "sections 00-05 in generator 1.2, got 06")])
def test_bad_arguments_are_named(args, words):
    with pytest.raises(ValueError, match=words):
        synth_info.section_params(*args)


def test_it_is_in_no_fingerprint_and_no_jobs_code_hash(tmp_path):
    """Editing it makes no new generator and re-measures no calibration job."""
    assert "synth_info.py" not in GENERATOR_FILES
    before = {m: calibrate.type_code_hash(m) for m in config.MACHINE_TYPES}
    copy = tmp_path / "pkg"
    copy.mkdir()
    for name in ("synth.py", "synth_machines.py", "synth_scenes.py"):
        (copy / name).write_bytes((calibrate.PACKAGE_DIR / name).read_bytes())
    (copy / "synth_info.py").write_text("x = 1\n")
    assert {m: calibrate.type_code_hash(m, folder=str(copy)) for m in config.MACHINE_TYPES} == before


def test_the_controlled_studys_section_distance_reads_the_datas_generator():
    from minasd.studies.controlled import section_param_distance

    # generator 2.0 keeps 1.2's product parameters and adds a noise scene per section (text: not a
    # distance) and, for the pump, the serial numbers of its sections' attribute strings
    for m in ("gearbox", "pump"):
        old, new = section_param_distance(m, [0, 1, 2], "1.2"), section_param_distance(m, [0, 1, 2], "2.0")
        assert set(old["pairs"]) == set(new["pairs"]) == {"00-01", "00-02", "01-02"}
        assert all("scene" not in p["differing"] for p in new["pairs"].values())
        assert ("serials" in new["pairs"]["00-01"]["differing"]) == (m == "pump")
        assert all("serials" not in p["differing"] for p in old["pairs"].values())


@pytest.mark.parametrize("version", ["1.2", "2.0"])
def test_the_anomaly_table_lists_every_kind_once(version):
    rows = synth_info.anomaly_table(version)
    kinds = synth.anomaly_kinds(generator=version)
    assert [(r["machine type"], r["anomaly"]) for r in rows] == [(m, k.name) for m, ks in kinds.items() for k in ks]
    assert {"class" if version == "1.2" else "character"} <= set(rows[0])


def test_the_examples_are_subtle_and_gross_in_their_generator():
    from minasd.synth_machines import LEVEL_CLASS, LEVEL_RANGES

    for m in config.MACHINE_TYPES:
        old = {k.name: k.severity for k in synth.anomaly_kinds(m, generator="1.2")}
        (_, sub, _), (_, gro, _) = synth_info.example_anomalies(m, "1.2")
        assert (old[sub], old[gro]) == ("subtle", "gross")
        classes = []
        for _, kind, severity in synth_info.example_anomalies(m, "2.0"):
            assert kind in {k.name for k in synth.anomaly_kinds(m, generator="2.0")}
            level = next(lv for lv, (lo, hi) in LEVEL_RANGES.items() if lo <= severity <= hi)
            classes.append(LEVEL_CLASS[level])
        assert classes == ["subtle", "gross"]


def test_gross_anomalies_follow_the_generator(monkeypatch):
    assert [k for k, _ in synth_info.gross_anomalies("valve", "1.2")] == [
        k.name for k in synth.anomaly_kinds("valve", generator="1.2") if k.severity == "gross"]
    assert [k for k, _ in synth_info.gross_anomalies("valve", "2.0")] == [
        k.name for k in synth.anomaly_kinds("valve", generator="2.0")]
    monkeypatch.setattr(synth_info, "SYNTH_GENERATOR", "2.0")
    assert synth_info.gross_anomalies("fan") == synth_info.gross_anomalies("fan", "2.0")
    assert synth_info.anomaly_table() == synth_info.anomaly_table("2.0")
