"""Trained model-epochs per second against population size, for the paper's headline
model (2 hidden layers x 17 ReLU units, dropout 0.12, lr 4e-6, L2 0.01, batch 25, Adam).

For each population size P the members differ only by seed (0..P-1) and train at once
through `make_train(..., mesh=population_mesh())`: the members are split over the local
devices (padded to a multiple of the device count with inactive members, which are not
counted). One epoch compiles (`compile_s`: the first epoch's time less a timed epoch's),
then `--epochs` epochs are timed with `block_until_ready`:

    model_epochs_per_s = P * epochs / wall      samples_per_s = P * rows * epochs / wall

and `ratio_to_1` = wall per epoch at P / wall per epoch at P = 1 (1.0 = perfect batching,
P = members trained one after another). `train.member_batching` (`--member-batching`:
auto, map or vmap; auto = map on a CPU, vmap on GPU/TPU) is recorded as resolved.

The data are random rows of the paper's shape and dtypes (int8[rows, 100] in {0, 1, 2},
labels 0-3): the step's cost does not depend on the values, so no dataset is generated.

    uv run python benchmarks/bench_sweep.py --quick --json benchmarks/results/sweep_cpu_quick.json
    uv run python benchmarks/bench_sweep.py --sizes 1 8 64 --json benchmarks/results/sweep_cpu.json
    PYTHONPATH=. python benchmarks/bench_sweep.py            # GPU: benchmarks/results/sweep_gpu.json
    uv run python benchmarks/bench_sweep.py --quick --devices 2   # two simulated host CPU devices
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import describe_device, set_host_devices, write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BATCH_SIZE = 25


def random_split(seed: int, rows: int):
    import numpy as np

    from mirror.train.loop import Split, to_device

    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, 3, size=(rows, 100), dtype=np.int8)
    labels = rng.integers(0, 4, size=rows, dtype=np.int8)
    return to_device(Split(inputs, labels))


def time_size(size: int, config, train, epochs: int) -> dict:
    import jax
    import numpy as np

    from mirror.base.sharding import padded_population, population_mesh
    from mirror.train.loop import make_train
    from mirror.train.population import Member

    mesh = population_mesh()
    padded = padded_population(size, mesh.size)
    m, t = config.model, config.train
    members = [Member(seed=i, lr=t.lr, dropout=m.dropout, l2=t.l2, widths=tuple(m.widths)) for i in range(padded)]
    active = np.arange(padded) < size  # padding members run but are not counted
    trainer = make_train(config, train, members, mesh=mesh)
    state = jax.block_until_ready(trainer.init())

    start = time.perf_counter()
    state, _ = jax.block_until_ready(trainer.epoch(state, 1, active))
    first_s = time.perf_counter() - start

    epoch_times = []
    for epoch in range(2, 2 + epochs):
        start = time.perf_counter()
        state, metrics = jax.block_until_ready(trainer.epoch(state, epoch, active))
        epoch_times.append(time.perf_counter() - start)
    wall = sum(epoch_times)
    rows = int(train.labels.shape[0])
    trained_rows = trainer.steps_per_epoch * BATCH_SIZE
    return {
        "members": size,
        "padded_members": padded,
        "compile_s": max(first_s - min(epoch_times), 0.0),
        "first_epoch_s": first_s,
        "wall_s": wall / epochs,  # per epoch, all members
        "wall_s_min": min(epoch_times),
        "epochs": epochs,
        "model_epochs_per_s": size * epochs / wall,
        "samples_per_s": size * trained_rows * epochs / wall,
        "rows": rows,
        "finite": bool(np.all(np.asarray(metrics.finite)[:size])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rows, sizes and epochs (a minute or two on the 2-core CPU)")
    parser.add_argument("--json", help="write the result here (default: benchmarks/results/sweep_<platform>[_quick].json)")
    parser.add_argument("--rows", type=int, help="training rows (default 100,000; --quick: 20,000)")
    parser.add_argument("--sizes", type=int, nargs="+", help="population sizes (default 1 8 64 256; --quick: 1 8 64)")
    parser.add_argument("--epochs", type=int, help="timed epochs per size after the compiling one (default 2; --quick: 1)")
    parser.add_argument("--member-batching", choices=("auto", "map", "vmap"), default="auto", help="train.member_batching")
    parser.add_argument("--devices", type=int, default=1, help="simulate this many host CPU devices (before JAX starts)")
    args = parser.parse_args()
    set_host_devices(args.devices)

    import jax

    from mirror.runs.config import load_config
    from mirror.train.loop import member_mapping

    rows = args.rows or (20_000 if args.quick else 100_000)
    sizes = args.sizes or ([1, 8, 64] if args.quick else [1, 8, 64, 256])
    epochs = args.epochs or (1 if args.quick else 2)
    config = load_config(
        None,
        [
            "--model.hidden_layers", "2",
            "--model.width", "17",
            "--model.dropout", "0.12",
            "--train.lr", "4e-6",
            "--train.batch_size", str(BATCH_SIZE),
            "--train.member_batching", args.member_batching,
        ],
    )  # fmt: skip
    mapping = member_mapping(config.train.member_batching)
    device = describe_device()
    print(f"{device['device']} x {device['devices']}, member_batching {args.member_batching} -> {mapping}, {rows:,} rows, batch {BATCH_SIZE}, model 2x17")
    train = random_split(0, rows)

    load_before = os.getloadavg()[0]  # on a shared machine, other jobs slow every figure
    results = {}
    print(f"{'members':>8} {'padded':>6} {'compile s':>9} {'wall s/epoch':>12} {'model-epochs/s':>14} {'samples/s':>12} {'wall/wall(1)':>12}")
    for size in sizes:
        r = time_size(size, config, train, epochs)
        results[str(size)] = r
        one = results.get("1")
        r["ratio_to_1"] = r["wall_s"] / one["wall_s"] if one else None
        ratio = f"{r['ratio_to_1']:12.2f}" if one else f"{'-':>12}"
        print(
            f"{size:>8} {r['padded_members']:>6} {r['compile_s']:>9.1f} {r['wall_s']:>12.3f} "
            f"{r['model_epochs_per_s']:>14.2f} {r['samples_per_s']:>12,.0f} {ratio}"
        )

    platform = jax.default_backend()
    result = {
        "benchmark": "sweep",
        **describe_device(),
        "member_batching": mapping,
        "member_batching_requested": args.member_batching,
        "data": "synthetic random rows (int8[rows, 100] in {0, 1, 2}, labels 0-3); cost does not depend on values",
        "model": "2x17",
        "model_details": "2 x 17 ReLU MLP, dropout 0.12, lr 4e-6, MSE on one-hot, L2 0.01, Adam; members differ by seed",
        "rows": rows,
        "batch_size": BATCH_SIZE,
        "epochs": epochs,
        "quick": args.quick,
        "model_epochs_per_s": {k: r["model_epochs_per_s"] for k, r in results.items()},
        "samples_per_s": {k: r["samples_per_s"] for k, r in results.items()},
        "wall_s": {k: r["wall_s"] for k, r in results.items()},
        "compile_s": {k: r["compile_s"] for k, r in results.items()},
        "ratio_to_1": {k: r["ratio_to_1"] for k, r in results.items()},
        "sizes": results,
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
    }
    path = args.json or str(RESULTS / f"sweep_{platform}{'_quick' if args.quick else ''}.json")
    write_json(result, path)


if __name__ == "__main__":
    main()
