#!/usr/bin/env bash
# Every benchmark at accelerator scale in one call (<= 8 minutes on one GPU), on a machine
# with an accelerator:
#
#     PYTHONPATH=. bash scripts/device_check.sh          # on the device image (JAX with CUDA)
#     DEVICE_CHECK_SCALE=tiny bash scripts/device_check.sh   # a seconds-long smoke run on a CPU
#
# Runs the env, data, train, population (bench_train.py over populations), CMNI and sweep
# benchmarks and the RL one (self-play PPO turns/s), each under its own
# `timeout` and all under one overall budget, so one slow benchmark cannot eat the others'
# time. Each writes <name>_<platform>.json and its log <name>_<platform>.log under $OUT if
# set, else benchmarks/results/ (tiny scale: <name>_<platform>_tiny.json, by default in
# /tmp/device_check_tiny/); the summary at the end (also device_check_<platform>.json) says
# which finished, in how long, with their headline figures. Exit status 0 when all did.
#
# Settings (environment): DEVICE_CHECK_SCALE=full|tiny, DEVICE_CHECK_BUDGET_S (default 440;
# tiny: 1760, and every limit x 4), DEVICE_CHECK_ONLY="env data" (a subset, by name),
# PYTHON (default: python3 if it imports jax, else `uv run python`).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

scale=${DEVICE_CHECK_SCALE:-full}
case "$scale" in full | tiny) ;; *) echo "DEVICE_CHECK_SCALE = '$scale' is invalid: expected full or tiny" >&2; exit 2 ;; esac
default_out=$([ "$scale" = tiny ] && echo "${TMPDIR:-/tmp}/device_check_tiny" || echo benchmarks/results)
out=${OUT:-$default_out}
mkdir -p "$out"
# Tiny scale is a smoke test on a CPU, maybe a loaded one: time limits x 4.
stretch=$([ "$scale" = tiny ] && echo 4 || echo 1)
budget=${DEVICE_CHECK_BUDGET_S:-$((440 * stretch))}
if [ -z "${PYTHON:-}" ]; then
  if python3 -c "import jax" 2>/dev/null; then PYTHON=python3; else PYTHON="uv run python"; fi
fi
start=$(date +%s)

# What the benchmarks import; a missing module is named here, not in six tracebacks.
$PYTHON - <<'EOF'
import importlib.util
missing = [m for m in ("jax", "numpy", "yaml", "optax", "flax", "orbax.checkpoint", "scipy") if importlib.util.find_spec(m.split(".")[0]) is None]
import jax
print(f"device check: JAX {jax.__version__}, {jax.default_backend()}: {jax.devices()[0].device_kind} x {jax.device_count()}")
if missing:
    print(f"device check: missing modules {missing}; the benchmarks that import them will fail")
EOF
platform=$($PYTHON -c "import jax; print(jax.default_backend())" 2>/dev/null || echo unknown)
suffix="${platform}$([ "$scale" = tiny ] && echo _tiny)"

# name | timeout (s) | script | arguments at full scale | arguments at tiny scale
benchmarks=(
  "env|90|bench_env.py|--games 1 4096 65536 262144 --turns 1000|--quick --games 16 --turns 50"
  "rl|150|bench_rl.py|--games 8192 65536 --repeats 1|--quick --games 64 --num-steps 16 --repeats 1"
  "data|90|bench_data.py|--rows 6000000 --games 8192|--rows 20000 --test-rows 400 --games 128 --rounds-per-chunk 64"
  "train|90|bench_train.py|--populations 1 --repeats 3|--rows 5000 --val-rows 1000 --populations 1 --repeats 1"
  "population|75|bench_train.py|--populations 8 64 256 --member-rows 30400000 --repeats 1|--rows 5000 --val-rows 1000 --populations 4 --repeats 1"
  "cmni|75|bench_cmni.py|--checkpoints 170 --rows 100000 --chunk-rows 8192 --loop-checkpoints 17 --permutations 1000|--checkpoints 4 --rows 2000 --loop-checkpoints 2 --repeats 1 --permutations 4"
  "sweep|105|bench_sweep.py|--sizes 1 8 64 256 1024 --rows 100000 --epochs 2|--sizes 1 4 --rows 2000 --epochs 1"
)

declare -A status seconds
names=()
for entry in "${benchmarks[@]}"; do
  IFS='|' read -r name limit script full_args tiny_args <<<"$entry"
  if [ -n "${DEVICE_CHECK_ONLY:-}" ] && [[ " $DEVICE_CHECK_ONLY " != *" $name "* ]]; then continue; fi
  names+=("$name")
  limit=$((limit * stretch))
  args=$([ "$scale" = tiny ] && echo "$tiny_args" || echo "$full_args")
  left=$((budget - ($(date +%s) - start)))
  if [ "$left" -lt 20 ]; then
    status[$name]="skipped (overall budget of ${budget} s spent)"
    seconds[$name]=0
    continue
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  json="$out/${name}_${suffix}.json"
  rm -f "$json"
  echo "== $name: benchmarks/$script $args (timeout ${limit} s)"
  t0=$(date +%s)
  # shellcheck disable=SC2086  # the arguments are words
  timeout --kill-after=10 "$limit" $PYTHON "benchmarks/$script" $args --json "$json" >"$out/${name}_${suffix}.log" 2>&1
  rc=$?
  seconds[$name]=$(($(date +%s) - t0))
  tail -n 4 "$out/${name}_${suffix}.log"
  if [ "$rc" -eq 0 ] && [ -f "$json" ]; then
    status[$name]=ok
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    status[$name]="timed out after ${limit} s"
  else
    status[$name]="failed (exit $rc; see $out/${name}_${suffix}.log)"
  fi
done

# Summary: one line per benchmark with its headline figures, and device_check.json.
summary_args=()
for name in "${names[@]}"; do summary_args+=("$name" "${status[$name]}" "${seconds[$name]}"); done
$PYTHON - "$out" "$suffix" "$scale" "$(($(date +%s) - start))" "${summary_args[@]}" <<'EOF'
import json, sys
from pathlib import Path

out, suffix, scale, total, rest = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
HEADLINES = {
    "env": ("turns_per_s", "speedup_vs_reference"),
    "data": ("wall_s", "rows_per_s"),
    "train": ("epoch_s", "steps_per_s", "eval_s"),
    "population": ("epoch_s", "samples_per_s"),
    "cmni": ("vectorised_s", "speedup", "permutation_null_s"),
    "sweep": ("model_epochs_per_s", "ratio_to_1"),
}


def short(value):
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {short(v)}" for k, v in value.items()) + "}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


rows = []
print(f"\ndevice check summary ({scale} scale, {total} s in all; JSON under {out}/)")
for name, status, seconds in zip(rest[0::3], rest[1::3], rest[2::3]):
    path = out / f"{name}_{suffix}.json"
    result = json.loads(path.read_text()) if status == "ok" and path.is_file() else {}
    figures = {key: result[key] for key in HEADLINES.get(name, ()) if key in result}
    rows.append({"benchmark": name, "status": status, "wall_s": int(seconds), "json": str(path) if result else None, **figures})
    print(f"  {name:<11} {status:<12} {seconds:>4} s  " + "  ".join(f"{k} {short(v)}" for k, v in figures.items()))
(out / f"device_check_{suffix}.json").write_text(json.dumps({"scale": scale, "total_s": total, "benchmarks": rows}, indent=2) + "\n")
sys.exit(0 if all(r["status"] == "ok" for r in rows) else 1)
EOF
