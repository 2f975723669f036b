"""Learning in the game: self-play PPO (spec §9), PureJaxRL style.

config.py    `RLConfig` and its validation
selfplay.py  turn-based rollouts and per-player credit (GAE on each player's stream)
packed_selfplay.py  the trainer's rollout: the same turns on bit-packed game states
ppo.py       `make_train(config) -> train(key)`: the whole update as one jitted program
driver.py    the host loop over checkpoint intervals
baselines.py behaviour and oracle policies, and the evaluation that scores any policy
population.py members (seed, lr, w, D, I) trained together in one compiled program
checkpoints.py the RL run directory and its readers (`read_rl_run`, `read_probes`, ...)
run.py       `rl_run`: checkpoints, probes, evaluation, baselines and resume
"""

from mirror.rl.baselines import agent_policy, behaviour_policy, compare_policies, evaluate, oracle_policy
from mirror.rl.config import RLConfig, RLConfigError, make_config, validate
from mirror.rl.driver import Interval, train_in_intervals
from mirror.rl.ppo import RunnerState, make_policy, make_train, make_trainer

__all__ = [
    "Interval", "RLConfig", "RLConfigError", "RunnerState", "agent_policy", "behaviour_policy", "compare_policies",
    "evaluate", "make_config", "make_policy", "make_train", "make_trainer", "oracle_policy",
    "train_in_intervals", "validate",
]
