"""The per-turn noise record (spec §3).

All randomness of one turn is drawn up front as float32 uniforms in [0, 1), so the
transition is a deterministic function of `(state, action, noise, params)` and the
plain-Python reference can replay exactly the same record. Uniforms (not decoded
events) keep the record independent of the probabilities in `EnvParams`, which may be
traced and vmapped. Decoding rules, shared by both implementations:

- fly spawn at cell i:          fly_spawn[i] < fly_spawn_prob
- move of the fly at cell i:    floor(3 * fly_move[i]) - 1            (in {-1, 0, +1})
- k-th new right-hand cell:     starts an obstacle if cell_start[k] < obstacle_rate,
                                of width 1 + floor(obstacle_max_width * cell_width[k])
- help-triggered leap:          help_leap < help_leap_prob
All arithmetic is float32 (the reference uses numpy float32 scalars to match).
"""

import jax
import jax.numpy as jnp
from flax import struct

from mirror.env.params import EnvParams


@struct.dataclass
class Noise:
    """float32 uniforms for one turn. W = world width, K = params.new_cells_max.

    fly_spawn: [W]   fly_move: [W]   cell_start: [K]   cell_width: [K]   help_leap: []
    """

    fly_spawn: jax.Array
    fly_move: jax.Array
    cell_start: jax.Array
    cell_width: jax.Array
    help_leap: jax.Array


def noise_size(params: EnvParams) -> int:
    """Number of uniforms drawn per turn (fewer than the record holds, see below)."""
    return params.world_width + 2 * params.new_cells_max + 1


_BELOW_ONE = 0.99999994  # largest float32 < 1


def _remainder(u: jax.Array, p) -> jax.Array:
    """The part of a uniform left after the Bernoulli(p) test `u < p`: uniform on [0, 1)
    and independent of the test's outcome (u/p given u < p, (u-p)/(1-p) otherwise)."""
    p = jnp.asarray(p, jnp.float32)
    r = jnp.where(u < p, u / jnp.maximum(p, 1e-30), (u - p) / jnp.maximum(1 - p, 1e-30))
    return jnp.clip(r, 0.0, _BELOW_ONE)


def noise_from_uniforms(u: jax.Array, params: EnvParams) -> Noise:
    """Fill a record from a `[..., noise_size]` block of uniforms (batched or not).

    Random bits are the main cost of a turn, so each cell's fly spawn and fly move come
    from one uniform: the spawn test uses it, the move uses its remainder (an
    independent uniform). The record itself still holds one uniform per event.
    """
    width, k = params.world_width, params.new_cells_max
    spawn = u[..., :width]
    return Noise(
        fly_spawn=spawn,
        fly_move=_remainder(spawn, params.fly_spawn_prob),
        cell_start=u[..., width : width + k],
        cell_width=u[..., width + k : width + 2 * k],
        help_leap=u[..., width + 2 * k],
    )


def sample_noise(key: jax.Array, params: EnvParams) -> Noise:
    """Draw one turn's noise with a single RNG call (one call is much cheaper than five)."""
    return noise_from_uniforms(jax.random.uniform(key, (noise_size(params),), jnp.float32), params)


def fly_moves(fly_move_u: jax.Array) -> jax.Array:
    """Decode move uniforms into steps in {-1, 0, +1} (int32)."""
    return jnp.floor(jnp.float32(3.0) * fly_move_u).astype(jnp.int32) - 1


def obstacle_widths(cell_width_u: jax.Array, max_width) -> jax.Array:
    """Decode width uniforms into widths in {1..max_width} (int32)."""
    scaled = jnp.asarray(max_width, jnp.float32) * cell_width_u
    return 1 + jnp.floor(scaled).astype(jnp.int32)
