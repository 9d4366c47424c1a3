"""The chapters' Colab links and install cells come from the one repository address (ci/colab_cells.py)."""
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _colab_cells():
    spec = importlib.util.spec_from_file_location("colab_cells", REPO / "ci" / "colab_cells.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


colab_cells = _colab_cells()


def _copy_book(tmp_path: Path) -> Path:
    (tmp_path / "book").mkdir()
    shutil.copy(REPO / "_config.yml", tmp_path / "_config.yml")
    for nb in colab_cells.chapters(REPO):
        shutil.copy(nb, tmp_path / "book" / nb.name)
    return tmp_path


def _set_repository(root: Path, url: str, branch: str) -> None:
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    cfg["repository"].update({"url": url, "branch": branch})
    (root / "_config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def test_every_chapter_uses_the_address_of_config_yml():
    assert colab_cells.sync(REPO, check=True) == [], "run `python ci/colab_cells.py` and commit the chapters"
    assert len(colab_cells.chapters(REPO)) >= 11  # chapters 1-11
    url, branch = colab_cells.repository(REPO)
    assert branch == "main"
    for nb in colab_cells.chapters(REPO):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        assert colab_cells.colab_link(url, branch, f"book/{nb.name}") in "".join(cells[0]["source"]), nb.name
        (install,) = [c for c in cells if "".join(c["source"]).startswith(colab_cells.INSTALL_MARKER)]
        assert "git+" not in "".join(install["source"]), f"{nb.name}: a pip install git+... brings no results/"


def test_a_changed_address_rewrites_every_chapter(tmp_path):
    root = _copy_book(tmp_path)
    old_url, _ = colab_cells.repository(root)
    new_url, new_branch = "https://github.com/someone/minasd-fork", "dev"
    _set_repository(root, new_url, new_branch)
    chapters = [f"book/{nb.name}" for nb in colab_cells.chapters(REPO)]
    assert colab_cells.sync(root, check=True) == chapters  # --check names every chapter, writes nothing
    assert colab_cells.main(["--check", "--root", str(root)]) == 1
    assert colab_cells.sync(root) == chapters
    assert colab_cells.sync(root, check=True) == []
    for rel in chapters:
        nb = json.loads((root / rel).read_text(encoding="utf-8"))
        text = json.dumps(nb)
        assert old_url not in text, rel
        link = f"https://colab.research.google.com/github/someone/minasd-fork/blob/dev/{rel}"
        assert link in "".join(nb["cells"][0]["source"]), rel
        (install,) = [c for c in nb["cells"] if "".join(c["source"]).startswith(colab_cells.INSTALL_MARKER)]
        source = "".join(install["source"])
        assert f'"--branch", "{new_branch}", "{new_url}"' in source and '"-e", repo' in source, rel
        assert all(c.get("outputs", []) == [] for c in nb["cells"]), rel  # nothing executed is written
    # every other cell is untouched
    for rel in chapters:
        before = json.loads((REPO / rel).read_text(encoding="utf-8"))["cells"]
        after = json.loads((root / rel).read_text(encoding="utf-8"))["cells"]
        changed = [b["id"] for b, a in zip(before, after) if b != a]
        assert len(before) == len(after) and len(changed) == 2, (rel, changed)


def test_the_install_cell_runs_only_in_colab_and_is_valid_python():
    source = colab_cells.install_cell_source("https://github.com/a/b", "main")
    compile(source, "<install cell>", "exec")
    assert 'if "google.colab" in sys.modules:' in source
    namespace = {}
    exec(source, namespace)  # outside Colab: nothing is cloned, installed or changed
    assert "repo" not in namespace


@pytest.mark.parametrize("url", ["", "git@github.com:a/b.git", "https://gitlab.com/a/b"])
def test_an_address_colab_cannot_open_is_refused(tmp_path, url):
    _set_repository(_copy_book(tmp_path), url, "main")
    with pytest.raises(ValueError, match="repository.url"):
        colab_cells.repository(tmp_path)
