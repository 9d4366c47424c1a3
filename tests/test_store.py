"""Waveform store: contents equal the decoded clips, reuse without decoding, rebuilds, atomic writes."""
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import minasd.data as data_mod
from minasd import store as store_mod
from minasd.store import PCM_SCALE, open_store

SR = 16000


def _write(path: Path, seconds: float, seed: int, subtype: str = "PCM_16") -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32), SR, subtype=subtype)
    return path


def _clip(root: Path, machine: str, section: int, number: int, domain: str = "source") -> Path:
    return root / "dev_data" / machine / "train" / f"section_{section:02d}_{domain}_train_normal_{number:04d}_a_1.wav"


@pytest.fixture
def root(tmp_path):
    """Two machine types x two sections x two 2.5 s clips, one of them 32-bit float (quantised in the
    store), plus a target-domain clip and a test clip (neither belongs in the store)."""
    r = tmp_path / "data"
    seed = 0
    for machine in ("fan", "pump"):
        for section in (0, 1):
            for number in (0, 1):
                seed += 1
                _write(_clip(r, machine, section, number), 2.5, seed)
    _write(_clip(r, "fan", 0, 2), 2.2, 99, subtype="FLOAT")
    _write(_clip(r, "fan", 0, 0, domain="target"), 2.5, 100)
    _write(r / "dev_data" / "fan" / "source_test" / "section_00_source_test_normal_0000_a_1.wav", 2.5, 101)
    return r


def _source_train(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.wav") if "_source_train_" in p.name)


def _expected_int16(path: Path) -> np.ndarray:
    x = data_mod.load_audio(path)
    return np.clip(np.rint(x * PCM_SCALE), -32768, 32767).astype(np.int16)


def _counting_loader(monkeypatch) -> list[str]:
    """Replace minasd.data.load_audio by a wrapper that records every decoded path."""
    calls, original = [], data_mod.load_audio
    lock = threading.Lock()

    def counting(path, *a, **kw):
        with lock:
            calls.append(Path(path).name)
        return original(path, *a, **kw)

    monkeypatch.setattr(data_mod, "load_audio", counting)
    return calls


def test_store_holds_every_source_training_clip_as_int16(root):
    store = open_store(root, progress=False)
    assert store.folder == root / ".minasd_store"
    assert [root / p for p in store.paths] == _source_train(root)  # no target-domain or test clip
    for i, p in enumerate(store.paths):
        np.testing.assert_array_equal(store.clip(i), _expected_int16(root / p))
    # 16-bit PCM: the store is lossless, int16 / 32768 is exactly what load_audio reads
    pcm = store.index_of([_clip(root, "pump", 1, 1)])[0]
    np.testing.assert_array_equal(store.clip(pcm) / PCM_SCALE, data_mod.load_audio(_clip(root, "pump", 1, 1)))
    # a batch of crops, gathered at once, equals slices of the decoded files
    clips = store.index_of([_clip(root, "fan", 0, 2), _clip(root, "pump", 0, 0), _clip(root, "fan", 0, 2)])
    starts = np.array([0, 7000, 3199])
    crops = store.crops(clips, starts, 32000)
    assert crops.shape == (3, 32000) and crops.dtype == np.int16
    for row, c, s in zip(crops, clips, starts):
        np.testing.assert_array_equal(row, _expected_int16(root / store.paths[c])[s:s + 32000])


def test_norm_stats_equal_compute_norm_stats(root):
    store = open_store(root, progress=False)
    paths = [_clip(root, "fan", s, n) for s in (0, 1) for n in (0, 1)]  # 16-bit PCM clips
    got = store.norm_stats(store.index_of(paths))
    want = data_mod.compute_norm_stats(paths, progress=False)
    assert got.n_clips == want.n_clips == 4 and got.n_samples == want.n_samples
    assert got.mean == pytest.approx(want.mean, rel=1e-12, abs=1e-15)
    assert got.std == pytest.approx(want.std, rel=1e-12)


def test_bad_requests_name_the_clip(root):
    store = open_store(root, progress=False)
    with pytest.raises(ValueError, match="source_test_normal_0000.*not in the waveform store"):
        store.index_of([root / "dev_data" / "fan" / "source_test" / "section_00_source_test_normal_0000_a_1.wav"])
    i = store.index_of([_clip(root, "fan", 0, 2)])  # 2.2 s
    with pytest.raises(ValueError, match="does not fit clip dev_data/fan/train/section_00_source_train_normal_0002"):
        store.crops(i, np.array([3201]), 32000)


def test_second_open_reuses_the_store_without_decoding(root, monkeypatch):
    first = open_store(root, progress=False)

    def fail(*a, **kw):
        raise AssertionError("the store was decoded again")

    monkeypatch.setattr(data_mod, "load_audio", fail)
    second = open_store(root, progress=False)
    assert second.fingerprint == first.fingerprint and second.folder == first.folder
    np.testing.assert_array_equal(second.waves, first.waves)


@pytest.mark.parametrize("change", ["modified", "added", "removed"])
def test_a_changed_clip_list_rebuilds_the_store(root, change):
    first = open_store(root, progress=False)
    old_file = first.folder / f"waves-{first.fingerprint[:16]}.int16"
    assert old_file.is_file()
    if change == "modified":
        _write(_clip(root, "pump", 1, 0), 2.5, 1234)
    elif change == "added":
        _write(_clip(root, "pump", 2, 0), 3.0, 1235)
    else:
        _clip(root, "fan", 1, 1).unlink()
    second = open_store(root, progress=False)
    assert second.fingerprint != first.fingerprint
    assert [root / p for p in second.paths] == _source_train(root)
    for i, p in enumerate(second.paths):
        np.testing.assert_array_equal(second.clip(i), _expected_int16(root / p))
    assert not old_file.exists()  # the old store's data file is removed


def test_target_domain_and_test_clips_do_not_invalidate_the_store(root, monkeypatch):
    first = open_store(root, progress=False)
    _write(_clip(root, "pump", 0, 5, domain="target"), 2.5, 7)
    _write(root / "dev_data" / "pump" / "source_test" / "section_00_source_test_anomaly_0000_a_1.wav", 2.5, 8)
    calls = _counting_loader(monkeypatch)
    assert open_store(root, progress=False).fingerprint == first.fingerprint
    assert calls == []


@pytest.mark.parametrize("damage", ["truncated data", "garbage index"])
def test_a_corrupt_store_is_rebuilt_with_a_warning(root, damage):
    first = open_store(root, progress=False)
    data_file = first.folder / f"waves-{first.fingerprint[:16]}.int16"
    want = np.array(first.waves)
    del first
    if damage == "truncated data":
        with open(data_file, "r+b") as fh:
            fh.truncate(data_file.stat().st_size // 2)
        match = "truncated or corrupt"
    else:
        (data_file.parent / "index.json").write_text('{"kind": "minasd.wave_store", "version": 1, "clips": [')
        match = "unreadable"
    with pytest.warns(UserWarning, match=match):
        again = open_store(root, progress=False)
    np.testing.assert_array_equal(again.waves, want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_store(root, progress=False)  # repaired: no warning now


def test_interrupted_build_leaves_no_store_and_the_next_run_builds(root, monkeypatch):
    original = data_mod.load_audio

    def broken(path, *a, **kw):
        if "pump" in str(path):
            raise ValueError(f"cannot read audio file {path}: simulated")
        return original(path, *a, **kw)

    monkeypatch.setattr(data_mod, "load_audio", broken)
    with pytest.raises(ValueError, match="simulated"):
        open_store(root, workers=1, progress=False)
    folder = root / ".minasd_store"
    assert sorted(p.name for p in folder.iterdir() if p.name != ".lock") == []  # no index, no data, no temp file
    monkeypatch.setattr(data_mod, "load_audio", original)
    store = open_store(root, progress=False)
    assert len(store) == len(_source_train(root))


def test_concurrent_opens_decode_each_clip_once(root, monkeypatch):
    calls = _counting_loader(monkeypatch)
    stores, errors = [None] * 3, []
    barrier = threading.Barrier(3)

    def work(i):
        try:
            barrier.wait()
            stores[i] = open_store(root, workers=1, progress=False)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert sorted(calls) == sorted(p.name for p in _source_train(root))  # one build, not three
    for s in stores[1:]:
        assert s.fingerprint == stores[0].fingerprint
        np.testing.assert_array_equal(s.waves, stores[0].waves)
    assert not [p for p in (root / ".minasd_store").iterdir() if p.name.endswith(".tmp")]


def test_read_only_root_uses_the_user_cache(root, tmp_path, monkeypatch):
    monkeypatch.delenv("MINASD_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    writable = store_mod._writable
    monkeypatch.setattr(store_mod, "_writable", lambda folder: folder.parent != root and writable(folder))
    store = open_store(root, progress=False)
    assert store.folder.parent == tmp_path / "xdg" / "minasd" and store.folder.name.startswith("store-")
    assert not (root / ".minasd_store" / "index.json").exists()
    monkeypatch.setattr(store_mod, "_writable", writable)
    assert open_store(root, progress=False).folder == store.folder  # found there next time, not rebuilt


def test_minasd_cache_comes_first_and_is_keyed_by_the_root(root, tmp_path, monkeypatch):
    monkeypatch.setenv("MINASD_CACHE", str(tmp_path / "cache"))
    a = open_store(root, progress=False)
    assert a.folder.parent == tmp_path / "cache" and not (root / ".minasd_store" / "index.json").exists()
    other = tmp_path / "other"
    _write(_clip(other, "fan", 0, 0), 2.5, 5)
    _write(_clip(other, "pump", 0, 0), 2.5, 6)
    b = open_store(other, progress=False)
    assert b.folder.parent == a.folder.parent and b.folder != a.folder and len(b) == 2


def test_training_reads_the_memory_mapped_store_and_a_second_run_decodes_nothing(root, tmp_path, monkeypatch):
    """Item 6 of issue 12: a run's waveforms are the store's memory map (not an in-memory copy of
    every clip), and a second run on the same root reuses that store without decoding a WAV file."""
    import soundfile

    from minasd import train as train_mod

    seen = []
    build_data = train_mod.build_data

    def capture(cfg):
        td, sel, stats = build_data(cfg)
        seen.append(td)
        return td, sel, stats

    monkeypatch.setattr(train_mod, "build_data", capture)

    def run(out: str) -> None:
        train_mod.train(train_mod.TrainConfig(machine_type="fan", data_root=str(root), out_dir=str(tmp_path / out),
                                              epochs=1, batch_size=4, device="cpu", progress=False,
                                              backbone="mobilenetv3_small_050"))

    calls = _counting_loader(monkeypatch)
    run("first")
    assert sorted(calls) == sorted(p.name for p in _source_train(root))  # the first run built the store
    waves = seen[0].store.waves
    assert isinstance(waves, np.memmap) and waves.dtype == np.int16 and waves.filename is not None
    assert Path(waves.filename).parent == root / ".minasd_store"

    def fail(*a, **kw):
        raise AssertionError("a WAV file was decoded again")

    monkeypatch.setattr(data_mod, "load_audio", fail)
    monkeypatch.setattr(soundfile, "read", fail)
    run("second")
    assert isinstance(seen[1].store.waves, np.memmap)
    assert seen[1].store.fingerprint == seen[0].store.fingerprint
