"""Learning in the game: self-play PPO (spec §9), PureJaxRL style.

config.py    `RLConfig` and its validation
turns.py     the one turn function (training, evaluation, probes) on bit-packed game states,
             with who decides as a callable (agents and scripted policies alike)
credit.py    per-player credit: the `Transition` record and GAE on each player's stream
ppo.py       `make_train(config) -> train(key)`: the whole update as one jitted program
driver.py    the host loop over checkpoint intervals
scripted.py  scripted policies (hop_jump, oracle, helper, frozen partner) as per-game functions
baselines.py the behaviour and scripted baselines, and the evaluation that scores any policy
population.py members (seed, lr, w, D, I) trained together in one compiled program
stakes.py    the regime diagnostics: what a partner's distress is worth, per D
ablation.py  agents with chosen actor units fixed at their mean or zero, in games

A run directory (checkpoints, probes, resume) is `mirror.runs.rl_run`'s job.
"""

from mirror.rl.baselines import (
    agent_policy,
    behaviour_policy,
    compare_policies,
    evaluate,
    hop_jump_policy,
    oracle_policy,
    scripted_baselines,
)
from mirror.rl.config import RLConfig, RLConfigError, make_config, validate
from mirror.rl.driver import Interval, train_in_intervals
from mirror.rl.ppo import RunnerState, make_policy, make_train, make_trainer
from mirror.rl.turns import per_player, scripted_policy

__all__ = [
    "Interval", "RLConfig", "RLConfigError", "RunnerState", "agent_policy", "behaviour_policy", "compare_policies",
    "evaluate", "hop_jump_policy", "make_config", "make_policy", "make_train", "make_trainer", "oracle_policy",
    "per_player", "scripted_baselines", "scripted_policy", "train_in_intervals", "validate",
]
