"""`mirror cmni RUN_DIR`: CMNI of every checkpoint (and member) of a training run, the null
baselines, and the neuron, circuit and figure reports of the selected checkpoint."""

import dataclasses
from pathlib import Path

import numpy as np

from mirror.analysis.analyse import ANALYSIS_STEPS
from mirror.analysis.config import AnalysisConfig
from mirror.base.errors import UsageError
from mirror.runs.analysis import analyse_run
from mirror.runs.checkpoints import TrainError
from mirror.runs.progress import step_bar
from mirror.runs.checkpoints import is_rl_run

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


def cmni_command(args, overrides) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"RUN_DIR {run_dir} is not a directory")
    rl_steps = 1 if is_rl_run(run_dir) else 0  # the on-policy CMNI of an RL run
    with step_bar("cmni", total=ANALYSIS_STEPS + rl_steps) as step:
        try:
            result = analyse_run(
                run_dir, args.out, config_file=args.config, overrides=declared_overrides(args) + list(overrides), progress=step, log=print
            )
        except TrainError as err:
            raise UsageError(str(err)) from None
    print(format_summary(result.analysis, result.run.epochs, result.onpolicy))
    timing = ", ".join(f"{k} {v:.2f} s" for k, v in result.analysis.timings.items())
    print(f"wrote {len(result.written)} files to {result.out_dir} in {result.wall_s:.1f} s ({timing})")
    return 0


def format_summary(a, epochs, onpolicy=None) -> str:
    """What `mirror cmni` prints; onpolicy: an RL run's on-policy CMNI (probe set (b))."""
    counts = ", ".join(f"{n} {c:,}" for n, c in zip(("none", "frog", "toad", "both"), a.group_counts))
    lines = [f"rows per group: {counts}"]
    if np.any(np.asarray(a.group_counts)[:3] == 0):
        lines.append("warning: a CMNI group has no test rows, so its means and the CMNI are NaN")
    cmni = np.asarray(a.result.cmni)
    for m in range(cmni.shape[1]):
        c = int(a.selected[m])
        peak = int(np.nanargmax(cmni[:, m])) if np.isfinite(cmni[:, m]).any() else 0
        p, p_init = a.p_permutation[c, m], a.p_init[c, m]
        lines.append(
            f"member {m}: selected epoch {int(epochs[c])}: CMNI {cmni[c, m]:.6f} (leak {a.cmni_leak[c, m]:.6f}; "
            f"vs random init p {p_init:.3f}, groups differ: permutation p {p:.3f}); peak CMNI {cmni[peak, m]:.6f} at epoch {int(epochs[peak])}"
        )
        if onpolicy is not None:
            lines.append(
                f"  on-policy states (b): CMNI {onpolicy.cmni[c, m]:.6f} (vs random init p {float(onpolicy.p_init[c, m]):.3f}, "
                f"groups differ: game-wise permutation p {onpolicy.p_permutation[c, m]:.3f})"
            )
        if a.init_null.shape[1]:
            lines.append(f"  random init over {a.init_null.shape[1]} seeds: CMNI {a.init_null[m].mean():.6f} +- {a.init_null[m].std():.6f}")
        found = [f"{h['hub']} {h['circuit']} -> {h['action']}" for h in a.circuits[m] if h["circuit"]]
        lines.append(f"  circuits: {', '.join(found) or 'none'}")
    return "\n".join(lines)
