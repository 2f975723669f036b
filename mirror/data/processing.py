"""Row processing of the paper's dataset (spec §5.3) and the model-input mask (spec §5.6).

Pure and jittable; rows are int8[..., 100] (spec §4 layout, W = 32).
"""

import jax
import jax.numpy as jnp
import numpy as np

from mirror.env.constants import (
    ENERGY_INDEX,
    FLIES_SLICE,
    FLY,
    OWN_CODE_INDEX,
    POSITION_INDEX,
    SCORE_INDEX,
)
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
    out = np.zeros((len(FLY_PATTERN_POSITIONS), 32), np.int8)
    for i, cells in enumerate(FLY_PATTERN_POSITIONS.values()):
        out[i, np.asarray(cells) - 1] = FLY
    return out


FLY_PATTERNS = _patterns()  # int8[6, 32]: 3 where a fly is, 0 elsewhere
FLY_PATTERNS.flags.writeable = False
ENERGY_VALUES.flags.writeable = False
ENERGY_PROBS.flags.writeable = False


def process_rows(key: jax.Array, rows: jax.Array) -> jax.Array:
    """int8[..., 100] -> int8[..., 100]: score 0, energy drawn, flies a random pattern (spec §5.3).

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
    flies = jnp.asarray(FLY_PATTERNS)[pattern]
    out = jnp.asarray(rows).astype(jnp.int8)
    out = out.at[..., FLIES_SLICE].set(flies)
    out = out.at[..., ENERGY_INDEX].set(energy)
    out = out.at[..., SCORE_INDEX].set(0)
    return out


def model_inputs(rows: jax.Array) -> jax.Array:
    """int8[..., 100] -> int8[..., 100]: own code (96), score (98), position (99) zeroed (spec §5.6).

    Energy (97) stays: it is the only observer statistic the model is meant to see.
    """
    hidden = jnp.array([OWN_CODE_INDEX, SCORE_INDEX, POSITION_INDEX])
    return jnp.asarray(rows).at[..., hidden].set(0)
