#!/bin/bash
# A sweep over a Cloud TPU pod slice (e.g. v5litepod-32: 8 hosts x 4 chips), run from
# your workstation:
#
#   TPU=my-tpu ZONE=us-west4-a scripts/sweep_tpu_pod.sh configs/sweep_theory.yaml [overrides...]
#
# Every host runs the same command (`--worker=all`). On a Cloud TPU, jax.distributed.initialize()
# finds the coordinator and this host's index from the TPU metadata server; host k trains
# shard k on its local chips and checkpoints it alone, and host 0 waits for the others and
# writes the summary.
#
# The sweep directory and dataset cache must be shared by the hosts: mount a bucket with
# gcsfuse or a Filestore share at $SHARED on every worker first (see README, "Sweeps").
set -euo pipefail

CONFIG=${1:?usage: TPU=name ZONE=zone scripts/sweep_tpu_pod.sh SWEEP_CONFIG [overrides...]}
shift
: "${TPU:?set TPU to the TPU VM name}" "${ZONE:?set ZONE to its zone}"
SHARED=${SHARED:-/mnt/shared}
REPO=${REPO:-https://github.com/your-org/mirror.git}
NAME=$(basename "$CONFIG" .yaml)
EXTRA=$(printf ' %q' "$@")

# 1. The code and uv on every host (idempotent).
gcloud compute tpus tpu-vm ssh "$TPU" --zone "$ZONE" --worker=all --command "
  set -e
  command -v uv >/dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh
  [ -d ~/mirror ] || git clone $REPO ~/mirror
  cd ~/mirror && git pull --ff-only
"

# 2. The sweep on every host at once.
gcloud compute tpus tpu-vm ssh "$TPU" --zone "$ZONE" --worker=all --command "
  set -e
  cd ~/mirror
  ~/.local/bin/uv run --frozen --with 'jax[tpu]' mirror sweep $CONFIG --distributed \
    --sweep-dir $SHARED/sweeps/$NAME --data.cache_dir $SHARED/datasets $EXTRA
"
