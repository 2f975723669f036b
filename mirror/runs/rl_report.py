"""`report.md` of an RL run, written from the files in its run directory (`rl_run.json`,
`config.yaml`, `summary.json`, `baselines.json`, `rl_metrics.jsonl`, `metrics.jsonl`,
`cmni.csv`), so it can be re-written at any time.

Verdicts are never stronger than the test behind them, and each names its test, per
checkpoint and without a correction for looking at several checkpoints. The headline is
the rank among random actor-critic initialisations (on probe set (b): the same draws on
the same on-policy rows): only it says whether training built more than an untrained
network has. The permutation tests (over scenario labels on (a); game-wise circular
shifts of the labels on (b)) are reported as what they show, that the groups'
activations differ, which untrained networks show too (a row's group is in its input).
"""

import math
from pathlib import Path

import numpy as np
import yaml

from mirror.runs.rl_files import (
    BASELINES_FILE,
    RL_METRICS_FILE,
    SCRIPTED_LINES,
    as_float,
    baseline,
    read_json,
    read_jsonl,
    returns_per_member,
)
from mirror.runs.checkpoints import RL_RUN_FILE
from mirror.runs.report import read_csv
from mirror.rl.stakes import stakes_table

SIGNIFICANCE = 0.05
ENV_DEFAULTS = {"dependency": 1.0, "veil": 0.0}  # EnvParams defaults (mirror.env.params)


def _f(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _num(value, digits: int = 3) -> str:
    """A number, or each number of a list, to `digits` decimals ('-' for missing)."""
    values = as_float(value).reshape(-1) if value is not None else [math.nan]
    text = ["-" if not math.isfinite(v) else f"{v:.{digits}f}" for v in values]
    return text[0] if len(text) == 1 else "[" + ", ".join(text) + "]"


def null_verdict(p: float, test: str, null: str) -> str:
    """One sentence part: above / not distinguishable from a null, with its p-value and test."""
    if not math.isfinite(p):
        return f"{null}: not computed"
    if p <= SIGNIFICANCE:
        return f"above the {null} (p = {p:.3g}, {test})"
    return f"not distinguishable from the {null} (p = {p:.3g}, {test})"


def differ_verdict(p: float, test: str) -> str:
    """What a permutation test over group labels shows: that the groups' activations differ."""
    if not math.isfinite(p):
        return "permutation test: not computed"
    if p <= SIGNIFICANCE:
        return f"the groups' activations differ (p = {p:.3g}, {test}; untrained networks pass this too)"
    return f"no difference between the groups' activations shown (p = {p:.3g}, {test})"


def cmni_trajectory(rows: list[dict], network: int, column: str) -> dict:
    """Peak, final and selected checkpoint of one CMNI column of cmni.csv for one network."""
    rows = sorted((r for r in rows if int(r["member"]) == network), key=lambda r: int(r["epoch"]))
    values = [_f(r[column]) for r in rows]
    finite = [i for i, v in enumerate(values) if math.isfinite(v)]
    peak = max(finite, key=lambda i: values[i]) if finite else len(rows) - 1
    selected = next((i for i, r in enumerate(rows) if r["selected"] in ("1", "True")), len(rows) - 1)
    return {"rows": rows, "peak": rows[peak], "final": rows[-1], "selected": rows[selected], "values": values}


def _setup(rl_run: dict, config: dict, summary: dict, lines: list[dict]) -> list[str]:
    rl = config.get("rl") or {}
    env = {**ENV_DEFAULTS, **(config.get("env") or {})}
    members = rl_run.get("members") or [{}]
    out = ["## Setup", ""]
    per = int(rl_run.get("networks_per_member", 1))
    sharing = rl_run.get("sharing", rl.get("sharing", "shared"))
    kind = "one network plays both Frog and Toad, each from its own view" if per == 1 else "one network per player (Frog's, Toad's)"
    out.append(f"Self-play PPO, `sharing: {sharing}` ({kind}); {len(members)} member(s), {len(members) * per} network(s) analysed.")
    view = rl_run.get("view", "paper")
    seen = "its seat and own position with the §5.6 input, both hidden under the veil" if view == "seat" else "the paper's §5.6 input (no seat)"
    out.append(f"The actor sees {seen} (`rl.view: {view}`); the critic: `{rl_run.get('critic', rl.get('critic', 'separate'))}`.")
    updates = rl.get("updates", lines[-1].get("update") if lines else None)
    turns = summary.get("env_turns", lines[-1].get("env_turns") if lines else None)
    facts = [f"updates: {updates if updates is not None else '-'}", f"env turns: {int(turns):,}" if turns is not None else "env turns: -"]
    if summary.get("turns_per_s") is not None:
        facts.append(f"{_f(summary['turns_per_s']):,.0f} trained turns/s")
    out += ["; ".join(facts) + ".", "", "| member | seed | lr | partner reward weight w | dependency D | veil I |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for m, member in enumerate(members):
        member_env = {**env, **(member.get("env") or {})}
        w = member.get("partner_reward_weight", rl.get("partner_reward_weight", 0.0))
        out.append(f"| {m} | {member.get('seed', config.get('seed', '-'))} | {member.get('lr', rl.get('lr', '-'))} | {w} | {member_env['dependency']} | {member_env['veil']} |")
    return out + [""]


def _returns(summary: dict, baselines: dict | None, checkpoint_lines: list[dict], members: int) -> list[str]:
    out = ["## Returns", ""]
    def by_base(key):
        values = summary.get(key) or {}
        return ", ".join(f"{base} {_num(values.get(base))}" for base in ("hop_jump", "oracle"))

    out += [
        "Mean return per player per episode (summary.json): agents "
        f"**{_num(summary.get('return_agent'))}**, behaviour policy {_num(summary.get('return_behaviour'))}, "
        f"label oracle {_num(summary.get('return_oracle'))}, hop_jump {_num(summary.get('return_hop_jump'))}; "
        f"helper pair ({by_base('return_helper')}); lone helper's own ({by_base('return_lone_helper')}).",
        "",
    ]
    if summary.get("selected_update") is not None:
        out += [
            f"Checkpoint selected in separate selection games: update {summary['selected_update']}, return "
            f"{_num(summary.get('return_agent_selected'))} in the held-out report games (all numbers here are from those).",
            "",
        ]
    # The agents' last checkpoint, scored in the baselines' eval games (metrics.jsonl: per
    # network, so a member's networks repeat its value).
    last = checkpoint_lines[-1] if checkpoint_lines else {}
    agent = None
    if last.get("return_per_player") is not None:
        per_network = np.asarray(last["return_per_player"], np.float64).reshape(-1, 2)
        agent = returns_per_member(per_network[:: max(1, len(per_network) // members)].tolist(), members)
    behaviour = baseline(baselines, "behaviour", "return_per_player", members)
    oracle = baseline(baselines, "oracle", "return_per_player", members)
    scripted = [(label, baseline(baselines, policy, "return_per_player", members)) for policy, label in SCRIPTED_LINES]
    out += ["Per player, all in the same fixed-key evaluation games (agents: the last checkpoint):", ""]
    out += ["| member | policy | Frog | Toad | mean |", "| ---: | --- | ---: | ---: | ---: |"]
    for m in range(members):
        for name, values in (("agents (last checkpoint)", agent), ("behaviour policy", behaviour), ("label oracle", oracle), *scripted):
            if values is not None:
                out.append(f"| {m} | {name} | {values[m, 0]:.3f} | {values[m, 1]:.3f} | {values[m].mean():.3f} |")
    out += [
        "",
        "hop_jump: hop with energy, else jump; helper (base): as base, but help a reachable partner with energy <= K "
        "when one's own is >= M (rl.helper_max_partner_energy, rl.helper_min_own_energy); helper pairs: both players "
        "helpers; a lone helper plays beside a base player, and its row is the helper's own return as Frog and as Toad.",
    ]
    return out + ["", "![return against env turns](figures/learning_curve.png)", ""]


def _help(summary: dict, baselines: dict | None, members: int) -> list[str]:
    out = [
        "## Help", "",
        "| policy | help rate | when the partner is in distress | when the partner has no energy | given opportunity |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]  # fmt: skip
    keys = ("help_rate", "help_when_partner_distressed", "help_when_partner_energy0", "help_given_opportunity")
    out.append("| agents | " + " | ".join(_num(summary.get(k)) for k in keys) + " |")
    for policy, name in (("behaviour", "behaviour policy"), ("oracle", "label oracle"), *SCRIPTED_LINES):
        values = [baseline(baselines, policy, k, members) for k in keys]
        if any(v is not None for v in values):
            out.append(f"| {name} | " + " | ".join(_num(None if v is None else list(v)) for v in values) + " |")
    return out + [
        "",
        "Help rate: the share of decisions that are help; when the partner is in distress (on rough ground) or has no "
        "energy: among the decisions where it is or has (a lone helper: the helper's own decisions); given opportunity: "
        "among the decisions where the partner has no energy, one's own energy is >= 1 and the partner is in reach "
        "(spec §9: where a help can restart it).",
        "",
    ]


def _deviation(summary: dict, members: list[dict]) -> list[str]:
    """The last checkpoint's deviation gains (deviation.json), one row per member and deviation."""
    entries = summary.get("deviation_gain")
    if not entries:
        return []
    out = [
        "## Best response: deviation gains", "",
        "Each agent against itself in the held-out report games, one seat following a scripted deviation where its "
        "condition holds (spec §9): the gain in that seat's objective (own return + w x partner's, per episode) over "
        "plain self-play, pooled over the two seats, mean [95 % interval over games]. At a best response to the family: "
        "no interval above 0.", "",
        "| member | w | help_stalled | never_help | oracle_move | at a best response |", "| ---: | ---: | --- | --- | --- | --- |",
    ]  # fmt: skip
    for m, e in enumerate(entries):
        g = e["gains"]
        cell = lambda n: f"{g[n]['mean']:+.2f} [{g[n]['low']:+.2f}, {g[n]['high']:+.2f}]"  # noqa: E731
        verdict = "yes" if e["at_best_response"] else "no: " + ", ".join(e["deviations_that_gain"]) + " gains"
        out.append(f"| {m} | {e['partner_reward_weight']:g} | {cell('help_stalled')} | {cell('never_help')} | {cell('oracle_move')} | {verdict} |")
    return out + ["", "Per seat, and at any checkpoint: `mirror deviate RUN_DIR[:CHECKPOINT] --member all`.", ""]


def network_name(network: int, networks_per_member: int) -> str:
    """'member m' (shared), or 'member m, Frog's network' / 'Toad's' (independent: 2m, 2m + 1)."""
    if networks_per_member == 1:
        return f"member {network}"
    return f"member {network // networks_per_member}, {('Frog', 'Toad')[network % networks_per_member]}'s network"


def _cmni(rows: list[dict], summary: dict, networks: int, per_member: int = 1) -> list[str]:
    permutations = int((summary.get("analysis_config") or {}).get("permutations", 0))
    perm_test = f"permutation test over scenario labels, {permutations} permutations"
    game_test = f"game-wise permutation test (each probe game's labels shifted circularly), {permutations} shifts"
    onpolicy_init = {o.get("network"): o for o in (summary.get("rl") or {}).get("onpolicy", [])}
    out = [
        "## CMNI on both probe sets",
        "",
        "(a) the test split of the supervised dataset built with this run's env params; (b) on-policy states: what the "
        "trained agents themselves visit, collected at each checkpoint with a fixed key and tagged with the same scenario "
        "function. Both use the same neurons (hidden units and the 4 policy logits; the value head is not counted).",
        "",
        *_probe_a_shares(summary),
    ]
    has_onpolicy = bool(rows) and "cmni_onpolicy" in rows[0]
    init = {i.get("member"): i for i in summary.get("init_null", [])}
    for n in sorted({int(r["member"]) for r in rows} & set(range(networks))):
        label = f"### Network {n} ({network_name(n, per_member)})" if networks > 1 else "### The network"
        a = cmni_trajectory(rows, n, "cmni")
        out += [label, "", "| probe set | peak (update) | final (update) | selected (update) |", "| --- | ---: | ---: | ---: |"]
        sets = [("(a) test split", "cmni", a)]
        if has_onpolicy:
            sets.append(("(b) on-policy", "cmni_onpolicy", cmni_trajectory(rows, n, "cmni_onpolicy")))
        for name, column, t in sets:
            cells = [f"{_f(t[k][column]):.6f} ({t[k]['epoch']})" for k in ("peak", "final", "selected")]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        s = a["selected"]
        out.append("")
        entry = init.get(n) or {}
        head = f"- (a) at the selected checkpoint (update {s['epoch']}): CMNI {_f(s['cmni']):.6f}, "
        if entry.get("seeds"):
            test = f"rank among {entry['seeds']} random actor-critic initialisations (orthogonal init), whose CMNI is {entry['mean']:.6f} ± {entry['std']:.6f}"
            head += null_verdict(_f(s.get("p_init")), test, "random-initialisation null") + "; "
        else:
            head += "not compared with random initialisation (analysis.init_seeds = 0); "
        verdicts = [head + differ_verdict(_f(s.get("p_permutation")), perm_test)]
        if has_onpolicy:
            head = f"- (b) at the same checkpoint: CMNI {_f(s['cmni_onpolicy']):.6f}, "
            b = onpolicy_init.get(n) or {}
            if "p_init_onpolicy" in s and b.get("init_onpolicy_seeds"):
                spread = f", whose CMNI there is {b['init_onpolicy_mean']:.6f} ± {b['init_onpolicy_std']:.6f}" if "init_onpolicy_mean" in b else ""
                test = f"rank among the same {b['init_onpolicy_seeds']} random initialisations on the same on-policy rows{spread}"
                head += null_verdict(_f(s.get("p_init_onpolicy")), test, "random-initialisation null") + "; "
            else:
                head += "not compared with random initialisation; "
            verdicts.append(head + differ_verdict(_f(s.get("p_onpolicy")), game_test))
        figure = f"figures/cmni_checkpoints{f'_m{n}' if networks > 1 else ''}.png"
        out += verdicts + ["", f"![CMNI across checkpoints, both probe sets]({figure})", ""]
    out += ["p-values are per checkpoint, without a correction for the number of checkpoints looked at.", ""]
    return out


def _probe_a_shares(summary: dict) -> list[str]:
    """The label shares probe set (a)'s test split used, and why a label was dropped."""
    shares = summary.get("probe_a_label_shares")
    if not shares:
        return []
    text = "Label shares of probe set (a): " + ", ".join(f"{name} {_f(v):.3f}" for name, v in shares.items()) + "."
    for name, why in (summary.get("probe_a_labels_dropped") or {}).items():
        text += f" No {name} rows ({why}): its share was dropped and the others renormalised."
    return [text, ""]


def _stakes(summary: dict) -> list[str]:
    """The regime's stakes (spec §10, `mirror stakes`) for the run's env, if measured."""
    stakes = summary.get("stakes")
    if not stakes:
        return []
    return [
        "## Stakes of the regime", "",
        "Scripted pairs in the run's env (`mirror stakes`, docs/stakes.md): does the partner matter? "
        "Against the selfish base, own score per 100 decisions, mean [normal 95 % interval over games].", "",
        "```", stakes_table(stakes), "```", "",
    ]  # fmt: skip


def build_rl_report(run_dir) -> str:
    """The report.md text of the RL run in `run_dir`."""
    run_dir = Path(run_dir)
    rl_run = read_json(run_dir / RL_RUN_FILE) or {}
    config_path = run_dir / "config.yaml"
    config_text = config_path.read_text() if config_path.is_file() else ""
    config = (yaml.safe_load(config_text) or {}) if config_text else {}
    summary = read_json(run_dir / "summary.json") or {}
    baselines = read_json(run_dir / BASELINES_FILE)
    lines = read_jsonl(run_dir / RL_METRICS_FILE)
    members = len(rl_run.get("members") or [{}])
    networks = members * int(rl_run.get("networks_per_member", 1))
    rows = read_csv(run_dir / "cmni.csv") if (run_dir / "cmni.csv").is_file() else []

    out = [f"# RL run report: {run_dir.name}", ""]
    out += _setup(rl_run, config, summary, lines)
    out += _returns(summary, baselines, read_jsonl(run_dir / "metrics.jsonl"), members)
    out += _help(summary, baselines, members)
    out += _deviation(summary, rl_run.get("members") or [])
    out += _stakes(summary)
    out += _cmni(rows, summary, networks, networks // members) if rows else ["## CMNI on both probe sets", "", "No analysis yet (cmni.csv is missing).", ""]
    if config_text:
        out += ["## Resolved config", "", "```yaml", config_text.rstrip(), "```", ""]
    return "\n".join(out)


def write_rl_report(run_dir) -> Path:
    """Write RUN_DIR/report.md (via a temporary file: readers never see half a report)."""
    path = Path(run_dir) / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(build_rl_report(run_dir))
    tmp.replace(path)
    return path
