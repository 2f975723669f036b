"""An RL run: the interval loop around `PopulationTrainer`, with a checkpoint every
`rl.checkpoint_every` updates, resume and the baselines (layout: `mirror.runs.checkpoints`).

Per interval: one compiled call trains every member for `checkpoint_every` updates; its
per-update metrics go to rl_metrics.jsonl; the agents are scored in two sets of fixed-key
games (`mirror.rl.baselines.evaluate`, actions sampled from the policy as in training):
the selection games choose the best checkpoint (metadata `best_epoch`), the held-out
report games give the numbers that are reported (metrics.jsonl, summary.json), so the
checkpoint is never chosen on the games it is reported on. The on-policy probe set (b) is
collected with a third fixed key; the checkpoint's metrics line is written and fsynced,
then the checkpoint is saved (asynchronously). The behaviour policy and the scripted
baselines are scored once, in the report games, when the run starts.

Resume restores the runner state of the newest complete checkpoint (an unreadable newer
one is set aside) and cuts both metrics files back to it, so the run continues bit for
bit as if it had never stopped. One process at a time holds the run directory
(`mirror.base.files.lock_run_dir`).

A run on a `pop` mesh over every process's devices (`mirror rl --distributed`) is run by
all processes together: each trains the members on its own devices, the results are
gathered to every process (`host`), process 0 alone writes the run's files and holds
its lock, and every checkpoint is saved by all processes together (Orbax's multi-host
format; `mirror.base.sharding.leads`).
"""

import time
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import numpy as np
import yaml

from mirror.base.hashing import config_hash
from mirror.env.constants import obs_size
from mirror.base.errors import CheckpointError, TrainError
from mirror.base.files import has_content, lock_run_dir
from mirror.rl.config import hashed_rl_section, rl_settings
from mirror.rl.deviation import DEVIATIONS, summarise
from mirror.rl.population import PopulationTrainer, host, rl_members
from mirror.runs.checkpoints import (
    CONFIG_FILE,
    DATASET_FILE,
    MEMBERS_FILE,
    METRICS_FILE,
    RL_RUN_FILE,
    Network,
    append_json_lines,
    flatten_state,
    is_rl_run,
    open_rl_manager,
    read_metrics,
    read_rl_metadata,
    read_rl_run,
    restore_rl_state,
    save_rl_checkpoint,
    set_aside_checkpoint,
    trim_metrics,
    write_json_atomic,
    write_text_atomic,
)
from mirror.runs.rl_files import BASELINES_FILE, DEVIATION_FILE, RL_METRICS_FILE, json_safe, read_baselines, read_rl_metrics, trim_rl_metrics
from mirror.base.sharding import leads, member_sharding, replicated, spans_processes, sync_processes
from mirror.runs.config import Config, load_config

Log = Callable[[str], None]
FOREIGN_ENTRIES = frozenset({"wandb"})  # W&B may write into the run directory before training
# Fixed keys, fold_in(key(seed), stream): checkpoint selection, the probe, the held-out report.
SELECT_STREAM, PROBE_STREAM, REPORT_STREAM = 1, 2, 3
# Per-update values of rl_metrics.jsonl, from the trainer's metrics of the same name.
UPDATE_KEYS = (
    "episodes", "entropy", "policy_loss", "value_loss", "explained_variance", "approx_kl", "help_rate",
    "help_when_partner_distressed",
)  # fmt: skip
# ... and those of programs that have them: the self/other overlap distance (rl.soo_weight).
OPTIONAL_UPDATE_KEYS = ("soo_distance",)
# The evaluation numbers of metrics.jsonl (held-out report games) and of baselines.json.
EVAL_RATES = ("help_rate", "help_when_partner_distressed", "help_when_partner_energy0", "help_given_opportunity")


class UpdateReport(NamedTuple):
    """One update's rl_metrics.jsonl line, handed to `rl_run`'s `on_update` after its
    interval's checkpoint save has started."""

    update: int
    updates: int  # the configured number of updates
    line: dict


class RLRunResult(NamedTuple):
    run_dir: Path
    last_update: int
    checkpoint: dict  # the last checkpoint's metrics.jsonl line
    baselines: dict
    env_turns: int  # trained turns, all members together
    train_wall_s: float  # seconds in the compiled training intervals (compile excluded)
    compile_s: float


def rl_config_hash(config: Config) -> str:
    """Hash of what determines training: seed, model, env and rl (resume checks it; the
    rl section as `mirror.rl.config.hashed_rl_section` reads it)."""
    values = config.to_dict()
    return config_hash({**{k: values[k] for k in ("seed", "model", "env")}, "rl": hashed_rl_section(config)})


def fixed_key(seed: int, stream: int) -> jax.Array:
    return jax.random.fold_in(jax.random.key(seed), stream)


def _per_network(values, members: int, networks_per_member: int):
    """Per-member values -> per-network JSON (a scalar when there is one network)."""
    values = json_safe(np.repeat(np.asarray(values), networks_per_member, axis=0))
    return values if members * networks_per_member > 1 else values[0]


def _per_member(values, members: int):
    values = json_safe(values)
    return values if members > 1 else values[0]


def _write_run_files(run_dir: Path, config: Config, trainer: PopulationTrainer, dataset) -> None:
    s = trainer.settings
    write_text_atomic(run_dir / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=True))
    if dataset is not None:
        write_json_atomic(run_dir / DATASET_FILE, {**dataset.manifest, "path": str(Path(dataset.path).absolute())})
    widths = network_widths(trainer.config)
    networks = [
        Network(seed=m.seed, lr=m.lr, widths=widths)
        for m in trainer.members
        for _ in range(trainer.networks_per_member)
    ]
    write_json_atomic(run_dir / MEMBERS_FILE, [n.to_dict() for n in networks])
    write_json_atomic(
        run_dir / RL_RUN_FILE,
        {
            "sharing": trainer.config.sharing,
            "view": trainer.config.view,
            "critic": trainer.config.critic,
            "networks_per_member": trainer.networks_per_member,
            "num_inputs": obs_size(trainer.world_width),
            "members": [m.to_dict() for m in trainer.members],
            "probe": {"games": s.probe_games, "turns": s.probe_turns, "seed": config.seed, "stream": PROBE_STREAM},
            "eval": {
                "games": s.eval_games, "turns": s.eval_turns, "seed": config.seed, "greedy": False,
                "select_stream": SELECT_STREAM, "report_stream": REPORT_STREAM,
            },  # fmt: skip
            "helper": {"max_partner_energy": s.helper_max_partner_energy, "min_own_energy": s.helper_min_own_energy},
            "batch_size": trainer.config.batch_size,
        },
    )


def network_widths(ppo) -> tuple:
    """members.json's `widths` of every network: the MLP torso's hidden widths, or for the
    transformer torso its CMNI layers' widths (each block's MLP hidden units,
    `mirror.agents.transformer.neuron_widths`), which the analysis reads as the layers'
    true widths (a transformer is never padded)."""
    if ppo.transformer:
        depth, d_model, _, mlp_ratio = ppo.transformer
        return (d_model * mlp_ratio,) * depth
    return tuple(ppo.hidden)


def _baselines_json(results: dict) -> dict:
    keys = ("return_per_player", "return", *EVAL_RATES, "energy0_share", "episodes")
    return {name: {k: json_safe(r[k]) for k in keys} for name, r in host(results).items()}


def _holding_run_lock(run):
    def locked(config, run_dir, *args, **kwargs):
        if not leads(kwargs.get("mesh")):  # process 0 holds the lock of a run split over processes
            return run(config, run_dir, *args, **kwargs)
        with lock_run_dir(run_dir):
            return run(config, run_dir, *args, **kwargs)

    locked.__doc__ = run.__doc__
    return locked


@_holding_run_lock
def rl_run(
    config: Config,
    run_dir,
    *,
    resume: bool = False,
    dataset=None,
    on_update: Callable[[UpdateReport], None] | None = None,
    log: Log = print,
    mesh=None,
) -> RLRunResult:
    """Train (or resume) the RL run in `run_dir`; see the module docstring. `dataset`
    (a `mirror.data.store.Dataset`) is recorded as probe set (a) in dataset.json;
    `on_update(report)` is called for every update once its interval is checkpointed.
    `mesh`: the `pop` mesh the members are split over (default: this process's devices);
    one over every process's devices makes a run that all processes run together."""
    run_dir = Path(run_dir).absolute()
    settings = rl_settings(config)  # every rl field checked before any work
    members = rl_members(config)
    if resume:
        if not is_rl_run(run_dir):
            raise TrainError(f"{run_dir} is not an RL run ({RL_RUN_FILE} is missing); `mirror rl --resume` continues only RL runs")
    elif has_content(run_dir, ignore=FOREIGN_ENTRIES):
        raise TrainError(f"{run_dir} already exists and is not empty; use --resume to continue it")
    trainer = PopulationTrainer(config, members, settings, mesh=mesh)
    if spans_processes(trainer.mesh):
        log(f"{len(members)} member(s) over {trainer.mesh.size} devices of {jax.process_count()} processes; this is process {jax.process_index()}")
        sync_processes(trainer.mesh, "rl_run: directory checked")  # before any process writes to it
    if not resume and leads(trainer.mesh):
        _write_run_files(run_dir, config, trainer, dataset)
    manager = open_rl_manager(run_dir, collective=spans_processes(trainer.mesh))
    try:
        return _train(config, run_dir, trainer, manager, on_update, log)
    finally:
        manager.close()


def _train(config: Config, run_dir: Path, trainer: PopulationTrainer, manager, on_update, log: Log) -> RLRunResult:
    ppo, m_count = trainer.config, len(trainer.members)
    n_per = trainer.networks_per_member
    select_key, report_key = fixed_key(config.seed, SELECT_STREAM), fixed_key(config.seed, REPORT_STREAM)
    probe_key = fixed_key(config.seed, PROBE_STREAM)
    runner, last, best_return, best_update = _restore_or_start(config, run_dir, trainer, manager, log)
    lead = leads(trainer.mesh)
    if (run_dir / BASELINES_FILE).is_file():
        baselines = read_baselines(run_dir)
    else:
        baselines = _baselines_json(trainer.baselines(report_key))
        if lead:
            write_json_atomic(run_dir / BASELINES_FILE, baselines)
    previous = read_rl_metrics(run_dir)
    wall = float(previous[-1]["wall_s"]) if previous else 0.0
    start = time.perf_counter()
    interval = trainer.compile_interval(runner) if last < ppo.updates else None  # a finished run compiles nothing
    compile_s = time.perf_counter() - start
    line = read_metrics(run_dir).get(last, {})
    while last < ppo.updates:
        start = time.perf_counter()
        runner, metrics = interval(runner)
        metrics = host(trainer.unpad(metrics))  # the one host sync per interval
        seconds = time.perf_counter() - start
        lines = update_lines(metrics, last, ppo, m_count, wall, seconds)
        wall += seconds
        last += ppo.checkpoint_every
        params = runner.params
        selection = host(trainer.evaluate(params, select_key))["return"]
        ev = host(trainer.evaluate(params, report_key))  # held out: what is reported
        probe = trainer.probe(params, probe_key)
        deviation = deviation_summaries(host(trainer.deviations(params, report_key)), trainer)
        improved = selection > best_return  # NaN (no complete episode) never improves
        best_return = np.where(improved, selection, best_return)
        best_update = np.where(improved, last, best_update)
        line = {
            "epoch": last,
            "env_turns": last * ppo.batch_size,
            "return_agent": _per_network(ev["return"], m_count, n_per),
            "return_per_player": _per_network(ev["return_per_player"], m_count, n_per),
            **{k: _per_network(ev[k], m_count, n_per) for k in EVAL_RATES},
            **deviation_columns(deviation, n_per),
            "return_agent_selection": _per_network(selection, m_count, n_per),
            "selected_update": _per_network(best_update, m_count, n_per),
            "wall_s": round(wall, 4),
        }
        metadata = {
            "epoch": last,
            "best_epoch": _per_network(best_update, m_count, n_per),
            "best_return_agent": json_safe(best_return),
            "config_hash": config_hash(config.to_dict()),
            "rl_config_hash": rl_config_hash(config),
        }
        # The lines first: a checkpoint that completes always has its lines (resume cuts
        # lines whose checkpoint did not complete).
        if lead:
            append_json_lines(run_dir / RL_METRICS_FILE, lines)
            append_json_lines(run_dir / METRICS_FILE, [line])
        save_rl_checkpoint(
            manager,
            last,
            params=trainer.network_params(params),
            rl_state=flatten_state(trainer.unpad(runner)),
            probe=dict(zip(("inputs", "scenarios", "idle_shown"), probe)),
            metadata=metadata,
        )
        if lead and last >= ppo.updates:
            write_json_atomic(run_dir / DEVIATION_FILE, {"update": last, "members": deviation})
        log(interval_line(line, ppo.updates, seconds))
        if on_update is not None:
            for entry in lines:
                on_update(UpdateReport(entry["update"], ppo.updates, entry))
    manager.wait_until_finished()
    return RLRunResult(run_dir, last, line, baselines, last * ppo.batch_size * m_count, wall, compile_s)


def deviation_summaries(gains: dict, trainer: PopulationTrainer) -> list[dict]:
    """`mirror.rl.deviation.summarise` of every member (gains: leaves [members, ...])."""
    weights = np.asarray(trainer.weights)[: len(trainer.members)]
    return [summarise(jax.tree.map(lambda x: x[m], gains), float(weights[m])) for m in range(len(trainer.members))]


def deviation_columns(summaries: list[dict], networks_per_member: int) -> dict:
    """metrics.jsonl's deviation fields: per network, each deviation's pooled gain with its
    95 % interval (gain_<name>, gain_<name>_low, gain_<name>_high) and at_best_response."""
    members = len(summaries)
    out = {}
    for name in DEVIATIONS:
        for suffix, key in (("", "mean"), ("_low", "low"), ("_high", "high")):
            out[f"gain_{name}{suffix}"] = _per_network([s["gains"][name][key] for s in summaries], members, networks_per_member)
    flags = [bool(s["at_best_response"]) for s in summaries]
    out["at_best_response"] = [f for f in flags for _ in range(networks_per_member)] if members * networks_per_member > 1 else flags[0]
    return out


def update_lines(metrics: dict, done: int, ppo, members: int, wall: float, seconds: float) -> list[dict]:
    """rl_metrics.jsonl lines of one interval's updates; wall_s spreads the interval's
    training seconds evenly over its updates."""
    n = ppo.checkpoint_every
    lines = []
    for i in range(n):
        update = done + i + 1
        entry = {
            "update": update,
            "env_turns": update * ppo.batch_size,  # per member; a host int (int32 overflows)
            "return_per_player": _per_member(metrics["return_per_player"][:, i], members),
        }
        entry.update({k: _per_member(metrics[k][:, i], members) for k in UPDATE_KEYS + OPTIONAL_UPDATE_KEYS if k in metrics})
        entry["wall_s"] = round(wall + seconds * (i + 1) / n, 4)
        lines.append(entry)
    return lines


def interval_line(line: dict, updates: int, seconds: float) -> str:
    def show(v):
        values = v if isinstance(v, list) else [v]
        if len(values) > 4:  # a large population: its spread, not every member
            finite = [x for x in values if x is not None]
            if not finite:
                return f"- (all {len(values)} networks)"
            return f"mean {sum(finite) / len(finite):.3g} (min {min(finite):.3g}, max {max(finite):.3g}, {len(values)} networks)"
        return ", ".join("-" if x is None else f"{x:.3g}" for x in values)

    return (
        f"update {line['epoch']}/{updates}: return {show(line['return_agent'])}, help rate {show(line['help_rate'])}, "
        f"{line['env_turns']:,} turns per member ({seconds:.1f} s)"
    )


def _restore_or_start(config: Config, run_dir: Path, trainer: PopulationTrainer, manager, log: Log):
    """(runner state, last update, best eval return [members], its update) from the newest
    readable checkpoint, or a fresh start."""
    m, mesh = len(trainer.members), trainer.mesh
    lead = leads(mesh)
    steps = sorted(manager.all_steps())
    if not steps:
        for name in (METRICS_FILE, RL_METRICS_FILE) if lead else ():
            (run_dir / name).write_text("")
        return trainer.init(), 0, np.full(m, -np.inf, np.float32), np.zeros(m, np.int64)
    abstract = jax.eval_shape(lambda: trainer.unpad(trainer.init()))  # checkpoints hold the real members
    expected = rl_config_hash(config)
    placed = replicated(mesh) if spans_processes(mesh) else None  # each process reads the whole state
    errors = []
    for update in reversed(steps):
        # The settings first: a checkpoint of other settings may hold another runner state
        # (e.g. another critic), which must be refused, not set aside as unreadable.
        meta = read_rl_metadata(manager, update)
        if meta is not None and meta.get("rl_config_hash") != expected:
            raise TrainError(f"checkpoint {update} in {run_dir} was trained with other seed/model/env/rl settings")
        try:
            runner, meta = restore_rl_state(manager, update, abstract, placed)
        except CheckpointError as err:
            errors.append((update, err))
            continue
        break
    else:
        raise CheckpointError(f"{errors[0][1]}, and no earlier checkpoint of {run_dir} can be read; start the run again")
    for bad, err in errors:
        if lead:
            moved = set_aside_checkpoint(run_dir, bad)
            log(f"warning: {err}; moved it to {moved} and resuming from checkpoint {update}")
    if errors:
        sync_processes(mesh, "rl_run: unreadable checkpoints set aside")
        manager.reload()
    if meta["rl_config_hash"] != expected:
        raise TrainError(f"checkpoint {update} in {run_dir} was trained with other seed/model/env/rl settings")
    if lead:
        trim_metrics(run_dir, update, every=trainer.config.checkpoint_every)
        trim_rl_metrics(run_dir, update)
    log(f"resuming {run_dir} after update {update}")
    best = np.asarray([-np.inf if v is None else v for v in meta["best_return_agent"]], np.float32)
    best_epoch = np.asarray(meta["best_epoch"] if isinstance(meta["best_epoch"], list) else [meta["best_epoch"]], np.int64)
    runner = trainer.pad(runner)
    if mesh is not None:  # split over the mesh as `init` leaves it: the compiled interval expects that layout
        runner = jax.jit(lambda tree: tree, out_shardings=member_sharding(mesh))(runner)
    return runner, update, best, best_epoch[:: trainer.networks_per_member]


def resume_rl_config(run_dir) -> Config:
    """The config of an RL run to resume; a directory that is not an RL run is refused."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TrainError(f"{run_dir} does not exist; --resume needs an RL run directory")
    read_rl_run(run_dir)
    return load_config(run_dir / CONFIG_FILE)
