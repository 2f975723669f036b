"""Stakes of a regime (spec §10): does the partner matter, and does dependency make
helping pay the helper?

Scripted pairs (`mirror.rl.baselines.scripted_baselines`) play `games` whole episodes
from turn 0 under one key (the same games for every pairing and every D), and each
game gives one number per measure, as own score per 100 decisions:

    selfish base          whichever of hop_jump and oracle has the higher pair return
    cooperative_surplus   helper(base) pair return - base pair return (both players' mean)
    help_incentive        lone helper's own return - a base player's own return
                          with a base partner (the helper's seats, Frog and Toad, pooled)
    partner_stake         a base player's own return with a base partner - its own
                          return with a frozen partner (always jumps)
    energy0_share         the share of the base pair's decisions taken at energy 0

Each comes back as {mean, ci95}: the mean over games and a normal 95 % interval
(mean ± 1.96 sd / sqrt(games)); the games are independent draws of the env, and every
measure is a paired difference within a game (common random numbers), so the interval
needs no other correction. `difference` compares one measure between two settings
played under the same key, again game by game.
"""

import jax
import numpy as np

from mirror.env import EnvParams
from mirror.env.validate import env_params_from_dict
from mirror.rl.baselines import BASES, scripted_baselines

MEASURES = ("cooperative_surplus", "help_incentive", "partner_stake", "energy0_share")
Z95 = 1.959963984540054


def _per_100(score, decisions):
    return 100.0 * score / np.maximum(decisions, 1)


def pair_returns(per_game: dict) -> np.ndarray:
    """f64[games]: a pair's return per game, both players' own score per 100 decisions, averaged."""
    return np.mean(_per_100(per_game["score"][0], per_game["decisions"][0]), axis=-1)


def seated_returns(per_game: dict) -> np.ndarray:
    """f64[games]: the reported player's own return of a two-seating baseline (seating i
    reports player i), averaged over its two seats."""
    seats = [_per_100(per_game["score"][i][:, i], per_game["decisions"][i][:, i]) for i in (0, 1)]
    return np.mean(seats, axis=0)


def energy0_share(per_game: dict) -> np.ndarray:
    """f64[games]: the share of a pair's decisions taken at energy 0."""
    return per_game["decisions_energy0"][0].sum(-1) / np.maximum(per_game["decisions"][0].sum(-1), 1)


def summary(values: np.ndarray) -> dict:
    """{mean, ci95: [low, high]} over games (normal interval of the mean)."""
    values = np.asarray(values, np.float64)
    mean = float(values.mean())
    half = Z95 * float(values.std(ddof=1)) / np.sqrt(values.size) if values.size > 1 else float("nan")
    return {"mean": mean, "ci95": [mean - half, mean + half]}


def per_game_stakes(results: dict) -> dict:
    """Per-game values of every measure, from `scripted_baselines`' results (host arrays):
    {"base": name, "pair_return": {base: f64[games]}, measure: f64[games]}."""
    games = {name: jax.tree.map(np.asarray, r["per_game"]) for name, r in results.items()}
    pair = {b: pair_returns(games[b]) for b in BASES}
    base = max(BASES, key=lambda b: pair[b].mean())
    return {
        "base": base,
        "pair_return": pair,
        "cooperative_surplus": pair_returns(games[f"helper_{base}"]) - pair[base],
        "help_incentive": seated_returns(games[f"lone_helper_{base}"]) - pair[base],
        "partner_stake": pair[base] - seated_returns(games[f"frozen_partner_{base}"]),
        "energy0_share": energy0_share(games[base]),
    }


# One jitted function for every call: each D of a diagnosis then reuses its compiled program.
_play = jax.jit(scripted_baselines, static_argnums=(2, 3))


def stakes_per_game(env_params: EnvParams, key: jax.Array, games: int, max_partner_energy: int, min_own_energy: int) -> dict:
    """`per_game_stakes` of one env: every scripted pairing plays `games` whole episodes."""
    turns = int(env_params.episode_turns)
    results = _play(env_params, key, games, turns, max_partner_energy, min_own_energy)
    return per_game_stakes(jax.device_get(results))


def summarise(per_game: dict) -> dict:
    """{base, pair_return: {base: {mean, ci95}}, measure: {mean, ci95}} of `per_game_stakes`."""
    return {
        "base": per_game["base"],
        "pair_return": {b: summary(v) for b, v in per_game["pair_return"].items()},
        **{m: summary(per_game[m]) for m in MEASURES},
    }


def difference(a: dict, b: dict, measure: str) -> dict:
    """{mean, ci95} of measure(a) - measure(b), game by game (two settings, one key)."""
    return summary(np.asarray(a[measure]) - np.asarray(b[measure]))


def stakes_by_dependency(env: dict, dependencies, key: jax.Array, games: int, max_partner_energy: int, min_own_energy: int) -> dict:
    """The stakes of the env section `env` at each D (JSON-able). Every D plays the same
    key's games; `help_incentive_rise` is the help incentive at the largest D minus that at
    the smallest, game by game."""
    per_d = {float(d): stakes_per_game(env_params_from_dict({**env, "dependency": float(d)}), key, games, max_partner_energy, min_own_energy) for d in dependencies}
    out = {
        "env": dict(env),
        "games": games,
        "helper": {"max_partner_energy": max_partner_energy, "min_own_energy": min_own_energy},
        "by_dependency": {f"{d:g}": summarise(v) for d, v in per_d.items()},
    }
    if len(per_d) > 1:
        low, high = min(per_d), max(per_d)
        out["help_incentive_rise"] = {"from": low, "to": high, **difference(per_d[high], per_d[low], "help_incentive")}
    return out


def _cell(s: dict, digits: int = 2) -> str:
    low, high = s["ci95"]
    return f"{s['mean']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def stakes_table(results: dict) -> str:
    """A plain-text table of `stakes_by_dependency`'s results."""
    head = ("D", "base", "cooperative surplus", "help incentive", "partner stake", "energy-0 share")
    rows = [head]
    for d, r in results["by_dependency"].items():
        rows.append((d, r["base"], _cell(r["cooperative_surplus"]), _cell(r["help_incentive"]), _cell(r["partner_stake"]), _cell(r["energy0_share"], 3)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"own score per 100 decisions; mean [95% interval] over {results['games']} games; helper K = "
                 f"{results['helper']['max_partner_energy']}, M = {results['helper']['min_own_energy']}")
    rise = results.get("help_incentive_rise")
    if rise:
        lines.append(f"help incentive at D = {rise['to']:g} minus D = {rise['from']:g}: {_cell(rise)}")
    return "\n".join(lines)
