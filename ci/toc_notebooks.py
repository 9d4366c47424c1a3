"""Print the notebook files listed in _toc.yml, in reading order (used by ci/book.sh)."""
from pathlib import Path

import yaml


def walk(entries):
    for entry in entries or []:
        if "file" in entry:
            yield entry["file"]
        for key in ("chapters", "sections"):
            yield from walk(entry.get(key))
        for part in entry.get("parts", []) or []:
            yield from walk(part.get("chapters"))


def main() -> None:
    toc = yaml.safe_load(Path("_toc.yml").read_text())
    files = [toc["root"], *walk(toc.get("chapters")), *walk(toc.get("parts"))]
    for f in files:
        if Path(f + ".ipynb").exists():
            print(f + ".ipynb")


if __name__ == "__main__":
    main()
