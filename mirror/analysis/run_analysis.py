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

import numpy as np

from mirror.agents.mlp import unit_masks
from mirror.analysis.analyse import CheckpointAnalysis, analyse_checkpoints, select_member_params
from mirror.analysis.outputs import write_analysis_outputs
from mirror.config import Config, ConfigError, load_config, parse_overrides
from mirror.errors import UsageError
from mirror.files import require_writable


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
    run: object  # mirror.train.checkpoints.LoadedRun
    config: Config  # the run's config with the analysis section used
    analysis: CheckpointAnalysis
    out_dir: Path
    written: list  # paths of the files written
    dataset_path: Path
    test_rows: int
    wall_s: float


def analyse_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    config_file: str | None = None,
    overrides: list[str] = (),
    progress: Callable[[str], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> RunAnalysis:
    """Analyse every checkpoint of the run in `run_dir` and write the files to `out_dir`
    (default RUN_DIR/analysis). `config_file` / `overrides` replace analysis fields;
    `progress(step_name)` follows the analysis steps, `log(line)` gets what was read.
    Raises TrainError when `run_dir` is not a run or lacks the selected checkpoint."""
    from mirror.data.split import TEST
    from mirror.data.store import load_dataset
    from mirror.train.checkpoints import load_run

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
    analysis = analyse_checkpoints(
        config.seed, run.params, unit_masks(run.widths, run.padded_widths), run.widths,
        inputs, scenarios, idle, selected, config.analysis,
        activation=config.model.activation, kernel_init=config.model.kernel_init, progress=progress,
    )  # fmt: skip
    metrics = {k: _metric_or_nan(run, k) for k in ("val_loss", "val_loss_data", "val_accuracy")}
    written = write_analysis_outputs(
        out, analysis, epochs=run.epochs, metrics=metrics, params_selected=select_member_params(run.params, selected),
        config_analysis=dataclasses.asdict(config.analysis),
    )  # fmt: skip
    return RunAnalysis(run, config, analysis, out, written, Path(dataset.path), int(test.sum()), time.perf_counter() - start)


def _metric_or_nan(run, name: str) -> np.ndarray:
    """[checkpoints, members] of a supervised metric; NaN for runs without it (RL runs
    measure returns, not validation losses)."""
    if all(name in meta for meta in run.metadata):
        return run.metric(name)
    return np.full((len(run.epochs), len(run.members)), np.nan)
