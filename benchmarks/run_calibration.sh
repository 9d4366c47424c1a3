#!/usr/bin/env bash
# Issue 23: every stage of the synthetic factory's calibration, in order (docs/factory_v2_design.md,
# sections 3 and 5).  Each stage reads back the jobs already finished in the committed store, so a
# rerun after an interruption, or in the next session, resumes where the last one stopped.
# Method-independent: it runs the DCASE 2021 autoencoder and the mean/max-pooled GMMs only.
#
#   bash benchmarks/run_calibration.sh            # data and logs under out/calib (CALIB_WORK to move them)
#
# The saturation stage and the search start from the knobs the saturation was measured with
# (knobs_saturation.json in the store); the search writes minasd/synth_knobs.json, which the check
# reads.  Freezing (`minasd calibrate freeze`) is left to a person who has read the report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
STORE=benchmarks/results/calibration
WORK=${CALIB_WORK:-out/calib}
CAL=(.venv/bin/python -m minasd.cli calibrate)
COMMON=(--work "$WORK" --store "$STORE" --jobs "${CALIB_JOBS:-2}")
START=(--knobs "$STORE/knobs_saturation.json")
"${CAL[@]}" saturation "${COMMON[@]}" "${START[@]}" --sizes 60 120 250 500 1000
"${CAL[@]}" search "${COMMON[@]}" "${START[@]}" --knobs-out minasd/synth_knobs.json
"${CAL[@]}" check "${COMMON[@]}"
echo "[calibration] stages done; read benchmarks/results/factory_calibration.md, then: minasd calibrate freeze"
