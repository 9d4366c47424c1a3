#!/usr/bin/env bash
# Create .venv with the pinned requirements and minasd installed (editable).
# Idempotent: a second run with unchanged requirements does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
want=$(sha256sum requirements.txt pyproject.toml | sha256sum | cut -c1-16)
have=$(cat .venv/.minasd-setup 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "[setup] installing pinned requirements into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
  echo "$want" > .venv/.minasd-setup
fi
echo "[setup] .venv ready: $(.venv/bin/python -c 'import minasd, torch; print("minasd", minasd.__version__, "torch", torch.__version__)')"
