"""`mirror ablate RUN_DIR[:CHECKPOINT] --units ...`: the agents of an RL run with chosen actor
units replaced by their mean activation (or zero), in the run's held-out report games,
beside the intact agents (the library: `mirror.rl.ablation`).

What is read from the run (the loaders of `mirror play --agent` and `mirror cmni`):
- the networks of member M at CHECKPOINT (`mirror.runs.watch.load_agents`: an update
  number, `last` or `best`; a sweep trial directory works like a run);
- the evaluation: rl_run.json `eval` (games, turns, seed, greedy) in the report games,
  key fold_in(key(seed), report_stream): the games of the run's reported numbers;
- the mean activations: the checkpoint's on-policy probe rows (b), each network's own
  (`mirror.runs.checkpoints.read_probes`);
- MNS (top-mns and random units only): the CMNI (spec §7, without the leak) of each
  network on probe set (a), the test split of the run's dataset.json;
- random draws: key fold_in(key(seed), DRAW_STREAM), draw d from fold_in(that, d).
"""

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mirror.agents.transformer import is_transformer_params
from mirror.agents.units import neuron_name
from mirror.analysis.cmni import cmni
from mirror.analysis.groups import cmni_groups
from mirror.base.errors import UsageError
from mirror.base.files import require_writable
from mirror.data.split import TEST
from mirror.data.store import load_dataset
from mirror.rl.ablation import ablation_test, ablation_values, check_units, parse_units
from mirror.runs.checkpoints import is_rl_run, read_probes, read_rl_run
from mirror.runs.rl_run import fixed_key
from mirror.runs.watch import load_agents, parse_agent

DRAW_STREAM = 4  # after the run's select (1), probe (2) and report (3) streams
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
COLUMNS = (("return", "return"), ("help_rate", "help_rate"), ("help_when_partner_distressed", "help|distressed"), ("help_when_partner_energy0", "help|energy0"))


def register(sub) -> None:
    cmd = sub.add_parser("ablate", help="evaluate an RL run's agents with chosen actor units ablated (mean or zero)", description=HELP)
    cmd.add_argument("target", metavar="RUN_DIR[:CHECKPOINT]", help="an RL run or RL sweep trial; CHECKPOINT: an update, 'last' (default) or 'best'")
    cmd.add_argument("--units", required=True, help="top-mns:K, random:K or unit names L1N3,L2N7,... (hidden layers only)")
    cmd.add_argument("--mode", choices=("mean", "zero"), default="mean", help="mean (default): the unit's mean activation over the probe rows (b); zero")
    cmd.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help=f"random draws for random:K and top-mns:K's control (default {DEFAULT_SEEDS}; 0: no control)")
    cmd.add_argument("--member", default="0", help="population member (default 0), or 'all'")
    cmd.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    cmd.set_defaults(func=ablate_command)


class Subject(NamedTuple):
    """One member's networks at one checkpoint, with what the ablation reads."""

    agents: object  # mirror.runs.watch.Agents
    member: int
    rows: np.ndarray  # int8[2, rows, 3W+4]: Frog's and Toad's network's probe rows (b)
    evaluation: dict  # rl_run.json "eval"


def _check_rl_run(run_dir: Path) -> dict:
    if not run_dir.is_dir():
        raise UsageError(f"RUN_DIR {run_dir} is not a directory")
    if not is_rl_run(run_dir):
        raise UsageError(f"{run_dir} is not an RL run (no rl_run.json): mirror ablate evaluates the agents of `mirror rl`")
    rl_run = read_rl_run(run_dir)
    evaluation = rl_run.get("eval", {})
    missing = [k for k in ("games", "turns", "seed", "report_stream") if k not in evaluation]
    if missing:
        raise UsageError(f"{run_dir}/rl_run.json eval has no {missing[0]} (written before held-out report games): it cannot be ablated")
    return rl_run


def member_indices(text: str, members: int, run_dir: Path) -> list[int]:
    if text == "all":
        return list(range(members))
    if not text.isdigit() or int(text) >= members:
        raise UsageError(f"--member {text!r} is out of range: {run_dir} has {members} member(s) (0..{members - 1}, or all)")
    return [int(text)]


def load_subject(run_dir: Path, checkpoint: str | None, member: int, rl_run: dict, probes: dict | None) -> Subject:
    """Member `member`'s networks at `checkpoint`, and their probe rows (b) from `probes`
    (`read_probes`; None: no rows, for a zero ablation)."""
    try:
        agents = load_agents(run_dir, checkpoint, member)
    except UsageError as err:  # its messages name `mirror play`'s --agent
        raise UsageError(str(err).removeprefix("--agent ")) from None
    if is_transformer_params(agents.params):
        raise UsageError(f"{run_dir} has transformer actors: mirror ablate takes MLP actors only")
    if probes is None:
        return Subject(agents, member, np.zeros((2, 0, 0), np.int8), rl_run["eval"])
    where = np.flatnonzero(np.asarray(probes["updates"]) == agents.checkpoint)
    if not where.size:
        raise UsageError(f"{run_dir}: no probe rows (b) for update {agents.checkpoint}")
    rows = np.asarray(probes["inputs"])[where[0], list(agents.networks)]
    return Subject(agents, member, rows, rl_run["eval"])


def probe_a_mns(agents) -> tuple[np.ndarray, int]:
    """(MNS f64[2, neurons] of Frog's and Toad's network on probe set (a), test rows)."""
    if agents.dataset_path is None:
        raise UsageError(f"{agents.run_dir} has no dataset.json: top-mns and random units need probe set (a)")
    dataset = load_dataset(agents.dataset_path)
    test = dataset.splits == TEST
    groups = cmni_groups(dataset.scenarios[test], dataset.idle_shown[test])
    result = cmni(agents.params, dataset.inputs[test], groups, activation=agents.activation)
    return np.asarray(result.mns, np.float64), int(test.sum())


def ablate_member(subject: Subject, spec, mode: str, draws: int) -> dict:
    """The JSON-ready result of one member (see `mirror.rl.ablation.ablation_test`)."""
    agents, evaluation = subject.agents, subject.evaluation
    mns, test_rows = (None, 0) if spec.kind == "units" else probe_a_mns(agents)
    values = ablation_values(agents.params, subject.rows, mode, agents.activation)
    seed = int(evaluation["seed"])
    result = ablation_test(
        agents.params, spec, values, agents.env_params, fixed_key(seed, int(evaluation["report_stream"])),
        games=int(evaluation["games"]), turns=int(evaluation["turns"]), mns=mns, draws=draws,
        draw_key=fixed_key(seed, DRAW_STREAM), activation=agents.activation, greedy=bool(evaluation.get("greedy", False)),
        shared=agents.sharing == "shared",
    )  # fmt: skip
    networks = 1 if agents.sharing == "shared" else 2
    out = {
        "member": subject.member,
        "checkpoint": agents.checkpoint,
        "networks": list(agents.networks[:networks]),
        "sharing": agents.sharing,
        "dependency": float(agents.env_params.dependency),
        "veil": float(agents.env_params.veil),
        "units": str(spec),
        "mode": mode,
        "mean_rows": int(subject.rows.shape[1]) if mode == "mean" else 0,
        "eval": {k: evaluation.get(k) for k in ("games", "turns", "seed", "report_stream", "greedy")},
        "ablated_units": result["units"][:networks],
        "counts_per_layer": np.asarray(result["counts"][:networks]).tolist(),
        "intact": result["intact"],
        "ablated": result["ablated"],
    }
    if mns is not None:
        names = [neuron_name(i, u) for i, w in enumerate(agents.widths) for u in range(w)]
        out["test_rows"] = test_rows
        out["mns"] = [{name: float(mns[n, names.index(name)]) for name in result["units"][n]} for n in range(networks)]
    if result["random"] is not None:
        r = result["random"]
        out["random"] = {"draws": draws, "mean": r["mean"], "sd": r["sd"], "finite": r["finite"], "per_draw": r["rates"], "units": r["units"]}
    if result["gap"] is not None:
        out["gap"] = result["gap"]
        out["ablation_gap"] = result["gap"]["help_when_partner_energy0"]
    return out


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


def json_value(value):
    """Arrays, numpy scalars and NaN -> JSON (NaN and infinities as null)."""
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_value(value.tolist())
    if isinstance(value, (np.generic, float)):
        value = value.item() if isinstance(value, np.generic) else value
        return None if isinstance(value, float) and not np.isfinite(value) else value
    return value


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
    rl_run = _check_rl_run(run_dir)
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
