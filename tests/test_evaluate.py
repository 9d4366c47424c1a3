"""evaluate_run on a tiny trained run: files, metrics, DCASE CSVs, cache, thresholds, bad input.

The run is trained once per session (tiny synthetic set, fan + pump, 1 epoch, the small
``mobilenetv3_small_050`` encoder that the trainer's own tests use for CPU speed) and
copied for every test that changes it (the shared run and the module fixtures are never
modified).  Numbers are not checked for quality: 1 epoch on 8 clips per section learns
little; the tests check properties (ranges, counts, consistency).
"""
import csv
import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import minasd.evaluate as evaluate_mod
from minasd.evaluate import (evaluate_run, heldout_threshold, load_embeddings, load_eval_results, machine_score,
                             section_role, split_test_clips)
from minasd.inlier import fit_inlier
from minasd.dcase_files import anomaly_score_filename, decision_filename, read_scores_csv
from minasd.io_utils import sha256_file
from minasd.metrics import auc_pauc
from minasd.runs import EVAL_SCHEMA_VERSION

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
                             "source": "argument", "table1": False}  # Table I's fan p is 16
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
        names, scores = read_scores_csv(run / "eval" / "dcase" / anomaly_score_filename("fan", s, "source"))
        dnames, decisions = read_scores_csv(run / "eval" / "dcase" / decision_filename("fan", s, "source"))
        assert sorted(names) == sorted(Path(p).name for p in clips.path) and names == dnames
        assert np.isfinite(scores).all() and set(np.unique(decisions)) <= {0.0, 1.0}
        thr = next(r["threshold"] for r in res["sections"] if r["section"] == s)
        np.testing.assert_array_equal(decisions, (scores > thr).astype(float))
    assert names[0].startswith("section_05_source_test_0")  # anonymised evaluation names, no folders


def test_refuses_to_overwrite_then_reuses_cache(evaluated, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(evaluated[1], run)  # this test rewrites the results: never the shared fixture's
    with pytest.raises(FileExistsError, match="overwrite"):
        evaluate_run(run, p=2, device="cpu", progress=False)
    with pytest.raises(ValueError, match="p=64"):  # p checked at fit time, before anything is written
        evaluate_run(run, p=64, device="cpu", overwrite=True, progress=False)
    assert load_eval_results(run)["inlier"]["p"] == 2  # the failed call left the old results alone
    again = evaluate_run(run, inlier="lof", p=3, device="cpu", overwrite=True, progress=False)
    assert again["provenance"]["embeddings_extracted"] is False  # a grid over p does not re-extract
    assert again["inlier"]["aggregation"] == "mean"
    assert json.loads((run / "inlier" / "manifest.json").read_text())["kind"] == "lof"
    assert load_eval_results(evaluated[1])["inlier"]["kind"] == "gmm"  # the shared evaluation is untouched


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


# ---- the domain rule, labels from the current index, the DCASE 2021 evaluator's format ----------


def _fan_only_copy(root: Path, dst: Path, ground_truth: bool) -> Path:
    """A copy of the tiny data root with fan only (and, if asked, its ground-truth CSVs)."""
    skip = ["pump", ".minasd_store"] + ([] if ground_truth else ["ground_truth"])
    shutil.copytree(root, dst, ignore=shutil.ignore_patterns(*skip))
    return dst


@pytest.fixture(scope="module")
def domains(trained, tmp_path_factory):
    """A fan data root with target-domain clips, evaluated twice.

    Target-domain test clips are byte copies of source-domain test clips of the same
    section (1 per development section, a normal and an anomalous one per evaluation
    section, anonymised like DCASE 2021's), and a target-domain training clip is listed in
    the run's held-out clips (as a run trained before the domain rule could).  The first
    evaluation runs before the ground-truth CSVs exist (a partial download: sections
    03-05 unlabelled), the second after they were added.
    """
    from minasd.data import index

    root, run = trained
    base = tmp_path_factory.mktemp("domains")
    data = _fan_only_copy(root, base / "data", ground_truth=False)
    src = index(root)
    src = src[(src.machine == "fan") & (src.split == "test")]
    twin = {}  # target clip (relative path) -> the source clip it copies
    gt_rows = {}  # section -> rows of its target-domain ground truth
    for s in range(6):
        part = src[src.section == s].sort_values("path")
        picks = [part[part.label == 0].iloc[0]] + ([part[part.label == 1].iloc[0]] if s >= 3 else [])
        for i, row in enumerate(picks):
            if s < 3:
                rel = f"dev_data/fan/target_test/section_{s:02d}_target_test_normal_{i:04d}.wav"
            else:
                rel = f"eval_data/fan/target_test/section_{s:02d}_target_test_{i:04d}.wav"
                gt_rows.setdefault(s, []).append(f"{Path(rel).name},{int(row.label)}")
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(row.path, data / rel)
            twin[rel] = Path(row.path).relative_to(root).as_posix()
    train_src = next((data / "dev_data/fan/train").glob("section_00_source_train_normal_*.wav"))
    target_train = "dev_data/fan/train/section_00_target_train_normal_0000.wav"
    shutil.copy2(train_src, data / target_train)

    copy = base / "run_fan"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("eval", "inlier"))
    split = json.loads((copy / "split.json").read_text())
    split["val"] = split["val"] + [target_train]
    (copy / "split.json").write_text(json.dumps(split))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no ground-truth CSV" and "held-out clip outside the protocol"
        first = evaluate_run(copy, data_root=data, p=2, device="cpu", progress=False)
    gt = data / "ground_truth"
    shutil.copytree(root / "ground_truth", gt, ignore=shutil.ignore_patterns("*pump*"))
    for s, rows in gt_rows.items():
        (gt / f"ground_truth_fan_section_{s:02d}_target_test.csv").write_text("\n".join(rows) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        second = evaluate_run(copy, data_root=data, p=2, device="cpu", overwrite=True, progress=False)
    return {"data": data, "run": copy, "first": first, "second": second, "twin": twin,
            "target_train": target_train}


def test_labels_come_from_the_current_index_not_the_cache(domains):
    first = {r["section"]: r for r in domains["first"]["sections"]}
    second = {r["section"]: r for r in domains["second"]["sections"]}
    for s in (3, 4, 5):  # no ground truth yet: unlabelled, no AUC
        assert first[s]["n_unlabelled"] == 6 and first[s]["auc"] is None and first[s]["pauc"] is None
    assert domains["first"]["summary_hmean"]["h"]["eval"] is None
    for s in (3, 4, 5):  # ground truth added: labelled, with AUCs, from the same cached embeddings
        assert second[s]["n_unlabelled"] == 0 and second[s]["n_normal"] == 3 and second[s]["n_anomaly"] == 3
        assert 0.0 <= second[s]["auc"] <= 1.0 and 0.0 <= second[s]["pauc"] <= 1.0
    assert domains["second"]["provenance"]["embeddings_extracted"] is False  # labels are not part of the key
    assert domains["second"]["summary_hmean"]["h"]["eval"] is not None
    for s in (0, 1, 2):  # the development sections' numbers did not change
        assert second[s]["auc"] == first[s]["auc"]


def test_target_domain_clips_never_enter_the_auc_or_h(domains):
    from minasd.data import index

    res, run, data = domains["second"], domains["run"], domains["data"]
    df = index(data)
    for r in res["sections"]:
        assert r["n_test"] == 6  # the source-domain clips only
        assert r["n_target_test"] == (1 if r["section"] < 3 else 2)
        assert r["n_heldout"] == 1  # the target-domain training clip in split.json is not used to fit h
        # the section's AUC is the AUC of the source-domain DCASE file alone
        names, scores = read_scores_csv(run / "eval" / "dcase" / anomaly_score_filename("fan", r["section"], "source"))
        lab = {Path(p).name: int(v) for p, v in zip(df.path, df.label) if not pd.isna(v)}
        assert auc_pauc([lab[n] for n in names], scores) == pytest.approx((r["auc"], r["pauc"]), abs=1e-12)
    assert res["provenance"]["heldout_excluded"] == [domains["target_train"]]
    scores_csv = pd.read_csv(run / "eval" / "scores.csv")
    assert not scores_csv.path.str.contains("target").any() and len(scores_csv) == 36


def test_target_clips_are_scored_by_the_sections_model_and_h(domains):
    """A target-domain clip that is a byte copy of a source clip of its section gets that clip's score."""
    run = domains["run"]
    by_name = {}
    for s in range(6):
        for dom in ("source", "target"):
            names, scores = read_scores_csv(run / "eval" / "dcase" / anomaly_score_filename("fan", s, dom))
            by_name.update(zip(names, scores))
    for tgt, src in domains["twin"].items():
        assert by_name[Path(tgt).name] == pytest.approx(by_name[Path(src).name], rel=1e-6)


_DCASE_NAME = re.compile(r"^(anomaly_score|decision_result)_(?P<machine>[A-Za-z]+)_section_(?P<section>\d{2})_"
                         r"(?P<domain>source|target)_test\.csv$")


def _read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_dcase_files_have_the_official_evaluators_format(domains):
    """Our own check of what the DCASE 2021 evaluator reads (y-kawagu/dcase2021_task2_evaluator):
    per type, section and domain an ``anomaly_score_<type>_section_<XX>_<domain>_test.csv`` and a
    ``decision_result_...`` file; rows ``<bare clip name>,<number>`` with no header (it parses the
    second field of every row as a float); one row per test clip of that section and domain, the
    names those of its ground-truth CSV (it pairs rows by sorted file name)."""
    from minasd.data import index

    run, data = domains["run"], domains["data"]
    dcase = run / "eval" / "dcase"
    files = sorted(p.name for p in dcase.iterdir())
    assert all(_DCASE_NAME.match(f) for f in files), files
    assert files == sorted(domains["second"]["files"]["dcase_files"])
    df = index(data)
    test = df[(df.machine == "fan") & (df.split == "test")]
    expected = {(s, d) for s, d in zip(test.section, test.domain)}
    assert {(int(_DCASE_NAME.match(f)["section"]), _DCASE_NAME.match(f)["domain"]) for f in files} == expected
    assert len(files) == 2 * len(expected) == 24  # both domains of all 6 sections, two kinds of file
    for s, dom in sorted(expected):
        clips = sorted(Path(p).name for p in test[(test.section == s) & (test.domain == dom)].path)
        score_rows = _read_rows(dcase / anomaly_score_filename("fan", s, dom))
        decision_rows = _read_rows(dcase / decision_filename("fan", s, dom))
        for rows in (score_rows, decision_rows):
            assert all(len(r) == 2 for r in rows)  # no blank line, no third column
            assert all(r[0].endswith(".wav") and "/" not in r[0] for r in rows)  # bare names
            float(rows[0][1])  # the first row is data: no header
            assert sorted(r[0] for r in rows) == clips  # exactly the clips of this section and domain, once each
        assert all(np.isfinite(float(r[1])) for r in score_rows)
        assert {r[1] for r in decision_rows} <= {"0", "1"}
        if s >= 3:  # evaluation sections: the names are those of the official ground truth
            gt = _read_rows(data / "ground_truth" / f"ground_truth_fan_section_{s:02d}_{dom}_test.csv")
            assert sorted(r[0] for r in gt) == clips


def test_split_test_clips_uses_the_protocol_rule():
    df = pd.DataFrame({"path": ["a_src", "b_tgt", "c_none", "d_train", "e_pump"],
                       "machine": ["fan", "fan", "fan", "fan", "pump"], "section": [3, 3, 3, 3, 3],
                       "split": ["test", "test", "test", "train", "test"],
                       "domain": ["source", "target", None, "source", "source"], "label": [0, 1, 0, 0, 0]})
    proto, other = split_test_clips(df, "fan", [3])
    assert proto.path.tolist() == ["a_src", "c_none"] and other.path.tolist() == ["b_tgt"]


# ---- the embedding cache: what invalidates it ---------------------------------------------------


def test_embedding_cache_is_invalidated_by_everything_it_depends_on(evaluated, tmp_path, monkeypatch):
    """Extraction is replaced by a recorder (real extraction is exercised above): the test checks
    which clip sets are re-extracted when one input of the cache key changes."""
    import torch

    from minasd.data import NormStats, load_norm_stats, save_norm_stats

    root = evaluated[0]
    run = tmp_path / "run"
    shutil.copytree(evaluated[1], run)
    calls = []

    def fake_extract(model, norm, abs_paths, device, progress, desc):
        calls.append(desc)
        n, k = len(abs_paths), 6
        fill = float(norm.mean) + float(norm.std) + sum(p.__sizeof__() for p in abs_paths) % 7
        return (np.full((n, 10, 4), fill, np.float32), np.zeros((n, 10, k), np.float32), np.zeros((n, 10), np.float32))

    monkeypatch.setattr(evaluate_mod, "_extract", fake_extract)

    def load(data=root):
        calls.clear()
        embs = load_embeddings(run, data, device="cpu", progress=False)
        return embs, sorted(calls)

    both = ["held-out clips", "test clips"]
    embs, got = load()
    assert got == [] and not embs.extracted  # the copied cache is valid: same checkpoint, clips, root, stats
    # another data root with the same file names
    other = _fan_only_copy(root, tmp_path / "other_root", ground_truth=True)
    assert load(other)[1] == both
    assert load(other)[1] == []
    # a changed clip list: one test clip fewer -> only the test set is re-extracted
    next((other / "dev_data/fan/source_test").glob("section_00_*normal*.wav")).unlink()
    embs, got = load(other)
    assert got == ["test clips"] and len(embs.test.paths) == 35
    # a clip replaced by another recording of the same name
    clip = next((other / "dev_data/fan/source_test").glob("section_01_*.wav"))
    clip.write_bytes(clip.read_bytes() + b"\0\0")
    assert load(other)[1] == ["test clips"]
    # a corrupt cache file: recomputed, with a warning naming it
    (run / "eval" / "cache" / "test.npz").write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="test.npz is unreadable"):
        assert load(other)[1] == ["test clips"]
    # other normalisation statistics
    stats = load_norm_stats(run / "norm_stats.json")
    fan = stats["fan"]
    stats["fan"] = NormStats(fan.mean + 0.01, fan.std * 1.1, fan.n_clips, fan.n_samples)
    save_norm_stats(stats, run / "norm_stats.json")
    assert load(other)[1] == both
    # a new checkpoint (weights changed in place, same file name)
    ck_path = run / "checkpoints" / "best.pt"
    ck = torch.load(ck_path, map_location="cpu", weights_only=True)
    name = next(k for k, v in ck["model"].items() if torch.is_floating_point(v) and v.numel() > 1)
    ck["model"][name] = ck["model"][name] + 0.5
    torch.save(ck, ck_path)
    embs, got = load(other)
    assert got == both and embs.checkpoint_sha256 == sha256_file(ck_path)
    assert load(other)[1] == []  # and then reused again


def test_inlier_source_says_who_chose_h_and_whether_it_is_table_1s(evaluated, tmp_path):
    """No argument: "table1"; an argument equal to Table I's setting: "argument", table1 True."""
    run = _copy(evaluated, tmp_path)
    meta = json.loads((run / "run.json").read_text())
    meta["hparams"]["p"] = 2  # a Table I p that the tiny set can fit
    (run / "run.json").write_text(json.dumps(meta))
    res = evaluate_run(run, device="cpu", progress=False)
    assert (res["inlier"]["kind"], res["inlier"]["p"], res["inlier"]["source"], res["inlier"]["table1"]) == (
        meta["hparams"]["inlier"], 2, "table1", True)
    res = evaluate_run(run, inlier=meta["hparams"]["inlier"], p=2, device="cpu", overwrite=True, progress=False)
    assert (res["inlier"]["source"], res["inlier"]["table1"]) == ("argument", True)

