"""The game state pytree (spec §1)."""

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class EnvState:
    """One game's full state. Shapes for world width W; index 0 is Frog, 1 is Toad.

    ground: int8[W]            SOLID (1) or ROUGH (2), window coordinates
    flies: bool[W]             a fly above each cell (window coordinates, never scrolled)
    position: int32[2]         cells in [0, W-1]
    energy: int32[2]           in [0, max_energy]
    score: int32[2]            hops made, never decreases
    action_code: int8[2]       most recent own action as shown to the partner:
                               0 idle, 6 jumping, 7 leaping, 8 helping
    pending_rough: int32       rough cells still to emit for the current obstacle
    pending_solid: bool        a closing solid cell is still to emit
    obstacle_rate: float32     chance that a new cell starts an obstacle
    turn: int32                turns played in this episode
    current_player: int32      whose turn it is (0 Frog, 1 Toad)
    """

    ground: jax.Array
    flies: jax.Array
    position: jax.Array
    energy: jax.Array
    score: jax.Array
    action_code: jax.Array
    pending_rough: jax.Array
    pending_solid: jax.Array
    obstacle_rate: jax.Array
    turn: jax.Array
    current_player: jax.Array


def state_from_values(
    *,
    ground,
    flies,
    position,
    energy,
    score=(0, 0),
    action_code=(0, 0),
    pending_rough=0,
    pending_solid=False,
    obstacle_rate=0.0,
    turn=0,
    current_player=0,
) -> EnvState:
    """Build an `EnvState` with the canonical dtypes from plain Python values (tests, reference)."""
    return EnvState(
        ground=jnp.asarray(ground, jnp.int8),
        flies=jnp.asarray(flies, jnp.bool_),
        position=jnp.asarray(position, jnp.int32),
        energy=jnp.asarray(energy, jnp.int32),
        score=jnp.asarray(score, jnp.int32),
        action_code=jnp.asarray(action_code, jnp.int8),
        pending_rough=jnp.asarray(pending_rough, jnp.int32),
        pending_solid=jnp.asarray(pending_solid, jnp.bool_),
        obstacle_rate=jnp.asarray(obstacle_rate, jnp.float32),
        turn=jnp.asarray(turn, jnp.int32),
        current_player=jnp.asarray(current_player, jnp.int32),
    )
