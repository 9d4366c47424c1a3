"""The ``>>>`` examples in minasd's docstrings run and print what they say (standard ``doctest``).

One case per module of ``minasd/`` and ``minasd/studies/`` whose source contains ``>>>``.  Each case fails on any
doctest failure and checks that at least one example actually ran; modules whose examples
are all ``# doctest: +SKIP`` by design (they need a trained run or a data set) are listed
in ``ALL_SKIPPED`` and must then really skip every example.
"""
from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minasd"
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts) for p in PACKAGE.rglob("*.py")
    if ">>>" in p.read_text(encoding="utf-8"))

#: Modules whose every example is skipped on purpose (a trained run, a data set).
ALL_SKIPPED = {"minasd.detector", "minasd.train"}

def test_modules_with_examples_are_found():
    assert len(MODULES) >= 10, MODULES
    assert {"minasd.provenance", "minasd.features", "minasd.synth", "minasd.studies.experiment"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    tests = [t for t in finder.find(module, name) if t.examples]  # an unparsable example raises ValueError
    examples = [ex for t in tests for ex in t.examples]
    assert examples, f"{name}: no doctest examples found although its source has '>>>'"

    runner = doctest.DocTestRunner(verbose=False)
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} doctest examples failed (see output)"
    if name in ALL_SKIPPED:
        assert result.attempted == 0 and all(ex.options.get(doctest.SKIP) for ex in examples), (
            f"{name}: listed in ALL_SKIPPED but some example runs; remove it from ALL_SKIPPED")
    else:
        assert result.attempted >= 1, f"{name}: every doctest example is skipped; none was attempted"
