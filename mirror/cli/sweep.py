"""`mirror sweep CONFIG`: train and analyse every trial of a sweep, then summarise it.
`mirror theory SWEEP_DIR`: the pre-registered theory tests on an RL sweep's trials."""

from pathlib import Path

from mirror.analysis.hypotheses import PERMUTATIONS, POWER_DESIGNS, SEED
from mirror.analysis.replication import POWER_DRAWS as REPLICATION_POWER_DRAWS
from mirror.base.errors import UsageError
from mirror.runs.progress import progress_bar
from mirror.runs.report import read_csv
from mirror.runs.tracking import open_tracker, resolve_mode
from mirror.sweep.plan import parse_shard, populations, shard_trials
from mirror.sweep.run import run_sweep
from mirror.sweep.spec import load_sweep
from mirror.sweep.replication import run_replication
from mirror.sweep.summary import write_summary
from mirror.sweep.theory import run_theory

HELP = (
    "Train and analyse every trial of a sweep file (a config plus a `sweep:` section, see "
    "configs/sweep_smoke.yaml), as vmapped populations split over all local devices, then write "
    "SWEEP_DIR/summary.csv, the top/bottom checkpoint tables, figures/ and report.md (and, with at most 6 "
    "settings, comparison.md: the settings side by side, e.g. model.kind mlp against transformer). Re-running "
    "skips finished trials. Base-config fields can be overridden: --data.rows 100000. "
    "With `mode: rl` in the sweep section, trials are self-play PPO runs trained as RL populations "
    "(see configs/sweep_rl_theory.yaml) and summary.csv has the RL columns."
)


def register(sub) -> None:
    cmd = sub.add_parser("sweep", help="a sweep of trials trained as sharded populations, with a summary", description=HELP)
    cmd.add_argument("config", metavar="CONFIG", help="sweep file, e.g. configs/sweep_smoke.yaml")
    cmd.add_argument("--sweep-dir", help="output directory (default: sweeps/<name>)")
    cmd.add_argument("--shard", default="0/1", metavar="i/n", help="run only shard i of n (whole populations, round-robin)")
    cmd.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: jax.distributed.initialize() from the cluster's environment (Slurm, Cloud TPU, ...); "
        "each process runs its own shard on its local devices, process 0 writes the summary",
    )
    cmd.add_argument("--summary-only", action="store_true", help="only rebuild the summary from finished trials")
    cmd.add_argument("--dry-run", action="store_true", help="print the trials and populations, run nothing")
    cmd.set_defaults(func=sweep_command, accepts_overrides=True)

    theory = sub.add_parser("theory", help="the pre-registered theory tests (H1-H6) on an RL sweep directory", description=THEORY_HELP)
    theory.add_argument("sweep_dir", metavar="SWEEP_DIR", help="an RL sweep's directory (sweeps/<name>), finished or partial")
    theory.add_argument("--json", metavar="PATH", help="also write the results' JSON to PATH (SWEEP_DIR/hypotheses.json is always written)")
    theory.add_argument("--permutations", type=int, default=PERMUTATIONS, help=f"permutations or sign flips per test (registered: {PERMUTATIONS})")
    theory.add_argument("--seed", type=int, default=SEED, help=f"seed of the permutations and power simulations (registered: {SEED})")
    theory.add_argument("--power-designs", type=int, default=None,
                        help=f"simulated designs per power evaluation (registered: {POWER_DESIGNS} for the first plan, {REPLICATION_POWER_DRAWS} "
                             "for the replication, the default of each; 0: no power)")  # fmt: skip
    theory.add_argument("--plan", choices=("first", "replication"), default="first",
                        help="which registered plan: first (docs/theory_experiment.md, the default) or replication (docs/theory_replication.md)")
    theory.set_defaults(func=theory_command)


THEORY_HELP = (
    "Test the hypotheses H1-H6 of docs/theory_experiment.md (pre-registered) on the finished trials of an RL sweep "
    "directory: one-sided Spearman permutation and sign-flip tests with seeds as units, Holm's correction over the seven "
    "primary tests, each test's power by simulation, and the exploratory secondary tests. Writes SWEEP_DIR/hypotheses.md, "
    "SWEEP_DIR/hypotheses.json and SWEEP_DIR/figures/theory_help_e0.png, theory_cmni_vs_help.png. Reads only the trials' "
    "result.json files; a run with other --permutations, --seed or --power-designs than the registered ones says so in hypotheses.md."
)


def theory_command(args, overrides) -> int:
    if args.power_designs is None:
        args.power_designs = REPLICATION_POWER_DRAWS if args.plan == "replication" else POWER_DESIGNS
    for name in ("permutations", "power_designs"):
        value = getattr(args, name)
        if value < (1 if name == "permutations" else 0):
            raise UsageError(f"--{name.replace('_', '-')} must be {'at least 1' if name == 'permutations' else '0 or more'}, got {value}")
    run = run_replication if args.plan == "replication" else run_theory
    done = run(Path(args.sweep_dir), json_path=args.json, permutations=args.permutations, seed=args.seed, power_designs=args.power_designs)
    for entry in done["primary"]:
        words = entry.get("verdict") or (("supported" if entry["supported"] else "not supported") if entry["testable"] else "not testable")
        print(f"{entry['hypothesis']}: {words} (p = {entry['p']}, Holm-adjusted p = {entry.get('p_holm')})")
    print("written: " + ", ".join(str(p) for p in done["files"]))
    return 0


def sweep_command(args, overrides) -> int:
    try:
        shard = parse_shard(args.shard)
    except ValueError as err:
        raise UsageError(str(err)) from None
    sweep = load_sweep(args.config, list(overrides))  # every trial validated before any work
    sweep_dir = Path(args.sweep_dir or Path("sweeps") / sweep.name).absolute()
    if args.dry_run:
        mine = shard_trials(sweep.trials, sweep.max_population, shard)
        for p in populations(mine, sweep.max_population):
            print(f"population of {len(p.trials)}: " + "; ".join(f"{t.index}: {t.fields}" for t in p.trials))
        print(f"{len(sweep.trials)} trials, shard {args.shard} owns {len(mine)}; output {sweep_dir}")
        return 0
    resolve_mode(sweep.base.tracking.mode)  # online without an API key: refused before any work

    import jax

    if args.distributed:
        # Coordinator, process count and id from the cluster's environment (Slurm, Cloud TPU,
        # Open MPI, Kubernetes, ...). Shards finish at different times: the shutdown barrier
        # below waits for the slowest one.
        jax.distributed.initialize(shutdown_timeout_seconds=SHARD_WAIT_S)
        i, n = shard
        shard = (i * jax.process_count() + jax.process_index(), n * jax.process_count())
    lead = jax.process_index() == 0
    if not args.summary_only:
        _run(sweep, sweep_dir, shard)
    if args.distributed:
        jax.distributed.shutdown()  # a barrier: returns once every process has finished its shard
    if lead:
        _summarise(sweep, sweep_dir)
    return 0


SHARD_WAIT_S = 7 * 24 * 3600  # how long the first process waits for the others to finish


def _run(sweep, sweep_dir: Path, shard) -> None:
    print(f"sweep: {sweep_dir}")
    owned = shard_trials(sweep.trials, sweep.max_population, shard)
    with progress_bar("sweep: trials", total=len(owned), unit=" trials") as advance:
        stats = run_sweep(sweep, sweep_dir, shard=shard, advance=advance, log=print)
    print(f"ran {stats['ran']} trial(s) in {stats['populations']} population(s) in {stats['wall_s']:.1f} s")


def _summarise(sweep, sweep_dir: Path) -> None:
    summary = write_summary(sweep, sweep_dir)
    print(f"summary: {summary['finished']} of {summary['trials']} trials finished -> {sweep_dir / 'summary.csv'}, {sweep_dir / 'report.md'}")
    _track_sweep(sweep, sweep_dir, summary)


def _track_sweep(sweep, sweep_dir: Path, summary: dict) -> None:
    """The summary table and figures on a sweep-level W&B run."""
    if resolve_mode(sweep.base.tracking.mode) == "disabled" or not summary["finished"]:
        return
    tracking = sweep.base.tracking
    tracker = open_tracker(tracking, sweep_dir, f"{sweep.name}-summary", {**sweep.base.to_dict(), "swept": sweep.swept}, group=tracking.group or sweep.name, job_type="sweep")
    try:
        for name in ("summary", "top_checkpoints", "bottom_checkpoints"):
            rows = read_csv(sweep_dir / f"{name}.csv")
            if rows:
                tracker.log_table(name, list(rows[0]), [list(r.values()) for r in rows])
        tracker.log_images({f"figures/{p.stem}": p for p in sorted((sweep_dir / "figures").glob("*.png"))})
        tracker.summary({"finished_trials": summary["finished"], "trials": summary["trials"]})
    finally:
        tracker.finish()
