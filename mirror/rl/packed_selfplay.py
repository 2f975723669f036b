"""The trainer's rollout: the turns of `selfplay.rollout`, played on bit-packed states.

`selfplay.rollout` is the readable reference: it steps `EnvState`s with the public
`mirror.env.step` (a key split per game, both players' views rebuilt every turn, a
fresh `reset` computed every turn). Here the games are the env's `PackedState`s
(`mirror.env.rollout.step_games`, the dataset rollout's hot path) and one RNG call per
turn draws all of its randomness as a `[games, TURN_COLUMNS]` block of uniforms:

    [0, n)        the env noise record (n = `noise_size`)
    [n, n + 4)    Gumbel uniforms of the action draw (argmax of logits + Gumbel noise,
                  which is exactly a draw from softmax(logits))
    n + 4         the veil of the acting player's view
    n + 5, n + 6  the veils of Frog's and Toad's pre-reset views (used on done turns)

Only the acting player's view is built each turn (the policy needs nothing else);
both players' pre-reset views are built only when an episode ends (all games start
together, so that is one turn in `episode_turns`). The `Transition`s have the same
meaning as the reference's, field by field (spec §9); `tests/test_rl_speed_paths.py`
replays the same uniforms through the public unpacked env and compares every field.
"""

import jax
import jax.numpy as jnp

from mirror.env import EnvParams, observe_given_veil
from mirror.env.noise import noise_size
from mirror.env.packed import PackedState, bit_at, unpack
from mirror.env.rollout import start_games as start_packed_games
from mirror.env.rollout import step_games
from mirror.rl.selfplay import Lookahead, Policy, Transition, both_values

__all__ = ["packed_rollout", "play_packed_turn", "start_packed_games", "turn_columns", "turn_uniforms", "view_of"]

EXTRA_COLUMNS = 7  # 4 Gumbel uniforms, the acting view's veil, both pre-reset views' veils


def turn_columns(env_params: EnvParams) -> int:
    """Uniforms drawn per game per turn."""
    return noise_size(env_params) + EXTRA_COLUMNS


def turn_uniforms(key: jax.Array, num_envs: int, env_params: EnvParams) -> jax.Array:
    """f32[games, turn_columns]: everything random in one turn of every game."""
    return jax.random.uniform(key, (num_envs, turn_columns(env_params)), jnp.float32)


def view_of(states: PackedState, player: jax.Array, env_params: EnvParams, veil_u: jax.Array) -> jax.Array:
    """int8[games, 3W+4]: each game's `player` view (spec §4), veiled where veil_u < I."""

    def one(state, p, u):
        return observe_given_veil(unpack(state, env_params.world_width), p, env_params, u < env_params.veil)

    return jax.vmap(one)(states, player, veil_u)


def both_views(states: PackedState, env_params: EnvParams, veil_u: jax.Array) -> jax.Array:
    """int8[games, 2, 3W+4]: Frog's and Toad's views; veil_u f32[games, 2]."""
    num_envs = veil_u.shape[0]
    views = [view_of(states, jnp.full((num_envs,), p, jnp.int32), env_params, veil_u[:, p]) for p in (0, 1)]
    return jnp.stack(views, axis=1)


def sample_action(logits: jax.Array, gumbel_u: jax.Array) -> jax.Array:
    """int32[games]: argmax(logits + Gumbel), a draw from softmax(logits)."""
    tiny = jnp.finfo(jnp.float32).tiny
    gumbel = -jnp.log(-jnp.log(jnp.clip(gumbel_u, tiny, 1.0)))
    return jnp.argmax(logits + gumbel, axis=-1).astype(jnp.int32)


def play_packed_turn(policy: Policy, params, env_params: EnvParams, states: PackedState, u: jax.Array):
    """One decision in every game from the uniforms `u` f32[games, turn_columns].
    Returns (states after the turn, its `Transition`)."""
    n = noise_size(env_params)
    player = states.current_player
    obs = view_of(states, player, env_params, u[:, n + 4])
    logits, value = policy(params, obs, player)
    action = sample_action(logits, u[:, n : n + 4])
    log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=-1)[:, 0]
    partner_position = jnp.where(player == 0, states.position[:, 1], states.position[:, 0])
    partner_d = jax.vmap(bit_at)(states.rough, partner_position)
    next_states, done, gains, ended = step_games(states, action, u[:, :n], env_params)
    # All games start together, so episodes end on the same turn: skip the terminal views
    # on the other turns (under a vmap over runs this becomes a select, still correct).
    terminal_value = jax.lax.cond(
        jnp.any(done),
        lambda: both_values(policy, params, both_views(ended, env_params, u[:, n + 5 : n + 7])) * done[:, None],
        lambda: jnp.zeros((done.shape[0], 2), jnp.float32),
    )
    transition = Transition(
        obs=obs,
        player=player,
        action=action,
        log_prob=log_prob,
        value=value,
        gains=gains.astype(jnp.float32),
        done=done,
        terminal_value=terminal_value,
        partner_distressed=partner_d,
        episode_score=jnp.where(done[:, None], ended.score, 0),
    )
    return next_states, transition


def packed_rollout(policy: Policy, params, env_params: EnvParams, states: PackedState, key: jax.Array, num_steps: int):
    """`selfplay.rollout` on packed games: `num_steps` turns plus the look-ahead turn.
    Returns (states after num_steps turns, Transition [T, games], Lookahead)."""
    num_envs = states.turn.shape[0]
    scan_key, look_key, after_key = jax.random.split(key, 3)

    def turn(states, k):
        return play_packed_turn(policy, params, env_params, states, turn_uniforms(k, num_envs, env_params))

    states, transitions = jax.lax.scan(turn, states, jax.random.split(scan_key, num_steps))
    after, look = turn(states, look_key)
    after_views = both_views(after, env_params, jax.random.uniform(after_key, (num_envs, 2), jnp.float32))
    return states, transitions, Lookahead(look, both_values(policy, params, after_views))
