"""Bit-packed game state for the hot path: one uint32 per row of cells.

The public `EnvState` keeps readable `int8[W]` ground and `bool[W]` flies. Inside the
jitted rollouts the world is carried as two uint32 bitmasks (bit i = cell i), so a
scroll is a shift, fly moves are a few bitwise operations and a game's state is a
handful of scalars: this is what makes millions of turns per second possible on a CPU.
Cell counts are therefore limited to 32 (the spec's world).
"""

import jax
import jax.numpy as jnp
from flax import struct

from mirror.env.constants import ROUGH, SOLID
from mirror.env.state import EnvState

MAX_PACKED_WIDTH = 32


@struct.dataclass
class PackedState:
    """Like `EnvState`, with `rough`/`flies` as uint32 bitmasks and the pending obstacle as
    one count `obstacle_left` = pending rough cells + the pending closing solid cell."""

    rough: jax.Array
    flies: jax.Array
    position: jax.Array
    energy: jax.Array
    score: jax.Array
    action_code: jax.Array
    obstacle_left: jax.Array
    obstacle_rate: jax.Array
    turn: jax.Array
    current_player: jax.Array


def pack_bits(mask: jax.Array) -> jax.Array:
    """bool[..., W] -> uint32[...] with bit i set where mask[..., i]."""
    weights = jnp.left_shift(jnp.uint32(1), jnp.arange(mask.shape[-1], dtype=jnp.uint32))
    return jnp.sum(jnp.where(mask, weights, jnp.uint32(0)), axis=-1, dtype=jnp.uint32)


def unpack_bits(bits: jax.Array, width: int) -> jax.Array:
    """uint32[...] -> bool[..., width]."""
    shifts = jnp.arange(width, dtype=jnp.uint32)
    return (jnp.right_shift(bits[..., None], shifts) & jnp.uint32(1)).astype(jnp.bool_)


def bit_at(bits: jax.Array, cell: jax.Array) -> jax.Array:
    """bool: is bit `cell` set (cell in [0, 31])."""
    return (jnp.right_shift(bits, cell.astype(jnp.uint32)) & jnp.uint32(1)) == 1


def pack(state: EnvState) -> PackedState:
    if state.ground.shape[-1] > MAX_PACKED_WIDTH:
        raise ValueError(f"world_width must be <= {MAX_PACKED_WIDTH}, got {state.ground.shape[-1]}")
    return PackedState(
        rough=pack_bits(state.ground == ROUGH),
        flies=pack_bits(state.flies),
        position=state.position,
        energy=state.energy,
        score=state.score,
        action_code=state.action_code,
        obstacle_left=state.pending_rough + state.pending_solid.astype(jnp.int32),
        obstacle_rate=state.obstacle_rate,
        turn=state.turn,
        current_player=state.current_player,
    )


def unpack(packed: PackedState, width: int) -> EnvState:
    return EnvState(
        ground=jnp.where(unpack_bits(packed.rough, width), ROUGH, SOLID).astype(jnp.int8),
        flies=unpack_bits(packed.flies, width),
        position=packed.position,
        energy=packed.energy,
        score=packed.score,
        action_code=packed.action_code,
        pending_rough=jnp.maximum(packed.obstacle_left - 1, 0).astype(jnp.int32),
        pending_solid=packed.obstacle_left > 0,
        obstacle_rate=packed.obstacle_rate,
        turn=packed.turn,
        current_player=packed.current_player,
    )
