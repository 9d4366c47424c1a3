"""Chapter 12's helpers (minasd.book): the clips and recordings of a type made by minasd prepare."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from minasd.book import prepared_labels, recording_credit
from minasd.studies import analysis


def _manifest():
    """Section 03: normal recordings A (2 clips) and B (1 clip), anomalous C (class 1_broken, 2 clips);
    section 00: one normal and one anomalous recording (2_broken); a training recording too."""
    def rec(source, cls, section, clips):
        return {"source": source, "class": cls, "label": int(cls != "normal"), "section": section, "clips": clips}

    ev = "eval_data/uav/source_test/section_03_source_test_{:04d}.wav"
    dv = "dev_data/uav/source_test/section_00_source_test_{}_{:04d}.wav"
    return {"machine_type": "uav", "recordings": [
        rec("normal/a.wav", "normal", 3, [ev.format(0), ev.format(1)]),
        rec("normal/b.wav", "normal", 3, [ev.format(2)]),
        rec("1_broken/c.wav", "1_broken", 3, [ev.format(3), ev.format(4)]),
        rec("normal/d.wav", "normal", 0, [dv.format("normal", 0)]),
        rec("2_broken/e.wav", "2_broken", 0, [dv.format("anomaly", 1)]),
        rec("normal/t.wav", "normal", 0, ["dev_data/uav/train/section_00_source_train_normal_0000.wav"]),
    ]}


def _scores(seed=0, shift=0.0):
    names = [f"section_03_source_test_{i:04d}.wav" for i in range(5)]
    rows = [{"machine": "uav", "section": 3, "clip": n, "label": y, "variant": "proposed", "seed": seed, "score": s}
            for n, y, s in zip(names, [0, 0, 0, 1, 1], [0.1 + shift, 0.2, 0.9, 0.5, 0.95])]
    rows += [{"machine": "uav", "section": 0, "clip": f"section_00_source_test_{k}_{i:04d}.wav", "label": y,
              "variant": "proposed", "seed": seed, "score": s}
             for i, (k, y, s) in enumerate([("normal", 0, 0.3), ("anomaly", 1, 0.2)])]
    return pd.DataFrame(rows)


def test_prepared_labels_give_one_row_per_clip_with_its_recording_and_class():
    lab = prepared_labels(_manifest())
    assert len(lab) == 8
    c = lab[lab["recording"] == "1_broken/c.wav"]
    assert c["anomaly_kind"].tolist() == ["1_broken", "1_broken"] and c["label"].tolist() == [1, 1]
    assert c["severity"].tolist() == [1.0, 1.0] and c["severity_class"].tolist() == ["anomaly"] * 2
    normal = lab[lab["label"] == 0]
    assert normal["anomaly_kind"].isna().all() and normal["severity"].isna().all()
    assert set(normal["class"]) == {"normal"}


def test_the_labels_split_the_auc_by_class_as_the_analysis_does():
    t = analysis.auc_by_kind(_scores(), prepared_labels(_manifest()))  # sections 03-05 by default
    assert t[["anomaly_kind", "n_anomalous"]].to_numpy().tolist() == [["1_broken", 2]]
    expected = roc_auc_score([0, 0, 0, 1, 1], [0.1, 0.2, 0.9, 0.5, 0.95])
    assert t["auc"].iloc[0] == pytest.approx(expected) == pytest.approx(5 / 6)


def test_recording_credit_counts_each_pair_from_both_sides():
    r = recording_credit(_scores(), prepared_labels(_manifest()), "proposed").set_index("recording")
    # C: 0.5 beats 0.1 and 0.2 but not 0.9; 0.95 beats all three -> 5 of 6
    assert r.loc["1_broken/c.wav", "ranked_right"] == pytest.approx(5 / 6)
    assert r.loc["normal/a.wav", "ranked_right"] == pytest.approx(1.0)  # both clips below both anomalies
    assert r.loc["normal/b.wav", "ranked_right"] == pytest.approx(0.5)  # 0.9: below 0.95 only
    assert r.index[0] == "normal/b.wav" and r.loc["normal/a.wav", "clips"] == 2
    assert set(r["section"]) == {3}  # section 00 is not reported by default
    dev = recording_credit(_scores(), prepared_labels(_manifest()), "proposed", sections=[0]).set_index("recording")
    assert dev["ranked_right"].tolist() == [0.0, 0.0]


def test_recording_credit_pools_seeds_counts_ties_half_and_sums_to_the_section_auc():
    scores = pd.concat([_scores(0), _scores(1, shift=0.4)])  # seed 1: the first normal clip ties with 0.5
    lab = prepared_labels(_manifest())
    r = recording_credit(scores, lab, "proposed").set_index("recording")
    # A over both seeds: seed 0 4 of 4; seed 1: 0.5 vs (0.5, 0.95) -> 0.5 + 1, 0.2 -> 2: 3.5 of 4
    assert r.loc["normal/a.wav", "ranked_right"] == pytest.approx(7.5 / 8)
    for seed, part in scores.groupby("seed"):
        p = part[part["section"] == 3]
        auc = roc_auc_score(p["label"], p["score"])
        c = recording_credit(part, lab, "proposed").set_index("recording").loc["1_broken/c.wav", "ranked_right"]
        assert c == pytest.approx(auc)  # the only anomalous recording: its credit is the section's AUC


def test_recording_credit_refuses_scores_of_another_data_set():
    other = _scores().assign(clip=lambda t: "x_" + t["clip"])
    with pytest.raises(ValueError, match="not in the labels"):
        recording_credit(other, prepared_labels(_manifest()), "proposed")
    empty = recording_credit(_scores(), prepared_labels(_manifest()), "no_such_variant")
    assert empty.empty and list(empty.columns) == ["section", "recording", "class", "clips", "ranked_right"]
    assert np.isfinite(recording_credit(_scores(), prepared_labels(_manifest()), "proposed")["ranked_right"]).all()


def test_the_uav_caption_names_the_development_section_it_has(tmp_path):
    """The UAV root has one development section (00): no caption says the choices were made on 00-02."""
    import json
    from pathlib import Path

    from minasd.provenance import data_manifest
    from minasd.studies.summary_view import summary_label

    repo = Path(__file__).resolve().parents[1]
    prov = json.loads((repo / "results/uav/summary/provenance.json").read_text())
    assert "00-02" not in summary_label(prov)  # committed record: no dev_sections, generic words
    (tmp_path / "minasd_prepare.json").write_bytes((repo / "results/uav/data/minasd_prepare.json").read_bytes())
    data = data_manifest(tmp_path)
    assert data["dev_sections"] == [0]
    assert "chosen on section 00)" in summary_label({**prov, "data": data})
