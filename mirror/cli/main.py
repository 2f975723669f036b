"""`mirror` command line: a thin shell over the library (I/O lives here, not in jitted code)."""

import argparse
import importlib
import sys

from mirror.base.errors import MirrorError
from mirror.cli.commands import play as play_command
from mirror.cli.commands import run_demo, run_experiment_command

# Modules that add subcommands (in pipeline order: data -> train, rl -> analysis -> sweep).
STAGE_COMMANDS = ["mirror.cli.data", "mirror.cli.train", "mirror.cli.rl", "mirror.cli.cmni", "mirror.cli.ablate", "mirror.cli.deviate", "mirror.cli.sweep"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mirror", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="the whole experiment: dataset -> training -> CMNI -> report (default: configs/quickstart.yaml)",
        description="Any config field can be overridden: --train.lr 5e-5 --data.rows 500000",
    )
    run.add_argument("--config", help="YAML config (default: configs/quickstart.yaml)")
    run.add_argument("--run-dir", help="directory for the run (default: runs/<name>-<date>-<time>)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    run.set_defaults(func=run_experiment_command, accepts_overrides=True)

    demo = sub.add_parser("demo", help="roll out many parallel games, render a few, print the throughput")
    demo.add_argument("--games", type=int, default=4096, help="parallel games for the throughput line")
    demo.add_argument("--turns", type=int, default=200, help="turns per game for the throughput line")
    demo.add_argument("--show", type=int, default=3, help="games rendered after the rollout")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=run_demo)

    play = sub.add_parser("play", help="watch a game in the terminal (policies or trained agents)")
    play.add_argument("--turns", type=int, help="turns to play (default: 60; with --agent one episode, env.episode_turns)")
    play.add_argument("--fps", type=float, default=8.0, help="frames per second (0: no delay)")
    play.add_argument("--seed", type=int, default=0)
    play.add_argument(
        "--policy",
        choices=["random", "oracle"],
        help="random (default): the behaviour policy of spec §5.1; oracle: the dataset's label oracle (spec §5.4)",
    )
    play.add_argument("--dependency", type=float, help="D in [0, 1] (default 1)")
    play.add_argument("--veil", type=float, help="I in [0, 1] (default 0)")
    play.add_argument(
        "--agent",
        metavar="RUN_DIR[:CHECKPOINT]",
        help="trained agents of a run play both players, with each decision's action probabilities; "
        "CHECKPOINT: an update (RL) or epoch number, 'last' (default) or 'best'; the run sets D and I",
    )
    play.add_argument("--member", type=int, help="with --agent: the population member whose networks play (default 0)")
    play.add_argument("--greedy", action="store_true", help="with --agent: take the most probable action instead of sampling")
    play.set_defaults(func=play_command)

    # Each stage registers its own subcommands: `register(subparsers)` in its module.
    for module_name in STAGE_COMMANDS:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, overrides = parser.parse_known_args(argv)
    if overrides and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(overrides)}")
    try:
        return args.func(args, overrides) or 0
    except MirrorError as err:  # every error a user can fix: one line, no traceback
        print(f"mirror {args.command}: error: {err}", file=sys.stderr)
        return 2

