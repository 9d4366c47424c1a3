"""Tests of minasd.studies.analysis (and its two figures in minasd.viz) on small hand-made score tables."""

import matplotlib

matplotlib.use("Agg")  # tests only; the package never chooses a backend

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from minasd.studies import analysis as A  # noqa: E402
from minasd import viz  # noqa: E402
from minasd.config import MACHINE_TYPES, SECTIONS  # noqa: E402
from minasd.metrics import section_table  # noqa: E402

KINDS = {"subtle": ("shift", "tone"), "gross": ("rattle", "knock")}


def make_data(machines=("fan", "valve"), sections=(3, 4, 5), n_normal=20, n_anom=20, variants=None,
              seeds=(0,), seed=0):
    """(scores, labels) shaped like the experiment's per-clip table and the factory's labels file.

    Anomalous clip i of a section has kind ``KINDS[class][i // 2 % 2]``, class subtle for
    even i, gross for odd i (as the factory alternates), severity uniform in (0.1, 1).
    ``variants``: name -> f(rng, label, kind, severity) -> score.
    """
    rng = np.random.default_rng(seed)
    variants = variants or {"proposed": lambda r, y, k, s: r.normal() + 2 * y}
    lab_rows, score_rows = [], []
    for m in machines:
        for sec in sections:
            for i in range(n_normal + n_anom):
                clip = f"section_{sec:02d}_source_test_{i:04d}.wav"
                y = int(i >= n_normal)
                j = i - n_normal
                cls = ("subtle", "gross")[j % 2] if y else "none"
                kind = KINDS[cls][(j // 2) % 2] if y else "normal"
                sev = float(rng.uniform(0.1, 1.0)) if y else 0.0
                lab_rows.append(dict(relpath=f"eval_data/{m}/source_test/{clip}", machine=m, section=sec, label=y,
                                     anomaly_kind=kind, severity_class=cls, severity=sev))
                for v, f in variants.items():
                    for sd in seeds:
                        score_rows.append(dict(machine=m, section=sec, clip=clip, label=y, variant=v, seed=sd,
                                               score=float(f(rng, y, kind, sev))))
    return pd.DataFrame(score_rows), pd.DataFrame(lab_rows)


# --- fast AUC / pAUC --------------------------------------------------------------------


@pytest.mark.parametrize("ties", [False, True])
def test_fast_auc_pauc_equals_sklearn(ties):
    rng = np.random.default_rng(1 + ties)
    for _ in range(50):
        n0, n1 = rng.integers(1, 60, 2)
        y = np.r_[np.zeros(n0, int), np.ones(n1, int)]
        s = rng.integers(0, 8, n0 + n1).astype(float) if ties else rng.normal(size=n0 + n1) + y
        for p in (0.1, 0.03, 0.5, 1.0):
            auc, pauc = A.fast_auc_pauc(y, s, p)
            assert abs(auc - roc_auc_score(y, s)) < 1e-9
            assert abs(pauc - (roc_auc_score(y, s, max_fpr=p) if p < 1 else roc_auc_score(y, s))) < 1e-9


def test_counts_of_resampled_clips_equal_sklearn_on_the_resampled_clips():
    """The bootstrap's counts path: clip multiplicities per tie group give sklearn's value on the drawn clips."""
    rng = np.random.default_rng(3)
    s0, s1 = rng.integers(0, 12, 30).astype(float), rng.integers(3, 15, 25).astype(float)
    g0, g1, n = A.tie_groups(s0, s1)
    d0, d1 = rng.integers(0, 30, (50, 30)), rng.integers(0, 25, (50, 25))
    a = np.stack([np.bincount(g0[d], minlength=n) for d in d0])
    b = np.stack([np.bincount(g1[d], minlength=n) for d in d1])
    auc, pauc = A.auc_pauc_from_counts(a, b, 0.1)
    for i in range(50):
        y, s = np.r_[np.zeros(30), np.ones(25)], np.r_[s0[d0[i]], s1[d1[i]]]
        assert abs(auc[i] - roc_auc_score(y, s)) < 1e-9
        assert abs(pauc[i] - roc_auc_score(y, s, max_fpr=0.1)) < 1e-9


# --- section metrics and summaries ------------------------------------------------------


def test_perfect_ranking_gives_one_and_reversed_gives_zero():
    df, _ = make_data(variants={"perfect": lambda r, y, k, s: y + 0.01 * r.random(),
                                "reversed": lambda r, y, k, s: -y - 0.01 * r.random()})
    m = A.section_metrics(df)
    perf = m.sections[m.sections["variant"] == "perfect"]
    assert (perf["auc"] == 1.0).all() and (perf["pauc"] == 1.0).all()
    summ = m.summary.set_index(["variant", "machine"])
    assert summ.loc[("perfect", "All"), "hmean"] == 1.0 and summ.loc[("perfect", "fan"), "hmean"] == 1.0
    assert summ.loc[("reversed", "fan"), "auc"] == 0.0  # AUC 0: the harmonic mean's limit, not an error
    assert summ.loc[("reversed", "fan"), "hmean"] == 0.0
    assert m.sections.groupby("variant").size().tolist() == [6, 6]  # 2 types x 3 sections
    assert (m.sections["n_normal"] == 20).all() and (m.sections["n_anomalous"] == 20).all()


def test_summary_equals_table_ii_of_metrics():
    df, _ = make_data(machines=("fan", "pump", "valve"))
    m = A.section_metrics(df)
    ref = section_table(m.sections.to_dict("records"), percent=False)
    ref = ref[ref["section"] == "Har-mean"].set_index("machine")
    ours = m.summary.set_index("machine")
    for machine in ("fan", "pump", "valve", "All"):
        for col, rcol in (("hmean", "hmean"), ("auc", "AUC"), ("pauc", "pAUC")):
            assert ours.loc[machine, col] == pytest.approx(ref.loc[machine, rcol], abs=1e-12)


def test_incomplete_sections_give_none_with_reason():
    df, _ = make_data(machines=("fan", "valve"))
    df = df[~((df["machine"] == "valve") & (df["section"] == 5))]
    summ = A.section_metrics(df).summary.set_index("machine")
    assert pd.isna(summ.loc["valve", "hmean"]) and pd.isna(summ.loc["valve", "auc"])
    assert "05" in summ.loc["valve", "reason"] and summ.loc["valve", "n_sections"] == 2
    assert summ.loc["fan", "reason"] == ""
    # All covers the complete types only, and says which one it left out
    assert summ.loc["All", "hmean"] == pytest.approx(summ.loc["fan", "hmean"], abs=1e-15)
    assert "valve" in summ.loc["All", "reason"]
    # no complete type at all: All is missing too, with a reason
    dev_only = A.section_metrics(df[df["section"] == 3]).summary.set_index("machine")
    assert dev_only["hmean"].isna().all() and "no machine type" in dev_only.loc["All", "reason"]


def test_dev_sections_are_measured_but_not_summarised():
    df, _ = make_data(machines=("fan",), sections=SECTIONS)
    m = A.section_metrics(df)
    assert sorted(m.sections["section"]) == list(SECTIONS)
    assert m.summary.set_index("machine").loc["fan", "n_sections"] == 3
    only_eval = A.section_metrics(df[df["section"] >= 3]).summary.set_index("machine")
    assert m.summary.set_index("machine").loc["fan", "hmean"] == only_eval.loc["fan", "hmean"]


def test_bad_score_tables_are_refused():
    df, _ = make_data(machines=("fan",))
    with pytest.raises(ValueError, match="missing columns"):
        A.section_metrics(df.drop(columns="seed"))
    with pytest.raises(ValueError, match="NaN"):
        A.section_metrics(df.assign(score=np.where(df.index == 3, np.nan, df["score"])))
    with pytest.raises(ValueError, match="scored twice"):
        A.section_metrics(pd.concat([df, df.iloc[:1]]))
    with pytest.raises(ValueError, match="normal and anomalous"):
        A.section_metrics(df[df["label"] == 1])


def test_seed_summary_mean_and_spread():
    t = pd.DataFrame({"variant": ["p"] * 4 + ["b"], "machine": ["fan"] * 3 + ["valve", "fan"],
                      "seed": [0, 1, 2, 0, 0], "hmean": [0.6, 0.7, 0.8, np.nan, 0.5]})
    s = A.seed_summary(t).set_index(["variant", "machine"])
    assert s.loc[("p", "fan"), "mean"] == pytest.approx(0.7)
    assert s.loc[("p", "fan"), "std"] == pytest.approx(0.1)
    assert (s.loc[("p", "fan"), "min"], s.loc[("p", "fan"), "max"]) == (0.6, 0.8)
    assert s.loc[("p", "fan"), "n_seeds"] == 3 and s.loc[("p", "fan"), "seeds"] == "0,1,2"
    assert np.isnan(s.loc[("b", "fan"), "std"]) and s.loc[("b", "fan"), "n_seeds"] == 1
    assert ("p", "valve") not in s.index  # the incomplete seed is left out, not averaged as 0


# --- paired bootstrap -------------------------------------------------------------------

TWO = {"proposed": lambda r, y, k, s: r.normal() + 1.5 * y, "gmm_meanstd": lambda r, y, k, s: r.normal() + 0.7 * y}


def test_bootstrap_of_a_variant_against_itself_is_exactly_zero():
    df, _ = make_data(seeds=(0, 1))
    twin = df.assign(variant="twin")
    res = A.paired_bootstrap(pd.concat([df, twin]), "proposed", "twin", n_boot=200)
    assert (res[["diff", "lo", "hi", "se"]].to_numpy() == 0).all()
    assert list(res["machine"]) == ["fan", "valve", "All"]


def test_bootstrap_point_estimate_is_the_seed_mean_of_section_metrics():
    df, _ = make_data(variants=TWO, seeds=(0, 1, 2))
    res = A.paired_bootstrap(df, "proposed", "gmm_meanstd", n_boot=300).set_index("machine")
    summ = A.section_metrics(df).summary
    per = summ.pivot_table(index="machine", columns="variant", values="hmean", aggfunc="mean")
    for machine in ("fan", "valve", "All"):
        assert res.loc[machine, "hmean_a"] == pytest.approx(per.loc[machine, "proposed"], abs=1e-12)
        assert res.loc[machine, "diff"] == pytest.approx(per.loc[machine, "proposed"] - per.loc[machine, "gmm_meanstd"],
                                                         abs=1e-12)
        assert res.loc[machine, "lo"] <= res.loc[machine, "diff"] <= res.loc[machine, "hi"]
    assert res.loc["All", "seeds"] == "0,1,2" and res.loc["All", "n_boot"] == 300


def test_bootstrap_interval_shrinks_with_more_clips():
    small, _ = make_data(machines=("fan",), n_normal=20, n_anom=20, variants=TWO)
    large, _ = make_data(machines=("fan",), n_normal=200, n_anom=200, variants=TWO)
    w = {}
    for name, df in (("small", small), ("large", large)):
        r = A.paired_bootstrap(df, "proposed", "gmm_meanstd", n_boot=400).set_index("machine").loc["All"]
        assert r["lo"] <= r["diff"] <= r["hi"]
        w[name] = r["hi"] - r["lo"]
    assert w["large"] < 0.6 * w["small"]  # about 1/sqrt(10) in theory


def test_bootstrap_is_reproducible_and_uses_shared_seeds_only():
    df, _ = make_data(variants=TWO, seeds=(0, 1, 2))
    df = df[~((df["variant"] == "gmm_meanstd") & (df["seed"] == 2))]
    r1 = A.paired_bootstrap(df, "proposed", "gmm_meanstd", n_boot=100, seed=5)
    r2 = A.paired_bootstrap(df, "proposed", "gmm_meanstd", n_boot=100, seed=5)
    pd.testing.assert_frame_equal(r1, r2)
    assert (r1["seeds"] == "0,1").all() and (r1["n_seeds"] == 2).all()
    # seed 2 of proposed plays no part: changing its scores changes nothing
    moved = df.assign(score=np.where((df["variant"] == "proposed") & (df["seed"] == 2), 0.0, df["score"]))
    pd.testing.assert_frame_equal(A.paired_bootstrap(moved, "proposed", "gmm_meanstd", n_boot=100, seed=5), r1)


def test_bootstrap_incomplete_type_and_bad_pairs():
    df, _ = make_data(variants=TWO)
    part = df[~((df["machine"] == "valve") & (df["section"] == 4) & (df["variant"] == "gmm_meanstd"))]
    res = A.paired_bootstrap(part, "proposed", "gmm_meanstd", n_boot=50).set_index("machine")
    assert np.isnan(res.loc["valve", "diff"]) and "04" in res.loc["valve", "reason"]
    assert "valve" in res.loc["All", "reason"]
    full = A.paired_bootstrap(df[df["machine"] == "fan"], "proposed", "gmm_meanstd", n_boot=50).set_index("machine")
    assert res.loc["All", "diff"] == pytest.approx(full.loc["All", "diff"], abs=1e-15)  # All over fan alone
    other = df.copy()
    other.loc[(other["variant"] == "gmm_meanstd") & (other["clip"].str.endswith("0000.wav")), "clip"] = "renamed.wav"
    with pytest.raises(ValueError, match="same test clips"):
        A.paired_bootstrap(other, "proposed", "gmm_meanstd", n_boot=10)
    with pytest.raises(ValueError, match="share no seed"):
        A.paired_bootstrap(df.assign(seed=np.where(df["variant"] == "gmm_meanstd", 9, 0)), "proposed", "gmm_meanstd")
    with pytest.raises(ValueError, match="not in the scores"):
        A.paired_bootstrap(df, "proposed", "w/o h")


def test_bootstrap_at_the_protocol_shape():
    """The results issue's shape (7 types x 6 sections x 200 clips x 2 variants x 3 seeds), fewer replicates:
    every type and All get a finite difference whose interval holds it.  (Its speed at 1000 replicates is
    a benchmark's business, not a test's.)"""
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(100, int), np.ones(100, int)]
    clips = [f"c{i:03d}.wav" for i in range(200)]
    parts = [pd.DataFrame(dict(machine=m, section=sec, clip=clips, label=y, variant=v, seed=sd,
                               score=rng.normal(size=200) + shift * y))
             for m in MACHINE_TYPES for sec in SECTIONS for v, shift in (("proposed", 1.0), ("gmm_meanstd", 0.8))
             for sd in range(3)]
    df = pd.concat(parts, ignore_index=True)
    res = A.paired_bootstrap(df, "proposed", "gmm_meanstd", n_boot=100, eval_sections=SECTIONS)
    assert len(res) == 8 and res["diff"].notna().all()


# --- by kind, by severity, caught / missed ----------------------------------------------


def _kind_scores():
    """proposed detects gross anomalies (rattle, knock) and misses subtle ones; the mean/std GMM the reverse."""
    return {"proposed": lambda r, y, k, s: r.normal() + (5.0 if k in KINDS["gross"] else 0.0),
            "gmm_meanstd": lambda r, y, k, s: r.normal() + (5.0 if k in KINDS["subtle"] else 0.0)}


def test_auc_by_kind_separates_detected_from_missed_kinds():
    df, labels = make_data(n_normal=40, n_anom=40, variants=_kind_scores(), seeds=(0, 1))
    t = A.auc_by_kind(df, labels).set_index(["variant", "seed", "machine", "anomaly_kind"])
    for kind in ("rattle", "knock"):
        assert t.loc[("proposed", 0, "fan", kind), "auc"] > 0.97
        assert abs(t.loc[("gmm_meanstd", 0, "fan", kind), "auc"] - 0.5) < 0.25
        assert t.loc[("proposed", 0, "fan", kind), "detection_rate"] > 0.9
        assert t.loc[("proposed", 0, "fan", kind), "severity_class"] == "gross"
    assert t.loc[("gmm_meanstd", 1, "valve", "shift"), "auc"] > 0.97
    assert (t["n_anomalous"] == 30).all() and (t["n_sections"] == 3).all()  # 10 clips of a kind x 3 sections
    c = A.auc_by_class(df, labels).set_index(["variant", "seed", "machine", "severity_class"])
    assert c.loc[("proposed", 0, "fan", "gross"), "auc"] > 0.97 and c.loc[("proposed", 0, "fan", "subtle"), "auc"] < 0.8


def test_all_anomalies_of_one_section_give_that_sections_auc():
    df, labels = make_data(machines=("fan",), sections=(3,), n_normal=30, n_anom=30,
                           variants={"p": lambda r, y, k, s: round(r.normal() + y, 1)})  # with ties
    clips = A.anomaly_clip_table(df, labels)
    auc = clips["wins"].sum() / clips["n_normal"].sum()
    assert auc == pytest.approx(roc_auc_score(df["label"], df["score"]), abs=1e-12)


def test_pairs_are_formed_within_sections_only():
    """A section whose scores are all shifted by +100 must not change the by-kind AUC."""
    df, labels = make_data(variants={"p": lambda r, y, k, s: r.normal() + y})
    shifted = df.assign(score=df["score"] + np.where(df["section"] == 4, 100.0, 0.0))
    pd.testing.assert_frame_equal(A.auc_by_kind(df, labels), A.auc_by_kind(shifted, labels))


def test_auc_and_detection_rate_grow_with_severity():
    df, labels = make_data(machines=("fan",), n_normal=60, n_anom=120,
                           variants={"p": lambda r, y, k, s: r.normal() + 4 * s * y})
    t = A.auc_by_severity(df, labels, bins=3)
    for cls, part in t.groupby("severity_class"):
        part = part.sort_values("bin")
        assert list(part["bin"]) == [0, 1, 2]
        assert part["auc"].is_monotonic_increasing, part
        assert part["n_anomalous"].max() - part["n_anomalous"].min() <= 1 + 3  # quantile bins: equal counts
    d = A.detection_rate_by_severity(df, labels, bins=(0.0, 0.5, 1.0))
    assert sorted(d["sev_lo"].unique()) == [0.0, 0.5] and (d["sev_hi"] > d["sev_lo"]).all()
    for _, part in d.groupby("severity_class"):
        lo, hi = part.sort_values("bin")["detection_rate"]
        assert 0 <= lo < hi <= 1
    assert d["n_anomalous"].sum() == 360
    with pytest.raises(ValueError, match="outside the bins"):
        A.detection_rate_by_severity(df, labels, bins=(0.5, 1.0))


def test_detection_threshold_is_fpr_point_one_of_the_normals():
    df, labels = make_data(machines=("fan",), sections=(3,), n_normal=100, n_anom=20)
    clips = A.anomaly_clip_table(df, labels)
    normals = df.loc[df["label"] == 0, "score"]
    assert (clips["threshold"] == np.quantile(normals, 0.9)).all()
    assert (normals > clips["threshold"].iloc[0]).sum() == 10
    assert (clips["caught"] == (clips["score"] > clips["threshold"])).all()


def test_caught_missed_counts():
    df, labels = make_data(n_normal=40, n_anom=40, variants=_kind_scores(), seeds=(0, 1))
    df = pd.concat([df, df[(df["variant"] == "proposed") & (df["seed"] == 0)].assign(seed=7)])  # a seed only proposed has
    t = A.caught_missed(df, labels).set_index(["machine", "anomaly_kind"])
    assert (t["n_seeds"] == 2).all() and (t["n"] == 60).all()  # 10 clips x 3 sections x 2 seeds
    assert (t[["a_only", "b_only", "both", "neither"]].sum(axis=1) == t["n"]).all()
    assert (t["caught_a"] == t["a_only"] + t["both"]).all() and (t["caught_b"] == t["b_only"] + t["both"]).all()
    for m in ("fan", "valve"):
        # the other system still catches about 10 % of a kind it misses (its FPR-0.1 threshold)
        assert t.loc[(m, "rattle"), "a_only"] >= 45 and t.loc[(m, "rattle"), "b_only"] <= 3
        assert t.loc[(m, "shift"), "b_only"] >= 45 and t.loc[(m, "shift"), "a_only"] <= 3
    assert set(t["variant_a"]) == {"proposed"} and set(t["variant_b"]) == {"gmm_meanstd"}


def test_labels_must_match_the_scores():
    df, labels = make_data(machines=("fan",))
    with pytest.raises(ValueError, match="no labels row"):
        A.auc_by_kind(df, labels.iloc[1:])
    flipped = labels.assign(label=np.where(labels.index == 0, 1, labels["label"]))
    with pytest.raises(ValueError, match="another label"):
        A.auc_by_kind(df, flipped)
    with pytest.raises(ValueError, match="missing columns"):
        A.auc_by_kind(df, labels.drop(columns="severity"))
    # clips of two types may share a file name: they are told apart by machine type
    df2, labels2 = make_data(machines=("fan", "valve"))
    assert len(A.anomaly_clip_table(df2, labels2)) == 2 * 3 * 20


# --- figures ----------------------------------------------------------------------------

CAP = "synthetic small set, cpu profile, seeds 0-1, sections 03-05"


def _texts(fig):
    return " ".join(t.get_text() for t in fig.findobj(Text)).replace("\n", "").replace(" ", "")


def test_plot_auc_by_severity():
    df, labels = make_data(n_normal=30, n_anom=60, variants=TWO, seeds=(0, 1))
    t = A.auc_by_severity(df, labels, bins=3)
    fig = viz.plot_auc_by_severity(t, caption=CAP)
    axes = fig.axes
    assert len(axes) == 2 and [a.get_title() for a in axes] == ["subtle", "gross"]
    assert CAP.replace(" ", "") in _texts(fig)
    for ax in axes:
        lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
        assert sorted(ln.get_label() for ln in lines) == ["gmm_meanstd", "proposed"]
        assert all(len(ln.get_xdata()) == 3 for ln in lines)
        assert ax.get_xlabel().startswith("severity") and ax.get_ylim() == (0, 1.02)
        assert len(ax.collections) == 2  # the seed bands
    assert axes[0].get_ylabel() == "AUC"
    by_type = viz.plot_auc_by_severity(A.detection_rate_by_severity(df, labels, bins=2), caption=CAP, panel="machine")
    assert [a.get_title() for a in by_type.axes] == ["fan", "valve"]
    assert by_type.axes[0].get_ylabel() == "detection rate"
    assert len([ln for ln in by_type.axes[0].get_lines() if not ln.get_label().startswith("_")]) == 4
    fig.canvas.draw()
    with pytest.raises(ValueError, match="caption"):
        viz.plot_auc_by_severity(t, caption="")


def test_plot_kind_auc():
    df, labels = make_data(variants=_kind_scores(), seeds=(0, 1))
    t = A.auc_by_kind(df, labels)
    fig = viz.plot_kind_auc(t, caption=CAP, machine="fan", variants=["proposed", "gmm_meanstd"])
    ax = [a for a in fig.axes if a.get_label() != "<colorbar>"][0]
    assert len(fig.axes) == 2  # heatmap and colour bar
    rows = [tl.get_text() for tl in ax.get_yticklabels()]
    assert rows == ["shift (subtle)", "tone (subtle)", "knock (gross)", "rattle (gross)"]  # kinds sorted in a class
    assert [tl.get_text() for tl in ax.get_xticklabels()] == ["proposed", "gmm_meanstd"]
    data = ax.images[0].get_array()
    assert data.shape == (4, 2) and data[2, 0] > 0.97 and data[0, 1] > 0.97  # mean over the two seeds
    assert CAP.replace(" ", "") in _texts(fig)
    both = viz.plot_kind_auc(t, caption=CAP)
    assert [tl.get_text() for tl in both.axes[0].get_xticklabels()] == ["gmm_meanstd", "proposed"]  # table order
    with pytest.raises(ValueError, match="not in the table"):
        viz.plot_kind_auc(t, caption=CAP, variants=["w/o h"])
    assert len(both.axes[0].get_yticklabels()) == 8 and "valve:knock(gross)" in _texts(both)
    fig.canvas.draw()
    with pytest.raises(ValueError, match="no rows"):
        viz.plot_kind_auc(t, caption=CAP, machine="pump")
