"""Which test rows feed which scenario mean of the CMNI (spec §7).

Every test row gets one CMNI group:

| group | rows | feeds |
| --- | --- | --- |
| 0 `NONE` | every scenario-0 row (nobody distressed) | `mu(0)`, the baseline |
| 1 `FROG` | scenario-1 rows (Frog distressed only) where Toad shows an idle code | `mu(1)` |
| 2 `TOAD` | scenario-2 rows (Toad distressed only) where Frog shows its idle code 4 | `mu(2)` |
| 3 `BOTH` | every scenario-3 row (both distressed) | moments and figures only |
| -1 `EXCLUDED` | scenario-1 rows where Toad shows an action code (6, 7, 8), scenario-2 rows where Frog does not show idle | nothing |

The idle condition keeps the partner's own action code out of the single-distress
means, so `dFrog` and `dToad` compare distress with no distress rather than
"distress plus a jumping partner". Idle flags come from the dataset
(`mirror.data.labels.idle_shown`; Toad counts as idle when shown as 4 or 5).
"""

import numpy as np

from mirror.data.labels import SCENARIO_BOTH, SCENARIO_FROG, SCENARIO_NONE, SCENARIO_TOAD
from mirror.env.constants import layout_of

NONE, FROG, TOAD, BOTH, EXCLUDED = 0, 1, 2, 3, -1
GROUP_NAMES = ("none", "frog", "toad", "both")  # distress none / Frog / Toad / both
CMNI_GROUPS = 3  # groups 0, 1, 2 define the CMNI


def cmni_groups(scenarios: np.ndarray, idle_shown: np.ndarray) -> np.ndarray:
    """int8[rows] CMNI group per row (table above) from scenarios int8[rows] (0-3) and
    idle_shown bool[rows, 2] (Frog, Toad shown idle)."""
    scenarios = np.asarray(scenarios)
    idle_shown = np.asarray(idle_shown, bool)
    groups = np.full(scenarios.shape, EXCLUDED, np.int8)
    groups[scenarios == SCENARIO_NONE] = NONE
    groups[(scenarios == SCENARIO_FROG) & idle_shown[:, 1]] = FROG
    groups[(scenarios == SCENARIO_TOAD) & idle_shown[:, 0]] = TOAD
    groups[scenarios == SCENARIO_BOTH] = BOTH
    return groups


def leak_scenario(inputs: np.ndarray, scenarios: np.ndarray) -> np.ndarray:
    """The published computation's leak (spec §7): a copy of inputs[rows, 3W+4] with the
    row's scenario id (0-3) in the score input 3W+2 (98 at W = 32; always 0 in training)."""
    leaked = np.array(inputs, copy=True)
    leaked[:, layout_of(leaked).score] = np.asarray(scenarios, leaked.dtype)
    return leaked
