#!/usr/bin/env bash
# How fast do R3's test errors fall with more labels? A learning curve on a fixed test set:
#
#     data/stilbene/r3/learning_curve.sh SNAPSHOT_DIR MINUTES FRACTION...
#
# For each FRACTION (in (0, 1)) trains the transfer recipe of SNAPSHOT_DIR's experiment
# (potentials/stilbene-r3-transfer.yaml as transfer_experiment.sh wrote it for that snapshot:
# the same data, initial weights, recipe and split.json) on that fraction of its training
# split (split.train_subsample: nested subsets, validation and test unchanged), on one CPU
# thread for at most MINUTES, into
#   potentials/training/stilbene-r3-transfer-SNAP-subFRACTION
# and writes each run's errors on the structures it trained on and on the test split, with the
# full run's (fraction 1), to
#   SNAPSHOT_DIR/learning-curve.txt
# Run transfer_experiment.sh for the snapshot first (its transfer run gives the split and the
# fraction-1 point); give the same MINUTES for a fair curve.
set -euo pipefail
cd "$(dirname "$0")/../../.."
SNAP=${1:?snapshot directory}
MINUTES=${2:?minutes per run}
shift 2
[ $# -gt 0 ] || { echo "give at least one fraction" >&2; exit 1; }
export OMP_NUM_THREADS=1 HDF5_USE_FILE_LOCKING=FALSE
PYTHON=${PYTHON:-python3}
TAG=$(basename "$SNAP")
FULL=potentials/training/stilbene-r3-transfer-$TAG
CFG=potentials/stilbene-r3-transfer.yaml
[ -e "$FULL/model.fff" ] || { echo "$FULL has no model: run transfer_experiment.sh first" >&2; exit 1; }
grep -q "^output: $FULL\$" "$CFG" || { echo "$CFG is not $TAG's (output is not $FULL)" >&2; exit 1; }
OUT="$SNAP/learning-curve.txt"
for FRACTION in "$@"; do
    RUN=$FULL-sub$FRACTION
    mkdir -p "$RUN"
    cp "$FULL/split.json" "$RUN/"
    SUB=$RUN/train.yaml
    sed -e "s|^output: .*|output: $RUN|" \
        -e "s|^split: {\(.*\)}|split: {\1, train_subsample: $FRACTION}|" \
        -e "s/^time_limit_minutes:.*/time_limit_minutes: $MINUTES/" "$CFG" > "$SUB"
    grep -q "train_subsample: $FRACTION" "$SUB" || { echo "$SUB: no split line to extend" >&2; exit 1; }
    "$PYTHON" -m fusionff.cli train "$SUB" > "$SNAP/train-transfer-sub$FRACTION.log" 2>&1
done
# Runs trained before metrics.json held training-split errors: those from eval
FULL_TRAIN="$SNAP/learning-curve-full-train.json"
if ! grep -q '"train": {' "$FULL/metrics.json"; then
    "$PYTHON" -m fusionff.cli eval "$FULL/model.fff" --run "$FULL" --subset train \
        --json "$FULL_TRAIN" > /dev/null
fi
"$PYTHON" - "$FULL" "$FULL_TRAIN" "$@" > "$OUT" <<'PY'
import json, sys
from fusionff.train.cli import member_line
full, full_train, fractions = sys.argv[1], sys.argv[2], sys.argv[3:]
print("fraction | trained on | epochs (best) | train split part trained on | test split")
for fraction, run in [("1", full)] + [(f, f"{full}-sub{f}") for f in fractions]:
    m = json.load(open(f"{run}/metrics.json"))
    train = m.get("train") or json.load(open(full_train))
    print(f"{fraction} | {m['split']['train']} | {m['epochs']} ({m['best_epoch']}) | "
          f"{member_line(train)} | {member_line(m['test'])}")
PY
cat "$OUT"
