"""`mirror rl`: self-play PPO, checkpoints, CMNI and the report (see `mirror.runs.rl_experiment`)."""

import json
from pathlib import Path

from mirror.base.errors import UsageError
from mirror.base.files import has_content, lock_run_dir
from mirror.base.sharding import leads, population_mesh
from mirror.cli.train import default_run_dir
from mirror.rl.config import rl_settings
from mirror.rl.population import rl_members
from mirror.rl.stakes import stakes_by_dependency, stakes_table
from mirror.runs.config import load_config
from mirror.runs.rl_experiment import format_rl_headline, run_rl_experiment
from mirror.runs.rl_run import resume_rl_config

RL_QUICKSTART = "configs/rl_quickstart.yaml"
HELP = (
    "Train self-play PPO agents (a population when rl.population_* lists are set) with a "
    "checkpoint every rl.checkpoint_every updates, then analyse every checkpoint. The default "
    "config is the stakes quickstart: selfish (w = 0) and prosocial (w = 1) agents at D = 1 in a "
    "game where a stalled partner is worth helping; --env.preset default plays the default game. "
    "Any field can be overridden: --rl.updates 40 --env.dependency 0.5. Writes "
    "runs/<name>-<date>-<time>/ with rl_metrics.jsonl, metrics.jsonl, baselines.json, "
    "deviation.json, checkpoints/, cmni.csv, figures/, report.md and summary.json."
)


def register(sub) -> None:
    rl = sub.add_parser("rl", help="self-play PPO with CMNI on every checkpoint (default: configs/rl_quickstart.yaml)", description=HELP)
    rl.add_argument("--config", help=f"YAML config (default: {RL_QUICKSTART})")
    rl.add_argument("--run-dir", help="directory for the run (default: runs/<name>-<date>-<time>)")
    rl.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted RL run")
    rl.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: jax.distributed.initialize() from the cluster's environment (Slurm, Cloud TPU, ...); "
        "the members are split over every process's devices, process 0 writes the run's files and analyses it, "
        "all processes save each checkpoint together; needs --run-dir or --resume",
    )
    rl.set_defaults(func=rl_command, accepts_overrides=True)
    register_stakes(sub)


def default_rl_config_path() -> Path:
    """configs/rl_quickstart.yaml from the working directory, else from the repository."""
    here = Path(RL_QUICKSTART)
    return here if here.is_file() else Path(__file__).resolve().parents[2] / RL_QUICKSTART


def rl_target(args, overrides):
    """(config, run directory) for `--resume RUN_DIR` or a new run, checked before any work."""
    if args.resume:
        if args.config or args.run_dir or overrides:
            raise UsageError("--resume continues a run with its own config.yaml; drop --config, --run-dir and overrides")
        return resume_rl_config(args.resume), Path(args.resume)
    if args.distributed and not args.run_dir:
        raise UsageError("--distributed needs --run-dir (or --resume): every process must name the same run directory")
    config = load_config(args.config or default_rl_config_path(), list(overrides))
    rl_members(config)  # every rl field, and the members' env params, checked now
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config.name)
    if has_content(run_dir):
        raise UsageError(f"{run_dir} already exists and is not empty; use --resume {run_dir} to continue it")
    return config, run_dir


def rl_command(args, overrides=()) -> int:
    import contextlib

    config, run_dir = rl_target(args, overrides)  # by every process before any writes (initialize waits for all)
    mesh = distributed_mesh() if getattr(args, "distributed", False) else None
    with lock_run_dir(run_dir) if leads(mesh) else contextlib.nullcontext():  # writable, one process per run, before any work
        print(f"run: {run_dir.absolute()}")
        headline = run_rl_experiment(config, run_dir, resume=bool(args.resume), mesh=mesh)
    if headline is not None:
        print(format_rl_headline(headline))
    if mesh is not None:
        import jax

        jax.distributed.shutdown()  # a barrier: process 0 returns once the others are done, and they wait for its analysis
    return 0


DISTRIBUTED_WAIT_S = 7 * 24 * 3600  # how long the processes wait for each other at the end (process 0 analyses)


def distributed_mesh():
    """jax.distributed.initialize() from the cluster's environment (Slurm, Cloud TPU, Open
    MPI, Kubernetes, ...), then the `pop` mesh over every process's devices."""
    import jax

    jax.distributed.initialize(shutdown_timeout_seconds=DISTRIBUTED_WAIT_S)
    return population_mesh(jax.devices())


STAKES_HELP = (
    "Play the scripted policies (hop_jump, the oracle, helper and lone helper on each base, a "
    "frozen partner) in thousands of whole episodes for each D, and report the regime's "
    "stakes with 95%% intervals over games: the cooperative surplus, the help incentive and "
    "the partner stake (own score per 100 decisions, against the selfish base), and the share "
    "of decisions at energy 0. Env fields come from --config (default: configs/rl_quickstart.yaml) "
    "and --env.FIELD VALUE overrides (--env.preset stakes); K and M of the helper from "
    "rl.helper_max_partner_energy and rl.helper_min_own_energy."
)


def register_stakes(sub) -> None:
    p = sub.add_parser("stakes", help="does the partner matter? regime diagnostics of scripted pairs per D", description=STAKES_HELP)
    p.add_argument("--config", help="YAML config whose env (and rl helper K, M) to use (default: configs/rl_quickstart.yaml)")
    p.add_argument("--dependency", type=float, nargs="+", default=[0.0, 0.5, 1.0], metavar="D", help="values of D (default: 0 0.5 1)")
    p.add_argument("--games", type=int, default=4096, help="whole episodes per pairing (default 4096)")
    p.add_argument("--seed", type=int, default=0, help="the games' key")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.set_defaults(func=stakes_command, accepts_overrides=True)


def stakes_command(args, overrides=()) -> int:
    import jax

    if args.games < 2:
        raise UsageError(f"--games must be an integer >= 2 (a 95% interval needs two games), got {args.games}")
    bad = [d for d in args.dependency if not 0.0 <= d <= 1.0]
    if bad:
        raise UsageError(f"--dependency values must be in [0, 1], got {bad}")
    config = load_config(args.config or default_rl_config_path(), list(overrides))
    settings = rl_settings(config)
    results = stakes_by_dependency(
        config.env, args.dependency, jax.random.key(args.seed), args.games,
        settings.helper_max_partner_energy, settings.helper_min_own_energy,
    )
    print(stakes_table(results))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {path}")
    return 0
