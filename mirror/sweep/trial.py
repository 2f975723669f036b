"""One trial's files, cut from its population's run and analysis.

    SWEEP_DIR/trials/t<index>-<id>/
        config.yaml, members.json, dataset.json   as a normal run (a single model)
        population.json   where its checkpoints live: the population run and member index
        metrics.jsonl, test_metrics.json          its own per-epoch and test metrics
        cmni.csv, neurons.csv, circuits.csv, weights.csv, figures/, report.md
        summary.json      as a run's, plus `variant_init_null`: variant -> its random-init draws
        result.json       its summary row; written last, so it marks the trial finished

The trial's epochs end where its member stopped (early stopping or divergence); later
checkpoints of the population hold its frozen parameters and are not part of the trial.
`mirror.runs.checkpoints.load_run` reads a trial directory as a normal single run.
"""

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import yaml

from mirror.analysis.analyse import CheckpointAnalysis
from mirror.runs.checkpoints import (
    CONFIG_FILE,
    DATASET_FILE,
    MEMBERS_FILE,
    METRICS_FILE,
    POPULATION_FILE,
    TEST_METRICS_FILE,
    LoadedRun,
    split_epoch_record,
    write_json_atomic,
    write_text_atomic,
)
from mirror.runs.outputs import write_analysis_outputs
from mirror.runs.report import write_report
from mirror.runs.train_run import SINGLE_MODEL_KEYS
from mirror.sweep.spec import Trial

RESULT_FILE = "result.json"


def trial_dir(sweep_dir: Path, trial: Trial) -> Path:
    return Path(sweep_dir) / "trials" / f"t{trial.index:04d}-{trial.trial_id}"


def finished_result(sweep_dir: Path, trial: Trial) -> dict | None:
    """The trial's result row if it finished (in this or an earlier sweep run), else None."""
    for path in (Path(sweep_dir) / "trials").glob(f"*-{trial.trial_id}/{RESULT_FILE}"):
        return json.loads(path.read_text())
    return None


def member_epochs(run: LoadedRun, member: int) -> int:
    """How many of the population's checkpoints belong to the member: up to the epoch it
    stopped, or the last good one before it diverged."""
    stopped, diverged = run.metric("stopped")[:, member], run.metric("diverged")[:, member]
    for c in range(len(run.epochs)):
        if diverged[c] == 1:
            return max(c, 1)  # checkpoint c holds the frozen state of checkpoint c - 1
        if stopped[c] == 1:
            return c + 1
    return len(run.epochs)


def _member_slice(a, member: int, checkpoints: int):
    """[checkpoints, members, ...] -> [checkpoints', 1, ...]."""
    return np.asarray(a)[:checkpoints, member : member + 1]


def member_analysis(a: CheckpointAnalysis, member: int, checkpoints: int) -> CheckpointAnalysis:
    """One member's share of a population's analysis, over its first `checkpoints`."""
    result = a.result._replace(**{f: _member_slice(getattr(a.result, f), member, checkpoints) for f in a.result._fields if f != "counts"})
    moments = a.moments._replace(**{f: np.asarray(getattr(a.moments, f))[member : member + 1] for f in a.moments._fields if f != "counts"})
    return dataclasses.replace(
        a,
        result=result,
        cmni_clean=_member_slice(a.cmni_clean, member, checkpoints),
        cmni_leak=_member_slice(a.cmni_leak, member, checkpoints),
        p_permutation=_member_slice(a.p_permutation, member, checkpoints),
        init_null=np.asarray(a.init_null)[member : member + 1],
        p_init=_member_slice(a.p_init, member, checkpoints),
        selected=np.asarray(a.selected)[member : member + 1],
        moments=moments,
        roles=np.asarray(a.roles)[member : member + 1],
        neuron_p={k: np.asarray(v)[member : member + 1] for k, v in a.neuron_p.items()},
        mirror_rank=np.asarray(a.mirror_rank)[member : member + 1],
        circuits=[a.circuits[member]],
        zscores=[a.zscores[member]],
        variants={k: _member_slice(v, member, checkpoints) for k, v in a.variants.items()},
        variant_p_permutation={k: _member_slice(v, member, checkpoints) for k, v in a.variant_p_permutation.items()},
        variant_init_null={k: np.asarray(v)[member : member + 1] for k, v in a.variant_init_null.items()},
        variant_p_init={k: _member_slice(v, member, checkpoints) for k, v in a.variant_p_init.items()},
    )


def _scalar(value, member: int):
    return value[member] if isinstance(value, list) else value


def write_trial(
    sweep_dir: Path,
    trial: Trial,
    member: int,
    run: LoadedRun,
    analysis: CheckpointAnalysis,
    test_metrics: dict | None,
    *,
    figures: bool,
    analysis_index: int | None = None,
) -> dict:
    """Write the trial's directory (result.json last) and return its result row. `member`
    indexes the population run; `analysis_index` the analysis (default: the same)."""
    out = trial_dir(sweep_dir, trial)
    out.mkdir(parents=True, exist_ok=True)
    n = member_epochs(run, member)
    epochs = run.epochs[:n]
    write_text_atomic(out / CONFIG_FILE, yaml.safe_dump(trial.config.to_dict(), sort_keys=True))
    write_json_atomic(out / MEMBERS_FILE, [run.members[member].to_dict()])
    write_json_atomic(out / DATASET_FILE, json.loads((run.run_dir / DATASET_FILE).read_text()))
    write_json_atomic(out / POPULATION_FILE, {"run_dir": str(run.run_dir), "member": member, "checkpoints": n})
    lines = []
    for meta in run.metadata[:n]:  # the metrics part of each record, as a single run's metrics.jsonl
        line, _ = split_epoch_record({k: _scalar(v, member) for k, v in meta.items()})
        lines.append(json.dumps({**line, "members": 1, "population": False}) + "\n")
    write_text_atomic(out / METRICS_FILE, "".join(lines))
    if test_metrics is not None:
        entry = dict(test_metrics["members"][member], member=0)
        entry["last"] = {**entry["last"], "epoch": int(epochs[-1])}  # the member's params froze there
        single = {k: entry[k] for k in SINGLE_MODEL_KEYS if k in entry}
        write_json_atomic(out / TEST_METRICS_FILE, {**test_metrics, "members": [entry], **single})

    mine = member_analysis(analysis, member if analysis_index is None else analysis_index, n)
    metrics = {k: run.metric(k)[:n, member : member + 1] for k in ("val_loss", "val_loss_data", "val_accuracy")}
    params = jax.tree.map(lambda a: np.asarray(a)[int(mine.selected[0]), member : member + 1], run.params)
    config_analysis = dataclasses.asdict(trial.config.analysis)
    # The random-init draws per variant, so the verdicts over a setting's seeds (trials)
    # can be tested later (mirror.sweep.compare); one trial alone is one seed.
    init_draws = {"variant_init_null": {k: [float(x) for x in np.asarray(v)[0]] for k, v in mine.variant_init_null.items()}}
    write_analysis_outputs(
        out, mine, epochs=epochs, metrics=metrics, params_selected=params, config_analysis=config_analysis, figures=figures,
        summary_extra=init_draws,
    )  # fmt: skip
    if test_metrics is not None:
        write_report(out)
    result = result_row(trial, out, mine, epochs, metrics, test_metrics and entry, run.metadata[n - 1], member)
    write_json_atomic(out / RESULT_FILE, result)
    return result


def trial_identity(trial: Trial, out: Path) -> dict:
    """The columns every trial's summary row starts with (supervised and RL)."""
    return {
        "trial": trial.index,
        "trial_id": trial.trial_id,
        "dir": str(out.relative_to(out.parents[1])),
        "fields": trial.fields,
        "seed": trial.config.seed,
    }


def settings_row(trial: Trial, out: Path) -> dict:
    """The trial's identity and settings: the first columns of its summary row."""
    c = trial.config
    mlp = c.model.kind == "mlp"  # a transformer's shape is in its swept model.transformer.* columns
    return {
        **trial_identity(trial, out),
        "hidden_layers": c.model.hidden_layers if mlp else None,
        "width": c.model.width if mlp else None,
        "capacity": c.model.hidden_layers * c.model.width if mlp else None,
        "dropout": c.model.dropout,
        "lr": c.train.lr,
        "l2": c.train.l2,
        "batch_size": c.train.batch_size,
        "dependency": float(c.env_params.dependency),
        "veil": float(c.env_params.veil),
    }


METRIC_COLUMNS = (
    "epochs", "diverged", "best_epoch", "best_val_loss", "accuracy", "peak_cmni", "peak_epoch",
    "final_cmni", "cmni_at_best", "p_value", "p_value_peak", "p_init", "p_init_peak",
)  # fmt: skip


def write_diverged_trial(sweep_dir: Path, trial: Trial) -> dict:
    """A trial whose every epoch diverged (no checkpoint): its config and a result row
    that says so, so the sweep goes on and does not retry it."""
    out = trial_dir(sweep_dir, trial)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / CONFIG_FILE, yaml.safe_dump(trial.config.to_dict(), sort_keys=True))
    result = {**settings_row(trial, out), **{k: None for k in METRIC_COLUMNS}, "epochs": 0, "diverged": True}
    write_json_atomic(out / RESULT_FILE, result)
    return result


def result_row(trial: Trial, out: Path, a: CheckpointAnalysis, epochs, metrics, test_entry, last_meta: dict, member: int) -> dict:
    """The trial's row of summary.csv."""
    cmni = np.asarray(a.result.cmni)[:, 0]
    finite = np.isfinite(cmni)
    peak = int(np.nanargmax(np.where(finite, cmni, -np.inf))) if finite.any() else 0
    best_epoch = _scalar(last_meta["best_epoch"], member)
    best = int(np.flatnonzero(epochs == best_epoch)[0]) if best_epoch in epochs else len(epochs) - 1
    accuracy = None
    if test_entry:
        accuracy = (test_entry if "accuracy" in test_entry else test_entry["last"])["accuracy"]

    def num(value):
        value = float(value)
        return value if np.isfinite(value) else None

    return {
        **settings_row(trial, out),
        "epochs": int(epochs[-1]),
        "diverged": bool(_scalar(last_meta["diverged"], member)),
        "best_epoch": int(epochs[best]),
        "best_val_loss": num(metrics["val_loss"][best, 0]),
        "accuracy": accuracy,
        "peak_cmni": num(cmni[peak]),
        "peak_epoch": int(epochs[peak]),
        "final_cmni": num(cmni[-1]),
        "cmni_at_best": num(cmni[best]),
        "p_value": num(a.p_permutation[best, 0]),
        "p_value_peak": num(a.p_permutation[peak, 0]),
        "p_init": num(a.p_init[best, 0]),
        "p_init_peak": num(a.p_init[peak, 0]),
    }
