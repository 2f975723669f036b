"""Collect Frog's observations at its decision points from many parallel games (spec §5.1–5.2).

One scan step is a round: Frog observes, Frog acts, Toad acts. Games stay in step
with each other (all start with Frog and `episode_turns` is even), so every round
yields exactly one row per game. Both players follow the behaviour policy.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mirror.env.noise import noise_size
from mirror.env.observation import observe_given_veil
from mirror.env.packed import PackedState, unpack
from mirror.env.params import EnvParams
from mirror.env.rollout import batch_step


class FrogRows(NamedTuple):
    """Raw rows: rows int8[n, 3W+4] (Frog's observations), toad_position int8[n]."""

    rows: jax.Array
    toad_position: jax.Array


def check_rollout_params(params: EnvParams) -> None:
    if params.episode_turns % 2:
        raise ValueError(
            f"env.episode_turns must be even for dataset rollouts (Frog and Toad alternate), got {params.episode_turns}"
        )


def make_collect(params: EnvParams, num_games: int, num_rounds: int, probs):
    """Returns jitted `collect(key, states) -> (states, FrogRows[num_rounds * num_games])`.

    States are carried between calls, so generation continues the same games chunk
    after chunk instead of restarting them (which would over-sample early turns).
    """
    check_rollout_params(params)
    turn_width = noise_size(params) + 1

    def frog_view(packed: PackedState, veiled):
        return observe_given_veil(unpack(packed, params.world_width), 0, params, veiled)

    @jax.jit
    def collect(key: jax.Array, states: PackedState):
        # The scan keeps only the small packed states (about 40 bytes a row); the
        # (3W+4)-code observations are built afterwards in one vectorised pass, which is
        # several times faster than writing them from inside the scan.
        def round_(states, round_key):
            u = jax.random.uniform(round_key, (num_games, 2 * turn_width + 1), jnp.float32)
            veiled = u[:, -1] < params.veil
            seen = states
            states, _, _ = batch_step(states, u[:, :turn_width], params, probs)
            states, _, _ = batch_step(states, u[:, turn_width : 2 * turn_width], params, probs)
            return states, (seen, veiled)

        states, (seen, veiled) = jax.lax.scan(round_, states, jax.random.split(key, num_rounds))
        flat = jax.tree_util.tree_map(lambda x: x.reshape((num_rounds * num_games,) + x.shape[2:]), (seen, veiled))
        seen, veiled = flat
        rows = jax.vmap(frog_view)(seen, veiled)
        return states, FrogRows(rows, seen.position[:, 1].astype(jnp.int8))

    return collect

