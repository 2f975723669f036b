"""The whole analysis of a run directory, as a library function.

`analyse_run(run_dir, out_dir)` reads every checkpoint (and member) of a training run,
runs `analyse_checkpoints` on the test split and writes cmni.csv, neurons.csv,
circuits.csv, weights.csv, summary.json and figures/. `mirror cmni` (which only prints)
and `mirror run` both call it.
"""

import dataclasses
import time
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import numpy as np

from mirror.agents.mlp import unit_masks
from mirror.runs.outputs import RL_METRICS, write_analysis_outputs
from mirror.runs.rl_view import probe_a_inputs, run_view
from mirror.runs.config import Config, load_config, parse_overrides
from mirror.base.errors import UsageError
from mirror.base.files import require_writable
from mirror.analysis.analyse import CheckpointAnalysis, analyse_checkpoints, init_draws, select_member_params
from mirror.analysis.cmni import ACTOR_CRITIC_INIT, analysed_widths
from mirror.analysis.onpolicy import onpolicy_cmni
from mirror.base.errors import ConfigError, TrainError
from mirror.data.split import TEST
from mirror.data.store import load_dataset
from mirror.runs import rl_figures
from mirror.runs.checkpoints import POPULATION_FILE, RL_RUN_FILE, is_rl_run, load_run, read_probes
from mirror.runs.rl_files import BASELINES_FILE, SCRIPTED_LINES, baseline, read_json, rl_summary


def analysis_config(run_config: Config, config_file: str | None = None, overrides: list[str] = ()) -> Config:
    """The run's config with its `analysis` section replaced from a file and/or
    `--analysis.x VALUE` overrides (other sections are fixed by the run)."""
    extra = parse_overrides(list(overrides))
    file_values = {}
    if config_file:
        file_values = dataclasses.asdict(load_config(config_file).analysis)
    other = sorted(set(extra) - {"analysis"})
    if other:
        raise ConfigError(f"mirror cmni only takes analysis.* overrides; got {', '.join(other)} (the run fixes the rest)")
    values = run_config.to_dict()
    values["analysis"] = {**values["analysis"], **file_values, **extra.get("analysis", {})}
    return load_config(None, values)


class RunAnalysis(NamedTuple):
    run: object  # mirror.runs.checkpoints.LoadedRun
    config: Config  # the run's config with the analysis section used
    analysis: CheckpointAnalysis
    out_dir: Path
    written: list  # paths of the files written
    dataset_path: Path
    test_rows: int
    wall_s: float
    onpolicy: object = None  # an RL run's mirror.analysis.onpolicy.OnPolicyCMNI [checkpoints, networks]; None otherwise


def analyse_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    config_file: str | None = None,
    overrides: list[str] = (),
    progress: Callable[[str], None] | None = None,
    log: Callable[[str], None] | None = None,
    probes: dict | None = None,
) -> RunAnalysis:
    """Analyse every checkpoint of the run in `run_dir` and write the files to `out_dir`
    (default RUN_DIR/analysis). `config_file` / `overrides` replace analysis fields;
    `progress(step_name)` follows the analysis steps, `log(line)` gets what was read.
    Raises TrainError when `run_dir` is not a run or lacks the selected checkpoint.

    An RL run (RUN_DIR/rl_run.json) is analysed the same way on the test split (probe set
    (a)), plus the CMNI on its on-policy probe rows (b) (`probes`, default
    `mirror.runs.checkpoints.read_probes(run_dir)`): see `analyse_rl_run`."""
    if is_rl_run(run_dir):
        return analyse_rl_run(run_dir, out_dir, config_file=config_file, overrides=overrides, progress=progress, log=log, probes=probes)
    start = time.perf_counter()
    log = log or (lambda line: None)
    run = load_run(run_dir)
    config = analysis_config(run.config, config_file, overrides)
    which = config.analysis.checkpoint
    selected = np.asarray([run.checkpoint_index(which, m) for m in range(len(run.members))])
    out = Path(out_dir) if out_dir else run.run_dir / "analysis"
    require_writable(out, "output directory", UsageError)  # before the analysis, not after
    dataset = load_dataset(run.dataset_path)
    test = dataset.splits == TEST
    inputs, scenarios, idle = dataset.inputs[test], dataset.scenarios[test], dataset.idle_shown[test]
    log(f"run: {run.run_dir} ({len(run.epochs)} checkpoints x {len(run.members)} member(s), epochs {run.epochs.min()}..{run.epochs.max()})")
    log(f"test rows: {int(test.sum()):,} from {dataset.path}")
    widths, padded = analysed_widths(run.params, run.widths, run.padded_widths)
    analysis = analyse_checkpoints(
        config.seed, run.params, unit_masks(widths, padded), widths,
        inputs, scenarios, idle, selected, config.analysis,
        activation=config.model.activation, kernel_init=config.model.kernel_init, progress=progress, labels=dataset.labels[test],
    )  # fmt: skip
    metrics = {k: run.metric(k) for k in ("val_loss", "val_loss_data", "val_accuracy")}
    written = write_analysis_outputs(
        out, analysis, epochs=run.epochs, metrics=metrics, params_selected=select_member_params(run.params, selected),
        config_analysis=dataclasses.asdict(config.analysis), replicates=members_are_seeds([m.to_dict() for m in run.members]),
    )  # fmt: skip
    return RunAnalysis(run, config, analysis, out, written, Path(dataset.path), int(test.sum()), time.perf_counter() - start)


def members_are_seeds(members: list[dict]) -> bool:
    """True when the members (dicts with a "seed") differ in nothing but their seed: only
    then are they replicates for the verdicts over seeds."""
    return len({repr(sorted((k, v) for k, v in m.items() if k != "seed")) for m in members}) <= 1


# ----------------------------------------------------------------------------- RL runs


def rl_selected(run, which: str | int, networks_per_member: int) -> np.ndarray:
    """int[networks]: the analysed checkpoint of each network. "best" is the checkpoint
    metadata's best_epoch (the update with the highest eval return so far, per network,
    per member or one for the run), "last" the last, an int that update."""
    networks = len(run.members)
    if which != "best":
        return np.asarray([run.checkpoint_index(which, n) for n in range(networks)])
    best = run.metric("best_epoch")[-1]
    if best.size not in (1, networks, networks // networks_per_member):
        raise TrainError(f"{run.run_dir}: best_epoch has {best.size} values for {networks} networks")
    best = np.repeat(best, networks // best.size)
    out = []
    for n, update in enumerate(best):
        if np.isnan(update) or update < 1:
            raise TrainError(f"network {n} of {run.run_dir} has no best checkpoint (best_epoch {update})")
        out.append(run.checkpoint_index(int(update), n))
    return np.asarray(out)


def rl_metrics(run, names=RL_METRICS) -> dict:
    """name -> float[checkpoints, networks] from the checkpoints' metrics lines (a run-wide
    scalar such as env_turns is repeated for every network; a missing value is NaN)."""
    networks = len(run.members)
    out = {}
    for name in names:
        if not all(name in meta for meta in run.metadata):
            out[name] = np.full((len(run.epochs), networks), np.nan)
            continue
        values = run.metric(name)
        out[name] = np.repeat(values, networks // values.shape[1], axis=1) if values.shape[1] != networks else values
    return out


def aligned_probes(probes: dict, epochs) -> dict:
    """The probe arrays at the run's checkpoints (by update, when `probes` has "updates")."""
    arrays = {k: np.asarray(probes[k]) for k in ("inputs", "scenarios", "idle_shown")}
    if "updates" not in probes:
        return arrays
    index = {int(u): i for i, u in enumerate(np.asarray(probes["updates"]))}
    missing = [int(e) for e in epochs if int(e) not in index]
    if missing:
        raise TrainError(f"the on-policy probe set has no rows for update(s) {missing}")
    take = np.asarray([index[int(e)] for e in epochs])
    return {k: v[take] for k, v in arrays.items()}


def analyse_rl_run(run_dir, out_dir=None, *, config_file=None, overrides=(), progress=None, log=None, probes=None) -> RunAnalysis:
    """`analyse_run` of an RL run: the supervised analysis on the test split (probe set (a))
    with the actor-critic's initialisation as the random-init null, the CMNI on the
    on-policy probe rows (b) with its game-wise permutation null and the same random
    initialisations on those rows, cmni.csv with the RL metrics (env_turns, return_agent,
    help rates) and cmni_onpolicy (+ p_onpolicy, p_init_onpolicy, and cmni_scaled_onpolicy:
    the scale-free variant on the same rows), and the RL figures
    (learning curve, CMNI on both probe sets) in place of Figure 2."""
    start = time.perf_counter()
    log = log or (lambda line: None)
    run = load_run(run_dir)
    rl_run = read_json(run.run_dir / RL_RUN_FILE)
    per_member = int(rl_run.get("networks_per_member", 1))
    config = analysis_config(run.config, config_file, overrides)
    selected = rl_selected(run, config.analysis.checkpoint, per_member)
    out = Path(out_dir) if out_dir else run.run_dir / "analysis"
    require_writable(out, "output directory", UsageError)
    if probes is None:
        probes = read_probes(run.run_dir)
    probe = aligned_probes(probes, run.epochs)
    dataset = load_dataset(run.dataset_path)
    test = dataset.splits == TEST
    log(f"RL run: {run.run_dir} ({len(run.epochs)} checkpoints x {len(run.members)} network(s), updates {run.epochs.min()}..{run.epochs.max()})")
    log(f"probe set (a): {int(test.sum()):,} test rows from {dataset.path}; (b): {probe['inputs'].shape[-2]:,} on-policy rows per checkpoint and network")
    masks = unit_masks(run.widths, run.padded_widths)
    # Probe set (a) as the networks read their own views (the seat and position, veiled as their game veils them)
    probe_a = probe_a_inputs(dataset.inputs[test], dataset.positions[test], config.env_params.veil, run_view(rl_run))
    analysis = analyse_checkpoints(
        config.seed, run.params, masks, run.widths, probe_a, dataset.scenarios[test], dataset.idle_shown[test], selected,
        config.analysis, activation=config.model.activation, kernel_init=ACTOR_CRITIC_INIT, progress=progress, labels=dataset.labels[test],
    )  # fmt: skip
    step_start = time.perf_counter()
    games = probe_games(rl_run, run.run_dir) if config.analysis.permutations else None
    init_params = init_masks = None
    if config.analysis.init_seeds:  # the draws of probe set (a)'s init null (same key), on the probe (b) rows
        stacked, draw_masks, index = init_draws(
            jax.random.key(config.seed), run.widths, run.params, seeds=config.analysis.init_seeds, num_inputs=dataset.inputs.shape[1],
            activation=config.model.activation, kernel_init=ACTOR_CRITIC_INIT,
        )  # fmt: skip
        init_params, init_masks = jax.tree.map(lambda a: np.asarray(a)[index], stacked), [np.asarray(m)[index] for m in draw_masks]
    onpolicy = onpolicy_cmni(
        run.params, [m[None] for m in masks], probe["inputs"], probe["scenarios"], probe["idle_shown"], activation=config.model.activation,
        chunk_rows=config.analysis.chunk_rows, permutations=config.analysis.permutations, seed=config.seed, games=games,
        init_params=init_params, init_unit_mask=init_masks,
    )  # fmt: skip
    analysis.timings["cmni on-policy"] = time.perf_counter() - step_start
    (progress or (lambda name: None))("cmni on-policy")
    extra = {"cmni_onpolicy": onpolicy.cmni}
    if config.analysis.permutations:
        extra["p_onpolicy"] = onpolicy.p_permutation
    if config.analysis.init_seeds:
        extra["p_init_onpolicy"] = onpolicy.p_init
    extra["cmni_scaled_onpolicy"] = onpolicy.cmni_scaled
    networks = np.arange(len(run.members))
    # The RL headline (returns, help rates, turns) goes into summary.json here too, so a
    # later `mirror cmni RUN_DIR` rewrites summary.json without losing it.
    headline = {} if (run.run_dir / POPULATION_FILE).is_file() else rl_summary(run.run_dir)  # a sweep trial: its result.json
    summary_extra = {
        **headline,
        "rl": {
            "init_null": ACTOR_CRITIC_INIT,
            "probe_rows_per_network": int(probe["inputs"].shape[-2]),
            "onpolicy_null": ONPOLICY_NULL,
            "onpolicy": [
                {"network": int(n), "checkpoint": int(c), "epoch": int(run.epochs[c]), "cmni_onpolicy": _finite(onpolicy.cmni[c, n]),
                 "cmni_scaled_onpolicy": _finite(onpolicy.cmni_scaled[c, n]),
                 "p_onpolicy": _finite(onpolicy.p_permutation[c, n]), "p_init_onpolicy": _finite(onpolicy.p_init[c, n]),
                 **_init_stats(onpolicy.init_null[c, n]), "rows_per_group": dict(zip(("none", "frog", "toad"), map(int, onpolicy.counts[c, n])))}
                for n, c in zip(networks, selected)
            ],  # fmt: skip
        }
    }
    metrics = rl_metrics(run)
    written = write_analysis_outputs(
        out, analysis, epochs=run.epochs, metrics=metrics, params_selected=select_member_params(run.params, selected),
        config_analysis=dataclasses.asdict(config.analysis), metric_names=RL_METRICS, extra_columns=extra, summary_extra=summary_extra,
        training_figure=False, replicates=per_member == 1 and members_are_seeds(rl_run.get("members", [])),
    )  # fmt: skip
    fig_dir = out / "figures"
    turns = metrics["env_turns"][:, 0]
    x, xlabel = (turns, "env turns") if np.isfinite(turns).all() else (run.epochs.astype(float), "update")
    suffix = (lambda n: f"_m{n}") if len(networks) > 1 else (lambda n: "")
    for n, c in zip(networks, selected):
        written.append(
            rl_figures.plot_checkpoint_cmni(
                fig_dir / f"cmni_checkpoints{suffix(n)}.png", x, np.asarray(analysis.result.cmni[:, n]), onpolicy.cmni[:, n],
                p_test=analysis.p_init[:, n], p_onpolicy=onpolicy.p_init[:, n],  # the dots: the verdict against random init
                init_null=analysis.init_null[n] if analysis.init_null.shape[1] else None, selected=float(x[c]), xlabel=xlabel,
                title="CMNI across checkpoints on both probe sets" + (f" (network {n})" if len(networks) > 1 else ""),
            )
        )  # fmt: skip
    # The learning curve: the agents' return in the fixed-key report games of every
    # checkpoint (the baselines' games), not the training games' (rl_metrics.jsonl).
    members = len(rl_run.get("members", [])) or max(1, len(networks) // per_member)
    baselines = read_json(run.run_dir / BASELINES_FILE)
    scripted = {label: baseline(baselines, policy, "return", members) for policy, label in SCRIPTED_LINES}
    written.append(
        rl_figures.plot_learning_curve(
            fig_dir / "learning_curve.png", metrics["env_turns"][:, 0], metrics["return_agent"][:, ::per_member],
            behaviour=baseline(baselines, "behaviour", "return", members), oracle=baseline(baselines, "oracle", "return", members),
            scripted={k: v for k, v in scripted.items() if v is not None},
        )
    )  # fmt: skip
    return RunAnalysis(run, config, analysis, out, written, Path(dataset.path), int(test.sum()), time.perf_counter() - start, onpolicy)


ONPOLICY_NULL = (
    "p_onpolicy: game-wise permutation null (each probe game's group labels shifted circularly by a random offset); "
    "p_init_onpolicy: rank among the random initialisations of probe set (a)'s init null on the same probe rows"
)


def probe_games(rl_run: dict, run_dir) -> int:
    """The on-policy probe's games per checkpoint (rl_run.json probe.games): its rows are
    turn-major, row = t * games + g, which the game-wise null needs."""
    games = (rl_run.get("probe") or {}).get("games")
    if not isinstance(games, int) or games < 1:
        raise TrainError(f"{run_dir}/rl_run.json has no probe.games (a positive integer), which the on-policy permutation null needs; got {games!r}")
    return games


def _init_stats(values) -> dict:
    """summary.json's view of one model's init-null CMNIs on its on-policy rows."""
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    if not finite.size:
        return {"init_onpolicy_seeds": int(values.size)}
    return {"init_onpolicy_seeds": int(values.size), "init_onpolicy_mean": float(finite.mean()), "init_onpolicy_std": float(finite.std())}


def _finite(value):
    value = float(value)
    return value if np.isfinite(value) else None
