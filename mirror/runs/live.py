"""A cheap CMNI per epoch, for watching training live.

`EpochCMNI` prepares the test split once; calling it with the fresh checkpoint's
parameters [members, ...] gives the CMNI of every member in one jitted call (the shapes
are the same every epoch, so it compiles once). No null baselines: those stay in the
full analysis at the end (`mirror.runs.analysis`). The values equal the full
analysis's `cmni` column for the same checkpoint (clean, or with the published leak
when `analysis.leak_scenario` is set).
"""

import jax
import numpy as np

from mirror.agents.mlp import unit_masks
from mirror.analysis.cmni import analysed_widths, cmni, param_widths
from mirror.analysis.groups import CMNI_GROUPS, cmni_groups, leak_scenario
from mirror.runs.config import Config
from mirror.data.split import TEST


class EpochCMNI:
    def __init__(self, config: Config, dataset, widths: list):
        """`dataset`: a `mirror.data.store.Dataset`; `widths`: each member's true hidden widths."""
        test = dataset.splits == TEST
        scenarios = dataset.scenarios[test]
        self.groups = cmni_groups(scenarios, dataset.idle_shown[test])
        inputs = dataset.inputs[test]
        self.inputs = leak_scenario(inputs, scenarios) if config.analysis.leak_scenario else inputs
        self.widths = [list(w) for w in widths]
        self.activation = config.model.activation
        self.chunk_rows = config.analysis.chunk_rows
        self.usable = bool(np.isin(self.groups, np.arange(CMNI_GROUPS)).any())

    def __call__(self, params) -> np.ndarray:
        """f64[members] CMNI of one checkpoint of every member (NaN without test rows)."""
        if not self.usable:
            return np.full(len(self.widths), np.nan)
        params = jax.device_get(params)  # a sharded population state lives on several devices
        masks = unit_masks(*analysed_widths(params, self.widths, param_widths(params)))
        result = cmni(params, self.inputs, self.groups, unit_mask=masks, activation=self.activation, chunk_rows=self.chunk_rows)
        return np.asarray(result.cmni, np.float64)
