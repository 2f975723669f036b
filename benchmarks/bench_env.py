"""Turns per second of the jitted Frog-and-Toad env against the plain-Python reference.

Each measurement runs `turns` turns of `games` parallel games under the behaviour policy
inside one jitted `lax.scan` (noise, actions, transitions, resets all on device), timed
with `block_until_ready`; compile time is reported separately. The reference plays
the same kind of turns one game at a time in Python, with noise drawn beforehand.

    uv run python benchmarks/bench_env.py --quick --json benchmarks/results/env_cpu.json
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import describe_device, set_host_devices, time_call, write_json  # noqa: E402


def reference_turns_per_s(turns: int, seed: int = 0) -> float:
    import numpy as np

    from mirror.env import EnvParams
    from mirror.env.noise import noise_from_uniforms, noise_size
    from mirror.env.policy import BEHAVIOUR_PROBS
    from mirror.env.reference import ReferenceGame

    params = EnvParams()
    rng = np.random.default_rng(seed)
    uniforms = rng.random((turns, noise_size(params)), dtype=np.float32)
    actions = rng.choice(4, size=turns, p=BEHAVIOUR_PROBS)
    records = [noise_from_uniforms(u, params) for u in uniforms]
    game = ReferenceGame.new_game(rng.random(params.world_width, dtype=np.float32), params)
    start = time.perf_counter()
    for action, noise in zip(actions, records):
        game.play(int(action), noise)
        if game.turn >= params.episode_turns:
            game = ReferenceGame.new_game(noise.fly_spawn, params)
    return turns / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer turns and game counts (under a minute on CPU)")
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--games", type=int, nargs="+", help="parallel game counts")
    parser.add_argument("--turns", type=int, help="turns per measurement")
    parser.add_argument("--host-devices", type=int, default=1, help="split the CPU into this many XLA devices")
    args = parser.parse_args()
    set_host_devices(args.host_devices)

    import jax

    from mirror.env import EnvParams
    from mirror.env.rollout import make_rollout

    games_list = args.games or ([1, 64, 1024, 4096] if args.quick else [1, 64, 1024, 4096, 16384])
    turns = args.turns or (200 if args.quick else 1000)
    params = EnvParams()
    rows = {}
    for games in games_list:
        rollout = make_rollout(params, games, turns, shard=len(jax.devices()) > 1)
        compile_s, run_s = time_call(rollout, jax.random.key(0), repeats=2 if args.quick else 3)
        rows[str(games)] = {
            "turns_per_s": games * turns / run_s,
            "run_s": run_s,
            "compile_s": compile_s,
            "turns": turns,
        }
        print(f"{games:>9,} games: {games * turns / run_s:>14,.0f} turns/s  (run {run_s:.3f} s, compile {compile_s:.1f} s)")
    ref = reference_turns_per_s(5_000 if args.quick else 20_000)
    print(f"reference (plain Python, 1 game): {ref:,.0f} turns/s")
    best_games, best = max(rows.items(), key=lambda kv: kv[1]["turns_per_s"])
    result = {
        "benchmark": "env",
        **describe_device(),
        "turns_per_game": turns,
        "turns_per_s": {g: r["turns_per_s"] for g, r in rows.items()},
        "compile_s": {g: r["compile_s"] for g, r in rows.items()},
        "reference_turns_per_s": ref,
        "best_games": int(best_games),
        "speedup_vs_reference": best["turns_per_s"] / ref,
    }
    write_json(result, args.json)


if __name__ == "__main__":
    main()
