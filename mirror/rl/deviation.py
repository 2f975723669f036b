"""Deviation gains (spec §9): is a policy at a best response to simple unilateral deviations?

For a policy π playing itself and a scripted deviation δ (a rule that replaces π's action
where its condition holds) played by one seat, the gain is the mean over the same
fixed-key games of that seat's objective, own return + w · partner's return (per complete
episode), under (δ∘π, π) minus under (π, π). Every play uses `evaluate`'s games of one key:
the same start states and, turn by turn, the same env noise and the same action uniforms
(common random numbers), so the difference is the deviation's and little else.

The family (`DEVIATIONS`):

    help_stalled   help when the partner has energy 0, own energy >= 1 and the partner
                   is within reach (partner position + leap_distance < W)
    never_help     every help becomes a hop
    oracle_move    the spec oracle's action (§9) wherever π would not help

A policy is *at a best response to the family* when no deviation's gain (pooled over both
seats: per game, the mean of the two seats' gains) has a 95 % interval above 0. The
per-seat gains come with it, each with its own interval.
"""

import jax
import jax.numpy as jnp
import numpy as np

from mirror.env import HELP, HOP, EnvParams
from mirror.env.packed import unpack
from mirror.rl.baselines import evaluate
from mirror.rl.scripted import helps, oracle
from mirror.rl.turns import Decide, Decision

DEVIATIONS = ("help_stalled", "never_help", "oracle_move")
Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval (hundreds of games)


def deviation_rule(code, state, params: EnvParams, action) -> jax.Array:
    """int32: the action after deviation `DEVIATIONS[code]` (code may be traced) of the acting
    player's sampled `action` in one game's true state."""

    def help_stalled():
        return jnp.where(helps(state, params, 0, 1), HELP, action)

    def never_help():
        return jnp.where(action == HELP, HOP, action)

    def oracle_move():
        return jnp.where(action == HELP, action, oracle(state, params))

    return jax.lax.switch(code, [help_stalled, never_help, oracle_move]).astype(jnp.int32)


def deviate(decide: Decide, code, seat) -> Decide:
    """`decide`, with the player in `seat` (0 Frog, 1 Toad; may be traced) following
    deviation `code` on top of it; the other seat plays `decide` unchanged."""

    def deviated(states, obs, gumbel_u, env_params):
        base = decide(states, obs, gumbel_u, env_params)
        width = env_params.world_width
        changed = jax.vmap(lambda s, a: deviation_rule(code, unpack(s, width), env_params, a))(states, base.action)
        action = jnp.where(states.current_player == seat, changed, base.action)
        return Decision(action, base.log_prob, base.value)

    return deviated


def seat_objective(counts: dict, seat: int, w) -> jax.Array:
    """f32[games]: the seat's own score + w · the partner's, per complete episode of each game."""
    score = counts["score"].astype(jnp.float32)
    episodes = jnp.maximum(counts["episodes"], 1).astype(jnp.float32)
    return (score[:, seat] + w * score[:, 1 - seat]) / episodes


def deviation_gains(decide: Decide, env_params: EnvParams, key: jax.Array, num_games: int, num_turns: int, w) -> dict:
    """Per-game gains of every deviation and seat (jittable; `num_games`, `num_turns` static).

    Returns {"gain": f32[deviations, 2, games] (seat 0 Frog, 1 Toad), "objective":
    f32[2, games] (plain self-play, per seat), "help_given_opportunity": f32 (plain
    self-play), "return": f32 (plain self-play, mean over seats)}; `summarise` turns it
    into means and intervals."""
    plain = evaluate(decide, env_params, key, num_games, num_turns)
    base = jnp.stack([seat_objective(plain["per_game"], s, w) for s in (0, 1)])
    codes = jnp.arange(len(DEVIATIONS), dtype=jnp.int32)

    def one(code, seat):
        counts = evaluate(deviate(decide, code, seat), env_params, key, num_games, num_turns)["per_game"]
        objective = jnp.stack([seat_objective(counts, s, w) for s in (0, 1)])
        return jnp.where(seat == 0, objective[0] - base[0], objective[1] - base[1])

    seats = jnp.arange(2, dtype=jnp.int32)
    gain = jax.vmap(lambda c: jax.vmap(lambda s: one(c, s))(seats))(codes)  # [deviations, 2, games]
    return {"gain": gain, "objective": base, "help_given_opportunity": plain["help_given_opportunity"], "return": plain["return"]}


def interval(values: np.ndarray) -> dict:
    """{"mean", "low", "high"}: the mean and its normal 95 % interval over the games."""
    values = np.asarray(values, np.float64)
    mean = float(values.mean())
    half = Z95 * float(values.std(ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return {"mean": mean, "low": mean - half, "high": mean + half}


def summarise(result: dict, w: float) -> dict:
    """JSON-ready gains of one agent: per deviation, pooled over seats and per seat, with
    `at_best_response` (no pooled interval above 0) and the deviation of largest gain."""
    gain = np.asarray(result["gain"], np.float64)
    gains = {}
    for d, name in enumerate(DEVIATIONS):
        pooled = interval(gain[d].mean(axis=0))
        gains[name] = {**pooled, "per_seat": [interval(gain[d, s]) for s in (0, 1)]}
    above = [name for name, g in gains.items() if g["low"] > 0]
    return {
        "games": int(gain.shape[-1]),
        "partner_reward_weight": float(w),
        "objective": "own return + w * partner return, per complete episode",
        "gains": gains,
        "at_best_response": not above,
        "deviations_that_gain": above,
        "best_deviation": max(gains, key=lambda n: gains[n]["mean"]),
        "return": float(result["return"]),
        "help_given_opportunity": float(result["help_given_opportunity"]),
    }
