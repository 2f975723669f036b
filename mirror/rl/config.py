"""Settings of self-play PPO (spec §9). One plain dataclass; `validate` names the bad field."""

import dataclasses
from dataclasses import dataclass

from mirror.agents.mlp import ACTIVATIONS
from mirror.errors import ConfigError

SHARING = ("shared", "independent")


class RLConfigError(ConfigError):
    """A bad RL setting; the message names the field and the allowed values."""


@dataclass(frozen=True)
class RLConfig:
    """Every field is documented once, here.

    Sizes (static: they set array shapes)
      num_envs          games played in parallel (vmapped)
      num_steps         turns per game per rollout (each turn is one decision)
      updates           PPO updates in a whole `train(key)` run
      update_epochs     passes over each rollout
      num_minibatches   minibatches per pass; must divide num_envs * num_steps
      hidden            widths of the MLP torso (the paper: 17, 17)
      checkpoint_every  updates per driver interval (one compiled call, then params come back)
    Learning (floats)
      lr, gamma, gae_lambda, clip_eps, ent_coef, vf_coef, max_grad_norm: PPO as in PureJaxRL
      partner_reward_weight  w in r_self + w * r_partner (spec §9), in [0, 1]
    Choices
      activation        a torso activation of the supervised MLP
      sharing           "shared": one network plays both players, each from its own view;
                        "independent": one network per player (params with a leading axis 2)
      anneal_lr         linear learning-rate decay to 0 over `updates`
      seed              the run's seed
    """

    num_envs: int = 2048
    num_steps: int = 64
    updates: int = 100
    update_epochs: int = 4
    num_minibatches: int = 4
    hidden: tuple = (17, 17)
    checkpoint_every: int = 10
    lr: float = 2.5e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    partner_reward_weight: float = 0.0
    activation: str = "relu"
    sharing: str = "shared"
    anneal_lr: bool = False
    seed: int = 0

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches


POSITIVE_INTS = ("num_envs", "num_steps", "updates", "update_epochs", "num_minibatches", "checkpoint_every")
UNIT_INTERVAL = ("gamma", "gae_lambda", "partner_reward_weight")
NON_NEGATIVE = ("ent_coef", "vf_coef")
POSITIVE_FLOATS = ("lr", "clip_eps", "max_grad_norm")


def _fail(name: str, allowed: str, value) -> None:
    raise RLConfigError(f"rl.{name} must be {allowed}, got {value!r}")


def validate(config: RLConfig) -> RLConfig:
    """Check every field before any work; raise `RLConfigError` naming the first bad one."""
    for name in POSITIVE_INTS:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            _fail(name, "a positive integer", value)
    for name, allowed, ok in (
        *((n, "in [0, 1]", lambda v: 0.0 <= v <= 1.0) for n in UNIT_INTERVAL),
        *((n, ">= 0", lambda v: v >= 0.0) for n in NON_NEGATIVE),
        *((n, "> 0", lambda v: v > 0.0) for n in POSITIVE_FLOATS),
    ):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
            _fail(name, f"a number {allowed}", value)
    hidden = config.hidden
    if (
        not isinstance(hidden, (tuple, list))
        or not hidden
        or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in hidden)
    ):
        _fail("hidden", "a non-empty list of positive integers", hidden)
    if config.activation not in ACTIVATIONS:
        _fail("activation", f"one of {', '.join(ACTIVATIONS)}", config.activation)
    if config.sharing not in SHARING:
        _fail("sharing", f"one of {', '.join(SHARING)}", config.sharing)
    if not isinstance(config.anneal_lr, bool):
        _fail("anneal_lr", "true or false", config.anneal_lr)
    if isinstance(config.seed, bool) or not isinstance(config.seed, int):
        _fail("seed", "an integer", config.seed)
    if config.batch_size % config.num_minibatches:
        _fail(
            "num_minibatches",
            f"a divisor of num_envs * num_steps = {config.batch_size}",
            config.num_minibatches,
        )
    if config.updates % config.checkpoint_every:
        _fail("checkpoint_every", f"a divisor of updates = {config.updates}", config.checkpoint_every)
    return config


def make_config(**fields) -> RLConfig:
    """An `RLConfig` from keyword fields (e.g. a YAML section), validated; unknown names fail."""
    known = {f.name for f in dataclasses.fields(RLConfig)}
    for name in fields:
        if name not in known:
            raise RLConfigError(f"unknown field rl.{name}; allowed: {', '.join(sorted(known))}")
    if "hidden" in fields and isinstance(fields["hidden"], list):
        fields["hidden"] = tuple(fields["hidden"])
    return validate(RLConfig(**fields))
