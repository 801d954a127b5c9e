#!/usr/bin/env bash
# Train the initial and the boundary net of the best profile on one GPU within one time budget.
#
# Needs: one CUDA GPU, python3 with torch, numpy, scipy, opencv-python-headless, scikit-image,
# safetensors and tqdm (no pip install, no internet); the repository as the working directory;
# the training data under $BAMF_DATA_DIR (alphamatting/input, alphamatting/gt, backgrounds/).
#
#   BAMF_DATA_DIR=/data OUT=/results BAMF_TIME_BUDGET=540 scripts/train_gpu.sh
#
# The default profile is "camera2", the second training campaign (campaign/README.md): the shipped
# default's shape (padding-free ResNet-20 v1 whose features see the whole 64x64 patch) on blur as
# cameras make it, half of the pairs without noise or JPEG, 40 epochs fixed in advance ("camera",
# the first campaign, finished its 40 epochs in session 4).  Each net resumes from the campaign's committed
# checkpoint, $BAMF_RESUME_FROM/<profile>-<net>/checkpoint.pt (default folder: campaign/), when
# there is one, and the budget ends the run after the last whole epoch that fits while keeping
# the schedule (bamf train --stop-after), so the checkpoint it brings back resumes again.
# BAMF_PROFILE picks another profile ("camera": the first campaign; "whole": the shipped default's;
# "paper" for Res56 v2); for those not named camera*
# those the budget shortens the schedule to what fits (bamf train --time-budget).  With BAMF_PARALLEL=1
# (default) both nets train at once on the GPU, each with the whole budget; with 0 the initial
# net gets BAMF_INITIAL_SHARE (default 0.5) of it and the boundary net what is left.
# Writes to $OUT: <profile>-initial.safetensors, <profile>-boundary.safetensors, their .log.jsonl
# training logs, train_gpu.log (everything printed) and the checkpoints in <profile>-<net>/.
# Each run shortens its schedule to the epochs that fit and stops after the last whole epoch,
# so the weights are always saved.  Extra arguments go to both `bamf train` calls (e.g.
# --set train.epochs=1 for a dry run; --set train.max_samples=64000 for longer epochs).
set -euo pipefail

: "${BAMF_DATA_DIR:?set BAMF_DATA_DIR to the folder holding alphamatting/}"
OUT=${OUT:-runs/gpu}
BUDGET=${BAMF_TIME_BUDGET:-540}
SHARE=${BAMF_INITIAL_SHARE:-0.5}
PROFILE=${BAMF_PROFILE:-camera2}
RESUME=${BAMF_RESUME_FROM:-campaign}
PARALLEL=${BAMF_PARALLEL:-1}
PYTHON=${PYTHON:-python3}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT"
case "$PROFILE" in camera*) LIMIT=--stop-after ;; *) LIMIT=--time-budget ;; esac  # campaigns keep their schedule
# the flags that resume net $1 from the campaign's checkpoint, if one is there
resume() { if [ -f "$RESUME/$PROFILE-$1/checkpoint.pt" ]; then echo --resume-from "$RESUME/$PROFILE-$1/checkpoint.pt"; fi; }

start=$(date +%s)
"$PYTHON" - <<'EOF' 2>&1 | tee -a "$OUT/train_gpu.log"
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
EOF

if [ "$PARALLEL" = 1 ]; then
    for net in initial boundary; do
        "$PYTHON" -m bamf_lib.cli train --profile "$PROFILE" --net "$net" --out "$OUT" \
            $LIMIT "$BUDGET" $(resume "$net") "$@" > "$OUT/train_gpu-$net.log" 2>&1 &
    done
    wait
    cat "$OUT/train_gpu-initial.log" "$OUT/train_gpu-boundary.log" >> "$OUT/train_gpu.log"
else
    first=$("$PYTHON" -c "print(int($BUDGET * $SHARE))")
    "$PYTHON" -m bamf_lib.cli train --profile "$PROFILE" --net initial --out "$OUT" \
        $LIMIT "$first" $(resume initial) "$@" 2>&1 | tee -a "$OUT/train_gpu.log"
    left=$(( BUDGET - ($(date +%s) - start) ))
    if [ "$left" -lt 30 ]; then
        echo "only ${left}s of the budget left; the boundary net gets 30 s" | tee -a "$OUT/train_gpu.log"
        left=30
    fi
    "$PYTHON" -m bamf_lib.cli train --profile "$PROFILE" --net boundary --out "$OUT" \
        $LIMIT "$left" $(resume boundary) "$@" 2>&1 | tee -a "$OUT/train_gpu.log"
fi

echo "done in $(( $(date +%s) - start ))s; weights and logs in $OUT" | tee -a "$OUT/train_gpu.log"
ls -l "$OUT" | tee -a "$OUT/train_gpu.log"
