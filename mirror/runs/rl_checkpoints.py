"""An RL run on disk: the files `mirror rl` writes, and readers for the other stages.

The layout extends the supervised run directory (`mirror.runs.checkpoints`), so
`load_run` and `mirror cmni RUN_DIR` read an RL run unchanged:

    RUN_DIR/config.yaml        the resolved config, `rl:` section included
    RUN_DIR/dataset.json       probe set (a): the supervised dataset of this config's data
                               and env sections (its test split is analysed)
    RUN_DIR/members.json       one entry PER NETWORK in the supervised Member format
                               {seed, lr, dropout: 0.0, l2: 0.0, widths} (a transformer
                               torso's widths: its blocks' MLP hidden units, the CMNI layers)
    RUN_DIR/rl_run.json        marks an RL run: sharing, networks_per_member, num_inputs,
                               members (RLMember.to_dict()), probe {games, turns, seed,
                               stream}, eval {games, turns, seed, greedy, select_stream
                               (the games that choose the best checkpoint), report_stream
                               (the held-out games of every reported number)}, helper
                               {max_partner_energy, min_own_energy}
    RUN_DIR/checkpoints/<U>/   Orbax checkpoint after update U (every rl.checkpoint_every), items
                               "params"   the actor alone: torso and logits, no critic or
                                          value head (the supervised MLP's or transformer's
                                          layout, `cmni_params`), leaves [networks, ...]
                               "rl_state" the runner state of every member (params incl. the
                                          critic, optimizer, games, key as key data,
                                          update, value-target statistics), a flat dict
                                          of leaves [members, ...]
                               "probe"    probe set (b) at this checkpoint: inputs
                                          int8[networks, rows, 3W+4] (the model input, spec
                                          §5.6 mask applied, as the dataset's `inputs`),
                                          scenarios int8[networks, rows], idle_shown
                                          bool[networks, rows, 2] (as the dataset's)
                               "metadata" JSON: epoch (= U), best_epoch (highest return in
                                          the selection games so far), best_return_agent
                                          (that return), config_hash, rl_config_hash
    RUN_DIR/metrics.jsonl      one line per checkpoint (written and fsynced before it): epoch,
                               env_turns, return_agent, return_per_player, help_rate,
                               help_when_partner_distressed, help_when_partner_energy0 (all
                               in the held-out report games), return_agent_selection (in the
                               selection games), selected_update (best_epoch so far), wall_s
                               (per-network lists when there is more than one network, else
                               scalars)
    RUN_DIR/rl_metrics.jsonl   one line per update: update, env_turns, episodes (that ended in
                               the update), return_per_player ([2], or [members][2]: pooled
                               over those episodes; null when none ended, which staggered
                               games avoid when num_envs * num_steps >= episode_turns and
                               num_steps is even), entropy, policy_loss,
                               value_loss in the critic's units (normalised with rl.value_norm),
                               explained_variance (1 - Var(target - value) / Var(target) over
                               the update's decisions, reward units), approx_kl, help_rate,
                               help_when_partner_distressed, wall_s (training seconds so far);
                               per-member lists for populations; NaN -> null
    RUN_DIR/baselines.json     {policy: {...}} for the behaviour policy and every scripted
                               baseline (`mirror.rl.baselines.SCRIPTED_BASELINES`: oracle,
                               hop_jump, helper_<base>, lone_helper_<base>,
                               frozen_partner_<base>, base in hop_jump, oracle), each value a
                               per-member list: return_per_player, return, help_rate,
                               help_when_partner_distressed, help_when_partner_energy0,
                               energy0_share, episodes (the agents' report games)

Readers for the analysis and the sweeps: `is_rl_run`, `read_rl_run`, `read_probes`,
`read_rl_metrics`, `read_baselines`. Every item is read through
`mirror.runs.checkpoints.restore_items`, so a damaged one is named with the fix
(`mirror rl --resume RUN_DIR`). The array items are Orbax's format, or one .npz each when
a process of a multi-host sweep checkpointed its population alone (`array_save`); a run
split over every process's devices (`mirror rl --distributed`) is saved by all of them
together in Orbax's format.
"""

import json
import re
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from mirror.base.errors import CheckpointError, TrainError
from mirror.rl.baselines import BASES
from mirror.runs.checkpoints import (
    CHECKPOINT_DIR,
    POPULATION_FILE,
    RL_RUN_FILE,
    array_save,
    json_lines,
    open_manager,
    restore_items,
    trim_json_lines,
    with_fix,
)

RL_METRICS_FILE = "rl_metrics.jsonl"
BASELINES_FILE = "baselines.json"
RL_ITEMS = ("params", "rl_state", "probe", "metadata")
PROBE_FIELDS = ("inputs", "scenarios", "idle_shown")


def is_rl_run(run_dir) -> bool:
    return (Path(run_dir) / RL_RUN_FILE).is_file()


def read_rl_run(run_dir) -> dict:
    path = Path(run_dir) / RL_RUN_FILE
    if not path.is_file():
        raise TrainError(f"{run_dir} is not an RL run: {RL_RUN_FILE} is missing")
    return json.loads(path.read_text())


def read_baselines(run_dir) -> dict:
    return json.loads((Path(run_dir) / BASELINES_FILE).read_text())


def open_rl_manager(run_dir, read_only: bool = False, collective: bool = False) -> ocp.CheckpointManager:
    """The run's checkpoint manager (`mirror.runs.checkpoints.open_manager`); `collective`:
    every process of a run split over all processes' devices opens it and saves together."""
    return open_manager(run_dir, read_only=read_only, items=RL_ITEMS, collective=collective)


# --- rl_metrics.jsonl ----------------------------------------------------------------


def json_safe(value):
    """Arrays and numpy scalars -> JSON values; NaN and infinities -> None."""
    value = np.asarray(value).tolist() if isinstance(value, (np.ndarray, np.generic, jax.Array)) else value
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def read_rl_metrics(run_dir) -> list[dict]:
    """One dict per update, in order (complete lines only)."""
    return [json.loads(raw) for _, raw in json_lines(Path(run_dir) / RL_METRICS_FILE, "update")]


def trim_rl_metrics(run_dir, last: int) -> None:
    """Keep the lines of updates up to `last` (the last complete checkpoint), byte for byte."""
    trim_json_lines(Path(run_dir) / RL_METRICS_FILE, "update", last)


# --- the runner state as a flat dict of arrays ----------------------------------------


def _leaf_name(i: int, path) -> str:
    return f"{i:03d}_" + re.sub(r"[^A-Za-z0-9_]+", "_", jax.tree_util.keystr(path)).strip("_")


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def flatten_state(runner) -> dict:
    """The runner state as {name: array}; typed PRNG keys become their key data (Orbax
    saves plain arrays only)."""
    leaves = jax.tree_util.tree_flatten_with_path(runner)[0]
    return {_leaf_name(i, path): jax.random.key_data(x) if _is_key(x) else x for i, (path, x) in enumerate(leaves)}


def unflatten_state(flat: dict, abstract_runner):
    """Inverse of `flatten_state` onto the structure of `abstract_runner`."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract_runner)
    out = []
    for i, (path, a) in enumerate(leaves):
        value = flat[_leaf_name(i, path)]
        out.append(jax.random.wrap_key_data(value) if _is_key(a) else value)
    return jax.tree_util.tree_unflatten(treedef, out)


def abstract_flat_state(abstract_runner) -> dict:
    """`flatten_state` of an abstract runner state (ShapeDtypeStructs)."""
    return jax.eval_shape(flatten_state, abstract_runner)


# --- checkpoints ------------------------------------------------------------------------


def save_rl_checkpoint(manager, update: int, *, params, rl_state: dict, probe: dict, metadata: dict) -> None:
    """Save update `update` (asynchronously); an existing checkpoint is never replaced.
    Every process of a run split over several saves it together (global arrays)."""
    if update in manager.all_steps():
        raise TrainError(f"checkpoint {update} already exists in {manager.directory}; checkpoints are never overwritten")
    saved = manager.save(
        update,
        args=ocp.args.Composite(
            params=array_save(params),
            rl_state=array_save(rl_state),
            probe=array_save(probe),
            metadata=ocp.args.JsonSave(metadata),
        ),
    )
    if not saved:
        raise TrainError(f"Orbax declined to save checkpoint {update} in {manager.directory}")


def restore_rl_state(manager, update: int, abstract_runner, sharding=None):
    """(runner state, metadata) of checkpoint `update`, its arrays on `sharding` (default:
    this process's first device). Every item is read, params and probe too (resume needs
    neither, but a checkpoint it continues from must be whole): CheckpointError names the
    first item that cannot be read."""
    like = {"rl_state": abstract_flat_state(abstract_runner), "params": None, "probe": None, "metadata": None}
    restored = restore_items(manager, update, like, sharding)
    return unflatten_state(restored["rl_state"], abstract_runner), restored["metadata"]


def read_rl_metadata(manager, update: int) -> dict | None:
    """The metadata item of checkpoint `update`, or None when it cannot be read."""
    try:
        restored = manager.restore(update, args=ocp.args.Composite(metadata=ocp.args.JsonRestore()))
    except Exception:  # noqa: BLE001  (whatever Orbax raises; the full restore reports it)
        return None
    return restored.metadata if isinstance(restored.metadata, dict) else None


def read_probes(run_dir) -> dict:
    """Probe set (b) of every checkpoint: inputs int8[checkpoints, networks, rows, 3W+4],
    scenarios int8[checkpoints, networks, rows], idle_shown bool[checkpoints, networks, rows, 2],
    updates int[checkpoints]."""
    run_dir = Path(run_dir).absolute()
    read_rl_run(run_dir)
    if (run_dir / POPULATION_FILE).is_file():  # a sweep trial: its networks of the population's run
        pointer = json.loads((run_dir / POPULATION_FILE).read_text())
        population = read_probes(pointer["run_dir"])
        networks = pointer.get("networks", [pointer["member"]])
        n = int(pointer["checkpoints"])
        out = {k: population[k][:n, networks] for k in PROBE_FIELDS}
        return {**out, "updates": population["updates"][:n]}
    if not (run_dir / CHECKPOINT_DIR).is_dir():
        raise TrainError(f"{run_dir} has no {CHECKPOINT_DIR}/ yet")
    manager = open_rl_manager(run_dir, read_only=True)
    try:
        updates = sorted(manager.all_steps())
        if not updates:
            raise TrainError(f"{run_dir} has no complete checkpoint yet")
        probes = []
        for update in updates:
            try:
                probe = restore_items(manager, update, {"probe": dict.fromkeys(PROBE_FIELDS, 0)})["probe"]
            except CheckpointError as err:
                raise with_fix(err, run_dir, updates, update) from None
            probes.append({k: np.asarray(probe[k]) for k in PROBE_FIELDS})
    finally:
        manager.close()
    out = {k: np.stack([p[k] for p in probes]) for k in PROBE_FIELDS}
    out["updates"] = np.asarray(updates, np.int64)
    return out


# --- the headline numbers of a run ------------------------------------------------------


def _mean(values) -> float | None:
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if finite else None


def _baseline_mean(baselines: dict, policy: str, key: str = "return"):
    entry = baselines.get(policy)
    return None if entry is None or entry.get(key) is None else _mean(entry[key])


def rl_summary(run_dir) -> dict:
    """The RL keys of a run's summary.json, from its last checkpoint's line, the baselines
    and rl_metrics.jsonl. Scalars are means over members (members' own values in the
    `_per_member` lists); per-player returns are [Frog, Toad] of the first member.

    return_agent/behaviour/oracle/hop_jump: mean own score per player per complete episode
    in the held-out report games; return_helper, return_lone_helper: {"hop_jump": x,
    "oracle": y} by base (a lone helper's own return); help_rate,
    help_when_partner_distressed, help_when_partner_energy0: the agent's, same games;
    selected_update: the checkpoint chosen in the selection games (first member),
    return_agent_selected: its return in the report games; env_turns: trained turns, all
    members together; turns_per_s: env_turns per second of training (compiled intervals;
    compile, evaluation and checkpoints excluded); explained_variance: the critic's, at the
    last update (None for runs before it was logged)."""
    run_dir = Path(run_dir)
    info = read_rl_run(run_dir)
    n_per = info["networks_per_member"]
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    if not lines:
        raise TrainError(f"{run_dir} has no checkpoint line in metrics.jsonl yet")
    last = lines[-1]
    members = len(info["members"])

    def per_member(key, line=last):
        value = line.get(key)
        if value is None:
            return [None] * members
        return value[::n_per] if members * n_per > 1 else [value]

    baselines = read_baselines(run_dir)
    updates = read_rl_metrics(run_dir)
    wall = float(updates[-1]["wall_s"]) if updates else 0.0
    explained = updates[-1].get("explained_variance") if updates else None
    explained = explained if isinstance(explained, list) else [explained]
    env_turns = int(last["env_turns"]) * members
    by_epoch = {int(line["epoch"]): line for line in lines}
    selected = per_member("selected_update")
    selected_returns = [
        per_member("return_agent", by_epoch[int(u)])[m] if u is not None and int(u) in by_epoch else None
        for m, u in enumerate(selected)
    ]
    out = {
        "updates": int(last["epoch"]),
        "members": members,
        "return_agent": _mean(per_member("return_agent")),
        "return_behaviour": _baseline_mean(baselines, "behaviour"),
        "return_oracle": _baseline_mean(baselines, "oracle"),
        "return_hop_jump": _baseline_mean(baselines, "hop_jump"),
        "return_helper": {b: _baseline_mean(baselines, f"helper_{b}") for b in BASES},
        "return_lone_helper": {b: _baseline_mean(baselines, f"lone_helper_{b}") for b in BASES},
        "return_frozen_partner": {b: _baseline_mean(baselines, f"frozen_partner_{b}") for b in BASES},
        "help_rate": _mean(per_member("help_rate")),
        "help_when_partner_distressed": _mean(per_member("help_when_partner_distressed")),
        "help_when_partner_energy0": _mean(per_member("help_when_partner_energy0")),
        "help_rate_behaviour": _baseline_mean(baselines, "behaviour", "help_rate"),
        "help_rate_oracle": _baseline_mean(baselines, "oracle", "help_rate"),
        "selected_update": selected[0],
        "return_agent_selected": _mean(selected_returns),
        "env_turns": env_turns,
        "train_wall_s": wall,
        "turns_per_s": env_turns / wall if wall > 0 else None,
        "explained_variance": _mean(explained),
        "return_agent_per_player": per_member("return_per_player")[0],
        "return_behaviour_per_player": baselines["behaviour"]["return_per_player"][0],
        "return_oracle_per_player": baselines["oracle"]["return_per_player"][0],
    }
    if members > 1:
        out.update({f"{k}_per_member": per_member(k) for k in ("return_agent", "help_rate", "help_when_partner_distressed")})
        out["return_behaviour_per_member"] = baselines["behaviour"]["return"]
        out["return_oracle_per_member"] = baselines["oracle"]["return"]
        out["explained_variance_per_member"] = explained
    return out
