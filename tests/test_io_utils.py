import json
import os

import numpy as np
import pytest

from minasd import io_utils


def test_atomic_json_and_npz_round_trip(tmp_path):
    p = io_utils.atomic_write_json(tmp_path / "a" / "x.json", {"v": np.float32(1.5), "n": np.int64(3)})
    assert json.loads(p.read_text()) == {"v": 1.5, "n": 3}
    z = io_utils.atomic_savez(tmp_path / "z.npz", a=np.arange(4))
    with np.load(z, allow_pickle=False) as f:
        assert f["a"].tolist() == [0, 1, 2, 3]
    assert not [q for q in tmp_path.rglob("*.tmp")]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "keep.txt"
    target.write_text("old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        io_utils.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_atomic_write_gives_the_mode_open_would(tmp_path):
    old = os.umask(0o022)
    io_utils._default_mode.cache_clear()  # the umask is read once per process
    try:
        p = io_utils.atomic_write_text(tmp_path / "m.txt", "x")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
        io_utils._default_mode.cache_clear()
    assert p.stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777 == 0o644


def test_folder_lock_excludes_other_threads_and_is_reentrant(tmp_path):
    import threading
    import time

    held, release, order = threading.Event(), threading.Event(), []

    def holder():
        with io_utils.folder_lock(tmp_path):
            with io_utils.folder_lock(tmp_path):  # nested in the same thread: no self-deadlock
                held.set()
                release.wait(timeout=30)
                order.append("holder out")

    def waiter():
        held.wait(timeout=30)
        with io_utils.folder_lock(tmp_path):
            order.append("waiter in")

    threads = [threading.Thread(target=holder), threading.Thread(target=waiter)]
    for t in threads:
        t.start()
    held.wait(timeout=30)
    time.sleep(0.3)  # the waiter has had time to get in, were it not locked out
    assert order == []
    release.set()
    for t in threads:
        t.join(timeout=30)
    assert order == ["holder out", "waiter in"]


def test_folder_lock_is_released_when_its_process_is_killed(tmp_path):
    """An interruption at any point (here SIGKILL while holding the lock) leaves no stale lock."""
    import signal
    import subprocess
    import sys
    import time

    code = ("import sys, time; from minasd.io_utils import folder_lock\n"
            "with folder_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        got = []

        def try_lock():
            import fcntl

            with open(tmp_path / ".lock", "a+b") as fh:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    got.append(True)
                except BlockingIOError:
                    got.append(False)

        try_lock()
        assert got == [False]  # another process holds it
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        t0 = time.monotonic()
        with io_utils.folder_lock(tmp_path):
            pass
        assert time.monotonic() - t0 < 5
    finally:
        child.kill()
        child.wait()
