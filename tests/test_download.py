"""Tests of minasd.download against a local HTTP server on 127.0.0.1 (no network)."""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import time
import urllib.parse
import zipfile

import numpy as np
import pytest

from minasd.config import ZENODO_RECORDS
from minasd.data import index
from minasd.download import (
    MANIFEST,
    STATE_DIR,
    ChecksumError,
    DownloadError,
    UnsafeArchiveError,
    download_dcase2021,
    safe_extract,
)


class FakeZenodo:
    """Serves ``/api/records/<id>`` JSON and ``/records/<id>/files/<name>`` with Range support."""

    def __init__(self):
        self.files: dict[str, dict[str, bytes]] = {}  # record -> {name: bytes}
        self.bad_md5: set[str] = set()
        self.honour_range = True
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        # path -> body bytes sent.  Counted under a lock *before* the body is written: the
        # client cannot hold the bytes before they are counted, so a test that reads this
        # after the download returned sees the final count (counting after the write raced
        # with that read: the handler thread may not have run its next line yet).
        self.sent: dict[str, int] = {}
        self.lock = threading.Lock()
        self.after_write = None  # called by the handler thread after each body (tests: a slow server)
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                path = urllib.parse.urlsplit(self.path).path
                with fake.lock:
                    fake.requests.append((path, self.headers.get("Range")))
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "records"] and len(parts) == 3 and parts[2] in fake.files:
                    body = json.dumps({"id": parts[2], "files": [
                        {"key": n, "size": len(d),
                         "checksum": "md5:" + (("0" * 32) if n in fake.bad_md5 else hashlib.md5(d).hexdigest())}
                        for n, d in fake.files[parts[2]].items()]}).encode()
                    return self._send(200, body, {"Content-Type": "application/json"})
                if len(parts) == 4 and parts[0] == "records" and parts[2] == "files":
                    data = fake.files.get(parts[1], {}).get(urllib.parse.unquote(parts[3]))
                    if data is not None:
                        rng = self.headers.get("Range")
                        if rng and fake.honour_range:
                            start = int(rng.removeprefix("bytes=").split("-")[0])
                            if start >= len(data):
                                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                            return self._send(206, data[start:], {
                                "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
                        return self._send(200, data, {})
                self._send(404, b"not found", {})

            def _send(self, code, body, headers):
                self.send_response(code)
                for k, v in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(k, v)
                path = urllib.parse.urlsplit(self.path).path
                with fake.lock:
                    fake.sent[path] = fake.sent.get(path, 0) + len(body)
                self.end_headers()
                self.wfile.write(body)
                if fake.after_write is not None:
                    fake.after_write()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def kwargs(self) -> dict:
        return {"base_url": self.url, "api_url": self.url + "/api", "progress": False, "timeout": 10}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def zenodo():
    server = FakeZenodo()
    yield server
    server.close()


def make_zip(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = 0o120777 << 16
            zf.writestr(info, target)
    return buf.getvalue()


def clip(i: int) -> bytes:
    """Distinct, incompressible placeholder bytes (index() never decodes audio)."""
    return np.random.default_rng(i).bytes(2000)


def serve_dcase(zenodo: FakeZenodo, machine: str = "fan") -> None:
    gt_rows = "".join(f"section_03_source_test_{i:04d}.wav,{i % 2}\n" for i in range(3))
    zenodo.files.setdefault(ZENODO_RECORDS["dev"], {})[f"dev_data_{machine}.zip"] = make_zip({
        f"{machine}/train/section_00_source_train_normal_{i:04d}_a.wav": clip(i) for i in range(3)} | {
        f"{machine}/source_test/section_00_source_test_anomaly_0000_a.wav": clip(9)})
    zenodo.files.setdefault(ZENODO_RECORDS["add"], {})[f"eval_data_{machine}_train.zip"] = make_zip({
        f"{machine}/train/section_03_source_train_normal_{i:04d}_b.wav": clip(10 + i) for i in range(2)})
    zenodo.files.setdefault(ZENODO_RECORDS["eval"], {})[f"eval_data_{machine}_test.zip"] = make_zip({
        f"{machine}/source_test/section_03_source_test_{i:04d}.wav": clip(20 + i) for i in range(3)})
    zenodo.files.setdefault(ZENODO_RECORDS["ground_truth"], {})["ground_truth_data.zip"] = make_zip({
        f"ground_truth_data/ground_truth_{machine}_section_03_source_test.csv": gt_rows.encode()})


def test_download_extract_index_and_idempotence(zenodo, tmp_path):
    serve_dcase(zenodo)
    dest = tmp_path / "dcase2021"
    fetched = download_dcase2021(["fan"], dest, **zenodo.kwargs())
    assert [p.name for p in fetched] == ["dev_data_fan.zip", "eval_data_fan_train.zip", "eval_data_fan_test.zip",
                                         "ground_truth_data.zip"]
    assert (dest / "dev_data/fan/train/section_00_source_train_normal_0001_a.wav").read_bytes() == clip(1)
    assert (dest / "eval_data/fan/train/section_03_source_train_normal_0001_b.wav").read_bytes() == clip(11)
    assert (dest / "eval_data/fan/source_test/section_03_source_test_0002.wav").read_bytes() == clip(22)
    left = sorted(p.name for p in (dest / STATE_DIR).iterdir())
    assert left == sorted([f"{p.name}.done" for p in fetched] + [f"record_{ZENODO_RECORDS['ground_truth']}.done",
                                                                 MANIFEST])
    assert sorted(p.name for p in dest.iterdir()) == [STATE_DIR, "dev_data", "eval_data", "ground_truth"]
    df = index(dest)
    ev = df[(df.dataset == "eval_data") & (df.split == "test")]
    assert ev["label"].tolist() == [0, 1, 0]  # merged from the downloaded ground truth
    assert len(df) == 3 + 1 + 2 + 3

    n_requests = len(zenodo.requests)
    assert download_dcase2021(["fan"], dest, **zenodo.kwargs()) == []
    assert len(zenodo.requests) == n_requests  # second run: zero HTTP requests


def test_download_manifest_decides_whether_the_root_is_called_real_dcase(zenodo, tmp_path, monkeypatch):
    from minasd import download
    from minasd.provenance import data_label, data_manifest
    from minasd.studies.summary_view import manifest_caption as manifest_label

    serve_dcase(zenodo)
    # the DCASE layout alone (another generator, a copy): nothing says these are the released files
    copy = tmp_path / "copy"
    (copy / "dev_data" / "fan" / "train").mkdir(parents=True)
    assert data_manifest(copy) == {"kind": "dcase_layout", "synthetic": False,
                                   "note": "DCASE layout, no minasd synth manifest (provenance unknown)"}
    assert "real" not in data_label(copy)
    # fetched and checksummed, but from a server that is not Zenodo: still of unknown origin
    mirror = tmp_path / "mirror"
    download_dcase2021(["fan"], mirror, **zenodo.kwargs())
    m = download.download_manifest(mirror)
    assert m["zenodo"] is False and m["machine_types"] == ["fan"] and len(m["archives"]) == 4
    assert data_manifest(mirror)["kind"] == "dcase_layout"
    # from Zenodo's records (the fake server standing in for it): the released files, called real
    monkeypatch.setattr(download, "ZENODO_URL", zenodo.url)
    dest = tmp_path / "dcase2021"
    download_dcase2021(["fan"], dest, parts=["dev", "eval"], **zenodo.kwargs())
    m = download.download_manifest(dest)
    assert m["zenodo"] is True and m["parts"] == ["dev", "eval"]
    assert {a["archive"]: a["md5"] for a in m["archives"]} == {
        name: hashlib.md5(zenodo.files[ZENODO_RECORDS[part]][name]).hexdigest()
        for part, name in (("dev", "dev_data_fan.zip"), ("eval", "eval_data_fan_test.zip"))}
    data = data_manifest(dest)
    assert data["kind"] == "dcase2021" and data["machine_types"] == ["fan"] and not data["synthetic"]
    assert data_label(dest).startswith("real DCASE 2021 Task 2 data (downloaded from Zenodo and MD5-checked")
    assert manifest_label(data).startswith("real DCASE 2021 Task 2 data")
    # a rerun that fetches more keeps one manifest of everything in place
    download_dcase2021(["fan"], dest, parts=["add"], **zenodo.kwargs())
    assert download.download_manifest(dest)["parts"] == ["dev", "add", "eval"]
    # an unreadable manifest is no evidence
    (dest / STATE_DIR / MANIFEST).write_text("{half")
    assert download.download_manifest(dest) is None and data_manifest(dest)["kind"] == "dcase_layout"


def test_wrong_checksum_removes_download_and_extracts_nothing(zenodo, tmp_path):
    serve_dcase(zenodo, "pump")
    zenodo.bad_md5.add("dev_data_pump.zip")
    with pytest.raises(ChecksumError, match="dev_data_pump.zip: MD5 .* does not match"):
        download_dcase2021(["pump"], tmp_path, parts=["dev"], **zenodo.kwargs())
    assert not (tmp_path / "dev_data").exists()
    assert list((tmp_path / STATE_DIR).iterdir()) == []  # no .part, no archive, no marker


def test_explicit_checksum_wins_and_no_api_needed(zenodo, tmp_path):
    serve_dcase(zenodo)
    data = zenodo.files[ZENODO_RECORDS["dev"]]["dev_data_fan.zip"]
    kw = zenodo.kwargs() | {"api_url": None}
    with pytest.raises(ValueError, match="no checksum for dev_data_fan.zip"):
        download_dcase2021(["fan"], tmp_path, parts=["dev"], **kw)
    with pytest.raises(ChecksumError, match="dev_data_fan.zip"):
        download_dcase2021(["fan"], tmp_path, parts=["dev"], checksums={"dev_data_fan.zip": "1" * 32}, **kw)
    good = {"dev_data_fan.zip": "md5:" + hashlib.md5(data).hexdigest()}
    download_dcase2021(["fan"], tmp_path, parts=["dev"], checksums=good, **kw)
    assert not any(path.startswith("/api/") for path, _ in zenodo.requests)
    assert len(list((tmp_path / "dev_data/fan/train").iterdir())) == 3


def test_path_traversal_member_is_refused(zenodo, tmp_path):
    dest = tmp_path / "data"
    zenodo.files[ZENODO_RECORDS["dev"]] = {"dev_data_fan.zip": make_zip({
        "fan/train/section_00_source_train_normal_0000.wav": clip(0), "../evil.txt": b"gotcha"})}
    with pytest.raises(UnsafeArchiveError, match=r"dev_data_fan.zip: member '\.\./evil.txt' would land outside"):
        download_dcase2021(["fan"], dest, parts=["dev"], **zenodo.kwargs())
    assert not (tmp_path / "evil.txt").exists() and not (dest / "evil.txt").exists()
    assert not (dest / "dev_data" / "fan").exists()  # nothing half-done
    assert not list((dest / STATE_DIR).glob("*.done"))
    assert not [p for p in dest.rglob("*") if p.name.startswith(".extract")]


@pytest.mark.parametrize("members, symlinks, bad", [
    ({"/etc/passwd_copy": b"x"}, None, "/etc/passwd_copy"),
    ({"fan/../../up.txt": b"x"}, None, "fan/../../up.txt"),
    ({"C:/windows.txt": b"x"}, None, "C:/windows.txt"),
    ({"fan/ok.wav": b"x"}, {"fan/link.wav": "/etc/passwd"}, "fan/link.wav"),
])
def test_safe_extract_refuses_unsafe_members(tmp_path, members, symlinks, bad):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"fan/first.wav": b"1", **members}, symlinks))
    target = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract(archive, target)
    assert repr(bad) in str(err.value) and "a.zip" in str(err.value)
    assert not target.exists() or not any(target.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"] + (["out"] if target.exists() else [])


def test_safe_extract_merges_and_flattens(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"dev_data/fan/train/x.wav": b"1", "dev_data/fan/train/sub/": b""}))
    (tmp_path / "dev_data/fan/source_test").mkdir(parents=True)
    (tmp_path / "dev_data/fan/source_test/keep.wav").write_bytes(b"k")
    assert safe_extract(archive, tmp_path / "dev_data") == 1
    assert (tmp_path / "dev_data/fan/train/x.wav").read_bytes() == b"1"
    assert (tmp_path / "dev_data/fan/source_test/keep.wav").read_bytes() == b"k"
    bad = tmp_path / "b.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(UnsafeArchiveError, match="b.zip is not a valid zip"):
        safe_extract(bad, tmp_path / "x")


def test_resume_fetches_only_the_rest(zenodo, tmp_path):
    serve_dcase(zenodo)
    data = zenodo.files[ZENODO_RECORDS["dev"]]["dev_data_fan.zip"]
    assert len(data) > 5000
    state = tmp_path / STATE_DIR
    state.mkdir(parents=True)
    (state / "dev_data_fan.zip.part").write_bytes(data[:3000])
    # a server thread that lingers after writing (as a busy machine may schedule it) must not
    # change what the test reads: the byte count is final before the client gets the bytes
    zenodo.after_write = lambda: time.sleep(0.3)
    download_dcase2021(["fan"], tmp_path, parts=["dev"], **zenodo.kwargs())
    file_requests = [r for r in zenodo.requests if r[0].startswith("/records/")]
    assert file_requests == [(f"/records/{ZENODO_RECORDS['dev']}/files/dev_data_fan.zip", "bytes=3000-")]
    assert zenodo.sent[file_requests[0][0]] == len(data) - 3000  # only the remainder was sent
    assert (tmp_path / "dev_data/fan/source_test/section_00_source_test_anomaly_0000_a.wav").read_bytes() == clip(9)


def test_resume_when_server_ignores_range_and_complete_part(zenodo, tmp_path):
    serve_dcase(zenodo)
    zenodo.honour_range = False
    data = zenodo.files[ZENODO_RECORDS["dev"]]["dev_data_fan.zip"]
    (tmp_path / STATE_DIR).mkdir(parents=True)
    (tmp_path / STATE_DIR / "dev_data_fan.zip.part").write_bytes(b"garbage!")
    download_dcase2021(["fan"], tmp_path, parts=["dev"], **zenodo.kwargs())  # 200 instead of 206: restart
    assert len(list((tmp_path / "dev_data/fan/train").iterdir())) == 3
    # a complete .part file (size equals the listing's) is verified without fetching
    other = tmp_path / "again"
    (other / STATE_DIR).mkdir(parents=True)
    (other / STATE_DIR / "dev_data_fan.zip.part").write_bytes(data)
    before = len(zenodo.requests)
    download_dcase2021(["fan"], other, parts=["dev"], **zenodo.kwargs())
    assert [p for p, _ in zenodo.requests[before:]] == [f"/api/records/{ZENODO_RECORDS['dev']}"]


def test_errors_missing_archive_http_and_arguments(zenodo, tmp_path):
    serve_dcase(zenodo)
    with pytest.raises(DownloadError, match="dev_data_pump.zip is not in Zenodo record"):
        download_dcase2021(["pump"], tmp_path, parts=["dev"], **zenodo.kwargs())
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_dcase2021(["fan"], tmp_path, parts=["dev"], **(zenodo.kwargs() | {"api_url": zenodo.url + "/nope"}))
    with pytest.raises(ValueError, match="'lawnmower'"):
        download_dcase2021(["lawnmower"], tmp_path, **zenodo.kwargs())
    with pytest.raises(ValueError, match="unknown parts"):
        download_dcase2021(["fan"], tmp_path, parts=["train"], **zenodo.kwargs())


def test_cli_entry(zenodo, tmp_path, capsys):
    from minasd.cli import main

    serve_dcase(zenodo)
    argv = ["download", "--machine-types", "fan", "--dest", str(tmp_path), "--parts", "dev", "ground_truth",
            "--base-url", zenodo.url, "--api-url", zenodo.url + "/api", "--quiet"]
    assert main(argv) == 0
    assert "dev_data_fan.zip" in capsys.readouterr().out
    assert main(argv) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["download", "--machine-types", "drill", "--dest", str(tmp_path), "--quiet"]) == 1
    assert "'drill'" in capsys.readouterr().err
