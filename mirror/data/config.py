"""The dataset's settings (spec §5): the `data:` section of a config."""

import dataclasses
from typing import Protocol

from mirror.base.errors import require
from mirror.env.params import EnvParams


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The supervised dataset of spec §5."""

    rows: int = 200_000  # unique (input, label) rows to generate (paper: 6,000,000)
    games: int = 4096  # parallel games in the rollout
    rounds_per_chunk: int = 256  # Frog decisions per game per generation chunk
    max_chunks: int = 10_000  # give up (with an error) if the unique rows never reach `rows`
    behaviour_probs: tuple = (0.5, 0.25, 0.125, 0.125)  # hop, jump, leap, help (spec §5.1)
    test_rows: int = 100_000  # test-set size (spec §5.8)
    test_label_shares: tuple = (0.4, 0.4, 0.1, 0.1)  # hop, jump, leap, help shares of the test set
    val_fraction: float = 0.2  # of the non-test rows
    cache_dir: str = "datasets"  # datasets are cached here by config hash
    seed: int = -1  # the dataset's seed; -1: the top-level `seed` (sweeps pin it so model seeds share one dataset)

    def validate(self) -> None:
        for name in ("rows", "games", "rounds_per_chunk", "max_chunks"):
            require(getattr(self, name) > 0, f"data.{name}", getattr(self, name), "a positive integer")
        require(0 <= self.test_rows < self.rows, "data.test_rows", self.test_rows, f"an integer in [0, data.rows={self.rows})")
        for name in ("behaviour_probs", "test_label_shares"):
            value = getattr(self, name)
            ok = len(value) == 4 and all(v >= 0 for v in value) and abs(sum(value) - 1.0) < 1e-6
            require(ok, f"data.{name}", value, "4 non-negative numbers (hop, jump, leap, help) summing to 1")
        require(0.0 < self.val_fraction < 1.0, "data.val_fraction", self.val_fraction, "a number in (0, 1)")
        require(self.seed >= -1, "data.seed", self.seed, "-1 (use the top-level seed) or a non-negative integer")


class DatasetSource(Protocol):
    """What the dataset pipeline reads: the data settings, the game and the seed. A run's
    composed config is one; `DatasetSpec` is one built in code."""

    @property
    def data(self) -> DataConfig: ...

    @property
    def env_params(self) -> EnvParams: ...

    @property
    def data_seed(self) -> int: ...


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset's recipe without a run: `DatasetSpec(DataConfig(rows=20_000), EnvParams(), 0)`."""

    data: DataConfig = DataConfig()
    env_params: EnvParams = EnvParams()
    data_seed: int = 0
