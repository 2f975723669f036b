"""Collect Frog's observations at its decision points from many parallel games (spec §5.1–5.2).

One scan step is a round: Frog observes, Frog acts, Toad acts. Games stay in step
with each other (all start with Frog and `episode_turns` is even), so every round
yields exactly one row per game. Both players follow the behaviour policy.

**Staggered phases.** An episode has `episode_turns / 2` rounds; games that all start
at round 0 together would show the same phase of the episode at every collection step,
so a dataset that stops early (few rows) would hold only the early rounds. Before
collecting, `burn_in` therefore plays game g alone for `phase_offsets(games, R)[g]`
rounds, spread evenly over [0, R): from then on, at every collection step the games
cover every round of the episode equally (to within one game), whatever the number of
rows asked for. The burn-in plays real rounds under the behaviour policy, so each game
is in a state the rollout really reaches at that round; its rows are not kept.
(`phase_offsets` and the masked `burn_in` loop are `mirror.env.rollout`'s, shared with
the RL trainer and its on-policy probe.)
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mirror.env.noise import noise_size
from mirror.env.observation import observe_given_veil
from mirror.env.packed import PackedState, unpack
from mirror.env.params import EnvParams
from mirror.env.rollout import batch_step, burn_in, phase_offsets  # noqa: F401  (phase_offsets re-exported)


class FrogRows(NamedTuple):
    """Raw rows: rows int8[n, 3W+4] (Frog's observations), toad_position int8[n],
    episode_round int32[n] (Frog's decision within its episode, 0 .. episode_turns/2 - 1)."""

    rows: jax.Array
    toad_position: jax.Array
    episode_round: jax.Array


def check_rollout_params(params: EnvParams) -> None:
    if params.episode_turns % 2:
        raise ValueError(
            f"env.episode_turns must be even for dataset rollouts (Frog and Toad alternate), got {params.episode_turns}"
        )


def episode_rounds(params: EnvParams) -> int:
    """Rounds (Frog decisions) in one episode: episode_turns / 2."""
    check_rollout_params(params)
    return params.episode_turns // 2


def _play_round(params: EnvParams, probs, states: PackedState, round_key: jax.Array):
    """Frog's turn then Toad's for every game. Returns (states, veiled bool[games]): whether
    Frog's observation at the start of the round is veiled (drawn with the round's noise)."""
    turn_width = noise_size(params) + 1
    u = jax.random.uniform(round_key, (states.turn.shape[0], 2 * turn_width + 1), jnp.float32)
    states, _, _ = batch_step(states, u[:, :turn_width], params, probs)
    states, _, _ = batch_step(states, u[:, turn_width : 2 * turn_width], params, probs)
    return states, u[:, -1] < params.veil


def make_burn_in(params: EnvParams, num_games: int, probs):
    """Returns jitted `burn_in(key, states, offsets) -> states`: game g plays offsets[g]
    rounds (offsets int32[num_games] in [0, episode rounds)), the others wait
    (`mirror.env.rollout.burn_in`, with round i's key the i-th of `key`'s split)."""
    rounds = episode_rounds(params)

    @jax.jit
    def burn_in_rounds(key: jax.Array, states: PackedState, offsets: jax.Array):
        keys = jax.random.split(key, rounds - 1)
        return burn_in(lambda s, k: _play_round(params, probs, s, k)[0], states, offsets, lambda i: keys[i])

    return burn_in_rounds


def make_collect(params: EnvParams, num_games: int, num_rounds: int, probs):
    """Returns jitted `collect(key, states) -> (states, FrogRows[num_rounds * num_games])`.

    States are carried between calls, so generation continues the same games chunk
    after chunk instead of restarting them (which would over-sample early turns). Rows
    are ordered round by round (all games' rows of a round, then the next round's).
    """
    check_rollout_params(params)

    def frog_view(packed: PackedState, veiled):
        return observe_given_veil(unpack(packed, params.world_width), 0, params, veiled)

    @jax.jit
    def collect(key: jax.Array, states: PackedState):
        # The scan keeps only the small packed states (about 40 bytes a row); the
        # (3W+4)-code observations are built afterwards in one vectorised pass, which is
        # several times faster than writing them from inside the scan.
        def round_(states, round_key):
            seen = states
            states, veiled = _play_round(params, probs, states, round_key)
            return states, (seen, veiled)

        states, (seen, veiled) = jax.lax.scan(round_, states, jax.random.split(key, num_rounds))
        flat = jax.tree_util.tree_map(lambda x: x.reshape((num_rounds * num_games,) + x.shape[2:]), (seen, veiled))
        seen, veiled = flat
        rows = jax.vmap(frog_view)(seen, veiled)
        # Frog decides at even turns: round = turn / 2 within the episode.
        return states, FrogRows(rows, seen.position[:, 1].astype(jnp.int8), (seen.turn // 2).astype(jnp.int32))

    return collect
