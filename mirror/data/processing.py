"""Row processing of the paper's dataset (spec §5.3) and the model-input mask (spec §5.6).

Pure and jittable; rows are int8[..., 3W+4] (spec §4 layout; 100 codes at W = 32), W
read from the row length.
"""

import jax
import jax.numpy as jnp
import numpy as np

from mirror.env.constants import DEFAULT_WORLD_WIDTH, FLY, layout_of
from mirror.env.policy import actions_from_uniforms

# Processed-energy distribution (spec §5.3). Kept as numpy so importing needs no device.
ENERGY_VALUES = np.array([0, 1, 2, 4, 6, 8, 10, 12, 14, 16, 18], np.int8)
ENERGY_PROBS = np.array([0.5] + [0.0625] * 4 + [0.05] * 3 + [1 / 30] * 3, np.float64)
assert ENERGY_VALUES.shape == ENERGY_PROBS.shape
assert abs(ENERGY_PROBS.sum() - 1.0) < 1e-12, ENERGY_PROBS.sum()

# The six fly patterns A-F (spec §5.3), as 1-based positions of the value 3.
FLY_PATTERN_POSITIONS = {
    "A": (1, 2, 11, 16, 17, 22, 27),
    "B": (1, 4, 6, 9, 14, 19, 20, 25, 29),
    "C": (2, 4, 14, 20, 24, 28, 29, 32),
    "D": (2, 5, 13, 20, 27),
    "E": (2, 6, 13, 15, 19, 30),
    "F": (2, 7, 13, 15, 18, 24, 25, 29),
}
FLY_PATTERN_NAMES = tuple(FLY_PATTERN_POSITIONS)


def _patterns() -> np.ndarray:
    out = np.zeros((len(FLY_PATTERN_POSITIONS), DEFAULT_WORLD_WIDTH), np.int8)
    for i, cells in enumerate(FLY_PATTERN_POSITIONS.values()):
        out[i, np.asarray(cells) - 1] = FLY
    return out


# int8[6, 32]: 3 where a fly is, 0 elsewhere. The patterns are written for the spec's 32
# cells; a narrower world shows the first W cells of each (flies past its edge are dropped).
FLY_PATTERNS = _patterns()
FLY_PATTERNS.flags.writeable = False
ENERGY_VALUES.flags.writeable = False
ENERGY_PROBS.flags.writeable = False


def process_rows(key: jax.Array, rows: jax.Array) -> jax.Array:
    """int8[..., 3W+4] -> int8[..., 3W+4]: score 0, energy drawn, flies a random pattern (spec §5.3).

    Each row gets one uniform for its energy (inverse CDF over ENERGY_PROBS) and one for
    its fly pattern (uniform over the six); everything else is returned unchanged.
    """
    batch = rows.shape[:-1]
    k_energy, k_flies = jax.random.split(key)
    u_energy = jax.random.uniform(k_energy, batch, jnp.float32)
    u_flies = jax.random.uniform(k_flies, batch, jnp.float32)
    energy = jnp.asarray(ENERGY_VALUES)[actions_from_uniforms(u_energy, ENERGY_PROBS)]
    n_patterns = FLY_PATTERNS.shape[0]
    # floor(6u) for u in [0, 1); the clip only guards float rounding at the top.
    pattern = jnp.minimum((u_flies * n_patterns).astype(jnp.int32), n_patterns - 1)
    layout = layout_of(rows)
    if layout.width > DEFAULT_WORLD_WIDTH:
        raise ValueError(f"the fly patterns cover {DEFAULT_WORLD_WIDTH} cells, not world_width={layout.width}")
    flies = jnp.asarray(FLY_PATTERNS[:, : layout.width])[pattern]
    out = jnp.asarray(rows).astype(jnp.int8)
    out = out.at[..., layout.flies].set(flies)
    out = out.at[..., layout.energy].set(energy)
    out = out.at[..., layout.score].set(0)
    return out


def model_inputs(rows: jax.Array) -> jax.Array:
    """int8[..., 3W+4] -> int8[..., 3W+4]: own code (3W), score (3W+2) and position (3W+3)
    zeroed (spec §5.6; 96, 98, 99 at W = 32).

    Energy (3W+1) stays: it is the only observer statistic the model is meant to see.
    """
    layout = layout_of(rows)
    hidden = jnp.array([layout.own_code, layout.score, layout.position])
    return jnp.asarray(rows).at[..., hidden].set(0)
