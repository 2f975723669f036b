"""End-to-end wall time of the dataset pipeline (spec §5): rollout, processing, labels,
dedupe and split, from a fresh process's first jit to the arrays in memory, plus the
time to write them to disk with checksums.

    uv run python benchmarks/bench_data.py --rows 6000000 --json benchmarks/results/data_cpu.json
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import describe_device, write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500,000 rows (well under a minute)")
    parser.add_argument("--rows", type=int, help="unique rows (default 6,000,000, the paper's size)")
    parser.add_argument("--games", type=int, default=4096)
    parser.add_argument("--rounds-per-chunk", type=int, default=256)
    parser.add_argument("--test-rows", type=int, help="held-out test rows (default: rows / 20, at most 100,000)")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args()
    rows = args.rows or (500_000 if args.quick else 6_000_000)

    import jax

    from mirror.data.pipeline import generate_arrays, generating_config
    from mirror.data.store import write_dataset
    from mirror.runs.config import load_config

    test_rows = args.test_rows or min(100_000, rows // 20)  # small runs need fewer: label 3 is rare
    config = load_config(
        None,
        ["--data.rows", str(rows), "--data.test_rows", str(test_rows), "--data.games", str(args.games),
         "--data.rounds_per_chunk", str(args.rounds_per_chunk)],
    )
    start = time.perf_counter()
    arrays, stats = generate_arrays(config, lambda done, total: print(f"  {done:>10,} / {total:,} unique rows  {time.perf_counter() - start:6.1f} s"))
    wall = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_dataset(Path(tmp) / "ds", arrays, {"rows": rows, "config": generating_config(config)})
        write_s = time.perf_counter() - start
    result = {
        "benchmark": "data",
        **describe_device(),
        "unique_rows": rows,
        "raw_rows": stats["raw_rows"],
        "turns_simulated": stats["turns_simulated"],  # collected rounds and the burn-in's (2 turns each)
        "burn_in_rounds": stats["burn_in_rounds"],
        "parallel_games": args.games,
        "wall_s": wall,
        "write_s": write_s,
        "end_to_end_s": wall + write_s,
        "rows_per_s": rows / wall,
        "turns_per_s": stats["turns_simulated"] / wall,
        "note": "wall_s includes jit compilation, the phase burn-in, rollout, processing, labels, dedupe and split; write_s adds .npy + sha256 + manifest tallies",
    }
    write_json(result, args.json)


if __name__ == "__main__":
    main()
