"""mirror: Frog-and-Toad mirror-neuron experiments in JAX.

The library in a few names, for notebooks and scripts (the run directories, reports and
sweeps live in `mirror.runs`, `mirror.sweep` and the `mirror` command):

    env         EnvParams, reset, step, render
    data        dataset (the supervised dataset in memory), probe_set (rows + CMNI groups)
    RL          RLConfig, make_train (a population of self-play PPO agents), evaluate
    supervised  ModelConfig, TrainConfig, make_supervised_train
    CMNI        cmni, cmni_variants, permutation_null, init_null, empirical_p_value

Whole scripts: examples/rl_cmni.py and examples/supervised_cmni.py.
"""

from mirror.agents.config import ModelConfig
from mirror.analysis.cmni import cmni, empirical_p_value, init_null, permutation_null
from mirror.analysis.probe import probe_set
from mirror.analysis.variants import cmni_variants
from mirror.data.memory import dataset
from mirror.env import EnvParams, render, reset, step
from mirror.rl.baselines import evaluate
from mirror.rl.config import RLConfig
from mirror.rl.population import make_population_train as make_train
from mirror.train.config import TrainConfig
from mirror.train.fit import make_supervised_train

__all__ = [
    "EnvParams", "reset", "step", "render",
    "RLConfig", "make_train", "evaluate",
    "ModelConfig", "TrainConfig", "make_supervised_train",
    "dataset", "probe_set",
    "cmni", "cmni_variants", "permutation_null", "init_null", "empirical_p_value",
]  # fmt: skip
