"""Trained env turns per second of self-play PPO (full updates: rollout, per-player GAE,
PPO epochs), at several numbers of parallel games.

For each game count, `checkpoint_every` updates run as one compiled call (the driver's
unit of work), timed with `block_until_ready` after a first call that compiles; the
compile time is reported apart. Turns counted are trained turns (`num_envs * num_steps`
per update; the look-ahead turn that closes each rollout is simulated but not counted).
The paper's 2 x 17 torso runs at 256, 2,048 and 8,192 games (and 65,536 on an
accelerator); wider torsos (2 x 64, 2 x 256) run at its best game count. The machine
may be shared: the JSON records the load average.

    uv run python benchmarks/bench_rl.py --quick
    uv run python benchmarks/bench_rl.py --json benchmarks/results/rl_cpu.json

The agent is the stakes configs' learner (`rl.critic: central`, `rl.view: seat`, value
normalisation, unclipped value loss); `--critic separate --view paper` times the learner
before them, and `--critic shared --clip-value --no-value-norm --view paper` the agent of
runs before those settings (one network with two heads), to compare them back to back.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import describe_device, write_json  # noqa: E402


def time_games(num_envs: int, hidden: tuple, num_steps: int, interval: int, repeats: int, agent: dict) -> dict:
    import jax

    from mirror.rl import RLConfig, make_trainer

    config = RLConfig(
        num_envs=num_envs, num_steps=num_steps, hidden=hidden, updates=interval, checkpoint_every=interval, **agent
    )
    trainer = make_trainer(config)
    runner = jax.block_until_ready(jax.jit(trainer.init)(jax.random.key(0)))
    run = jax.jit(lambda r: trainer.run(r, interval))
    start = time.perf_counter()
    compiled = run.lower(runner).compile()
    compile_s = time.perf_counter() - start
    runner, _ = jax.block_until_ready(compiled(runner))  # warm-up call, not timed
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        runner, _ = jax.block_until_ready(compiled(runner))
        best = min(best, time.perf_counter() - start)
    turns = interval * config.batch_size
    return {
        "games": num_envs,
        "hidden": list(hidden),
        "updates_per_call": interval,
        "turns_per_call": turns,
        "compile_s": round(compile_s, 2),
        "call_s": round(best, 4),
        "turns_per_s": round(turns / best),
        "updates_per_s": round(interval / best, 3),
    }


def time_population(members: int, batching: str, num_envs: int, hidden: tuple, num_steps: int, interval: int, repeats: int, agent: dict) -> dict:
    """`members` seeds trained together for `interval` updates per call, `lax.map` over the
    members (one after another) or `jax.vmap` (batched): trained turns/s of the whole population."""
    import jax

    from mirror.rl import RLConfig, make_trainer
    from mirror.rl.population import map_members

    config = RLConfig(num_envs=num_envs, num_steps=num_steps, hidden=hidden, updates=interval, checkpoint_every=interval, **agent)
    trainer = make_trainer(config)
    keys = jax.random.split(jax.random.key(0), members)
    runner = jax.block_until_ready(jax.jit(lambda k: map_members(trainer.init, (k,), batching))(keys))
    run = jax.jit(lambda r: map_members(lambda x: trainer.run(x, interval)[0], (r,), batching))
    start = time.perf_counter()
    compiled = run.lower(runner).compile()
    compile_s = time.perf_counter() - start
    runner = jax.block_until_ready(compiled(runner))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        runner = jax.block_until_ready(compiled(runner))
        best = min(best, time.perf_counter() - start)
    turns = members * interval * config.batch_size
    return {"members": members, "member_batching": batching, "games": num_envs, "hidden": list(hidden), "compile_s": round(compile_s, 2),
            "call_s": round(best, 4), "turns_per_s": round(turns / best)}  # fmt: skip


def cpu_model() -> str:
    """The host CPU's model name (Linux), to state the hardware beside the numbers."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


PAPER_TORSO = (17, 17)
WIDER_TORSOS = [(64, 64), (256, 256)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 and 2,048 games, the 2 x 17 torso only")
    parser.add_argument("--games", type=int, nargs="*", default=None)
    parser.add_argument("--num-steps", type=int, default=64)
    parser.add_argument("--interval", type=int, default=2, help="updates per timed call")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default=None)
    parser.add_argument("--critic", choices=("central", "separate", "shared"), default="central")
    parser.add_argument("--view", choices=("seat", "paper"), default="seat")
    parser.add_argument("--members", type=int, default=0, help="also time a population of this many seeds, mapped and vmapped")
    parser.add_argument("--clip-value", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--value-norm", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    agent = {"critic": args.critic, "view": args.view, "clip_value": args.clip_value, "value_norm": args.value_norm}

    import jax

    on_accelerator = jax.devices()[0].platform != "cpu"
    default_games = [256, 2048, 8192] + ([65536] if on_accelerator else [])
    games = args.games or ([256, 2048] if args.quick else default_games)
    rows = [time_games(g, PAPER_TORSO, args.num_steps, args.interval, args.repeats, agent) for g in games]
    best_games = max(rows, key=lambda r: r["turns_per_s"])["games"]
    if not args.quick:
        rows += [time_games(best_games, h, args.num_steps, args.interval, args.repeats, agent) for h in WIDER_TORSOS]
    paper = [r for r in rows if r["hidden"] == list(PAPER_TORSO)]
    best = max(paper, key=lambda r: r["turns_per_s"])
    result = {
        **describe_device(),
        "cpu_model": cpu_model(),
        "load_average": list(os.getloadavg()),
        "num_steps": args.num_steps,
        "update_epochs": 4,
        "num_minibatches": 4,
        **agent,
        "turns_per_s": {str(r["games"]): r["turns_per_s"] for r in paper},
        "updates_per_s": {str(r["games"]): r["updates_per_s"] for r in paper},
        "compile_s": {str(r["games"]): r["compile_s"] for r in paper},
        "best": {"games": best["games"], "turns_per_s": best["turns_per_s"]},
        "wider_torsos": {
            "x".join(map(str, r["hidden"])): r["turns_per_s"] for r in rows if r["hidden"] != list(PAPER_TORSO)
        },
        "rows": rows,
    }
    if args.members:
        population = [time_population(args.members, b, best["games"], PAPER_TORSO, args.num_steps, args.interval, args.repeats, agent) for b in ("map", "vmap")]
        result["population"] = population
        for p in population:
            print(f"population of {p['members']} at {p['games']} games, {p['member_batching']}: {p['turns_per_s']:,} turns/s (compile {p['compile_s']} s)")
    write_json(result, args.json)


if __name__ == "__main__":
    main()
