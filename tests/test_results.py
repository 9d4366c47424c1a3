"""`minasd results`: the protocol over seeds, published per type, aggregated, resumable in a new checkout."""
import json
import shutil

import pandas as pd
import pytest

from minasd import cli


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    from minasd.synth import make_dataset

    base = tmp_path_factory.mktemp("results")
    root = make_dataset(base / "tiny", size="tiny", workers=1, progress=False, machine_types=["fan", "pump"])
    args = ["results", "--data", str(root), "--work", str(base / "work"), "--out", str(base / "out"),
            "--profile", "cpu", "--epochs", "1", "--seeds", "0", "1", "--grid-lam", "10",
            "--machine-types", "fan", "--n-boot", "50", "--quiet"]
    assert cli.main(args) == 0
    return root, base, args


def test_every_seed_is_published_and_summarised(micro):
    root, base, _ = micro
    out = base / "out"
    from minasd.experiment import load_results

    s0, s1 = load_results(out / "seed0"), load_results(out / "seed1")
    assert set(s0["scores"]["variant"]) == {"proposed", "no_mixup", "product_only", "wo_h", "baseline"}
    assert set(s1["scores"]["variant"]) == {"proposed", "baseline"}  # further seeds: proposed and baseline
    assert set(s0["scores"]["seed"]) == {0} and set(s1["scores"]["seed"]) == {1}
    over = pd.read_csv(out / "summary" / "types_over_seeds.csv")
    fan = over[(over["variant"] == "proposed") & (over["machine"] == "fan")].iloc[0]
    assert fan["n_seeds"] == 2 and 0.0 <= fan["mean"] <= 1.0
    boot = pd.read_csv(out / "summary" / "paired_bootstrap.csv")
    row = boot[(boot["variant_a"] == "proposed") & (boot["variant_b"] == "baseline") & (boot["machine"] == "fan")]
    assert len(row) == 1 and row.iloc[0]["lo"] <= row.iloc[0]["diff"] <= row.iloc[0]["hi"]
    kinds = pd.read_csv(out / "summary" / "auc_by_kind.csv")  # synthetic data: anomaly kinds known
    assert {"proposed", "baseline"} <= set(kinds["variant"])
    prov = json.loads((out / "summary" / "provenance.json").read_text())
    assert prov["profile"]["name"] == "cpu" and prov["seeds_published"] == [0, 1]
    assert prov["data"]["synthetic"] and prov["chosen_lam"] == {"fan": 10.0} and prov["git_commit"]
    assert set(prov["seeds"]) == {"0", "1"} and prov["seeds"]["0"]["wall_s_per_type"]["fan"] > 0
    assert not prov["data_root"].startswith("/")  # relative to the working directory


def test_a_new_checkout_continues_from_the_published_files(micro, capsys):
    """The work folder (checkpoints) is gone in a new session; the committed OUT lets the rerun skip
    every finished type: nothing is trained again, and OUT keeps its numbers."""
    root, base, args = micro
    out = base / "out"
    before = pd.read_csv(out / "summary" / "types_by_seed.csv")
    shutil.rmtree(base / "work")
    capsys.readouterr()
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "restored" in printed
    assert not (base / "work" / "seed0" / "runs").exists()  # no training run was started
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary" / "types_by_seed.csv"), before)
