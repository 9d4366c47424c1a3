"""Tests of minasd.viz: every function returns a Figure that carries its caption, with the expected content."""
import matplotlib

matplotlib.use("Agg")  # tests only; the package never chooses a backend

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from minasd import viz  # noqa: E402
from minasd.metrics import section_table  # noqa: E402

CAP = "synthetic tiny set, seed 0, sections 03-05; AUC in %"


def _texts(fig):
    return " ".join(t.get_text() for t in fig.findobj(Text))


def _check(fig, n_axes):
    assert isinstance(fig, Figure)
    assert CAP.replace(" ", "") in _texts(fig).replace("\n", "").replace(" ", "")
    assert len([a for a in fig.axes if a.get_label() != "<colorbar>"]) == n_axes
    fig.canvas.draw()  # renders without error (and constrained layout runs)


def test_caption_required():
    with pytest.raises(ValueError, match="caption"):
        viz.plot_roc({"a": ([0, 1], [0, 1])}, caption=" ")


def test_plot_roc():
    fig = viz.plot_roc({"proposed": ([0, 0.1, 1], [0, 0.8, 1]), "w/o h": ([0, 0.5, 1], [0, 0.5, 1])}, caption=CAP)
    _check(fig, 1)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "proposed" in labels and "w/o h" in labels


def test_plot_score_distributions():
    rng = np.random.default_rng(0)
    s, y = rng.normal(size=40), np.r_[np.zeros(20), np.ones(20)]
    fig = viz.plot_score_distributions(s, y, caption=CAP, threshold=0.3, bins=10)
    _check(fig, 1)
    assert len(fig.axes[0].patches) == 20  # 10 bins x 2 classes
    assert "normal (n=20)" in _texts(fig)


def test_tsne_and_plot():
    rng = np.random.default_rng(0)
    emb = np.r_[rng.normal(size=(15, 8)), rng.normal(size=(15, 8)) + 8]
    xy = viz.tsne_2d(emb, seed=0, perplexity=5)
    assert xy.shape == (30, 2)
    np.testing.assert_allclose(viz.tsne_2d(emb, seed=0, perplexity=5), xy)  # seeded
    groups = ["section 03"] * 10 + ["section 04"] * 5 + [viz.OTHER_GROUP] * 15
    anom = np.r_[np.zeros(5), np.ones(5), np.zeros(20)].astype(bool)
    fig = viz.plot_tsne(None, groups, anom, coords=xy, caption=CAP)
    _check(fig, 1)
    assert len(fig.axes[0].collections) == 4  # other, s03 normal, s03 anomalous, s04 normal
    with pytest.warns(UserWarning, match="perplexity"):
        fig2 = viz.plot_tsne(emb[:10], groups[:10], caption=CAP)  # perplexity 30 too large for 10 points
    _check(fig2, 1)


def _log(epochs=5):
    """Records shaped like minasd.train's log.jsonl: losses, accuracies and bookkeeping columns."""
    return [{"epoch": e, "train_loss": 5.0 / e, "train_machine": 2.0 / e, "train_product": 3.0 / e,
             "val_loss": 6.0 / e, "val_machine": 2.5 / e, "val_product": 3.5 / e,
             "val_section_acc": 0.1 * e, "val_machine_acc": 0.5 + 0.05 * e, "val_crops": 120,
             "lr": 1e-3 * e, "seconds": 40.0 * e, "train_seconds": 35.0, "crops_per_s": 300.0, "best": e == epochs}
            for e in range(1, epochs + 1)]


def _labels(ax):
    return sorted(line.get_label() for line in ax.get_lines())


def test_plot_training_curves_losses_and_accuracies_apart():
    fig = viz.plot_training_curves(_log(), caption=CAP)
    _check(fig, 2)  # exactly two panels: losses, accuracies
    loss_ax, acc_ax = fig.axes
    assert _labels(loss_ax) == sorted(["train_loss", "val_loss", "train_machine", "val_machine",
                                       "train_product", "val_product"])
    assert _labels(acc_ax) == ["val_machine_acc", "val_section_acc"]
    assert acc_ax.get_ylim() == (0, 1)
    for line in acc_ax.get_lines():
        assert np.all((line.get_ydata() >= 0) & (line.get_ydata() <= 1))
    for line in fig.axes[0].get_lines() + fig.axes[1].get_lines():
        assert list(line.get_xdata()) == [1, 2, 3, 4, 5]  # x = epoch
    drawn = " ".join(_labels(loss_ax) + _labels(acc_ax))
    assert not any(k in drawn for k in ("seconds", "crops", "lr", "best"))
    assert loss_ax.get_xlabel() == acc_ax.get_xlabel() == "epoch"


def test_plot_training_curves_keys_and_bad_logs():
    recs = [{k: v for k, v in r.items() if k in ("epoch", "train_loss", "val_loss", "lr")} for r in _log()]
    fig = viz.plot_training_curves(recs, caption=CAP)  # an old log without accuracies: still two panels
    _check(fig, 2)
    assert _labels(fig.axes[0]) == ["train_loss", "val_loss"] and fig.axes[1].get_lines() == []
    fig = viz.plot_training_curves(_log(), caption=CAP, keys=["train_loss", "val_section_acc"])
    assert _labels(fig.axes[0]) == ["train_loss"] and _labels(fig.axes[1]) == ["val_section_acc"]
    with pytest.raises(ValueError, match="'lr'"):
        viz.plot_training_curves(_log(), caption=CAP, keys=["train_loss", "lr"])
    with pytest.raises(ValueError, match="val_section_acc must be a fraction"):
        viz.plot_training_curves([{"epoch": 1, "val_section_acc": 87.5}], caption=CAP)  # a percentage
    with pytest.raises(ValueError, match="record 1 has no integer 'epoch'"):
        viz.plot_training_curves([{"epoch": 1, "train_loss": 1.0}, {"train_loss": 0.5}], caption=CAP)
    with pytest.raises(ValueError, match="no loss or accuracy"):
        viz.plot_training_curves([{"epoch": 1, "lr": 1e-3, "seconds": 3.0}], caption=CAP)
    with pytest.raises(ValueError, match="caption"):
        viz.plot_training_curves(_log(), caption="")


def test_plot_spectrogram():
    fig = viz.plot_spectrogram(np.random.default_rng(0).normal(size=(224, 126)), caption=CAP)
    _check(fig, 1)
    assert fig.axes[0].get_xlim()[1] == pytest.approx(126 * 256 / 16000)


def test_plot_batch_composition():
    batches = [["pump"] * 4 + ["fan", "fan", "valve", "valve"]] * 3
    fig = viz.plot_batch_composition(batches, target="pump", caption=CAP)
    _check(fig, 1)
    assert len(fig.axes[0].patches) == 9  # 3 batches x 3 types
    heights = [p.get_height() for p in fig.axes[0].patches[:3]]
    assert heights == [4, 4, 4]  # target first


def test_plot_section_table():
    recs = [dict(machine=m, section=s, auc=0.6 + 0.01 * s, pauc=0.55) for m in ("fan", "pump") for s in (3, 4, 5)]
    fig = viz.plot_section_table(section_table(recs), caption=CAP)
    _check(fig, 1)
    cells = [t.get_text() for t in fig.axes[0].texts]
    assert "63.0" in cells and len(cells) == 2 * 4 + 1  # 2 types x (3 sections + hmean) + All


def test_plot_variant_bars_one_bar_per_variant_and_type_run():
    import pandas as pd

    table = pd.DataFrame({"fan": [70.0, 60.0], "pump": [np.nan, np.nan], "All/Har-mean": [68.0, 61.0]},
                         index=["Proposed method", "w/o h"])
    with pytest.raises(ValueError, match="caption"):
        viz.plot_variant_bars(table, caption="", title="t")
    fig = viz.plot_variant_bars(table, caption=CAP, title="Table III analogue")
    _check(fig, 1)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fan", "All/Har-mean"]  # pump was not run: left out
    assert sorted(round(p.get_height()) for p in ax.patches) == [60, 61, 68, 70]


def test_plot_histograms():
    rng = np.random.default_rng(0)
    panels = {"before": {"fan": rng.normal(0, 0.1, 500), "pump": rng.normal(0, 0.3, 300)},
              "after": {"fan": rng.normal(size=500), "pump": rng.normal(size=300)}}
    fig = viz.plot_histograms(panels, caption=CAP, xlabel="sample value", bins=20, logy=True)
    _check(fig, 2)
    assert [len(ax.patches) for ax in fig.axes[:2]] == [2, 2]  # one outline per series
    assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError):
        viz.plot_histograms({"empty": {}}, caption=CAP, xlabel="x")


def test_plot_filterbank():
    from minasd.features import mel_filterbank

    fig = viz.plot_filterbank(mel_filterbank().numpy(), caption=CAP, every=8)
    _check(fig, 2)
    assert len(fig.axes[0].get_lines()) == 224 // 8
    centres = fig.axes[1].get_lines()[0].get_ydata()
    assert np.all(np.diff(centres) >= 0) and 40 < centres[0] < 80 and 7500 < centres[-1] < 7800
    with pytest.raises(ValueError, match="filter bank"):
        viz.plot_filterbank(np.zeros((10, 4)), caption=CAP)


def test_plot_windows():
    starts = {"crops": [0, 5, 10], "segments": [0, 4, 8, 12, 16, 20]}
    fig = viz.plot_windows(40, starts, 20, wave=np.zeros(40), sample_rate=10, caption=CAP)
    _check(fig, 3)  # waveform + two window panels
    assert [len(ax.collections) for ax in fig.axes[1:3]] == [3, 6]
    assert fig.axes[-1].get_xlim() == pytest.approx((0, 4.0))
    with pytest.raises(ValueError, match="outside"):
        viz.plot_windows(40, {"bad": [30]}, 20, caption=CAP)


def test_plot_saturation_draws_a_mean_line_per_type_and_its_target():
    import pandas as pd

    curve = pd.DataFrame({"machine": ["fan"] * 3 + ["valve"] * 2, "clips": [60, 60, 500, 60, 500],
                          "seed": [0, 1, 0, 0, 0], "AE AUC": [60.0, 64.0, 70.0, 55.0, 58.0]})
    fig = viz.plot_saturation(curve, {"fan": 67.2, "valve": 54.4, "pump": 70.9}, caption=CAP, n_star=500)
    _check(fig, 1)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert list(lines["fan"].get_ydata()) == [62.0, 70.0]  # the mean over seeds at each size
    targets = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("_") and len(line.get_ydata()) == 2
               and line.get_ydata()[0] == line.get_ydata()[1]]
    assert sorted(t.get_ydata()[0] for t in targets) == [54.4, 67.2]  # no dash for a type not measured


def test_the_committed_calibration_store_reads_as_tables():
    from minasd import calibrate
    from minasd.config import MACHINE_TYPES

    from pathlib import Path

    view = calibrate.store_view(Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "calibration")
    assert sorted(view["baseline"]["machine"]) == sorted(MACHINE_TYPES)
    assert set(view["curve"]["machine"]) == set(MACHINE_TYPES) and view["saturation"]["n_star"] in set(view["curve"]["clips"])
    assert (view["baseline"]["target"] == view["baseline"]["machine"].map(calibrate.TARGETS)).all()
    search = view["search"]  # the bisection's goal is the target minus the saturation's offset; at n*, the target
    offsets = calibrate.offsets_at(view["saturation"]["curve"], view["saturation"]["n_star"], 60)
    small = search[search["clips"] == 60]
    assert not small.empty and set(small["seed"]) == {0}
    assert list(small["goal"]) == pytest.approx([calibrate.TARGETS[m] - offsets[m] for m in small["machine"]])
    at_star = search[search["clips"] == view["saturation"]["n_star"]]
    assert list(at_star["goal"]) == list(at_star["target"]) and (search["sigma"] > 0).all()


def test_plot_search_draws_one_panel_per_type_with_its_goal_and_target():
    import pandas as pd

    search = pd.DataFrame({"machine": ["fan"] * 3 + ["valve"] * 2, "clips": [60, 60, 500, 60, 60],
                           "sigma": [0.5, 1.0, 0.8, 0.3, 0.2], "AE AUC": [60.0, 66.0, 67.0, 56.0, 54.0],
                           "target": [67.2] * 3 + [54.4] * 2, "goal": [66.0, 66.0, 67.2, 48.5, 48.5]})
    fig = viz.plot_search(search, caption=CAP)
    _check(fig, 2)
    fan, valve = fig.axes
    levels = lambda ax: sorted(line.get_ydata()[0] for line in ax.get_lines() if line.get_label().startswith("_"))
    assert levels(fan) == [66.0, 67.2]  # the bisection's goal (dashed) and the target at n* (solid)
    assert levels(valve) == [48.5, 54.4]  # no trial at n* yet: the target is drawn all the same
    with pytest.raises(ValueError, match="no search trial"):
        viz.plot_search(search.iloc[:0], caption=CAP)
