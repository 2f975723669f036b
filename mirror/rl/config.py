"""Settings of self-play PPO (spec §9). One plain dataclass; `validate` names the bad field."""

import dataclasses
from dataclasses import dataclass

from mirror.agents.mlp import ACTIVATIONS
from mirror.base.errors import ConfigError
from mirror.env.seat import VIEWS

SHARING = ("shared", "independent")
CRITICS = ("separate", "shared", "central")


class RLConfigError(ConfigError):
    """A bad RL setting; the message names the field and the allowed values."""


@dataclass(frozen=True)
class RLConfig:
    """Every field is documented once, here.

    Shapes it sets: each update plays a rollout of [num_steps, num_envs] turns
    (batch_size = num_envs * num_steps rows); the actor maps model inputs f32[3W+4] through
    the torso `hidden` to 4 logits, stored as the supervised MLP's params (hidden_i kernel
    [fan_in, width], output kernel [hidden[-1], 4]).

    Sizes (static: they set array shapes)
      num_envs          games played in parallel (vmapped)
      num_steps         turns per game per rollout (each turn is one decision)
      updates           PPO updates in a whole `train(key)` run
      update_epochs     passes over each rollout
      num_minibatches   minibatches per pass; must divide num_envs * num_steps
      hidden            widths of the MLP torso (the paper: 17, 17)
      transformer       (depth, d_model, heads, mlp_ratio) of a transformer torso
                        (`model.kind: transformer`); empty: the MLP torso of `hidden`
      checkpoint_every  updates per driver interval (one compiled call, then params come back)
    Learning (floats)
      lr, gamma, gae_lambda, clip_eps, ent_coef, vf_coef, max_grad_norm: PPO as in PureJaxRL
      partner_reward_weight  w in r_self + w * r_partner (spec §9), in [0, 1]
      soo_weight        >= 0: the weight of the self/other overlap loss added to the actor's
                        (`mirror.rl.overlap`): the scaled distance between the actor's
                        hidden activations on each view and on its distress mirror
                        (`mirror.env.pairs`). 0 (default): no such loss, and the program
                        is the one without it. Needs view "seat" and an MLP torso
    Choices
      activation        a torso activation of the supervised MLP
      sharing           "shared": one network plays both players, each from its own view;
                        "independent": one network per player (params with a leading axis 2)
      view              what the networks see (`mirror.env.seat`): "seat" (default): the
                        §5.6 input plus the player's seat and own position, both hidden
                        under the veil (spec §9 "Seat"); "paper": the §5.6 input alone
                        (the runs before the field existed: a shared network cannot tell
                        its seat)
      critic            "separate": the value comes from a critic network of the actor's
                        torso shape, so the actor (torso + 4 logits, the analysed network)
                        is trained by the policy loss alone (PureJaxRL, JaxMARL); "central":
                        as separate, but the critic also reads the game state the actor does
                        not see (both players' positions, energies, last actions and scores,
                        and the turn of the episode: `mirror.rl.central`; centralised
                        training, decentralised execution, as MAPPO); "shared": the value
                        head on the actor's torso (runs before the field existed)
      clip_value        clip the value prediction to +-clip_eps around the rollout's value
                        (PureJaxRL's loss); false: plain squared error
      value_norm        the critic predicts value targets normalised by the running mean and
                        std of all targets seen so far (`mirror.rl.ppo.ValueNorm`, carried in
                        the runner state); GAE reads the de-normalised values
                        The run before these fields: critic shared, clip_value true,
                        value_norm false (reproduced bit for bit, tested).
      anneal_lr         linear learning-rate decay to 0 over `updates`
      seed              the run's seed
    """

    num_envs: int = 2048
    num_steps: int = 64
    updates: int = 100
    update_epochs: int = 4
    num_minibatches: int = 4
    hidden: tuple = (17, 17)
    transformer: tuple = ()
    checkpoint_every: int = 10
    lr: float = 2.5e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    partner_reward_weight: float = 0.0
    soo_weight: float = 0.0
    activation: str = "relu"
    sharing: str = "shared"
    view: str = "seat"
    critic: str = "separate"
    clip_value: bool = False
    value_norm: bool = True
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
NON_NEGATIVE = ("ent_coef", "vf_coef", "soo_weight")
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
    arch = config.transformer
    if arch and (
        not isinstance(arch, (tuple, list))
        or len(arch) != 4
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in arch)
        or arch[1] % arch[2]
    ):
        _fail("transformer", "empty or 4 positive integers (depth, d_model, heads, mlp_ratio), heads dividing d_model", arch)
    if config.activation not in ACTIVATIONS:
        _fail("activation", f"one of {', '.join(ACTIVATIONS)}", config.activation)
    if config.sharing not in SHARING:
        _fail("sharing", f"one of {', '.join(SHARING)}", config.sharing)
    if config.view not in VIEWS:
        _fail("view", f"one of {', '.join(VIEWS)}", config.view)
    if config.critic == "central" and config.transformer:
        _fail("critic", "separate or shared with a transformer torso (the central critic is an MLP)", config.critic)
    if config.critic not in CRITICS:
        _fail("critic", f"one of {', '.join(CRITICS)}", config.critic)
    if config.soo_weight > 0 and (config.view != "seat" or config.transformer):
        _fail(
            "soo_weight", "0 unless rl.view is seat and the torso an MLP (the pairs locate the observer by its seat and "
            "position; the overlap is over the MLP's hidden layers)", config.soo_weight,
        )  # fmt: skip
    for name in ("clip_value", "value_norm", "anneal_lr"):
        if not isinstance(getattr(config, name), bool):
            _fail(name, "true or false", getattr(config, name))
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
    for name in ("hidden", "transformer"):
        if name in fields and isinstance(fields[name], list):
            fields[name] = tuple(fields[name])
    return validate(RLConfig(**fields))


# --- the `rl:` section of a run config (`mirror.runs.config.Config.rl`) -----------------------

# RLConfig fields that a run config sets elsewhere: one source for the architecture and seed.
FROM_OTHER_SECTIONS = {
    "hidden": "model.width and model.hidden_layers",
    "transformer": "model.kind and model.transformer",
    "activation": "model.activation",
    "seed": "the top-level seed",
}
MEMBER_BATCHING = ("auto", "map", "vmap")


@dataclass(frozen=True)
class RunSettings:
    """The `rl:` section: the PPO settings (`ppo`) plus what a run adds around them.

    Populations (one entry per member, zipped; all non-empty lists must have one length;
    empty: every member takes the scalar field, `seed` or `env`)
      population_seeds, population_lrs, population_partner_reward_weights,
      population_dependencies (env.dependency D), population_veils (env.veil I),
      population_soo_weights (rl.soo_weight; any member's weight > 0 puts the overlap
      loss in the population's program, where a member of weight 0 trains as alone)
    member_batching   how members share a device: "map" (one after another, `lax.map`:
                      bit-identical whatever the population), "vmap" (batched: what
                      accelerators need), "auto" (map on a CPU, vmap otherwise)
    eval_games, eval_turns    the fixed-key games that score the agent at each checkpoint
                      and the baselines once (eval_turns >= env.episode_turns, so that
                      every game completes an episode)
    probe_games, probe_turns  the on-policy probe set (b) at each checkpoint: games x turns
                      decisions, all of them for a shared network, each player's half for
                      an independent one (probe_turns even, <= env.episode_turns: the games
                      are staggered over the episode and none shows an episode turn twice)
    helper_max_partner_energy, helper_min_own_energy  K and M of the scripted helper
                      baseline (spec §9): help when the partner's energy <= K and one's own
                      >= M (and the partner is in reach). Defaults K = 0 (the partner is
                      stalled: at energy 0 it can neither hop nor leap) and M = 1 (a help
                      with no energy does nothing); integers in [0, env.max_energy]
    """

    ppo: RLConfig
    population_seeds: tuple = ()
    population_lrs: tuple = ()
    population_partner_reward_weights: tuple = ()
    population_dependencies: tuple = ()
    population_veils: tuple = ()
    population_soo_weights: tuple = ()
    member_batching: str = "auto"
    eval_games: int = 256
    eval_turns: int = 400
    probe_games: int = 64
    probe_turns: int = 64
    helper_max_partner_energy: int = 0
    helper_min_own_energy: int = 1


POPULATION_LISTS = (
    "population_seeds", "population_lrs", "population_partner_reward_weights",
    "population_dependencies", "population_veils", "population_soo_weights",
)  # fmt: skip
RUN_INTS = ("eval_games", "eval_turns", "probe_games", "probe_turns")
HELPER_ENERGIES = ("helper_max_partner_energy", "helper_min_own_energy")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_run_fields(values: dict, env_params) -> None:
    episode_turns, max_energy = int(env_params.episode_turns), int(env_params.max_energy)
    for name in POPULATION_LISTS:
        value = values.get(name, ())
        if not isinstance(value, (list, tuple)):
            _fail(name, "a list (one entry per member)", value)
    checks = {
        "population_seeds": ("integers", lambda v: isinstance(v, int) and not isinstance(v, bool)),
        "population_lrs": ("numbers > 0", lambda v: _is_number(v) and v > 0),
        "population_partner_reward_weights": ("numbers in [0, 1]", lambda v: _is_number(v) and 0 <= v <= 1),
        "population_dependencies": ("numbers in [0, 1]", lambda v: _is_number(v) and 0 <= v <= 1),
        "population_veils": ("numbers in [0, 1]", lambda v: _is_number(v) and 0 <= v <= 1),
        "population_soo_weights": ("numbers >= 0", lambda v: _is_number(v) and v >= 0),
    }
    for name, (allowed, ok) in checks.items():
        value = values.get(name, ())
        if not all(ok(v) for v in value):
            _fail(name, f"a list of {allowed}", value)
    sizes = {f"rl.{n}": len(values[n]) for n in POPULATION_LISTS if len(values.get(n, ()))}
    if len(set(sizes.values())) > 1:
        raise RLConfigError(f"rl population lists must have one entry per member, but their lengths differ: {sizes}")
    for name in RUN_INTS:
        value = values.get(name, getattr(RunSettings, name))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            _fail(name, "a positive integer", value)
    if values.get("member_batching", "auto") not in MEMBER_BATCHING:
        _fail("member_batching", f"one of {', '.join(MEMBER_BATCHING)}", values["member_batching"])
    if values.get("eval_turns", RunSettings.eval_turns) < episode_turns:
        _fail("eval_turns", f">= env.episode_turns = {episode_turns} (so that episodes complete)", values["eval_turns"])
    if values.get("probe_turns", RunSettings.probe_turns) % 2:
        _fail("probe_turns", "an even positive integer (each player decides every second turn)", values["probe_turns"])
    if values.get("probe_turns", RunSettings.probe_turns) > episode_turns:
        _fail("probe_turns", f"<= env.episode_turns = {episode_turns} (no probe game shows an episode turn twice)", values["probe_turns"])
    for name in HELPER_ENERGIES:
        value = values.get(name, getattr(RunSettings, name))
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= max_energy:
            _fail(name, f"an integer in [0, env.max_energy = {max_energy}]", value)


def rl_settings(config) -> RunSettings:
    """The `rl:` section of a `mirror.runs.config.Config`, checked in full before any work:
    unknown fields, fields that belong to another section and bad values raise
    `RLConfigError` naming `rl.<field>`. The torso is `model.widths` with
    `model.activation`, or `model.transformer` when `model.kind` is transformer; the seed
    is the top-level `seed`."""
    values = dict(config.rl)
    for name, instead in FROM_OTHER_SECTIONS.items():
        if name in values:
            raise RLConfigError(f"rl.{name} is not an rl field: set {instead} instead (one source for every run)")
    ppo_names = {f.name for f in dataclasses.fields(RLConfig)} - set(FROM_OTHER_SECTIONS)
    run_names = {f.name for f in dataclasses.fields(RunSettings)} - {"ppo"}
    unknown = sorted(set(values) - ppo_names - run_names)
    if unknown:
        allowed = ", ".join(sorted(ppo_names | run_names))
        raise RLConfigError(f"unknown field(s) {', '.join('rl.' + u for u in unknown)}; allowed: {allowed}")
    floats = {"lr", "gamma", "gae_lambda", "clip_eps", "ent_coef", "vf_coef", "max_grad_norm", "partner_reward_weight", "soo_weight"}
    ppo_values = {}
    for name in ppo_names & set(values):
        value = values[name]
        if name in floats and isinstance(value, str):  # YAML 1.1 reads "5e-5" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        ppo_values[name] = value
    model = config.model
    if model.kind == "transformer" and model.transformer.residual_neurons:
        raise RLConfigError("model.transformer.residual_neurons = true is supervised-only: the RL torso reads out its blocks' MLP units; set it to false")
    torso = model.transformer.as_tuple() if model.kind == "transformer" else ()
    ppo = make_config(**ppo_values, hidden=tuple(model.widths), transformer=torso, activation=model.activation, seed=config.seed)
    _check_run_fields(values, config.env_params)
    if any(w > 0 for w in values.get("population_soo_weights", ())) and (ppo.view != "seat" or ppo.transformer):
        _fail("population_soo_weights", "all 0 unless rl.view is seat and the torso an MLP (see rl.soo_weight)", values["population_soo_weights"])
    run_values = {name: tuple(v) if name in POPULATION_LISTS else v for name, v in values.items() if name in run_names}
    return RunSettings(ppo=ppo, **run_values)


# Training settings added after RL runs existed, with the values those runs trained with.
LEGACY_TRAINING = {"critic": "shared", "clip_value": True, "value_norm": False, "view": "paper"}


def hashed_rl_section(config) -> dict:
    """The `rl:` section as the training hashes read it (`mirror.runs.rl_run.rl_config_hash`,
    RL sweep trial ids): as written, except that the `LEGACY_TRAINING` fields enter with
    their resolved values unless these are the legacy ones. A config that resolves to the
    legacy values hashes as the runs trained before those fields did (so such a run
    resumes once they are written into its config.yaml); any other, the defaults
    included, hashes differently, so an old run is never resumed, nor an old sweep trial
    reused, as if it had trained under the new defaults."""
    ppo = rl_settings(config).ppo
    section = {k: v for k, v in dict(config.rl).items() if k not in LEGACY_TRAINING}
    section.update({k: getattr(ppo, k) for k, old in LEGACY_TRAINING.items() if getattr(ppo, k) != old})
    return section


def rl_config(config) -> RLConfig:
    """The `RLConfig` of a run config (see `rl_settings`, which checks the whole section)."""
    return rl_settings(config).ppo
