"""The book's shared helpers (``minasd.book``): data, caption words for the chapters, committed results.

The caption words themselves are :mod:`minasd.provenance`'s (tested in ``test_provenance.py``).
Nothing is trained here: result folders are written with
:func:`minasd.studies.experiment.write_tables` from no machine types at all (a schema-valid,
empty experiment), which is all ``load_results`` needs.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from minasd import book, provenance
from minasd.book import default_cache, live_experiment, load_committed, prepare_data, setup
from minasd.provenance import results_label
from minasd.studies.experiment import RESULTS_SCHEMA, RESULTS_SCHEMA_VERSION, TABLE_COLUMNS, load_results, write_tables


# --------------------------------------------------------------------------------------
# prepare_data / default_cache / the chapters' caption words
# --------------------------------------------------------------------------------------


def test_the_chapters_caption_words_are_the_provenance_modules():
    for name in ("backbone_label", "data_label", "results_label"):
        assert getattr(book, name) is getattr(provenance, name), name


def test_default_cache_follows_minasd_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MINASD_CACHE", str(tmp_path / "c"))
    assert default_cache() == tmp_path / "c"
    monkeypatch.delenv("MINASD_CACHE")
    assert default_cache() == Path.home() / ".cache" / "minasd"


def test_prepare_data_rejects_an_unknown_scale_without_writing(tmp_path):
    with pytest.raises(ValueError, match="size must be one of"):
        prepare_data(tmp_path / "d", scale="huge")
    assert not (tmp_path / "d").exists()


def test_setup_without_parameters_sets_the_display_options_only():
    import pandas as pd

    keys = ("display.max_rows", "display.max_columns", "display.max_colwidth", "styler.format.na_rep")
    with pd.option_context(*[x for k in keys for x in (k, 10 if k.startswith("display") else None)]):
        assert setup() is None
        assert [pd.get_option(k) for k in keys] == [None, None, None, ""]


# --------------------------------------------------------------------------------------
# load_committed (results folders written without training)
# --------------------------------------------------------------------------------------


def _empty_experiment(out: Path, data_root: Path, config: dict | None = None) -> Path:
    """An experiment folder ``out`` whose ``results/`` match the schema but hold no machine type."""
    from minasd.provenance import data_manifest

    cfg = {"variants": ["proposed", "gmm_meanstd"], "grid_lam": [0.1, 10.0], "grid_p": {"gmm": [1, 2], "lof": [4]}}
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


# --------------------------------------------------------------------------------------
# setup with results (data and experiment stubbed: nothing generated or trained)
# --------------------------------------------------------------------------------------


def _chapter_params(tmp_path, **given):
    return {"dataset": "synthetic", "data_root": str(tmp_path / "data"), "scale": "tiny", "seed": 0,
            "results_dir": None, "live": False, "experiment_dir": None, **given}


@pytest.fixture
def no_data_generation(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setattr(book, "prepare_data", lambda root, **kw: Path(root))
    return tmp_path / "data"


def test_setup_loads_the_committed_results_and_prints_what_it_loaded(tmp_path, no_data_generation, capsys):
    out = _empty_experiment(tmp_path / "exp", no_data_generation)
    chapter = setup(_chapter_params(tmp_path, results_dir=str(out)), results=True)
    assert capsys.readouterr().out.splitlines() == [chapter.label,
                                                    "committed results: " + results_label(chapter.committed)]
    assert chapter.root == no_data_generation and chapter.live is None and chapter.exp_dir is None
    assert [name for name, _ in chapter.sources] == ["committed"]


def test_setup_without_committed_results_runs_the_live_experiment(tmp_path, no_data_generation, monkeypatch,
                                                                  capsys):
    live = load_committed(_empty_experiment(tmp_path / "exp", no_data_generation))
    monkeypatch.setattr(book, "chapter_experiment", lambda params, root: (tmp_path / "exp", live))
    chapter = setup(_chapter_params(tmp_path, results_dir=str(tmp_path / "none")), results=True, show_label=False,
                    fallback="the paper's numbers")
    printed = capsys.readouterr().out
    assert chapter.label not in printed and "live results: " + results_label(live) in printed
    assert chapter.committed is None and chapter.exp_dir == tmp_path / "exp"
    assert chapter.sources == [("live", live)]


def test_chapter_experiment_folder_defaults_to_the_cache(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(book, "live_experiment", lambda d, root, **kw: calls.append((d, kw)) or {})
    monkeypatch.setenv("MINASD_CACHE", str(tmp_path / "cache"))
    params = {"experiment_dir": None, "scale": "small", "seed": 2, "machine_types": "fan", "profile": "cpu",
              "epochs": 3, "backbone": None, "grid_lam": "10", "device": "cpu", "tsne_max_other": 5}
    exp_dir, _ = book.chapter_experiment(params, tmp_path)
    assert exp_dir == tmp_path / "cache" / "experiment_small_seed2" == calls[0][0]
    assert calls[0][1] == {"machine_types": "fan", "profile": "cpu", "epochs": 3, "backbone": None,
                           "grid_lam": "10", "seed": 2, "device": "cpu", "tsne_max_other": 5}


# --------------------------------------------------------------------------------------
# tables several chapters draw (hand-made result tables)
# --------------------------------------------------------------------------------------


def test_hmean_percent_follows_the_one_rule_for_zero_and_missing():
    import numpy as np
    import pandas as pd

    rows = pd.DataFrame({"auc": [0.5, 0.9], "pauc": [1.0, 0.9]})
    assert book.hmean_percent(rows.iloc[:1]) == pytest.approx(100 * 2 / 3)
    assert book.hmean_percent(rows.assign(pauc=[0.0, 0.9])) == 0.0
    assert np.isnan(book.hmean_percent(rows.assign(auc=[0.5, np.nan])))


def test_dev_vs_eval_and_types_of():
    import numpy as np
    import pandas as pd

    sections = pd.DataFrame({"variant": "proposed", "machine": ["ToyCar"] * 2 + ["fan"] * 2,
                             "role": ["dev", "eval"] * 2, "AUC": [80.0, 60.0, 90.0, 70.0],
                             "pAUC": [80.0, 60.0, 45.0, np.nan]})
    table = book.dev_vs_eval({"tables": {"sections": sections}})
    assert list(table.index) == ["ToyCar", "fan"]  # as the sections table lists them
    assert table.loc["ToyCar"].tolist() == [80.0, 60.0]
    assert table.loc["fan", "sections 00-02 (selection)"] == pytest.approx(60.0)  # hmean of 90 and 45
    assert np.isnan(table.loc["fan", "sections 03-05 (reported)"])
    assert book.types_of({"manifest": {"machine_types": ["ToyCar", "drill", "fan"]}}) == ["fan", "ToyCar", "drill"]
    own = pd.DataFrame({"variant": "proposed", "machine": "uav", "role": ["dev", "eval", "eval", "eval"],
                        "section": [0, 3, 4, 5], "AUC": 90.0, "pAUC": 80.0})
    assert list(book.dev_vs_eval({"tables": {"sections": own}}).columns) == ["section 00 (selection)",
                                                                           "sections 03-05 (reported)"]


def test_paper_analogue_has_the_papers_columns_and_beside_paper_labels_every_source(tmp_path):
    import pandas as pd

    from minasd import paper
    from minasd.metrics import ALL_LABEL

    res = load_committed(_empty_experiment(tmp_path / "exp", tmp_path / "data"))
    res["tables"]["table3"] = pd.DataFrame({"variant": ["wo_h", "proposed", "proposed"],
                                            "machine": ["fan", "fan", ALL_LABEL], "hmean": [55.0, 70.0, 70.0]})
    ours = book.paper_analogue(res, "table3")
    assert list(ours.columns) == paper.COLUMNS and list(ours.index) == ["proposed", "wo_h"]
    assert ours.loc["proposed", "All/Har-mean"] == 70.0 and ours["pump"].isna().all()
    styled = book.beside_paper("III", paper.table3(), [("live", res, ours.rename(index=paper.TABLE3_ROWS))])
    assert styled.data.index.names == ["source", "method"]
    sources = list(dict.fromkeys(styled.data.index.get_level_values("source")))
    assert sources == ["paper: real DCASE 2021 data", book.source_tag("live", res)]
    assert sources[1].startswith("minasd, live: ")
    assert styled.caption.startswith("Table III (paper) beside the Table III analogues")
    assert f"minasd live: {results_label(res)}." in styled.caption


# --------------------------------------------------------------------------------------
# the comparison systems beside the method (chapter 6)
# --------------------------------------------------------------------------------------


def test_paper_analogue_of_table3_can_carry_the_comparison_systems(tmp_path):
    import pandas as pd

    from minasd.metrics import ALL_LABEL

    res = load_committed(_empty_experiment(tmp_path / "exp", tmp_path / "data"))
    res["tables"]["table3"] = pd.DataFrame({"variant": ["wo_h", "proposed"], "machine": ["fan", "fan"],
                                            "hmean": [55.0, 70.0]})
    res["tables"]["table2"] = pd.DataFrame({"variant": ["gmm_meanstd", "proposed", "twfr_gmm", "gmm_meanstd"],
                                            "machine": ["fan", "fan", "fan", ALL_LABEL],
                                            "hmean": [72.0, 70.0, 74.0, 72.0]})
    assert list(book.paper_analogue(res, "table3").index) == ["proposed", "wo_h"]
    both = book.paper_analogue(res, "table3", systems=True)
    assert list(both.index) == ["proposed", "wo_h", "twfr_gmm", "gmm_meanstd"]  # experiment.SYSTEMS order
    assert both.loc["twfr_gmm", "fan"] == 74.0 and both.loc["gmm_meanstd", "All/Har-mean"] == 72.0
    assert list(book.paper_analogue(res, "table2").index) == ["proposed", "twfr_gmm", "gmm_meanstd"]


def test_published_real_data_labels_every_row_with_its_data_metric_and_source():
    from minasd import paper

    t = book.published_real_data()
    assert list(t.columns) == [*paper.COLUMNS, "metric", "data", "source"]
    assert len(t) == len(paper.table2()) + len(paper.published_systems())
    assert t[["metric", "data", "source"]].notna().all().all() and (t["data"].str.startswith("real DCASE 202")).all()
    ours = t.loc["Proposed method (the paper)"]
    assert ours["All/Har-mean"] == 69.42 and "sections 03-05" in ours["data"] and "Table II" in ours["source"]
    ae = t.loc["official DCASE 2021 autoencoder"]
    assert ae["valve"] == 54.4 and "sections 00-02" in ae["data"] and ae["metric"].startswith("AUC")
    assert "DCASE 2022" in t.loc["TWFR-GMM", "data"] and t.loc["TWFR-GMM", ["pump", "All/Har-mean"]].isna().all()


def _system_results(seed: int, kept: bool = False) -> dict:
    """A results dict (as load_results gives) with the comparison systems' records of two types."""
    def ae(m):
        return {"run": None, "cpu_s": 100.0 + seed, "models": [
            {"group": g, "threshold": {"value": 7.5, "method": "gamma", "q": 0.9},
             "decisions": {str(s): {"tp": 60, "fp": 10, "fn": 40, "tn": 90, "precision": 60 / 70, "recall": 0.6,
                                    "f1": 0.7} for s in secs}} for g, secs in (("dev", (0, 1, 2)), ("eval", (3, 4, 5)))]}

    types = {}
    for m, k in (("fan", 2), ("ToyCar", 4)):
        rec = {"variants": {
            "proposed": {"training": {"train_seconds": 300.0 + 10 * seed}},
            "ae_dcase2021": ae(m),
            "twfr_gmm": {"selected": {"k": k, "r": 0.5, "dev_hmean": 0.8, "how": "dev"}, "cpu_s": 20.0},
            "gmm_meanstd": {"cpu_s": 10.0 * (seed + 1)}}}
        if kept:
            rec["kept"] = {"variants": ["proposed"], "finished_at": "2026-12-02T01:16:21+0000"}
        types[m] = rec
    return {"manifest": {"machine_types": ["ToyCar", "fan"]}, "types": types}


def test_twfr_choices_ae_decisions_and_the_cost_table_read_the_type_records():
    runs = {0: _system_results(0, kept=True), 1: _system_results(1)}
    choices = book.twfr_choices(runs)
    assert list(choices.index) == [("fan", 0), ("ToyCar", 0), ("fan", 1), ("ToyCar", 1)]  # the paper's type order
    assert choices.loc[("ToyCar", 1), "k"] == 4 and choices.loc[("fan", 0), "dev hmean [%]"] == pytest.approx(80.0)
    dec = book.ae_decisions(runs[0])
    assert len(dec) == 2 * 6 and list(dec.index[0]) == ["fan", "dev", "00"]
    assert dec.loc[("ToyCar", "eval", "05"), "threshold"] == 7.5 and dec["how"].iloc[0] == "gamma q=0.9"
    cost = book.cost_table(runs)
    assert list(cost.index) == ["fan", "ToyCar", "all types (sum)"]
    assert cost.loc["fan", "GMM on log-mel mean/std: CPU s (features, fits, scoring)"] == pytest.approx(15.0)
    assert cost.loc["fan", "proposed (serial two-BCE): training, wall s (chosen run)"] == pytest.approx(305.0)
    assert cost.loc["all types (sum)", "DCASE 2021 autoencoder: CPU s (features, training, scoring)"] == \
        pytest.approx(2 * 100.5)
    note = book.kept_note(runs)
    assert note.startswith("2 type records (seed, type) kept the method's variants") and "2026-12-02" in note
    assert book.kept_note({1: runs[1]}) == ""
    empty = {0: {"manifest": {"machine_types": ["fan"]}, "types": {"fan": {"variants": {}}}}}
    assert book.twfr_choices(empty).empty and book.ae_decisions(empty[0]).empty and book.cost_table(empty).empty


def test_every_chapter_that_shows_a_figure_turns_on_the_inline_backend():
    """``display(fig)`` of a matplotlib Figure renders as an image only with the inline backend on;
    without it the executed chapter shows the text ``<Figure size ...>`` (chapter 13 once did)."""
    root = Path(__file__).resolve().parents[1] / "book"
    for path in sorted(root.glob("ch*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
                         if c["cell_type"] == "code")
        if "viz.plot_" in code or "display(fig" in code or "plt." in code:
            assert "%matplotlib inline" in code, f"{path.name} draws figures without %matplotlib inline"
