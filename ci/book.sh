#!/usr/bin/env bash
# Execute every chapter listed in _toc.yml with papermill (parameters from
# ci/book_params.yaml), then build the book with warnings as errors.
# The executed copy lives in _build/ci_book/ so the committed notebooks stay clean.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
stage=_build/ci_book
rm -rf "$stage" && mkdir -p "$stage"
cp _config.yml _toc.yml "$stage"/ && cp -r book "$stage"/book
# The staged book is executed already: tell jupyter-book not to run it again.
$PY - "$stage/_config.yml" <<'PYEOF'
import sys, yaml
path = sys.argv[1]
cfg = yaml.safe_load(open(path))
cfg["execute"]["execute_notebooks"] = "off"
open(path, "w").write(yaml.safe_dump(cfg, sort_keys=False))
PYEOF
data_root=$($PY -c "import yaml; print(yaml.safe_load(open('ci/book_params.yaml'))['data_root'])")
if [ ! -f "$data_root/minasd_synth.json" ]; then
  .venv/bin/minasd synth --size small --seed 0 --out "$data_root"
fi
export MINASD_BOOK_CI=1 MPLBACKEND=Agg
for nb in $($PY ci/toc_notebooks.py); do
  t0=$(date +%s)
  echo "[book] executing $nb"
  # -p data_root is absolute so chapters find it from their own folder
  $PY -m papermill "$stage/$nb" "$stage/$nb" -f ci/book_params.yaml \
      -p data_root "$(pwd)/$data_root" --cwd "$stage/$(dirname "$nb")" --log-level WARNING
  echo "[book] $nb took $(( $(date +%s) - t0 )) s"
done
.venv/bin/jupyter-book build "$stage" -W --keep-going
$PY ci/check_html.py "$stage/_build/html" || { echo "[book] HTML check failed"; exit 1; }
