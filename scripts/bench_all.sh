#!/usr/bin/env bash
# Run every benchmark and save its JSON under benchmarks/results/ (pass --quick for a fast pass).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p benchmarks/results
for bench in benchmarks/bench_*.py; do
  name=$(basename "$bench" .py)
  uv run python "$bench" "$@" --json "benchmarks/results/${name#bench_}_cpu.json"
done
