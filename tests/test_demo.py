"""The main job end to end at the smallest scale: tiny synthetic set, 1 epoch of a
cheap encoder, evaluation, table, figures; then a rerun reuses everything."""
import json

from minasd import cli


def test_demo_runs_end_to_end_and_reuses_on_rerun(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--size", "tiny", "--out", str(out), "--epochs", "1", "--backbone", "mobilenetv3_small_050",
            "--device", "cpu", "--quiet"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed and "section" in printed
    # beside the AUC table: the accuracy the model reached and the baseline on the same sections
    assert "validation section accuracy" in printed and "baseline (no learning)" in printed
    summary = json.loads((out / "summary.json").read_text())
    fan = summary["types"]["fan"]
    assert [r["section"] for r in fan["sections"]] == [0, 1, 2, 3, 4, 5]
    for r in fan["sections"]:
        assert 0.0 <= r["auc"] <= 1.0 and 0.0 <= r["pauc"] <= 1.0
    assert summary["backbone"] == "mobilenetv3_small_050" and summary["epochs"] == 1
    assert summary["profile"]["name"] == "cpu" and 0.0 <= fan["val_section_acc"]["at_best"] <= 1.0
    assert set(fan["baseline"]["sections"]) == {"0", "1", "2", "3", "4", "5"}  # JSON keys
    for name in ("fan_training.png", "fan_roc.png", "fan_scores.png"):
        assert (out / "figures" / name).stat().st_size > 1000
    dcase = sorted(p.name for p in (out / "runs" / "fan" / "eval" / "dcase").iterdir())
    assert "anomaly_score_fan_section_03_source_test.csv" in dcase
    assert "decision_result_fan_section_05_source_test.csv" in dcase
    results = out / "runs" / "fan" / "eval" / "results.json"
    stamp = results.stat().st_mtime_ns

    assert cli.main(args) == 0  # rerun: training and evaluation are reused, nothing rewritten
    printed = capsys.readouterr().out
    assert "reused" in printed
    assert results.stat().st_mtime_ns == stamp


def test_demo_rejects_a_type_without_clips(tmp_path, capsys):
    from minasd.synth import make_dataset

    root = make_dataset(tmp_path / "d", size="tiny", machine_types=["fan", "pump"], progress=False)
    code = cli.main(["demo", "--data", str(root), "--out", str(tmp_path / "o"), "--machine-types", "valve",
                     "--quiet"])
    assert code == 1
    assert "valve" in capsys.readouterr().err
