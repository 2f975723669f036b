"""CMNI of many checkpoints at once (`mirror.analysis.cmni`) against per-checkpoint loops.

The benchmark workload: 170 checkpoints of the paper's 2 x 17 MLP on 100,000 test rows.
Every synthetic row feeds the CMNI (groups none / Frog / Toad with shares 0.7 / 0.1 /
0.2), so the vectorised code gets no head start from skipping rows. Three timings:

- vectorised: one `cmni(params[170, ...], inputs, groups)` call (host-side row
  selection and transfer included), best of `--repeats` after a compiling call;
- loop: the NumPy per-checkpoint transcription of spec §7 from the tests
  (`tests/test_cmni_reference.py`, float64, the reference the results are checked against);
- loop_f32: a tuned NumPy loop (float32 BLAS, one boolean-mask mean per group per
  checkpoint, neurons vectorised), the fastest plain per-checkpoint loop we could write.

Also timed: all three CMNI variants (`mirror.analysis.variants.cmni_variants`: raw,
scaled, matched on synthetic labels) in one call, and with --permutations the nulls of
the raw CMNI alone and of every variant (`variant_permutation_null`).

With --quick the loops time the first `--loop-checkpoints` checkpoints (default 17) and
scale to 170; the JSON says how many were timed.

    uv run python benchmarks/bench_cmni.py --quick --json benchmarks/results/cmni_cpu.json
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from benchmarks.common import describe_device, time_call, write_json  # noqa: E402


def synthetic_test_set(rows: int, seed: int = 0):
    """int8 model inputs shaped like spec §4-5 rows, scenarios and idle flags whose groups are
    none / frog / toad with shares 0.7 / 0.1 / 0.2."""
    import numpy as np

    rng = np.random.default_rng(seed)
    inputs = np.zeros((rows, 100), np.int8)
    inputs[:, :32] = rng.choice([1, 2], size=(rows, 32), p=[0.8, 0.2])
    frog, toad = rng.integers(0, 32, rows), rng.integers(0, 32, rows)
    inputs[np.arange(rows), 32 + toad] = rng.choice([5, 6, 7, 8, 9], size=rows)
    inputs[np.arange(rows), 32 + frog] = rng.choice([4, 9], size=rows)
    inputs[:, 64:96] = 3 * (rng.random((rows, 32)) < 0.2)
    inputs[:, 97] = rng.choice([0, 1, 2, 4, 6, 8, 10, 12, 14, 16, 18], size=rows)
    groups = rng.choice(3, size=rows, p=[0.7, 0.1, 0.2])
    scenarios = groups.astype(np.int8)
    idle = np.ones((rows, 2), bool)
    return inputs, scenarios, idle, groups.astype(np.int8)


def random_checkpoints(checkpoints: int, widths=(17, 17), seed: int = 0):
    """Glorot-uniform weights and small biases, stacked [checkpoints, ...] (numpy, float32)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    params, fan_in = {}, 100
    for i, width in enumerate(list(widths) + [4]):
        limit = np.sqrt(6 / (fan_in + width))
        params[f"hidden_{i}" if i < len(widths) else "output"] = {
            "kernel": rng.uniform(-limit, limit, (checkpoints, fan_in, width)).astype(np.float32),
            "bias": rng.normal(0, 0.05, (checkpoints, width)).astype(np.float32),
        }
        fan_in = width
    return params


def tuned_loop_cmni(params, inputs, groups):
    """Per checkpoint: float32 forward with BLAS, group means by boolean masks."""
    import numpy as np

    x = inputs.astype(np.float32)
    masks = [groups == g for g in range(3)]
    layers = sum(1 for name in params if name.startswith("hidden_"))
    out = []
    for c in range(params["output"]["bias"].shape[0]):
        h, acts = x, []
        for i in range(layers):
            h = np.maximum(h @ params[f"hidden_{i}"]["kernel"][c] + params[f"hidden_{i}"]["bias"][c], 0.0)
            acts.append(h)
        acts.append(h @ params["output"]["kernel"][c] + params["output"]["bias"][c])
        a = np.concatenate(acts, axis=1)
        mu = [a[m].mean(axis=0) for m in masks]
        d_frog, d_toad = mu[1] - mu[0], mu[2] - mu[0]
        mns = np.where((d_frog > 0) & (d_toad > 0), np.minimum(d_frog, d_toad), 0.0)
        out.append(mns.mean())
    return np.asarray(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="time the loops on a subset of checkpoints and scale")
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--checkpoints", type=int, default=170)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk-rows", type=int, default=512)
    parser.add_argument("--loop-checkpoints", type=int, help="checkpoints timed by the loops (default: 17 with --quick, else all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--permutations", type=int, default=0, help="also time the permutation null with this many permutations")
    args = parser.parse_args()

    import jax
    import numpy as np
    from test_cmni_reference import reference_cmni

    from mirror.analysis.cmni import cmni, permutation_null
    from mirror.analysis.variants import cmni_variants, match_cells, variant_permutation_null

    inputs, scenarios, idle, groups = synthetic_test_set(args.rows)
    params = random_checkpoints(args.checkpoints)
    vec = lambda: cmni(params, inputs, groups, chunk_rows=args.chunk_rows).cmni  # noqa: E731
    compile_s, vectorised_s = time_call(vec, repeats=args.repeats)
    values = np.asarray(vec())
    print(f"vectorised: {args.checkpoints} checkpoints x {args.rows:,} rows in {vectorised_s:.3f} s (first call {compile_s:.1f} s)")

    timed = args.loop_checkpoints or (min(17, args.checkpoints) if args.quick else args.checkpoints)
    scale = args.checkpoints / timed
    subset = jax.tree.map(lambda a: a[:timed], params)
    start = time.perf_counter()
    loop_values = [reference_cmni(jax.tree.map(lambda a: a[c], subset), inputs, scenarios, idle)["cmni"] for c in range(timed)]
    loop_s = (time.perf_counter() - start) * scale
    start = time.perf_counter()
    tuned_values = tuned_loop_cmni(subset, inputs, groups)
    loop_f32_s = (time.perf_counter() - start) * scale
    max_diff = float(np.max(np.abs(values[:timed] - np.asarray(loop_values))))
    print(f"loop (reference, float64): {loop_s:.2f} s for {args.checkpoints} ({timed} timed); tuned float32 loop: {loop_f32_s:.2f} s")
    print(f"speedup: {loop_s / vectorised_s:.1f}x over the reference loop, {loop_f32_s / vectorised_s:.1f}x over the tuned loop; "
          f"max |CMNI difference| {max_diff:.2e}")  # fmt: skip
    labels = np.random.default_rng(1).choice(4, size=args.rows, p=[0.4, 0.4, 0.1, 0.1])
    cells = match_cells(inputs, labels, groups, 4)
    variants = lambda: cmni_variants(params, inputs, groups, cells, chunk_rows=args.chunk_rows).values  # noqa: E731
    variants_compile, variants_s = time_call(variants, repeats=args.repeats)
    print(f"all three variants: {args.checkpoints} checkpoints in {variants_s:.3f} s (first call {variants_compile:.1f} s)")

    result = {
        "benchmark": "cmni",
        **describe_device(),
        "checkpoints": args.checkpoints,
        "rows": args.rows,
        "model": "2 x 17 MLP (38 neurons)",
        "load_average_1min": os.getloadavg()[0],  # the machine is shared: other jobs slow every timing
        "chunk_rows": args.chunk_rows,
        "vectorised_s": vectorised_s,
        "vectorised_first_call_s": compile_s,
        "loop_s": loop_s,
        "loop_f32_s": loop_f32_s,
        "loop_checkpoints_timed": timed,
        "speedup": loop_s / vectorised_s,
        "speedup_vs_f32_loop": loop_f32_s / vectorised_s,
        "max_abs_cmni_difference": max_diff,
        "max_abs_cmni_difference_f32_loop": float(np.max(np.abs(values[:timed] - tuned_values))),
        "variants_s": variants_s,
        "variants_first_call_s": variants_compile,
    }
    if args.permutations:
        null = lambda: permutation_null(0, params, inputs, groups, permutations=args.permutations, chunk_rows=args.chunk_rows)  # noqa: E731
        null_compile, null_s = time_call(null, repeats=1)
        print(f"permutation null: {args.permutations} permutations x {args.checkpoints} checkpoints in {null_s:.2f} s")
        result.update(permutations=args.permutations, permutation_null_s=null_s, permutation_null_first_call_s=null_compile)
        every = lambda: variant_permutation_null(0, params, inputs, groups, cells, permutations=args.permutations, chunk_rows=args.chunk_rows)  # noqa: E731
        every_compile, every_s = time_call(every, repeats=1)
        print(f"null of every variant: {args.permutations} permutations x {args.checkpoints} checkpoints in {every_s:.2f} s")
        result.update(variants_null_s=every_s, variants_null_first_call_s=every_compile)
    write_json(result, args.json)


if __name__ == "__main__":
    main()
