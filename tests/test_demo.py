"""The main job end to end at the smallest scale: tiny synthetic set, 1 epoch of a
cheap encoder, evaluation, table, the comparison systems, figures; then a rerun reuses
everything and adds the DCASE 2021 autoencoder (``--with-ae``, with the test-only
``--ae-epochs 1`` so that it takes seconds, not the recipe's 100 epochs)."""
import json

from minasd import cli
from minasd.demo import DEMO_SYSTEMS
from minasd.studies.experiment import SYSTEMS, VARIANT_LABELS


def test_demo_runs_end_to_end_and_reuses_on_rerun(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--size", "tiny", "--out", str(out), "--epochs", "1", "--backbone", "mobilenetv3_small_050",
            "--device", "cpu", "--quiet"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed and "section" in printed
    # beside the AUC table: the accuracy the model reached and the comparison systems on the same sections;
    # the autoencoder only named, with why it did not run and how to run it
    assert "validation section accuracy" in printed and "no learning" not in printed
    assert sorted(DEMO_SYSTEMS) == sorted(SYSTEMS)
    for variant in ("gmm_meanstd", "twfr_gmm"):
        assert _hmean_line(printed, VARIANT_LABELS[variant]) is not None
    assert _hmean_line(printed, VARIANT_LABELS["ae_dcase2021"]) is None and "add --with-ae" in printed
    summary = json.loads((out / "summary.json").read_text())
    fan = summary["types"]["fan"]
    assert [r["section"] for r in fan["sections"]] == [0, 1, 2, 3, 4, 5]
    for r in fan["sections"]:
        assert 0.0 <= r["auc"] <= 1.0 and 0.0 <= r["pauc"] <= 1.0
    assert summary["backbone"] == "mobilenetv3_small_050" and summary["epochs"] == 1
    assert summary["profile"]["name"] == "cpu" and 0.0 <= fan["val_section_acc"]["at_best"] <= 1.0
    assert sorted(fan["systems"]) == ["gmm_meanstd", "twfr_gmm"] and "ae_dcase2021" in summary["systems_not_run"]
    for variant, rec in fan["systems"].items():
        assert set(rec["sections"]) == {"0", "1", "2", "3", "4", "5"}  # JSON keys
        assert 0.0 <= rec["hmean_dev"] <= 1.0 and 0.0 <= rec["hmean_eval"] <= 1.0
        assert (out / "systems" / variant / "fan.json").is_file()
    assert fan["systems"]["twfr_gmm"]["chosen"]["k"] in (1, 2, 4, 8)
    assert 0.0 <= fan["systems"]["twfr_gmm"]["chosen"]["r"] <= 1.0
    for name in ("fan_training.png", "fan_roc.png", "fan_scores.png"):
        assert (out / "figures" / name).stat().st_size > 1000
    dcase = sorted(p.name for p in (out / "runs" / "fan" / "eval" / "dcase").iterdir())
    assert "anomaly_score_fan_section_03_source_test.csv" in dcase
    assert "decision_result_fan_section_05_source_test.csv" in dcase
    results = out / "runs" / "fan" / "eval" / "results.json"
    stamp = results.stat().st_mtime_ns

    cached = {v: (out / "systems" / v / "fan.json").stat().st_mtime_ns for v in fan["systems"]}

    # rerun with the autoencoder: training, evaluation and the two GMMs are reused, nothing rewritten;
    # --ae-epochs is a test-only override (hidden from --help)
    assert cli.main(args + ["--with-ae", "--ae-epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "reused" in printed and f"{VARIANT_LABELS['twfr_gmm']} found in" in printed
    assert results.stat().st_mtime_ns == stamp
    assert all((out / "systems" / v / "fan.json").stat().st_mtime_ns == t for v, t in cached.items())
    assert _hmean_line(printed, VARIANT_LABELS["ae_dcase2021"]) is not None and "add --with-ae" not in printed
    again = json.loads((out / "summary.json").read_text())
    ae = again["types"]["fan"]["systems"]["ae_dcase2021"]
    assert ae["chosen"] == {"models": 2, "epochs": 1, "device": "cpu"} and again["systems_not_run"] == {}
    assert set(ae["sections"]) == {"0", "1", "2", "3", "4", "5"}
    assert again["types"]["fan"]["systems"]["twfr_gmm"] == fan["systems"]["twfr_gmm"]


def _hmean_line(printed: str, label: str) -> tuple[float, float] | None:
    """The two numbers (00-02, 03-05) of the summary line that starts with ``label``, or None."""
    for line in printed.splitlines():
        head, _, rest = line.strip().partition(label)
        parts = rest.split()
        if not head and len(parts) == 2 and all(p.replace(".", "", 1).isdigit() for p in parts):
            return float(parts[0]), float(parts[1])
    return None


def test_demo_help_hides_the_test_override_and_stays_light():
    import subprocess
    import sys

    code = ("import sys; from minasd import cli\n"
            "try:\n    cli.main(['demo', '--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'sklearn', 'minasd.studies.experiment') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--with-ae" in out and "--ae-epochs" not in out
    assert "HEAVY []" in out


def test_demo_rejects_a_type_without_clips(tmp_path, capsys):
    from minasd.synth import make_dataset

    root = make_dataset(tmp_path / "d", size="tiny", machine_types=["fan", "pump"], progress=False)
    code = cli.main(["demo", "--data", str(root), "--out", str(tmp_path / "o"), "--machine-types", "valve",
                     "--quiet"])
    assert code == 1
    assert "valve" in capsys.readouterr().err
