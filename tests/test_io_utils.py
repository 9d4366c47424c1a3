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
