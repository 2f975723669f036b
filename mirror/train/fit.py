"""Supervised training from section settings, in memory: no run directory, no checkpoints.

`make_supervised_train(model, train, split, seed=...)` is `mirror.train.loop.make_train`
on `TrainSetup(model, train, seed)`, run for `train.epochs` epochs. Every epoch is the
run's own jitted program with the run's (member seed, epoch) randomness, so the params
equal those of `mirror train` with the same settings after as many epochs. Early stopping
(`train.patience`, which watches a validation split) and checkpoints belong to the run.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mirror.agents.config import ModelConfig
from mirror.train.config import TrainConfig, TrainSetup
from mirror.train.loop import Split, make_train, to_device
from mirror.train.population import Member, members_from_config


class SupervisedResult(NamedTuple):
    """What `make_supervised_train`'s `train()` returns."""

    params: Any  # MLP (or transformer) params of every member: leaves [members, ...], padded widths
    loss: jax.Array  # f32[epochs, members]: each epoch's mean minibatch loss, L2 penalty included
    members: list  # the `mirror.train.population.Member`s, in order


def make_supervised_train(
    model: ModelConfig, train: TrainConfig, split, *, seed: int = 0, members: list[Member] | None = None
) -> Callable[[], SupervisedResult]:
    """`train() -> SupervisedResult`: the population of `model` and `train` (one member per
    entry of `train.population_seeds` and the other population lists; one member of
    `seed` when they are empty) trained on `split` for `train.epochs` epochs.

    split: (inputs int8[rows, 3W+4], labels int[rows]) (a `mirror.train.loop.Split` or a
    pair; `train.max_train_rows` keeps the first rows). `members` overrides the population
    lists. Result params: leaves [members, ...] at the population's widest widths
    (members of narrower `model.population_widths` are zero-padded: pass
    `mirror.agents.mlp.unit_masks` to `cmni` as `unit_mask`)."""
    model.validate()
    train.validate()
    setup = TrainSetup(model, train, seed)
    inputs, labels = split
    if train.max_train_rows:
        inputs, labels = inputs[: train.max_train_rows], labels[: train.max_train_rows]
    labels = np.asarray(labels).astype(np.int8)
    trainer = make_train(setup, to_device(Split(inputs, labels)), members_from_config(setup) if members is None else members)

    def run() -> SupervisedResult:
        state, losses = trainer.init(), []
        for epoch in range(1, train.epochs + 1):  # epochs count from 1, as in a run
            state, metrics = trainer.epoch(state, epoch)
            losses.append(metrics.loss)
        return SupervisedResult(state.params, jnp.stack(losses), trainer.members)

    return run
