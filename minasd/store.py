"""Waveform store: a data root's training clips, decoded once, in one memory-mapped file (Book: chapter 4).

Every training run reads random 2 s crops of the source-domain training clips of
every machine type under its data root (the target type's clips are positives,
the others outlier-exposure negatives).  Decoding those WAV files again for every
run (35 trainings in the protocol's tables) and holding them all in memory (the
full DCASE 2021 training set is about 13.5 GB as int16, more than a Colab
session has) are both avoided by one store per data root:

* **What**: every clip that :func:`minasd.data.protocol_clips` gives for
  ``"train"`` (source domain, every machine type, ``dev_data`` and ``eval_data``),
  decoded with :func:`minasd.data.load_audio` (16 kHz mono, channel 0),
  quantised to 16-bit PCM (``round(x * 32768)``, lossless for the 16-bit WAVs of
  DCASE and of :mod:`minasd.synth`), concatenated in sorted path order into one
  raw int16 file.  So every run and every ablation on the root shares it.
* **Where**: ``<data_root>/.minasd_store/`` when the data root is writable (the
  index skips hidden folders), else ``~/.cache/minasd/store-<hash>/``
  (``$XDG_CACHE_HOME/minasd`` if set), where ``<hash>`` is a hash of the
  resolved data root.  Setting ``$MINASD_CACHE`` puts stores in
  ``$MINASD_CACHE/store-<hash>/`` first (e.g. a local disk when the data sit on
  a slow or shared network drive).  A valid store in either place is used.
  Disk space: the int16 size of the clips (about 13.5 GB for the DCASE 2021
  training sets).  Files: ``index.json`` (format, fingerprint, relative path,
  offset and length of each clip, the data file's name) and
  ``waves-<fingerprint>.int16``.
* **When it is rebuilt**: the fingerprint is a hash of (relative path, size,
  mtime_ns) of every clip; a clip added, removed or modified changes it and the
  next run rebuilds the store (the old data file is then deleted).  A store
  whose index is unreadable or whose data file does not have the size the index
  says (truncated, e.g. by a full disk) is rebuilt with a warning.
* **How it is written**: clips are decoded in parallel threads straight into a
  temporary memory-mapped file, which is flushed and renamed into place; the
  index is written last, atomically.  An interrupted build leaves no store (the
  next run builds again), never half of one.  Builds of one store are serialised
  by a lock file (POSIX ``flock``): a second process that asks for the store while
  the first builds it waits and then reads the finished store instead of
  decoding the clips again.

Reading: :meth:`WaveStore.crops` gathers a batch of crops with one vectorised
NumPy indexing operation on the memory map (no Python loop per sample); only
the pages those crops touch are read from disk.  A training run therefore holds
no waveforms in its own (anonymous) memory: its host memory is the model, the
optimiser, one batch, and per-clip metadata.  The store's pages that the kernel
keeps cached count in the resident set (``RssFile``) but are page cache, dropped
under memory pressure rather than exhausting memory.

Measured host memory of one training run (a fresh process: index, store, 1 epoch of
``mobilenetv3_small_050`` at batch 32 with validation chunks of 64 crops, 2 threads, on a
2-core AMD EPYC shared with other jobs, load average about 3.7; the same whether the run built the store or reused it;
synthetic 10 s / 3 s clips; fan as the target type):

=====================================  ==========  ==============  ==============
data                                   store       peak RssAnon    ru_maxrss
=====================================  ==========  ==============  ==============
tiny, 3 types: 144 clips of 3 s        13 MiB      703 MiB         1,296 MiB
small, 3 types: 1,080 clips of 10 s    330 MiB     814-817 MiB     1,731 MiB
small, 7 types: 2,520 clips of 10 s    769 MiB     807-825 MiB     1,843-1,914 MiB
=====================================  ==========  ==============  ==============

The anonymous memory (the part that can run a machine out of memory) is the same
for 1,080 and 2,520 clips: about 0.8 GiB for this encoder and batch, set by the
model, the batch and the validation chunk (the tiny set's smaller validation set
uses less), not by the data; before the store it grew by the whole int16 data set
(13.5 GB for DCASE 2021).  ``ru_maxrss`` adds about 0.6 GiB of torch's shared
libraries and the store pages the epoch touched, which are page cache.

Whole runs of the ``cpu`` profile (20 epochs, evaluation too), measured by
``benchmarks/bench_profile.py`` (``benchmarks/results/cpu_profile_timing.txt``):
peak RssAnon 881 MiB with the small set (324 fan training clips, 2,520 in the
store) and 911 MiB with the medium set (1,080; 8,400 in the store, 3.3x the
data): the bound stays at about 0.9 GiB whatever the data size.

>>> store = open_store("data/dcase2021")  # doctest: +SKIP
>>> store.crops(np.array([0, 5]), np.array([0, 16000]), 32000).shape  # doctest: +SKIP
(2, 32000)
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .config import SAMPLE_RATE
from .io_utils import atomic_write_json

#: Folder of the store inside a writable data root (hidden: :func:`minasd.data.index` skips it).
STORE_DIRNAME = ".minasd_store"
#: Environment variable naming a cache folder for stores, used before the data root.
CACHE_ENV = "MINASD_CACHE"
INDEX_FILE = "index.json"
_KIND = "minasd.wave_store"
_VERSION = 1
#: int16 sample value = round(x * PCM_SCALE); the value soundfile reads back is int / PCM_SCALE.
PCM_SCALE = 32768.0


def user_cache_dir() -> Path:
    """``$MINASD_CACHE``, else ``$XDG_CACHE_HOME/minasd``, else ``~/.cache/minasd``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "minasd"


def store_locations(data_root: str | os.PathLike) -> list[Path]:
    """Where the store of ``data_root`` may live, in order of preference: ``$MINASD_CACHE``
    if set, the data root, the user cache folder."""
    root = Path(data_root).resolve()
    cache = user_cache_dir() / f"store-{hashlib.sha256(str(root).encode('utf-8')).hexdigest()[:16]}"
    return [cache, root / STORE_DIRNAME] if os.environ.get(CACHE_ENV) else [root / STORE_DIRNAME, cache]


def fingerprint(root: Path, rel_paths: Sequence[str]) -> str:
    """Hash of (relative path, size, mtime_ns) of every clip: changes when any clip does."""
    h = hashlib.sha256(f"{_KIND} v{_VERSION} {SAMPLE_RATE} Hz\n".encode())
    for rel in rel_paths:
        st = os.stat(root / rel)
        h.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n".encode("utf-8"))
    return h.hexdigest()


@dataclass
class WaveStore:
    """A data root's training clips as one read-only int16 memory map (Book: chapter 4).

    Attributes:
        root: the resolved data root.
        folder: where the store's files are.
        fingerprint: hash of the clip list (see :func:`fingerprint`).
        paths: relative POSIX paths of the clips, sorted; clip i is ``paths[i]``.
        offsets, lengths: (N,) int64, clip i is ``waves[offsets[i]:offsets[i] + lengths[i]]``.
        waves: (total,) int16 memory map.
    """

    root: Path
    folder: Path
    fingerprint: str
    paths: list[str]
    offsets: np.ndarray
    lengths: np.ndarray
    waves: np.ndarray
    _position: dict[str, int] = field(default_factory=dict, repr=False)
    _windows: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._position = {p: i for i, p in enumerate(self.paths)}

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def nbytes(self) -> int:
        return int(self.waves.size) * 2

    def index_of(self, paths: Iterable[str | os.PathLike]) -> np.ndarray:
        """Store positions (N,) int64 of clips given as absolute paths under the root or relative paths."""
        out = []
        for p in paths:
            p = Path(p)
            rel = Path(os.path.relpath(p, self.root)).as_posix() if p.is_absolute() else p.as_posix()
            if rel not in self._position:
                raise ValueError(f"clip {p} is not in the waveform store of {self.root} ({self.folder}): "
                                 "the store holds the source-domain training clips of that root only")
            out.append(self._position[rel])
        return np.asarray(out, dtype=np.int64)

    def clip(self, i: int) -> np.ndarray:
        """Clip ``i`` as int16 (a view of the memory map)."""
        return self.waves[self.offsets[i]:self.offsets[i] + self.lengths[i]]

    def crops(self, clips: np.ndarray, starts: np.ndarray, seg_len: int) -> np.ndarray:
        """Crops ``clip[start:start + seg_len]`` of each (clip, start) pair, (B, seg_len) int16.

        One fancy-indexing operation on a strided window view of the memory map: it copies
        exactly the B crops and reads only their pages.

        >>> s = WaveStore(Path("."), Path("."), "-", ["a.wav", "b.wav"], np.array([0, 5]), np.array([5, 4]),
        ...               np.arange(9, dtype=np.int16))
        >>> s.crops(np.array([1, 0]), np.array([1, 2]), 3)  # clip b from sample 1, clip a from sample 2
        array([[6, 7, 8],
               [2, 3, 4]], dtype=int16)
        """
        clips = np.asarray(clips, dtype=np.int64)
        starts = np.asarray(starts, dtype=np.int64)
        bad = (starts < 0) | (starts + seg_len > self.lengths[clips])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            c = int(clips[i])
            raise ValueError(f"crop of {seg_len} samples at {int(starts[i])} does not fit clip {self.paths[c]} "
                             f"({int(self.lengths[c])} samples)")
        if seg_len not in self._windows:
            self._windows[seg_len] = np.lib.stride_tricks.sliding_window_view(self.waves, seg_len)
        return np.asarray(self._windows[seg_len][self.offsets[clips] + starts])  # (B, seg_len)

    def norm_stats(self, clips: Iterable[int]):
        """Amplitude statistics of ``clips`` (:class:`minasd.data.NormStats`), read from the store.

        The same clip-by-clip float64 update (Chan et al.) as
        :func:`minasd.data.compute_norm_stats`; for 16-bit PCM files the samples are
        the same numbers, so the result is that function's on the same clips.
        """
        from .data import stats_of_waves

        clips = [int(c) for c in clips]
        if not clips:
            raise ValueError("norm_stats needs at least one clip; got none")
        return stats_of_waves((self.clip(c).astype(np.float64) / PCM_SCALE for c in clips), len(clips),
                              self.paths[clips[0]])


def training_clips(data_root: str | os.PathLike, df=None) -> list[str]:
    """Relative paths of the clips a store of ``data_root`` holds (source-domain training clips), sorted."""
    from .data import index, protocol_clips

    root = Path(data_root).resolve()
    if df is None:
        df = index(root)
    paths = protocol_clips(df, "train")["path"].tolist()
    return sorted(Path(os.path.relpath(p, root)).as_posix() for p in paths)


def open_store(data_root: str | os.PathLike, df=None, workers: int = 0, progress: bool = True) -> WaveStore:
    """The waveform store of ``data_root``: reused if it matches the clips, else built (Book: chapter 4).

    Args:
        data_root: DCASE-style data root.
        df: :func:`minasd.data.index` of the root, if the caller has it (saves indexing again).
        workers: decoding threads when building (0 = min(8, CPU count)).
        progress: show a progress bar while building.

    Raises:
        ValueError: no training clips, or a clip that cannot be decoded (named).
        PermissionError: neither the data root nor the cache folder is writable.
    """
    root = Path(data_root).resolve()
    rel = training_clips(root, df)
    if not rel:
        raise ValueError(f"no source-domain training clips under {root}: nothing to store")
    fp = fingerprint(root, rel)
    places = store_locations(root)
    for folder in places:
        store, problem = _try_open(folder, root, fp, rel)
        if store is not None:
            return store
        if problem.startswith("stale"):
            print(f"[store] {folder}: {problem}; rebuilding it")
        elif problem and problem != "missing":
            warnings.warn(f"waveform store {folder} is unusable ({problem}); rebuilding it")
    for folder in places:
        if _writable(folder):
            with _build_lock(folder):
                store, _ = _try_open(folder, root, fp, rel)  # another process built it meanwhile
                if store is not None:
                    return store
                _build(folder, root, fp, rel, workers, progress)
            store, problem = _try_open(folder, root, fp, rel)
            if store is None:
                raise RuntimeError(f"waveform store {folder} was just built but cannot be read ({problem})")
            return store
    raise PermissionError(f"cannot write a waveform store for {root}: neither {places[0]} nor {places[1]} is "
                          f"writable; set {CACHE_ENV} to a writable folder")


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def _try_open(folder: Path, root: Path, fp: str, rel: list[str]) -> tuple[WaveStore | None, str]:
    """(store, "") if ``folder`` holds a valid store of exactly these clips, else (None, why not)."""
    index_path = folder / INDEX_FILE
    if not index_path.is_file():
        return None, "missing"
    try:
        meta = json.loads(index_path.read_text(encoding="utf-8"))
        if meta.get("kind") != _KIND or meta.get("version") != _VERSION:
            return None, f"{index_path} is not a version-{_VERSION} store index"
        if meta["fingerprint"] != fp:
            return None, "stale: the clips changed since it was built"
        paths = [c[0] for c in meta["clips"]]
        offsets = np.asarray([c[1] for c in meta["clips"]], dtype=np.int64)
        lengths = np.asarray([c[2] for c in meta["clips"]], dtype=np.int64)
        total = int(meta["n_samples"])
        data_path = folder / meta["data_file"]
    except (ValueError, KeyError, TypeError, IndexError) as err:
        return None, f"{index_path} is unreadable ({type(err).__name__}: {err})"
    if paths != rel:
        return None, f"{index_path} lists other clips than its fingerprint says"
    if lengths.size and (offsets[-1] + lengths[-1] != total or np.any(offsets[1:] != np.cumsum(lengths)[:-1])):
        return None, f"{index_path}: offsets and lengths do not tile the data file"
    try:
        size = data_path.stat().st_size
    except OSError:
        return None, f"its data file {data_path.name} is missing"
    if size != 2 * total:
        return None, f"{data_path} holds {size} bytes, the index says {2 * total} (truncated or corrupt)"
    waves = np.memmap(data_path, dtype=np.int16, mode="r", shape=(total,))
    return WaveStore(root, folder, fp, paths, offsets, lengths, waves), ""


@contextlib.contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder/.lock`` (POSIX flock; no lock where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: builds are still atomic, just not serialised
        yield
        return
    with open(folder / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def expected_length(path: str | os.PathLike) -> int:
    """Samples :func:`minasd.data.load_audio` returns for ``path`` at 16 kHz, from the header."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise ValueError(f"cannot read audio file {path}: {err}") from None
    if info.samplerate == SAMPLE_RATE:
        return int(info.frames)
    ratio = Fraction(SAMPLE_RATE, info.samplerate)  # resample_poly's output length
    return int(math.ceil(info.frames * ratio.numerator / ratio.denominator))


def _build(folder: Path, root: Path, fp: str, rel: list[str], workers: int, progress: bool) -> None:
    from .data import load_audio
    from .progress import tqdm

    t0 = time.perf_counter()
    workers = workers or min(8, os.cpu_count() or 1)
    paths = [root / p for p in rel]
    with ThreadPoolExecutor(workers) as pool:
        lengths = np.asarray(list(pool.map(expected_length, paths)), dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    total = int(lengths.sum())
    data_name = f"waves-{fp[:16]}.int16"
    tmp = folder / f".{data_name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        flat = np.memmap(tmp, dtype=np.int16, mode="w+", shape=(total,))

        def fill(i: int) -> None:
            wave = load_audio(paths[i])
            if wave.shape[0] != lengths[i]:
                raise ValueError(f"clip {paths[i]}: read {wave.shape[0]} samples, its header says {lengths[i]}")
            q = np.clip(np.rint(wave * PCM_SCALE), -32768, 32767)
            flat[offsets[i]:offsets[i] + lengths[i]] = q.astype(np.int16)

        with ThreadPoolExecutor(workers) as pool:
            list(tqdm(pool.map(fill, range(len(paths))), total=len(paths), desc="building waveform store",
                      unit="clip", disable=not progress))
        flat.flush()
        del flat
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, folder / data_name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    atomic_write_json(folder / INDEX_FILE, {
        "kind": _KIND, "version": _VERSION, "sample_rate": SAMPLE_RATE, "dtype": "int16", "pcm_scale": PCM_SCALE,
        "root": str(root), "fingerprint": fp, "data_file": data_name, "n_samples": total,
        "clips": [[p, int(o), int(n)] for p, o, n in zip(rel, offsets, lengths)],
    }, indent=None)
    for old in folder.glob("waves-*.int16"):  # stores of earlier clip lists (open maps stay valid)
        if old.name != data_name:
            old.unlink(missing_ok=True)
    print(f"[store] decoded {len(rel)} clips ({2 * total / 2**20:.0f} MiB int16) into {folder} "
          f"in {time.perf_counter() - t0:.1f} s")
