"""Running a sweep: populations trained on a `pop` mesh, analysed, cut into trials.

    SWEEP_DIR/plan.json            every trial: index, id, swept fields, directory
    SWEEP_DIR/populations/<id>/    a population run (`mirror train` layout), all members
    SWEEP_DIR/trials/t<i>-<id>/    one trial (see `mirror.sweep.trial`)
    SWEEP_DIR/summary.csv, figures/, report.md   (see `mirror.sweep.summary`)

Per population: its trials' W&B runs open (see `mirror.runs.live_tracking`), its dataset is
built or reused from the cache (one per distinct env and data setting), the population trains
(resuming from its last checkpoint when a run was killed; each epoch is logged to the
trials' W&B runs as it ends), every checkpoint of every member is analysed at once, and each trial's files are
written. A trial counts as finished once its result.json exists; re-running the sweep
skips finished trials, so a killed sweep resumes without redoing or losing work.
"""

import json
import shutil
import time
from pathlib import Path
from typing import Callable

import jax
import numpy as np

from mirror.agents.mlp import unit_masks
from mirror.analysis.analyse import analyse_checkpoints
from mirror.analysis.cmni import analysed_widths
from mirror.base.sharding import population_mesh
from mirror.data.pipeline import build_dataset
from mirror.data.split import TEST
from mirror.runs.analysis import analyse_run
from mirror.runs.checkpoints import CONFIG_FILE, TrainError, load_run, write_json_atomic
from mirror.runs.live import EpochCMNI
from mirror.runs.live_tracking import LiveTracking
from mirror.runs.rl_run import rl_run
from mirror.runs.tracking import open_member_trackers
from mirror.runs.train_run import train_run
from mirror.sweep.plan import Population, populations, shard_trials
from mirror.sweep.rl_trial import cmni_outcomes, finish_rl_trial, init_rank_p, scaled_outcomes, write_rl_trial_files
from mirror.sweep.spec import Sweep
from mirror.sweep.trial import finished_result, member_epochs, trial_dir, write_diverged_trial, write_trial

Log = Callable[[str], None]


def write_plan(sweep: Sweep, sweep_dir: Path) -> None:
    plan = {
        "name": sweep.name,
        "trials": len(sweep.trials),
        "swept": sweep.swept,
        "max_population": sweep.max_population,
        "entries": [
            {"trial": t.index, "trial_id": t.trial_id, "fields": t.fields, "dir": str(trial_dir(sweep_dir, t).relative_to(sweep_dir))}
            for t in sweep.trials
        ],
    }
    write_json_atomic(sweep_dir / "plan.json", plan)


def run_sweep(sweep: Sweep, sweep_dir: str | Path, *, shard=(0, 1), mesh=None, log: Log = print, advance=None) -> dict:
    """Train and analyse every unfinished trial of `shard`; returns counts and timings.
    `advance(n)` reports trials finished so far (for a progress bar)."""
    sweep_dir = Path(sweep_dir).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_plan(sweep, sweep_dir)
    mesh = mesh if mesh is not None else population_mesh()
    mine = shard_trials(sweep.trials, sweep.max_population, shard)
    todo = [t for t in mine if finished_result(sweep_dir, t) is None]
    unfinished = {t.index for t in todo}
    if sweep.mode == "rl":
        # RL populations are cut from all the shard's trials, so a population killed after
        # training keeps its id: its finished run is reused and only its unfinished trials
        # are analysed (run_rl_population skips the others).
        pops = [p for p in populations(mine, sweep.max_population, mesh.size) if any(t.index in unfinished for t in p.trials)]
    else:
        pops = populations(todo, sweep.max_population, mesh.size)
    log(
        f"sweep {sweep.name}: {len(sweep.trials)} trials; shard {shard[0]}/{shard[1]} owns {len(mine)}, "
        f"{len(mine) - len(todo)} already finished; {len(todo)} to run in {len(pops)} population(s) "
        f"on {mesh.size} device(s) ({mesh.devices.flat[0].platform})"
    )
    start, done = time.perf_counter(), len(mine) - len(todo)
    if advance:
        advance(done)
    for k, population in enumerate(pops):
        shape = population_shape(population)
        log(
            f"population {k + 1}/{len(pops)}: {len(population.trials)} trial(s)"
            + (f" + {population.padding} padding" if population.padding else "")
            + f", {shape}, trials "
            + ", ".join(str(t.index) for t in population.trials)
        )
        if population.is_rl:
            run_rl_population(population, sweep, sweep_dir, log)
        else:
            run_population(population, sweep, sweep_dir, mesh, log)
        done += sum(1 for t in population.trials if t.index in unfinished)
        if advance:
            advance(done)
    return {"owned": len(mine), "ran": len(todo), "populations": len(pops), "wall_s": time.perf_counter() - start}


def population_shape(population: Population) -> str:
    """The population's architecture in a few words (for the log)."""
    if population.is_rl:
        return "RL"
    model = population.config.model
    if model.kind == "transformer":
        t = model.transformer
        return f"transformer depth {t.depth}, d_model {t.d_model}, {t.heads} heads, mlp_ratio {t.mlp_ratio}"
    return f"hidden widths up to {max(max(m.widths) for m in population.members)}"


def run_population(population: Population, sweep: Sweep, sweep_dir: Path, mesh, log: Log) -> list[dict]:
    """Train and analyse one population. Its trials' W&B runs open first (before the
    dataset) and follow training live; each gets its tables and figures at the end."""
    live = open_trial_tracking(population, sweep, sweep_dir)
    try:
        rows = _train_and_analyse(population, sweep, sweep_dir, mesh, log, live)
        live.log_results([(trial_dir(sweep_dir, t), 0) for t in population.trials])
        for tracker, row in zip(live.trackers.trackers, rows):
            tracker.summary({k: v for k, v in row.items() if isinstance(v, (int, float, bool))})
    except BaseException:
        live.finish(exit_code=1)
        raise
    live.finish()
    return rows


def open_trial_tracking(population: Population, sweep: Sweep, sweep_dir: Path):
    """One tracker per trial of the population (padding members get none), writing into
    the trial's directory."""
    tracking = population.config.tracking
    runs = [
        (f"{sweep.name}-t{t.index:04d}", {**t.config.to_dict(), "sweep_fields": t.fields}, trial_dir(sweep_dir, t))
        for t in population.trials
    ]
    trackers = open_member_trackers(tracking, runs, group=tracking.group or sweep.name, job_type="trial")
    return LiveTracking(trackers, sweep_dir / "populations" / population.population_id)


def _train_and_analyse(population: Population, sweep: Sweep, sweep_dir: Path, mesh, log: Log, live) -> list[dict]:
    config = population.config
    run_dir = live.run_dir
    resume = (run_dir / CONFIG_FILE).is_file()
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)  # killed before its run files were written: it holds nothing
    dataset, reused = build_dataset(config)
    log(f"  dataset {dataset.path.name} ({'cached' if reused else 'generated'}, {len(dataset.labels):,} rows)")
    if live.trackers.enabled:
        live.epoch_cmni = EpochCMNI(config, dataset, [m.widths for m in population.members])
    result = train_run(
        config, run_dir, dataset, resume=resume, members=list(population.members), mesh=mesh,
        log=lambda line: log("  " + line), on_epoch=live.on_epoch,
    )  # fmt: skip
    if not result.last_epoch:  # every member diverged in its first epoch (e.g. a learning rate far too high)
        log(f"  every member diverged in epoch 1: trials {[t.index for t in population.trials]} recorded as diverged")
        return [write_diverged_trial(sweep_dir, trial) for trial in population.trials]
    return analyse_population(population, sweep, sweep_dir, run_dir, dataset, result.test_metrics, log)


def analyse_population(population: Population, sweep: Sweep, sweep_dir: Path, run_dir: Path, dataset, test_metrics, log: Log) -> list[dict]:
    """Every checkpoint of every member at once (in member chunks of at most
    ANALYSIS_MODELS models, which bounds memory), then one directory per trial."""
    start = time.perf_counter()
    run = load_run(run_dir)
    config = population.config
    real = len(population.trials)  # padding members are not analysed
    selected = []
    for m in range(real):
        last = member_epochs(run, m) - 1  # the member's own last checkpoint
        try:
            selected.append(min(run.checkpoint_index(config.analysis.checkpoint, m), last))
        except TrainError:  # diverged before any finite validation loss
            selected.append(last)
    if test_metrics is None and (run_dir / "test_metrics.json").is_file():
        test_metrics = json.loads((run_dir / "test_metrics.json").read_text())
    test = dataset.splits == TEST
    inputs, scenarios, idle_shown = dataset.inputs[test], dataset.scenarios[test], dataset.idle_shown[test]
    widths, padded = analysed_widths(run.params, run.widths, run.padded_widths)
    masks = unit_masks(widths, padded)
    per_call = max(1, ANALYSIS_MODELS // len(run.epochs))
    rows = []
    for lo in range(0, real, per_call):
        chunk = slice(lo, min(real, lo + per_call))
        analysis = analyse_checkpoints(
            config.seed, jax.tree.map(lambda a: a[:, chunk], run.params), [m[chunk] for m in masks], widths[chunk],
            inputs, scenarios, idle_shown, np.asarray(selected[chunk]), config.analysis,
            activation=config.model.activation, kernel_init=config.model.kernel_init, labels=dataset.labels[test],
        )  # fmt: skip
        rows += [
            write_trial(sweep_dir, trial, lo + j, run, analysis, test_metrics, figures=sweep.trial_figures, analysis_index=j)
            for j, trial in enumerate(population.trials[chunk])
        ]
    log(f"  analysed {len(run.epochs)} checkpoints x {real} members in {time.perf_counter() - start:.1f} s")
    return rows


def train_rl_population(config, run_dir: Path, *, resume: bool, log: Log) -> None:
    """The one call into the RL trainer: an RL run of `config` (its rl.population_* lists
    give the members) in `run_dir`, in the RL_CONTRACT layout (checkpoints/, metrics.jsonl,
    rl_run.json, baselines.json, members.json, dataset.json).
    """
    rl_run(config, run_dir, resume=resume, log=log)


def analyse_rl_trial(out: Path, log: Log) -> dict:
    """CMNI of the trial's networks at every checkpoint on both probe sets (tables and
    figures in the trial's directory), as `cmni_outcomes` and, for the last checkpoint,
    `scaled_outcomes` (means over the trial's networks)."""
    done = analyse_run(out, out)
    per_network = np.asarray(done.analysis.result.cmni, np.float64)  # [checkpoints, networks]
    cmni = per_network.mean(axis=1)
    p_init = init_rank_p(per_network[-1], done.analysis.init_null)  # the final checkpoint against random init, probe set (a)
    onpolicy = p_init_onpolicy = scaled_onpolicy = None  # no probe set (b), or its rows miss a CMNI group in every network
    if done.onpolicy is not None:
        final = np.asarray(done.onpolicy.cmni[-1], np.float64)
        onpolicy = float(final[np.isfinite(final)].mean()) if np.isfinite(final).any() else None
        p_init_onpolicy = init_rank_p(final, done.onpolicy.init_null[-1])
        scaled_onpolicy = done.onpolicy.cmni_scaled[-1]
    shown = "-" if onpolicy is None else f"{onpolicy:.5f}"
    log(f"  trial {out.name}: CMNI {cmni[-1]:.5f} on probe set (a), {shown} on-policy (b), {len(cmni)} checkpoints")
    # The theory experiment's measures: the last checkpoint (its training length is fixed in advance).
    variants = done.analysis.variants
    scaled = scaled_outcomes(variants["cmni_scaled"][-1], done.analysis.variant_init_null["cmni_scaled"], scaled_onpolicy)
    return {**cmni_outcomes([int(e) for e in done.run.epochs], [float(c) for c in cmni], onpolicy, p_init, p_init_onpolicy), **scaled}


def run_rl_population(population: Population, sweep: Sweep, sweep_dir: Path, log: Log) -> list[dict]:
    """Train one RL population (resuming a killed one), then give every trial its
    directory: its own probe-(a) dataset, its networks' analysis, its result row."""
    run_dir = sweep_dir / "populations" / population.population_id
    resume = (run_dir / CONFIG_FILE).is_file()
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)  # killed before its run files were written: it holds nothing
    train_rl_population(population.config, run_dir, resume=resume, log=lambda line: log("  " + line))
    rows = []
    for member, trial in enumerate(population.trials):  # padding members (after the trials) are dropped
        finished = finished_result(sweep_dir, trial)
        if finished is not None:  # analysed before the sweep was killed
            rows.append(finished)
            continue
        dataset, reused = build_dataset(trial.config, drop_absent_labels=True)  # probe set (a): as `mirror rl`
        log(f"  trial {trial.index}: probe set (a) {dataset.path.name} ({'cached' if reused else 'generated'})")
        out = write_rl_trial_files(sweep_dir, trial, member, run_dir, dataset.manifest, dataset.path)
        rows.append(finish_rl_trial(out, trial, member, run_dir, analyse_rl_trial(out, log)))
    return rows


ANALYSIS_MODELS = 2048  # checkpoints x members per analysis call (~0.5 GB at 3 x 50 units, 200 permutations)
