"""Self-play PPO, PureJaxRL style: `make_train(config) -> train(key)`, one jitted program.

One update = a rollout (`lax.scan` over `num_steps` turns of `num_envs` vmapped games),
per-player GAE (a reverse `lax.scan`, see `credit.py`), then `update_epochs` passes of
clipped PPO over shuffled minibatches (a `lax.scan` inside a `lax.scan`). Metrics come
back as arrays; nothing in an update talks to the host.

`make_trainer` exposes the pieces a driver needs (`init`, `update`, `run(runner, n)`),
so the Python loop runs only over checkpoint intervals (see `driver.py`); `train(key)`
is the whole run in one call, vmappable over keys.

The critic (`rl.critic`): "separate" (default) is its own network of the actor's torso
shape, params {"actor", "critic"}; the actor is trained by the policy loss and entropy
alone, the critic by the value loss alone (one optimizer, one global-norm gradient clip
over both, as PureJaxRL's actor-critic). "shared" puts the value head on the actor's
torso. With `rl.value_norm` the critic predicts targets normalised by `ValueNorm`
(running statistics in the runner state): the rollout de-normalises its values, so GAE
and the stored `Transition.value` are in reward units; the value loss compares the
critic's output with the target normalised by the statistics updated with this rollout's
targets (MAPPO's ValueNorm order).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mirror.agents.actor_critic import actor_and_critic, actor_critic_module, cmni_params, critic_key
from mirror.agents.mlp import MLP
from mirror.agents.transformer import is_transformer_params, transformer_of_params
from mirror.env import HELP, OBS_SIZE, EnvParams
from mirror.env.constants import obs_size
from mirror.env.packed import PackedState
from mirror.rl.config import RLConfig, validate
from mirror.env.seat import policy_input  # what every RL network reads (re-exported here)
from mirror.env.pairs import distress_mirror
from mirror.rl.central import CENTRAL_SIZE, central_input
from mirror.rl.credit import Transition, per_player_gae, tail_carry
from mirror.rl.overlap import overlap_distance
from mirror.rl.turns import agent, agent_values, reads_central, rollout, start_games


class Batch(NamedTuple):
    """What PPO trains on, one row per decision (leaves [rows, ...]); only these fields are
    shuffled each epoch."""

    obs: jax.Array  # int8[3W+4]
    player: jax.Array  # int32
    action: jax.Array  # int32
    log_prob: jax.Array  # f32: under the policy that played
    value: jax.Array  # f32: the critic's output when played (normalised with rl.value_norm)
    advantage: jax.Array  # f32
    target: jax.Array  # f32: value target (advantage + value), in the critic's units
    central: jax.Array | None = None  # int8[CENTRAL_SIZE]: what a central critic reads besides obs
    soo_view: jax.Array | None = None  # int8[3W+4]: obs's distress mirror (`rl.soo_weight` > 0)
    soo_pairable: jax.Array | None = None  # f32: 1 where obs has a mirror (`mirror.env.pairs`)


VALUE_NORM_EPS = 1e-8  # added to the variance before its square root


class ValueNorm(NamedTuple):
    """Running mean and (population) variance of every value target seen so far, merged
    one update's batch at a time (Chan et al.'s parallel formula; exact up to rounding, so
    a resumed run continues bit for bit). `count` is float32: its rounding above 2**24 rows
    only perturbs a batch's weight by ~1e-7 relative, where an int32 would overflow after
    2**31 rows. Before any data: mean 0, variance 1 (the identity map)."""

    count: jax.Array
    mean: jax.Array
    var: jax.Array

    @staticmethod
    def start() -> "ValueNorm":
        return ValueNorm(jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32), jnp.ones((), jnp.float32))

    def std(self) -> jax.Array:
        return jnp.sqrt(self.var + VALUE_NORM_EPS)

    def normalise(self, x: jax.Array) -> jax.Array:
        return (x - self.mean) / self.std()

    def denormalise(self, x: jax.Array) -> jax.Array:
        return x * self.std() + self.mean

    def update(self, x: jax.Array) -> "ValueNorm":
        """The statistics with every element of `x` added."""
        n = jnp.asarray(x.size, jnp.float32)
        batch_mean = jnp.mean(x)
        batch_var = jnp.mean(jnp.square(x - batch_mean))
        total = self.count + n
        delta = batch_mean - self.mean
        mean = self.mean + delta * (n / total)
        m2 = self.var * self.count + batch_var * n + jnp.square(delta) * (self.count * n / total)
        return ValueNorm(total, mean, m2 / total)


class RunnerState(NamedTuple):
    params: object  # shared: one network; independent: leaves with a leading axis 2 (Frog, Toad)
    opt_state: object
    games: PackedState  # the games in play, bit-packed ([num_envs] leaves; see turns.py)
    key: jax.Array
    update: jax.Array  # int32: updates done
    value_norm: ValueNorm | None = None  # with rl.value_norm: the value targets' statistics (one set per member)


def policy_logits(params, obs: jax.Array, widths, activation: str, view: str = "seat") -> jax.Array:
    """logits[..., 4] of one network stored in the supervised model's layout (`cmni_params`:
    the actor, no critic or value head; what checkpoints' "params" hold) for own views obs
    int8[..., 3W+4]. The actor's torso and logits are the supervised MLP's (or
    transformer's, told apart by the tree; `widths` is then unused) layers, so its forward
    pass (without dropout) gives the logits `make_policy` acts on (exactly, but for float
    rounding where `make_policy` runs a separate MLP critic in the same pass)."""
    x = policy_input(obs, view)
    if is_transformer_params(params):
        model = transformer_of_params(params, activation)
        lead = x.shape[:-1]  # the transformer reads [batch, 3W+4]
        logits, _ = model.apply({"params": params}, x.reshape((-1, x.shape[-1])))
        return logits.reshape(lead + logits.shape[-1:])
    logits, _ = MLP(tuple(widths), activation).apply({"params": params}, x)
    return logits


def make_policy(config: RLConfig):
    """policy(params, obs int8[B, 3W+4], player int32[B], central int8[B, CENTRAL_SIZE] | None)
    -> (logits[B, 4], value[B]).

    The actor sees the RL view under `rl.view` (`policy_input`; the CMNI probe sets are fed
    the same way). The value is the critic's output (normalised units with
    `rl.value_norm`: see `denormalised`); a central critic (`rl.critic: central`) also
    reads `central` (`mirror.rl.central`), which it then requires.
    """
    module = functools.partial(actor_critic_module, config.hidden, config.activation, config.transformer)
    view = config.view
    if config.critic == "shared":
        model = module()

        def one(params, obs, player, central=None):
            logits, value, _ = model.apply({"params": params}, policy_input(obs, view))
            return logits, value

    elif config.critic == "central":

        def one(params, obs, player, central=None):
            if central is None:
                raise ValueError("a central critic needs the central features (mirror.rl.central)")
            return actor_and_critic(params, policy_input(obs, view), config.activation, central_input(central))

    elif not config.transformer:  # the two MLPs in one pass (`actor_and_critic`)

        def one(params, obs, player, central=None):
            return actor_and_critic(params, policy_input(obs, view), config.activation)

    else:
        actor, critic = module(role="actor"), module(role="critic")

        def one(params, obs, player, central=None):
            x = policy_input(obs, view)
            logits = actor.apply({"params": params["actor"]}, x)[0]
            return logits, critic.apply({"params": params["critic"]}, x)[1]

    def independent(params, obs, player, central=None):
        # Both networks on every row, then each row keeps its player's: a gather of
        # per-row weights would cost more than the second tiny forward pass.
        logits, value = jax.vmap(one, in_axes=(0, None, None, None))(params, obs, player, central)
        pick = player == 0
        return jnp.where(pick[:, None], logits[0], logits[1]), jnp.where(pick, value[0], value[1])

    policy = one if config.sharing == "shared" else independent
    policy.reads_central = config.critic == "central"  # `mirror.rl.turns.reads_central`
    return policy


def denormalised(policy):
    """The policy with its values in reward units: it takes (params, ValueNorm)."""

    def act(params_and_norm, obs, player, central=None):
        params, norm = params_and_norm
        logits, value = policy(params, obs, player, central)
        return logits, norm.denormalise(value)

    act.reads_central = reads_central(policy)
    return act


def init_params(config: RLConfig, key: jax.Array, num_inputs: int = OBS_SIZE):
    """Params for observations of `num_inputs` codes (3W + 4): the actor-critic's
    (`rl.critic: shared`) or {"actor", "critic"}, the actor drawn with `key` (so it equals
    the shared actor-critic's torso and logits from that key: what the random-init null
    draws) and the critic with `critic_key(key)`. A leading axis of 2 (Frog's, Toad's
    network) for `sharing: independent`."""
    dummy = jnp.zeros((1, num_inputs), jnp.float32)
    module = functools.partial(actor_critic_module, config.hidden, config.activation, config.transformer)

    critic_dummy = jnp.zeros((1, num_inputs + (CENTRAL_SIZE if config.critic == "central" else 0)), jnp.float32)

    def one(k):
        if config.critic == "shared":
            return module().init(k, dummy)["params"]
        actor = module(role="actor").init(k, dummy)["params"]
        return {"actor": actor, "critic": module(role="critic").init(critic_key(k), critic_dummy)["params"]}

    if config.sharing == "shared":
        return one(key)
    return jax.vmap(one)(jax.random.split(key, 2))


def overlap_of(config: RLConfig):
    """distance(params, batch): the self/other overlap distance of the actor (each network's
    over its own player's rows with `sharing: independent`; `mirror.rl.overlap`)."""

    def distance(params, batch: Batch):
        layers = cmni_params(params)
        if config.sharing == "shared":
            return overlap_distance(layers, batch.obs, batch.soo_view, batch.soo_pairable, config.activation)
        own_rows = batch.soo_pairable * (batch.player[None, :] == jnp.arange(2)[:, None])  # [2, rows]
        each = jax.vmap(overlap_distance, in_axes=(0, None, None, 0, None))(
            layers, batch.obs, batch.soo_view, own_rows, config.activation
        )
        return jnp.mean(each)

    return distance


def make_optimizer(config: RLConfig, lr=None):
    """Adam after a global-norm clip; `lr` (may be traced) overrides `config.lr`."""
    steps_per_update = config.update_epochs * config.num_minibatches
    lr = config.lr if lr is None else lr
    if config.anneal_lr:
        lr = optax.linear_schedule(lr, 0.0, config.updates * steps_per_update)
    tx = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(lr, eps=1e-5))
    if config.sharing == "shared":
        return tx.init, tx.update
    # One optimizer per network (its own gradient clip), over the leading player axis.
    return jax.vmap(tx.init), jax.vmap(tx.update)


def ppo_loss(policy, params, batch: Batch, clip_eps, vf_coef, ent_coef, *, clip_value: bool, overlap=None):
    """PPO loss (PureJaxRL): returns (total, (policy_loss, value_loss, entropy, approx_kl, clip_frac)).
    The value loss is 0.5 * the mean squared error to `batch.target`, or with `clip_value`
    the larger of that and the error of the prediction clipped to +-clip_eps around
    `batch.value` (both in the critic's units). With `overlap` = (weight, distance(params,
    batch)), weight * distance is added (`mirror.rl.overlap`) and the distance ends the aux."""
    logits, value = policy(params, batch.obs, batch.player, batch.central)
    log_probs = jax.nn.log_softmax(logits)
    log_prob = jnp.take_along_axis(log_probs, batch.action[:, None], axis=-1)[:, 0]
    entropy = -jnp.mean(jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1))

    targets = batch.target
    error = jnp.square(value - targets)
    if clip_value:
        value_clipped = batch.value + jnp.clip(value - batch.value, -clip_eps, clip_eps)
        error = jnp.maximum(error, jnp.square(value_clipped - targets))
    value_loss = 0.5 * jnp.mean(error)

    log_ratio = log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)
    adv = (batch.advantage - batch.advantage.mean()) / (batch.advantage.std() + 1e-8)
    policy_loss = -jnp.mean(jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv))
    approx_kl = jnp.mean((ratio - 1.0) - log_ratio)
    clip_frac = jnp.mean(jnp.abs(ratio - 1.0) > clip_eps)
    total = policy_loss + vf_coef * value_loss - ent_coef * entropy
    if overlap is None:
        return total, (policy_loss, value_loss, entropy, approx_kl, clip_frac)
    weight, distance_of = overlap
    distance = distance_of(params, batch)
    return total + weight * distance, (policy_loss, value_loss, entropy, approx_kl, clip_frac, distance)


def explained_variance(values: jax.Array, targets: jax.Array) -> jax.Array:
    """1 - Var(targets - values) / Var(targets) over all elements; NaN when the targets
    do not vary. 1: the values predict the targets; 0: no better than their mean."""
    var = jnp.var(targets)
    return jnp.where(var > 0, 1.0 - jnp.var(targets - values) / jnp.where(var > 0, var, 1.0), jnp.nan)


def minibatch_order(key: jax.Array, num_steps: int, num_envs: int, num_minibatches: int) -> jax.Array:
    """int32[num_minibatches, rows]: a random split of the rollout's rows (turn-major,
    row = t * num_envs + game) into minibatches, drawn anew each epoch.

    `jax.random.permutation` of all rows is a multi-round sort, on a CPU several times
    slower than a whole PPO epoch at 2,048 games. When the games split evenly, a cheaper
    shuffle with the same per-row chances: the games are put in a random circular order
    (one small sort), each turn rotates that circle by its own random offset, and
    minibatch m takes, at every turn, the games in the m-th arc. Every row lands in
    exactly one minibatch, uniformly at random; a minibatch holds every turn equally
    and each game at about 1 / num_minibatches of its turns, as a full shuffle would.
    """
    if num_envs % num_minibatches:
        order = jax.random.permutation(key, num_steps * num_envs)
        return order.reshape(num_minibatches, -1).astype(jnp.int32)
    games_key, offsets_key = jax.random.split(key)
    circle = jnp.argsort(jax.random.bits(games_key, (num_envs,), jnp.uint32)).astype(jnp.int32)
    offsets = jax.random.randint(offsets_key, (num_steps, 1), 0, num_envs, jnp.int32)
    seat = (jnp.arange(num_envs, dtype=jnp.int32)[None, :] + offsets) % num_envs  # [T, G]
    rows = jnp.arange(num_steps, dtype=jnp.int32)[:, None] * num_envs + circle[seat]
    arcs = rows.reshape(num_steps, num_minibatches, num_envs // num_minibatches)
    return jnp.swapaxes(arcs, 0, 1).reshape(num_minibatches, -1)


def _nan_if_zero(count):
    return jnp.where(count > 0, count, jnp.nan)


def rollout_metrics(transitions: Transition) -> dict:
    """Per update, from the turns played (not the look-ahead). Sums and counts come back
    with the means, so a driver can pool intervals exactly; means are NaN without data.

    The return is pooled over the episodes that ended in the update (`episodes`). The games
    are staggered over the episode, so with an even `num_steps` and num_envs * num_steps
    >= episode_turns every update ends at least one; a smaller config has updates that end
    none, where the return is NaN (null in rl_metrics.jsonl) and `episodes` is 0."""
    episodes = jnp.sum(transitions.done)
    return_sum = jnp.sum(transitions.episode_score, axis=(0, 1)).astype(jnp.float32)
    helps = transitions.action == HELP
    distressed = transitions.partner_distressed
    help_distressed = jnp.sum(helps & distressed)
    return {
        "episodes": episodes,
        "episode_return_sum": return_sum,  # [2]: own score over complete episodes
        "return_per_player": return_sum / _nan_if_zero(episodes),
        "help_rate": jnp.mean(helps),
        "partner_distressed_decisions": jnp.sum(distressed),
        "help_when_partner_distressed": help_distressed / _nan_if_zero(jnp.sum(distressed)),
        "reward_mean": jnp.mean(jnp.sum(transitions.gains, axis=-1)) / 2,
    }


class Trainer(NamedTuple):
    init: object  # key -> RunnerState
    update: object  # RunnerState -> (RunnerState, metrics of one update)
    run: object  # (RunnerState, n: static int) -> (RunnerState, metrics [n, ...])


def make_trainer(
    config: RLConfig, env_params: EnvParams | None = None, *, lr=None, partner_reward_weight=None,
    min_episode_turns: int | None = None, soo_weight=None,
) -> Trainer:
    """The pieces of a run. `env_params`, `lr` and `partner_reward_weight` may be traced
    (they override the config's values), so a population is a `jax.vmap` over a function
    that calls `make_trainer` (or `make_train`) with per-member values. With traced
    `env_params`, `min_episode_turns` (static: at most every member's episode_turns) lets
    a rollout value each game's one episode end once instead of on every turn
    (`mirror.rl.turns.rollout`); the numbers are the same without it. `soo_weight` (may be
    traced) overrides `config.soo_weight`: given, or with `config.soo_weight` > 0, the
    program has the self/other overlap loss (`mirror.rl.overlap`); otherwise it is the
    program without it."""
    validate(config)
    env_params = EnvParams() if env_params is None else env_params
    policy = make_policy(config)
    opt_init, opt_update = make_optimizer(config, lr)
    mb_size = config.minibatch_size
    w = config.partner_reward_weight if partner_reward_weight is None else partner_reward_weight
    overlap = None
    if soo_weight is not None or config.soo_weight > 0:
        overlap = (config.soo_weight if soo_weight is None else soo_weight, overlap_of(config))

    def init(key: jax.Array) -> RunnerState:
        params_key, games_key, run_key = jax.random.split(key, 3)
        params = init_params(config, params_key, obs_size(env_params.world_width))
        # Staggered over the episode (played there by the initial policy), so that every
        # rollout holds every phase of the episode and episodes end in every update.
        games = start_games(games_key, env_params, config.num_envs, agent(policy, params))
        norm = ValueNorm.start() if config.value_norm else None
        return RunnerState(params, opt_init(params), games, run_key, jnp.zeros((), jnp.int32), norm)

    def minibatch_step(train_state, minibatch):
        params, opt_state = train_state
        grad_fn = jax.value_and_grad(ppo_loss, argnums=1, has_aux=True)
        (total, aux), grads = grad_fn(
            policy, params, minibatch, config.clip_eps, config.vf_coef, config.ent_coef, clip_value=config.clip_value,
            overlap=overlap,
        )  # fmt: skip
        updates, opt_state = opt_update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), (total, *aux)

    def epoch(carry, key):
        train_state, data = carry
        order = minibatch_order(key, config.num_steps, config.num_envs, config.num_minibatches)

        def shuffle(x):
            return jnp.take(x, order.reshape(-1), axis=0).reshape((config.num_minibatches, mb_size) + x.shape[1:])

        train_state, losses = jax.lax.scan(minibatch_step, train_state, jax.tree_util.tree_map(shuffle, data))
        return (train_state, data), losses

    def update(runner: RunnerState, _=None):
        key, rollout_key, epoch_key = jax.random.split(runner.key, 3)
        norm = runner.value_norm
        acting, acting_params = (denormalised(policy), (runner.params, norm)) if config.value_norm else (policy, runner.params)
        games, transitions, lookahead = rollout(
            agent(acting, acting_params), agent_values(acting, acting_params), env_params, runner.games, rollout_key,
            config.num_steps, min_episode_turns,
        )
        tail = tail_carry(lookahead, config.gamma, config.gae_lambda, w)
        advantages, targets, _ = per_player_gae(transitions, tail, config.gamma, config.gae_lambda, w)
        values = transitions.value  # reward units, as the targets
        explained = explained_variance(values, targets)
        if config.value_norm:
            # The critic's outputs when played (the clip's centre) and the targets, in the
            # critic's units: its old statistics for the former, with this rollout's
            # targets merged in for the latter.
            values = norm.normalise(values)
            norm = norm.update(targets)
            targets = norm.normalise(targets)

        def flat(x):
            return x.reshape((config.batch_size,) + x.shape[2:])

        t = transitions
        batch = Batch(t.obs, t.player, t.action, t.log_prob, values, advantages, targets, t.central)
        if overlap is not None:
            mirrored, pairable = distress_mirror(t.obs)
            batch = batch._replace(soo_view=mirrored, soo_pairable=pairable.astype(jnp.float32))
        data = jax.tree_util.tree_map(flat, batch)
        ((params, opt_state), _), losses = jax.lax.scan(
            epoch, ((runner.params, runner.opt_state), data), jax.random.split(epoch_key, config.update_epochs)
        )
        names = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac", "soo_distance")
        metrics = {name: jnp.mean(value) for name, value in zip(names, losses)}
        metrics.update(rollout_metrics(transitions))
        metrics["explained_variance"] = explained
        metrics["env_turns"] = (runner.update + 1) * config.batch_size
        return RunnerState(params, opt_state, games, key, runner.update + 1, norm), metrics

    def run(runner: RunnerState, n: int):
        return jax.lax.scan(update, runner, None, length=n)

    return Trainer(init, update, run)


def make_train(
    config: RLConfig, env_params: EnvParams | None = None, *, lr=None, partner_reward_weight=None,
    min_episode_turns: int | None = None, soo_weight=None,
):  # fmt: skip
    """`train(key) -> (RunnerState, metrics)`: the whole run, `config.updates` updates, as one
    jittable function (metrics leaves are [updates, ...]); `jax.vmap(train)` over keys trains
    independent seeds at once (other population axes: see `make_trainer`)."""
    trainer = make_trainer(
        config, env_params, lr=lr, partner_reward_weight=partner_reward_weight, min_episode_turns=min_episode_turns,
        soo_weight=soo_weight,
    )  # fmt: skip

    def train(key: jax.Array):
        return trainer.run(trainer.init(key), config.updates)

    return train
