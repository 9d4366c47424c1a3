"""The gate of the real-data tests: missing fixtures fail under CI and skip elsewhere.

This lives apart from ``test_real_data.py`` because every test there sits behind that module's
autouse gate: a check of the gate placed there would itself be skipped whenever the real data
are missing, which is exactly when it matters.  Here it always runs, with or without the data.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from test_real_data import require_folders  # noqa: E402  (tests/ is on sys.path, as for conftest)

REAL_DATA_TESTS = Path(__file__).resolve().with_name("test_real_data.py")


def test_missing_real_data_fails_under_ci_and_skips_elsewhere(tmp_path, monkeypatch):
    absent = tmp_path / "absent"
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=re.escape(f"CI=true but real-data fixtures not found at {absent}")):
        require_folders(tmp_path, absent)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=re.escape(f"real-data fixtures not found at {absent}")):
        require_folders(tmp_path, absent)
    require_folders(tmp_path)  # present: neither


@pytest.mark.parametrize("ci, outcome", [("true", "1 error"), ("", "1 skipped")])
def test_the_real_data_module_fails_under_ci_and_skips_elsewhere(tmp_path, ci, outcome):
    """The whole real-data module, run against a missing folder: an error under CI=true, a skip
    otherwise (never a pass, never a silent green CI)."""
    absent = tmp_path / "absent"
    env = {**os.environ, "MINASD_REAL_DATA": str(absent), "CI": ci}
    run = subprocess.run([sys.executable, "-m", "pytest", str(REAL_DATA_TESTS), "-q", "-p", "no:cacheprovider",
                          "-k", "test_dcase2020_fields"], cwd=REAL_DATA_TESTS.parents[1], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == (1 if ci else 0) and outcome in run.stdout, run.stdout
    if ci:
        assert f"CI=true but real-data fixtures not found at {absent}" in run.stdout
