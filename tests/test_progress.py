import importlib.util
import io
import subprocess
import sys

import pytest

from minasd.progress import tqdm


def test_tqdm_disable_env_wins_over_explicit_disable_false(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert list(tqdm(range(3), disable=False, file=buf)) == [0, 1, 2]
    assert buf.getvalue() == ""
    monkeypatch.delenv("TQDM_DISABLE")
    list(tqdm(range(3), disable=False, file=buf))
    assert "3/3" in buf.getvalue()


_KERNEL = """
import sys, types, warnings
sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")  # what tqdm takes for a notebook
ipython = types.ModuleType("IPython")
ipython.get_ipython = lambda: type("ZMQInteractiveShell", (), {{}})()
sys.modules["IPython"] = ipython
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    {first}
    import tqdm.auto  # as huggingface_hub does when timm is imported
print(sorted({{type(w.message).__name__ for w in caught}}))
"""


@pytest.mark.skipif(importlib.util.find_spec("ipywidgets") is not None, reason="ipywidgets installed: no warning")
def test_tqdm_auto_of_other_libraries_is_quiet_in_a_notebook_without_ipywidgets():
    def warnings_of(first):
        out = subprocess.run([sys.executable, "-c", _KERNEL.format(first=first)], capture_output=True, text=True,
                             check=True).stdout
        return out.strip()

    assert warnings_of("pass") == "['TqdmWarning']"  # the warning the chapters printed
    assert warnings_of("import minasd.progress") == "[]"
