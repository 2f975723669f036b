"""`mirror train`: train the paper's MLP (or a population) with a checkpoint every epoch."""

import sys
import time
from pathlib import Path

from mirror.base.errors import UsageError
from mirror.base.files import has_content, lock_run_dir
from mirror.data.pipeline import build_dataset
from mirror.data.store import load_dataset
from mirror.runs.config import load_config
from mirror.runs.progress import progress_bar
from mirror.runs.train_run import resume_config, train_run
from mirror.train.population import members_from_config

CONFIG_HELP = (
    "Train on the config's dataset (generated first if not cached). Any field can be "
    "overridden: --train.lr 1.0e-5 --train.population_seeds [0,1,2,3]. A run directory "
    "holds config.yaml, dataset.json, members.json, checkpoints/ (one per epoch), "
    "metrics.jsonl and test_metrics.json."
)


def register(sub) -> None:
    train = sub.add_parser("train", help="train the MLP (or a population) with a checkpoint every epoch", description=CONFIG_HELP)
    train.add_argument("--config", help="YAML config file")
    train.add_argument("--run-dir", help="directory for the run (default: runs/<name>-<date>-<time>)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last complete checkpoint")
    train.set_defaults(func=train_command, accepts_overrides=True)


def default_run_dir(name: str) -> Path:
    base = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, i = base, 1
    while path.exists():
        path, i = base.with_name(f"{base.name}-{i}"), i + 1
    return path


def run_target(args, overrides, default_config=None):
    """(config, run directory, dataset path or None) for `--resume RUN_DIR` or a new run,
    checked before any work: a resume takes no other settings, a new run needs an empty
    (or missing) directory. Shared by `mirror train` and `mirror run`."""
    if args.resume:
        if args.config or args.run_dir or overrides:
            raise UsageError("--resume continues a run with its own config.yaml; drop --config, --run-dir and overrides")
        config, dataset_path = resume_config(args.resume)
        return config, Path(args.resume), dataset_path
    config = load_config(args.config or default_config, list(overrides))  # fails on bad fields before any work
    members_from_config(config)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config.name)
    if has_content(run_dir):
        raise UsageError(f"{run_dir} already exists and is not empty; use --resume {run_dir} to continue it")
    return config, run_dir, None


def train_command(args, overrides) -> int:
    config, run_dir, dataset_path = run_target(args, overrides)
    # Locked (and checked writable) before the dataset is built: a second process is refused at once.
    with lock_run_dir(run_dir):
        if args.resume:
            dataset = load_dataset(dataset_path)  # checks every sha256
        else:
            with progress_bar("dataset: generating unique rows", total=config.data.rows) as advance:
                dataset, reused = build_dataset(config, progress=lambda done, total: advance(done))
            print(f"dataset: {dataset.path} ({'cached' if reused else 'generated'}, {len(dataset.labels):,} rows)")
        print(f"run: {run_dir.absolute()}")
        result = train_run(config, run_dir, dataset, resume=bool(args.resume))
    if result.test_metrics is not None:
        accuracies = [m.get("accuracy") for m in result.test_metrics["members"]]
        shown = ", ".join("-" if a is None else f"{a:.4f}" for a in accuracies)
        print(f"test accuracy at the best validation epoch: {shown}")
    if result.diverged:
        print(
            f"mirror train: error: the loss of member(s) {result.diverged} became NaN or infinite; they stopped "
            f"training at their last good state. Last complete checkpoint: epoch {result.last_epoch} "
            f"in {result.run_dir} (lower the learning rate?)",
            file=sys.stderr,
        )
        return 3
    print(f"done: {result.last_epoch} epochs checkpointed in {result.run_dir}")
    return 0
