#!/usr/bin/env bash
# Train the chain checkpoints on a CPU (checkpoints/README.md, "tiny-chain"): first the
# canonical-order model from tiny-arith (one two-digit plus one-digit sum per step is the skill
# tiny-arith already has), then the two-orders and any-order models from its snapshot, the two
# side by side (one thread each). About 40 + 55 minutes on the shared 2-core machine.
#   scripts/train_chain.sh [RUN_DIR]        env: DEVICE (cpu), STAGE1_STEPS (2000)
# The shipped models were stopped by hand (the card gives the steps); this script stops stage 1
# after STAGE1_STEPS steps, so its schedule and result differ a little from theirs.
set -euo pipefail
RUN_DIR=${1:-outputs/train/chain-recipe}
DEVICE=${DEVICE:-cpu}
COMMON=(optim.lr=1e-3 optim.batch_size=64 threads=1 eval_every=400 eval_n=128 "device=$DEVICE")
nclb train task=chain_canonical init=checkpoints/tiny-arith optim.minutes=55 \
  "optim.steps=${STAGE1_STEPS:-2000}" "${COMMON[@]}" "out_dir=$RUN_DIR/chain_canonical"
for task in chain chain_two_way; do
  nclb train "task=$task" "init=$RUN_DIR/chain_canonical/hf" optim.minutes=55 "${COMMON[@]}" \
    "out_dir=$RUN_DIR/$task" "export_dir=$RUN_DIR/export/tiny-$task" export_dtype=fp16 &
done
wait
