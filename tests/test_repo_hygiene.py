"""Repository hygiene: no tracked file carries a path of a developer's machine (issue 12, item 9).

A default such as an absolute data folder of one machine works there and nowhere else, and
committed outputs that carry it leak the machine's layout; paths in the repository are
relative to it (``../shared/...`` is fine) or arguments the user gives.
"""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Absolute home or work folders of Linux, macOS and Windows machines.  Written so that this
#: file does not match itself: the alternation keeps each literal path out of the source.
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|home|Users|root)/|\b[A-Za-z]:[\\/]+Users\b")


def _tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout to list the tracked files")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / p for p in out.decode("utf-8").split("\0") if p]


def _text(path: Path) -> str | None:
    """The file's text, or None for a binary file (a NUL byte or not UTF-8) or one deleted in the work tree."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    if b"\0" in raw[:8192]:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_the_pattern_finds_machine_paths_and_spares_relative_ones():
    # The examples are assembled at run time: written out, they would be offenders in this file.
    bad_examples = [f"/{d}/{rest}" for d, rest in (("work", "main/data"), ("home", "ann/x.wav"), ("Users", "bob/"),
                                                  ("root", ".cache"))]
    bad_examples += ["see " + bad_examples[2], "C:" + "\\" + "Users" + "\\ann", '"C:' + "\\\\" + 'Users"',
                     "D:/" + "Users/x"]
    for bad in bad_examples:
        assert MACHINE_PATH.search(bad), bad
    for fine in ["../shared/data/real", "data_root/home/x", "https://example.org/home/", "runs/work/x",
                 "~/.cache/minasd", "out/demo/figures"]:
        assert not MACHINE_PATH.search(fine), fine


def test_no_tracked_file_holds_a_developer_machine_path():
    offenders = []
    for path in _tracked_files():
        text = _text(path)
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if MACHINE_PATH.search(line):
                offenders.append(f"{path.relative_to(REPO).as_posix()}:{n}: {line.strip()[:120]}")
    assert not offenders, ("paths of a developer's machine in tracked files (make them relative to the "
                           "repository or an argument):\n" + "\n".join(offenders[:50]))
