"""Which view an RL run's networks were trained on, and probe set (a) shown that way.

New runs record `rl.view` in rl_run.json (`mirror.env.seat`); a run without the field
trained before it existed, on the paper's §5.6 input ("paper").
"""

import jax
import numpy as np

from mirror.env.seat import veiled_frog_rows

LEGACY_VIEW = "paper"
PROBE_A_VEIL_SEED = 20261207  # the fixed draw that veils probe set (a)'s rows (I strictly inside (0, 1))


def run_view(rl_run: dict | None) -> str:
    """The view of an RL run (rl_run.json); a supervised run (None) reads the paper's input."""
    return LEGACY_VIEW if rl_run is None else str(rl_run.get("view", LEGACY_VIEW))


def probe_a_inputs(inputs: np.ndarray, positions: np.ndarray, veil: float, view: str) -> np.ndarray:
    """The dataset's test rows (Frog's §5.6 inputs, int8[rows, 3W+4]; positions int8[rows, 2])
    as a network trained on `view` reads them (spec §9 "Seat"): Frog's seat and position
    shown, hidden on the rows a fixed draw veils with probability `veil` (all rows at
    I = 1, none at I = 0). Unchanged under the paper's view."""
    if view == LEGACY_VIEW:
        return np.asarray(inputs)
    return np.asarray(veiled_frog_rows(np.asarray(inputs), np.asarray(positions)[:, 0], float(veil), jax.random.key(PROBE_A_VEIL_SEED), view))
