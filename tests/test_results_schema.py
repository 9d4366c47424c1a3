"""Committed full-scale results (``results/experiment``) must match the package's result schema.

The book (chapters 4-8) renders these files; when the schema changes
(``minasd.experiment.RESULTS_SCHEMA_VERSION``, a column, a key) and the committed
files are not regenerated, this test fails CI instead of the book failing later.
Without committed results it skips.  ``load_results`` itself is tested on a micro
experiment in ``tests/test_experiment.py``; nothing is trained here.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from minasd.config import EVAL_SECTIONS
from minasd.experiment import TABLE2_VARIANTS, load_results

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "results" / "experiment"  # the book's default results_dir ("../results/experiment" from book/)


def _manifest_present(d: Path) -> bool:
    return (d / "manifest.json").is_file() or (d / "results" / "manifest.json").is_file()


pytestmark = pytest.mark.skipif(
    not _manifest_present(COMMITTED),
    reason=f"no committed full-scale results under {COMMITTED.relative_to(REPO)} "
           "(run `minasd experiment --data ... --out results/experiment` on a GPU and commit results/)")


@pytest.fixture(scope="module")
def committed():
    return load_results(COMMITTED)  # raises if any file disagrees with the schema


def test_committed_results_load_with_the_current_schema(committed):
    assert committed["manifest"]["machine_types"], "committed results name no machine type"
    for name in ("table2", "table3", "sections", "selection"):
        assert name in committed["tables"]


def test_committed_tables_report_the_test_sections_only(committed):
    assert committed["manifest"]["report_sections"] == list(EVAL_SECTIONS)
    t2 = committed["tables"]["table2"]
    for m in committed["manifest"]["machine_types"]:
        have = set(t2.loc[t2["machine"] == m, "variant"])
        wanted = set(TABLE2_VARIANTS) & set(committed["manifest"]["variants"])
        assert wanted <= have, f"table2 lacks {sorted(wanted - have)} for {m}"
        assert (t2["hmean"].dropna().between(0, 100)).all()


def test_committed_results_say_what_made_them(committed):
    prov = committed["manifest"]["provenance"]
    # the book's captions are built from these fields
    assert "synthetic" in prov["data"], "provenance.data must say whether the data were synthetic"
    assert prov.get("device"), "provenance must name the device"
    assert prov.get("epochs"), "provenance must list the epochs of every trained run"
