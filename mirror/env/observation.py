"""What a player sees: 3W + 4 int8 codes from its own perspective (spec §4, veil §6),
100 at the spec's width W = 32; and the readers that take an observation apart again."""

import jax
import jax.numpy as jnp

from mirror.env.constants import (
    ACTION_CODE_IDLE,
    DISTRESS,
    FLY,
    FROG_IDLE,
    OBS_MAX,
    ROUGH,
    TOAD_IDLE,
    ObsLayout,
    layout_of,
)
from mirror.env.params import EnvParams
from mirror.env.state import EnvState


def distressed(state: EnvState) -> jax.Array:
    """bool[2]: each player stands on rough ground (spec §4: shown as 9)."""
    return jnp.take(state.ground, state.position) == ROUGH


def idle_code(player) -> jax.Array:
    return jnp.where(player == 0, FROG_IDLE, TOAD_IDLE)


def observe_given_veil(state: EnvState, player, params: EnvParams, veiled) -> jax.Array:
    """int8[3W+4] observation of `player`, with the veil decision given (deterministic)."""
    width = params.world_width
    partner = 1 - player
    is_observer = jnp.arange(2) == player
    distress = distressed(state)
    shown_action = jnp.where(state.action_code == ACTION_CODE_IDLE, idle_code(jnp.arange(2)), state.action_code)
    # The observer always looks idle to itself; the partner shows its own last action.
    codes = jnp.where(distress, DISTRESS, jnp.where(is_observer, idle_code(jnp.arange(2)), shown_action))
    codes = jnp.where(veiled & (codes == TOAD_IDLE), FROG_IDLE, codes)
    cells = jnp.arange(width)
    own_pos, partner_pos = state.position[player], state.position[partner]
    # Partner drawn last so it wins when both stand on one cell.
    line = jnp.where(cells == own_pos, codes[player], 0)
    line = jnp.where(cells == partner_pos, codes[partner], line)
    stats = jnp.stack(
        [
            codes[player],
            state.energy[player],
            jnp.minimum(state.score[player], OBS_MAX),
            state.position[player],
        ]
    )
    obs = jnp.concatenate(
        [state.ground.astype(jnp.int32), line, jnp.where(state.flies, FLY, 0), stats]
    )
    return obs.astype(jnp.int8)


def observe(state: EnvState, player, params: EnvParams, key: jax.Array) -> jax.Array:
    """int8[3W+4] observation; `key` decides the veil (shown veiled with probability I)."""
    veiled = jax.random.uniform(key, (), jnp.float32) < params.veil
    return observe_given_veil(state, player, params, veiled)


def observe_both(state: EnvState, params: EnvParams, key: jax.Array) -> jax.Array:
    """int8[2, 3W+4]: Frog's and Toad's observations, each with its own veil draw."""
    keys = jax.random.split(key)
    return jax.vmap(observe, in_axes=(None, 0, None, 0))(state, jnp.arange(2), params, keys)


# ----------------------------------------------------------------------------- readers
# Pure functions of observations int8[..., 3W+4] with any leading batch shape; W is read
# from the static last axis (and checked against `world_width` when one is given).


def checked_layout(obs: jax.Array, world_width: int | None = None) -> ObsLayout:
    """The layout of `obs`; a `world_width` that does not fit its length is a caller bug."""
    layout = layout_of(obs)
    if world_width is not None and layout.width != world_width:
        raise ValueError(f"observations of length {obs.shape[-1]} do not fit world_width={world_width}")
    return layout


def cell_at(layer: jax.Array, index) -> jax.Array:
    """layer[..., W] gathered at index[...] (clipped into range, so never out of bounds).

    index broadcasts against layer's leading shape (e.g. one position for many rows).
    """
    index = jnp.clip(jnp.asarray(index).astype(jnp.int32), 0, layer.shape[-1] - 1)
    index = jnp.broadcast_to(index, layer.shape[:-1])
    return jnp.take_along_axis(layer, index[..., None], axis=-1)[..., 0]


def observer_position(obs: jax.Array, world_width: int | None = None) -> jax.Array:
    """int32[...]: the observer's own position, the last code of its observation."""
    return obs[..., checked_layout(obs, world_width).position].astype(jnp.int32)


def rough_at(obs: jax.Array, position, world_width: int | None = None) -> jax.Array:
    """bool[...]: the ground at `position` is ROUGH (a player standing there is in distress)."""
    layout = checked_layout(obs, world_width)
    return cell_at(obs[..., layout.ground], position) == ROUGH
