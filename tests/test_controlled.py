"""`minasd controlled`: one line per (row, type), values in range, resume without retraining, clear errors."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from minasd import cli
from minasd.studies.controlled import (COLUMNS, ROWS, embedding_section_accuracy, load_controlled, parse_rows,
                               section_param_distance)

ROWS_RUN = ["reference", "clips_15", "whole_clip", "section_distance"]
N_TRAIN = 20  # per section: 2 held-out clips (10 %), so h can be fitted on clip means; clips_15 really cuts


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """A tiny synthetic set with 20 training clips per section (fan + pump, 3 s clips), the four rows
    on fan, 1 epoch, two jobs (the rows that need the reference wait for it)."""
    from minasd import synth

    base = tmp_path_factory.mktemp("controlled")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(synth.SIZES, "ctl_test", synth.SizeSpec(N_TRAIN, 3, 3, 3.0))
        root = synth.make_dataset(base / "data", size="ctl_test", workers=1, progress=False,
                                  machine_types=["fan", "pump"])
    # run from the folder, as from a checkout: paths relative to it (what OUT may name)
    args = ["controlled", "--data", "data", "--work", "work", "--out", "out",
            "--machine-types", "fan", "--rows", *ROWS_RUN, "--epochs", "1", "--jobs", "2", "--quiet"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)
        assert cli.main(args) == 0
    return root, base, args


def test_table_has_the_rows_asked_with_values_in_range(micro):
    root, base, _ = micro
    loaded = load_controlled(base / "out")
    df = loaded["table"]
    assert tuple(df.columns) == COLUMNS
    assert list(df["row"]) == ROWS_RUN and set(df["machine"]) == {"fan"}
    for who in ("method", "baseline"):
        for role in ("dev", "eval"):
            for m in ("auc", "pauc", "hmean"):
                col = df[f"{who}_{role}_{m}"]
                assert col.notna().all() and col.between(0, 100).all(), f"{who}_{role}_{m}"
    for role in ("dev", "eval"):
        np.testing.assert_allclose(df[f"diff_{role}_hmean"], df[f"method_{role}_hmean"] - df[f"baseline_{role}_hmean"],
                                   atol=1e-3)  # the CSV keeps 6 significant digits
    for c in ("method_eval_auc_subtle", "method_eval_auc_gross", "baseline_eval_auc_subtle", "baseline_eval_auc_gross"):
        assert df[c].between(0, 100).all()  # synthetic data: severity classes known
    assert df["val_section_acc"].between(0, 1).all() and (df["wall_s"] > 0).all()
    assert set(df["kind"]) <= {"gmm", "lof"} and (df["lam"] == 10.0).all()
    # the baseline does not depend on the row: one shared computation
    assert df["baseline_eval_hmean"].nunique() == 1


def test_rows_do_what_they_say(micro):
    root, base, _ = micro
    df = load_controlled(base / "out")["table"].set_index("row")
    ref, clips, whole, dist = (df.loc[r] for r in ROWS_RUN)
    assert ref["train_clips_per_section"] == N_TRAIN and clips["train_clips_per_section"] == 15
    assert pd.notna(clips["baseline_same_clips_eval_hmean"]) and pd.isna(ref["baseline_same_clips_eval_hmean"])
    # whole_clip: the reference's model (same section accuracy), h on one mean per held-out clip (2 per section)
    assert whole["variant"] == "proposed_clip_mean" and whole["val_section_acc"] == ref["val_section_acc"]
    assert int(whole["p"]) <= 2 and "held-out clips per section [2]" in whole["detail"]
    # section_distance: the reference's numbers next to the sections' separability
    for c in ("method_eval_hmean", "method_dev_hmean", "val_section_acc", "kind", "p"):
        assert dist[c] == ref[c]
    assert 0 <= dist["emb_section_acc"] <= 1 and "00-01" in dist["detail"]  # fan's closest products
    rec = next(r for r in load_controlled(base / "out")["records"] if r["row"] == "section_distance")
    assert rec["detail"]["params"]["nearest"]["pair"] == "00-01"


def test_baseline_on_all_clips_equals_the_experiments_baseline(micro):
    from minasd.studies.controlled import baseline_on_clips

    root, base, _ = micro
    shared = json.loads((base / "work" / "baseline" / "results" / "types" / "fan.json").read_text())
    assert shared["config_signature"]["variants"] == ["gmm_meanstd"]  # the baseline is the GMM on log-mel mean/std
    want = {r["section"]: (r["auc"], r["pauc"]) for r in shared["sections"] if r["variant"] == "gmm_meanstd"}
    assert sorted(want) == [0, 1, 2, 3, 4, 5]
    got = baseline_on_clips(root, "fan", None, seed=0, cache=base / "work" / "baseline" / "features" / "fan.npz")
    assert sorted(r["section"] for r in got) == sorted(want)
    for r in got:
        assert (r["auc"], r["pauc"]) == pytest.approx(want[r["section"]])


def test_provenance_and_no_absolute_paths(micro):
    root, base, _ = micro
    text = (base / "out" / "controlled.json").read_text()
    assert str(base) not in text and str(base) not in (base / "out" / "controlled.csv").read_text()
    prov = json.loads(text)["provenance"]
    assert prov["data"]["synthetic"] and prov["profile"]["name"] == "cpu" and prov["seed"] == 0
    assert prov["git_commit"] and prov["command"].startswith("minasd controlled")
    assert set(prov["wall_s_per_row"]) == set(ROWS_RUN) and not prov["data_root"].startswith("/")
    assert "['gmm_meanstd']" in prov["shared_baseline"]


def test_bad_row_names_give_a_clear_error(micro, capsys, monkeypatch):
    root, base, args = micro
    monkeypatch.chdir(base)
    with pytest.raises(ValueError, match=r"unknown rows \['nope'\]"):
        parse_rows(["reference", "nope"])
    assert parse_rows(None) == list(ROWS) and parse_rows(["lam_1,reference"]) == ["reference", "lam_1"]
    bad = args[: args.index("--rows") + 1] + ["reference", "nope"] + ["--epochs", "1", "--quiet"]
    assert cli.main(bad) == 1
    err = capsys.readouterr().err
    assert "unknown rows ['nope']" in err and "whole_clip" in err and "Traceback" not in err


def test_runs_with_the_same_settings_are_copied_not_retrained(micro, capsys, monkeypatch):
    """--reuse-runs: the reference of a second table comes from the first table's finished run (same
    numbers, the copy named in detail; lam_10 at --lam 10 is that run too); a run is copied only when
    every setting that changes what is learned is the same."""
    root, base, args = micro
    monkeypatch.chdir(base)
    src = base / "work" / "rows" / "reference"
    again = ["controlled", "--data", "data", "--work", "work_reuse", "--out", "out_reuse", "--machine-types", "fan",
             "--rows", "reference", "lam_10", "--epochs", "1", "--jobs", "1", "--quiet", "--reuse-runs", str(src)]
    assert cli.main(again) == 0
    first = load_controlled(base / "out")["table"].set_index("row").loc["reference"]
    second = load_controlled(base / "out_reuse")["table"].set_index("row")
    for c in ("method_eval_hmean", "method_dev_hmean", "val_section_acc", "kind", "p", "train_s"):
        assert second.loc["reference", c] == first[c], c
        assert second.loc["lam_10", c] == first[c], c  # lambda 10 is --lam: the reference's run again
    assert "proposed_lam10 copied from work/rows/reference/runs/fan/proposed_lam10" in second.loc["reference", "detail"]
    text = (base / "out_reuse" / "controlled.json").read_text()
    assert str(base) not in text and "--reuse-runs work/rows/reference" in json.loads(text)["provenance"]["command"]
    copied = base / "work_reuse" / "rows" / "reference" / "runs" / "fan" / "proposed_lam10" / "checkpoints" / "best.pt"
    assert copied.read_bytes() == (src / "runs" / "fan" / "proposed_lam10" / "checkpoints" / "best.pt").read_bytes()
    from minasd.studies.controlled import _same_finished_run
    from minasd.train import TrainConfig

    run = src / "runs" / "fan" / "proposed_lam10"
    want = TrainConfig.from_yaml(run / "config.yaml").to_dict()
    assert _same_finished_run(run, dict(want, out_dir="elsewhere", progress=False), root, "cpu")
    for change in ({"epochs": 2}, {"lam": 1.0}, {"seed": 1}, {"mixup": False}, {"backbone": "mobilenetv3_small_100"},
                   {"max_train_clips_per_section": 15}):
        assert not _same_finished_run(run, dict(want, **change), root, "cpu"), change
    assert not _same_finished_run(run, want, base / "elsewhere", "cpu")  # other data
    assert not _same_finished_run(run, want, root, "cuda")  # not a CUDA run (and no CUDA here: no crash)
    assert not _same_finished_run(src / "runs" / "fan" / "missing", want, root, "cpu")
    with pytest.raises(FileNotFoundError, match="not an experiment folder"):
        from minasd.studies.controlled import run_controlled
        from minasd.cli import build_parser
        run_controlled(build_parser("controlled").parse_args(again[:-1] + [str(base / "data")]))


def test_a_rerun_skips_finished_rows_even_without_the_work_folder(micro, capsys, monkeypatch):
    """Nothing is trained again: with the work folder present the checkpoints stay untouched, and with
    it gone (a new checkout) the committed OUT alone lets every line be skipped."""
    root, base, args = micro
    monkeypatch.chdir(base)
    out, work = base / "out", base / "work"
    before = (out / "controlled.csv").read_text()
    ck = work / "rows" / "reference" / "runs" / "fan" / "proposed_lam10" / "checkpoints" / "best.pt"
    mtime = ck.stat().st_mtime_ns
    capsys.readouterr()
    one_job = args[: args.index("--jobs")] + ["--jobs", "1", "--quiet"]
    assert cli.main(one_job) == 0
    printed = capsys.readouterr().out
    assert printed.count("up to date") == len(ROWS_RUN) and "started" not in printed
    assert ck.stat().st_mtime_ns == mtime and (out / "controlled.csv").read_text() == before
    shutil.rmtree(work)
    assert cli.main(one_job) == 0
    assert not work.exists() and (out / "controlled.csv").read_text() == before


def test_section_param_distance_and_embedding_accuracy():
    d = section_param_distance("fan", [0, 1, 2, 3, 4, 5])
    assert d["pairs"]["00-01"]["differing"]["f_rot"] == pytest.approx(1 / 25, abs=1e-4)
    assert d["nearest"]["distance"] == min(p["distance"] for p in d["pairs"].values())
    assert 0 < d["ranges"]["f_rot"] < 1
    rng = np.random.default_rng(0)
    same = embedding_section_accuracy(rng.normal(size=(60, 8)), np.repeat([0, 1, 2], 20))
    apart = embedding_section_accuracy(np.concatenate([rng.normal(10 * k, 1, (20, 8)) for k in range(3)]),
                                       np.repeat([0, 1, 2], 20))
    assert apart["accuracy"] == 1.0 and same["accuracy"] < 0.7 and apart["separation"] > same["separation"]


def test_committed_tables_load_together_and_draw(micro, tmp_path):
    """The book's view: every table under a folder, one figure per type; the same line twice is an error."""
    from minasd import viz
    from minasd.studies.controlled import controlled_label, load_controlled_tables

    root, base, _ = micro
    assert load_controlled_tables(tmp_path) is None
    one = load_controlled_tables(base / "out")
    assert list(one["table"]["row"]) == ROWS_RUN and set(one["table"]["source"]) == {"out"}
    label = controlled_label(one["provenance"]["out"])
    assert label.startswith("SYNTHETIC data") and "training seed 0" in label and "lambda 10" in label
    fig = viz.plot_controlled(one["table"], caption=label, machine="fan")
    left, right = fig.axes[:2]
    names = {float(y): t.get_text() for y, t in zip(left.get_yticks(), left.get_yticklabels())}
    assert [names[y] for y in sorted(names, reverse=True)] == ROWS_RUN  # first row on top
    assert len(right.get_lines()) >= 2
    with pytest.raises(ValueError, match="pump"):
        viz.plot_controlled(one["table"], caption=label, machine="pump")
    for name in ("a", "b"):
        shutil.copytree(base / "out", tmp_path / name)
    with pytest.raises(ValueError, match="more than one table"):
        load_controlled_tables(tmp_path)


def test_a_table_pair_left_half_rewritten_is_refused(tmp_path, monkeypatch):
    """controlled.csv is written first, controlled.json (with the CSV's SHA-256) second: an interruption
    between the two leaves a pair that load_controlled refuses, naming the file, instead of mixing two moments."""
    import minasd.studies.controlled as ctl

    def record(row, hmean):
        line = {c: None for c in COLUMNS}
        line.update(row=row, machine="fan", method_eval_hmean=hmean)
        return {"row": row, "machine": "fan", "line": line}

    ctl.write_table(tmp_path, [record("reference", 60.0)], {})
    assert load_controlled(tmp_path)["table"]["method_eval_hmean"].tolist() == [60.0]

    def interrupted(path, obj, *a, **kw):
        raise KeyboardInterrupt("interrupted between controlled.csv and controlled.json")

    monkeypatch.setattr(ctl, "atomic_write_json", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ctl.write_table(tmp_path, [record("reference", 61.0), record("clips_15", 50.0)], {})
    with pytest.raises(ValueError, match="controlled.csv is not the table .*controlled.json was written with"):
        load_controlled(tmp_path)
