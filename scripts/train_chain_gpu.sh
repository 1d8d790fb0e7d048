#!/usr/bin/env bash
# Train the chain reasoning checkpoints side by side on one GPU: tiny-chain (scratchpads in any
# order) and its control tiny-chain_canonical (the prompt's order only). Each run gets MINUTES of
# wall time (the learning-rate schedule follows it) and is exported in fp16 to checkpoints/.
#   scripts/train_chain_gpu.sh [RUN_DIR]        env: MINUTES (4), DEVICE (cuda), WORKERS (6)
# The same command line runs on a CPU with DEVICE=cpu WORKERS=0 (checkpoints/README.md, "chain").
set -euo pipefail
run_dir=${1:-outputs/train}
minutes=${MINUTES:-4}
mkdir -p "$run_dir"
export TOKENIZERS_PARALLELISM=false
pids=()
for task in chain chain_canonical; do
  # The deadline only guards against a process that hangs on exit after its export.
  timeout -k 10 "$(python3 -c "print(int($minutes * 60 + 180))")" \
    python3 -m nclb train task="$task" device="${DEVICE:-cuda}" workers="${WORKERS:-6}" threads=1 \
    arch.num_hidden_layers=6 optim.batch_size=512 optim.lr=2e-3 optim.minutes="$minutes" \
    eval_every=1000 eval_n=256 bar_s=30 export_dtype=fp16 resume=false \
    out_dir="$run_dir/$task" export_dir="checkpoints/tiny-$task" >"$run_dir/$task.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
