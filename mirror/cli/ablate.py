"""`mirror ablate RUN_DIR[:CHECKPOINT] --units ...`: the agents of an RL run with chosen actor
units replaced by their mean activation (or zero), in the run's held-out report games,
beside the intact agents (what is read from the run: `mirror.runs.ablation`; the
ablation itself: `mirror.rl.ablation`).
"""

import json
from pathlib import Path

import numpy as np

from mirror.base.errors import UsageError
from mirror.base.files import require_writable
from mirror.rl.ablation import check_units, parse_units
from mirror.runs.ablation import ablate_member, check_rl_run, json_value, load_subject, member_indices
from mirror.runs.checkpoints import read_probes
from mirror.runs.watch import parse_agent

DEFAULT_SEEDS = 20
HELP = (
    "A causal test of the mirror units: evaluate the agents of an RL run in its held-out report "
    "games with chosen hidden units of the actor fixed at their mean activation over the "
    "checkpoint's on-policy probe rows (b) (--mode mean) or at zero, beside the intact agents. "
    "--units top-mns:K (the K hidden units of highest MNS on probe set (a), with --seeds random "
    "draws of as many units per layer as the control), random:K (those random draws alone), or "
    "unit names L1N3,L2N7 (layer from 1, unit from 0; hidden layers only). The registered test "
    "H6 (docs/theory_experiment.md) is --units top-mns:4 --mode mean --seeds 100."
)
COLUMNS = (
    ("return", "return"), ("help_rate", "help_rate"), ("help_when_partner_distressed", "help|distressed"),
    ("help_when_partner_energy0", "help|energy0"), ("help_given_opportunity", "help|opportunity"),
)  # fmt: skip


def register(sub) -> None:
    cmd = sub.add_parser("ablate", help="evaluate an RL run's agents with chosen actor units ablated (mean or zero)", description=HELP)
    cmd.add_argument("target", metavar="RUN_DIR[:CHECKPOINT]", help="an RL run or RL sweep trial; CHECKPOINT: an update, 'last' (default) or 'best'")
    cmd.add_argument("--units", required=True, help="top-mns:K, random:K or unit names L1N3,L2N7,... (hidden layers only)")
    cmd.add_argument("--mode", choices=("mean", "zero"), default="mean", help="mean (default): the unit's mean activation over the probe rows (b); zero")
    cmd.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help=f"random draws for random:K and top-mns:K's control (default {DEFAULT_SEEDS}; 0: no control)")
    cmd.add_argument("--member", default="0", help="population member (default 0), or 'all'")
    cmd.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    cmd.set_defaults(func=ablate_command)


def _cell(value) -> str:
    return "nan" if value is None or not np.isfinite(value) else f"{value:.4f}"


def format_member(run_dir: Path, r: dict) -> str:
    """The printed table of one member's result."""
    e = r["eval"]
    who = "one network plays Frog and Toad" if r["sharing"] == "shared" else "Frog's and Toad's networks"
    lines = [
        f"member {r['member']}: {run_dir}, update {r['checkpoint']} ({who}); D={r['dependency']:g}, I={r['veil']:g}",
        f"  eval: the run's held-out report games, {e['games']} games x {e['turns']} turns (seed {e['seed']}, stream {e['report_stream']}), "
        + ("greedy actions" if e.get("greedy") else "actions sampled as in training"),
        "  mode: " + (f"mean activation over the {r['mean_rows']} on-policy probe rows (b) of each network" if r["mode"] == "mean" else "zero"),
    ]
    for n, units in enumerate(r["ablated_units"]):
        whose = "" if len(r["ablated_units"]) == 1 else ("Frog's network: ", "Toad's network: ")[n]
        if "mns" in r:
            shown = ", ".join(f"{u} (MNS {r['mns'][n][u]:.4g})" for u in units)
            counts = ", ".join(f"L{i + 1} {c}" for i, c in enumerate(r["counts_per_layer"][n]))
            label = "top-MNS units" if r["ablated"] is not None else "top-MNS units (their count per layer sets the random draws)"
            lines.append(f"  {whose}{label} on probe set (a) ({r['test_rows']} test rows): {shown}; per layer {counts}")
        else:
            lines.append(f"  {whose}ablated units: {', '.join(units)}")
    labels = ["intact", f"{r['units']} ({r['mode']})"] + ([f"{'random' if r['ablated'] is not None else r['units']} x{r['random']['draws']} ({r['mode']})"] if "random" in r else [])
    width = max(len(label) for label in labels) + 2
    lines.append("  " + " " * width + "".join(f"{label:>18}" for _, label in COLUMNS))
    lines.append("  " + f"{'intact':<{width}}" + "".join(f"{_cell(r['intact'][k]):>18}" for k, _ in COLUMNS))
    if r["ablated"] is not None:
        lines.append("  " + f"{labels[1]:<{width}}" + "".join(f"{_cell(r['ablated'][k]):>18}" for k, _ in COLUMNS))
    if "random" in r:
        rnd = r["random"]
        cells = "".join(f"{_cell(rnd['mean'][k]) + ' ± ' + _cell(rnd['sd'][k]):>18}" for k, _ in COLUMNS)
        lines.append("  " + f"{labels[-1]:<{width}}" + cells)
        lines.append("  " + " " * width + "  (random: mean ± sd over draws)")
    if "gap" in r:
        lines.append(
            f"  ablation gap (help|energy0): {_cell(r['ablation_gap'])} "
            f"(drop under the top-MNS units minus the mean drop under random ones; help_rate: {_cell(r['gap']['help_rate'])})"
        )
    return "\n".join(lines)


def ablate_command(args, overrides=()) -> int:
    try:
        spec = parse_units(args.units)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.seeds < 0:
        raise UsageError(f"--seeds must be >= 0, got {args.seeds}")
    if spec.kind == "random" and args.seeds < 1:
        raise UsageError(f"--units {spec} needs --seeds >= 1 (the random draws), got {args.seeds}")
    if args.json:
        if Path(args.json).is_dir():
            raise UsageError(f"--json {args.json} is a directory; give a file path")
        require_writable(Path(args.json).absolute().parent, "--json's directory", UsageError)
    run_dir, checkpoint = parse_agent(args.target)
    run_dir = run_dir.absolute()
    rl_run = check_rl_run(run_dir)
    members = member_indices(str(args.member), len(rl_run["members"]), run_dir)
    probes = read_probes(run_dir) if args.mode == "mean" else None
    results = []
    for m in members:
        subject = load_subject(run_dir, checkpoint, m, rl_run, probes)
        try:
            check_units(spec, subject.agents.widths)
        except ValueError as err:
            raise UsageError(str(err)) from None
        draws = args.seeds if spec.kind != "units" else 0
        result = ablate_member(subject, spec, args.mode, draws)
        print(format_member(run_dir, result))
        results.append(result)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(json_value({"run_dir": str(run_dir), "checkpoint": checkpoint or "last", "members": results}), indent=2) + "\n")
        print(f"wrote {path}")
    return 0
