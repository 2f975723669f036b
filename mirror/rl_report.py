"""report.md of an RL run (`mirror rl`): the headline returns and help rates beside the
baselines, the learning curve per checkpoint and the CMNI on the dataset's test split.

One entry point, `write_rl_report(run_dir) -> Path`, called by `mirror.rl_experiment`
after the analysis has written cmni.csv and summary.json. (A richer report with the RL
figures replaces this body behind the same call.)
"""

import json
import math
from pathlib import Path

from mirror.rl.checkpoints import read_rl_run


def _f(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, list):
        return ", ".join(_f(v, digits) for v in value)
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def write_rl_report(run_dir) -> Path:
    run_dir = Path(run_dir)
    info = read_rl_run(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    out = [
        f"# RL run {run_dir.name}",
        "",
        f"Self-play PPO, `sharing: {info['sharing']}`, {len(info['members'])} member(s), "
        f"{summary['env_turns']:,} trained turns in {_f(summary['train_wall_s'], 1)} s "
        f"({_f(summary['turns_per_s'], 0)} turns/s).",
        "",
        f"Returns: mean own score per player per complete episode, {info['eval']['games']} fixed-key games x "
        f"{info['eval']['turns']} turns, the agent sampling from its policy as in training.",
        "",
        "| policy | return | return (Frog, Toad) | help rate | help when partner distressed |",
        "|---|---|---|---|---|",
        f"| agent | {_f(summary['return_agent'])} | {_f(summary['return_agent_per_player'])} | {_f(summary['help_rate'])} "
        f"| {_f(summary['help_when_partner_distressed'])} |",
        f"| behaviour (§5.1) | {_f(summary['return_behaviour'])} | {_f(summary['return_behaviour_per_player'])} "
        f"| {_f(summary['help_rate_behaviour'])} | |",
        f"| oracle (§5.4) | {_f(summary['return_oracle'])} | {_f(summary['return_oracle_per_player'])} "
        f"| {_f(summary['help_rate_oracle'])} | |",
        "",
        "## Learning curve (checkpoints)",
        "",
        "| update | env turns | return | help rate |",
        "|---|---|---|---|",
        *(f"| {x['epoch']} | {x['env_turns']:,} | {_f(x['return_agent'])} | {_f(x['help_rate'])} |" for x in lines),
    ]
    cmni = run_dir / "cmni.csv"
    if cmni.is_file():
        out += ["", "## CMNI on probe set (a), the dataset's test split", "", "See cmni.csv, neurons.csv and figures/."]
    path = run_dir / "report.md"
    path.write_text("\n".join(out) + "\n")
    return path
