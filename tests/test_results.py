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
            "--machine-types", "fan", "pump", "--n-boot", "50", "--jobs", "2", "--quiet"]
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
    assert prov["data"]["synthetic"] and prov["chosen_lam"] == {"fan": 10.0, "pump": 10.0} and prov["git_commit"]
    assert set(prov["seeds"]) == {"0", "1"} and prov["seeds"]["0"]["wall_s_per_type"]["fan"] > 0
    assert not prov["data_root"].startswith("/")  # relative to the working directory
    for k in (0, 1):  # committed files name no machine's folders
        manifest = json.loads((out / f"seed{k}" / "manifest.json").read_text())
        assert not manifest["provenance"]["data_root"].startswith("/")
    assert prov["parallel"]["jobs"] == 2 and prov["invocations"][-1]["wall_s"] > 0


def test_parallel_runs_leave_complete_tables(micro):
    """Two trainings at once (one per worker process): each seed's tables end with both types, the
    later seed uses the lambda the first chose, and each run's output went to its own log."""
    root, base, _ = micro
    from minasd.experiment import load_results

    for k in (0, 1):
        res = load_results(base / "out" / f"seed{k}")
        assert {"fan", "pump"} <= set(res["tables"]["table2"]["machine"])
        assert set(res["scores"]["machine"]) == {"fan", "pump"}
        assert (base / "work" / "logs" / f"seed{k}_pump.log").stat().st_size > 0


def test_each_seed_publishes_its_dcase_team_folders(micro):
    """OUT/seed<k>/dcase/<variant>/ holds the official DCASE files of both types, equal to the chosen runs' files."""
    root, base, _ = micro
    from minasd.experiment import load_results

    for k, variants, without in ((0, {"proposed", "no_mixup", "product_only"}, {"wo_h", "baseline"}),
                                 (1, {"proposed"}, {"baseline"})):  # further seeds: proposed and baseline only
        seed_out = base / "out" / f"seed{k}"
        man = json.loads((seed_out / "dcase" / "manifest.json").read_text())
        assert set(man["variants"]) == variants and set(man["not_written"]) == without
        types = load_results(seed_out)["types"]
        for v in variants:
            team = seed_out / "dcase" / v
            names = sorted(p.name for p in team.iterdir())
            assert {n.split("_section_")[0].split("_", 2)[2] for n in names} == {"fan", "pump"}
            assert len(names) == 2 * 2 * 6  # 2 types x 6 sections x (scores, decisions); no target clips here
            for m in ("fan", "pump"):
                run = base / "work" / f"seed{k}" / types[m]["variants"][v]["run"] / "eval" / "dcase"
                src = sorted(run.glob(f"*_{m}_section_*.csv"))
                assert [p.name for p in src] == man["variants"][v]["types"][m]["files"]
                assert all((team / p.name).read_bytes() == p.read_bytes() for p in src)


def test_a_new_checkout_continues_from_the_published_files(micro, capsys):
    """The work folder (checkpoints) is gone in a new session; the committed OUT lets the rerun skip
    every finished type: nothing is trained again, and OUT keeps its numbers."""
    root, base, args = micro
    out = base / "out"
    before = pd.read_csv(out / "summary" / "types_by_seed.csv")
    teams = {p.relative_to(out): p.read_bytes() for p in out.glob("seed*/dcase/*/*.csv")}
    assert teams
    shutil.rmtree(base / "work")
    capsys.readouterr()
    assert cli.main(args[:-3] + ["--jobs", "1", "--quiet"]) == 0  # the one-job path: same scheduler, in-process
    printed = capsys.readouterr().out
    assert "restored" in printed
    assert not (base / "work" / "seed0" / "runs").exists()  # no training run was started
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary" / "types_by_seed.csv"), before)
    # the team folders came back with the published files (their runs are gone): kept, not lost
    assert {p.relative_to(out): p.read_bytes() for p in out.glob("seed*/dcase/*/*.csv")} == teams
    man = json.loads((out / "seed0" / "dcase" / "manifest.json").read_text())
    assert {t["source"] for t in man["variants"]["proposed"]["types"].values()} == {"kept"}
    assert not (base / "work" / "seed0" / "results" / "dcase").exists()
