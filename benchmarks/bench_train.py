"""Seconds per training epoch of the paper's headline model (2 x 17, dropout 0.12, batch
25, MSE, Adam, L2 0.01) for one model and for vmapped populations.

Each population size times `Trainer.epoch`: the keyed shuffle plus one `lax.scan` over
every minibatch of the training set, all members at once, timed with
`block_until_ready` after a first call that compiles (the fastest of `--repeats`
epochs; the machine may be shared, and the JSON records the load average). The
validation pass (`Trainer.evaluate`, the paper's ~1.18M validation rows) is timed
separately.

The data are random rows of the paper's size and dtypes (int8 inputs in the observation's
range, labels 0-3): the step's cost does not depend on the values, and generating 6M
real rows takes minutes. Populations vary seed, learning rate and dropout per member.
Large populations on a CPU train on a prefix of the rows (at most `--member-rows`
member-rows per epoch, e.g. 475,000 rows for 64 members) and their seconds per epoch
are projected linearly to the full size (the per-step cost does not depend on the
number of rows); `measured_rows` says which.

The small transformer (`model.kind: transformer`; the default 2 blocks,
d = 32, 2 heads, MLP ratio 2, the same dropout, batch, loss and populations) is timed the
same way beside the MLP (`--models`): its epochs cost far more per row, so it is measured
on at most `--transformer-rows` rows and projected like a large population. Its figures sit
under "transformer" in the JSON; the MLP's stay where they were.

    uv run python benchmarks/bench_train.py --quick --json benchmarks/results/train_cpu_quick.json
    uv run python benchmarks/bench_train.py --json benchmarks/results/train_cpu.json
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import describe_device, write_json  # noqa: E402

PAPER_TRAIN_ROWS = 3_800_000  # the paper's training split, as the benchmark's target states it
PAPER_VAL_ROWS = 1_180_000  # 20% of the 5.9M non-test rows


def random_split(seed: int, rows: int):
    import jax.numpy as jnp
    import numpy as np

    from mirror.train.loop import Split

    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, 16, size=(rows, 100), dtype=np.int8)
    labels = rng.integers(0, 4, size=rows, dtype=np.int8)
    return Split(jnp.asarray(inputs), jnp.asarray(labels))


def population_overrides(size: int) -> list[str]:
    if size == 1:
        return []
    seeds = list(range(size))
    lrs = [4e-6 * (1 + i % 4) for i in range(size)]
    dropouts = [0.12 if i % 2 == 0 else 0.2 for i in range(size)]
    return ["--train.population_seeds", str(seeds), "--train.population_lrs", str(lrs), "--model.population_dropouts", str(dropouts)]


MODEL_OVERRIDES = {"mlp": [], "transformer": ["--model.kind", "transformer"]}
MODEL_NAMES = {
    "mlp": "2 x 17 ReLU MLP, dropout 0.12, MSE on one-hot, L2 0.01, Adam",
    "transformer": "transformer: 2 pre-LayerNorm blocks, d = 32, 2 heads, MLP ratio 2, dropout 0.12, MSE on one-hot, L2 0.01, Adam",
}


def time_population(size: int, train, val, unroll: int, rows: int, repeats: int, model: str = "mlp") -> dict:
    import jax

    from mirror.runs.config import load_config
    from mirror.train.loop import Split, make_train

    config = load_config(None, ["--train.scan_unroll", str(unroll), *MODEL_OVERRIDES[model], *population_overrides(size)])
    measured_rows = min(rows, int(train.labels.shape[0]))
    trainer = make_train(config, Split(train.inputs[:measured_rows], train.labels[:measured_rows]))
    state = trainer.init()
    start = time.perf_counter()
    first, _ = jax.block_until_ready(trainer.epoch(state, 1))
    first_s = time.perf_counter() - start
    epoch_s = float("inf")
    for epoch in range(2, 2 + repeats):  # the fastest of `repeats` epochs: others share this machine
        start = time.perf_counter()
        jax.block_until_ready(trainer.epoch(first, epoch))
        epoch_s = min(epoch_s, time.perf_counter() - start)
    eval_rows = int(val.labels.shape[0]) if model == "mlp" else min(int(val.labels.shape[0]), rows)
    val = trainer.place(Split(val.inputs[:eval_rows], val.labels[:eval_rows]))
    jax.block_until_ready(trainer.evaluate(first.params, val))  # compile
    start = time.perf_counter()
    jax.block_until_ready(trainer.evaluate(first.params, val))
    eval_s = time.perf_counter() - start
    full_rows = int(train.labels.shape[0])
    return {
        "members": size,
        "measured_rows": measured_rows,
        "epoch_s": epoch_s * full_rows / measured_rows,  # over all rows (projected when measured on fewer)
        "samples_per_s": size * measured_rows / epoch_s,  # rows x members per second
        "steps_per_s": trainer.steps_per_epoch / epoch_s,
        "compile_s": max(first_s - epoch_s, 0.0),
        "repeats": repeats,
        "eval_s": eval_s,
        "eval_rows": eval_rows,  # the transformer's validation pass: as many rows as its epoch
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rows and members (under a minute on the CPU)")
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--rows", type=int, help="training rows (default: the paper's 3.8M; --quick: 200k)")
    parser.add_argument("--val-rows", type=int, help="validation rows (default: the paper's 1.18M; --quick: 50k)")
    parser.add_argument("--populations", type=int, nargs="+", help="population sizes (default 1 8 64; --quick: 1 8)")
    parser.add_argument("--unroll", type=int, default=1, help="train.scan_unroll")
    parser.add_argument("--repeats", type=int, help="timed epochs per size, fastest kept (default: 3 for one model, else 1)")
    parser.add_argument(
        "--member-rows", type=int, default=8 * PAPER_TRAIN_ROWS, help="cap on rows x members per timed epoch (CPU time budget)"
    )
    parser.add_argument("--models", nargs="+", choices=list(MODEL_OVERRIDES), default=list(MODEL_OVERRIDES), help="default: both")
    parser.add_argument(
        "--transformer-rows", type=int, default=20_000, help="cap on the rows of a timed transformer epoch (projected to all rows)"
    )
    args = parser.parse_args()

    rows = args.rows or (200_000 if args.quick else PAPER_TRAIN_ROWS)
    val_rows = args.val_rows or (50_000 if args.quick else PAPER_VAL_ROWS)
    sizes = args.populations or ([1, 8] if args.quick else [1, 8, 64])
    train, val = random_split(0, rows), random_split(1, val_rows)
    load_before = os.getloadavg()[0]  # on a shared machine, other jobs slow every figure
    timed = {}
    for model in args.models:
        results = timed[model] = {}
        for size in sizes:
            repeats = args.repeats or (3 if size == 1 else 1)
            cap = max(args.member_rows // size, 1000)
            if model == "transformer":
                cap = min(cap, args.transformer_rows)
            r = time_population(size, train, val, args.unroll, cap, repeats, model)
            results[str(size)] = r
            projected = r["epoch_s"] * PAPER_TRAIN_ROWS / rows
            measured = "" if r["measured_rows"] == rows else f" (projected from {r['measured_rows']:,} rows)"
            print(
                f"{model:>11} {size:>4} member(s): {r['epoch_s']:8.2f} s/epoch over {rows:,} rows{measured}, "
                f"{r['samples_per_s']:>12,.0f} samples/s, {r['steps_per_s']:>9,.0f} steps/s (3.8M rows: {projected:.1f} s/epoch); "
                f"validation {r['eval_s']:.2f} s over {r['eval_rows']:,} rows; compile {r['compile_s']:.1f} s"
            )
    result = {
        "benchmark": "train",
        **describe_device(),
        "data": "synthetic random rows of the paper's shape (int8[rows, 100], labels 0-3); cost does not depend on values",
        "rows": rows,
        "val_rows": val_rows,
        "batch_size": 25,
        "scan_unroll": args.unroll,
        "quick": args.quick,
        "target": "one model, 3.8M rows at batch 25: <= 8 s per epoch on the 2-core CPU",
    }
    for model, results in timed.items():
        # the MLP's figures at the top level, where they have always been; the transformer's under its name
        section = result if model == "mlp" else result.setdefault(model, {})
        section.update(model_figures(model, results, rows))
    result["load_average_1m"] = {"before": load_before, "after": os.getloadavg()[0]}
    write_json(result, args.json)


def model_figures(model: str, results: dict, rows: int) -> dict:
    figures = {
        "model": MODEL_NAMES[model],
        "epoch_s": {k: r["epoch_s"] for k, r in results.items()},
        "measured_rows": {k: r["measured_rows"] for k, r in results.items()},
        "samples_per_s": {k: r["samples_per_s"] for k, r in results.items()},
        "steps_per_s": {k: r["steps_per_s"] for k, r in results.items()},
        "eval_s": {k: r["eval_s"] for k, r in results.items()},
        "eval_rows": {k: r["eval_rows"] for k, r in results.items()},
        "compile_s": {k: r["compile_s"] for k, r in results.items()},
        "projected_epoch_s_3p8m_rows": {k: r["epoch_s"] * PAPER_TRAIN_ROWS / rows for k, r in results.items()},
    }
    one = results.get("1")
    if one:
        figures["relative_to_one_model"] = {k: r["epoch_s"] / one["epoch_s"] for k, r in results.items()}
    return figures


if __name__ == "__main__":
    main()
