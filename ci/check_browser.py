"""Open every page of the built book in headless Chromium and check what a reader would see.

For each HTML page (served over a local HTTP server, as a reader's browser would get it):
the page loads (no HTTP error page, a non-empty body), every ``<img>`` resolves
(``naturalWidth > 0`` after the image finished loading), and no error output is shown
(a traceback, an output cell of class ``error``/``traceback``, or a ``stderr`` output
containing "Error").  Failed requests for the book's own files and uncaught script
errors on its pages, logged by the browser console, count as problems too.

Usage::

    python ci/check_browser.py [_build/ci_book/_build/html]

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``apt-get install -y
chromium chromium-driver``); talks to chromedriver over plain HTTP (W3C WebDriver), so
no Python package is needed.  Without them it prints SKIPPED and exits 0.  Exit status
1 when any page has a problem.  (``ci/check_html.py`` is the static check that needs no
browser.)
"""
from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1024")

# Runs in the page: make lazy images load, wait (bounded) until every image has finished,
# then report what a reader would see.  Async script: the last argument is the callback.
PAGE_PROBE = r"""
const done = arguments[arguments.length - 1];
const waitMs = arguments[0];
const imgs = Array.from(document.images);
imgs.forEach(im => { if (im.loading === 'lazy') { im.loading = 'eager'; } });
const pending = imgs.filter(im => !im.complete).map(im => new Promise(res => {
  im.addEventListener('load', res, {once: true}); im.addEventListener('error', res, {once: true});
}));
const timeout = new Promise(res => setTimeout(res, waitMs));
Promise.race([Promise.all(pending), timeout]).then(() => {
  const q = sel => Array.from(document.querySelectorAll(sel));
  const text = el => (el.innerText || el.textContent || '').trim();
  const errorCells = q('.output.error, .output.traceback, div.cell_output .traceback').map(text);
  const stderrErrors = q('.output.stderr, .stderr').map(text).filter(t => t.includes('Error'));
  const body = document.body ? text(document.body) : '';
  done({
    title: document.title,
    readyState: document.readyState,
    bodyChars: body.length,
    traceback: body.includes('Traceback (most recent call last)'),
    images: imgs.map(im => ({src: im.currentSrc || im.src, complete: im.complete, width: im.naturalWidth})),
    errorCells: errorCells.map(t => t.slice(0, 300)),
    stderrErrors: stderrErrors.map(t => t.slice(0, 300)),
  });
});
"""


def find_browser() -> tuple[str | None, str | None]:
    """Paths of the Chromium binary and of chromedriver (None when missing)."""
    browser = next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)
    return browser, shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the summary reports problems; no access log
        pass


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``root`` on 127.0.0.1 in a daemon thread; returns (server, base URL)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class WebDriver:
    """The few W3C WebDriver calls this check needs, over urllib."""

    def __init__(self, url: str, timeout: float):
        self.url, self.timeout, self.session = url.rstrip("/"), timeout, None

    def call(self, method: str, path: str, payload: dict | None = None):
        data = json.dumps(payload if payload is not None else {}).encode() if method == "POST" else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as err:
            body = err.read().decode(errors="replace")
            try:
                v = json.loads(body)["value"]
                msg = f"{v.get('error')}: {v.get('message', '')}"
            except (ValueError, KeyError, TypeError, AttributeError):
                msg = body[:500]
            raise RuntimeError(f"WebDriver {method} {path} failed: {msg.splitlines()[0] if msg else err}") from None

    def wait_ready(self, seconds: float = 20.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                if (self.call("GET", "/status") or {}).get("ready"):
                    return
            except (OSError, RuntimeError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"chromedriver at {self.url} did not become ready in {seconds:.0f} s")

    def start(self, browser: str, user_data_dir: str) -> None:
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "pageLoadStrategy": "normal",
            "goog:chromeOptions": {"binary": browser, "args": [*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}"]},
            "goog:loggingPrefs": {"browser": "ALL"},
            "timeouts": {"pageLoad": int(self.timeout * 1000), "script": int(self.timeout * 1000)}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def get(self, url: str) -> None:
        self.call("POST", f"/session/{self.session}/url", {"url": url})

    def run_async(self, script: str, *args):
        return self.call("POST", f"/session/{self.session}/execute/async", {"script": script, "args": list(args)})

    def console(self) -> list[dict]:
        """Browser console entries since the last call (chromedriver's log endpoint; [] if unsupported)."""
        try:
            return self.call("POST", f"/session/{self.session}/se/log", {"type": "browser"}) or []
        except RuntimeError:
            return []

    def quit(self) -> None:
        if self.session:
            try:
                self.call("DELETE", f"/session/{self.session}")
            except (OSError, RuntimeError):
                pass
            self.session = None


def page_problems(info: dict, console: list[dict], base: str) -> list[str]:
    """Problems of one page from the probe's report and the console entries."""
    out = []
    if info.get("title", "").startswith("Error response") or info.get("bodyChars", 0) == 0:
        out.append(f"page did not load (title {info.get('title')!r}, {info.get('bodyChars', 0)} characters)")
    for im in info.get("images", []):
        if not im["complete"] or im["width"] == 0:
            out.append(f"image does not resolve: {im['src'][:200]}")
    out += [f"error output cell: {t!r}" for t in info.get("errorCells", [])]
    out += [f"stderr output with an error: {t!r}" for t in info.get("stderrErrors", [])]
    if info.get("traceback") and not info.get("errorCells"):
        out.append("the page text contains 'Traceback (most recent call last)'")
    bad_images = {im["src"] for im in info.get("images", []) if not im["complete"] or im["width"] == 0}
    for e in console:
        msg = str(e.get("message", ""))
        url = msg.split(" ", 1)[0]
        # A failed request for one of the book's own files.  Not counted: offline fetches of
        # third-party resources, the favicon the browser asks for by itself, and images
        # already reported above.
        if (e.get("level") == "SEVERE" and url.startswith(base) and "Failed to load" in msg
                and not url.endswith("/favicon.ico") and url not in bad_images):
            out.append(f"console: {msg[:300]}")
        # A script of the book's own pages that throws (e.g. a constant declared twice).
        elif e.get("level") == "SEVERE" and url.startswith(base) and "Uncaught" in msg:
            out.append(f"console: {msg[:300]}")
    return out


def check(html_root: Path, timeout: float = 60.0, image_wait_ms: int = 15000) -> int:
    """Open every page under ``html_root``; print a summary; return the exit status."""
    t0 = time.monotonic()
    browser, driver = find_browser()
    if not browser or not driver:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p)
        print(f"[browser] SKIPPED: {missing} not installed (Debian: apt-get install -y chromium chromium-driver)")
        return 0
    if not html_root.is_dir():
        print(f"[browser] {html_root} is not a folder: build the book first (bash ci/book.sh)")
        return 1
    pages = sorted(p.relative_to(html_root).as_posix() for p in html_root.rglob("*.html")
                   if "_static" not in p.parts and "_sources" not in p.parts)
    if not pages:
        print(f"[browser] no HTML pages under {html_root}")
        return 1
    server, base = serve(html_root)
    port = _free_port()
    profile = tempfile.mkdtemp(prefix="minasd_chromium_")
    proc = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wd = WebDriver(f"http://127.0.0.1:{port}", timeout)
    problems: dict[str, list[str]] = {}
    n_images = n_console = 0
    other_console: dict[str, int] = {}  # severe messages not counted as problems, with their count
    try:
        wd.wait_ready()
        wd.start(browser, profile)
        for page in pages:
            t_page = time.monotonic()
            try:
                wd.get(base + page)
                info = wd.run_async(PAGE_PROBE, image_wait_ms)
                console = wd.console()
            except RuntimeError as err:
                problems[page] = [str(err)]
                print(f"[browser] FAIL {page}: {err}")
                continue
            n_images += len(info.get("images", []))
            n_console += sum(e.get("level") == "SEVERE" for e in console)
            found = page_problems(info, console, base)
            for e in console:
                msg = str(e.get("message", ""))[:160]
                if e.get("level") == "SEVERE" and not any(msg[:100] in f for f in found):
                    other_console[msg] = other_console.get(msg, 0) + 1
            if found:
                problems[page] = found
            print(f"[browser] {'FAIL' if found else 'ok  '} {page}: {len(info.get('images', []))} images, "
                  f"{time.monotonic() - t_page:.1f} s" + "".join(f"\n           - {p}" for p in found))
    finally:
        wd.quit()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    elapsed = time.monotonic() - t0
    n_bad = sum(len(v) for v in problems.values())
    print(f"[browser] {len(pages)} pages, {n_images} images, {len(problems)} pages with problems ({n_bad} problems), "
          f"{n_console} severe console messages in all; {elapsed:.1f} s (headless {Path(browser).name})")
    for msg, n in sorted(other_console.items(), key=lambda kv: -kv[1])[:5]:
        print(f"[browser] not counted ({n}x, not the book's own failed request or script error): {msg}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html_root", nargs="?", default="_build/ci_book/_build/html", type=Path,
                    help="built HTML folder (default: _build/ci_book/_build/html)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per WebDriver call (page load)")
    args = ap.parse_args(argv)
    return check(args.html_root, timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
