"""The policies that act in the game: the behaviour policy of the paper's rollouts
(spec §5.1) and the label oracle (spec §5.4), which labels the dataset and, applied by
each player to its own observation, is the oracle policy (spec §9).

The oracle reads the observer's own position, energy and ground from an observation
int8[..., 3W+4] (W from its static length), so it is correct at every world width.
"""

import jax
import jax.numpy as jnp

from mirror.env.constants import HELP, HOP, JUMP, LEAP, SOLID
from mirror.env.observation import cell_at, checked_layout, observer_position, rough_at

# hop, jump, leap, help (spec §5.1 default).
BEHAVIOUR_PROBS = (0.5, 0.25, 0.125, 0.125)


def actions_from_uniforms(u: jax.Array, probs) -> jax.Array:
    """Inverse-CDF sampling: u[...] in [0, 1) -> actions int32[...] with P(a) = probs[a].

    One uniform per action is far cheaper than `jax.random.categorical` (four Gumbels).
    """
    probs = jnp.asarray(probs, jnp.float32)
    edges = jnp.cumsum(probs / jnp.sum(probs))[:-1]
    return jnp.sum(u[..., None] >= edges, axis=-1).astype(jnp.int32)


def sample_actions(key: jax.Array, shape, probs=BEHAVIOUR_PROBS) -> jax.Array:
    return actions_from_uniforms(jax.random.uniform(key, shape, jnp.float32), probs)


def observer_distress(obs: jax.Array, world_width: int | None = None) -> jax.Array:
    """bool[...]: the observer stands on ROUGH ground (spec §4: shown as 9)."""
    return rough_at(obs, observer_position(obs, world_width), world_width)


def oracle_label(obs: jax.Array, partner_distress: jax.Array, world_width: int | None = None) -> jax.Array:
    """int8[...]: the oracle's action for the observer (spec §5.4), the first rule that applies.

    obs int8[..., 3W+4] is the observer's observation (for the dataset: Frog's row, whose
    energy at 3W+1 is the processed energy); partner_distress bool[...] says whether the
    partner (Toad, for the dataset) stands on ROUGH ground, which the players line alone
    cannot always tell (shared cell, veil).
    """
    layout = checked_layout(obs, world_width)
    w = layout.width
    f = observer_position(obs)
    energy = obs[..., layout.energy].astype(jnp.int32)
    own_d = observer_distress(obs)
    partner_d = jnp.asarray(partner_distress, bool)
    # At f == W-1 the cell f+1 does not exist; rule 2 decides first, the clipped read is unused.
    next_solid = cell_at(obs[..., layout.ground], f + 1) == SOLID
    # Evaluated from the last rule up, so each earlier rule overrides the later ones.
    label = jnp.where(f + 5 < w - 1, LEAP, HOP)  # rules 5, 6
    label = jnp.where(next_solid, HOP, label)  # rule 4
    label = jnp.where((f >= w - 6) & ~own_d & partner_d, HELP, label)  # rule 3
    label = jnp.where(f == w - 1, HELP, label)  # rule 2
    label = jnp.where(energy <= 0, JUMP, label)  # rule 1
    return label.astype(jnp.int8)


def oracle_action(obs: jax.Array, player) -> jax.Array:
    """int32: the oracle policy's action (spec §9) for `player` given both players'
    observations obs int8[2, 3W+4] (as `reset` and `step` return them).

    The player applies the label rules to its own observation (its real energy, no
    resampling); its partner's distress is read from the partner's own observation, whose
    position is the partner's true position on the same ground.
    """
    partner_distress = observer_distress(obs[1 - player])
    return oracle_label(obs[player], partner_distress).astype(jnp.int32)
