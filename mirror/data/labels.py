"""Per-row facts of Frog's observations: distress, scenario, oracle label, idle codes (spec §4, §5).

A row is Frog's observation int8[..., 3W+4] (W = 32 gives the 100-integer layout of
spec §4: ground, players line, flies, then own code, energy, score, position). W is
read from the row length; a `world_width` given as well is checked against it. Every
function takes any leading batch shape, is pure and works under `jax.jit` / `jax.vmap`.
The label oracle itself lives beside the behaviour policy in `mirror.env.policy` (the
rulebook in one place); it is re-exported here for the dataset and the analysis.

`toad_position` is a true-state fact stored next to each row: the players line alone
cannot locate Toad when both players stand on one cell or when the veil shows Toad as 4.
"""

import jax
import jax.numpy as jnp

from mirror.env.constants import FROG_IDLE, IDLE_CODES
from mirror.env.observation import cell_at, checked_layout, observer_position, rough_at
from mirror.env.policy import oracle_label

__all__ = [
    "SCENARIO_BOTH", "SCENARIO_FROG", "SCENARIO_NAMES", "SCENARIO_NONE", "SCENARIO_TOAD",
    "frog_distress", "idle_shown", "oracle_label", "scenario", "toad_distress",
]  # fmt: skip

SCENARIO_NONE = 0  # nobody distressed
SCENARIO_FROG = 1  # Frog distressed only
SCENARIO_TOAD = 2  # Toad distressed only
SCENARIO_BOTH = 3  # both distressed
SCENARIO_NAMES = ("none", "frog", "toad", "both")


def frog_distress(rows: jax.Array, world_width: int | None = None) -> jax.Array:
    """bool[...]: the ground at Frog's position (the last code of the row, 3W+3) is ROUGH."""
    return rough_at(rows, observer_position(rows, world_width), world_width)


def toad_distress(rows: jax.Array, toad_position: jax.Array, world_width: int | None = None) -> jax.Array:
    """bool[...]: the ground at Toad's (true) position toad_position[...] is ROUGH."""
    return rough_at(rows, jnp.asarray(toad_position), world_width)


def scenario(frog_d: jax.Array, toad_d: jax.Array) -> jax.Array:
    """int8[...]: 0 none, 1 Frog distressed only, 2 Toad only, 3 both (spec §5.5)."""
    frog_d, toad_d = jnp.asarray(frog_d, bool), jnp.asarray(toad_d, bool)
    return (frog_d.astype(jnp.int8) + 2 * toad_d.astype(jnp.int8)).astype(jnp.int8)


def idle_shown(rows: jax.Array, toad_position: jax.Array, world_width: int | None = None) -> jax.Array:
    """bool[..., 2]: Frog / Toad appears on the players line with an idle code.

    Frog: its cell shows 4 and Toad is elsewhere (on a shared cell the code is Toad's).
    Toad: its cell shows 4 or 5 (4 when the veil hides its identity). Used by CMNI (spec §7).
    """
    players = rows[..., checked_layout(rows, world_width).players]
    f = observer_position(rows)
    t = jnp.asarray(toad_position).astype(jnp.int32)
    frog_idle = (cell_at(players, f) == FROG_IDLE) & (f != t)
    toad_idle = jnp.isin(cell_at(players, t), jnp.asarray(IDLE_CODES))
    return jnp.stack(jnp.broadcast_arrays(frog_idle, toad_idle), axis=-1)
