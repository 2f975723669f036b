"""The dataset of spec §5 in memory, from a key: no cache directory, nothing on disk.

`dataset(env_params, rows, key)` runs the pipeline (`mirror.data.pipeline.generate_arrays`)
with the data settings `data` and the seed `seed_of(key)`, so its rows are exactly those
of a run's dataset (`mirror generate`) with `data.seed = seed_of(key)` and the same
settings. The pipeline draws everything from one integer seed (its cache is keyed by it),
hence the seed drawn from the key.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from mirror.data.config import DataConfig, DatasetSpec
from mirror.data.pipeline import generate_arrays
from mirror.env.params import EnvParams

# The default settings in memory: `DataConfig`'s but smaller chunks (1,024 games x 64
# rounds = 65,536 raw rows each, where a run's 4,096 x 256 suit millions of rows).
MEMORY_DATA = DataConfig(games=1024, rounds_per_chunk=64)


def seed_of(key: jax.Array) -> int:
    """The dataset seed (an int in [0, 2**31)) that `key` stands for: 31 random bits of it."""
    return int(np.asarray(jax.random.bits(key, (), jnp.uint32)) >> 1)


def dataset(
    env_params: EnvParams, rows: int, key: jax.Array, *, test_rows: int = 0, data: DataConfig | None = None,
    drop_absent_labels: bool = False,
) -> dict[str, np.ndarray]:
    """`rows` unique rows of the supervised dataset of the game `env_params`, generated in
    memory from `key`.

    `data` gives the other data settings (behaviour policy, test label shares, validation
    share, games and chunk sizes; default `MEMORY_DATA`); its `rows`, `test_rows` and `seed` are replaced by
    `rows`, `test_rows` and `seed_of(key)`. `drop_absent_labels`: a label the game never
    produces gives up its test share (`mirror.data.split.holdout_label_shares`) instead of
    raising.

    Returns numpy arrays over the rows: inputs int8[rows, 3W+4] (the model input, spec
    §5.6), labels int8[rows] (oracle action 0-3), scenarios int8[rows] (0-3),
    idle_shown bool[rows, 2], splits int8[rows] (0 train, 1 validation, 2 test: exactly
    `test_rows` test rows), positions int8[rows, 2], episode_rounds int32[rows].
    """
    settings = dataclasses.replace(data or MEMORY_DATA, rows=rows, test_rows=test_rows, seed=-1)
    settings.validate()
    arrays, _ = generate_arrays(DatasetSpec(settings, env_params, seed_of(key)), drop_absent_labels=drop_absent_labels)
    return arrays
