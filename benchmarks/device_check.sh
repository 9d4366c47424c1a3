#!/usr/bin/env bash
# The checks to run when a session is lent a GPU machine (the device tool; never needed for CI or
# the tests, which run on the CPU): the same code path as on the CPU, on CUDA.
#
#   DEVICE=cuda OUT=out/device bash benchmarks/device_check.sh     # OUT: where the reports go
#
# 1. minasd on a tiny synthetic set (generator 1.2, fan and pump, seed 0): train two epochs of the paper's
#    encoder on the device (its runtime settings: channels_last, bf16 autocast on Ampere and newer,
#    pinned memory), evaluate (GMM inlier model, AUC/pAUC), score: the whole path runs and its
#    numbers are finite (two epochs on eight clips: not a result).
# 2. The DCASE autoencoder's fit on the device, on the same set, against the CPU's in the same run.
# 3. benchmarks/bench_train.py on the device: the training step's speed (old and new input path).
# Each step's output is in $OUT/device_check.log; the benchmark's report in $OUT/train_<device>.txt.
# SKIP_BENCH=1 leaves out step 3 (to try the script on a CPU).
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-out/device}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PYTHONUNBUFFERED=1
status=0
step() {  # step NAME COMMAND...: run, log, remember a failure, go on
    local name=$1; shift
    local t0=$SECONDS
    echo "== $name" | tee -a "$OUT/device_check.log"
    if "$@" >>"$OUT/device_check.log" 2>&1; then
        echo "   ok ($((SECONDS - t0)) s)" | tee -a "$OUT/device_check.log"
    else
        echo "   FAILED ($((SECONDS - t0)) s): see $OUT/device_check.log" | tee -a "$OUT/device_check.log"
        status=1
    fi
}
step "versions and device" "$PY" -c "import torch, timm, numpy; print(torch.__version__, timm.__version__, numpy.__version__); \
d = torch.device('$DEVICE'); print(torch.cuda.get_device_name(d) if d.type == 'cuda' else 'cpu')"
step "synthetic tiny set" "$PY" -m minasd.cli synth --size tiny --machine-types fan pump --seed 0 --generator 1.2 --out "$WORK/data"
step "train on $DEVICE (2 epochs, EfficientNet-B0)" "$PY" -m minasd.cli train --machine-type fan --data "$WORK/data" \
    --out "$WORK/run" --profile paper --epochs 2 --device "$DEVICE" --quiet
step "evaluate on $DEVICE" "$PY" -m minasd.cli evaluate --run "$WORK/run" --p 2 --device "$DEVICE" --quiet
step "result is finite" "$PY" - "$WORK/run" <<'EOF'
import json, math, sys
from pathlib import Path
found = sorted(Path(sys.argv[1]).rglob("*.json"))
values = []
for f in found:
    text = f.read_text(encoding="utf-8")
    if '"auc' in text.lower():
        values += [v for v in __import__("re").findall(r'"(?:source_)?auc[a-z_]*"\s*:\s*([-0-9.eE]+|NaN)', text)]
print(f"{len(found)} json files, {len(values)} AUC values")
assert values and all(math.isfinite(float(v)) for v in values), values
EOF
step "DCASE autoencoder: $DEVICE against cpu (3 epochs)" "$PY" - "$WORK/data" "$DEVICE" <<'EOF'
import sys, time
from minasd.dcase_ae import AEConfig, run_ae
rows = {}
for dev in ("cpu", sys.argv[2]):
    t0 = time.perf_counter()
    r = run_ae(sys.argv[1], ["fan"], [0, 1, 2], AEConfig(train_groups=("dev",), seed=0, epochs=3, device=dev),
               workers=1, progress=False)
    rows[dev] = r
    print(dev, f"{time.perf_counter() - t0:.1f} s", r.filter(like="auc").round(4).to_dict("records"))
EOF
if [ -z "${SKIP_BENCH:-}" ]; then
    step "training step speed on $DEVICE" "$PY" benchmarks/bench_train.py --device "$DEVICE" --out "$OUT/train_$DEVICE.txt"
fi
exit $status
