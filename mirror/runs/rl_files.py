"""Reading what an RL run writes beside its checkpoints (the RL run-directory contract),
for the analysis and the report: plain JSON / JSON-lines parsing, nothing restored.

    RUN_DIR/rl_run.json       marks an RL run: sharing, networks_per_member, members, probe, eval
    RUN_DIR/rl_metrics.jsonl  one line per update: env_turns, return_per_player ([2] or
                              [members][2]), help rates, losses, ... (NaN written as null)
    RUN_DIR/baselines.json    {"behaviour": ..., "oracle": ..., "hop_jump": ..., "helper_<base>",
                              "lone_helper_<base>", "frozen_partner_<base>": ...}:
                              return_per_player, return, help_rate,
                              help_when_partner_distressed, help_when_partner_energy0,
                              energy0_share, episodes; per member as lists (or a list of one
                              dict per member), scalars for one
"""

import json
from pathlib import Path

import jax
import numpy as np

from mirror.rl.baselines import BASES
from mirror.runs.checkpoints import json_lines, read_rl_run, trim_json_lines

RL_METRICS_FILE = "rl_metrics.jsonl"
DEVIATION_FILE = "deviation.json"  # the last checkpoint's deviation gains (`mirror.runs.rl_run`)
BASELINES_FILE = "baselines.json"

BASELINE_POLICIES = ("behaviour", "oracle")
# The scripted baselines shown beside them (learning curve, report): (baselines.json name, label).
SCRIPTED_LINES = (
    ("hop_jump", "hop_jump"),
    ("helper_hop_jump", "helper (hop_jump)"),
    ("lone_helper_hop_jump", "lone helper (hop_jump)"),
    ("helper_oracle", "helper (oracle)"),
    ("lone_helper_oracle", "lone helper (oracle)"),
)


def read_json(path) -> dict | None:
    """The JSON value of `path`, or None when the file does not exist."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def read_jsonl(path) -> list[dict]:
    """Every complete line of a JSON-lines file (a torn last line is skipped); [] if absent."""
    return [json.loads(raw) for _, raw in json_lines(Path(path))]


def as_float(value) -> np.ndarray:
    """A JSON number / (nested) list with nulls -> float array with NaN."""
    if isinstance(value, list):
        return np.asarray([as_float(v) for v in value], float)
    return np.asarray(np.nan if value is None else float(value))


def member_values(value, members: int) -> np.ndarray:
    """float[members] from a scalar (every member) or a per-member list."""
    values = as_float(value).reshape(-1)
    return np.broadcast_to(values, (members,)).copy() if values.size == 1 else values


def returns_per_member(return_per_player, members: int) -> np.ndarray:
    """float[members, 2] from return_per_player [2] or [members][2]."""
    values = as_float(return_per_player)
    return np.broadcast_to(values.reshape(-1, 2), (members, 2)).copy() if values.size == 2 else values.reshape(members, 2)


def baseline(baselines: dict | None, policy: str, key: str, members: int) -> np.ndarray | None:
    """One baseline value per member (float[members], or float[members, 2] for
    return_per_player); `return` falls back to the mean of return_per_player. None when
    the file or the value is missing."""
    entry = (baselines or {}).get(policy)
    if entry is None:
        return None
    entries = entry if isinstance(entry, list) else None

    def get(k):
        if entries is not None:
            return [e.get(k) for e in entries] if all(k in e for e in entries) else None
        return entry.get(k)

    if key == "return_per_player":
        value = get(key)
        return None if value is None else returns_per_member(value, members)
    value = get(key)
    if value is None and key == "return":
        per_player = get("return_per_player")
        return None if per_player is None else returns_per_member(per_player, members).mean(-1)
    return None if value is None else member_values(value, members)


def read_baselines(run_dir) -> dict:
    return json.loads((Path(run_dir) / BASELINES_FILE).read_text())



def json_safe(value):
    """Arrays and numpy scalars -> JSON values; NaN and infinities -> None."""
    value = np.asarray(value).tolist() if isinstance(value, (np.ndarray, np.generic, jax.Array)) else value
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def read_rl_metrics(run_dir) -> list[dict]:
    """One dict per update, in order (complete lines only)."""
    return [json.loads(raw) for _, raw in json_lines(Path(run_dir) / RL_METRICS_FILE, "update")]


def trim_rl_metrics(run_dir, last: int) -> None:
    """Keep the lines of updates up to `last` (the last complete checkpoint), byte for byte."""
    trim_json_lines(Path(run_dir) / RL_METRICS_FILE, "update", last)


# --- the headline numbers of a run ------------------------------------------------------


def _mean(values) -> float | None:
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if finite else None


def _baseline_mean(baselines: dict, policy: str, key: str = "return"):
    entry = baselines.get(policy)
    return None if entry is None or entry.get(key) is None else _mean(entry[key])


def rl_summary(run_dir) -> dict:
    """The RL keys of a run's summary.json, from its last checkpoint's line, the baselines
    and rl_metrics.jsonl. Scalars are means over members (members' own values in the
    `_per_member` lists); per-player returns are [Frog, Toad] of the first member.

    return_agent/behaviour/oracle/hop_jump: mean own score per player per complete episode
    in the held-out report games; return_helper, return_lone_helper: {"hop_jump": x,
    "oracle": y} by base (a lone helper's own return); help_rate,
    help_when_partner_distressed, help_when_partner_energy0, help_given_opportunity: the
    agent's, same games (help_given_opportunity_oracle, _helper: the oracle pair's and the
    oracle helper pair's); deviation_gain: per member, the last checkpoint's deviation
    gains (`mirror.rl.deviation.summarise`, deviation.json; absent for older runs);
    selected_update: the checkpoint chosen in the selection games (first member),
    return_agent_selected: its return in the report games; env_turns: trained turns, all
    members together; turns_per_s: env_turns per second of training (compiled intervals;
    compile, evaluation and checkpoints excluded); explained_variance: the critic's, at the
    last update (None for runs before it was logged)."""
    run_dir = Path(run_dir)
    info = read_rl_run(run_dir)
    n_per = info["networks_per_member"]
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    if not lines:
        raise TrainError(f"{run_dir} has no checkpoint line in metrics.jsonl yet")
    last = lines[-1]
    members = len(info["members"])

    def per_member(key, line=last):
        value = line.get(key)
        if value is None:
            return [None] * members
        return value[::n_per] if members * n_per > 1 else [value]

    baselines = read_baselines(run_dir)
    updates = read_rl_metrics(run_dir)
    wall = float(updates[-1]["wall_s"]) if updates else 0.0
    explained = updates[-1].get("explained_variance") if updates else None
    explained = explained if isinstance(explained, list) else [explained]
    env_turns = int(last["env_turns"]) * members
    by_epoch = {int(line["epoch"]): line for line in lines}
    selected = per_member("selected_update")
    selected_returns = [
        per_member("return_agent", by_epoch[int(u)])[m] if u is not None and int(u) in by_epoch else None
        for m, u in enumerate(selected)
    ]
    out = {
        "updates": int(last["epoch"]),
        "members": members,
        "return_agent": _mean(per_member("return_agent")),
        "return_behaviour": _baseline_mean(baselines, "behaviour"),
        "return_oracle": _baseline_mean(baselines, "oracle"),
        "return_hop_jump": _baseline_mean(baselines, "hop_jump"),
        "return_helper": {b: _baseline_mean(baselines, f"helper_{b}") for b in BASES},
        "return_lone_helper": {b: _baseline_mean(baselines, f"lone_helper_{b}") for b in BASES},
        "return_frozen_partner": {b: _baseline_mean(baselines, f"frozen_partner_{b}") for b in BASES},
        "help_rate": _mean(per_member("help_rate")),
        "help_when_partner_distressed": _mean(per_member("help_when_partner_distressed")),
        "help_when_partner_energy0": _mean(per_member("help_when_partner_energy0")),
        "help_given_opportunity": _mean(per_member("help_given_opportunity")),
        "help_given_opportunity_oracle": _baseline_mean(baselines, "oracle", "help_given_opportunity"),
        "help_given_opportunity_helper": _baseline_mean(baselines, "helper_oracle", "help_given_opportunity"),
        "help_rate_behaviour": _baseline_mean(baselines, "behaviour", "help_rate"),
        "help_rate_oracle": _baseline_mean(baselines, "oracle", "help_rate"),
        "selected_update": selected[0],
        "return_agent_selected": _mean(selected_returns),
        "env_turns": env_turns,
        "train_wall_s": wall,
        "turns_per_s": env_turns / wall if wall > 0 else None,
        "explained_variance": _mean(explained),
        "return_agent_per_player": per_member("return_per_player")[0],
        "return_behaviour_per_player": baselines["behaviour"]["return_per_player"][0],
        "return_oracle_per_player": baselines["oracle"]["return_per_player"][0],
    }
    if members > 1:
        out.update({f"{k}_per_member": per_member(k) for k in ("return_agent", "help_rate", "help_when_partner_distressed")})
        out["return_behaviour_per_member"] = baselines["behaviour"]["return"]
        out["return_oracle_per_member"] = baselines["oracle"]["return"]
        out["explained_variance_per_member"] = explained
    deviation = run_dir / DEVIATION_FILE
    if deviation.is_file():  # runs before the yardstick have none
        out["deviation_gain"] = json.loads(deviation.read_text())["members"]
    return out
