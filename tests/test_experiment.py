"""The protocol: selection on sections 00-02 only, a micro experiment, resume, schema checks."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from minasd.selection import select_on_dev
from minasd.studies.experiment import (DEFAULT_GRID_LAM, DEFAULT_GRID_P, TABLE_COLUMNS, experiment, load_results,
                               summary_table)

# ---- selection logic on fake scores -------------------------------------------------


def _rows(cands):
    """cands: (lam, kind, p) -> (dev score, eval score); every section gets auc = pauc = score."""
    rows = []
    for (lam, kind, p), (dev, ev) in cands.items():
        rows += [dict(lam=lam, kind=kind, p=p, section=s, auc=dev, pauc=dev) for s in (0, 1, 2)]
        rows += [dict(lam=lam, kind=kind, p=p, section=s, auc=ev, pauc=ev) for s in (3, 4, 5)]
    return rows


def test_selects_on_dev_sections_even_when_eval_prefers_another():
    rows = _rows({(0.1, "gmm", 2): (0.70, 0.95), (10.0, "gmm", 16): (0.90, 0.60), (1.0, "lof", 8): (0.80, 0.99)})
    chosen, table = select_on_dev(rows)
    assert chosen == {"lam": 10.0, "kind": "gmm", "p": 16}
    assert [r["chosen"] for r in table] == [False, True, False]
    assert table[1]["dev_hmean"] == pytest.approx(0.90) and table[1]["n_dev_sections"] == 3


def test_selection_skips_invalid_candidates_and_breaks_ties_by_grid_order():
    rows = _rows({(1.0, "gmm", 1): (0.8, 0.5), (1.0, "gmm", 2): (0.8, 0.9), (1.0, "gmm", 64): (0.99, 0.99)})
    for r in rows:
        if r["p"] == 64:
            r.update(auc=None, pauc=None, skipped="section 00: GMM with p=64 needs 64 segments")
    chosen, table = select_on_dev(rows)
    assert chosen["p"] == 1  # tie with p=2: the first in grid order
    assert table[2]["dev_hmean"] is None and "p=64" in table[2]["skipped"]
    with pytest.raises(ValueError, match="development section"):
        select_on_dev([r for r in rows if r["section"] >= 3])  # no dev rows: nothing to select on


def test_selection_scores_a_zero_auc_as_worst_not_invalid():
    """A development AUC of 0 (3 + 3 clips can give it) makes the harmonic mean 0: the candidate stays
    valid, so selection never falls back to a Table I p that the held-out clips cannot fit."""
    rows = _rows({(10.0, "gmm", 1): (0.8, 0.5), (10.0, "gmm", 2): (0.8, 0.5)})
    for r in rows:
        if r["section"] == 2:
            r.update(auc=0.0)
    chosen, table = select_on_dev(rows)
    assert chosen == {"lam": 10.0, "kind": "gmm", "p": 1}
    assert [r["dev_hmean"] for r in table] == [0.0, 0.0] and not any(r["skipped"] for r in table)


def test_summary_table_uses_only_sections_03_to_05():
    recs = [dict(variant="proposed", machine="fan", section=s, auc=a, pauc=p)
            for s, a, p in ((0, 0.01, 0.01), (3, 0.5, 0.5), (4, 1.0, 1.0), (5, 1.0, 0.5))]
    rows = summary_table(recs, ["proposed"])
    fan = next(r for r in rows if r["machine"] == "fan")
    assert fan["AUC"] == pytest.approx(100 * 3 / (2 + 1 + 1))  # harmonic mean of 0.5, 1, 1
    assert fan["hmean"] == pytest.approx(100 * 6 / (2 + 1 + 1 + 2 + 1 + 2))
    assert fan["note"] == ""
    assert [r["machine"] for r in rows] == ["fan", "All"]
    assert rows[1]["hmean"] == pytest.approx(fan["hmean"]) and rows[1]["note"] == "over fan"


def _recs(variant, machine, secs, value=0.8):
    return [dict(variant=variant, machine=machine, section=s, auc=value, pauc=value) for s in secs]


def test_summary_table_reports_a_type_only_over_all_test_sections():
    recs = (_recs("proposed", "fan", (0, 1, 2, 3, 4, 5), 0.8) + _recs("proposed", "pump", (0, 3, 4), 0.5)
            + _recs("proposed", "valve", (0, 1, 2), 0.9) + _recs("proposed", "ToyCar", (3, 4), 0.7)
            + [dict(variant="proposed", machine="ToyCar", section=5, auc=0.0, pauc=0.5)])
    rows = {r["machine"]: r for r in summary_table(recs, ["proposed"])}
    assert list(rows) == ["fan", "pump", "valve", "ToyCar", "All"]
    assert rows["fan"]["hmean"] == pytest.approx(80.0) and rows["fan"]["note"] == ""
    # incomplete types: a row that says why, no number
    assert rows["pump"]["AUC"] is rows["pump"]["pAUC"] is rows["pump"]["hmean"] is None
    assert rows["pump"]["note"] == "section 05 missing: not reported"
    assert rows["valve"]["hmean"] is None and rows["valve"]["note"] == "sections 03, 04, 05 missing: not reported"
    # an AUC of 0 is a result, the worst (metrics.hmean_or_none): the type's figures that contain it are 0
    assert rows["ToyCar"]["hmean"] == rows["ToyCar"]["AUC"] == 0.0 and rows["ToyCar"]["pAUC"] > 0
    assert rows["ToyCar"]["note"] == "AUC or pAUC of 0 in 05"
    # All: over the complete types only, and it says which it left out
    assert rows["All"]["hmean"] == 0.0
    assert rows["All"]["note"] == "over fan, ToyCar; left out (incomplete): pump, valve"
    # a type the experiment ran but with no row of this variant at all
    rows = {r["machine"]: r for r in summary_table(recs, ["proposed"], machines=["fan", "gearbox"])}
    assert rows["gearbox"]["note"] == "sections 03, 04, 05 missing: not reported"
    assert rows["All"]["note"] == "over fan; left out (incomplete): gearbox"
    # no complete type: All is not reported either
    rows = summary_table(_recs("proposed", "pump", (3, 4)), ["proposed"])
    assert rows[-1]["machine"] == "All" and rows[-1]["hmean"] is None and "not reported" in rows[-1]["note"]
    with pytest.raises(ValueError, match="fan section 03 appears twice"):
        summary_table(_recs("proposed", "fan", (3, 3, 4, 5)), ["proposed"])


def test_grid_p_argument_parsing():
    from minasd.studies.experiment import _parse_grid_p

    assert _parse_grid_p(["gmm:1,2,4", "lof:8"]) == {"gmm": [1, 2, 4], "lof": [8]}
    assert _parse_grid_p(None) is None
    with pytest.raises(ValueError, match="knn:3"):
        _parse_grid_p(["knn:3"])


def test_default_grids_are_the_documented_ones():
    assert DEFAULT_GRID_P == {"gmm": (1, 2, 4, 8, 16, 32, 64), "lof": (4, 8, 16, 32)}
    assert DEFAULT_GRID_LAM == (0.1, 10.0)  # Table I's values (METHOD.md), one grid for every entry point


# ---- a micro experiment -------------------------------------------------------------

KW = dict(machine_types=["fan"], epochs=1, device="cpu", variants=["proposed", "product_only", "wo_h", "gmm_meanstd"],
          grid_p={"gmm": [1, 2, 64], "lof": [4]}, grid_lam=[10.0], workers=1, progress=False,
          train_overrides=dict(batch_size=8, backbone="mobilenetv3_small_050"), tsne_max_target=20,
          tsne_max_other=10)


def _add_target_test_clips(root: Path) -> list[str]:
    """Target-domain test clips (byte copies of source ones) in the development sections of both types."""
    added = []
    for machine in ("fan", "pump"):
        for src in sorted((root / "dev_data" / machine / "source_test").glob("section_0[012]_*_0000_*.wav")):
            dst = src.parent.parent / "target_test" / src.name.replace("_source_test_", "_target_test_")
            dst.parent.mkdir(exist_ok=True)
            shutil.copy2(src, dst)
            added.append(dst.name)
    return added


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    import minasd.studies.experiment as exp_mod
    from minasd.synth import make_dataset

    base = tmp_path_factory.mktemp("exp")
    root = make_dataset(base / "tiny", size="tiny", workers=1, progress=False, machine_types=["fan", "pump"])
    assert _add_target_test_clips(root)
    out = base / "out"
    seen = []  # the other-type clips handed to the t-SNE sample
    real = exp_mod._tsne_sample

    def spy(embs, model_run, other_df, *args, **kw):
        seen.extend(other_df["path"])
        return real(embs, model_run, other_df, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(exp_mod, "_tsne_sample", spy)
        res = experiment(root, out, **KW)
    return root, out, res, seen


def test_micro_experiment_writes_valid_results(micro):
    root, out, res, _ = micro
    again = load_results(out)  # validates every file against the schema
    m = again["manifest"]
    assert m["grids"]["lam"] == [10.0] and m["grids"]["p"] == {"gmm": [1, 2, 64], "lof": [4]}
    assert m["provenance"]["data"]["synthetic"] and m["provenance"]["epochs"]["fan"]["proposed"] == 1
    t2, t3 = again["tables"]["table2"], again["tables"]["table3"]
    assert list(dict.fromkeys(t2.variant)) == ["proposed", "gmm_meanstd"]  # the systems asked, no other
    assert set(t3.variant) == {"proposed", "wo_h", "product_only"}
    assert set(t2.machine) == {"fan", "All"} and t2.hmean.between(0, 100).all()
    assert (t2[t2.machine == "All"].note == "over fan").all()
    secs = again["tables"]["sections"]
    assert set(secs[secs.variant == "proposed"].section) == {"00", "01", "02", "03", "04", "05"}
    sel = again["tables"]["selection"]
    for variant in ("proposed", "product_only"):
        part = sel[sel.variant == variant]
        assert len(part) == 4 and part.chosen.sum() == 1
        assert part[part.p == 64].dev_hmean.isna().all()  # too large for 10 held-out segments: skipped
    assert set(again["tsne"]) == {"fan_proposed", "fan_product_only"}
    tsne = again["tsne"]["fan_proposed"]
    assert tsne["coords"].shape == (30, 2) and (tsne["groups"] == "other types").sum() == 10
    assert set(again["roc"]["fan"]) == {"proposed", "wo_h", "product_only", "gmm_meanstd"}
    assert set(again["roc"]["fan"]["gmm_meanstd"]) == {"00", "01", "02", "03", "04", "05"}
    assert "logs/fan/proposed_lam10.jsonl" in again["logs"]


def test_per_clip_scores_reproduce_the_section_table(micro):
    """results/scores/<type>.csv (the input of minasd.studies.analysis) holds every labelled protocol test clip once per
    variant, and its AUCs are the section table's: the per-clip file and the tables cannot disagree."""
    from minasd.studies.experiment import SCORE_COLUMNS
    from minasd.metrics import auc_pauc

    root, out, res, _ = micro
    sc = res["scores"]
    assert tuple(sc.columns) == SCORE_COLUMNS
    assert set(sc.variant) == {"proposed", "wo_h", "product_only", "gmm_meanstd"} and set(sc.seed) == {0}
    assert not sc["clip"].str.contains("target").any()  # source domain only
    secs = res["tables"]["sections"]
    for (variant, section), part in sc.groupby(["variant", "section"]):
        assert len(part) == 6 and part["clip"].is_unique  # tiny set: 3 normal + 3 anomalous per section
        auc, pauc = auc_pauc(part.label.to_numpy(), part.score.to_numpy())
        row = secs[(secs.variant == variant) & (secs.section == f"{section:02d}")].iloc[0]
        assert row.AUC == pytest.approx(100 * auc) and row.pAUC == pytest.approx(100 * pauc)


def test_experiment_uses_the_protocol_clips_only(micro):
    from minasd.evaluate import load_eval_results

    root, out, res, seen = micro
    assert seen and not any("target" in Path(p).name for p in seen)  # t-SNE's other types: source domain
    ev = load_eval_results(out / "runs" / "fan" / "proposed_lam10")
    secs = res["tables"]["sections"]
    for r in ev["sections"]:
        assert r["n_test"] == 6 and r["n_target_test"] == (2 if r["section"] < 3 else 0)
        row = secs[(secs.variant == "proposed") & (secs.section == f"{r['section']:02d}")].iloc[0]
        assert row.AUC == pytest.approx(100 * r["auc"])  # the table's numbers are the source-domain AUCs


DCASE_NAME = (r"^(anomaly_score|decision_result)_(?P<machine>[A-Za-z]+)_section_(?P<section>\d\d)"
              r"_(?P<domain>source|target)_test\.csv$")


def test_dcase_team_folder_holds_every_types_official_files(micro):
    """OUT/dcase/<variant>/ is a team folder for the official DCASE 2021 evaluator: for every type, section and
    domain with test clips, an anomaly_score_ and a decision_result_ file in the official naming, each equal to the
    chosen run's own file and listing every test clip of that section and domain once."""
    import re

    from minasd.data import index
    from minasd.dcase_files import anomaly_score_filename, decision_filename, read_scores_csv

    root, out, res, _ = micro
    man = json.loads((out / "dcase" / "manifest.json").read_text())
    assert set(man["variants"]) == {"proposed", "product_only"}  # the variants whose runs score and decide
    assert set(man["not_written"]) == {"wo_h", "gmm_meanstd"} and all(man["not_written"].values())
    assert "comparison system" in man["not_written"]["gmm_meanstd"]  # the reason, not only the name
    assert sorted(p.name for p in (out / "dcase").iterdir()) == ["manifest.json", "product_only", "proposed"]
    df = index(root)
    test = df[(df["split"] == "test") & df["machine"].isin(res["manifest"]["machine_types"])]
    expected = {}
    for (machine, section, domain), part in test.groupby(["machine", "section", "domain"]):
        clips = sorted(Path(p).name for p in part["path"])
        expected[anomaly_score_filename(machine, section, domain)] = clips
        expected[decision_filename(machine, section, domain)] = clips
    # fan: sections 00-05 source, 00-02 target (the fixture's target-domain clips)
    assert any("_target_test" in n for n in expected) and len(expected) == 2 * (6 + 3)
    for variant, entry in man["variants"].items():
        team = out / "dcase" / variant
        assert sorted(p.name for p in team.iterdir()) == sorted(expected)
        assert all(re.match(DCASE_NAME, n) for n in expected)
        assert not entry["missing"] and not entry["replaced"] and not entry["removed"]
        chosen = res["types"]["fan"]["variants"][variant]
        assert entry["types"]["fan"]["run"] == chosen["run"] and entry["types"]["fan"]["source"] == "run"
        for name, clips in expected.items():
            assert (team / name).read_bytes() == (out / chosen["run"] / "eval" / "dcase" / name).read_bytes()
            names, values = read_scores_csv(team / name)
            assert sorted(names) == clips  # every clip of the section and domain, once
            if name.startswith("decision_result_"):
                assert set(values) <= {0.0, 1.0}


def test_dcase_team_folder_is_rebuilt_and_says_what_it_changed(micro, tmp_path, capsys):
    """A differing file is replaced and said so, a result file no run writes is removed and said so, other files
    stay; without the runs (a new checkout) the earlier copies are kept, and with none the type is named missing."""
    from minasd.studies.experiment import write_dcase_teams

    root, shared_out, res, _ = micro
    out = tmp_path / "out"
    shutil.copytree(shared_out, out, ignore=shutil.ignore_patterns("checkpoints", "cache"))
    team = out / "dcase" / "proposed"
    run_files = out / res["types"]["fan"]["variants"]["proposed"]["run"] / "eval" / "dcase"
    tampered = team / "anomaly_score_fan_section_03_source_test.csv"
    tampered.write_text("section_03_source_test_normal_0000.wav,0.5\n")
    (team / "decision_result_fan_section_09_source_test.csv").write_text("x.wav,1\n")
    (team / "notes.txt").write_text("mine")
    variants = ["proposed", "product_only", "wo_h", "gmm_meanstd"]
    capsys.readouterr()
    man = write_dcase_teams(out, variants, res["types"], progress=False)
    printed = capsys.readouterr().out
    assert man["variants"]["proposed"]["replaced"] == [tampered.name] and f"{tampered.name} differs" in printed
    assert man["variants"]["proposed"]["removed"] == ["decision_result_fan_section_09_source_test.csv"]
    assert "removed" in printed and (team / "notes.txt").read_text() == "mine"
    assert tampered.read_bytes() == (run_files / tampered.name).read_bytes()
    assert json.loads((out / "dcase" / "manifest.json").read_text()) == man
    before = {p.name: p.read_bytes() for p in team.glob("*_test.csv")}
    shutil.rmtree(out / "runs")  # runs are not published: the copies made from them stay
    man = write_dcase_teams(out, variants, res["types"], progress=False)
    assert man["variants"]["proposed"]["types"]["fan"]["source"] == "kept"
    assert not man["variants"]["proposed"]["removed"]
    assert {p.name: p.read_bytes() for p in team.glob("*_test.csv")} == before
    shutil.rmtree(out / "dcase")
    capsys.readouterr()
    man = write_dcase_teams(out, variants, res["types"], progress=False)
    assert "results.json does not exist" in man["variants"]["proposed"]["missing"]["fan"]
    assert "no files of fan" in capsys.readouterr().out and not list((out / "dcase").glob("*/*.csv"))


def test_resume_trains_nothing(micro, tmp_path):
    """A type record made with another method configuration (here another t-SNE sample size) is not
    reused: the method's part is computed again, its finished runs (same training settings) skipped."""
    root, shared_out, res, _ = micro
    out = tmp_path / "out"
    shutil.copytree(shared_out, out)  # this test deletes and rewrites results: never the shared fixture's
    runs = sorted((out / "runs" / "fan").iterdir())
    stamps = {p / f: (p / f).stat().st_mtime_ns for p in runs for f in ("log.jsonl", "checkpoints/best.pt")}
    stamps.update({f: f.stat().st_mtime_ns for f in (out / "dcase").rglob("*_test.csv")})  # same content: not rewritten
    record = out / "results" / "types" / "fan.json"
    obj = json.loads(record.read_text())
    obj["config_signature"]["tsne_max_target"] = KW["tsne_max_target"] + 1
    record.write_text(json.dumps(obj))
    again = experiment(root, out, **KW)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert "kept" not in again["types"]["fan"]  # not reused: the runs' entries below are this call's
    assert again["types"]["fan"]["runs"] == {"proposed_lam10": {"action": "skipped"},
                                             "product_only_lam10": {"action": "skipped"}}
    assert again["tables"]["table3"].equals(res["tables"]["table3"])
    experiment(root, out, **KW)  # everything up to date: returns at once
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert (shared_out / "results" / "types" / "fan.json").is_file()  # the shared experiment is untouched


METHOD_PART = ["proposed", "product_only", "wo_h"]  # KW's method variants
#: The comparison systems' settings of these tests: 2 autoencoder epochs, 3 TWFR decay values (quick, not the published)
QUICK_SYSTEMS = {"ae_dcase2021": {"epochs": 2}, "twfr_gmm": {"r_grid": (0.0, 0.5, 1.0)}}


def _part(df, variants):
    """The rows of ``variants`` (sections or clip scores) in one order."""
    keys = [c for c in ("variant", "machine", "section", "clip") if c in df.columns]
    return df[df["variant"].isin(variants)].sort_values(keys).reset_index(drop=True)


def _no_method(*args, **kw):
    raise AssertionError("the method was selected and evaluated again")


def _file_stamps(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_adding_comparison_systems_trains_nothing_and_keeps_the_method(micro, tmp_path, monkeypatch):
    """A finished type gains the autoencoder and TWFR-GMM: no file of the method's runs is touched (no
    training, no evaluation), its records, numbers and clip scores are the earlier ones, and each system
    gets its sections, clip scores (which reproduce its AUCs), ROC points, Table II row and DCASE note."""
    import minasd.studies.experiment as exp_mod
    from minasd.metrics import auc_pauc

    root, shared_out, res, _ = micro
    out = tmp_path / "out"
    shutil.copytree(shared_out, out)
    runs_before = _file_stamps(out / "runs")
    assert out / "runs" / "fan" / "proposed_lam10" / "checkpoints" / "best.pt" in runs_before
    monkeypatch.setattr(exp_mod, "_select_and_evaluate", _no_method)
    variants = KW["variants"] + ["ae_dcase2021", "twfr_gmm"]
    again = experiment(root, out, **{**KW, "variants": variants}, system_settings=QUICK_SYSTEMS)
    assert _file_stamps(out / "runs") == runs_before
    ty, ty0 = again["types"]["fan"], res["types"]["fan"]
    assert sorted(ty["kept"]["variants"]) == sorted(METHOD_PART) and ty["kept"]["schema_version"] == 4
    assert "gmm_meanstd_vs_schema3_baseline" not in ty["kept"]
    assert all(ty["variants"][v] == ty0["variants"][v] for v in METHOD_PART) and ty["runs"] == ty0["runs"]
    secs0, secs = res["tables"]["sections"], again["tables"]["sections"]
    pd.testing.assert_frame_equal(_part(secs, METHOD_PART), _part(secs0, METHOD_PART))
    pd.testing.assert_frame_equal(_part(again["scores"], METHOD_PART), _part(res["scores"], METHOD_PART))
    # the GMM on mean/std, computed again with the same seed, gives the same numbers
    pd.testing.assert_frame_equal(_part(secs, ["gmm_meanstd"]), _part(secs0, ["gmm_meanstd"]))
    assert set(again["tsne"]) == set(res["tsne"]) and "logs/fan/proposed_lam10.jsonl" in again["logs"]
    for v in ("ae_dcase2021", "twfr_gmm"):
        assert sorted(secs[secs.variant == v].section) == ["00", "01", "02", "03", "04", "05"]
        assert set(again["roc"]["fan"][v]) == {"00", "01", "02", "03", "04", "05"}
        for section, part in again["scores"][again["scores"].variant == v].groupby("section"):
            auc, _ = auc_pauc(part.label.to_numpy(), part.score.to_numpy())
            assert len(part) == 6 and secs[(secs.variant == v) & (secs.section == f"{section:02d}")].AUC.item() \
                == pytest.approx(100 * auc)
        assert ty["variants"][v]["run"] is None and ty["variants"][v]["cpu_s"] >= 0
    assert ty["variants"]["ae_dcase2021"]["training"]["epochs_done"] == 2
    assert {m["group"] for m in ty["variants"]["ae_dcase2021"]["models"]} == {"dev", "eval"}
    sel = ty["variants"]["twfr_gmm"]["selected"]
    assert sel["k"] in (1, 2, 4, 8) and sel["r"] in (0.0, 0.5, 1.0) and sel["how"]
    assert ty["variants"]["twfr_gmm"]["candidates"] == 3 * 4  # r x k, chosen on sections 00-02
    assert list(dict.fromkeys(again["tables"]["table2"].variant)) == ["proposed", "ae_dcase2021", "twfr_gmm",
                                                                       "gmm_meanstd"]
    man = json.loads((out / "dcase" / "manifest.json").read_text())
    assert set(man["variants"]) == {"proposed", "product_only"}
    assert set(man["not_written"]) == {"wo_h", "ae_dcase2021", "twfr_gmm", "gmm_meanstd"}
    assert all("comparison system" in man["not_written"][v] for v in ("ae_dcase2021", "twfr_gmm", "gmm_meanstd"))
    monkeypatch.setattr(exp_mod, "_add_system", _no_method)  # the same call again: everything up to date
    experiment(root, out, **{**KW, "variants": variants}, system_settings=QUICK_SYSTEMS)


def test_a_schema3_record_lends_its_method_part_and_its_baseline_is_checked(micro, tmp_path, monkeypatch):
    """A record of results schema 3 (the GMM on mean/std then called "baseline") keeps its method
    variants; gmm_meanstd is computed and compared with the old baseline section by section (same data,
    same code: no difference); nothing named "baseline" is left."""
    import minasd.studies.experiment as exp_mod

    root, shared_out, res, _ = micro
    out = tmp_path / "out"
    shutil.copytree(shared_out, out)
    res_dir = out / "results"
    obj = json.loads((res_dir / "types" / "fan.json").read_text())  # as schema 3 wrote it
    obj["schema_version"] = 3
    for r in obj["sections"]:
        r["variant"] = "baseline" if r["variant"] == "gmm_meanstd" else r["variant"]
    obj["config_signature"]["variants"] = ["baseline" if v == "gmm_meanstd" else v for v in KW["variants"]]
    obj["variants"]["baseline"] = obj["variants"].pop("gmm_meanstd")
    (res_dir / "types" / "fan.json").write_text(json.dumps(obj))
    scores = pd.read_csv(res_dir / "scores" / "fan.csv")
    scores.assign(variant=scores["variant"].replace("gmm_meanstd", "baseline")).to_csv(res_dir / "scores" / "fan.csv",
                                                                                       index=False)
    roc = json.loads((res_dir / "roc" / "fan.json").read_text())
    del roc["gmm_meanstd"]  # schema 3 kept no ROC points of the baseline
    (res_dir / "roc" / "fan.json").write_text(json.dumps(roc))
    monkeypatch.setattr(exp_mod, "_select_and_evaluate", _no_method)
    again = experiment(root, out, **KW)
    ty = again["types"]["fan"]
    assert ty["schema_version"] == exp_mod.RESULTS_SCHEMA_VERSION == 4 and ty["kept"]["schema_version"] == 3
    assert ty["kept"]["gmm_meanstd_vs_schema3_baseline"] == {"sections": [0, 1, 2, 3, 4, 5], "max_abs_diff": 0.0}
    names = set(again["tables"]["sections"].variant) | set(again["scores"].variant) | set(ty["variants"])
    assert "baseline" not in names and "gmm_meanstd" in names
    pd.testing.assert_frame_equal(_part(again["tables"]["sections"], KW["variants"]),
                                  _part(res["tables"]["sections"], KW["variants"]))
    pd.testing.assert_frame_equal(_part(again["scores"], KW["variants"]), _part(res["scores"], KW["variants"]))
    assert set(again["roc"]["fan"]) == set(res["roc"]["fan"])  # the GMM's ROC points computed again


def test_a_record_is_reused_only_when_the_method_configuration_is_the_same():
    """_reusable: the comparison systems (which, and their settings) may differ; any setting of the
    method (epochs, seed, grids, training overrides, t-SNE sample, which method variants) may not."""
    from minasd.studies.experiment import _reusable, _signature

    cfg = {k: v for k, v in KW.items() if k in ("variants", "grid_p", "grid_lam", "epochs", "train_overrides",
                                                "tsne_max_target", "tsne_max_other")}
    cfg["seed"] = 0
    old = {"schema_version": 4, "config_signature": _signature(cfg)}
    assert _reusable(old, cfg) is old
    for same in ({"variants": KW["variants"] + ["ae_dcase2021"]}, {"variants": METHOD_PART},
                 {"system_settings": {"ae_dcase2021": {"epochs": 2}}}):
        assert _reusable(old, {**cfg, **same}) is old, same
    assert _reusable({**old, "schema_version": 3}, cfg) is not None
    for version in (2, None):
        assert _reusable({**old, "schema_version": version}, cfg) is None
    for other in ({"epochs": 2}, {"seed": 1}, {"grid_lam": [0.1, 10.0]}, {"grid_p": {"gmm": [1], "lof": [4]}},
                  {"train_overrides": {**KW["train_overrides"], "batch_size": 16}}, {"tsne_max_other": 5},
                  {"variants": ["proposed", "wo_h", "gmm_meanstd"]}, {"variants": ["gmm_meanstd", "twfr_gmm"]}):
        assert _reusable(old, {**cfg, **other}) is None, other
    assert _reusable(None, cfg) is None

def _drop_checksums(results_dir):
    """A manifest as earlier minasd wrote it (no checksums): the remaining checks must still hold."""
    man = json.loads((results_dir / "manifest.json").read_text())
    del man["checksums"]
    (results_dir / "manifest.json").write_text(json.dumps(man))


def test_a_record_withdrawn_while_the_records_are_listed_is_skipped(tmp_path, monkeypatch):
    """Another job withdraws a type's record (it starts that type again) between the listing of
    types/*.json and the reading: the readers leave that type out instead of failing (a race seen in
    a two-job `minasd results`)."""
    import minasd.studies.experiment as exp_mod

    types = tmp_path / "results" / "types"
    types.mkdir(parents=True)
    for m, version in (("fan", exp_mod.RESULTS_SCHEMA_VERSION), ("pump", 3)):
        (types / f"{m}.json").write_text(json.dumps({"machine_type": m, "schema_version": version}))
    real_read = Path.read_text

    def withdrawn_meanwhile(self, *a, **kw):
        if self.name == "pump.json" and self.exists():
            self.unlink()  # the other job's withdrawal, right after the listing
        return real_read(self, *a, **kw)

    monkeypatch.setattr(Path, "read_text", withdrawn_meanwhile)
    assert list(exp_mod._reusable_records(tmp_path / "results")) == ["fan"]
    assert list(exp_mod._finished_types(tmp_path / "results")) == ["fan"]


def test_load_results_rejects_mismatched_files(micro, tmp_path):
    out = micro[1]
    bad = tmp_path / "results"
    shutil.copytree(out / "results", bad)
    csv = bad / "table2.csv"
    csv.write_text(csv.read_text().replace("hmean", "h_mean", 1))
    with pytest.raises(ValueError, match="table2.csv differs from the file .*manifest.json was written with"):
        load_results(bad)
    _drop_checksums(bad)
    with pytest.raises(ValueError, match="table2.csv has columns"):
        load_results(bad)
    shutil.rmtree(bad)
    shutil.copytree(out / "results", bad)
    man = json.loads((bad / "manifest.json").read_text())
    man["schema_version"] = 999
    (bad / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="version 999"):
        load_results(bad)
    shutil.rmtree(bad)
    shutil.copytree(out / "results", bad)
    (bad / "tsne" / "fan_proposed.npz").unlink()
    with pytest.raises(FileNotFoundError, match="fan_proposed.npz"):
        load_results(bad)
    shutil.rmtree(bad)
    shutil.copytree(out / "results", bad)
    t2 = pd.read_csv(bad / "table2.csv")
    t2.loc[0, ["hmean", "note"]] = [None, None]  # a figure missing without a word
    t2.to_csv(bad / "table2.csv", index=False)
    _drop_checksums(bad)
    with pytest.raises(ValueError, match="no hmean and no note"):
        load_results(bad)
    assert tuple(TABLE_COLUMNS["table2"]) == ("variant", "machine", "AUC", "pAUC", "hmean", "note")


def test_tables_left_half_rewritten_by_an_interruption_are_refused_then_rewritten(micro, tmp_path, monkeypatch):
    """Interrupted between a table's CSV and its JSON (here: a rerun with fewer variants, which changes
    the selection table): the reader is told, by the manifest's checksums, instead of reading a pair from
    two moments; the next run rewrites a consistent set."""
    import minasd.studies.experiment as exp_mod

    root, out = micro[0], tmp_path / "out"
    shutil.copytree(micro[1], out)
    write_json = exp_mod.atomic_write_json

    def interrupted(path, obj, *a, **kw):
        if Path(path).name == "selection.json":
            raise KeyboardInterrupt("interrupted between selection.csv and selection.json")
        return write_json(path, obj, *a, **kw)

    kw = {**KW, "variants": ["proposed", "gmm_meanstd"]}
    monkeypatch.setattr(exp_mod, "atomic_write_json", interrupted)
    with pytest.raises(KeyboardInterrupt):
        experiment(root, out, **kw)
    monkeypatch.setattr(exp_mod, "atomic_write_json", write_json)
    # the rerun changed sections and selection: the first listed file that no longer matches is named
    with pytest.raises(ValueError, match=r"(sections|selection)\.csv differs from the file .* was written with: "
                                         "the tables were left half rewritten"):
        load_results(out)
    res = experiment(root, out, **kw)
    assert set(res["tables"]["selection"]["variant"]) == {"proposed"}
    assert res["types"]["fan"]["runs"] == {"proposed_lam10": {"action": "skipped"}}  # nothing trained again
