"""Tests of minasd.metrics: AUC/pAUC on known orderings, harmonic means, Table II, DCASE files."""
import csv

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from minasd.dcase_files import (anomaly_score_filename, decision_filename, read_scores_csv, write_anomaly_scores,
                                write_decisions)
from minasd.metrics import auc_pauc, harmonic_mean, roc_points, section_table, summary_row


def test_auc_pauc_known_orderings():
    y = np.array([0] * 10 + [1] * 10)
    perfect = np.arange(20.0)
    assert auc_pauc(y, perfect) == (1.0, 1.0)
    assert auc_pauc(y, -perfect) == (0.0, pytest.approx(0.5 * (1 + (0 - 0.005) / (0.1 - 0.005))))
    # constant scores: AUC 0.5 and, standardised (McClish), pAUC 0.5
    assert auc_pauc(y, np.zeros(20)) == (0.5, pytest.approx(0.5))
    # one swap of the top normal above the lowest anomaly: AUC = 1 - 1/100
    s = perfect.copy()
    s[9], s[10] = s[10], s[9]
    auc, pauc = auc_pauc(y, s)
    assert auc == pytest.approx(0.99)
    # the swap costs area only at FPR 0.1 (first normal ranked above one anomaly): pAUC < 1
    assert pauc == pytest.approx(roc_auc_score(y, s, max_fpr=0.1)) and pauc < 1.0


def test_auc_errors_name_section():
    with pytest.raises(ValueError, match="section 03: .*all 4 clips are normal"):
        auc_pauc([0, 0, 0, 0], [1, 2, 3, 4], section=3)
    with pytest.raises(ValueError, match="NaN"):
        auc_pauc([0, 1], [0.0, np.nan])
    with pytest.raises(ValueError, match="0 \\(normal\\) or 1"):
        auc_pauc([0, 2], [0.0, 1.0])


def test_harmonic_mean():
    assert harmonic_mean([0.5, 1.0]) == pytest.approx(2 / 3)
    assert harmonic_mean([0.8] * 5) == pytest.approx(0.8)
    assert harmonic_mean([1, 2, 4]) == pytest.approx(3 / (1 + 0.5 + 0.25))
    for bad in ([0.5, 0.0], [0.5, -1.0], [], [np.nan]):
        with pytest.raises(ValueError):
            harmonic_mean(bad)


def test_section_table_definitions():
    recs = [dict(machine="pump", section=3, auc=0.8, pauc=0.5), dict(machine="pump", section=4, auc=0.6, pauc=0.4),
            dict(machine="fan", section=3, auc=0.9, pauc=0.7)]
    t = section_table(recs)
    assert list(t["machine"]) == ["fan", "fan", "pump", "pump", "pump", "All"]  # config order, then All
    assert list(t["section"]) == ["03", "Har-mean", "03", "04", "Har-mean", "Har-mean"]
    pump = t[(t.machine == "pump") & (t.section == "Har-mean")].iloc[0]
    assert pump.AUC == pytest.approx(100 * 2 / (1 / 0.8 + 1 / 0.6))
    assert pump.hmean == pytest.approx(100 * 4 / (1 / 0.8 + 1 / 0.5 + 1 / 0.6 + 1 / 0.4))  # all 2n values
    allrow = t.iloc[-1]
    vals = [0.8, 0.5, 0.6, 0.4, 0.9, 0.7]
    assert allrow.hmean == pytest.approx(100 * 6 / sum(1 / v for v in vals))
    row = summary_row(t)
    assert list(row.index) == ["fan", "pump", "All/Har-mean"] and row["pump"] == pump.hmean
    assert section_table(recs, percent=False).iloc[-1].hmean == pytest.approx(allrow.hmean / 100)
    with pytest.raises(ValueError, match="pump section 03 appears more than once"):
        section_table(recs + [recs[0]])
    with pytest.raises(ValueError, match="fan section 05 has AUC=0.0"):
        section_table(recs + [dict(machine="fan", section=5, auc=0.0, pauc=0.47)])


def test_roc_points_compact_and_monotone():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(500), np.ones(500)].astype(int)
    s = rng.normal(size=1000) + y
    fpr, tpr = roc_points(y, s, max_points=50)
    assert len(fpr) <= 50 and len(fpr) == len(tpr)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    # compact curve's trapezoid area stays close to the AUC
    assert np.trapezoid(tpr, fpr) == pytest.approx(auc_pauc(y, s)[0], abs=0.02)


def _evaluator_auc(score_csv, truth):
    """A small re-implementation of the DCASE evaluator's reading: csv rows of two fields."""
    with open(score_csv, newline="") as fh:
        scores = {row[0]: float(row[1]) for row in csv.reader(fh)}
    names = sorted(truth)
    return roc_auc_score([truth[n] for n in names], [scores[n] for n in names])


def test_dcase_files_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    names = [f"/data/eval/ToyCar/test/section_03_source_test_{i:04d}.wav" for i in range(20)]
    y = np.r_[np.zeros(10), np.ones(10)].astype(int)
    s = rng.normal(size=20) + y * 1e-9 + y  # full precision matters for ties
    path = write_anomaly_scores(tmp_path, "ToyCar", 3, names, s)
    assert path.name == "anomaly_score_ToyCar_section_03_test.csv"
    first = path.read_text().splitlines()[0]
    assert first.startswith("section_03_source_test_0000.wav,")  # bare name, no header
    got_names, got = read_scores_csv(path)
    assert got_names == [n.rsplit("/", 1)[1] for n in names]
    np.testing.assert_array_equal(got, s)  # exact round trip
    truth = dict(zip(got_names, y))
    assert _evaluator_auc(path, truth) == pytest.approx(auc_pauc(y, s)[0], abs=0)
    with pytest.raises(FileExistsError, match="anomaly_score_ToyCar_section_03_test.csv"):
        write_anomaly_scores(tmp_path, "ToyCar", 3, names, s)
    write_anomaly_scores(tmp_path, "ToyCar", 3, names, s * 2, overwrite=True)
    np.testing.assert_array_equal(read_scores_csv(path)[1], s * 2)
    d = write_decisions(tmp_path, "ToyCar", 3, names, (s > 0.5).astype(int))
    assert d.name == "decision_result_ToyCar_section_03_test.csv"
    assert d.read_text().splitlines()[0] in ("section_03_source_test_0000.wav,0", "section_03_source_test_0000.wav,1")
    np.testing.assert_array_equal(read_scores_csv(d)[1], (s > 0.5).astype(int))


def test_dcase_file_errors(tmp_path):
    with pytest.raises(ValueError, match="2 file names but 3"):
        write_anomaly_scores(tmp_path, "fan", 0, ["a.wav", "b.wav"], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="NaN"):
        write_anomaly_scores(tmp_path, "fan", 0, ["a.wav"], [np.nan])
    with pytest.raises(ValueError, match="0 or 1"):
        write_decisions(tmp_path, "fan", 0, ["a.wav"], [2])
    with pytest.raises(ValueError, match="cannot be written"):
        write_decisions(tmp_path, "fan", 0, ["a,b.wav"], [1])
    bad = tmp_path / "bad.csv"
    bad.write_text("a.wav,1.0\nb.wav,1.0,extra\n")
    with pytest.raises(ValueError, match="bad.csv: line 2 has 3 fields"):
        read_scores_csv(bad)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_scores_csv(tmp_path / "nope.csv")
    assert not list(tmp_path.glob("anomaly_score_*"))  # nothing half-written


def test_dcase_file_names_per_domain(tmp_path):
    """The DCASE 2021 evaluator reads one file per type, section and domain (source_test, target_test)."""
    assert anomaly_score_filename("fan", 3, "source") == "anomaly_score_fan_section_03_source_test.csv"
    assert anomaly_score_filename("ToyCar", 5, "target") == "anomaly_score_ToyCar_section_05_target_test.csv"
    assert decision_filename("fan", 4, "target") == "decision_result_fan_section_04_target_test.csv"
    assert anomaly_score_filename("fan", 3) == "anomaly_score_fan_section_03_test.csv"  # names without a domain
    with pytest.raises(ValueError, match="domain must be one of"):
        anomaly_score_filename("fan", 3, "target_test")
    names = ["section_03_target_test_0001.wav", "section_03_target_test_0000.wav"]
    path = write_anomaly_scores(tmp_path, "fan", 3, names, [0.5, 1.5], domain="target")
    assert path.name == "anomaly_score_fan_section_03_target_test.csv"
    assert path.read_text() == "section_03_target_test_0001.wav,0.5\nsection_03_target_test_0000.wav,1.5\n"
    d = write_decisions(tmp_path, "fan", 3, names, [0, 1], domain="target")
    assert d.name == "decision_result_fan_section_03_target_test.csv" and read_scores_csv(d)[1].tolist() == [0, 1]


def test_one_rule_for_a_harmonic_mean_with_a_zero_or_missing_auc():
    """An AUC of 0 is the worst result (0), a missing one is not reported (None/NaN), whatever path computes it:
    the metrics function itself, the selection on sections 00-02, the experiment's tables and the summaries."""
    import pandas as pd

    from minasd.studies.analysis import type_summary
    from minasd.studies.experiment import summary_table
    from minasd.metrics import hmean_or_none
    from minasd.selection import select_on_dev

    assert hmean_or_none([0.0, 0.8]) == 0.0
    assert hmean_or_none([0.8, None]) is None and hmean_or_none([0.8, float("nan")]) is None
    assert hmean_or_none([]) is None
    assert hmean_or_none([0.5, 1.0]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        hmean_or_none([-0.1, 0.5])
    # selection: the zero candidate is the worst valid one, the missing one is invalid (skipped)
    rows = [dict(p=1, section=0, auc=0.0, pauc=0.5), dict(p=2, section=0, auc=None, pauc=0.5),
            dict(p=4, section=0, auc=0.2, pauc=0.2)]
    chosen, table = select_on_dev(rows, keys=("p",), dev_sections=(0,))
    by_p = {r["p"]: r for r in table}
    assert chosen == {"p": 4} and by_p[1]["dev_hmean"] == 0.0 and not by_p[1]["skipped"]
    assert by_p[2]["dev_hmean"] is None and by_p[2]["skipped"]
    # the experiment's tables
    recs = [dict(variant="v", machine="fan", section=s, auc=0.0 if s == 3 else 0.8, pauc=0.6) for s in (3, 4, 5)]
    recs += [dict(variant="v", machine="pump", section=s, auc=None if s == 3 else 0.8, pauc=0.6) for s in (3, 4, 5)]
    rows = {r["machine"]: r for r in summary_table(recs, ["v"])}
    assert rows["fan"]["hmean"] == 0.0 and rows["pump"]["hmean"] is None
    # the results summaries (analysis)
    secs = pd.DataFrame([dict(variant="v", seed=0, machine="fan", section=s, auc=0.0 if s == 3 else 0.8, pauc=0.6)
                         for s in (3, 4, 5)])
    summ = type_summary(secs).set_index("machine")
    assert summ.loc["fan", "hmean"] == 0.0 and summ.loc["fan", "auc"] == 0.0 and summ.loc["fan", "pauc"] > 0
