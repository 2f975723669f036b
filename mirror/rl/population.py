"""RL populations: members that train together in one compiled program per interval.

A member is a seed, a learning rate, a partner reward weight `w` and its EnvParams
overrides (D, I). Everything of a member is a traced value (EnvParams fields are traced
leaves), so one program serves the whole population: `lax.map` over members on a CPU
(one after another: a member's results are bit-identical whatever the population),
`jax.vmap` on accelerators (`rl.member_batching`, as `train.member_batching`). With more
than one local device the members are split over the `pop` mesh (`mirror.base.sharding`)
with `jax.shard_map`, padded to a multiple of the devices.

A *network* is what CMNI analyses: one per member with `sharing: shared`, two per member
with `independent` (Frog's at index 2m, Toad's at 2m + 1).

`PopulationTrainer` holds the compiled programs of a run:
  init()                  runner state, leaves [members, ...]
  interval(runner)        `ppo.checkpoint_every` updates of every member; metrics [members, n, ...]
  evaluate(params, key)   the agents in fixed-key games (`mirror.rl.baselines.evaluate`), [members]
  baselines(key)          the behaviour policy and the scripted baselines in the same games, [members]
  probe(params, key)      the on-policy probe set (b): [networks, rows, ...]
  deviations(params, key) each member's deviation gains in fixed-key games (spec §9), [members]

`make_population_train(config, env_params, members=n)` is the notebook's version: n seeds
of one `RLConfig` in one game, `train(key)` as PureJaxRL's, networks ready for the CMNI.
"""

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from mirror.agents.actor_critic import cmni_params
from mirror.base.sharding import POP_AXIS, padded_population, population_mesh
from mirror.data.labels import scenario
from mirror.env import EnvParams
from mirror.env.constants import IDLE_CODES
from mirror.env.observation import cell_at, checked_layout, observer_position
from mirror.env.packed import bit_at
from mirror.env.seat import policy_rows
from mirror.env.validate import env_params_from_dict
from mirror.rl.baselines import agent_policy, behaviour_policy, evaluate, scripted_baselines
from mirror.rl.config import RLConfig, RLConfigError, RunSettings, rl_settings
from mirror.rl.deviation import deviation_gains
from mirror.rl.ppo import make_policy, make_train, make_trainer
from mirror.rl.turns import agent, play_turn, start_games, turn_uniforms


@dataclasses.dataclass(frozen=True)
class RLMember:
    seed: int
    lr: float
    partner_reward_weight: float
    env: dict  # EnvParams overrides of this member, merged over config.env (e.g. {"dependency": 0.5})
    soo_weight: float = 0.0

    def to_dict(self) -> dict:
        """Without `soo_weight` when it is 0: the members of runs before it was a field."""
        values = dataclasses.asdict(self)
        if not values["soo_weight"]:
            values.pop("soo_weight")
        return values


def rl_members(config) -> list[RLMember]:
    """One member per entry of the zipped `rl.population_*` lists, or one member from the
    scalar fields (`seed`, `rl.lr`, `rl.partner_reward_weight`, `env`)."""
    settings = rl_settings(config)
    ppo = settings.ppo
    count = max((len(getattr(settings, name)) for name in _LISTS), default=0) or 1

    def column(name, default):
        values = getattr(settings, name)
        return list(values) if values else [default] * count

    members = []
    for seed, lr, w, d, i, soo in zip(
        column("population_seeds", config.seed),
        column("population_lrs", ppo.lr),
        column("population_partner_reward_weights", ppo.partner_reward_weight),
        column("population_dependencies", None),
        column("population_veils", None),
        column("population_soo_weights", ppo.soo_weight),
    ):
        env = {**({"dependency": float(d)} if d is not None else {}), **({"veil": float(i)} if i is not None else {})}
        members.append(RLMember(int(seed), float(lr), float(w), env, float(soo)))
    for m, member in enumerate(members):  # e.g. a dependency off the env's 1e-4 grid
        try:
            member_env_params(config, member)
        except ValueError as err:
            raise RLConfigError(f"rl population member {m}: {err}") from None
    return members


_LISTS = (
    "population_seeds", "population_lrs", "population_partner_reward_weights",
    "population_dependencies", "population_veils", "population_soo_weights",
)  # fmt: skip


def member_env_params(config, member: RLMember) -> EnvParams:
    return env_params_from_dict({**config.env, **member.env})


def networks_per_member(sharing: str) -> int:
    return 1 if sharing == "shared" else 2


def stack_members(trees: list):
    """A list of per-member pytrees (Python scalars or arrays) -> leaves [members, ...]."""
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)


def member_mapping(member_batching: str) -> str:
    """"map" or "vmap": `rl.member_batching` with "auto" resolved for the backend."""
    if member_batching == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return member_batching


def map_members(fn, per_member: tuple, mapping: str):
    """fn over the leading member axis of every argument: `lax.map` or `jax.vmap`."""
    if mapping == "map":
        return jax.lax.map(lambda xs: fn(*xs), per_member)
    return jax.vmap(fn)(*per_member)


def own_view_idle_shown(view: jax.Array, partner_position: jax.Array, own_position: jax.Array | None = None) -> jax.Array:
    """bool[..., 2] as `mirror.data.labels.idle_shown`, with the acting player in Frog's
    place: [0] the observer's cell shows its idle code (4, or 5 for Toad; not shared with
    the partner), [1] the partner's cell shows 4 or 5. Equals `idle_shown` on Frog's views.
    `own_position` defaults to the view's own (an RL view hides it under the veil)."""
    players = view[..., checked_layout(view).players]
    own = observer_position(view) if own_position is None else jnp.asarray(own_position).astype(jnp.int32)
    partner = jnp.asarray(partner_position).astype(jnp.int32)
    idle = jnp.asarray(IDLE_CODES)
    own_idle = jnp.isin(cell_at(players, own), idle) & (own != partner)
    partner_idle = jnp.isin(cell_at(players, partner), idle)
    return jnp.stack(jnp.broadcast_arrays(own_idle, partner_idle), axis=-1)


def collect_probe(policy, params, env_params: EnvParams, key: jax.Array, num_games: int, num_turns: int, sharing: str, view: str = "seat"):
    """On-policy probe rows of one member: its agents play `num_games` games (sampling, as
    trained) and every decision's own view in `num_turns` turns of each is kept.

    The games are staggered (`mirror.rl.turns.start_games`: game g first plays its own
    even offset into the episode, spread evenly over it, by the same agents), so the rows
    cover every phase of the episode equally; with num_turns <= episode_turns no game shows
    an episode turn twice. A game whose window passes the end of its episode goes on in
    the next episode of the same game (at most two episodes per game, the end of one and
    the start of the next; games stay independent of each other).

    Returns inputs int8[networks, rows, 3W+4] (the network's input under `view`, as stored
    rows: `mirror.env.seat.policy_rows`), scenarios int8[networks, rows] (`scenario(self, partner)`)
    and idle_shown bool[networks, rows, 2]. A shared network gets every decision
    (rows = turns x games); independent networks get their player's (turns / 2 each):
    every game starts on an even turn (Frog's) and the players alternate (spec §2).
    Rows are turn-major for each network: row = t * num_games + g for the network's t-th
    turn of game g, so a row's game is `row % num_games` (what a null that shuffles whole
    games relies on)."""
    start_key, turns_key = jax.random.split(key)
    decide = agent(policy, params)
    states = start_games(start_key, env_params, num_games, decide)

    def turn(states, k):
        player = states.current_player
        own_position = jnp.take_along_axis(states.position, player[:, None], axis=1)[:, 0]
        partner_position = jnp.take_along_axis(states.position, (1 - player)[:, None], axis=1)[:, 0]
        mine = jax.vmap(bit_at)(states.rough, own_position)
        states, t = play_turn(decide, env_params, states, turn_uniforms(k, num_games, env_params))
        idle = own_view_idle_shown(t.obs, partner_position, own_position)
        rows = (policy_rows(t.obs, view), scenario(mine, t.partner_distressed), idle)
        return states, rows

    _, rows = jax.lax.scan(turn, states, jax.random.split(turns_key, num_turns))  # [turns, games, ...]
    networks = networks_per_member(sharing)
    # [turns, games] -> [turns / n, n, games] -> [n, turns / n * games]: turn t is player t % n's.
    return jax.tree.map(
        lambda x: jnp.moveaxis(x.reshape((num_turns // networks, networks) + x.shape[1:]), 1, 0).reshape(
            (networks, (num_turns // networks) * num_games) + x.shape[2:]
        ),
        rows,
    )


def network_params(params, sharing: str):
    """Member params [members, ...] -> CMNI params [networks, ...] (`cmni_params` layout:
    no value head; independent: Frog's network of member m at 2m, Toad's at 2m + 1)."""
    layers = cmni_params(params)
    if sharing == "shared":
        return layers
    return jax.tree.map(lambda x: x.reshape((x.shape[0] * 2,) + x.shape[2:]), layers)


@functools.lru_cache(maxsize=8)
def _population_programs(
    ppo, eval_games, eval_turns, helper_max_partner_energy, helper_min_own_energy, probe_games, probe_turns, mapping, mesh,
    min_episode_turns=None, overlap=False,
):  # fmt: skip
    """The policy and the jitted (init, interval, evaluate, baselines, probe) programs of a
    population of `ppo` runs; the member settings are their arguments. Memoised: trainers of
    the same settings in one process share their programs, which jit then traces, lowers and
    compiles once, not once per trainer (a sweep's populations, a resumed run)."""
    policy = make_policy(ppo)

    def trainer(env, lr, w, soo):
        # `overlap`: some member's soo_weight > 0, so every member's program has the loss
        soo = soo if overlap else None
        return make_trainer(ppo, env, lr=lr, partner_reward_weight=w, min_episode_turns=min_episode_turns, soo_weight=soo)

    def init_member(seed, env, lr, w, soo):
        return trainer(env, lr, w, soo).init(jax.random.key(seed))

    def interval_member(runner, env, lr, w, soo):
        return trainer(env, lr, w, soo).run(runner, ppo.checkpoint_every)

    def eval_member(params, env, key):
        return evaluate(agent_policy(policy, params), env, key, eval_games, eval_turns)

    def baselines_member(env, key):
        out = {"behaviour": evaluate(behaviour_policy(), env, key, eval_games, eval_turns)}
        scripted = scripted_baselines(env, key, eval_games, eval_turns, helper_max_partner_energy, helper_min_own_energy)
        return {**out, **scripted}

    def deviation_member(params, env, w, key):
        return deviation_gains(agent_policy(policy, params), env, key, eval_games, eval_turns, w)

    def probe_member(params, env, key):
        return collect_probe(policy, params, env, key, probe_games, probe_turns, ppo.sharing, ppo.view)

    def program(fn, members: int, shared: int = 0):
        """`fn(*per_member, *shared)` over the members: mapped, and split over the mesh."""

        def body(*args):
            per_member, rest = args[:members], args[members:]
            return map_members(lambda *xs: fn(*xs, *rest), per_member, mapping)

        if mesh is not None:
            pop, rep = PartitionSpec(POP_AXIS), PartitionSpec()
            body = jax.shard_map(body, mesh=mesh, in_specs=(pop,) * members + (rep,) * shared, out_specs=pop, check_vma=False)
        return jax.jit(body)

    return (
        policy, program(init_member, 5), program(interval_member, 5), program(eval_member, 2, 1), program(baselines_member, 1, 1),
        program(probe_member, 2, 1), program(deviation_member, 3, 1),
    )  # fmt: skip


class PopulationTrainer:
    """The compiled programs of a population run (see the module docstring).

    With more than one local device (or a `mesh` given) the members are split over the
    `pop` mesh, padded to a multiple of its devices by repeating the last member; the
    runner state and every result then carry the padded member axis, and `unpad` / `pad`
    convert to and from the real members (what a checkpoint stores)."""

    def __init__(self, config, members: list[RLMember] | None = None, settings: RunSettings | None = None, mesh=None):
        self.settings = rl_settings(config) if settings is None else settings
        self.config = self.settings.ppo
        self.members = rl_members(config) if members is None else list(members)
        self.mapping = member_mapping(self.settings.member_batching)
        if mesh is None and len(jax.local_devices()) > 1:
            mesh = population_mesh()
        self.mesh = mesh
        count = len(self.members)
        self.padded = count if mesh is None else padded_population(count, mesh.size)
        padded = self.members + [self.members[-1]] * (self.padded - count)
        envs = [member_env_params(config, m) for m in padded]
        self.world_width = envs[0].world_width
        self.env = stack_members(envs)
        self.seeds = jnp.asarray([m.seed for m in padded], jnp.int32)
        self.lrs = jnp.asarray([m.lr for m in padded], jnp.float32)
        self.weights = jnp.asarray([m.partner_reward_weight for m in padded], jnp.float32)
        self.soo_weights = jnp.asarray([m.soo_weight for m in padded], jnp.float32)
        self.networks_per_member = networks_per_member(self.config.sharing)
        s = self.settings
        self.policy, self._init, self._interval, self._evaluate, self._baselines, self._probe, self._deviations = _population_programs(
            self.config, s.eval_games, s.eval_turns, s.helper_max_partner_energy, s.helper_min_own_energy,
            s.probe_games, s.probe_turns, self.mapping, mesh, min(int(e.episode_turns) for e in envs),
            any(m.soo_weight > 0 for m in self.members),
        )  # fmt: skip

    @property
    def num_networks(self) -> int:
        return len(self.members) * self.networks_per_member

    def _member_args(self):
        return self.env, self.lrs, self.weights, self.soo_weights

    def init(self):
        """Runner state of every (padded) member, leaves [padded members, ...]."""
        return self._init(self.seeds, *self._member_args())

    def interval(self, runner):
        """`checkpoint_every` updates of every member: (runner, metrics [padded members, n, ...])."""
        return self._interval(runner, *self._member_args())

    def compile_interval(self, runner):
        """The interval program compiled ahead of time for `runner`'s shapes: (runner) -> (runner, metrics)."""
        compiled = self._interval.lower(runner, *self._member_args()).compile()
        return lambda r: compiled(r, *self._member_args())

    def evaluate(self, params, key: jax.Array) -> dict:
        """The agents in the fixed-key games: `evaluate`'s results [members]."""
        return self.unpad(self._evaluate(params, self.env, key))

    def deviations(self, params, key: jax.Array) -> dict:
        """Every member's deviation gains (`mirror.rl.deviation.deviation_gains`, at its own
        w) in the fixed-key games of `key`: leaves [members, ...]."""
        return self.unpad(self._deviations(params, self.env, self.weights, key))

    def baselines(self, key: jax.Array) -> dict:
        """{"behaviour": `evaluate`'s results, and `scripted_baselines`' entries}, leaves
        [members, ...], in the agents' games of `key`."""
        return self.unpad(self._baselines(self.env, key))

    def probe(self, params, key: jax.Array) -> tuple:
        """(inputs int8[networks, rows, 3W+4], scenarios int8[networks, rows], idle_shown bool[networks, rows, 2])."""
        rows = self.unpad(self._probe(params, self.env, key))  # [members, n, rows, ...]
        return jax.tree.map(lambda x: x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:]), rows)

    def network_params(self, params):
        """CMNI params [networks, ...] of the real members."""
        return network_params(self.unpad(params), self.config.sharing)

    def unpad(self, tree):
        """Leaves [padded members, ...] -> [members, ...]."""
        count = len(self.members)
        return tree if self.padded == count else jax.tree.map(lambda x: x[:count], tree)

    def pad(self, tree):
        """Leaves [members, ...] -> [padded members, ...] (the last member repeated)."""
        extra = self.padded - len(self.members)
        if not extra:
            return tree
        return jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)]), tree)


def host(tree):
    """Host (numpy) copies. Arrays split over the processes of a run on a global mesh are
    gathered first, so every process of such a run must call this at the same point."""

    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(fetch, tree)


class PopulationResult(NamedTuple):
    """What `make_population_train`'s `train(key)` returns."""

    params: object  # the analysed networks, `network_params` layout: leaves [networks, ...]
    runner: object  # `mirror.rl.ppo.RunnerState` of every member: leaves [members, ...]
    metrics: dict  # every update's metrics (`mirror.rl.ppo.rollout_metrics` and losses): [members, updates, ...]


def make_population_train(config: RLConfig, env_params: EnvParams | None = None, *, members: int = 1):
    """`train(key) -> PopulationResult`: `members` self-play PPO runs of `config` in the game
    `env_params`, member m trained by `mirror.rl.ppo.make_train(config, env_params)` from
    key `jax.random.split(key, members)[m]`, all in one jittable function (`lax.map` over
    the members on a CPU, `jax.vmap` elsewhere: `rl.member_batching` "auto").

    `params` are the analysed networks, ready for `cmni`: the actor's layers in the
    supervised MLP's layout (no critic), leaves [networks, ...], networks = members with
    `sharing: shared`, 2 x members with `independent` (Frog's network of member m at 2m,
    Toad's at 2m + 1). A population over learning rates, reward weights or games is
    `PopulationTrainer` (what `mirror rl` runs)."""
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise RLConfigError(f"members must be a positive integer, got {members!r}")
    train_one = make_train(config, env_params)
    mapping = member_mapping("auto")

    def train(key: jax.Array) -> PopulationResult:
        runner, metrics = map_members(train_one, (jax.random.split(key, members),), mapping)
        return PopulationResult(network_params(runner.params, config.sharing), runner, metrics)

    return train
