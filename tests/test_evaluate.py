"""evaluate_run on a tiny trained run: files, metrics, DCASE CSVs, cache, thresholds, bad input.

The run is trained once per session (tiny synthetic set, fan + pump, 1 epoch, the small
``mobilenetv3_small_050`` encoder that the trainer's own tests use for CPU speed) and
copied for tests that change it.  Numbers are not checked for quality: 1 epoch on 8 clips
per section learns little; the tests check properties (ranges, counts, consistency).
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from minasd.evaluate import (EVAL_SCHEMA_VERSION, evaluate_run, heldout_threshold, load_eval_results,
                             machine_score, section_role)
from minasd.inlier import fit_inlier
from minasd.metrics import anomaly_score_filename, decision_filename, read_scores_csv

from conftest import shared_trained_run  # noqa: E402  (one trained run per session)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return shared_trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory):
    root, run = trained
    copy = tmp_path_factory.mktemp("eval") / "run_fan"
    shutil.copytree(run, copy)
    res = evaluate_run(copy, p=2, device="cpu", progress=False)
    return root, copy, res


def _copy(evaluated, tmp_path: Path) -> Path:
    """A not-yet-evaluated copy of the run that keeps the embedding cache (no re-extraction)."""
    dst = tmp_path / "run"
    shutil.copytree(evaluated[1], dst, ignore=shutil.ignore_patterns("inlier", "dcase", "*.csv", "*.json"))
    for name in ("run.json", "split.json", "norm_stats.json"):
        shutil.copy2(evaluated[1] / name, dst / name)
    return dst


def test_writes_every_file_with_valid_metrics(evaluated):
    root, run, res = evaluated
    for rel in ("eval/results.json", "eval/sections.csv", "eval/scores.csv", "eval/detector.json",
                "eval/cache/heldout.npz", "eval/cache/test.npz", "inlier/manifest.json", "inlier/section_03.npz"):
        assert (run / rel).is_file(), rel
    stored = load_eval_results(run)
    assert stored["schema_version"] == EVAL_SCHEMA_VERSION and stored["sections"] == res["sections"]
    assert [r["section"] for r in res["sections"]] == [0, 1, 2, 3, 4, 5]
    assert [r["role"] for r in res["sections"]] == ["dev"] * 3 + ["eval"] * 3
    for r in res["sections"]:
        assert r["n_normal"] == 3 and r["n_anomaly"] == 3 and r["n_unlabelled"] == 0  # eval labels merged
        for k in ("auc", "pauc", "auc_wo_h", "pauc_wo_h", "auc_machine", "pauc_machine"):
            assert 0.0 <= r[k] <= 1.0, (k, r)
        roc = res["roc"]["h"][f"{r['section']:02d}"]
        assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0 and np.all(np.diff(roc["fpr"]) >= 0)
    assert res["inlier"] == {"kind": "gmm", "p": 2, "aggregation": "mean_above_median", "seed": 0,
                             "source": "argument"}
    prov = res["provenance"]
    assert prov["data"]["synthetic"] is True and prov["data"]["size"] == "tiny" and prov["data"]["seed"] == 0
    assert prov["epochs_trained"] == 1 and prov["checkpoint"] == {"which": "best", "epoch": 1}
    assert prov["device"] == "cpu" and prov["duration_s"] > 0 and prov["minasd_version"]
    sections = pd.read_csv(run / "eval" / "sections.csv")
    assert len(sections) == 6 and np.allclose(sections["auc"], [r["auc"] for r in res["sections"]])


def test_dcase_csvs_have_one_row_per_test_clip(evaluated):
    from minasd.data import index

    root, run, res = evaluated
    df = index(root)
    for s in range(6):
        clips = df[(df.machine == "fan") & (df.split == "test") & (df.section == s)]
        names, scores = read_scores_csv(run / "eval" / "dcase" / anomaly_score_filename("fan", s))
        dnames, decisions = read_scores_csv(run / "eval" / "dcase" / decision_filename("fan", s))
        assert sorted(names) == sorted(Path(p).name for p in clips.path) and names == dnames
        assert np.isfinite(scores).all() and set(np.unique(decisions)) <= {0.0, 1.0}
        thr = next(r["threshold"] for r in res["sections"] if r["section"] == s)
        np.testing.assert_array_equal(decisions, (scores > thr).astype(float))
    assert names[0].startswith("section_05_source_test_0")  # anonymised evaluation names, no folders


def test_refuses_to_overwrite_then_reuses_cache(evaluated):
    root, run, res = evaluated
    with pytest.raises(FileExistsError, match="overwrite"):
        evaluate_run(run, p=2, device="cpu", progress=False)
    with pytest.raises(ValueError, match="p=64"):  # p checked at fit time, before anything is written
        evaluate_run(run, p=64, device="cpu", overwrite=True, progress=False)
    assert load_eval_results(run)["inlier"]["p"] == 2  # the failed call left the old results alone
    again = evaluate_run(run, inlier="lof", p=3, device="cpu", overwrite=True, progress=False)
    assert again["provenance"]["embeddings_extracted"] is False  # a grid over p does not re-extract
    assert again["inlier"]["aggregation"] == "mean"
    assert json.loads((run / "inlier" / "manifest.json").read_text())["kind"] == "lof"
    evaluate_run(run, p=2, device="cpu", overwrite=True, progress=False)  # restore for the other tests


def test_p_too_large_names_section_and_counts(evaluated, tmp_path):
    run = _copy(evaluated, tmp_path)
    with pytest.raises(ValueError, match=r"section 00.*p=11.*got 10"):
        evaluate_run(run, inlier="gmm", p=11, device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"section 00.*p=10 neighbours"):
        evaluate_run(run, inlier="lof", p=10, device="cpu", progress=False)
    assert not (run / "eval" / "results.json").exists()


def test_section_without_heldout_clips(evaluated, tmp_path):
    run = _copy(evaluated, tmp_path)
    split = json.loads((run / "split.json").read_text())
    split["val"] = [p for p in split["val"] if "section_01_" not in p]
    (run / "split.json").write_text(json.dumps(split))
    with pytest.raises(ValueError, match="section 01 has no held-out clips"):
        evaluate_run(run, p=2, device="cpu", progress=False)


def test_missing_run_file_and_unknown_section(evaluated, tmp_path):
    run = _copy(evaluated, tmp_path)
    with pytest.raises(ValueError, match=r"section\(s\) \['07'\].*knows"):
        evaluate_run(run, p=2, sections=[7], device="cpu", progress=False)
    (run / "norm_stats.json").unlink()
    with pytest.raises(FileNotFoundError, match="norm_stats.json.*minasd train"):
        evaluate_run(run, p=2, device="cpu", progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_run(tmp_path / "nowhere", device="cpu", progress=False)


def test_threshold_is_the_90th_percentile_of_out_of_fold_heldout_scores():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(10, 4, 3))  # 10 held-out clips, S = 4, D = 3
    final = fit_inlier("gmm", 1, emb)
    t = heldout_threshold("gmm", 1, emb, "mean", final)
    assert t["method"] == "out_of_fold_5" and t["n_clips"] == 10
    assert t["value"] == pytest.approx(np.percentile(t["heldout_scores"], 90))
    # out-of-fold scores of held-out clips are higher (less optimistic) than in-sample ones on average
    assert np.mean(t["heldout_scores"]) > final.score(emb).mean()
    one = heldout_threshold("gmm", 1, emb[:1], "mean", fit_inlier("gmm", 1, emb[:1]))
    assert one["method"] == "in_sample" and one["n_clips"] == 1


def test_machine_score_and_roles():
    s = machine_score(np.array([[-10.0, -10.0], [0.0, 0.0], [10.0, 10.0]]))
    assert s[1] == pytest.approx(0.5) and s[0] > s[1] > s[2] and ((s >= 0) & (s <= 1)).all()
    assert [section_role(s) for s in (0, 2, 3, 5, 7)] == ["dev", "dev", "eval", "eval", "other"]
