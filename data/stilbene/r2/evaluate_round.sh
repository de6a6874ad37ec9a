#!/usr/bin/env bash
# Everything measured before a new round of the adiabatic R2 potential is shipped, in one go
# (about 10 minutes of one core; the main job's dynamics take most of it):
#
#     data/stilbene/r2/evaluate_round.sh NEW OLD OLDER
#
# NEW, OLD, OLDER are round numbers: NEW is the run potentials/training/stilbene-r2-adiabatic-roundNEW
# (trained), OLD and OLDER the models it is compared with (potentials/stilbene-r2-adiabatic.fff
# must still be round OLD, potentials/stilbene-r2-adiabatic-roundOLDER.fff round OLDER). Writes:
#   potentials/training/stilbene-r2-adiabatic-roundK-on-roundNEW-split/  for K = OLD, OLDER:
#       the model, NEW's split, K's own training metrics.json, eval.json (its test errors on
#       NEW's split) and a README saying what the directory is
#   /tmp/roundNEW-eval/heldout-*.txt   the held-out seam-probe frames on NEW and OLD
#   /tmp/roundNEW-eval/test-by-audit.json   NEW's test split by the audit's verdict (NEW, OLD, OLDER)
#   /tmp/roundNEW-eval/model-check.json     the R2 landmarks on NEW (data/stilbene/r2_model_check.py)
#   runs/r2-alNEW/                  the main job on NEW (data/stilbene/r2/alNEW-run.yaml, which
#                                   must exist: a copy of the previous round's with NEW's model),
#                                   analysed
# Shipping (renaming files, the card, the READMEs) stays a decision made by reading these.
set -euo pipefail
cd "$(dirname "$0")/../../.."
NEW=$1 OLD=$2 OLDER=$3
RUN=potentials/training/stilbene-r2-adiabatic-round$NEW
OUT=/tmp/round$NEW-eval
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 HDF5_USE_FILE_LOCKING=FALSE
[ -f "$RUN/model.fff" ] || { echo "$RUN/model.fff: no trained model" >&2; exit 1; }
[ -f "data/stilbene/r2/al$NEW-run.yaml" ] || { echo "data/stilbene/r2/al$NEW-run.yaml: missing" >&2; exit 1; }

# the main job on the new model, in the background while the rest runs
(fusionff run "data/stilbene/r2/al$NEW-run.yaml" && fusionff analyze "runs/r2-al$NEW") \
    > "$OUT/main-job.log" 2>&1 &
MAIN=$!

for K in "$OLD" "$OLDER"; do
    if [ "$K" = "$OLD" ]; then MODEL=potentials/stilbene-r2-adiabatic.fff
    else MODEL=potentials/stilbene-r2-adiabatic-round$K.fff; fi
    D=potentials/training/stilbene-r2-adiabatic-round$K-on-round$NEW-split
    mkdir -p "$D"
    cp "$MODEL" "$D/model.fff"
    cp "$RUN/split.json" "$D/"
    cp "potentials/training/stilbene-r2-adiabatic-round$K/metrics.json" "$D/"
    fusionff eval "$D/model.fff" --run "$RUN" --json "$D/eval.json" > "$OUT/eval-round$K.txt" 2>&1
    cat > "$D/README.md" <<EOF
Evaluation directory, not a training run: the round-$K model (../stilbene-r2-adiabatic-round$K/model.fff; whose metrics.json this is) with the split of round $NEW (../stilbene-r2-adiabatic-round$NEW/split.json), for comparing rounds $OLDER, $OLD and $NEW on the same test structures (\`fusionff eval MODEL --run $RUN --json eval.json\`, written by \`data/stilbene/r2/evaluate_round.sh $NEW $OLD $OLDER\`). The test structures that came with round $NEW's new data were in neither model's training data.
EOF
done

for M in "$RUN/model.fff" potentials/stilbene-r2-adiabatic.fff; do
    fusionff eval "$M" data/stilbene/r2/heldout/seam-probe-rows28-39.h5 \
        > "$OUT/heldout-$(echo "$M" | tr / _).txt" 2>&1
done

python data/stilbene/r2/test_by_audit.py "$RUN" data/stilbene/r2/audit.json "$RUN/model.fff" \
    potentials/stilbene-r2-adiabatic.fff "potentials/stilbene-r2-adiabatic-round$OLDER.fff" \
    --out "$OUT/test-by-audit.json" > "$OUT/test-by-audit.txt" 2>&1

cp "$RUN/model.fff" "/tmp/stilbene-r2-adiabatic-round$NEW.fff"
(cd data/stilbene && python r2_model_check.py "/tmp/stilbene-r2-adiabatic-round$NEW.fff" \
    --out "$OUT/model-check.json") > "$OUT/model-check.log" 2>&1

wait "$MAIN"
echo "round $NEW on its own test split:"; grep -E "^(S0|S1|S1-S0) " "$RUN/train.log" | tail -n 6
grep -E "^(S0|S1|S1-S0) " "$OUT"/eval-round*.txt "$OUT"/heldout-*.txt | head -n 40
grep -E "gap" "$OUT/test-by-audit.txt" | head -n 30
grep -E "final active|products|quantum yield|hops|flagged|at the" "$OUT/main-job.log"
echo "written: $OUT, potentials/training/stilbene-r2-adiabatic-round{$OLD,$OLDER}-on-round$NEW-split, runs/r2-al$NEW"
