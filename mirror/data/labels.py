"""Per-row facts of Frog's observations: distress, scenario, oracle label, idle codes (spec §4, §5).

A row is Frog's observation int8[..., 3W+4] (W = 32 gives the 100-integer layout of
spec §4: ground, players line, flies, then own code, energy, score, position). Every
function takes any leading batch shape, is pure and works under `jax.jit` / `jax.vmap`.
These are the single definitions used by the dataset, the analysis and the oracle policy.

`toad_position` is a true-state fact stored next to each row: the players line alone
cannot locate Toad when both players stand on one cell or when the veil shows Toad as 4.
"""

import jax
import jax.numpy as jnp

from mirror.env.constants import FROG_IDLE, HELP, HOP, JUMP, LEAP, ROUGH, SOLID, TOAD_IDLE

SCENARIO_NONE = 0  # nobody distressed
SCENARIO_FROG = 1  # Frog distressed only
SCENARIO_TOAD = 2  # Toad distressed only
SCENARIO_BOTH = 3  # both distressed
SCENARIO_NAMES = ("none", "frog", "toad", "both")


def _check_width(rows: jax.Array, world_width: int) -> None:
    # world_width is static; a mismatch with the row length is a caller bug, caught at trace time.
    if rows.shape[-1] != 3 * world_width + 4:
        raise ValueError(f"rows of length {rows.shape[-1]} do not fit world_width={world_width}")


def _position(rows: jax.Array, world_width: int) -> jax.Array:
    """int32[...]: Frog's position, the last entry of the row."""
    return rows[..., 3 * world_width + 3].astype(jnp.int32)


def _at(layer: jax.Array, index: jax.Array) -> jax.Array:
    """layer[..., W] gathered at index[...] (clipped into range, so never out of bounds).

    index broadcasts against layer's leading shape (e.g. one Toad position for many rows).
    """
    index = jnp.clip(jnp.asarray(index).astype(jnp.int32), 0, layer.shape[-1] - 1)
    index = jnp.broadcast_to(index, layer.shape[:-1])
    return jnp.take_along_axis(layer, index[..., None], axis=-1)[..., 0]


def frog_distress(rows: jax.Array, world_width: int = 32) -> jax.Array:
    """bool[...]: the ground at Frog's position (row index 3W+3 = 99) is ROUGH."""
    _check_width(rows, world_width)
    return _at(rows[..., :world_width], _position(rows, world_width)) == ROUGH


def toad_distress(rows: jax.Array, toad_position: jax.Array, world_width: int = 32) -> jax.Array:
    """bool[...]: the ground at Toad's (true) position toad_position[...] is ROUGH."""
    _check_width(rows, world_width)
    return _at(rows[..., :world_width], jnp.asarray(toad_position)) == ROUGH


def scenario(frog_d: jax.Array, toad_d: jax.Array) -> jax.Array:
    """int8[...]: 0 none, 1 Frog distressed only, 2 Toad only, 3 both (spec §5.5)."""
    frog_d, toad_d = jnp.asarray(frog_d, bool), jnp.asarray(toad_d, bool)
    return (frog_d.astype(jnp.int8) + 2 * toad_d.astype(jnp.int8)).astype(jnp.int8)


def oracle_label(rows: jax.Array, toad_d: jax.Array, world_width: int = 32) -> jax.Array:
    """int8[...]: the oracle's action for Frog (spec §5.4), the first rule that applies.

    rows int8[..., 3W+4] (energy at 3W+1 is the processed energy), toad_d bool[...].
    """
    _check_width(rows, world_width)
    w = world_width
    f = _position(rows, w)
    energy = rows[..., 3 * w + 1].astype(jnp.int32)
    frog_d = frog_distress(rows, w)
    toad_d = jnp.asarray(toad_d, bool)
    # At f == W-1 the cell f+1 does not exist; rule 2 decides first, the clipped read is unused.
    next_solid = _at(rows[..., :w], f + 1) == SOLID
    # Evaluated from the last rule up, so each earlier rule overrides the later ones.
    label = jnp.where(f + 5 < w - 1, LEAP, HOP)  # rules 5, 6
    label = jnp.where(next_solid, HOP, label)  # rule 4
    label = jnp.where((f >= w - 6) & ~frog_d & toad_d, HELP, label)  # rule 3
    label = jnp.where(f == w - 1, HELP, label)  # rule 2
    label = jnp.where(energy <= 0, JUMP, label)  # rule 1
    return label.astype(jnp.int8)


def idle_shown(rows: jax.Array, toad_position: jax.Array, world_width: int = 32) -> jax.Array:
    """bool[..., 2]: Frog / Toad appears on the players line with an idle code.

    Frog: its cell shows 4 and Toad is elsewhere (on a shared cell the code is Toad's).
    Toad: its cell shows 4 or 5 (4 when the veil hides its identity). Used by CMNI (spec §7).
    """
    _check_width(rows, world_width)
    w = world_width
    players = rows[..., w : 2 * w]
    f = _position(rows, w)
    t = jnp.asarray(toad_position).astype(jnp.int32)
    frog_idle = (_at(players, f) == FROG_IDLE) & (f != t)
    toad_code = _at(players, t)
    toad_idle = (toad_code == FROG_IDLE) | (toad_code == TOAD_IDLE)
    return jnp.stack(jnp.broadcast_arrays(frog_idle, toad_idle), axis=-1)
