"""Tests of minasd.studies.summary_view on a summary folder built by hand from minasd.studies.analysis tables.

The folder holds what :func:`minasd.studies.results.aggregate` writes, made from a small score
table whose outcome is known by construction: on fan the proposed method scores every
anomaly far above the normals and both comparison systems (the GMM on log-mel mean/std and
TWFR-GMM) barely, on valve the reverse, on pump all score every clip identically (a tie); the
proposed method sees gross anomalies, the mean/std GMM subtle ones, TWFR-GMM both alike.  Types
gearbox, slider, ToyCar and ToyTrain are absent, as in a run still in progress.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from minasd.studies import analysis as A
from minasd.studies import summary_view as sv
from minasd.config import MACHINE_TYPES

PRESENT = ["fan", "pump", "valve"]
KINDS = {"subtle": ("shift", "tone"), "gross": ("rattle", "knock")}
PROV = {
    "data": {"kind": "synthetic", "synthetic": True, "generator_version": "1.2", "size": "protocol", "seed": 3},
    "profile": {"name": "cpu", "backbone": "mobilenetv3_small_050", "epochs": 20, "batch_size": 32},
    "epochs": 20,
    "seeds": {"0": {"variants": ["proposed", "no_mixup", "twfr_gmm", "gmm_meanstd"]},
              "1": {"variants": ["proposed", "twfr_gmm", "gmm_meanstd"]}},
    "seeds_published": [0, 1],
    "machine_types": list(MACHINE_TYPES),
}


def _scores(n_normal: int = 30, n_anom: int = 30) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-clip scores, factory labels) for PRESENT types, sections 03-05, seeds 0 and 1."""
    rng = np.random.default_rng(0)
    labels, rows = [], []
    for m in PRESENT:
        for sec in (3, 4, 5):
            for i in range(n_normal + n_anom):
                clip = f"section_{sec:02d}_source_test_{i:04d}.wav"
                y = int(i >= n_normal)
                cls = ("subtle", "gross")[(i - n_normal) % 2] if y else "none"
                kind = KINDS[cls][(i - n_normal) // 2 % 2] if y else "normal"
                severity = float(rng.uniform(0.2, 1)) if y else 0.0
                labels.append(dict(relpath=f"eval_data/{m}/source_test/{clip}", machine=m, section=sec, label=y,
                                   anomaly_kind=kind, severity_class=cls, severity=severity))
                shared = rng.normal(size=2)
                for seed in (0, 1):
                    noise = rng.normal(size=3)
                    score = {
                        # fan: proposed sees every anomaly (gross ones best); valve: only weakly
                        "proposed": {"fan": noise[0] + y * (3.0 if cls == "gross" else 2.0),
                                     "valve": noise[0] + 0.3 * y * (cls == "gross"),
                                     "pump": shared[seed] + y}[m],
                        "gmm_meanstd": {"fan": noise[1] + 0.3 * y * (cls == "subtle"),
                                        "valve": noise[1] + y * (3.0 if cls == "subtle" else 2.0),
                                        "pump": shared[seed] + y}[m],
                        "twfr_gmm": {"fan": noise[1] + 0.2 * y, "valve": noise[1] + 2.5 * y,
                                     "pump": shared[seed] + y}[m],
                        "no_mixup": noise[2] + 0.5 * y,
                    }
                    for v, s in score.items():
                        if v != "no_mixup" or seed == 0:
                            rows.append(dict(machine=m, section=sec, clip=clip, label=y, variant=v, seed=seed,
                                             score=float(s)))
    return pd.DataFrame(rows), pd.DataFrame(labels)


def _write_summary(d, scores: pd.DataFrame, labels: pd.DataFrame) -> None:
    """The files of OUT/summary, computed by the same minasd.studies.analysis functions as aggregate()."""
    d.mkdir(parents=True)
    sm = A.section_metrics(scores)
    boots = [A.paired_bootstrap(scores, a, b, n_boot=200, seed=0)
             for a, b in (("proposed", "twfr_gmm"), ("proposed", "gmm_meanstd"), ("no_mixup", "proposed"))]
    tables = {
        "sections_by_seed": sm.sections, "types_by_seed": sm.summary,
        "types_over_seeds": A.seed_summary(sm.summary, "hmean"), "paired_bootstrap": pd.concat(boots),
        "auc_by_kind": A.auc_by_kind(scores, labels), "auc_by_class": A.auc_by_class(scores, labels),
        "auc_by_severity": A.auc_by_severity(scores, labels),
        "detection_by_severity": A.detection_rate_by_severity(scores, labels),
        "caught_missed": pd.concat([A.caught_missed(scores, labels, "proposed", v)
                                    for v in ("twfr_gmm", "gmm_meanstd")], ignore_index=True),
    }
    for name, t in tables.items():
        t.to_csv(d / f"{name}.csv", index=False)
    prov = dict(PROV, summary_files=[f"{n}.csv" for n in tables])
    (d / sv.PROVENANCE_NAME).write_text(json.dumps(prov))


@pytest.fixture(scope="module")
def summary_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("summary_view") / "summary"
    _write_summary(d, *_scores())
    return d


@pytest.fixture()
def summary(summary_dir):
    return sv.load_summary(summary_dir)


def test_load_summary_is_none_without_provenance(tmp_path):
    assert sv.load_summary(None) is None
    assert sv.load_summary(tmp_path / "missing") is None
    (tmp_path / "types_over_seeds.csv").write_text("variant,machine,mean\n")
    assert sv.load_summary(tmp_path) is None  # tables without provenance are not a summary


def test_load_summary_reads_every_table_and_the_present_types(summary, summary_dir):
    assert summary["provenance"]["data"]["seed"] == 3
    assert set(summary["tables"]) == {p.stem for p in summary_dir.glob("*.csv")} and len(summary["tables"]) == 9
    assert summary["missing"] == []
    assert summary["machine_types"] == ["fan", "pump", "valve"]  # the paper's order, not the files'
    pd.testing.assert_frame_equal(summary["tables"]["caught_missed"], pd.read_csv(summary_dir / "caught_missed.csv"))


def test_load_summary_names_tables_not_written_yet(tmp_path):
    d = tmp_path / "summary"
    d.mkdir()
    (d / sv.PROVENANCE_NAME).write_text(json.dumps(dict(PROV, summary_files=["types_over_seeds.csv",
                                                                             "caught_missed.csv"])))
    s = sv.load_summary(d)
    assert s["tables"] == {} and s["missing"] == ["types_over_seeds", "caught_missed"] and s["machine_types"] == []
    text = sv.verdict(s)  # no exception, and no invented number
    assert text.startswith("**No verdict yet**") and not re.search(r"\d+\.\d+ %", text)
    assert sv.class_table(s) is None and sv.type_outcomes(s) is None and sv.caught_missed_totals(s) is None
    assert sv.verdict(None).startswith("**No verdict**")


def test_a_stale_table_is_named(tmp_path, summary_dir):
    d = tmp_path / "summary"
    d.mkdir()
    for f in summary_dir.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    pd.read_csv(d / "paired_bootstrap.csv").drop(columns="lo").to_csv(d / "paired_bootstrap.csv", index=False)
    with pytest.raises(ValueError, match=r"paired_bootstrap\.csv: missing columns \['lo'\]"):
        sv.type_outcomes(sv.load_summary(d))
    (d / sv.PROVENANCE_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="provenance.json is not valid JSON"):
        sv.load_summary(d)


def test_summary_label_says_data_size_seeds_profile_and_sections():
    label = sv.summary_label(PROV, ["fan", "pump"])
    for part in ("SYNTHETIC data (minasd.synth v1.2, size protocol: 60 training clips per section, test sections of "
                 "100 normal + 100 anomalous clips; data seed 3; not DCASE)", "never a reproduction of the paper's",
                 ". Profile cpu (backbone mobilenetv3_small_050, a CPU stand-in", "20 epochs, batch 32",
                 "seeds 0, 1: proposed, twfr_gmm, gmm_meanstd", "seed 0: no_mixup", "Test sections 03-05 only",
                 "machine types fan, pump"):
        assert part in label, (part, label)
    real = sv.summary_label(dict(PROV, data={"kind": "dcase2021", "synthetic": False}))
    assert real.startswith("real DCASE 2021 Task 2 data (downloaded from Zenodo") and "SYNTHETIC" not in real
    for kind in ("dcase_layout", "real"):  # "real": what an earlier minasd wrote for any root without a manifest
        unknown = sv.summary_label(dict(PROV, data={"kind": kind, "synthetic": False}))
        assert unknown.startswith("DCASE layout, no minasd synth manifest (provenance unknown)"), unknown


def test_seeds_by_variant_reads_both_provenance_layouts():
    old = {"seeds": {"0": {"wall_s_per_type": {}}}, "variants_per_seed": {"0": ["proposed", "wo_h"]}}
    assert sv.seeds_by_variant(old) == {"proposed": [0], "wo_h": [0]}
    assert sv.seeds_by_variant(PROV) == {"proposed": [0, 1], "no_mixup": [0], "twfr_gmm": [0, 1],
                                         "gmm_meanstd": [0, 1]}


def test_type_outcomes_win_lose_and_tie(summary):
    t = sv.type_outcomes(summary).set_index("machine")  # against gmm_meanstd by default
    assert list(t.index) == ["fan", "pump", "valve", "All"]
    assert t.loc["fan", "outcome"] == "wins" and t.loc["fan", "lo"] > 0
    assert t.loc["valve", "outcome"] == "loses" and t.loc["valve", "hi"] < 0
    assert t.loc["pump", "outcome"] == "tie" and t.loc["pump", "diff"] == 0 == t.loc["pump", "lo"]
    assert (t["n_seeds"] == 2).all() and (t["seeds"] == "0,1").all()
    assert sv.type_outcomes(summary, "proposed", "wo_h") is None  # a pair that was not bootstrapped


def test_outcomes_by_system_and_the_overview_cover_every_compared_system(summary):
    assert sv.compared_systems(summary) == ["twfr_gmm", "gmm_meanstd"]  # SYSTEMS order; no AE in this summary
    assert sv.compared_systems(summary, "no_mixup") == []
    long = sv.outcomes_by_system(summary)
    assert list(long.columns[:2]) == ["system", "machine"] and list(dict.fromkeys(long["system"])) == \
        ["twfr_gmm", "gmm_meanstd"]
    for system in ("twfr_gmm", "gmm_meanstd"):
        pd.testing.assert_frame_equal(long[long["system"] == system].drop(columns="system").reset_index(drop=True),
                                      sv.type_outcomes(summary, "proposed", system))
    assert sv.outcomes_by_system(summary, systems=["ae_dcase2021"]) is None
    ov = sv.systems_overview(summary)
    assert list(ov.index) == ["proposed", "twfr_gmm", "gmm_meanstd"]
    assert ov.loc["gmm_meanstd", "label"] == "GMM on log-mel mean/std"
    over = summary["tables"]["types_over_seeds"].set_index(["variant", "machine"])
    assert ov.loc["twfr_gmm", "mean"] == pytest.approx(over.loc[("twfr_gmm", "All"), "mean"])
    assert ov.loc["twfr_gmm", "std"] == pytest.approx(over.loc[("twfr_gmm", "All"), "std"])
    for system in ("twfr_gmm", "gmm_meanstd"):  # fan won, valve lost, pump tied, by construction
        assert ov.loc[system, ["wins", "losses", "ties", "types"]].tolist() == [1, 1, 1, 3]
        allrow = sv.type_outcomes(summary, "proposed", system).set_index("machine").loc["All"]
        assert ov.loc[system, "diff"] == allrow["diff"] and ov.loc[system, "outcome"] == allrow["outcome"]
    assert np.isnan(ov.loc["proposed", "diff"])


def test_class_table_means_seeds_then_types(summary):
    t = sv.class_table(summary)
    assert list(t.columns) == ["proposed", "no_mixup", "twfr_gmm", "gmm_meanstd"]  # experiment.VARIANTS order
    assert list(t.index) == [(m, c) for m in [*PRESENT, sv.TYPES_MEAN] for c in ("subtle", "gross")]
    raw = summary["tables"]["auc_by_class"]
    fan = raw[(raw["variant"] == "proposed") & (raw["machine"] == "fan") & (raw["severity_class"] == "gross")]
    assert len(fan) == 2 and t.loc[("fan", "gross"), "proposed"] == pytest.approx(fan["auc"].mean())
    assert t.loc[(sv.TYPES_MEAN, "subtle"), "gmm_meanstd"] == pytest.approx(
        np.mean([t.loc[(m, "subtle"), "gmm_meanstd"] for m in PRESENT]))
    assert t.loc[("fan", "gross"), "proposed"] > 0.95 and t.loc[("valve", "subtle"), "gmm_meanstd"] > 0.95


def test_caught_missed_totals_add_up(summary):
    with pytest.raises(ValueError, match="several pairs"):  # one pair per system: name it
        sv.caught_missed_totals(summary)
    assert sv.caught_pairs(summary) == [("proposed", "twfr_gmm"), ("proposed", "gmm_meanstd")]
    t = sv.caught_missed_totals(summary, variant_b="gmm_meanstd")
    raw = summary["tables"]["caught_missed"]
    raw = raw[raw["variant_b"] == "gmm_meanstd"]
    assert list(t.index) == [(m, c) for m in [*PRESENT, sv.ALL_TYPES] for c in ("subtle", "gross")]
    assert t.loc[(sv.ALL_TYPES, "gross"), "a_only"] == raw.loc[raw["severity_class"] == "gross", "a_only"].sum()
    assert (t["net"] == t["a_only"] - t["b_only"]).all()
    assert (t[["a_only", "b_only", "both", "neither"]].sum(axis=1) == t["n"]).all()
    assert t.loc[("fan", "gross"), "net"] > 0 > t.loc[("valve", "subtle"), "net"]
    by_kind = sv.caught_missed_totals(summary, ("machine", "severity_class", "anomaly_kind"), "twfr_gmm")
    assert by_kind.loc[("fan", "gross", "knock"), "n"] == 2 * 3 * 7  # 2 seeds x 3 sections x 7 knocks
    assert sv.caught_missed_totals(summary, variant_b="ae_dcase2021") is None
    with pytest.raises(ValueError, match="severity_class"):
        sv.caught_missed_totals(summary, ("machine",), "twfr_gmm")


def _pct(x: float, d: int = 2) -> str:
    return f"{100 * x:.{d}f} %"


def test_verdict_states_the_numbers_against_every_system(summary):
    text = sv.verdict(summary)
    over = summary["tables"]["types_over_seeds"].set_index(["variant", "machine"])
    for v in ("proposed", "twfr_gmm", "gmm_meanstd"):
        r = over.loc[(v, "All")]
        assert (f"{sv.variant_label(v)} {_pct(r['mean'])} ± {100 * r['std']:.2f} (mean ± standard deviation over "
                f"seeds 0, 1)") in text
    p = "proposed (serial two-BCE)"
    for v in ("twfr_gmm", "gmm_meanstd"):
        name = sv.variant_label(v)
        paragraph = next(x for x in text.split("\n\n") if x.startswith(f"**Against {name}.**"))
        allrow = sv.type_outcomes(summary, "proposed", v).set_index("machine").loc["All"]
        assert (f"{p} minus {name} = {100 * allrow['diff']:+.2f} points of All/Har-mean, 95 % interval "
                f"[{100 * allrow['lo']:+.2f}, ") in paragraph
        word = {"wins": f"{p} beats {name}", "loses": f"{p} loses to {name}", "tie": "cannot be told apart"}
        assert word[allrow["outcome"]] in paragraph
        assert f"{p} wins on 1 (fan), loses on 1 (valve) and ties on 1 (pump) of 3 types" in paragraph
    # absent types are named and said to be left out
    assert "fan, pump and valve (3 of 7)" in text and "gearbox, slider, ToyCar and ToyTrain" in text
    # by class: proposed ahead of the mean/std GMM on gross, behind on subtle (by construction)
    assert "ahead of GMM on log-mel mean/std on gross anomalies" in text
    assert "behind GMM on log-mel mean/std on subtle anomalies" in text
    cls = sv.class_table(summary).loc[sv.TYPES_MEAN]
    assert (f"AUC {p} {_pct(cls.loc['gross', 'proposed'], 1)}; TWFR-GMM {_pct(cls.loc['gross', 'twfr_gmm'], 1)} "
            f"({100 * (cls.loc['gross', 'proposed'] - cls.loc['gross', 'twfr_gmm']):+.1f} points") in text
    for v in ("twfr_gmm", "gmm_meanstd"):
        cm = sv.caught_missed_totals(summary, ("severity_class",), v)
        assert (f"against {sv.variant_label(v)}, {p} catches {cm['a_only'].sum()} anomalous clips that it misses and "
                f"misses {cm['b_only'].sum()} that it catches") in text
    # the ablation, on its one seed, is worse than proposed by construction (it sees anomalies weakly)
    assert re.search(r"w/o Mixup -\d+\.\d\d \[-\d+\.\d\d, -\d+\.\d\d\] \(worse, seed 0\)", text), text
    only = sv.verdict(summary, systems=["twfr_gmm"])
    assert "**Against TWFR-GMM.**" in only and "Against GMM on log-mel" not in only


def test_verdict_warns_when_seeds_cover_other_types(tmp_path):
    scores, labels = _scores(12, 12)
    scores = scores[~((scores["machine"] == "valve") & (scores["seed"] == 1))]  # seed 1 has not reached valve
    _write_summary(tmp_path / "s", scores, labels)
    text = sv.verdict(sv.load_summary(tmp_path / "s"))
    assert "seed 0: fan, pump, valve; seed 1: fan, pump" in text
    assert "without valve (incomplete)" in text  # the bootstrap's All leaves valve out


def test_caught_missed_by_type_names_the_kind_each_side_catches_most(summary):
    lines = sv.caught_missed_by_type(summary, "gmm_meanstd").splitlines()
    assert [ln.split("**")[1] for ln in lines] == PRESENT
    raw = summary["tables"]["caught_missed"]
    raw = raw[raw["variant_b"] == "gmm_meanstd"].set_index(["machine", "anomaly_kind"])
    fan_a = int(raw.loc["fan", "a_only"].sum())
    top = raw.loc["fan"].sort_values("a_only", ascending=False).iloc[0]
    assert lines[0].startswith(f"- **fan**: proposed (serial two-BCE) alone catches {fan_a} (most: {top.name}, ")
    # on fan the proposed method scores gross anomalies highest, on valve the mean/std GMM subtle ones
    assert ", gross, " in lines[0].split(";")[0] and ", subtle, " in lines[2].split(";")[1]
    assert "GMM on log-mel mean/std alone catches" in lines[2]
    assert sv.caught_missed_by_type(summary, "ae_dcase2021") == ""
