import pytest

from minasd.config import MACHINE_TYPES, OTHER_TYPE_HPARAMS, SECTIONS, hparams_for, load_table1


def test_table1_matches_the_paper():
    table = load_table1()
    assert tuple(table) == MACHINE_TYPES
    paper = {  # (LR, BS, lambda, h, p) from the paper's Table I
        "fan": (0.001, 32, 0.1, "gmm", 16), "gearbox": (0.001, 128, 10.0, "gmm", 64),
        "pump": (0.001, 128, 10.0, "gmm", 2), "valve": (0.0005, 128, 10.0, "gmm", 32),
        "slider": (0.001, 128, 10.0, "gmm", 2), "ToyCar": (0.001, 128, 10.0, "lof", 16),
        "ToyTrain": (0.0005, 32, 0.1, "lof", 8),
    }
    for machine, (lr, bs, lam, h, p) in paper.items():
        hp = table[machine]
        assert (hp.lr, hp.batch_size, hp.lam, hp.inlier, hp.p, hp.epochs) == (lr, bs, lam, h, p, 300)
    assert SECTIONS == (0, 1, 2, 3, 4, 5)


def test_overrides_and_errors(tmp_path):
    hp = hparams_for("fan", {"epochs": 3, "batch_size": None})
    assert hp.epochs == 3 and hp.batch_size == 32
    with pytest.warns(UserWarning, match="'bearing' is not in Table I"):
        other = hparams_for("bearing", {"epochs": 2})
    assert other == OTHER_TYPE_HPARAMS.replace(epochs=2)
    bad = tmp_path / "t.yaml"
    bad.write_text("fan: {lr: 0.1, batch_size: 2, lam: 1, inlier: svm, p: 2}\n")
    with pytest.raises(ValueError, match="t.yaml.*inlier"):
        load_table1(bad)
    bad.write_text("fan: {lr: 0.1, bs: 2}\n")
    with pytest.raises(ValueError, match="t.yaml.*fan"):
        load_table1(bad)
