"""Download DCASE 2021 Task 2 from Zenodo: resumable, verified, safely extracted (Book: chapter 1).

What is fetched (records in :data:`minasd.config.ZENODO_RECORDS`), per machine type:

============== ========= ================================ ======================
part           record    archive                          extracted into
============== ========= ================================ ======================
dev            4562016   ``dev_data_<type>.zip``          ``<dest>/dev_data/``
add            4660992   ``eval_data_<type>_train.zip``   ``<dest>/eval_data/``
eval           4884786   ``eval_data_<type>_test.zip``    ``<dest>/eval_data/``
ground_truth   5257674   every file of the record         ``<dest>/ground_truth/``
============== ========= ================================ ======================

Each archive holds ``<type>/{train,source_test,target_test}/...``, so ``dest`` ends up in
the layout :func:`minasd.data.index` reads, with the ground-truth CSVs that it merges.
The ground-truth record is small and is fetched whole: its file names are taken from
the record's listing rather than hard-coded (``.zip`` files are extracted, others are
copied).

Guarantees:

- **Checksums.** Every file is checked against the MD5 that Zenodo publishes in its
  record API (``<api_url>/records/<id>``, ``files[].checksum = "md5:..."``) or against
  an explicit ``checksums={name: md5}``. A mismatch removes the download and raises
  :class:`ChecksumError`; nothing is extracted.
- **Resume.** Bytes go to ``<dest>/.minasd_download/<name>.part``; a rerun asks the
  server for the rest with an HTTP ``Range`` request.
- **Safe extraction.** Every member is checked before anything is written: absolute
  paths, ``..`` components, links and other special files are refused
  (:class:`UnsafeArchiveError` naming the member). The archive is extracted into a
  temporary folder inside ``dest`` and then renamed into place, so a failed
  extraction leaves nothing half-done in the data folders.
- **Idempotent.** A marker ``<dest>/.minasd_download/<name>.done`` is written after an
  archive is in place; a second run with the same arguments makes no HTTP request.
- **Provenance.** Every successful call rewrites ``<dest>/.minasd_download/manifest.json``
  (atomically) from the markers: which archives are in place, from which URL, with which
  MD5, and whether all came from Zenodo's DCASE 2021 records
  (:func:`download_manifest`; :func:`minasd.provenance.data_manifest` calls the root real
  DCASE 2021 data only then).

Only the standard library's ``urllib`` is used for HTTP.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping, Sequence

from minasd.progress import tqdm

from minasd.config import MACHINE_TYPES, ZENODO_RECORDS
from minasd.io_utils import atomic_write_json

log = logging.getLogger(__name__)

ZENODO_URL = "https://zenodo.org"
ZENODO_API_URL = "https://zenodo.org/api"
PARTS: tuple[str, ...] = ("dev", "add", "eval", "ground_truth")
#: Archive name per part (``{machine}`` is filled in); None = every file of the record.
ARCHIVES: Mapping[str, str | None] = {
    "dev": "dev_data_{machine}.zip",
    "add": "eval_data_{machine}_train.zip",
    "eval": "eval_data_{machine}_test.zip",
    "ground_truth": None,
}
#: Folder under ``dest`` that each part is extracted into.
TARGETS: Mapping[str, str] = {"dev": "dev_data", "add": "eval_data", "eval": "eval_data",
                              "ground_truth": "ground_truth"}
STATE_DIR = ".minasd_download"
MANIFEST = "manifest.json"  # in STATE_DIR: what the root holds from minasd download
MANIFEST_SCHEMA = "minasd.download"
_CHUNK = 1 << 20
_USER_AGENT = "minasd-downloader (python urllib)"


class DownloadError(RuntimeError):
    """A download could not be completed (HTTP error, missing file or checksum)."""


class ChecksumError(DownloadError):
    """A downloaded file's MD5 differs from the published one."""


class UnsafeArchiveError(DownloadError):
    """An archive member would land outside the target folder or is not a plain file."""


# --- public API --------------------------------------------------------------


def download_dcase2021(
    machine_types: Iterable[str] = MACHINE_TYPES,
    dest: str | os.PathLike = "data/dcase2021",
    parts: Sequence[str] = PARTS,
    *,
    base_url: str = ZENODO_URL,
    api_url: str | None = ZENODO_API_URL,
    checksums: Mapping[str, str] | None = None,
    keep_archives: bool = False,
    timeout: float = 60.0,
    progress: bool = True,
) -> list[Path]:
    """Download and extract DCASE 2021 Task 2 for some machine types (Book: chapter 1).

    Args:
        machine_types: machine types to fetch (subset of ``MACHINE_TYPES``).
        dest: data root; ends up with ``dev_data/``, ``eval_data/``, ``ground_truth/``.
        parts: any of ``"dev"``, ``"add"``, ``"eval"``, ``"ground_truth"``.
        base_url: file server; a file's URL is
            ``<base_url>/records/<id>/files/<name>?download=1``.
        api_url: record API; the listing with MD5s is ``<api_url>/records/<id>``. None
            skips the API: then ``checksums`` must name every archive (and the
            ground-truth part, which needs the listing, cannot be used).
        checksums: optional ``{archive name: md5 hex}``; takes precedence over the API.
        keep_archives: keep the verified archives in ``<dest>/.minasd_download/``
            (default: delete them after extraction).
        timeout: socket timeout per request in seconds.
        progress: show tqdm progress bars.

    Returns:
        Paths of the archives fetched and extracted by this call ([] when everything
        was already in place).

    Raises:
        ValueError: unknown machine type or part, or no checksum for an archive.
        DownloadError: HTTP failure or a file missing from a record.
        ChecksumError: a download does not match its MD5 (the download is removed).
        UnsafeArchiveError: an archive member is unsafe (nothing is extracted).
    """
    machine_types = _checked_request(machine_types, parts)
    dest = Path(dest).expanduser().resolve()
    state = dest / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    explicit = {k: v.lower().removeprefix("md5:") for k, v in (checksums or {}).items()}
    listings = _RecordListings(api_url, timeout)
    done: list[Path] = []
    for part in dict.fromkeys(parts):  # keep order, drop repeats
        record = ZENODO_RECORDS[part]
        names = _archive_names(part, machine_types, state, listings)
        if names is None:
            continue
        for name in names:
            if (state / f"{name}.done").exists():
                log.info("%s already in place", name)
                continue
            md5, size = _published_md5(name, record, explicit, listings)
            url = f"{base_url.rstrip('/')}/records/{record}/files/{urllib.parse.quote(name)}?download=1"
            archive = _download(url, state / name, md5, size, timeout, progress)
            _install_and_mark(archive, dest / TARGETS[part], state,
                              {"archive": name, "record": record, "part": part, "md5": md5, "url": url})
            if not keep_archives:
                archive.unlink()
            done.append(archive)
        if ARCHIVES[part] is None:
            atomic_write_json(state / f"record_{record}.done", {"record": record, "part": part, "files": names})
    _write_manifest(state)
    return done


def download_manifest(root: str | os.PathLike) -> dict | None:
    """The provenance ``minasd download`` left in ``root`` (None: none, or unreadable).

    Keys: ``archives`` (one record per archive in place: name, record, part, md5, url),
    ``machine_types`` and ``parts`` whose audio archives are in place, and ``zenodo``:
    True when every archive was fetched from its Zenodo DCASE 2021 record and matched its
    MD5, i.e. the files are the released ones.
    """
    try:
        m = json.loads((Path(root) / STATE_DIR / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and m.get("schema") == MANIFEST_SCHEMA else None


def _write_manifest(state: Path) -> None:
    """Rewrite ``state/MANIFEST`` from the archive markers in ``state``."""
    archives = []
    for marker in sorted(state.glob("*.done")):
        rec = json.loads(marker.read_text())
        if "archive" in rec:  # not a record_<id>.done
            archives.append({k: rec.get(k) for k in ("archive", "record", "part", "md5", "url")})
    # (part, machine type) of every audio archive in place
    audio = {(a["part"], m) for a in archives for m in MACHINE_TYPES
             if ARCHIVES.get(a["part"]) and a["archive"] == ARCHIVES[a["part"]].format(machine=m)}
    # markers of an earlier minasd record no URL: their source is unknown
    zenodo = bool(audio) and all(
        a["record"] == ZENODO_RECORDS.get(a["part"])
        and (a["url"] or "").startswith(f"{ZENODO_URL}/records/{a['record']}/files/") for a in archives)
    types, parts = {m for _, m in audio}, {p for p, _ in audio}
    atomic_write_json(state / MANIFEST, {
        "schema": MANIFEST_SCHEMA, "dataset": "DCASE 2021 Task 2", "archives": archives,
        "machine_types": [m for m in MACHINE_TYPES if m in types], "parts": [p for p in PARTS if p in parts],
        "zenodo": zenodo})


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike) -> int:
    """Extract a zip into ``target`` after checking every member (Book: chapter 1).

    Members are checked before anything is written; the archive is unpacked into a
    temporary folder beside ``target`` and moved into place (merging into existing
    folders, replacing files of the same name), so a refused or failed extraction leaves
    ``target`` as it was. A single top-level folder named like ``target``
    (``dev_data/fan/...`` extracted into ``dev_data``) is flattened.

    Returns:
        Number of files extracted.

    Raises:
        UnsafeArchiveError: absolute path, ``..`` component, link or special-file member
            (the message names the member), or not a zip file.
    """
    archive, target = Path(archive), Path(target)
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise UnsafeArchiveError(f"{archive} is not a valid zip file: {err}") from None
    with zf:
        members = zf.infolist()
        for info in members:
            _check_member(archive, info)
        target.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".extract-{archive.name}-", dir=target.parent))
        try:
            for info in members:
                zf.extract(info, tmp)  # names already validated: zipfile's own sanitising is a no-op
            src = tmp
            tops = [p for p in tmp.iterdir()]
            if len(tops) == 1 and tops[0].is_dir() and tops[0].name == target.name:
                src = tops[0]
            _merge_move(src, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return sum(1 for info in members if not info.is_dir())


# --- CLI -----------------------------------------------------------------------


def add_download_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``minasd download`` options to ``parser`` (Book: chapter 1)."""
    parser.add_argument("--machine-types", nargs="+", default=list(MACHINE_TYPES), metavar="TYPE",
                        help=f"machine types to fetch (default: all of {' '.join(MACHINE_TYPES)})")
    parser.add_argument("--dest", type=Path, required=True, help="data root to create or complete")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS,
                        help="dev: development set (sections 00-02); add: additional training set "
                             "(03-05 train); eval: evaluation set (03-05 test); ground_truth: its labels "
                             "(default: all)")
    parser.add_argument("--base-url", default=ZENODO_URL, help="file server (default: %(default)s)")
    parser.add_argument("--api-url", default=ZENODO_API_URL,
                        help="Zenodo record API used for the file list and MD5s (default: %(default)s)")
    parser.add_argument("--checksums", type=Path, default=None,
                        help="JSON file {archive name: md5} used instead of the API's MD5s")
    parser.add_argument("--keep-archives", action="store_true", help="keep the zip files after extraction")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def run_download(args: argparse.Namespace) -> int:
    """Run ``minasd download`` from parsed arguments; returns the exit status (Book: chapter 1)."""
    checksums = None
    if args.checksums is not None:
        try:
            checksums = json.loads(Path(args.checksums).read_text())
        except (OSError, json.JSONDecodeError) as err:
            print(f"minasd download: error: cannot read checksums file {args.checksums}: {err}", file=sys.stderr)
            return 2
    try:
        fetched = download_dcase2021(args.machine_types, args.dest, args.parts, base_url=args.base_url,
                                     api_url=args.api_url, checksums=checksums, keep_archives=args.keep_archives,
                                     progress=not args.quiet)
    except (DownloadError, ValueError, OSError) as err:
        print(f"minasd download: error: {err}", file=sys.stderr)
        return 1
    if fetched:
        print(f"fetched and extracted {len(fetched)} archive(s) into {Path(args.dest).resolve()}:")
        for path in fetched:
            print(f"  {path.name}")
    else:
        print(f"nothing to do: everything asked for is already in {Path(args.dest).resolve()}")
    return 0


# --- internals -----------------------------------------------------------------


def _checked_request(machine_types: Iterable[str], parts: Sequence[str]) -> list[str]:
    """The machine types asked for, as a list, after checking them and ``parts``."""
    machine_types = list(machine_types)
    unknown = [m for m in machine_types if m not in MACHINE_TYPES]
    if unknown or not machine_types:
        raise ValueError(f"machine types {unknown or machine_types} are not DCASE 2021 Task 2 types; "
                         f"choose from {list(MACHINE_TYPES)}")
    bad_parts = [p for p in parts if p not in PARTS]
    if bad_parts:
        raise ValueError(f"unknown parts {bad_parts}; choose from {list(PARTS)}")
    return machine_types


class _RecordListings:
    """The files of Zenodo records, ``{name: {"md5", "size"}}`` per record, each fetched once
    when first asked for (``{}`` for every record when there is no record API)."""

    def __init__(self, api_url: str | None, timeout: float):
        self.api_url, self.timeout = api_url, timeout
        self._cache: dict[str, dict[str, dict]] = {}

    def __call__(self, record: str) -> dict[str, dict]:
        if record not in self._cache:
            self._cache[record] = ({} if self.api_url is None else
                                   _fetch_listing(f"{self.api_url.rstrip('/')}/records/{record}", self.timeout))
        return self._cache[record]


def _archive_names(part: str, machine_types: list[str], state: Path, listings: _RecordListings) -> list[str] | None:
    """The archives of ``part`` to have in place: one per machine type, or every file of the
    (small) ground-truth record, named by its listing; None when that record is in place."""
    pattern, record = ARCHIVES[part], ZENODO_RECORDS[part]
    if pattern is not None:
        return [pattern.format(machine=m) for m in machine_types]
    if (state / f"record_{record}.done").exists():
        log.info("record %s (%s) already in place", record, part)
        return None
    if listings.api_url is None:
        raise ValueError(f"part {part!r} needs the Zenodo record listing; pass api_url")
    names = sorted(listings(record))
    if not names:
        raise DownloadError(f"Zenodo record {record} ({part}) lists no files")
    return names


def _published_md5(name: str, record: str, explicit: Mapping[str, str],
                   listings: _RecordListings) -> tuple[str, int | None]:
    """(MD5, size in bytes or None) of archive ``name``: an explicit checksum wins over the
    record's listing (the size is then not known)."""
    meta = listings(record).get(name) if (listings.api_url is not None and name not in explicit) else {}
    if meta is None:
        raise DownloadError(f"archive {name} is not in Zenodo record {record} "
                            f"(it lists: {', '.join(sorted(listings(record))) or 'nothing'})")
    md5 = explicit.get(name) or meta.get("md5")
    if not md5:
        raise ValueError(f"no checksum for {name}: pass checksums={{{name!r}: '<md5>'}} or use the Zenodo API")
    return md5, meta.get("size")


def _install_and_mark(archive: Path, target: Path, state: Path, source: dict) -> None:
    """Extract a verified ``archive`` into ``target`` and write its ``<name>.done`` marker
    (``source``: archive, record, part, md5, url), which later runs and the manifest read."""
    n_files = _install(archive, target, state)
    atomic_write_json(state / f"{source['archive']}.done", {
        **source, "target": str(target), "files": n_files, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    log.info("%s: %d files into %s", source["archive"], n_files, target)


def _open(url: str, timeout: float, headers: Mapping[str, str] | None = None):
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, **(headers or {})})
    return urllib.request.urlopen(req, timeout=timeout)


def _fetch_listing(url: str, timeout: float) -> dict[str, dict]:
    """``{file name: {"md5": hex, "size": int|None}}`` from a Zenodo record's JSON."""
    try:
        with _open(url, timeout, {"Accept": "application/json"}) as resp:
            raw = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        raise DownloadError(f"Zenodo API {url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"cannot reach Zenodo API {url}: {err}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DownloadError(f"Zenodo API {url} did not return JSON: {err}") from None
    files = raw.get("files") if isinstance(raw, dict) else None
    if isinstance(files, dict):  # InvenioRDM files endpoint: {"entries": [...] or {...}}
        files = files.get("entries", files)
        files = list(files.values()) if isinstance(files, dict) else files
    if not isinstance(files, list):
        raise DownloadError(f"Zenodo API {url}: no file list in the response")
    out = {}
    for f in files:
        name = f.get("key") or f.get("filename")
        checksum = str(f.get("checksum", ""))
        if name:
            md5 = checksum.split(":", 1)[1] if checksum.startswith("md5:") else None
            out[name] = {"md5": md5.lower() if md5 else None, "size": f.get("size") or f.get("filesize")}
    return out


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, final: Path, md5: str, size: int | None, timeout: float, progress: bool) -> Path:
    """Fetch ``url`` to ``final`` via ``final.part`` (resuming), verify its MD5, return ``final``."""
    md5 = md5.lower()
    if final.exists():  # fetched and verified earlier, extraction did not finish
        if _md5(final) == md5:
            return final
        final.unlink()
    part = final.with_name(final.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    if size is None or have < size:
        _fetch(url, part, have, size, timeout, progress)
    got = _md5(part)
    if got != md5:
        part.unlink()
        raise ChecksumError(f"{final.name}: MD5 {got} does not match the published {md5}; "
                            "the download was removed, nothing was extracted (run again to retry)")
    os.replace(part, final)
    return final


def _fetch(url: str, part: Path, have: int, size: int | None, timeout: float, progress: bool) -> None:
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        resp = _open(url, timeout, headers)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the part file is complete (MD5 decides)
            return
        raise DownloadError(f"{part.name.removesuffix('.part')}: HTTP {err.code} {err.reason} from {url}") from None
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"{part.name.removesuffix('.part')}: cannot reach {url}: {err}") from None
    with resp:
        if have and resp.status != 206:
            have = 0  # the server ignored the Range header: start over
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else size
        with open(part, "ab" if have else "wb") as fh, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), disable=not progress,
        ) as bar:
            try:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    fh.write(chunk)
                    bar.update(len(chunk))
            except OSError as err:
                raise DownloadError(f"{part.name.removesuffix('.part')}: connection lost after "
                                    f"{fh.tell()} bytes ({err}); run again to resume") from None


def _check_member(archive: Path, info: zipfile.ZipInfo) -> None:
    name = info.filename
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or (len(name) > 1 and name[1] == ":") or name.startswith(("/", "\\")):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has an absolute path; refusing to extract")
    if ".." in pure.parts:
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} would land outside the target folder; "
                                 "refusing to extract")
    ftype = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no Unix file type
    if ftype and ftype not in (stat.S_IFREG, stat.S_IFDIR):
        kind = "a symbolic link" if ftype == stat.S_IFLNK else "not a plain file"
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} is {kind}; refusing to extract")


def _merge_move(src: Path, dst: Path) -> None:
    """Move the contents of ``src`` into ``dst`` by renames (same file system)."""
    dst.mkdir(parents=True, exist_ok=True)
    for item in sorted(src.iterdir()):
        to = dst / item.name
        if item.is_dir() and to.is_dir():
            _merge_move(item, to)
        else:
            os.replace(item, to)


def _install(archive: Path, target: Path, state: Path) -> int:
    """Extract a zip or place a single file (e.g. a CSV) into ``target``; returns files placed."""
    if archive.suffix.lower() == ".zip":
        return safe_extract(archive, target)
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f".{archive.name}.tmp"
    shutil.copyfile(archive, tmp)
    os.replace(tmp, target / archive.name)
    return 1

