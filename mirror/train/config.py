"""Supervised training's settings (spec §8): the `train:` section of a config."""

import dataclasses
from typing import Protocol

from mirror.agents.config import ModelConfig
from mirror.base.errors import require


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Supervised training (spec §8): Adam, MSE on one-hot targets, L2 on hidden kernels.

    Shapes it sets: minibatches of [batch_size] rows (inputs int8[batch_size, 3W+4], labels
    int8[batch_size]), rows // batch_size steps per epoch; one member per entry of
    `population_seeds` (params and metrics then lead with [members])."""

    loss: str = "mse"  # "mse" (paper) or "cross_entropy"
    lr: float = 4e-6  # Adam learning rate
    batch_size: int = 25
    epochs: int = 100  # upper bound; early stopping usually ends sooner
    patience: int = 10  # epochs without validation-loss improvement before stopping (0: never stop)
    l2: float = 0.01  # weight of sum(w^2) over hidden kernels
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-7
    max_train_rows: int = 0  # use at most this many training rows (0: all)
    population_seeds: tuple = ()  # train one member per seed at once (vmap); empty: just `seed`
    # More population lists (one entry per member, zipped with the seeds and model.population_*;
    # all non-empty lists must have the same length; members without a seed list share `seed`).
    population_lrs: tuple = ()  # learning rate per member
    population_l2s: tuple = ()  # L2 weight per member
    # Per-class weights on the loss, shared by all members: "none" (the paper) or "balanced"
    # (a row of class c weighs n / (4 n_c), n_c its count in the training split; see
    # mirror.train.losses). The validation and test losses use the same weights.
    class_weights: str = "none"
    scan_unroll: int = 1  # minibatch steps per scan iteration (speed; results agree to float rounding)
    eval_chunk_rows: int = 16384  # rows per evaluation chunk (bounds memory)
    # How a population's members share a device: "map" (one after another: bit-identical
    # whatever the population size or device count; as fast as batching on a CPU), "vmap"
    # (batched: what accelerators need), "auto" (map on a CPU, vmap otherwise).
    member_batching: str = "auto"

    def validate(self) -> None:
        require(self.loss in ("mse", "cross_entropy"), "train.loss", self.loss, "'mse' or 'cross_entropy'")
        require(self.class_weights in ("none", "balanced"), "train.class_weights", self.class_weights, "'none' or 'balanced'")
        require(self.lr > 0, "train.lr", self.lr, "a positive number")
        for name in ("batch_size", "epochs", "scan_unroll", "eval_chunk_rows"):
            require(getattr(self, name) > 0, f"train.{name}", getattr(self, name), "a positive integer")
        for name in ("patience", "max_train_rows"):
            require(getattr(self, name) >= 0, f"train.{name}", getattr(self, name), "a non-negative integer")
        require(self.l2 >= 0, "train.l2", self.l2, "a non-negative number")
        require(self.member_batching in ("auto", "map", "vmap"), "train.member_batching", self.member_batching, "'auto', 'map' or 'vmap'")
        require(0 <= self.adam_b1 < 1 and 0 <= self.adam_b2 < 1, "train.adam_b1/adam_b2", (self.adam_b1, self.adam_b2), "numbers in [0, 1)")
        require(self.adam_eps > 0, "train.adam_eps", self.adam_eps, "a positive number")
        require(all(type(s) is int for s in self.population_seeds), "train.population_seeds", self.population_seeds, "integers")

        def number(v) -> float:  # YAML 1.1 reads "5e-5" as a string; accept it as scalar fields do
            try:
                return float("nan") if isinstance(v, bool) else float(v)
            except (TypeError, ValueError):
                return float("nan")

        ok = all(number(v) > 0 for v in self.population_lrs)
        require(ok, "train.population_lrs", self.population_lrs, "positive numbers")
        ok = all(number(v) >= 0 for v in self.population_l2s)
        require(ok, "train.population_l2s", self.population_l2s, "non-negative numbers")


class TrainSource(Protocol):
    """What supervised training reads: the network, the training settings and the seed of
    a single member. A run's composed config is one; `TrainSetup` is one built in code."""

    @property
    def model(self) -> ModelConfig: ...

    @property
    def train(self) -> TrainConfig: ...

    @property
    def seed(self) -> int: ...


@dataclasses.dataclass(frozen=True)
class TrainSetup:
    """Supervised training's settings without a run: `TrainSetup(ModelConfig(), TrainConfig(lr=1e-3), seed=0)`."""

    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    seed: int = 0
