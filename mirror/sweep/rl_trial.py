"""One RL trial's files, cut from its RL population's run (sweeps with `mode: rl`).

    SWEEP_DIR/trials/t<index>-<id>/
        config.yaml      the trial's own config (one run: no rl.population_* lists)
        members.json     its network(s)' entries of the population's members.json
        rl_run.json      the population's, with `members` = [this trial's member]
        dataset.json     its OWN probe-(a) dataset, built with its D and I (the population
                         run's dataset.json is the first member's)
        population.json  {"run_dir", "member": its first network, "networks": [...],
                         "checkpoints", "rl_member": its member index}
        metrics.jsonl    per checkpoint, its networks' values (lists when 2 networks)
        cmni.csv, summary.json, ...   the analysis on probe set (a)
        result.json      its summary row; written last, so it marks the trial finished

`mirror.runs.checkpoints.load_run` reads the directory as a run of its own (its networks,
its dataset), so `mirror cmni` and `mirror play --agent` work on it.
"""

import json
import math
from pathlib import Path

import numpy as np
import yaml

from mirror.rl.config import rl_config
from mirror.rl.deviation import DEVIATIONS
from mirror.runs.checkpoints import (
    CONFIG_FILE,
    DATASET_FILE,
    MEMBERS_FILE,
    METRICS_FILE,
    POPULATION_FILE,
    RL_RUN_FILE,
    read_metrics,
    write_json_atomic,
    write_text_atomic,
)
from mirror.runs.rl_files import BASELINES_FILE, read_rl_metrics
from mirror.sweep.plan import networks_of
from mirror.sweep.spec import Trial
from mirror.sweep.trial import RESULT_FILE, trial_dir, trial_identity

# The RL columns of summary.csv, after the settings. The theory experiment's measures
# (docs/theory_experiment.md, `mirror theory`): help_when_partner_energy0 (help_e0),
# help_when_partner_distressed, cmni_scaled (cmni_a) and cmni_scaled_onpolicy (cmni_b) at
# the last checkpoint, z_init, p_init_scaled, the return trend over the last quarter of
# training, and ablation_gap: left None here, filled by the ablation step.
# The deviation gains (`mirror.rl.deviation`) at the last checkpoint, pooled over seats.
DEVIATION_COLUMNS = tuple(f"gain_{d}{s}" for d in DEVIATIONS for s in ("", "_low", "_high"))
RL_METRIC_COLUMNS = (
    "updates", "env_turns", "return_agent", "return_behaviour", "return_oracle", "return_hop_jump", "help_rate",
    "help_when_partner_distressed", "help_when_partner_energy0", "cmni", "cmni_onpolicy", "p_init", "p_init_onpolicy",
    "peak_cmni", "peak_update", "cmni_scaled", "cmni_scaled_onpolicy", "init_scaled_mean", "init_scaled_sd", "z_init",
    "p_init_scaled", "return_slope", "return_change_last_quarter", "ablation_gap",
    "help_given_opportunity", *DEVIATION_COLUMNS, "at_best_response",
)  # fmt: skip


def _pick(value, networks: list[int]):
    """A metrics value for the trial: lists are per network (mean over its networks, nulls
    skipped), scalars are the run's (one network)."""
    if not isinstance(value, list):
        return value
    values = [value[i] for i in networks if value[i] is not None]
    return sum(values) / len(values) if values else None


def _baseline(baselines: dict, policy: str, member: int, key: str = "return"):
    """A member's baseline value; baselines.json holds, per policy, either a list of
    per-member entries or an entry whose values are per-member lists (or scalars)."""
    entry = baselines.get(policy)
    if isinstance(entry, list):
        entry = entry[member]
    if not isinstance(entry, dict):
        return None
    value = entry.get(key)
    return value[member] if isinstance(value, list) else value


def rl_outcomes(last_line: dict, baselines: dict, member: int, networks: list[int]) -> dict:
    """The trial's RL numbers from its population run's last metrics line (RL_CONTRACT:
    per-network lists or scalars) and baselines.json: returns, help rates (in the held-out
    report games), env turns."""
    return {
        "updates": last_line.get("epoch"),
        "env_turns": _pick(last_line.get("env_turns"), networks),
        "return_agent": _pick(last_line.get("return_agent"), networks),
        "return_behaviour": _baseline(baselines, "behaviour", member),
        "return_oracle": _baseline(baselines, "oracle", member),
        "return_hop_jump": _baseline(baselines, "hop_jump", member),
        "help_rate": _pick(last_line.get("help_rate"), networks),
        "help_when_partner_distressed": _pick(last_line.get("help_when_partner_distressed"), networks),
        "help_when_partner_energy0": _pick(last_line.get("help_when_partner_energy0"), networks),
        "help_given_opportunity": _pick(last_line.get("help_given_opportunity"), networks),
        **{key: _pick(last_line.get(key), networks) for key in DEVIATION_COLUMNS},
        "at_best_response": _all(last_line.get("at_best_response"), networks),
    }


def _all(value, networks: list[int]):
    """A flag of the trial: every one of its networks' (None where the line has none)."""
    if value is None:
        return None
    return bool(value) if not isinstance(value, list) else all(bool(value[i]) for i in networks)


def training_returns(lines: list[dict], member: int) -> tuple[np.ndarray, np.ndarray]:
    """(updates, returns) float[lines] of one member from its run's rl_metrics.jsonl lines:
    the mean over Frog and Toad of the update's training return (return_per_player: [2], or
    [members][2] in a population), NaN where no episode ended in the update."""
    updates, returns = [], []
    for line in lines:
        value = line.get("return_per_player")
        if isinstance(value, list) and value and isinstance(value[0], list):
            value = value[member]
        players = [v for v in (value or []) if v is not None]
        updates.append(float(line["update"]))
        returns.append(float(np.mean(players)) if len(players) == 2 else math.nan)
    return np.asarray(updates, np.float64), np.asarray(returns, np.float64)


def return_trend(updates, returns) -> dict:
    """The return over the last quarter of training (updates above 3/4 of the last one):
    return_slope, its least-squares slope per update, and return_change_last_quarter, the
    fitted change over the quarter (slope x last update / 4) relative to the quarter's mean
    |return| (0.02: still rising by 2 %). None without two finite updates in the quarter
    (or, for the relative change, with a zero mean)."""
    updates, returns = np.asarray(updates, np.float64), np.asarray(returns, np.float64)
    none = {"return_slope": None, "return_change_last_quarter": None}
    if not len(updates):
        return none
    last = updates.max()
    keep = (updates > 0.75 * last) & np.isfinite(returns)
    if np.unique(updates[keep]).size < 2:
        return none
    slope = float(np.polyfit(updates[keep], returns[keep], 1)[0])
    mean = abs(float(returns[keep].mean()))
    return {"return_slope": slope, "return_change_last_quarter": float(slope * last / 4 / mean) if mean > 0 else None}


def cmni_outcomes(updates: list[int], cmni: list[float], cmni_onpolicy: float | None, p_init: float | None = None, p_init_onpolicy: float | None = None) -> dict:
    """cmni[checkpoints] on probe set (a), averaged over the trial's networks: the final
    value, the peak and its update; `cmni_onpolicy` (probe set b) at the final checkpoint;
    p_init, p_init_onpolicy: the final checkpoint's rank among random initialisations on
    each probe set (`init_rank_p`)."""
    finite = [(c, u) for c, u in zip(cmni, updates) if c is not None and math.isfinite(c)]
    peak, peak_update = max(finite) if finite else (None, None)
    final = cmni[-1] if cmni and cmni[-1] is not None and math.isfinite(cmni[-1]) else None
    return {"cmni": final, "cmni_onpolicy": cmni_onpolicy, "p_init": p_init, "p_init_onpolicy": p_init_onpolicy, "peak_cmni": peak, "peak_update": peak_update}


def scaled_outcomes(scaled, init_scaled, scaled_onpolicy) -> dict:
    """The theory experiment's CMNI measures at the trial's last checkpoint, means over its
    networks: scaled[networks] the actor's cmni_scaled on probe set (a), init_scaled
    [networks, S] the random initialisations' (draw s of every network averaged, as
    `init_rank_p`), scaled_onpolicy[networks] cmni_scaled on probe set (b) (None: not
    computed). Returns cmni_scaled, cmni_scaled_onpolicy, init_scaled_mean, init_scaled_sd
    (sample sd over the draws), z_init = (cmni_scaled - mean) / sd, p_init_scaled (the
    rank, `init_rank_p`); None where undefined (no finite network, fewer than 2 draws, a
    zero sd)."""
    scaled, init = np.asarray(scaled, np.float64), np.asarray(init_scaled, np.float64)
    out = {"cmni_scaled": _finite_mean(scaled), "cmni_scaled_onpolicy": None if scaled_onpolicy is None else _finite_mean(scaled_onpolicy),
           "init_scaled_mean": None, "init_scaled_sd": None, "z_init": None, "p_init_scaled": init_rank_p(scaled, init)}  # fmt: skip
    ok = np.isfinite(scaled) & np.isfinite(init).all(axis=-1)
    if init.shape[-1] < 2 or not ok.any():
        return out
    draws = init[ok].mean(axis=0)
    mean, sd = float(draws.mean()), float(draws.std(ddof=1)) if np.ptp(draws) > 0 else 0.0  # identical draws: exactly 0, not rounding
    out.update(init_scaled_mean=mean, init_scaled_sd=sd, z_init=(float(scaled[ok].mean()) - mean) / sd if sd > 0 else None)
    return out


def _finite_mean(values) -> float | None:
    values = np.asarray(values, np.float64)
    return float(values[np.isfinite(values)].mean()) if np.isfinite(values).any() else None


def init_rank_p(observed, init) -> float | None:
    """The trial's random-init p: its networks' mean CMNI observed[networks] ranked among
    the means over its networks of each init draw init[networks, S] (draw s of every
    network), (1 + #{init means >= observed mean}) / (S + 1), over the networks with a
    finite CMNI; None without draws or finite networks."""
    observed, init = np.asarray(observed, np.float64), np.asarray(init, np.float64)
    ok = np.isfinite(observed) & np.isfinite(init).all(axis=-1)
    if not init.shape[-1] or not ok.any():
        return None
    means = init[ok].mean(axis=0)
    return float((1 + np.sum(means >= observed[ok].mean())) / (len(means) + 1))


def rl_settings_row(trial: Trial, out: Path) -> dict:
    """The RL trial's identity and settings: the first columns of its summary row."""
    c, ppo = trial.config, rl_config(trial.config)
    return {
        **trial_identity(trial, out),
        "dependency": float(c.env_params.dependency),
        "veil": float(c.env_params.veil),
        "partner_reward_weight": float(ppo.partner_reward_weight),
        "lr": float(ppo.lr),
        "sharing": ppo.sharing,
        "hidden_layers": c.model.hidden_layers if c.model.kind == "mlp" else None,  # a transformer torso: no layers x width
        "width": c.model.width if c.model.kind == "mlp" else None,
    }


def rl_result_row(trial: Trial, out: Path, outcomes: dict, cmni: dict) -> dict:
    """The trial's row of summary.csv."""
    return {**rl_settings_row(trial, out), **{k: None for k in RL_METRIC_COLUMNS}, **outcomes, **cmni}


def write_rl_trial_files(sweep_dir: Path, trial: Trial, member: int, run_dir: Path, dataset_manifest: dict, dataset_path: Path) -> Path:
    """Everything of the trial's directory but the analysis and result.json; returns it.
    `dataset_*`: the trial's own probe-(a) dataset (built from its config)."""
    out = trial_dir(sweep_dir, trial)
    out.mkdir(parents=True, exist_ok=True)
    run_dir = Path(run_dir)
    networks = networks_of(trial.config, member)
    lines = read_metrics(run_dir)
    population_members = json.loads((run_dir / MEMBERS_FILE).read_text())
    rl_run = json.loads((run_dir / RL_RUN_FILE).read_text())
    write_text_atomic(out / CONFIG_FILE, yaml.safe_dump(trial.config.to_dict(), sort_keys=True))
    write_json_atomic(out / MEMBERS_FILE, [population_members[i] for i in networks])
    write_json_atomic(out / RL_RUN_FILE, {**rl_run, "members": [rl_run["members"][member]]})
    write_json_atomic(out / DATASET_FILE, {**dataset_manifest, "path": str(Path(dataset_path).absolute())})
    write_json_atomic(
        out / POPULATION_FILE,
        {"run_dir": str(run_dir), "member": networks[0], "networks": networks, "checkpoints": len(lines), "rl_member": member},
    )

    def mine(value):
        if not isinstance(value, list):
            return value
        return value[networks[0]] if len(networks) == 1 else [value[i] for i in networks]

    text = "".join(json.dumps({k: mine(v) for k, v in lines[u].items()}) + "\n" for u in sorted(lines))
    write_text_atomic(out / METRICS_FILE, text)
    return out


def finish_rl_trial(out: Path, trial: Trial, member: int, run_dir: Path, cmni: dict) -> dict:
    """Write result.json (last: it marks the trial finished) and return the row."""
    lines = read_metrics(run_dir)
    path = Path(run_dir) / BASELINES_FILE
    baselines = json.loads(path.read_text()) if path.is_file() else {}
    outcomes = rl_outcomes(lines[max(lines)] if lines else {}, baselines, member, networks_of(trial.config, member))
    outcomes.update(return_trend(*training_returns(read_rl_metrics(run_dir), member)))
    row = rl_result_row(trial, out, outcomes, cmni)
    write_json_atomic(out / RESULT_FILE, row)
    return row
