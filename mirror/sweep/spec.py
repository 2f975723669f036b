"""A sweep file: a normal config (the base of every trial) plus a `sweep:` section.

    name: sweep-smoke            # the sweep's name (default directory sweeps/<name>)
    data: {rows: 100000}         # any config section: the base every trial starts from
    sweep:
      base: quickstart.yaml      # optional config file the base extends (relative to this file)
      grid:                      # every combination of these values
        model.hidden_layers: [1, 2]
        model.width: [8, 17]
      random:                    # plus `samples` draws, keyed by `seed`
        samples: 10
        seed: 0
        fields:
          train.lr: {log_uniform: [4.0e-6, 5.0e-5]}
          model.width: {int_uniform: [5, 50]}      # inclusive
          model.dropout: {uniform: [0.0, 0.3]}
          model.hidden_layers: {choice: [1, 2, 3]}
      trials:                    # plus these explicit trials
        - {model.hidden_layers: 2, model.width: 17, train.lr: 4.0e-6}
      seeds: [0, 1]              # every trial above once per model seed
      max_population: 64         # members trained together in one vmapped program
      trial_figures: true        # per-trial figures (the sweep's own figures are always drawn)

RL sweeps (`mode: rl`): the base is an RL config (with an `rl:` section, see
configs/rl_quickstart.yaml) and every trial is one self-play PPO run. They may sweep
`seed`, `data.seed`, `model.hidden_layers`, `model.width`, `model.activation`, any
`rl.*` field (e.g. rl.partner_reward_weight, rl.lr; not the rl.population_* lists, which
the sweep builds) and any `env.*` field. Trials that differ only in seed, rl.lr,
rl.partner_reward_weight, env.dependency and env.veil train as one RL population (see
`mirror.sweep.plan`). Example: configs/sweep_rl_theory.yaml.

Architectures: `model.kind` (mlp | transformer) is an axis like any other (grid, random
`choice`, explicit trials), and so are the transformer's shape fields
`model.transformer.{depth,d_model,heads,mlp_ratio}`. A shape field must belong to the
trial's kind (`model.width` / `model.hidden_layers` for mlp, `model.transformer.*` for
transformer), so to compare kinds with shapes of their own list them as explicit trials:

      trials:
        - {model.kind: mlp, model.width: 17}
        - {model.kind: transformer, model.transformer.d_model: 8}

An MLP trial's config leaves `model.kind` out (`Config.to_dict`), so the ids of MLP trials
are the same as before the field existed.

Trials are the grid, then the random draws, then the explicit trials, each repeated
for every seed in `seeds`. A trial's `seed` is its model seed (initialisation, batch
order, dropout); the dataset's seed is pinned to the base's (`data.seed`), so trials
differing only in model settings share one dataset. Every trial's config is built and
validated before any work starts; a bad field fails naming the trial and the field.
"""

import copy
import dataclasses
import itertools
from pathlib import Path
from typing import Any

import jax
import numpy as np

from mirror.base.errors import ConfigError
from mirror.base.hashing import config_hash
from mirror.env.params import EnvParams
from mirror.rl.config import FROM_OTHER_SECTIONS, POPULATION_LISTS, RLConfig, hashed_rl_section, rl_config
from mirror.runs.config import Config, load_config, merge, parse_overrides, read_yaml_mapping, set_dotted

DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "choice")
SWEEP_KEYS = ("mode", "base", "grid", "random", "trials", "seeds", "max_population", "trial_figures")
MODES = ("supervised", "rl")
# Fields a sweep may vary; env.* covers every EnvParams field (D, I, costs, ...).
SWEEPABLE = (
    "seed",
    "data.seed",
    "data.behaviour_probs",
    "model.hidden_layers",
    "model.width",
    "model.dropout",
    "model.activation",
    "model.kernel_init",
    "model.kind",
    "model.transformer.depth",
    "model.transformer.d_model",
    "model.transformer.heads",
    "model.transformer.mlp_ratio",
    "model.transformer.residual_neurons",
    "train.lr",
    "train.l2",
    "train.batch_size",
    "train.epochs",
    "train.patience",
    "train.loss",
)


# RL trials (`mode: rl`): the architecture and seed as for supervised trials, plus rl.<field>.
RL_SWEEPABLE = ("seed", "data.seed", "model.hidden_layers", "model.width", "model.activation")
# Shape fields that only one `model.kind` reads: a trial that sets one for the other kind
# would train the same model as its twin (the MLP's config ignores model.transformer.*, the
# transformer's ignores the widths), so it is refused rather than silently duplicated.
KIND_FIELDS = {
    "mlp": ("model.hidden_layers", "model.width"),
    "transformer": tuple(f for f in SWEEPABLE if f.startswith("model.transformer.")),
}


def rl_fields() -> list[str]:
    """The `rl.*` fields a sweep may vary: every RLConfig setting of one run."""
    return [f.name for f in dataclasses.fields(RLConfig) if f.name not in FROM_OTHER_SECTIONS]


def sweepable(field: str, mode: str = "supervised") -> bool:
    if field.startswith("env."):
        return field[4:] in {f.name for f in dataclasses.fields(EnvParams)}
    if mode == "rl":
        return field in RL_SWEEPABLE or (field.startswith("rl.") and field[3:] in rl_fields())
    return field in SWEEPABLE


def allowed_fields(mode: str) -> str:
    env = "env.<any of " + ", ".join(f.name for f in dataclasses.fields(EnvParams)) + ">"
    if mode == "rl":
        return ", ".join(RL_SWEEPABLE) + ", rl.<any of " + ", ".join(rl_fields()) + ">, " + env
    return ", ".join(SWEEPABLE) + ", " + env


@dataclasses.dataclass(frozen=True)
class Trial:
    index: int  # position in the sweep's trial list
    fields: dict  # the swept fields and their values (dotted names)
    config: Config  # the base with `fields` applied: a complete single-model config
    mode: str = "supervised"  # the sweep's mode: "rl" trials are self-play PPO runs

    @property
    def is_rl(self) -> bool:
        return self.mode == "rl"

    @property
    def trial_id(self) -> str:
        """Stable identity: a hash of what determines the trial's training and analysis."""
        values = self.config.to_dict()
        values["data"] = {k: v for k, v in values["data"].items() if k != "cache_dir"}
        # The rl section counts for RL trials (as the RL training hash reads it);
        # supervised ids stay what they were.
        if self.is_rl:
            values["rl"] = hashed_rl_section(self.config)
        sections = ("seed", "env", "data", "model", "train", "analysis") + (("rl",) if self.is_rl else ())
        return config_hash({k: values[k] for k in sections})[:12]


@dataclasses.dataclass(frozen=True)
class Sweep:
    name: str
    base: Config
    trials: list  # Trial
    swept: list  # dotted names of every field some trial sets, in first-seen order
    max_population: int = 64
    trial_figures: bool = True
    mode: str = "supervised"  # "supervised" (mirror train trials) or "rl" (self-play PPO trials)


def _check_fields(fields: dict, where: str, mode: str = "supervised") -> None:
    if not isinstance(fields, dict):
        raise ConfigError(f"{where} must be a mapping of field: value, got {fields!r}")
    for field in fields:
        if not sweepable(field, mode):
            raise ConfigError(f"{where}: {field!r} cannot be swept in a {mode} sweep; allowed: {allowed_fields(mode)}")


def _grid(grid: dict, mode: str) -> list[dict]:
    _check_fields(grid, "sweep.grid", mode)
    for field, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep.grid.{field} must be a non-empty list of values, got {values!r}")
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def _draw(key: jax.Array, field: str, spec: Any):
    where = f"sweep.random.fields.{field}"
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise ConfigError(f"{where} must be one of {{uniform|log_uniform|int_uniform: [low, high]}} or {{choice: [values]}}, got {spec!r}")
    kind, args = next(iter(spec.items()))
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{where}.choice must be a non-empty list, got {args!r}")
        return args[int(jax.random.randint(key, (), 0, len(args)))]
    try:
        low, high = (float(a) for a in args)
        assert low <= high and len(args) == 2
    except (TypeError, ValueError, AssertionError):
        raise ConfigError(f"{where}.{kind} must be [low, high] with low <= high, got {args!r}") from None
    if kind == "int_uniform":
        return int(jax.random.randint(key, (), int(low), int(high) + 1))
    if kind == "log_uniform":
        if low <= 0:
            raise ConfigError(f"{where}.log_uniform needs positive bounds, got {args!r}")
        value = float(np.exp(jax.random.uniform(key, (), minval=np.log(low), maxval=np.log(high))))
    else:
        value = float(jax.random.uniform(key, (), minval=low, maxval=high))
    return float(f"{value:.4g}")  # readable values (4 significant digits) in configs and tables


def _random(spec: dict, mode: str) -> list[dict]:
    if not isinstance(spec, dict) or set(spec) - {"samples", "seed", "fields"}:
        raise ConfigError(f"sweep.random must have samples, seed and fields, got {spec!r}")
    samples, seed, fields = spec.get("samples"), spec.get("seed", 0), spec.get("fields")
    if type(samples) is not int or samples < 1:
        raise ConfigError(f"sweep.random.samples = {samples!r} is invalid: expected a positive integer")
    if type(seed) is not int:
        raise ConfigError(f"sweep.random.seed = {seed!r} is invalid: expected an integer")
    _check_fields(fields, "sweep.random.fields", mode)
    key = jax.random.key(seed)
    return [
        {field: _draw(jax.random.fold_in(jax.random.fold_in(key, i), j), field, fields[field]) for j, field in enumerate(fields)}
        for i in range(samples)
    ]


def load_sweep(path: str | Path, overrides: list[str] | None = None) -> Sweep:
    """Read and validate a sweep file; `overrides` (--section.field VALUE) change the base."""
    path = Path(path)
    values = read_yaml_mapping(path)
    sweep = values.pop("sweep", None)
    if not isinstance(sweep, dict):
        raise ConfigError(f"{path} has no `sweep:` section; a sweep file is a config plus a sweep section (see mirror/sweep/spec.py)")
    unknown = sorted(set(sweep) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"unknown field(s) sweep.{', sweep.'.join(unknown)}; allowed: {list(SWEEP_KEYS)}")
    mode = sweep.get("mode", "supervised")
    if mode not in MODES:
        raise ConfigError(f"sweep.mode = {mode!r} is invalid: expected one of {list(MODES)}")
    if "base" in sweep:
        values = merge(read_yaml_mapping(path.parent / str(sweep["base"])), values)
    base_values = merge(values, parse_overrides(list(overrides or [])))
    base = load_config(None, base_values)
    _check_mode_base(base, mode)

    combos = (_grid(sweep["grid"], mode) if "grid" in sweep else []) + (_random(sweep["random"], mode) if "random" in sweep else [])
    explicit = sweep.get("trials", [])
    if not isinstance(explicit, list):
        raise ConfigError(f"sweep.trials must be a list of {{field: value}} mappings, got {explicit!r}")
    for i, trial in enumerate(explicit):
        _check_fields(trial, f"sweep.trials[{i}]", mode)
    combos += [dict(t) for t in explicit]
    seeds = sweep.get("seeds")
    if seeds is not None:
        if not isinstance(seeds, list) or not seeds or not all(type(s) is int for s in seeds):
            raise ConfigError(f"sweep.seeds = {seeds!r} is invalid: expected a non-empty list of integers")
        if any("seed" in c for c in combos):
            raise ConfigError("sweep.seeds and a swept `seed` field both set the model seed; use one of them")
        combos = [{**c, "seed": s} for c in combos or [{}] for s in seeds]
    if not combos:
        raise ConfigError(f"{path}: the sweep has no trials; give sweep.grid, sweep.random, sweep.trials or sweep.seeds")

    max_population = sweep.get("max_population", 64)
    if type(max_population) is not int or max_population < 1:
        raise ConfigError(f"sweep.max_population = {max_population!r} is invalid: expected a positive integer")
    trial_figures = sweep.get("trial_figures", True)
    if not isinstance(trial_figures, bool):
        raise ConfigError(f"sweep.trial_figures = {trial_figures!r} is invalid: expected true or false")

    trials = [Trial(i, fields, _trial_config(base, base_values, fields, i, mode), mode) for i, fields in enumerate(combos)]
    ids = [t.trial_id for t in trials]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        first = [t.index for t in trials if t.trial_id == duplicates[0]]
        raise ConfigError(f"trials {first} are the same configuration; every trial must differ (add seeds or change the grid)")
    swept = list(dict.fromkeys(field for t in trials for field in t.fields))
    return Sweep(str(base.name), base, trials, swept, max_population, trial_figures, mode)


def _check_mode_base(base: Config, mode: str) -> None:
    """An RL sweep needs an `rl:` section and builds the population lists itself; a
    supervised sweep has no use for one."""
    rl = dict(getattr(base, "rl", {}) or {})
    if mode == "supervised" and rl:
        raise ConfigError("the base config has an `rl:` section but sweep.mode is supervised; set `mode: rl` in the sweep section")
    if mode == "rl":
        for name in POPULATION_LISTS:
            if rl.get(name):
                raise ConfigError(f"rl.{name} is set in the base of an RL sweep; the sweep builds the populations: sweep the fields instead")


def check_rl_trial(config: Config) -> None:
    """An RL trial's settings, validated before any work; the error names rl.<field> (and
    says where the architecture and seed come from instead)."""
    rl_config(config)


def _trial_config(base: Config, base_values: dict, fields: dict, index: int, mode: str = "supervised") -> Config:
    values = copy.deepcopy(base_values)
    values.setdefault("data", {})
    values["data"] = {**values["data"], "seed": base.data_seed}  # model seeds share the base's dataset
    for field, value in fields.items():
        set_dotted(values, field, value)
    values["name"] = f"{base.name}-trial{index:04d}"
    try:
        config = load_config(None, values)
        if mode == "rl":
            check_rl_trial(config)
        _check_kind_fields(config, fields)
        return config
    except ConfigError as err:
        raise ConfigError(f"sweep trial {index} ({fields}): {err}") from None


def _check_kind_fields(config: Config, fields: dict) -> None:
    """A swept shape field must belong to the trial's model.kind (see KIND_FIELDS)."""
    kind = config.model.kind
    for other, names in KIND_FIELDS.items():
        for field in names:
            if other != kind and field in fields:
                raise ConfigError(
                    f"{field} only shapes a model.kind = {other} model, but this trial's model.kind is {kind!r}; "
                    f"allowed for {kind}: {', '.join(KIND_FIELDS[kind])} (pair each kind with its own shape in sweep.trials)"
                )
