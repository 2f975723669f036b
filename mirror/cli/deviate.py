"""`mirror deviate RUN_DIR[:CHECKPOINT]`: is an RL run's agent at a best response to simple
unilateral deviations? (spec §9 "Deviation gain"; `mirror.runs.deviate`)."""

import json
from pathlib import Path

from mirror.base.errors import UsageError
from mirror.base.files import require_writable
from mirror.rl.deviation import DEVIATIONS
from mirror.runs.ablation import check_rl_run, member_indices
from mirror.runs.deviate import deviate_member
from mirror.runs.watch import parse_agent

HELP = (
    "Seat an RL run's agent against itself in its held-out report games, let one seat follow a "
    "scripted deviation where its condition holds, and report the gain in that seat's objective "
    "(own return + w x partner's) over plain self-play, per deviation, pooled over seats and per "
    "seat, with 95 %% intervals over games: help_stalled (help a partner at energy 0 within reach "
    "with energy of one's own), never_help (help becomes hop), oracle_move (the oracle's action "
    "wherever the agent would not help). At a best response: no pooled interval above 0."
)


def register(sub) -> None:
    cmd = sub.add_parser("deviate", help="deviation gains of an RL run's agent: is it at a best response?", description=HELP)
    cmd.add_argument("target", metavar="RUN_DIR[:CHECKPOINT]", help="an RL run or RL sweep trial; CHECKPOINT: an update, 'last' (default) or 'best'")
    cmd.add_argument("--member", default="0", help="population member (default 0), or 'all'")
    cmd.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    cmd.set_defaults(func=deviate_command)


def _interval(g: dict) -> str:
    return f"{g['mean']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]"


def format_member(run_dir: Path, r: dict) -> str:
    e = r["eval"]
    lines = [
        f"member {r['member']}: {run_dir}, update {r['checkpoint']} ({r['sharing']}, view {r['view']}); "
        f"D={r['dependency']:g}, I={r['veil']:g}, w={r['partner_reward_weight']:g}",
        f"  held-out report games: {e['games']} games x {e['turns']} turns; self-play return {r['return']:.2f}, "
        f"help given opportunity {r['help_given_opportunity']:.3f}",
        f"  {'deviation':<14}{'gain (pooled seats) [95% CI]':<34}{'as Frog':<28}as Toad",
    ]
    for name in DEVIATIONS:
        g = r["gains"][name]
        lines.append(f"  {name:<14}{_interval(g):<34}{_interval(g['per_seat'][0]):<28}{_interval(g['per_seat'][1])}")
    verdict = "at a best response to the family" if r["at_best_response"] else "NOT at a best response: " + ", ".join(r["deviations_that_gain"]) + " gain(s)"
    lines.append(f"  {verdict}")
    return "\n".join(lines)


def deviate_command(args, overrides=()) -> int:
    run_dir, checkpoint = parse_agent(args.target)
    rl_run = check_rl_run(run_dir)
    if args.json:
        require_writable(Path(args.json).parent, "--json directory", UsageError)
    results = [deviate_member(run_dir, checkpoint, m) for m in member_indices(args.member, len(rl_run["members"]), run_dir)]
    for r in results:
        print(format_member(run_dir, r))
    if args.json:
        Path(args.json).write_text(json.dumps(results if len(results) > 1 else results[0], indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
