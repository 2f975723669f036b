"""The host loop of a run: one compiled call per checkpoint interval, nothing else.

`train_in_intervals` yields after every `checkpoint_every` updates with the runner state
(params, optimizer, games, key) and that interval's metrics as host NumPy arrays, so a
caller can checkpoint, log or stop between intervals; the updates themselves never sync.
"""

from typing import Iterator, NamedTuple

import jax
import numpy as np

from mirror.env import EnvParams
from mirror.rl.config import RLConfig, validate
from mirror.rl.ppo import RunnerState, make_trainer


class Interval(NamedTuple):
    updates_done: int
    runner: RunnerState
    metrics: dict  # name -> np.ndarray [checkpoint_every, ...]


def train_in_intervals(
    config: RLConfig, env_params: EnvParams | None = None, runner: RunnerState | None = None
) -> Iterator[Interval]:
    """Run `config.updates` updates (or what is left of them when `runner` resumes a run),
    yielding after each interval. The interval program is compiled once."""
    validate(config)
    trainer = make_trainer(config, env_params)
    interval = jax.jit(lambda r: trainer.run(r, config.checkpoint_every))
    if runner is None:
        runner = jax.jit(trainer.init)(jax.random.key(config.seed))
    done = int(runner.update)
    while done < config.updates:
        runner, metrics = interval(runner)
        done = int(runner.update)  # the one host sync per interval
        yield Interval(done, runner, jax.tree_util.tree_map(np.asarray, metrics))
