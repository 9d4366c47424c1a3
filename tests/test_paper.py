"""The paper's published numbers (``minasd.paper``), typed in: checks that catch a typing slip."""
from __future__ import annotations

import pytest

from minasd import paper
from minasd.config import MACHINE_TYPES
from minasd.studies.experiment import TABLE3_VARIANTS


def test_columns_are_the_papers_order_which_is_machine_types():
    # the paper's tables list fan, gearbox, pump, valve, slider, ToyCar, ToyTrain; so must MACHINE_TYPES
    assert list(MACHINE_TYPES) == ["fan", "gearbox", "pump", "valve", "slider", "ToyCar", "ToyTrain"]
    assert paper.COLUMNS == [*MACHINE_TYPES, "All/Har-mean"]


def test_tables_shapes_and_the_proposed_row_printed_twice():
    t2, t3 = paper.table2(), paper.table3()
    assert t2.shape == (4, 9) and list(t2.columns) == [*paper.COLUMNS, "#models"]
    assert t2["#models"].tolist() == [5, 1, 3, 1]
    assert t3.shape == (4, 8) and t2.index.name == t3.index.name == "method"
    # Table II and Table III print the proposed method's row twice: the copies must agree
    assert t2.loc["Proposed method", paper.COLUMNS].tolist() == t3.loc["Proposed method"].tolist()
    # every value is a harmonic mean of AUC and pAUC in percent, and All/Har-mean lies within the types' range
    values = t3.to_numpy()
    assert ((values > 40) & (values < 100)).all()
    assert ((t3["All/Har-mean"] >= t3[list(MACHINE_TYPES)].min(axis=1))
            & (t3["All/Har-mean"] <= t3[list(MACHINE_TYPES)].max(axis=1))).all()


def test_table3_rows_name_every_table3_variant():
    assert set(paper.TABLE3_ROWS) == set(TABLE3_VARIANTS)
    assert list(paper.table3().index) == [paper.TABLE3_ROWS[v] for v in ("proposed", "no_mixup", "wo_h", "product_only")]


def test_label_names_the_source_and_the_data():
    assert paper.label("II") == f"Kuroyanagi et al. (EUSIPCO 2022), Table II. Data: {paper.DATA}"
    assert "real DCASE 2021" in paper.DATA


def test_rank_agreement_is_one_for_the_papers_own_order_and_uses_every_type():
    from minasd.config import MACHINE_TYPES

    same = paper.rank_agreement({m: float(paper.table2().loc["Proposed method", m]) for m in MACHINE_TYPES})
    assert same["rho"] == pytest.approx(1.0) and same["p_one_sided"] == pytest.approx(1 / 5040)
    flipped = paper.rank_agreement({m: -float(paper.table2().loc["Proposed method", m]) for m in MACHINE_TYPES})
    assert flipped["rho"] == pytest.approx(-1.0) and flipped["p_one_sided"] == pytest.approx(1.0)
    assert paper.rank_agreement({"fan": 1.0, "pump": float("nan")})["rho"] is None  # fewer than 3 types
