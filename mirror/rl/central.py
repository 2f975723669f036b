"""What a centralised critic reads beyond the actor's view (`rl.critic: central`).

Centralised training, decentralised execution (MAPPO): the value network may see the
game state that the acting player's view hides, since it is only used to train. The
actor, the network the CMNI and `mirror ablate` analyse, still acts on its own view.

The features of a decision, from the acting player's side, int8[CENTRAL_SIZE]:

    0, 1   own position, partner position
    2, 3   own energy, partner energy
    4, 5   own last action code, partner's (0 idle, 6 jump, 7 leap, 8 help)
    6, 7   own score, partner's (saturating at 127, as observations do)
    8      the phase of the episode: turn * 100 // episode_turns (0 .. 99)
    9      the seat (0 Frog, 1 Toad)

So the critic sees a stalled partner's energy and how long the episode has to run,
which carry the payoff of a help (it reaches a selfish helper only through the scroll
at D = 1) and the truncation bootstrap. `CENTRAL_SCALE` brings each to about [0, 1].
"""

import jax
import jax.numpy as jnp
import numpy as np

from mirror.env import EnvParams
from mirror.env.constants import OBS_MAX
from mirror.env.packed import PackedState

CENTRAL_SIZE = 10
CENTRAL_NAMES = (
    "own_position", "partner_position", "own_energy", "partner_energy", "own_action", "partner_action",
    "own_score", "partner_score", "phase", "seat",
)  # fmt: skip
# Per feature: a fixed divisor (world width 32, energy 20, codes 9, a score of 64, phase 100).
CENTRAL_SCALE = np.asarray([1 / 32, 1 / 32, 1 / 20, 1 / 20, 1 / 9, 1 / 9, 1 / 64, 1 / 64, 1 / 100, 1.0], np.float32)


def central_features(states: PackedState, player: jax.Array, env_params: EnvParams) -> jax.Array:
    """int8[games, CENTRAL_SIZE]: each game's state from `player`'s side (player int32[games])."""

    def side(x, who):
        return jnp.take_along_axis(x, who[:, None], axis=1)[:, 0]

    player = jnp.asarray(player, jnp.int32)
    partner = 1 - player
    score = jnp.minimum(states.score, OBS_MAX)
    phase = (states.turn.astype(jnp.int32) * 100) // jnp.asarray(env_params.episode_turns, jnp.int32)
    columns = [
        side(states.position, player), side(states.position, partner),
        side(states.energy, player), side(states.energy, partner),
        side(states.action_code, player), side(states.action_code, partner),
        side(score, player), side(score, partner),
        jnp.clip(phase, 0, 99), player,
    ]  # fmt: skip
    return jnp.stack([c.astype(jnp.int32) for c in columns], axis=-1).astype(jnp.int8)


def central_input(central: jax.Array) -> jax.Array:
    """int8[..., CENTRAL_SIZE] -> f32[..., CENTRAL_SIZE], each feature scaled to about [0, 1]."""
    return central.astype(jnp.float32) * jnp.asarray(CENTRAL_SCALE)
