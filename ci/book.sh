#!/usr/bin/env bash
# Execute every chapter listed in _toc.yml with papermill (parameters from
# ci/book_params.yaml, or the file named by $MINASD_BOOK_PARAMS), then build the
# book with warnings as errors and check the HTML.
# Steps: (1) the synthetic data set at the parameters' scale (reused when finished);
# (2) ONE shared `minasd experiment` at CI scale into experiment_dir (resumable,
# skipped when finished with the same settings), which chapters 4-9 read when
# `live` is true; (3) every chapter; (4) jupyter-book build -W; (5) HTML check.
# The executed copy lives in _build/ci_book/ so the committed notebooks stay clean.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PARAMS=${MINASD_BOOK_PARAMS:-ci/book_params.yaml}
# Progress bars would flood the CI log and the executed chapters.
export MINASD_BOOK_CI=1 TQDM_DISABLE=1
t_start=$(date +%s)
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$(pwd)/$1" ;; esac; }
stage=_build/ci_book
rm -rf "$stage" && mkdir -p "$stage"
cp _config.yml _toc.yml "$stage"/ && cp -r book "$stage"/book
[ -d benchmarks ] && cp -r benchmarks "$stage"/benchmarks  # chapters read committed results
[ -d results ] && cp -r results "$stage"/results  # committed full-scale `minasd experiment` results
# The staged book is executed already: tell jupyter-book not to run it again.
$PY - "$stage/_config.yml" <<'PYEOF'
import sys, yaml
path = sys.argv[1]
cfg = yaml.safe_load(open(path))
cfg["execute"]["execute_notebooks"] = "off"
open(path, "w").write(yaml.safe_dump(cfg, sort_keys=False))
PYEOF
read -r scale seed data_root live experiment_dir < <($PY -c "import yaml,sys; p=yaml.safe_load(open(sys.argv[1])); print(p['scale'], p['seed'], p['data_root'], bool(p.get('live', False)), p.get('experiment_dir') or '-')" "$PARAMS")
data_root=$(abspath "$data_root")
t0=$(date +%s)
# reuses a finished set made with the same arguments; refuses (clearly) a set of another generator version
.venv/bin/minasd synth --size "$scale" --seed "$seed" --out "$data_root"
echo "[book] data set ($scale) took $(( $(date +%s) - t0 )) s"
extra=(-p data_root "$data_root")
if [ "$live" = True ]; then
  experiment_dir=$(abspath "$experiment_dir")
  extra+=(-p experiment_dir "$experiment_dir")
  t0=$(date +%s)
  # The chapters' own code path (minasd.book.live_experiment) with the same parameters.
  $PY - "$PARAMS" "$data_root" "$experiment_dir" <<'PYEOF'
import sys, yaml
from minasd.book import live_experiment
p = yaml.safe_load(open(sys.argv[1]))
live_experiment(sys.argv[3], sys.argv[2], machine_types=p["machine_types"], epochs=p["epochs"],
                backbone=p.get("backbone"), profile=p["profile"], grid_lam=p["grid_lam"], seed=p["seed"], device=p["device"],
                max_train_clips_per_section=p.get("max_train_clips_per_section"),
                tsne_max_other=p.get("tsne_max_other"), progress=True)
PYEOF
  echo "[book] experiment took $(( $(date +%s) - t0 )) s"
fi
for nb in $($PY ci/toc_notebooks.py); do
  t0=$(date +%s)
  echo "[book] executing $nb"
  # paths are made absolute so chapters find them from their own folder
  $PY -m papermill "$stage/$nb" "$stage/$nb" -f "$PARAMS" \
      "${extra[@]}" --cwd "$stage/$(dirname "$nb")" --log-level WARNING
  echo "[book] $nb took $(( $(date +%s) - t0 )) s"
done
t0=$(date +%s)
.venv/bin/jupyter-book build "$stage" -W --keep-going
$PY ci/check_html.py "$stage/_build/html"
$PY ci/check_browser.py "$stage/_build/html"
echo "[book] build and check took $(( $(date +%s) - t0 )) s"
echo "[book] total $(( $(date +%s) - t_start )) s"
