"""`mirror generate` and `mirror data inspect`."""

import time

import numpy as np

from mirror.base.errors import UsageError
from mirror.data.labels import SCENARIO_NAMES
from mirror.data.pipeline import build_dataset, dataset_path
from mirror.data.split import SPLIT_NAMES
from mirror.data.store import load_dataset
from mirror.env.constants import ACTION_NAMES, ROUGH, layout_of
from mirror.runs.config import load_config
from mirror.runs.progress import progress_bar

CONFIG_HELP = "YAML config (configs/*.yaml); any field can be overridden: --data.rows 500000 --env.dependency 0.5"


def register(sub) -> None:
    gen = sub.add_parser("generate", help="build (or reuse) the supervised dataset of spec §5", description=CONFIG_HELP)
    gen.add_argument("--config", help="YAML config file")
    gen.add_argument("--force", action="store_true", help="regenerate even if a cached dataset exists")
    gen.set_defaults(func=generate, accepts_overrides=True)

    data = sub.add_parser("data", help="dataset tools")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    inspect = data_sub.add_parser("inspect", help="counts per label and scenario, and a few rows as ASCII")
    inspect.add_argument("path", help="dataset directory")
    inspect.add_argument("--rows", type=int, default=3, help="rows to render")
    inspect.add_argument("--seed", type=int, default=0, help="which rows to render")
    inspect.set_defaults(func=inspect_dataset)


def generate(args, overrides) -> int:
    config = load_config(args.config, overrides)  # fails on bad fields before any work
    print(f"dataset: {dataset_path(config)}")
    start = time.perf_counter()
    with progress_bar("generating unique rows", total=config.data.rows) as advance:
        dataset, reused = build_dataset(config, progress=lambda done, total: advance(done), force=args.force)
    m = dataset.manifest
    if reused:
        print(f"reused cached dataset ({m['rows']:,} rows, generated in {m['wall_s']:.1f} s)")
    else:
        wall = time.perf_counter() - start
        print(
            f"{m['rows']:,} unique rows from {m['raw_rows']:,} raw rows ({m['turns_simulated']:,} turns) "
            f"in {wall:.1f} s: {m['rows'] / wall:,.0f} unique rows/s"
        )
    print(format_counts(m["counts"]))
    print(format_phases(m["phase_coverage"]))
    return 0


def format_phases(coverage: dict) -> str:
    """The kept rows' share in each tenth of the episode, as one line."""
    shares = " ".join(f"{share:.3f}" for share in coverage["share_per_tenth"])
    return f"rows per tenth of the episode ({coverage['episode_rounds']} rounds): {shares}"


def format_counts(counts: dict) -> str:
    """A label x scenario table per split."""
    lines = []
    for split, by_label in counts.items():
        scenarios = list(next(iter(by_label.values())))
        total = sum(sum(v.values()) for v in by_label.values())
        lines.append(f"{split} ({total:,} rows)")
        lines.append("  " + f"{'label':<6}" + "".join(f"{s:>11}" for s in scenarios) + f"{'total':>11}")
        for label, row in by_label.items():
            lines.append("  " + f"{label:<6}" + "".join(f"{row[s]:>11,}" for s in scenarios) + f"{sum(row.values()):>11,}")
    return "\n".join(lines)


def inspect_dataset(args, overrides) -> int:
    if args.rows < 0:
        raise UsageError(f"--rows must be a non-negative integer, got {args.rows}")
    dataset = load_dataset(args.path)
    print(f"{dataset.path}: {len(dataset.labels):,} rows (format {dataset.manifest['format_version']})")
    print(format_counts(dataset.manifest["counts"]))
    print(format_phases(dataset.manifest["phase_coverage"]))
    rng = np.random.default_rng(args.seed)
    for i in rng.choice(len(dataset.labels), size=min(args.rows, len(dataset.labels)), replace=False):
        print(
            f"\nrow {i}: label {ACTION_NAMES[dataset.labels[i]]}, scenario {SCENARIO_NAMES[dataset.scenarios[i]]}, "
            f"split {SPLIT_NAMES[dataset.splits[i]]}, idle shown (Frog, Toad) {tuple(bool(x) for x in dataset.idle_shown[i])}, "
            f"positions (Frog, Toad) {tuple(int(x) for x in dataset.positions[i])}, round {int(dataset.episode_rounds[i])}"
        )
        print(render_row(dataset.inputs[i]))
    return 0


def render_row(row: np.ndarray) -> str:
    """A model-input row int8[3W+4] as ASCII: flies, players (codes), ground, then the energy."""
    layout = layout_of(row)
    ground = "".join("#" if g == ROUGH else "=" for g in row[layout.ground])
    players = "".join(" " if c == 0 else str(int(c)) for c in row[layout.players])
    flies = "".join("*" if f else " " for f in row[layout.flies])
    return f"{flies}\n{players}\n{ground}\nenergy {int(row[layout.energy])}"
