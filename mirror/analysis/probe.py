"""Probe set (a) in memory: the rows a CMNI is measured on, without a run directory.

A run (`mirror run`, `mirror rl`) measures the CMNI on the test split of its dataset:
`data.test_rows` rows drawn with exact label shares `data.test_label_shares` from
`data.rows` unique rows, each row's CMNI group from its scenario and idle codes
(`mirror.analysis.groups.cmni_groups`). `probe_set` builds the same rows from a key:
the test split of `mirror.data.memory.dataset` (labels the game never produces give up
their share, as in an RL run's probe set (a)).
"""

import dataclasses

import jax
import numpy as np

from mirror.analysis.groups import cmni_groups
from mirror.base.errors import require
from mirror.data.config import DataConfig
from mirror.data.memory import MEMORY_DATA, dataset
from mirror.data.split import TEST
from mirror.env.params import EnvParams
from mirror.env.seat import veiled_frog_rows

# The RL configs' probe set (a): few help and leap rows exist, so they get 5 % each.
PROBE_LABEL_SHARES = (0.45, 0.45, 0.05, 0.05)
VEIL_STREAM = 7  # fold_in(key, VEIL_STREAM): the draw that veils rows of the seat view
POOL_FACTOR = 25  # unique rows generated per probe row: enough help rows for a 5 % share


def probe_data(rows: int) -> DataConfig:
    """The default data settings of a probe set of `rows` rows: `MEMORY_DATA` with a pool
    of 25 x `rows` unique rows (at least 10,000) and `PROBE_LABEL_SHARES`."""
    return dataclasses.replace(
        MEMORY_DATA, rows=max(POOL_FACTOR * rows, 10_000), test_rows=rows, test_label_shares=PROBE_LABEL_SHARES
    )


def probe_set(
    env_params: EnvParams, rows: int, key: jax.Array, *, data: DataConfig | None = None, view: str = "paper"
) -> tuple[np.ndarray, np.ndarray]:
    """`rows` probe rows of the game `env_params`, drawn from `key`:
    (inputs int8[rows, 3W+4], groups int8[rows]).

    inputs are model inputs (spec §5.6), what `cmni`, `permutation_null` and `init_null`
    take; groups are CMNI groups (`mirror.analysis.groups`): 0 nobody distressed, 1 Frog
    distressed (Toad shown idle), 2 Toad distressed (Frog shown idle), 3 both, -1
    excluded; only groups 0-2 enter the CMNI. Rows are the test split of a dataset of
    `data.rows` unique rows (default `probe_data(rows)`), in dataset order; the same key
    and settings give the same bytes. `data.test_rows` is replaced by `rows`.

    `view` ("paper" or "seat", `mirror.env.seat`): the rows as a network trained on that
    view reads them; with "seat" (an RL actor of `rl.view: seat`), Frog's seat and position
    are shown, hidden on the rows a fixed draw veils with probability `env_params.veil`.
    """
    require(isinstance(rows, int) and not isinstance(rows, bool) and rows > 0, "rows", rows, "a positive integer")
    data = probe_data(rows) if data is None else dataclasses.replace(data, test_rows=rows)
    require(data.rows > rows, "data.rows", data.rows, f"more than the probe's rows = {rows}")
    arrays = dataset(env_params, data.rows, key, test_rows=rows, data=data, drop_absent_labels=True)
    test = arrays["splits"] == TEST
    inputs = arrays["inputs"][test]
    if view != "paper":
        veil_key = jax.random.fold_in(key, VEIL_STREAM)
        inputs = np.asarray(veiled_frog_rows(inputs, arrays["positions"][test][:, 0], env_params.veil, veil_key, view))
    return inputs, cmni_groups(arrays["scenarios"][test], arrays["idle_shown"][test])
