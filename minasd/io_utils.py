"""Atomic file writes and provenance helpers shared by every module.

Every output of minasd goes through these functions: the data are written to a
temporary file in the destination folder and moved into place with
``os.replace``, which is atomic on POSIX, so an interrupted run leaves either
the old file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

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


_held: dict[tuple[str, int], int] = {}  # (lock file, thread) -> depth held (the lock is re-entrant per thread)
_held_guard = threading.Lock()


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (the file ``folder/.lock``) while the block runs.

    Every read-modify-write of files that several processes share goes inside it: a
    (seed, type) job committing its files and the one process that merges them into
    tables and publishes them (:mod:`minasd.studies.experiment`, :mod:`minasd.studies.results`), so that
    no reader sees a table between two of its writes.  The lock is ``flock``'s: it is
    released when the process ends, however it ends (an interruption leaves no stale
    lock), and a nested ``folder_lock`` on the same folder in the same thread does not
    wait for itself (other threads do wait: each holds its own open file).  Where ``fcntl`` does not exist (Windows), nothing is locked.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d, folder_lock(d) as f, folder_lock(d):
    ...     f.name
    '.lock'
    """
    path = Path(folder) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    key = (str(path.resolve()), threading.get_ident())
    with _held_guard:
        nested = _held.get(key, 0) > 0
        _held[key] = _held.get(key, 0) + 1
    try:
        if nested:
            yield path
            return
        try:
            import fcntl
        except ImportError:  # no flock: one process at a time is the caller's business
            yield path
            return
        with open(path, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield path
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        with _held_guard:
            _held[key] -= 1
            if not _held[key]:
                del _held[key]


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
