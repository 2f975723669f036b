"""Experiment configuration: plain dataclasses loaded from `configs/*.yaml`, overridable
from the command line (`--data.rows 500000`). Unknown or invalid fields fail before any
work starts, naming the field and what is allowed.
"""

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from mirror.env.params import EnvParams
from mirror.env.presets import spell_out_preset
from mirror.env.validate import env_params_from_dict
from mirror.errors import ConfigError  # noqa: F401  (re-exported: `from mirror.config import ConfigError`)


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
            _require(getattr(self, name) > 0, f"data.{name}", getattr(self, name), "a positive integer")
        _require(0 <= self.test_rows < self.rows, "data.test_rows", self.test_rows, f"an integer in [0, data.rows={self.rows})")
        for name in ("behaviour_probs", "test_label_shares"):
            value = getattr(self, name)
            ok = len(value) == 4 and all(v >= 0 for v in value) and abs(sum(value) - 1.0) < 1e-6
            _require(ok, f"data.{name}", value, "4 non-negative numbers (hop, jump, leap, help) summing to 1")
        _require(0.0 < self.val_fraction < 1.0, "data.val_fraction", self.val_fraction, "a number in (0, 1)")
        _require(self.seed >= -1, "data.seed", self.seed, "-1 (use the top-level seed) or a non-negative integer")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """`model.kind: transformer` (mirror.agents.transformer): pre-LayerNorm blocks."""

    depth: int = 2  # blocks
    d_model: int = 32  # token width
    heads: int = 2  # attention heads; must divide d_model
    mlp_ratio: int = 2  # block MLP hidden units = mlp_ratio * d_model
    residual_neurons: bool = False  # also count each block's (layer-normalised) residual stream as CMNI neurons

    def validate(self) -> None:
        for name in ("depth", "d_model", "heads", "mlp_ratio"):
            value = getattr(self, name)
            _require(type(value) is int and value > 0, f"model.transformer.{name}", value, "a positive integer")
        _require(type(self.residual_neurons) is bool, "model.transformer.residual_neurons", self.residual_neurons, "true or false")
        _require(
            self.d_model % self.heads == 0, "model.transformer.heads", self.heads, f"a divisor of model.transformer.d_model = {self.d_model}"
        )

    def as_tuple(self) -> tuple:
        return (self.depth, self.d_model, self.heads, self.mlp_ratio)


MODEL_KINDS = ("mlp", "transformer")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The paper's MLP (spec §8), or a small transformer (`kind: transformer`; activation,
    dropout and kernel_init then apply to its blocks, the MLP widths are unused)."""

    kind: str = "mlp"  # one of MODEL_KINDS
    transformer: TransformerConfig = TransformerConfig()

    hidden_layers: int = 2  # L
    width: int = 17  # n units per hidden layer
    activation: str = "relu"  # one of mirror.agents.mlp.ACTIVATIONS
    dropout: float = 0.12  # after each hidden layer, training only
    kernel_init: str = "glorot_uniform"  # one of mirror.agents.mlp.KERNEL_INITS
    # Populations (trained at once, see mirror.train): one entry per member; empty: the fields above.
    population_widths: tuple = ()  # hidden widths per member, e.g. [[17, 17], [8, 8]] (same depth)
    population_dropouts: tuple = ()  # dropout rate per member

    def validate(self) -> None:
        from mirror.agents.mlp import ACTIVATIONS, KERNEL_INITS

        _require(self.kind in MODEL_KINDS, "model.kind", self.kind, f"one of {list(MODEL_KINDS)}")
        self.transformer.validate()
        _require(
            self.kind == "mlp" or not self.population_widths, "model.population_widths", self.population_widths,
            "empty for model.kind = transformer (population widths are MLP-only)",
        )  # fmt: skip
        _require(self.hidden_layers > 0, "model.hidden_layers", self.hidden_layers, "a positive integer")
        _require(self.width > 0, "model.width", self.width, "a positive integer")
        _require(self.activation in ACTIVATIONS, "model.activation", self.activation, f"one of {sorted(ACTIVATIONS)}")
        _require(self.kernel_init in KERNEL_INITS, "model.kernel_init", self.kernel_init, f"one of {sorted(KERNEL_INITS)}")
        _require(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "a number in [0, 1)")
        widths = self.population_widths
        ok = all(
            isinstance(w, (list, tuple)) and len(w) > 0 and all(type(u) is int and u > 0 for u in w) for w in widths
        ) and len({len(w) for w in widths}) <= 1
        _require(ok, "model.population_widths", widths, "lists of positive hidden widths, all of the same depth")
        ok = all(type(r) in (int, float) and 0.0 <= r < 1.0 for r in self.population_dropouts)
        _require(ok, "model.population_dropouts", self.population_dropouts, "numbers in [0, 1)")

    @property
    def widths(self) -> tuple:
        return (self.width,) * self.hidden_layers


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Supervised training (spec §8): Adam, MSE on one-hot targets, L2 on hidden kernels."""

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
        _require(self.loss in ("mse", "cross_entropy"), "train.loss", self.loss, "'mse' or 'cross_entropy'")
        _require(self.class_weights in ("none", "balanced"), "train.class_weights", self.class_weights, "'none' or 'balanced'")
        _require(self.lr > 0, "train.lr", self.lr, "a positive number")
        for name in ("batch_size", "epochs", "scan_unroll", "eval_chunk_rows"):
            _require(getattr(self, name) > 0, f"train.{name}", getattr(self, name), "a positive integer")
        for name in ("patience", "max_train_rows"):
            _require(getattr(self, name) >= 0, f"train.{name}", getattr(self, name), "a non-negative integer")
        _require(self.l2 >= 0, "train.l2", self.l2, "a non-negative number")
        _require(self.member_batching in ("auto", "map", "vmap"), "train.member_batching", self.member_batching, "'auto', 'map' or 'vmap'")
        _require(0 <= self.adam_b1 < 1 and 0 <= self.adam_b2 < 1, "train.adam_b1/adam_b2", (self.adam_b1, self.adam_b2), "numbers in [0, 1)")
        _require(self.adam_eps > 0, "train.adam_eps", self.adam_eps, "a positive number")
        _require(all(type(s) is int for s in self.population_seeds), "train.population_seeds", self.population_seeds, "integers")

        def number(v) -> float:  # YAML 1.1 reads "5e-5" as a string; accept it as scalar fields do
            try:
                return float("nan") if isinstance(v, bool) else float(v)
            except (TypeError, ValueError):
                return float("nan")

        ok = all(number(v) > 0 for v in self.population_lrs)
        _require(ok, "train.population_lrs", self.population_lrs, "positive numbers")
        ok = all(number(v) >= 0 for v in self.population_l2s)
        _require(ok, "train.population_l2s", self.population_l2s, "non-negative numbers")


# analysis.roles: per-neuron permutation tests (the default) or the paper-fitted thresholds
ROLE_METHODS = ("significance", "paper")


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """CMNI and the neuron analyses (spec §7, paper §5-6)."""

    # Test rows per activation chunk: memory is models x hidden units x chunk_rows floats.
    # Up to ~2048 the float32 group means stay within 1e-6 of a float64 computation.
    chunk_rows: int = 512
    permutations: int = 200  # scenario-label permutations for the null p-value (0: skip)
    init_seeds: int = 32  # random initialisations for the untrained-network baseline (0: skip)
    # Reproduce the published leak (scenario id fed into input 98) in the CMNI itself.
    # Off: the CMNI is clean and the leaky value is still reported alongside (cmni_leak).
    leak_scenario: bool = False
    checkpoint: str = "best"  # checkpoint for neurons.csv and circuits: "best", "last" or an epoch number
    # roles: "paper" only. A neuron "responds" to Frog's (Toad's) distress when dFrog (dToad)
    # exceeds this fraction of the largest distress response in its layer; differentiating
    # neurons respond to exactly one. 0.15 reproduces the paper's Table 4 classification.
    response_fraction: float = 0.15
    # Circuits count an edge from a mirror or differentiating neuron when its weight's
    # z-score (within its weight matrix) is at least this (paper Tables 7-10: 0.5 keeps
    # L1N11 -> L2N7 at z 0.98 and drops L1N11 -> L2N0 at z 0.33).
    circuit_z: float = 0.5
    # A hub belongs to a circuit only if those counted edges carry at least this share of
    # all its positive input from the first hidden layer (the paper's hubs: ~all of it).
    circuit_share: float = 0.5
    # How neurons get their roles (mirror, differentiating, other), `mirror.analysis.significance`:
    # "significance": per-neuron permutation p-values (analysis.permutations of them), Benjamini-
    # Hochberg at `alpha`, mirror calibrated against the analysis.init_seeds random-init units
    # (so it needs both); "paper": the thresholds fitted to the paper's Table 4 (response_fraction).
    roles: str = "significance"
    alpha: float = 0.05  # false discovery rate of the per-neuron tests
    # cmni_matched's cells: oracle label x this many energy bins, edges at the baseline
    # group's energy quantiles (`mirror.analysis.variants`); 1 matches on the label alone.
    match_energy_bins: int = 4

    def validate(self) -> None:
        _require(self.chunk_rows > 0, "analysis.chunk_rows", self.chunk_rows, "a positive integer")
        for name in ("permutations", "init_seeds"):
            _require(getattr(self, name) >= 0, f"analysis.{name}", getattr(self, name), "a non-negative integer")
        ok = self.checkpoint in ("best", "last") or self.checkpoint.isdigit()
        _require(ok, "analysis.checkpoint", self.checkpoint, "'best', 'last' or an epoch number")
        _require(0.0 <= self.response_fraction < 1.0, "analysis.response_fraction", self.response_fraction, "a number in [0, 1)")
        _require(0.0 <= self.circuit_share <= 1.0, "analysis.circuit_share", self.circuit_share, "a number in [0, 1]")
        ok = isinstance(self.match_energy_bins, int) and not isinstance(self.match_energy_bins, bool) and self.match_energy_bins >= 1
        _require(ok, "analysis.match_energy_bins", self.match_energy_bins, "an integer >= 1")
        self.validate_roles()

    def validate_roles(self) -> None:
        _require(self.roles in ROLE_METHODS, "analysis.roles", self.roles, f"one of {list(ROLE_METHODS)}")
        _require(0.0 < self.alpha < 1.0, "analysis.alpha", self.alpha, "a number in (0, 1)")
        if self.roles == "significance" and self.permutations == 0:
            raise ConfigError(
                "analysis.roles = 'significance' needs per-neuron permutation p-values but analysis.permutations = 0: "
                "set analysis.permutations to a positive count (e.g. 200) or analysis.roles to 'paper'"
            )
        if self.roles == "significance" and self.init_seeds == 0:
            raise ConfigError(
                "analysis.roles = 'significance' calibrates mirror neurons against random-initialisation units but "
                "analysis.init_seeds = 0: set analysis.init_seeds to a positive count (e.g. 32) or analysis.roles to 'paper'"
            )


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
        _require(self.mode in modes, "tracking.mode", self.mode, f"one of {list(modes)}")
        _require(
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
        _require(isinstance(self.seed, int) and not isinstance(self.seed, bool), "seed", self.seed, "an integer")
        try:
            params = self.env_params
        except ValueError as err:
            raise ConfigError(str(err)) from None
        _require(params.episode_turns % 2 == 0, "env.episode_turns", params.episode_turns, "an even integer")
        for section in _SECTIONS:
            getattr(self, section).validate()
        if self.rl:  # a supervised config has no rl section; `mirror rl` checks it again in full
            from mirror.rl.config import rl_settings

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


def _require(ok: bool, field: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{field} = {value!r} is invalid: expected {allowed}")


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


def config_hash(values: dict) -> str:
    """Stable short hash of a JSON-able config dict (dataset cache key, checkpoint metadata)."""
    blob = json.dumps(values, sort_keys=True, default=list).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
