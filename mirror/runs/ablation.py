"""An RL run's agents under ablation: what `mirror ablate` reads from a run directory and
the JSON-ready result of one member (the ablation itself: `mirror.rl.ablation`).

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

from pathlib import Path
from typing import NamedTuple

import numpy as np

from mirror.agents.transformer import is_transformer_params
from mirror.agents.units import neuron_name
from mirror.analysis.cmni import cmni
from mirror.analysis.groups import cmni_groups
from mirror.base.errors import UsageError
from mirror.data.split import TEST
from mirror.data.store import load_dataset
from mirror.rl.ablation import ablation_test, ablation_values
from mirror.runs.checkpoints import is_rl_run, read_rl_run
from mirror.runs.rl_run import fixed_key
from mirror.runs.rl_view import probe_a_inputs
from mirror.runs.watch import load_agents

DRAW_STREAM = 4  # after the run's select (1), probe (2) and report (3) streams


class Subject(NamedTuple):
    """One member's networks at one checkpoint, with what the ablation reads."""

    agents: object  # mirror.runs.watch.Agents
    member: int
    rows: np.ndarray  # int8[2, rows, 3W+4]: Frog's and Toad's network's probe rows (b)
    evaluation: dict  # rl_run.json "eval"


def check_rl_run(run_dir: Path) -> dict:
    """rl_run.json of an RL run that can be ablated, or a UsageError naming why not."""
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
    inputs = probe_a_inputs(dataset.inputs[test], dataset.positions[test], agents.env_params.veil, agents.view)
    result = cmni(agents.params, inputs, groups, activation=agents.activation)
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
        shared=agents.sharing == "shared", view=agents.view,
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
