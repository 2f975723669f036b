#!/usr/bin/env bash
# The paper's full-scale reproduction on this machine: build the 6M-row dataset,
# then train, analyse and report (the dataset is cached, so this is resumable).
set -euo pipefail
cd "$(dirname "$0")/.."
uv run mirror generate --config configs/paper.yaml
uv run mirror run --config configs/paper.yaml "$@"
