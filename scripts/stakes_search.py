"""Search the env's knobs for a regime where the partner matters (spec §10).

For every grid point: the stakes at D = 0 and D = 1 (`mirror.rl.stakes`), against the
selfish base, and whether the point meets the stakes preset's criteria:
  (a) cooperative surplus at D = 1 >= 5 points per 100 decisions;
  (b) help incentive at D = 1 minus at D = 0 >= 3 points, its 95 % interval above 0;
  (c) an episode of at most 300 turns (trainable on a CPU).
Prints a markdown table (docs/stakes.md holds its output) and writes the JSON.

    uv run python scripts/stakes_search.py                # the grid below, 1,024 games a point
    uv run python scripts/stakes_search.py --games 512 --json results/stakes_search.json
"""

import argparse
import itertools
import json
from pathlib import Path

import jax

from mirror.rl.stakes import stakes_by_dependency

GRID = {
    "episode_turns": [200, 300],
    "max_energy": [10, 20],
    "rough_cost": [1, 3],
    "fly_spawn_prob": [0.01, 0.001],
    "obstacle_max_width": [4, 8],
    "help_gift": [2, 6],
}
SURPLUS_MIN, RISE_MIN, TURNS_MAX = 5.0, 3.0, 300


def meets(r: dict) -> bool:
    d1 = r["by_dependency"]["1"]
    rise = r["help_incentive_rise"]
    return (
        d1["cooperative_surplus"]["mean"] >= SURPLUS_MIN
        and rise["mean"] >= RISE_MIN
        and rise["ci95"][0] > 0
        and r["env"]["episode_turns"] <= TURNS_MAX
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", type=int, default=1024, help="whole episodes per pairing and D")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="results/stakes_search.json")
    parser.add_argument("--helper-k", type=int, default=0, help="helper: help when the partner's energy <= K")
    parser.add_argument("--helper-m", type=int, default=1, help="helper: and one's own energy >= M")
    args = parser.parse_args(argv)
    names = list(GRID)
    rows = []
    print("| " + " | ".join(names) + " | base (D=1) | surplus D=1 | incentive D=0 | incentive D=1 | rise [95% CI] | energy-0 share D=1 | meets |")
    print("|" + "---|" * (len(names) + 7))
    for values in itertools.product(*GRID.values()):
        env = dict(zip(names, values))
        r = stakes_by_dependency(env, [0.0, 1.0], jax.random.key(args.seed), args.games, args.helper_k, args.helper_m)
        r["meets"] = meets(r)
        rows.append(r)
        d0, d1, rise = r["by_dependency"]["0"], r["by_dependency"]["1"], r["help_incentive_rise"]
        print(
            "| " + " | ".join(str(v) for v in values)
            + f" | {d1['base']} | {d1['cooperative_surplus']['mean']:.1f} | {d0['help_incentive']['mean']:.1f}"
            + f" | {d1['help_incentive']['mean']:.1f} | {rise['mean']:.1f} [{rise['ci95'][0]:.1f}, {rise['ci95'][1]:.1f}]"
            + f" | {d1['energy0_share']['mean']:.3f} | {'yes' if r['meets'] else ''} |",
            flush=True,
        )
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
