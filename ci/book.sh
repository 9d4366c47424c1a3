#!/usr/bin/env bash
# Execute every chapter listed in _toc.yml with papermill (parameters from
# ci/book_params.yaml, or the file named by $MINASD_BOOK_PARAMS), then build the
# book with warnings as errors and check the HTML.
# The executed copy lives in _build/ci_book/ so the committed notebooks stay clean.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PARAMS=${MINASD_BOOK_PARAMS:-ci/book_params.yaml}
stage=_build/ci_book
rm -rf "$stage" && mkdir -p "$stage"
cp _config.yml _toc.yml "$stage"/ && cp -r book "$stage"/book
[ -d benchmarks ] && cp -r benchmarks "$stage"/benchmarks  # chapters read committed results
# The staged book is executed already: tell jupyter-book not to run it again.
$PY - "$stage/_config.yml" <<'PYEOF'
import sys, yaml
path = sys.argv[1]
cfg = yaml.safe_load(open(path))
cfg["execute"]["execute_notebooks"] = "off"
open(path, "w").write(yaml.safe_dump(cfg, sort_keys=False))
PYEOF
read -r scale seed data_root < <($PY -c "import yaml,sys; p=yaml.safe_load(open(sys.argv[1])); print(p['scale'], p['seed'], p['data_root'])" "$PARAMS")
if [ ! -f "$data_root/minasd_synth.json" ]; then
  .venv/bin/minasd synth --size "$scale" --seed "$seed" --out "$data_root"
fi
export MINASD_BOOK_CI=1 TQDM_DISABLE=1
for nb in $($PY ci/toc_notebooks.py); do
  t0=$(date +%s)
  echo "[book] executing $nb"
  # data_root is made absolute so chapters find it from their own folder
  $PY -m papermill "$stage/$nb" "$stage/$nb" -f "$PARAMS" \
      -p data_root "$(pwd)/$data_root" --cwd "$stage/$(dirname "$nb")" --log-level WARNING
  echo "[book] $nb took $(( $(date +%s) - t0 )) s"
done
.venv/bin/jupyter-book build "$stage" -W --keep-going
$PY ci/check_html.py "$stage/_build/html"
