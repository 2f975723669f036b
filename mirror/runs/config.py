"""Experiment configuration: plain dataclasses loaded from `configs/*.yaml`, overridable
from the command line (`--data.rows 500000`). Unknown or invalid fields fail before any
work starts, naming the field and what is allowed.
"""

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from mirror.agents.config import ModelConfig
from mirror.analysis.config import AnalysisConfig
from mirror.base.errors import ConfigError, require
from mirror.data.config import DataConfig
from mirror.env.params import EnvParams
from mirror.env.presets import spell_out_preset
from mirror.env.validate import env_params_from_dict
from mirror.rl.config import rl_settings
from mirror.train.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    """Weights & Biases. `wandb` is imported only when tracking is on."""

    mode: str = "auto"  # auto (online with an API key, else offline), online, offline, disabled
    project: str = "mirror"
    entity: str = ""  # W&B team or user ("" = your default)
    group: str = ""  # runs of one population or sweep share a group ("" = the run name)
    tags: tuple = ()
    dir: str = ""  # where W&B writes its files ("" = inside the run directory)
    init_timeout: float = 20.0  # seconds wandb.init may wait for the server (online): a missing network fails fast

    def validate(self) -> None:
        modes = ("auto", "online", "offline", "disabled")
        require(self.mode in modes, "tracking.mode", self.mode, f"one of {list(modes)}")
        require(
            isinstance(self.init_timeout, (int, float)) and not isinstance(self.init_timeout, bool) and self.init_timeout > 0,
            "tracking.init_timeout", self.init_timeout, "a positive number of seconds",
        )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Config:
    name: str = "mirror"
    seed: int = 0
    env: dict = dataclasses.field(default_factory=dict)  # EnvParams fields (spec defaults when absent)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    tracking: TrackingConfig = TrackingConfig()
    # Self-play PPO (`mirror rl`): RLConfig fields and the RL population lists, checked by
    # `mirror.rl.config.rl_config`; the network's architecture and seed come from `model`/`seed`.
    rl: dict = dataclasses.field(default_factory=dict)

    @property
    def data_seed(self) -> int:
        """The seed the dataset is generated from."""
        return self.data.seed if self.data.seed >= 0 else self.seed

    @property
    def env_params(self) -> EnvParams:
        return env_params_from_dict(self.env)

    def validate(self) -> "Config":
        require(isinstance(self.seed, int) and not isinstance(self.seed, bool), "seed", self.seed, "an integer")
        try:
            params = self.env_params
        except ValueError as err:
            raise ConfigError(str(err)) from None
        require(params.episode_turns % 2 == 0, "env.episode_turns", params.episode_turns, "an even integer")
        for section in _SECTIONS:
            getattr(self, section).validate()
        if self.rl:  # a supervised config has no rl section; `mirror rl` checks it again in full
            rl_settings(self)
        return self

    def to_dict(self) -> dict:
        """The config as plain values. An MLP's dict leaves out `model.kind` and
        `model.transformer` (unused by it): config files, training hashes, sweep trial
        and population ids of MLP runs stay what they were before those fields existed
        (loading fills them in with their defaults)."""
        values = dataclasses.asdict(self)
        if self.model.kind == "mlp":
            del values["model"]["kind"], values["model"]["transformer"]
        elif not self.model.transformer.residual_neurons:  # likewise for transformer runs before the field
            del values["model"]["transformer"]["residual_neurons"]
        return values


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "analysis": AnalysisConfig, "tracking": TrackingConfig}


def _build(cls, values: dict, prefix: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        names = ", ".join(f"{prefix}{u}" for u in unknown)
        raise ConfigError(f"unknown config field(s) {names}; allowed in {prefix or 'the top level'}: {sorted(fields)}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name) if name not in ("env", "rl") else {}
        if name in _SECTIONS and prefix == "":
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a mapping of fields, got {value!r}")
            kwargs[name] = _build(_SECTIONS[name], value, f"{name}.")
        elif dataclasses.is_dataclass(default):  # a nested section, e.g. model.transformer
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{name} must be a mapping of fields, got {value!r}")
            kwargs[name] = _build(type(default), value, f"{prefix}{name}.")
        elif isinstance(default, tuple):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{prefix}{name} must be a list, got {value!r}")
            kwargs[name] = tuple(value)
        elif name in ("env", "rl"):
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a mapping of fields, got {value!r}")
            try:
                kwargs[name] = spell_out_preset(value) if name == "env" else dict(value)
            except ValueError as err:
                raise ConfigError(str(err)) from None
        else:
            expected = type(default)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if expected is str and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # e.g. analysis.checkpoint: 12
            if expected is float and isinstance(value, str):  # YAML 1.1 reads "5e-5" as a string
                try:
                    value = float(value)
                except ValueError:
                    pass
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ConfigError(f"{prefix}{name} must be of type {expected.__name__}, got {value!r}")
            kwargs[name] = value
    return cls(**kwargs)


def set_dotted(tree: dict, dotted: str, value: Any) -> None:
    """`set_dotted(tree, "data.rows", 5)` sets tree["data"]["rows"], creating sections."""
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted}: {part} is not a section")
    node[leaf] = value


def parse_overrides(items: list[str]) -> dict:
    """`["--data.rows", "1000", "--env.dependency=0.5"]` -> nested dict (values parsed as YAML)."""
    tree: dict = {}
    i = 0
    while i < len(items):
        item = items[i]
        if not item.startswith("--"):
            raise ConfigError(f"expected an override like --section.field VALUE, got {item!r}")
        if "=" in item:
            key, raw = item[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(items):
                raise ConfigError(f"override {item} has no value")
            key, raw = item[2:], items[i + 1]
            i += 2
        set_dotted(tree, key, _parse_yaml(raw, f"override --{key}"))
    return tree


def merge(base: dict, extra: dict) -> dict:
    """A copy of `base` with `extra` laid over it, section by section."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _parse_yaml(text: str, where: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where} is not valid YAML{at}: {problem}") from None


def read_yaml_mapping(path: str | Path) -> dict:
    """A config file's fields. An empty file is refused (it would silently mean the
    defaults, which are not the quickstart's), and so is anything but a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} cannot be read: {err}") from None
    values = _parse_yaml(text, f"config file {path}")
    if values is None:
        raise ConfigError(f"config file {path} is empty; give its fields (e.g. copy configs/quickstart.yaml)")
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of fields, got {type(values).__name__}")
    return values


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> Config:
    """Read a YAML config (or the defaults), apply overrides, validate."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        values = read_yaml_mapping(path)
    extra = parse_overrides(overrides) if isinstance(overrides, list) else (overrides or {})
    return _build(Config, merge(values, extra), "").validate()
