"""The plain reference of the one turn function (`mirror.rl.turns`), for differential tests.

Readable and slow on purpose: unpacked `EnvState`s, stepped with the public env functions
only (`observe_given_veil`, `transition`, `initial_state`, `distressed`), from the same
per-turn uniforms as the packed turn (layout in `mirror.rl.turns`), with an agent that
samples from its logits by the Gumbel trick. Staggered starts are a plain Python loop.
"""

import jax
import jax.numpy as jnp

from mirror.env import distressed, initial_state, observe_given_veil, transition
from mirror.env.seat import seat_view
from mirror.env.noise import noise_from_uniforms, noise_size
from mirror.rl.turns import reads_central, turn_uniforms

FIELDS = (
    "obs", "player", "action", "log_prob", "value", "gains", "done", "terminal_value", "partner_distressed",
    "episode_score", "central",
)  # fmt: skip


def reference_central(state, player, env):
    """int8[games, 10]: a central critic's features (`mirror.rl.central`), read plainly off
    the unpacked states from `player`'s side."""
    games = jnp.arange(player.shape[0])
    partner = 1 - player
    columns = [
        state.position[games, player], state.position[games, partner], state.energy[games, player],
        state.energy[games, partner], state.action_code[games, player].astype(jnp.int32),
        state.action_code[games, partner].astype(jnp.int32), jnp.minimum(state.score[games, player], 127),
        jnp.minimum(state.score[games, partner], 127), jnp.clip(state.turn * 100 // env.episode_turns, 0, 99), player,
    ]  # fmt: skip
    return jnp.stack(columns, axis=-1).astype(jnp.int8)


def views(env, state, player, veil_u):
    """int8[games, 3W+4]: each game's `player` view, veiled where veil_u < I."""
    veiled = veil_u < env.veil
    return seat_view(jax.vmap(observe_given_veil, in_axes=(0, 0, None, 0))(state, player, env, veiled), player, veiled)


def reference_turn(policy, params, env, state, u):
    """One turn of a batch of `EnvState`s from the uniforms `u` [games, turn_columns].
    Returns (states after the turn, {Transition field: value})."""
    n = noise_size(env)
    games = state.turn.shape[0]
    player = state.current_player
    obs = views(env, state, player, u[:, n + 4])
    central = reference_central(state, player, env) if reads_central(policy) else None
    logits, value = policy(params, obs, player, central)
    action = jnp.argmax(logits - jnp.log(-jnp.log(u[:, n : n + 4])), axis=-1)
    log_prob = jax.nn.log_softmax(logits)[jnp.arange(games), action]
    partner_d = jax.vmap(distressed)(state)[jnp.arange(games), 1 - player]
    ended = jax.vmap(transition, in_axes=(0, 0, 0, None))(state, action, noise_from_uniforms(u[:, :n], env), env)
    done = ended.turn >= env.episode_turns
    def value_of(p):
        seat = jnp.full(games, p)
        seen = reference_central(ended, seat, env) if reads_central(policy) else None
        return policy(params, views(env, ended, seat, u[:, n + 5 + p]), seat, seen)[1]

    terminal = jnp.stack([value_of(p) for p in (0, 1)], axis=-1)
    fresh = jax.vmap(lambda s: initial_state(jax.random.key(0), env).replace(flies=s < env.fly_spawn_prob))(
        u[:, : env.world_width]
    )
    after = jax.tree_util.tree_map(lambda f, s: jnp.where(done.reshape((-1,) + (1,) * (s.ndim - 1)), f, s), fresh, ended)
    fields = dict(
        obs=obs, player=player, action=action, log_prob=log_prob, value=value,
        gains=(ended.score - state.score).astype(jnp.float32), done=done,
        terminal_value=terminal * done[:, None], partner_distressed=partner_d,
        episode_score=jnp.where(done[:, None], ended.score, 0), central=central,
    )  # fmt: skip
    return after, fields


def reference_offsets(num_games: int, episode_turns: int) -> list[int]:
    """Game g's starting turn: its round g * R // games of the R = episode_turns // 2
    rounds, times two (Frog's turn)."""
    rounds = episode_turns // 2
    return [2 * (g * rounds // num_games) for g in range(num_games)]


def reference_start(policy, params, env, key, num_games):
    """Staggered games: fresh states from the split of the start key, then game g plays
    its offset's turns (turn i from the uniforms of fold_in(burn key, i)); the others wait."""
    start_key, burn_key = jax.random.split(key)
    state = jax.vmap(initial_state, in_axes=(0, None))(jax.random.split(start_key, num_games), env)
    offsets = jnp.asarray(reference_offsets(num_games, int(env.episode_turns)))
    for i in range(int(offsets.max())):
        u = turn_uniforms(jax.random.fold_in(burn_key, i), num_games, env)
        played, _ = reference_turn(policy, params, env, state, u)
        go = i < offsets
        state = jax.tree_util.tree_map(lambda new, old: jnp.where(go.reshape((-1,) + (1,) * (old.ndim - 1)), new, old), played, state)
    return state
