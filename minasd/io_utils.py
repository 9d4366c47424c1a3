"""Atomic file writes and provenance helpers shared by every module.

Every output of minasd goes through these functions: the data are written to a
temporary file in the destination folder and moved into place with
``os.replace``, which is atomic on POSIX, so an interrupted run leaves either
the old file or the new one, never half of one.
"""
from __future__ import annotations

import functools
import io
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


@functools.lru_cache(maxsize=1)
def _default_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 less the process umask.

    Reading the umask means setting it briefly, so it is read once per process (the umask
    of a running program does not change in practice) rather than on every write, where
    another thread could create a file during that moment.
    """
    mask = os.umask(0o077)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parents are created).

    The file gets the mode a plain ``open()`` would give it (not ``mkstemp``'s 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _default_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def atomic_write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically (numpy scalars/arrays and paths allowed)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def atomic_save_torch(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically."""
    import torch  # local import: io_utils is used by modules that need no torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_savez(path: str | Path, **arrays: np.ndarray) -> Path:
    """``np.savez`` to ``path`` atomically. Load with ``np.load(path, allow_pickle=False)``."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def git_commit(repo: str | Path | None = None) -> str | None:
    """The commit of the minasd checkout (or ``repo``), with ``-dirty`` if modified; None if unknown."""
    where = Path(repo) if repo is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
