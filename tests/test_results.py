"""`minasd results`: the protocol over seeds, published per type, aggregated, resumable in a new checkout."""
import json
import shutil

import pandas as pd
import pytest

from minasd import cli

# the fixture's variants (in no order: --variants orders them).  Left out to keep the test short:
# product_only (a training per type) and TWFR-GMM (its r x k search; tests/test_experiment.py runs it)
VARIANTS = "wo_h,gmm_meanstd,proposed,no_mixup,ae_dcase2021"
PRESENT = ("ae_dcase2021", "gmm_meanstd")  # the comparison systems of VARIANTS


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    from minasd.synth import make_dataset

    base = tmp_path_factory.mktemp("results")
    root = make_dataset(base / "tiny", size="tiny", workers=1, progress=False, machine_types=["fan", "pump"])
    args = ["results", "--data", str(root), "--work", str(base / "work"), "--out", str(base / "out"),
            "--profile", "cpu", "--epochs", "1", "--seeds", "0", "1", "--grid-lam", "10",
            "--machine-types", "fan", "pump", "--variants", VARIANTS, "--ae-epochs", "2", "--n-boot", "50",
            "--jobs", "2", "--quiet"]
    assert cli.main(args) == 0
    return root, base, args


def test_every_seed_is_published_and_summarised(micro):
    root, base, _ = micro
    out = base / "out"
    from minasd.studies.experiment import load_results

    s0, s1 = load_results(out / "seed0"), load_results(out / "seed1")
    assert set(s0["scores"]["variant"]) == {"proposed", "no_mixup", "wo_h", *PRESENT}
    assert set(s1["scores"]["variant"]) == {"proposed", *PRESENT}  # further seeds: proposed and the systems
    assert s0["manifest"]["variants"] == ["proposed", "no_mixup", "wo_h", *PRESENT]  # --variants, in VARIANTS order
    for k, res in ((0, s0), (1, s1)):  # --ae-epochs reached every seed's autoencoder; the seed is the seed's
        for m in ("fan", "pump"):
            ae = res["types"][m]["variants"]["ae_dcase2021"]
            assert ae["training"]["epochs_done"] == 2 and ae["settings"]["seed"] == k
            assert res["types"][m]["config_signature"]["system_settings"] == {"ae_dcase2021": {"epochs": 2}}
    assert set(s0["scores"]["seed"]) == {0} and set(s1["scores"]["seed"]) == {1}
    over = pd.read_csv(out / "summary" / "types_over_seeds.csv")
    fan = over[(over["variant"] == "proposed") & (over["machine"] == "fan")].iloc[0]
    assert fan["n_seeds"] == 2 and 0.0 <= fan["mean"] <= 1.0
    boot = pd.read_csv(out / "summary" / "paired_bootstrap.csv")
    pairs = {("proposed", v) for v in PRESENT} | {("no_mixup", "proposed"), ("wo_h", "proposed")}
    assert set(zip(boot["variant_a"], boot["variant_b"])) == pairs  # proposed vs each system; ablations vs proposed
    for v in PRESENT:
        for m in ("fan", "pump"):
            row = boot[(boot["variant_a"] == "proposed") & (boot["variant_b"] == v) & (boot["machine"] == m)]
            assert len(row) == 1 and row.iloc[0]["lo"] <= row.iloc[0]["diff"] <= row.iloc[0]["hi"]
    kinds = pd.read_csv(out / "summary" / "auc_by_kind.csv")  # synthetic data: anomaly kinds known
    assert {"proposed", *PRESENT} <= set(kinds["variant"])
    caught = pd.read_csv(out / "summary" / "caught_missed.csv")
    assert list(caught.columns[:2]) == ["variant_a", "variant_b"]
    assert set(zip(caught["variant_a"], caught["variant_b"])) == {("proposed", v) for v in PRESENT}
    prov = json.loads((out / "summary" / "provenance.json").read_text())
    assert prov["system_settings"] == {"ae_dcase2021": {"epochs": 2}}
    assert f"--variants {VARIANTS} --ae-epochs 2" in prov["command"]
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
    from minasd.studies.experiment import load_results

    for k in (0, 1):
        res = load_results(base / "out" / f"seed{k}")
        assert {"fan", "pump"} <= set(res["tables"]["table2"]["machine"])
        assert set(res["scores"]["machine"]) == {"fan", "pump"}
        assert (base / "work" / "logs" / f"seed{k}_pump.log").stat().st_size > 0


def test_each_seed_publishes_its_dcase_team_folders(micro):
    """OUT/seed<k>/dcase/<variant>/ holds the official DCASE files of both types, equal to the chosen runs' files."""
    root, base, _ = micro
    from minasd.studies.experiment import load_results

    for k, variants, without in ((0, {"proposed", "no_mixup"}, {"wo_h", *PRESENT}),
                                 (1, {"proposed"}, set(PRESENT))):  # further seeds: proposed and the systems only
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


TABLE_FILES = {f"{t}.{ext}" for t in ("sections", "selection", "table2", "table3") for ext in ("csv", "json")} | {
    "manifest.json"}


def test_a_job_paused_between_two_table_writes_never_reaches_a_published_seed(micro, tmp_path, monkeypatch):
    """The race of issue 20, by construction rather than by timing.

    The jobs run as threads (the scheduler's own code, a thread pool in place of the process pool).
    The first job that writes a seed table (``selection.csv``) from a job thread waits there until
    the scheduler publishes, writes the CSV, and stays paused before the JSON until the copy is taken.
    On a scheduler whose jobs write their seed's shared tables (71e2017) the published seed then holds
    a CSV and a JSON from different moments and ``minasd results`` fails ("rows disagree").  Here a job
    writes only its own type's files: no job thread writes a table, and every published seed loads."""
    import concurrent.futures
    import threading

    from minasd.studies import experiment as exp_mod
    from minasd.studies import results as res_mod
    from minasd.studies.experiment import load_results

    root = micro[0]
    main = threading.get_ident()
    job_table_writes: list[str] = []
    waiting, publishing, between, published = (threading.Event() for _ in range(4))
    first = threading.Lock()

    write_text = exp_mod.atomic_write_text

    def paused_write(path, text):
        name = getattr(path, "name", str(path))
        if threading.get_ident() != main and name in TABLE_FILES:
            job_table_writes.append(name)
            if name == "selection.csv" and first.acquire(blocking=False):
                waiting.set()
                publishing.wait(timeout=300)
                out = write_text(path, text)
                between.set()
                published.wait(timeout=300)
                return out
        return write_text(path, text)

    publish = res_mod.publish

    def publish_while_a_job_is_between_writes(*a, **kw):
        if waiting.is_set() and not between.is_set():
            publishing.set()
            assert between.wait(timeout=300), "the paused job did not resume"
        try:
            return publish(*a, **kw)
        finally:
            published.set()

    run_task = res_mod._run_task

    def job_without_log_redirection(kwargs, log_path):  # redirecting stdout is per process, not per thread
        return run_task(kwargs, None)

    class ThreadJobs(concurrent.futures.ThreadPoolExecutor):
        def __init__(self, max_workers, **_):  # mp_context, initializer: a process pool's
            super().__init__(max_workers=max_workers)

    monkeypatch.setattr(exp_mod, "atomic_write_text", paused_write)
    monkeypatch.setattr(res_mod, "publish", publish_while_a_job_is_between_writes)
    monkeypatch.setattr(res_mod, "_run_task", job_without_log_redirection)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", ThreadJobs)
    out = tmp_path / "out"
    args = ["results", "--data", str(root), "--work", str(tmp_path / "work"), "--out", str(out), "--profile", "cpu",
            "--epochs", "1", "--seeds", "0", "--grid-lam", "10", "--machine-types", "fan", "pump", "--n-boot", "20",
            "--variants", "proposed,gmm_meanstd", "--jobs", "2", "--quiet"]
    assert cli.main(args) == 0
    assert job_table_writes == []  # one writer per file: the scheduling thread
    res = load_results(out / "seed0")
    assert set(res["tables"]["selection"]["machine"]) == {"fan", "pump"}
    assert set(res["scores"]["machine"]) == {"fan", "pump"}


def test_parse_variants_orders_and_rejects():
    from minasd.studies.experiment import VARIANTS as ALL
    from minasd.studies.results import parse_variants

    assert parse_variants(VARIANTS) == ["proposed", "no_mixup", "wo_h", *PRESENT]
    assert parse_variants(",".join(reversed(ALL))) == list(ALL)
    assert parse_variants(" twfr_gmm , proposed,") == ["proposed", "twfr_gmm"]
    for bad, named in (("proposed,baseline", "['baseline']"), ("nope", "['nope']"), (" , ", "[]")):
        with pytest.raises(ValueError, match="unknown") as err:
            parse_variants(bad)
        assert named in str(err.value) and "gmm_meanstd" in str(err.value)  # the choices are listed


def test_comparison_systems_alone_need_no_lambda(micro, tmp_path, capsys):
    """--variants with no method variant: nothing is trained and the later seeds do not wait for a
    lambda the first seed never chooses; an unknown variant is a clear error, before any work."""
    from minasd.studies.experiment import load_results

    root = micro[0]
    args = ["results", "--data", str(root), "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"),
            "--seeds", "0", "1", "--machine-types", "fan", "--n-boot", "20", "--jobs", "1", "--quiet"]
    assert cli.main(args + ["--variants", "proposed,baseline"]) == 1
    assert "unknown ['baseline']" in capsys.readouterr().err and not (tmp_path / "work" / "seed0").exists()
    assert cli.main(args + ["--variants", "gmm_meanstd"]) == 0
    assert not list((tmp_path / "work").glob("seed*/runs"))
    for k in (0, 1):
        res = load_results(tmp_path / "out" / f"seed{k}")
        assert set(res["scores"]["variant"]) == {"gmm_meanstd"} and set(res["scores"]["seed"]) == {k}
        assert list(res["tables"]["table2"]["variant"].unique()) == ["gmm_meanstd"] and res["tables"]["table3"].empty
    prov = json.loads((tmp_path / "out" / "summary" / "provenance.json").read_text())
    assert prov["seeds_published"] == [0, 1] and prov["chosen_lam"] == {} and prov["system_settings"] == {}
