#!/usr/bin/env bash
# Does pre-training on R2 help at R3? One command per snapshot of the R3 transfer queue:
#
#     data/stilbene/r3/transfer_experiment.sh SNAPSHOT_DIR MINUTES
#
# SNAPSHOT_DIR holds the frozen R3 files (of the transfer queue and of active-learning queues) (data/stilbene/r3/snapshot-K/*.h5, made with
# data/stilbene/r2/freeze_rows.py; the files of all earlier snapshots are used too, so the split
# grows by extension). Trains, on one CPU thread each, for at most MINUTES each, fresh runs:
#   potentials/training/stilbene-r3-transfer-SNAP  from the shipped R2 potential's weights
#                                                  (init_from)
#   potentials/training/stilbene-r3-transferwide-SNAP  from the wide R2 model's (C = 48)
#   potentials/training/stilbene-r3-scratch-SNAP   the same recipe from random weights
# (SNAP: the snapshot folder's name) on the same split: the scratch run copies the transfer
# run's split.json, which extends the previous snapshot's split when there is one, so a
# structure's test/validation/train assignment never changes from snapshot to snapshot. Writes
#   SNAPSHOT_DIR/experiment.txt   the runs' test tables and the zero-shot R2 potential's
#                                 (compare_levels.py: R3 against R2 labels and the R2 model)
#   data/stilbene/r3/model-check-SNAP.json   R3's landmarks on the three models
#                                 (r2_model_check.py --level 6-31g; keyed by run directory)
# The YAML files potentials/stilbene-r3-transfer.yaml and -scratch.yaml are written from
# data/stilbene/r3/recipe.yaml (model, loss, schedule: round 14's recipe) with the data list.
set -euo pipefail
cd "$(dirname "$0")/../../.."
SNAP=${1:?snapshot directory}
MINUTES=${2:-20}
export OMP_NUM_THREADS=1 HDF5_USE_FILE_LOCKING=FALSE
PYTHON=${PYTHON:-python3}  # its fusionff, not a console script (the GPU machine has none)
TAG=$(basename "$SNAP")
TRANSFER=potentials/training/stilbene-r3-transfer-$TAG
[ ! -e "$TRANSFER/checkpoint.pt" ] || { echo "$TRANSFER exists: a finished experiment" >&2; exit 1; }
PREVIOUS=$(ls -d potentials/training/stilbene-r3-transfer-snapshot-* 2>/dev/null | sort -V \
    | grep -E -- '-snapshot-[0-9]+$' | grep -vx "$TRANSFER" | tail -n 1 || true)  # not -fit0.1 etc.
# KINDS: which runs (default all three; the transfer run comes first, the others copy its split)
KINDS=${KINDS:-transfer transferwide scratch}
for KIND in $KINDS; do mkdir -p "potentials/training/stilbene-r3-$KIND-$TAG"; done
if [ -n "$PREVIOUS" ]; then cp "$PREVIOUS/split.json" "$TRANSFER/"; fi
DATA=$(ls data/stilbene/r3/snapshot-*/stilbene-r3-*.h5 | sort -V)
for KIND in $KINDS; do
    CFG=potentials/stilbene-r3-$KIND.yaml
    {
        echo "# R3 (SA-2-CASSCF(2,2)/6-31G) $KIND run of data/stilbene/r3/transfer_experiment.sh;"
        echo "# written by it from data/stilbene/r3/recipe.yaml (do not edit here)."
        echo "data:"
        for F in $DATA; do echo "  - $F"; done
        echo "output: potentials/training/stilbene-r3-$KIND-$TAG"
        case $KIND in
        transfer) echo "init_from: potentials/stilbene-r2-adiabatic.fff" ;;
        transferwide) echo "init_from: potentials/training/stilbene-r2-wide/model.fff" ;;
        esac
        if [ "$KIND" = transferwide ]; then  # the wide model's width (potentials/stilbene-r2-wide.yaml)
            sed -e "s/^  channels: 12/  channels: 48/" -e "s/^  readout_hidden: 16/  readout_hidden: 32/" \
                data/stilbene/r3/recipe.yaml
        else
            cat data/stilbene/r3/recipe.yaml
        fi | sed -e "s/^time_limit_minutes:.*/time_limit_minutes: $MINUTES/" -e "/^# The R3 training/d" \
            -e "/^# transfer_experiment.sh/d"
    } > "$CFG"
done
"$PYTHON" -m fusionff.cli train potentials/stilbene-r3-transfer.yaml > "$SNAP/train-transfer.log" 2>&1
for KIND in $KINDS; do
    [ "$KIND" != transfer ] || continue
    cp "$TRANSFER/split.json" "potentials/training/stilbene-r3-$KIND-$TAG/"
    "$PYTHON" -m fusionff.cli train "potentials/stilbene-r3-$KIND.yaml" > "$SNAP/train-$KIND.log" 2>&1
done
{
    for KIND in $KINDS; do
        echo "== $KIND: potentials/training/stilbene-r3-$KIND-$TAG (test split)"
        "$PYTHON" -m fusionff.cli eval "potentials/training/stilbene-r3-$KIND-$TAG/model.fff" --run "$TRANSFER" 2>&1
    done
    if [ "${ZERO_SHOT:-1}" = "1" ]; then  # ZERO_SHOT=0 skips this part (it repeats itself)
        echo "== zero-shot: the R2 potential against the R3 labels of the whole queue so far"
        for F in $(echo "$DATA" | grep "stilbene-r3-transfer"); do  # rows of transfer.xyz only
            "$PYTHON" data/stilbene/r3/compare_levels.py data/stilbene/r3/transfer.xyz "$F" \
                --model potentials/stilbene-r2-adiabatic.fff
        done
    fi
} > "$SNAP/experiment.txt"
(cd data/stilbene && "$PYTHON" r2_model_check.py --level 6-31g \
    $(for KIND in $KINDS; do echo "../../potentials/training/stilbene-r3-$KIND-$TAG/model.fff"; done) \
    --out "r3/model-check-$TAG.json") > "$SNAP/model-check.log" 2>&1
cat "$SNAP/experiment.txt"
