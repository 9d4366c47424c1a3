"""Result folders must match the package's result schema: a micro folder made here, and the
committed full-scale results (``results/experiment``) when the repository has them.

The book (chapters 4-8) renders these files; when the schema changes
(``minasd.studies.experiment.RESULTS_SCHEMA_VERSION``, a column, a key) and the committed
files are not regenerated, this test fails CI instead of the book failing later.  The
micro folder is written by the package's own writer (:func:`minasd.studies.experiment.write_tables`)
from hand-made per-type results, so the schema checks below always run; nothing is trained.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from minasd.config import DEV_SECTIONS, EVAL_SECTIONS
from minasd.studies.experiment import (RESULTS_SCHEMA, RESULTS_SCHEMA_VERSION, TABLE2_VARIANTS, load_results,
                               write_tables)
from minasd.io_utils import atomic_write_json
from minasd.metrics import ALL_LABEL, harmonic_mean

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "results" / "experiment" / "seed0"  # the book's default results_dir (from book/: "../results/experiment/seed0")


def _manifest_present(d: Path) -> bool:
    return (d / "manifest.json").is_file() or (d / "results" / "manifest.json").is_file()


def _records(machine: str, variant: str, sections, auc: float, pauc: float) -> list[dict]:
    return [{"variant": variant, "machine": machine, "section": s, "role": "dev" if s in DEV_SECTIONS else "eval",
             "auc": auc, "pauc": pauc} for s in sections]


def make_micro_results(out: Path) -> Path:
    """A minimal valid experiment folder: fan complete; pump's proposed run lacks section 05.

    Development sections get values far from the test sections' so that a table that
    looked at them would show it.
    """
    cfg = {"variants": ["proposed", "twfr_gmm", "gmm_meanstd"], "grid_lam": [0.1, 10.0],
           "grid_p": {"gmm": [2], "lof": [4]}}
    types = {
        "fan": {"sections": _records("fan", "proposed", DEV_SECTIONS, 0.99, 0.99)
                + _records("fan", "proposed", EVAL_SECTIONS, 0.8, 0.6)
                + _records("fan", "gmm_meanstd", list(DEV_SECTIONS) + list(EVAL_SECTIONS), 0.7, 0.55)
                + _records("fan", "twfr_gmm", list(DEV_SECTIONS) + list(EVAL_SECTIONS), 0.75, 0.6),
                "selection": [{"machine": "fan", "variant": "proposed", "lam": 10.0, "kind": "gmm", "p": 2,
                               "aggregation": "mean_above_median", "dev_hmean": 0.99, "n_dev_sections": 3,
                               "skipped": None, "chosen": True}]},
        "pump": {"sections": _records("pump", "proposed", list(DEV_SECTIONS) + [3, 4], 0.9, 0.7)
                 + _records("pump", "gmm_meanstd", list(DEV_SECTIONS) + list(EVAL_SECTIONS), 0.6, 0.52)
                 + _records("pump", "twfr_gmm", list(DEV_SECTIONS) + list(EVAL_SECTIONS), 0.65, 0.5),
                 "selection": []},
    }
    res = out / "results"
    for m, t in types.items():
        atomic_write_json(res / "types" / f"{m}.json", {"schema": RESULTS_SCHEMA, "schema_version":
                                                        RESULTS_SCHEMA_VERSION, "machine_type": m, **t})
    atomic_write_json(res / "roc" / "fan.json", {"proposed": {"03": {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.9, 1.0]}}})
    provenance = {"data": {"kind": "synthetic", "synthetic": True, "note": "hand-made test results"},
                  "device": "cpu", "epochs": {"fan": {"proposed": 1}, "pump": {"proposed": 1}}}
    return write_tables(out, cfg, types, provenance)


@pytest.fixture(scope="module")
def micro_dir(tmp_path_factory):
    return make_micro_results(tmp_path_factory.mktemp("micro_results"))


@pytest.fixture(scope="module", params=["micro", "committed"])
def results(request, micro_dir):
    if request.param == "micro":
        return load_results(micro_dir)  # raises if any file disagrees with the schema
    if not _manifest_present(COMMITTED):
        pytest.skip(f"no committed full-scale results under {COMMITTED.relative_to(REPO)} "
                    "(`minasd results` writes them; commit results/experiment)")
    return load_results(COMMITTED)


def test_results_load_with_the_current_schema(results):
    assert results["manifest"]["schema_version"] == RESULTS_SCHEMA_VERSION
    assert results["manifest"]["machine_types"], "results name no machine type"
    for name in ("table2", "table3", "sections", "selection"):
        assert name in results["tables"]


def test_tables_report_the_test_sections_only(results):
    assert results["manifest"]["report_sections"] == list(EVAL_SECTIONS)
    t2, secs = results["tables"]["table2"], results["tables"]["sections"]
    for m in results["manifest"]["machine_types"]:
        have = set(t2.loc[t2["machine"] == m, "variant"])
        wanted = set(TABLE2_VARIANTS) & set(results["manifest"]["variants"])
        assert wanted <= have, f"table2 lacks {sorted(wanted - have)} for {m}"
    for r in t2[t2["machine"] != ALL_LABEL].itertuples():
        part = secs[(secs["variant"] == r.variant) & (secs["machine"] == r.machine)
                    & secs["section"].astype(int).isin(EVAL_SECTIONS)]
        if r.hmean == r.hmean:  # reported: over exactly sections 03-05
            assert sorted(part["section"].astype(int)) == list(EVAL_SECTIONS)
            assert r.hmean == pytest.approx(100 * harmonic_mean([*part["AUC"] / 100, *part["pAUC"] / 100]))
        else:  # not reported: the row says why
            assert isinstance(r.note, str) and ("missing" in r.note or "of 0" in r.note)
    assert t2["hmean"].dropna().between(0, 100).all()


def test_results_say_what_made_them(results):
    prov = results["manifest"]["provenance"]
    # the book's captions are built from these fields
    assert "synthetic" in prov["data"], "provenance.data must say whether the data were synthetic"
    assert prov.get("device"), "provenance must name the device"
    assert prov.get("epochs"), "provenance must list the epochs of every trained run"


def test_micro_results_report_an_incomplete_type_without_a_number(micro_dir):
    t2 = load_results(micro_dir)["tables"]["table2"].set_index(["variant", "machine"])
    assert t2.loc[("proposed", "fan"), "hmean"] == pytest.approx(100 * harmonic_mean([0.8] * 3 + [0.6] * 3))
    assert t2.loc[("proposed", "pump"), "hmean"] != t2.loc[("proposed", "pump"), "hmean"]  # NaN: not reported
    assert t2.loc[("proposed", "pump"), "note"] == "section 05 missing: not reported"
    assert t2.loc[("proposed", ALL_LABEL), "hmean"] == pytest.approx(t2.loc[("proposed", "fan"), "hmean"])
    assert t2.loc[("proposed", ALL_LABEL), "note"] == "over fan; left out (incomplete): pump"
    assert t2.loc[("gmm_meanstd", ALL_LABEL), "note"] == "over fan, pump"


def test_table2_lists_proposed_and_the_comparison_systems_present(micro_dir):
    """Table II: the proposed method and each comparison system the experiment ran, in
    TABLE2_VARIANTS order (here no autoencoder: not asked, so no row), each type and All."""
    assert TABLE2_VARIANTS == ("proposed", "ae_dcase2021", "twfr_gmm", "gmm_meanstd")
    t2 = load_results(micro_dir)["tables"]["table2"]
    assert list(dict.fromkeys(t2["variant"])) == ["proposed", "twfr_gmm", "gmm_meanstd"]
    assert all(list(t2.loc[t2["variant"] == v, "machine"]) == ["fan", "pump", ALL_LABEL]
               for v in ("proposed", "twfr_gmm", "gmm_meanstd"))
    fan = t2.set_index(["variant", "machine"])
    assert fan.loc[("twfr_gmm", "fan"), "hmean"] == pytest.approx(100 * harmonic_mean([0.75] * 3 + [0.6] * 3))
    assert set(load_results(micro_dir)["tables"]["table3"]["variant"]) == {"proposed"}  # no ablation asked


def test_committed_summary_is_complete_and_says_what_made_it():
    """The committed summary over seeds (`minasd results`): every table its provenance lists is
    there, and the provenance names profile, data, seeds, commit, machine and wall times."""
    from minasd.studies.summary_view import load_summary

    summary = load_summary(COMMITTED.parent / "summary")
    if summary is None:
        pytest.skip("no committed summary under results/experiment/summary")
    assert not summary["missing"], f"summary files listed but absent: {summary['missing']}"
    prov = summary["provenance"]
    assert prov["profile"]["name"] and prov["data"]["synthetic"] in (True, False) and prov["git_commit"]
    assert prov["machine"]["cpu_count"] and prov["seeds_published"]
    for k in prov["seeds_published"]:
        walls = prov["seeds"][str(k)]["wall_s_per_type"]
        assert walls and all(v > 0 for v in walls.values())
    assert not str(prov.get("data_root", "")).startswith("/")
