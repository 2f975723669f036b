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

import numpy as np

from mirror.runs.rl_checkpoints import BASELINES_FILE, RL_METRICS_FILE, RL_RUN_FILE, is_rl_run  # noqa: F401  (re-exported)
from mirror.runs.checkpoints import json_lines

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
