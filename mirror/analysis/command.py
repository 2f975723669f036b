"""`mirror cmni RUN_DIR`: CMNI of every checkpoint (and member) of a training run, the null
baselines, and the neuron, circuit and figure reports of the selected checkpoint."""

import dataclasses
import time
from pathlib import Path

import numpy as np

from mirror.commands import UsageError
from mirror.config import AnalysisConfig, ConfigError, load_config, parse_overrides

HELP = (
    "Analyse every checkpoint of a run from `mirror train`. Analysis fields can be overridden: "
    "--analysis.permutations 1000 --analysis.checkpoint last --analysis.leak_scenario true. "
    "Writes cmni.csv, neurons.csv, circuits.csv, weights.csv, summary.json and figures/ "
    "(default: RUN_DIR/analysis)."
)


def register(sub) -> None:
    cmd = sub.add_parser("cmni", help="CMNI of every checkpoint of a run, null baselines, neurons, circuits, figures", description=HELP)
    cmd.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `mirror train`")
    cmd.add_argument("--out", help="output directory (default: RUN_DIR/analysis)")
    cmd.add_argument("--config", help="YAML file whose `analysis:` section replaces the run's")
    # Declared (not just tolerated) so that `--analysis.x VALUE` may come before RUN_DIR.
    for field in dataclasses.fields(AnalysisConfig):
        cmd.add_argument(f"--analysis.{field.name}", dest=f"analysis__{field.name}", metavar="VALUE", help=f"default {field.default!r}")
    cmd.set_defaults(func=cmni_command, accepts_overrides=True)


def declared_overrides(args) -> list[str]:
    return [f"--analysis.{k.split('__', 1)[1]}={v}" for k, v in vars(args).items() if k.startswith("analysis__") and v is not None]


def analysis_config(run_config, config_file: str | None, overrides: list[str]):
    """The run's config with its `analysis` section replaced from a file and/or overrides."""
    extra = parse_overrides(overrides)
    file_values = {}
    if config_file:
        file_values = dataclasses.asdict(load_config(config_file).analysis)
    other = sorted(set(extra) - {"analysis"})
    if other:
        raise ConfigError(f"mirror cmni only takes analysis.* overrides; got {', '.join(other)} (the run fixes the rest)")
    values = run_config.to_dict()
    values["analysis"] = {**values["analysis"], **file_values, **extra.get("analysis", {})}
    return load_config(None, values)


def cmni_command(args, overrides) -> int:
    from mirror.agents.mlp import unit_masks
    from mirror.analysis.analyse import ANALYSIS_STEPS, analyse_checkpoints, select_member_params
    from mirror.analysis.outputs import write_analysis_outputs
    from mirror.data.split import TEST
    from mirror.data.store import load_dataset
    from mirror.progress import progress_bar
    from mirror.train.checkpoints import TrainError, load_run

    start = time.perf_counter()
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"RUN_DIR {run_dir} is not a directory")
    try:
        run = load_run(run_dir)
        config = analysis_config(run.config, args.config, declared_overrides(args) + list(overrides))
        which = config.analysis.checkpoint
        selected = np.asarray([run.checkpoint_index(which, m) for m in range(len(run.members))])
    except TrainError as err:
        raise UsageError(str(err)) from None
    dataset = load_dataset(run.dataset_path)
    test = dataset.splits == TEST
    inputs, scenarios, idle = dataset.inputs[test], dataset.scenarios[test], dataset.idle_shown[test]
    checkpoints, members = len(run.epochs), len(run.members)
    print(f"run: {run.run_dir} ({checkpoints} checkpoints x {members} member(s), epochs {run.epochs.min()}..{run.epochs.max()})")
    print(f"test rows: {int(test.sum()):,} from {dataset.path}")

    done = [0]
    with progress_bar("cmni", total=ANALYSIS_STEPS, unit=" steps") as advance:

        def step(name):
            done[0] += 1
            advance(done[0])

        analysis = analyse_checkpoints(
            config.seed, run.params, unit_masks(run.widths, run.padded_widths), run.widths,
            inputs, scenarios, idle, selected, config.analysis,
            activation=config.model.activation, kernel_init=config.model.kernel_init, progress=step,
        )  # fmt: skip
    metrics = {k: run.metric(k) for k in ("val_loss", "val_loss_data", "val_accuracy")}
    out = Path(args.out) if args.out else run.run_dir / "analysis"
    written = write_analysis_outputs(
        out, analysis, epochs=run.epochs, metrics=metrics, params_selected=select_member_params(run.params, selected),
        config_analysis=dataclasses.asdict(config.analysis),
    )  # fmt: skip
    print(format_summary(analysis, run.epochs))
    timing = ", ".join(f"{k} {v:.2f} s" for k, v in analysis.timings.items())
    print(f"wrote {len(written)} files to {out} in {time.perf_counter() - start:.1f} s ({timing})")
    return 0


def format_summary(a, epochs) -> str:
    counts = ", ".join(f"{n} {c:,}" for n, c in zip(("none", "frog", "toad", "both"), a.group_counts))
    lines = [f"rows per group: {counts}"]
    if np.any(np.asarray(a.group_counts)[:3] == 0):
        lines.append("warning: a CMNI group has no test rows, so its means and the CMNI are NaN")
    cmni = np.asarray(a.result.cmni)
    for m in range(cmni.shape[1]):
        c = int(a.selected[m])
        peak = int(np.nanargmax(cmni[:, m])) if np.isfinite(cmni[:, m]).any() else 0
        p = a.p_permutation[c, m]
        lines.append(
            f"member {m}: selected epoch {int(epochs[c])}: CMNI {cmni[c, m]:.6f} (leak {a.cmni_leak[c, m]:.6f}, "
            f"permutation p {p:.3f}); peak CMNI {cmni[peak, m]:.6f} at epoch {int(epochs[peak])}"
        )
        if a.init_null.shape[1]:
            lines.append(f"  random init over {a.init_null.shape[1]} seeds: CMNI {a.init_null[m].mean():.6f} +- {a.init_null[m].std():.6f}")
        found = [f"{h['hub']} {h['circuit']} -> {h['action']}" for h in a.circuits[m] if h["circuit"]]
        lines.append(f"  circuits: {', '.join(found) or 'none'}")
    return "\n".join(lines)
