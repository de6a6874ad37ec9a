#!/usr/bin/env bash
# The prepared device check for a session that has a GPU machine (one script, one call).
#
# 1. Here, on the development machine (network), once per session, in the repo root:
#        bash benchmarks/gpu_session.sh prepare
#    downloads the wheels the GPU image lacks (ase, MDAnalysis and three of its needs; about
#    22 MB) into .whl/ (ignored through .git/info/exclude).
#    Then `bash benchmarks/gpu_session.sh slim`: the tree that travels may hold 64 MiB and the
#    repository is larger (99 MB on 2026-12-04); this moves the large tracked files the device
#    run does not need into ../fusionff-slim.tar. `bash benchmarks/gpu_session.sh unslim`
#    puts them back once the device calls are done (commit nothing in between).
# 2. On the device machine: command `bash benchmarks/gpu_session.sh run`, carry [".whl"],
#    timeout_s 590. STAGES="tests showcase bench" chooses the stages and their order;
#    BUDGET_S (default 560) cuts every stage's limit to what is left of it. Measured
#    2026-12-04 on an H200: tests 40 s (with the wheels), the showcase of 512 x 1 ps 247 s,
#    the benchmarks 94 s, 383 s in all, plus about 30 s of machine start; stage r3preview
#    (128 x 500 fs on the snapshot-2 committee) 171 s, stage forces 15 s. It writes to $OUT (at most 8 files come back):
#        gpu.txt              nvidia-smi and torch's view of the device
#        logs.txt             the output of every stage (the GPU tests: gpu_tests.log in it,
#                             python3 -m pytest -m gpu tests/integration/test_gpu.py)
#        dynamics_cuda.json   benchmarks/dynamics_speed.py on cuda (Tully 1 against mudslide is
#                             skipped there, mudslide is not installed; ML B = 1, 64, 1024
#                             against the FusionCalculator loop)
#        model_eval_cuda.json benchmarks/model_eval.py on cuda
#        train_step_cuda.json benchmarks/train_step.py on cuda (fusion vertices as matrix
#                             products against e3nn's TensorProduct, batch 32)
#        train.tar            with TRAIN_MINUTES=N (default 0: skipped): training on the GPU for
#                             N minutes of the recipe TRAIN_CONFIG (default
#                             potentials/stilbene-r2-wide.yaml: a C = 48 adiabatic R2 model on
#                             round 13's data and split, about 85 s an epoch on one CPU core,
#                             trained in CPU sessions since 2026-12-04;
#                             TRAIN_CONFIG=potentials/stilbene-r2-large.yaml is the capacity
#                             check, l = 3 and three layers from scratch on its split, to
#                             compare with the wide model's history epoch by epoch;
#                             TRAIN_CONFIG=potentials/training/stilbene-r3-transferwide-snapshot-10-fit0.1/train.yaml
#                             is R3's fit check: can the wide model fit the forces of 52
#                             structures given hundreds of epochs? Score the unpacked run with
#                             data/stilbene/r3/fit_check.py RUN --weights last);
#                             TRAIN_CONFIG=potentials/stilbene-r3-l3.yaml and
#                             potentials/stilbene-r3-scratchwide.yaml are R3's angular-capacity
#                             pair (l = 3 against l = 2, from scratch on snapshot 24; a third
#                             layer was ruled out on CPU): the same minutes each, two calls;
#                             it continues
#                             from the committed checkpoint of the recipe's output directory if
#                             one exists. The tar holds that directory (minus its checkpoint
#                             when it is over 40 MB); unpack it under potentials/training/.
#        showcase.tar         with SHOWCASE_TRAJ=N (default 0: skipped): SHOWCASE_INPUT (default
#                             md/stilbene_cis_r3.yaml, 2 ps; md/stilbene_cis_r2.yaml is R2's) on
#                             cuda with N trajectories (of SHOWCASE_FS fs when set) within
#                             SHOWCASE_SECONDS (default 400), one batch of SHOWCASE_BATCH
#                             (default 512); summary and analysis (with the first-passage
#                             lifetime after 100 fs), no H5MD (*.h5md) files. R3's 512 x 2 ps
#                             needs about 17 minutes of an H200: two calls, the second resumes.
#                             ONLY_TRAIN=1 SHOWCASE_TRAJ=512 gives it the whole call.
#        r3snapshot.tar       with STAGES=r3snapshot and R3_SNAPSHOT=snapshot-K (a frozen snapshot
#                             folder, committed): both fine-tuned R3 models of it, trained on the
#                             GPU for R3_MINUTES (default 3) each, their test tables and landmark
#                             checks (unpack in the repo root)
#        r3preview.tar        with STAGES=r3preview: data/stilbene/r3/preview-run.yaml on cuda
#                             (PREVIEW_TRAJ, default 256, of PREVIEW_FS fs, default 600),
#                             its analysis (with the S1 -> S0 first-passage lifetime after
#                             PREVIEW_T0 fs, default 100) and PREVIEW_QUEUE (default al3.xyz), the
#                             next R3 active-learning queue (al1/al2 came from snapshots 2/6);
#                             R3's S1 decays over a ~0.5 eV barrier (data/stilbene/r3/README.md,
#                             "S1 is a trap at R3"), so its lifetime needs picoseconds:
#                             PREVIEW_FS=2000 PREVIEW_SECONDS=540 (256 x 600 fs took 150 s)
# DRY_RUN=1 bash benchmarks/gpu_session.sh run (with OUT, STAGES and small sizes) runs the stages
# on the development machine's CPU, without the wheels: a check of a new stage's plumbing that
# costs no device time (r3snapshot + r3preview checked so on 2026-12-04).
# Each stage has its own time limit, so one that hangs does not eat the others' time: tests
# 180 s, benchmarks 320 s, training TRAIN_MINUTES + 2 min. One device call may last 600 s, so
# with training either keep TRAIN_MINUTES at 1-2 or make a second call with ONLY_TRAIN=1,
# which skips the tests and benchmarks.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS="ase==3.29.0 MDAnalysis==2.11.0 GridDataFormats==1.2.0 mda-xdrlib==0.2.0 mmtf-python==1.1.3 mrcfile==1.5.4"

SLIM_TAR=${SLIM_TAR:-../fusionff-slim.tar}
# tracked files the device run needs even when large (the rest over 150 KB stays behind); the
# R3 queue files stay in place because a running queue writes them (moving one loses labels)
SLIM_KEEP='^(fusionff|tests|benchmarks|md)/|\.fff$|stilbene-r1\.h5$|stilbene-r3-[a-z0-9-]*\.h5$|r3/transfer\.xyz$|cis-r2\.xyz$'

case "${1:-}" in
slim)
    # The working tree that travels to the device is limited to 64 MiB; the repository's data
    # and checkpoints are more. Move large tracked files the device run does not need into
    # SLIM_TAR (outside the repo); 'unslim' puts them back. Commit nothing in between.
    [ -e "$SLIM_TAR" ] && { echo "$SLIM_TAR exists: run 'unslim' first" >&2; exit 1; }
    git ls-files -z | xargs -0 du -k | awk '$1 > 150 {print $2}' | grep -Ev "$SLIM_KEEP" \
        > /tmp/fusionff-slim.list
    tar -cf "$SLIM_TAR" -T /tmp/fusionff-slim.list && xargs rm < /tmp/fusionff-slim.list
    echo "moved $(wc -l < /tmp/fusionff-slim.list) files to $SLIM_TAR; tracked files left:" \
        "$(git ls-files -z | xargs -0 du -kc 2>/dev/null | tail -1 | cut -f1) KB (+ .whl)"
    ;;
unslim)
    tar -xf "$SLIM_TAR" && rm "$SLIM_TAR" && git status --short | head
    ;;
prepare)
    grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
    # shellcheck disable=SC2086
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl $WHEELS
    ;;
run)
    OUT=${OUT:-/tmp/fusionff-gpu}
    LOGS=/tmp/fusionff-gpu-logs  # gathered into $OUT/logs.txt (8 files at most come back)
    mkdir -p "$OUT" "$LOGS"
    # every stage's limit is also cut to what is left of BUDGET_S (default 560 s; the call's
    # timeout_s should be a little above it) less 20 s for packing up
    BUDGET=${BUDGET_S:-560}
    cap() { local left=$((BUDGET - SECONDS - 20)); [ "$left" -lt "$1" ] && echo $((left > 5 ? left : 5)) || echo "$1"; }
    # DRY_RUN=1: on the development machine (fusionff installed, no GPU), to check a stage's
    # plumbing before a device session: no wheels, and the stages' cuda becomes cpu
    if [ "${DRY_RUN:-0}" = "0" ]; then
        DEV=cuda
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl || exit 1
    else
        DEV=cpu
    fi
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
    {
        nvidia-smi
        python3 -c "import torch, e3nn; print(torch.__version__, e3nn.__version__, \
torch.cuda.get_device_name(0))"
        echo "CPU cores: $(nproc); OpenMolcas: $(command -v pymolcas || echo absent)"
    } > "$OUT/gpu.txt" 2>&1
    stage_tests() {
    timeout "$(cap 150)" python3 -m pytest -q -m gpu -p no:cacheprovider tests/integration/test_gpu.py \
        > "$LOGS/gpu_tests.log" 2>&1
    }
    stage_bench() {
    timeout "$(cap 170)" python3 benchmarks/dynamics_speed.py --device "$DEV" --dtype float32 \
        --skip-tully --ml-sizes 1,64,1024 --ml-steps 20,10,5 --loop-max 8 \
        --out "$OUT/dynamics_cuda.json" > "$LOGS/dynamics.log" 2>&1
    timeout "$(cap 50)" python3 benchmarks/model_eval.py --device "$DEV" --dtype float32 \
        --batches 1,16,128,1024 > "$LOGS/model_eval.log" 2>&1
    cp benchmarks/results/model_eval_cuda*.json "$OUT/" 2>/dev/null
    timeout "$(cap 50)" python3 benchmarks/train_step.py --device "$DEV" --batch 32 \
        > "$LOGS/train_step.log" 2>&1
    cp benchmarks/results/train_step_cuda.json "$OUT/" 2>/dev/null
    }
    stage_train() {
        CONFIG=${TRAIN_CONFIG:-potentials/stilbene-r2-wide.yaml}
        RUN_DIR=$(sed -n 's/^output: *\([^ #]*\).*/\1/p' "$CONFIG")
        # a new run starts on the split it names in its header (round 8's for the wide model)
        SPLIT_FROM=$(sed -n 's/^#  *cp \(potentials\/training\/[^ ]*split.json\) .*/\1/p' "$CONFIG")
        mkdir -p "$RUN_DIR"
        if [ -n "$SPLIT_FROM" ] && [ ! -e "$RUN_DIR/split.json" ]; then cp "$SPLIT_FROM" "$RUN_DIR/"; fi
        sed -e "s/^time_limit_minutes:.*/time_limit_minutes: ${TRAIN_MINUTES}/" \
            -e "s/^device:.*/device: $DEV/" "$CONFIG" > /tmp/gpu-train.yaml
        timeout "$(cap $((TRAIN_MINUTES * 60 + 120)))" python3 -m fusionff.cli train /tmp/gpu-train.yaml \
            > "$LOGS/train.out" 2>&1
        EXCLUDE=()
        if [ "$(du -m "$RUN_DIR/checkpoint.pt" 2>/dev/null | cut -f1)" -gt 40 ] 2>/dev/null; then
            EXCLUDE=(--exclude=checkpoint.pt)
        fi
        tar -cf "$OUT/train.tar" "${EXCLUDE[@]}" -C "$(dirname "$RUN_DIR")" "$(basename "$RUN_DIR")"
    }
    stage_showcase() {
        # the showcase SHOWCASE_INPUT (default md/stilbene_cis_r3.yaml, R3: 512 x 2 ps; the R2
        # one is md/stilbene_cis_r2.yaml) on the GPU, SHOWCASE_TRAJ trajectories (of SHOWCASE_FS
        # fs when set, else the input's time_fs) in one batch of SHOWCASE_BATCH (default 512);
        # resumable, so a second call with the same settings continues it
        local input=${SHOWCASE_INPUT:-md/stilbene_cis_r3.yaml}
        local name
        name=$(basename "$input" .yaml)_gpu
        sed "s/^batch_size:.*/batch_size: ${SHOWCASE_BATCH:-512}/" "$input" > "md/$name.yaml"
        local length=()
        [ -z "${SHOWCASE_FS:-}" ] || length=(--time-fs "$SHOWCASE_FS")
        timeout "$(cap "${SHOWCASE_SECONDS:-400}")" python3 -m fusionff.cli run "md/$name.yaml" \
            --device "$DEV" --n-traj "$SHOWCASE_TRAJ" "${length[@]}" \
            --output "runs/$name" > "$LOGS/showcase.out" 2>&1
        # S1 decays in waves at R3: the survival at the times asked, not one lifetime
        timeout "$(cap 60)" python3 -m fusionff.cli analyze "runs/$name" --hazard-after 100 \
            --reached-by 500 1000 1500 2000 > "$LOGS/showcase_analysis.txt" 2>&1
        tar -cf "$OUT/showcase.tar" --exclude='*.h5md' --exclude=checkpoint.pt -C runs "$name"
    }
    stage_forces() {
        # forces of both states: one backward per state against one vmapped backward
        timeout "$(cap 60)" python3 benchmarks/forces_batched.py --device "$DEV" \
            --batches 1,64,512 > "$LOGS/forces_batched.log" 2>&1
    }
    stage_r3snapshot() {
        # R3_SNAPSHOT=snapshot-K (a frozen, committed data/stilbene/r3/snapshot-K folder): its
        # two fine-tuned R3 models (data/stilbene/r3/transfer_experiment.sh with KINDS="transfer
        # transferwide", R3_MINUTES each, default 3; the recipes' device: auto is cuda here),
        # their test tables and landmark checks (CPU); r3preview runs the shipped committee
        # (preview-run.yaml names the shipped files), not these
        SNAP=data/stilbene/r3/${R3_SNAPSHOT:?set R3_SNAPSHOT=snapshot-K}
        TAG=$(basename "$SNAP")
        MINUTES=${R3_MINUTES:-3}
        KINDS="transfer transferwide" ZERO_SHOT=0 timeout "$(cap $((MINUTES * 120 + 360)))" \
            bash data/stilbene/r3/transfer_experiment.sh "$SNAP" "$MINUTES" \
            > "$LOGS/r3snapshot.out" 2>&1
        tar -cf "$OUT/r3snapshot.tar" "$SNAP" "potentials/training/stilbene-r3-transfer-$TAG" \
            "potentials/training/stilbene-r3-transferwide-$TAG" "data/stilbene/r3/model-check-$TAG.json" \
            potentials/stilbene-r3-transfer.yaml potentials/stilbene-r3-transferwide.yaml
    }
    stage_r3preview() {
        # data/stilbene/r3/preview-run.yaml on cuda (the shipped committee of R3 models;
        # PREVIEW_TRAJ trajectories of PREVIEW_FS fs in one batch), its analysis and
        # R3's first active-learning queue picked from it (committee spread and small gaps)
        timeout "$(cap "${PREVIEW_SECONDS:-300}")" python3 -m fusionff.cli run \
            data/stilbene/r3/preview-run.yaml --device "$DEV" --n-traj "${PREVIEW_TRAJ:-256}" \
            --time-fs "${PREVIEW_FS:-600}" > "$LOGS/r3preview.out" 2>&1
        # --hazard-after: the first-passage lifetime counts from 100 fs, after the twist
        timeout "$(cap 60)" python3 -m fusionff.cli analyze runs/r3-preview \
            --hazard-after "${PREVIEW_T0:-100}" > "$LOGS/r3preview_analysis.txt" 2>&1
        timeout "$(cap 60)" python3 -m fusionff.analysis.selection runs/r3-preview \
            "runs/r3-preview/${PREVIEW_QUEUE:-al3.xyz}" --n-spread 120 --min-separation-fs 10 --max-gap 0.5 \
            > "$LOGS/r3preview_selection.txt" 2>&1
        tar -cf "$OUT/r3preview.tar" --exclude='*.h5md' --exclude=checkpoint.pt -C runs r3-preview
    }
    # STAGES: which stages, in order (default: tests, benchmarks, then training and the
    # showcase where TRAIN_MINUTES / SHOWCASE_TRAJ ask for them; ONLY_TRAIN=1 drops the first two)
    DEFAULT="tests bench forces"
    [ "${ONLY_TRAIN:-0}" = "0" ] || DEFAULT=""
    [ "${TRAIN_MINUTES:-0}" = "0" ] || DEFAULT="$DEFAULT train"
    [ "${SHOWCASE_TRAJ:-0}" = "0" ] || DEFAULT="$DEFAULT showcase"
    for stage in ${STAGES:-$DEFAULT}; do
        echo "$SECONDS s: $stage starts" >> "$LOGS/stages.log"
        "stage_$stage"
    done
    echo "$SECONDS s: done" >> "$LOGS/stages.log"
    for f in "$LOGS"/*; do echo "==> $f"; cat "$f"; done > "$OUT/logs.txt" 2>/dev/null
    tail -n 3 "$LOGS"/* 2>/dev/null
    ;;
*)
    echo "usage: bash benchmarks/gpu_session.sh prepare|slim|run|unslim" >&2
    exit 2
    ;;
esac
