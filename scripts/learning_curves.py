"""Learning curves of RL runs side by side: return, help rate, entropy and the critic's
explained variance against trained env turns, one line per population member (seed).

Lines are the per-update training values of each run's rl_metrics.jsonl (return per player
per episode pooled over the episodes that ended in the update, help rate per decision);
the dots on the return and help-rate panels are the held-out report games at each
checkpoint (metrics.jsonl), the numbers a run reports. Dashed lines on the return panels: scripted baselines of the
same report games (baselines.json): the hop_jump pair, the helper pair on hop_jump and the
label oracle.

    uv run python scripts/learning_curves.py old=runs/collapse_old new=runs/collapse_new \
        --out docs/rl_collapse_check.png --title "energy-tight game, w = 1"
"""

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROWS = (
    ("return", "return per player per episode"),
    ("help_rate", "help rate (per decision)"),
    ("entropy", "policy entropy"),
    ("explained_variance", "explained variance"),
)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def per_member(value, members: int) -> list:
    """A metric's per-member values: lists stay, scalars (one member) are wrapped."""
    if isinstance(value, list) and members > 1:
        return value
    return [value]


def member_count(updates: list[dict]) -> int:
    first = updates[0]["return_per_player"] or updates[-1]["return_per_player"]
    return len(first) if isinstance(first[0], list) else 1


def curves(run_dir: Path) -> dict:
    """{metric: [member][(turns, value)]} from rl_metrics.jsonl, plus the checkpoints'
    held-out 'report_return' and 'report_help_rate'."""
    updates = read_lines(run_dir / "rl_metrics.jsonl")
    members = member_count(updates)
    out = {name: [[] for _ in range(members)] for name, _ in ROWS}
    out["report_return"] = [[] for _ in range(members)]
    out["report_help_rate"] = [[] for _ in range(members)]
    for line in updates:
        turns = line["env_turns"]
        returns = line["return_per_player"]
        returns = returns if members > 1 else [returns]
        for m in range(members):
            if returns[m] is not None and None not in returns[m]:
                out["return"][m].append((turns, sum(returns[m]) / 2))
            for name in ("help_rate", "entropy", "explained_variance"):
                value = per_member(line.get(name), members)[m]
                if value is not None:
                    out[name][m].append((turns, value))
    for line in read_lines(run_dir / "metrics.jsonl"):
        for key, name in (("return_agent", "report_return"), ("help_rate", "report_help_rate")):
            for m, value in enumerate(per_member(line[key], members)):
                out[name][m].append((line["env_turns"], value))
    return out


BASELINES = (("hop_jump", "hop_jump pair"), ("helper_hop_jump", "helper pair (hop_jump)"), ("oracle", "label oracle"))


def baselines(run_dir: Path) -> dict:
    """{label: return} of the scripted baselines, mean over members."""
    path = run_dir / "baselines.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    out = {}
    for policy, label in BASELINES:
        values = [v for v in data.get(policy, {}).get("return", []) if v is not None]
        if values:
            out[label] = sum(values) / len(values)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR, one column each")
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", default="")
    parser.add_argument("--seeds", type=int, nargs="*", default=None, help="seed of each member, for the legend")
    args = parser.parse_args()
    runs = [tuple(r.split("=", 1)) for r in args.runs]
    for label, run_dir in runs:
        if not (Path(run_dir) / "rl_metrics.jsonl").exists():
            sys.exit(f"{label}: {run_dir} has no rl_metrics.jsonl")
    data = [curves(Path(d)) for _, d in runs]
    size = (5.2 * len(runs), 2.6 * len(ROWS))
    fig, axes = plt.subplots(len(ROWS), len(runs), figsize=size, sharex=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for col, ((label, run_dir), run) in enumerate(zip(runs, data)):
        for (name, value), style in zip(baselines(Path(run_dir)).items(), ("--", "-.", ":")):
            axes[0][col].axhline(value, color="grey", ls=style, lw=1, label=f"{name} ({value:.1f})")
        for row, (name, ylabel) in enumerate(ROWS):
            ax = axes[row][col]
            for m, points in enumerate(run[name]):
                seed = args.seeds[m] if args.seeds else m
                if points:
                    xs, ys = zip(*points)
                    ax.plot([x / 1e6 for x in xs], ys, color=colours[m % len(colours)], lw=1, label=f"seed {seed}")
                report = {"return": "report_return", "help_rate": "report_help_rate"}.get(name)
                if report and run[report][m]:
                    xs, ys = zip(*run[report][m])
                    ax.plot([x / 1e6 for x in xs], ys, "o", ms=3.5, color=colours[m % len(colours)])
            if row == 0:
                ax.set_title(label)
            if col == 0:
                ax.set_ylabel(ylabel)
            if row == len(ROWS) - 1:
                ax.set_xlabel("trained env turns per seed (millions)")
            ax.grid(alpha=0.3)
    # one y-range per row across columns, so the runs compare at a glance
    for row in range(len(ROWS)):
        lows, highs = zip(*(axes[row][c].get_ylim() for c in range(len(runs))))
        for c in range(len(runs)):
            axes[row][c].set_ylim(min(lows), max(highs))
    axes[0][0].legend(fontsize=7, loc="lower right")
    if args.title:
        note = "lines: training games per update; dots: held-out report games per checkpoint"
        fig.suptitle(f"{args.title}\n({note})", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
