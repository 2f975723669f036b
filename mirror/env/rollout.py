"""Many games in parallel for many turns, in one jitted `lax.scan` (the env's hot path).

Per turn, one RNG call draws every game's noise and action uniforms as a `[games, n]`
block, which is much cheaper than splitting a key per game.

**Staggered phases.** Games that all start at turn 0 stay in step: every batch of turns
then shows the same phase of every episode. `phase_offsets` spreads games evenly over
an episode and `burn_in` plays each game alone for its own offset (the dataset pipeline
and the RL trainer and probe both start their games this way).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mirror.env.dynamics import packed_transition
from mirror.env.frog_and_toad import initial_state
from mirror.env.noise import noise_from_uniforms, noise_size
from mirror.env.packed import PackedState, pack, pack_bits, unpack
from mirror.env.params import EnvParams
from mirror.env.policy import BEHAVIOUR_PROBS, actions_from_uniforms
from mirror.env.state import EnvState


class RolloutSummary(NamedTuple):
    """Scalars that prove the turns were really played (and keep XLA from skipping them)."""

    hops: jax.Array  # total score gained over all games
    episodes: jax.Array  # episodes finished (truncations)


def batch_step(states: PackedState, u: jax.Array, params: EnvParams, probs):
    """One turn for a batch of packed games from a `[games, noise_size + 1]` uniform block.

    Returns (states, done bool[games], score gained int32[games, 2]).

    Games past `episode_turns` restart from a fresh state whose flies come from the
    same turn's spawn uniforms (a cheap, deterministic reset).
    """
    actions = actions_from_uniforms(u[:, -1], probs)
    states, done, gained, _ = step_games(states, actions, u[:, :-1], params)
    return states, done, gained


def step_games(states: PackedState, actions: jax.Array, u: jax.Array, params: EnvParams):
    """One turn for a batch of packed games, each taking `actions` int32[games], with the
    env noise from a `[games, noise_size]` uniform block (resets as in `batch_step`).

    Returns (states, done bool[games], score gained int32[games, 2], the pre-reset states:
    where a game is done, the state its episode ended in; elsewhere the same as `states`).
    """
    noise = noise_from_uniforms(u, params)
    step = jax.vmap(packed_transition, in_axes=(0, 0, 0, None))
    next_states = step(states, actions, noise, params)
    done = next_states.turn >= params.episode_turns
    fresh = jax.vmap(_fresh_state, in_axes=(0, None))(noise.fly_spawn, params)
    gained = next_states.score - states.score
    states = jax.tree_util.tree_map(
        lambda f, s: jnp.where(done.reshape(done.shape + (1,) * (s.ndim - 1)), f, s), fresh, next_states
    )
    return states, done, gained, next_states


def _fresh_state(fly_spawn_u: jax.Array, params: EnvParams) -> PackedState:
    state = pack(initial_state(jax.random.key(0), params))
    return state.replace(flies=pack_bits(fly_spawn_u < params.fly_spawn_prob))


def start_games(key: jax.Array, params: EnvParams, num_games: int) -> PackedState:
    """Packed start states of `num_games` games, one key each."""
    return jax.vmap(lambda k: pack(initial_state(k, params)))(jax.random.split(key, num_games))


def phase_offsets(num_games: int, periods) -> jax.Array:
    """int32[num_games]: game g's offset g * periods // num_games, so the offsets cover
    [0, periods) evenly (each period by the same number of games, to within one).
    `periods` may be traced (e.g. from a traced `EnvParams.episode_turns`)."""
    return (jnp.arange(num_games, dtype=jnp.int32) * periods // num_games).astype(jnp.int32)


def burn_in(play, states, offsets: jax.Array, step_key):
    """Game g plays offsets[g] steps of `play(states, key) -> states` while the others
    wait: a game past its own offset keeps its state. `step_key(i)` is the key of step i
    (the same for every game). One loop up to the largest offset (offsets may be traced)."""

    def step(i, states):
        played = play(states, step_key(i))
        go = i < offsets
        return jax.tree_util.tree_map(
            lambda new, old: jnp.where(go.reshape(go.shape + (1,) * (old.ndim - 1)), new, old), played, states
        )

    return jax.lax.fori_loop(0, jnp.max(offsets), step, states)


def games_sharding(num_games: int):
    """Split the games axis over every local device (None when it cannot be split evenly)."""
    devices = jax.local_devices()
    if len(devices) < 2 or num_games % len(devices):
        return None
    mesh = jax.sharding.Mesh(devices, ("games",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("games"))


def make_rollout(params: EnvParams, num_games: int, num_turns: int, probs=BEHAVIOUR_PROBS, shard: bool = False):
    """Returns `rollout(key) -> (final EnvStates, RolloutSummary)`, jitted, compiled once.

    With `shard=True` the games are split over all local devices (e.g. one XLA CPU
    device per core), each device simulating its share.
    """
    width = noise_size(params) + 1
    sharding = games_sharding(num_games) if shard else None

    def constrain(tree):
        if sharding is None:
            return tree
        return jax.tree_util.tree_map(lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)

    @jax.jit
    def rollout(key: jax.Array):
        init_key, turns_key = jax.random.split(key)
        states = constrain(start_games(init_key, params, num_games))

        def turn(carry, turn_key):
            states, summary = carry
            u = constrain(jax.random.uniform(turn_key, (num_games, width), jnp.float32))
            next_states, done, gained = batch_step(states, u, params, probs)
            summary = RolloutSummary(
                hops=summary.hops + jnp.sum(gained), episodes=summary.episodes + jnp.sum(done)
            )
            return (next_states, summary), None

        zero = jnp.zeros((), jnp.int32)
        (states, summary), _ = jax.lax.scan(
            turn, (states, RolloutSummary(zero, zero)), jax.random.split(turns_key, num_turns)
        )
        return jax.vmap(unpack, in_axes=(0, None))(states, params.world_width), summary

    return rollout
