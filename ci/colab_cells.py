"""Write every chapter's Colab link and Colab install cell from the one repository address.

The address and branch live in ``_config.yml`` (``repository.url``, ``repository.branch``);
Jupyter Book's own launch buttons read them too.  Each chapter (``book/ch*.ipynb``) carries
two things made from them:

* the line ``[Open this chapter in Colab](https://colab.research.google.com/github/<owner>/<name>/blob/<branch>/book/<file>)``
  in its first markdown cell;
* the Colab install cell (:func:`install_cell_source`), the code cell whose first line starts
  with :data:`INSTALL_MARKER`: in Colab only, it clones the repository (shallow, so that
  ``results/`` comes along) and installs it editable.

Usage (from the repository root)::

    python ci/colab_cells.py          # rewrite the chapters from _config.yml (a fork: edit the url first)
    python ci/colab_cells.py --check  # exit 1, naming each chapter that differs (CI, tests/test_book_links.py)

Notebooks are rewritten in the form they are stored in (``json.dumps(indent=1,
ensure_ascii=False)`` and a final newline), so a chapter that is already right is left
byte for byte as it is.  Book: chapter 11.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

#: The link's words; the regular expression below finds the link whatever address it holds.
LINK_TEXT = "Open this chapter in Colab"
_LINK_RE = re.compile(r"\[" + re.escape(LINK_TEXT) + r"\]\(https://colab\.research\.google\.com/github/[^)\s]*\)")
#: The first line of every install cell starts with this (and no other code cell's does).
INSTALL_MARKER = "# Colab only: clone minasd"
#: Install cells of older versions of the book, rewritten too.
_OLD_INSTALL_MARKERS = ("# Colab only: install minasd",)

_INSTALL_TEMPLATE = '''\
{marker} (with its committed results/) and install it editable; Colab's own torch is kept.
# For a GPU: Runtime > Change runtime type > a GPU (e.g. T4) before this cell; it starts a new runtime (chapter 11).
# The clone goes to $MINASD_HOME/minasd when MINASD_HOME is set (e.g. a Drive folder, to keep it
# between sessions), else to /content/minasd; a clone already there is used as it is.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    repo = os.path.join(os.environ.get("MINASD_HOME", "/content"), "minasd")
    if not os.path.isdir(os.path.join(repo, ".git")):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{branch}", "{url}", repo],
                       check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", repo], check=True)
    sys.path.insert(0, repo)  # the editable install is seen by later sessions; this one imports the clone directly
    os.chdir(os.path.join(repo, "book"))  # as in the book's build: ../results is the clone's committed results/'''


def repository(root: Path) -> tuple[str, str]:
    """(address, branch) from ``root/_config.yml``: ``repository.url`` without a trailing ``/`` or
    ``.git``, and ``repository.branch`` (default ``main``).

    Raises:
        ValueError: the url is missing or not a ``https://github.com/<owner>/<name>`` address
            (Colab opens notebooks from GitHub only).
    """
    cfg = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    repo = cfg.get("repository") or {}
    url = str(repo.get("url") or "").rstrip("/").removesuffix(".git")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"{root / '_config.yml'}: repository.url must be https://github.com/<owner>/<name> "
                         f"(Colab opens notebooks from GitHub), got {url!r}")
    return url, str(repo.get("branch") or "main")


def colab_link(url: str, branch: str, notebook: str) -> str:
    """The markdown link that opens ``notebook`` (a path relative to the repository) in Colab.

    >>> colab_link("https://github.com/a/b", "main", "book/ch01.ipynb")
    '[Open this chapter in Colab](https://colab.research.google.com/github/a/b/blob/main/book/ch01.ipynb)'
    """
    owner_name = url.removeprefix("https://github.com/")
    return f"[{LINK_TEXT}](https://colab.research.google.com/github/{owner_name}/blob/{branch}/{notebook})"


def install_cell_source(url: str, branch: str) -> str:
    """The Colab install cell's code for the repository ``url`` at ``branch``."""
    return _INSTALL_TEMPLATE.format(marker=INSTALL_MARKER, url=url, branch=branch)


def _lines(text: str) -> list[str]:
    """A notebook cell's ``source`` list: one string per line, each but the last ending in a newline."""
    return text.splitlines(keepends=True)


def _is_install_cell(cell: dict) -> bool:
    first = "".join(cell.get("source", [])).split("\n", 1)[0]
    return cell["cell_type"] == "code" and first.startswith((INSTALL_MARKER, *_OLD_INSTALL_MARKERS))


def render(nb: dict, url: str, branch: str, notebook: str) -> dict:
    """``nb`` with its Colab link and install cell made from ``url`` and ``branch`` (a new dict).

    Raises:
        ValueError: the chapter has no Colab link in its first markdown cell, or not exactly
            one install cell.
    """
    nb = json.loads(json.dumps(nb))
    first_md = next((c for c in nb["cells"] if c["cell_type"] == "markdown"), None)
    text = "".join(first_md["source"]) if first_md else ""
    if not _LINK_RE.search(text):
        raise ValueError(f"{notebook}: no '[{LINK_TEXT}](https://colab.research.google.com/github/...)' link "
                         "in its first markdown cell")
    first_md["source"] = _lines(_LINK_RE.sub(lambda _: colab_link(url, branch, notebook), text, count=1))
    installs = [c for c in nb["cells"] if _is_install_cell(c)]
    if len(installs) != 1:
        raise ValueError(f"{notebook}: {len(installs)} Colab install cells (code cells starting with "
                         f"{INSTALL_MARKER!r}); every chapter needs exactly one")
    installs[0]["source"] = _lines(install_cell_source(url, branch))
    return nb


def _dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def chapters(root: Path) -> list[Path]:
    """The chapters: ``root/book/ch*.ipynb``, sorted."""
    return sorted((root / "book").glob("ch*.ipynb"))


def sync(root: str | Path = ".", check: bool = False) -> list[str]:
    """Bring every chapter's Colab link and install cell in line with ``root/_config.yml``.

    Args:
        root: the repository root.
        check: only compare, write nothing.

    Returns:
        The chapters (paths relative to ``root``) that differed: rewritten, or with ``check``
        to be rewritten.  An empty list: every chapter is right.
    """
    root = Path(root)
    url, branch = repository(root)
    differ = []
    for path in chapters(root):
        rel = path.relative_to(root).as_posix()
        old = path.read_text(encoding="utf-8")
        new = _dump(render(json.loads(old), url, branch, rel))
        if new != old:
            differ.append(rel)
            if not check:
                path.write_text(new, encoding="utf-8")
    return differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 naming each chapter that differs")
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]), help="repository root")
    args = parser.parse_args(argv)
    differ = sync(args.root, check=args.check)
    url, branch = repository(Path(args.root))
    for rel in differ:
        print(f"[colab_cells] {rel}: {'differs from' if args.check else 'rewritten from'} {url} ({branch})")
    if args.check and differ:
        print("[colab_cells] run `python ci/colab_cells.py` to rewrite them", file=sys.stderr)
        return 1
    if not differ:
        print(f"[colab_cells] every chapter's Colab link and install cell use {url} ({branch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
