"""Self-play PPO (spec §9): config checks, the actor-critic, per-player credit, GAE,
truncation bootstrap, one compile per update, determinism, baselines."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mirror.agents.actor_critic import ActorCritic, cmni_params, init_actor_critic
from mirror.env import HELP, HOP, JUMP, EnvParams, state_from_values
from mirror.rl import (
    RLConfig,
    RLConfigError,
    agent_policy,
    compare_policies,
    evaluate,
    make_config,
    make_policy,
    make_train,
    make_trainer,
    oracle_policy,
)
from mirror.rl.baselines import behaviour_policy, oracle_action
from mirror.rl.credit import Lookahead, Transition, per_player_gae, tail_carry
from mirror.rl.driver import train_in_intervals
from mirror.rl.ppo import Batch, init_params, ppo_loss
from mirror.rl.turns import agent, play_turn, turn_uniforms

SMALL = dict(num_envs=16, num_steps=8, updates=2, checkpoint_every=1, num_minibatches=2, update_epochs=2)


# --- config -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "field, value, words",
    [
        ("num_envs", 0, "a positive integer"),
        ("num_steps", 2.5, "a positive integer"),
        ("gamma", 1.5, "in [0, 1]"),
        ("partner_reward_weight", -0.1, "in [0, 1]"),
        ("lr", 0.0, "> 0"),
        ("ent_coef", -1.0, ">= 0"),
        ("hidden", [17, 0], "positive integers"),
        ("activation", "swish", "relu, tanh"),
        ("sharing", "both", "shared, independent"),
        ("critic", "both", "one of separate, shared"),
        ("clip_value", "yes", "true or false"),
        ("value_norm", 1, "true or false"),
        ("num_minibatches", 3, "divisor of num_envs * num_steps = 128"),
        ("checkpoint_every", 3, "divisor of updates = 2"),
    ],
)
def test_bad_config_field_is_named_with_allowed_values(field, value, words):
    with pytest.raises(RLConfigError) as err:
        make_config(**{**SMALL, field: value})
    assert f"rl.{field}" in str(err.value) and words in str(err.value)


def test_unknown_config_field_is_rejected():
    with pytest.raises(RLConfigError, match="unknown field rl.num_env;"):
        make_config(num_env=4)


def test_make_train_validates_before_any_work():
    with pytest.raises(RLConfigError, match="rl.sharing"):
        make_train(RLConfig(sharing="mixed"))


# --- the agent ----------------------------------------------------------------------

def test_actor_critic_exposes_activations_like_the_mlp():
    params = init_actor_critic(jax.random.key(0), (17, 9), num_inputs=100)
    x = jnp.ones((5, 100))
    logits, value, activations = ActorCritic((17, 9)).apply({"params": params}, x)
    assert logits.shape == (5, 4) and value.shape == (5,)
    # hidden layers after their activation, then the logits; the value head is not a CMNI neuron
    assert [a.shape for a in activations] == [(5, 17), (5, 9), (5, 4)]
    np.testing.assert_array_equal(activations[-1], logits)
    assert np.all(np.asarray(activations[0]) >= 0)
    assert sorted(cmni_params(params)) == ["hidden_0", "hidden_1", "output"]


def test_cmni_code_reads_the_actor_critic_as_an_mlp():
    """The CMNI forward pass on `cmni_params` gives the actor-critic's own activations:
    hidden units then the 4 logits, 17 + 9 + 4 neurons, no value head."""
    from mirror.analysis.cmni import all_activations_t, full_unit_mask

    params = init_actor_critic(jax.random.key(1), (17, 9), num_inputs=100)
    x = jax.random.randint(jax.random.key(2), (6, 100), 0, 10).astype(jnp.float32)
    _, _, activations = ActorCritic((17, 9)).apply({"params": params}, x)
    counted = cmni_params(params)
    neurons = all_activations_t(counted, full_unit_mask(counted), x.T, "relu")
    assert neurons.shape == (17 + 9 + 4, 6)
    np.testing.assert_allclose(neurons.T, jnp.concatenate(activations, axis=-1), rtol=1e-5, atol=1e-5)


def test_shared_and_independent_param_shapes():
    shared = init_params(RLConfig(**SMALL), jax.random.key(0))
    independent = init_params(RLConfig(**SMALL, sharing="independent"), jax.random.key(0))
    # a separate actor (the supervised MLP's layers) and critic (its own torso and value)
    assert sorted(shared) == ["actor", "critic"]
    assert sorted(shared["actor"]) == ["hidden_0", "hidden_1", "output"]
    assert sorted(shared["critic"]) == ["hidden_0", "hidden_1", "value"]
    assert shared["actor"]["hidden_0"]["kernel"].shape == shared["critic"]["hidden_0"]["kernel"].shape == (100, 17)
    assert shared["critic"]["value"]["kernel"].shape == (17, 1)
    assert independent["actor"]["hidden_0"]["kernel"].shape == (2, 100, 17)
    assert independent["actor"]["output"]["bias"].shape == (2, 4)
    assert independent["critic"]["value"]["bias"].shape == (2, 1)
    # two different networks, not one copied; the critic's torso is not the actor's
    assert not np.allclose(independent["actor"]["hidden_0"]["kernel"][0], independent["actor"]["hidden_0"]["kernel"][1])
    assert not np.allclose(shared["actor"]["hidden_0"]["kernel"], shared["critic"]["hidden_0"]["kernel"])
    # rl.critic: shared, one network with both heads
    one = init_params(RLConfig(**SMALL, critic="shared"), jax.random.key(0))
    assert sorted(one) == ["hidden_0", "hidden_1", "output", "value"] and one["value"]["kernel"].shape == (17, 1)


# --- per-player credit and GAE -------------------------------------------------------

def _transitions(players, gains, done, values, terminal_values):
    """A one-game Transition [T, 1, ...] from per-turn lists."""
    t = len(players)
    return Transition(
        obs=jnp.zeros((t, 1, 100), jnp.int8),
        player=jnp.asarray(players, jnp.int32)[:, None],
        action=jnp.zeros((t, 1), jnp.int32),
        log_prob=jnp.zeros((t, 1)),
        value=jnp.asarray(values, jnp.float32)[:, None],
        gains=jnp.asarray(gains, jnp.float32)[:, None],
        done=jnp.asarray(done, bool)[:, None],
        terminal_value=jnp.asarray(terminal_values, jnp.float32)[:, None],
        partner_distressed=jnp.zeros((t, 1), bool),
        episode_score=jnp.zeros((t, 1, 2), jnp.int32),
    )


def _one(transitions: Transition, t: int) -> Transition:
    return jax.tree_util.tree_map(lambda x: x[t], transitions)


def _gae(players, gains, done, values, terminal_values, next_values, gamma, lam, w):
    """Run per_player_gae on turns + one look-ahead turn (the last entry of each list)."""
    all_turns = _transitions(players, gains, done, values, terminal_values)
    body = jax.tree_util.tree_map(lambda x: x[:-1], all_turns)
    lookahead = Lookahead(_one(all_turns, len(players) - 1), jnp.asarray([next_values], jnp.float32))
    tail = tail_carry(lookahead, gamma, lam, w)
    adv, targets, rewards = per_player_gae(body, tail, gamma, lam, w)
    return np.asarray(adv[:, 0]), np.asarray(targets[:, 0]), np.asarray(rewards[:, 0])


def test_reward_attribution_hand_worked():
    """Frog/Toad alternate; the episode is truncated after turn 3; turn 6 is the look-ahead.
    Gains are powers of two so every sum below says which turns it took, w = 0.5."""
    players = [0, 1, 0, 1, 0, 1, 0]
    gains = [(1, 0), (0, 2), (4, 0), (0, 8), (16, 0), (0, 32), (64, 0)]
    done = [0, 0, 0, 1, 0, 0, 0]
    values = [0, 0, 0, 0, 0, 0, 500]  # 500: Frog's value at its look-ahead decision
    terminal = [(0, 0)] * 3 + [(100, 200)] + [(0, 0)] * 3
    adv, _, rewards = _gae(players, gains, done, values, terminal, (1000, 2000), 1.0, 1.0, 0.5)
    # Frog t0: own 1 + 0.5*Toad's 2 at t1.  Toad t1: own 2 + 0.5*Frog's 4 at t2.
    # Frog t2: 4 + 0.5*8.  Toad t3: 8 only (the episode ends after t3, nothing of t4).
    # Frog t4: 16 + 0.5*32.  Toad t5: 32 + 0.5*64 (the look-ahead turn's Frog gain).
    np.testing.assert_allclose(rewards, [2, 4, 8, 8, 32, 64])
    # gamma = lambda = 1, values 0: a decision's advantage is its stream's rewards to the
    # episode end plus the bootstrap: the terminal views' values (100, 200) after t3;
    # Frog's look-ahead value 500 after t4; Toad's value after the look-ahead, 2000, after t5.
    np.testing.assert_allclose(adv, [2 + 8 + 100, 4 + 8 + 200, 8 + 100, 8 + 200, 32 + 500, 64 + 2000])


def test_reward_attribution_when_a_player_decides_twice_in_a_row():
    """An odd episode length: Frog takes the last turn of one episode and the first of the
    next. Its two decisions are in different episodes, so none of the second's reward or
    value reaches the first."""
    players = [0, 1, 0, 0, 1]  # t2 ends the episode; t4 is the look-ahead
    gains = [(1, 0), (0, 2), (4, 0), (8, 0), (0, 16)]
    done = [0, 0, 1, 0, 0]
    values = [10, 20, 30, 40, 50]
    terminal = [(0, 0), (0, 0), (300, 400), (0, 0), (0, 0)]
    adv, targets, rewards = _gae(players, gains, done, values, terminal, (7, 9), 1.0, 1.0, 1.0)
    np.testing.assert_allclose(rewards, [1 + 2, 2 + 4, 4, 8 + 16])
    # Frog t2 -> Frog terminal 300; Frog t0 -> Frog t2; Toad t1 -> Toad terminal 400;
    # Frog t3 -> Frog's value after the look-ahead (7).
    expected = {2: 4 + 300 - 30, 1: 6 + 400 - 20, 3: 24 + 7 - 40}
    expected[0] = 3 + 30 - 10 + expected[2]
    np.testing.assert_allclose(adv, [expected[t] for t in range(4)])
    np.testing.assert_allclose(targets, adv + np.array(values[:4]))


def _reference_gae(players, gains, done, values, terminal, next_values, gamma, lam, w):
    """Plain Python, one stream per player, written from spec §9. The last entry of each
    list is the look-ahead turn: it closes the streams and gets no advantage of its own."""
    n = len(players) - 1
    mixed = [(g[0] + w * g[1], g[1] + w * g[0]) for g in gains]
    adv = [0.0] * n
    for p in (0, 1):
        decisions = [t for t in range(n) if players[t] == p]
        following = 0.0  # advantage of p's next decision in the same episode
        for t in reversed(decisions):
            reward, u = 0.0, t
            while True:
                reward += mixed[u][p]
                if done[u]:
                    boot, cont = terminal[u][p], False
                    break
                u += 1
                if u > n:
                    boot, cont = next_values[p], False
                    break
                if players[u] == p:
                    boot, cont = values[u], u < n
                    break
            delta = reward + gamma * boot - values[t]
            adv[t] = delta + (gamma * lam * following if cont else 0.0)
            following = adv[t]
    return np.array(adv)


@pytest.mark.parametrize("seed", range(6))
def test_gae_matches_plain_python_streams(seed):
    rng = np.random.default_rng(seed)
    n = 40
    episode = int(rng.integers(3, 9))  # odd and even episode lengths
    players, done, turn = [], [], int(rng.integers(0, episode))
    for _ in range(n + 1):
        players.append(turn % 2)
        turn += 1
        done.append(turn == episode)
        turn %= episode
    gains = rng.integers(0, 3, size=(n + 1, 2)).tolist()
    values = rng.normal(size=n + 1).tolist()
    terminal = [tuple(rng.normal(size=2)) if d else (0.0, 0.0) for d in done]
    next_values = tuple(rng.normal(size=2))
    gamma, lam, w = 0.9, 0.7, float(rng.choice([0.0, 0.5]))
    adv, _, _ = _gae(players, gains, done, values, terminal, next_values, gamma, lam, w)
    expected = _reference_gae(players, gains, done, values, terminal, next_values, gamma, lam, w)
    np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-5)


# The truncation bootstrap from the pre-reset view is tested on the trainer's turn function
# in tests/test_rl_speed_paths.py (test_packed_truncation_bootstraps_from_the_pre_reset_view).


def test_ppo_loss_hand_computed():
    """One row, logits 0 (uniform), old log-prob log(1/4) - 0.5 (ratio e^0.5 > 1 + clip):
    with two rows the normalised advantages are +1 and -1."""

    def policy(params, obs, player, central=None):
        return jnp.zeros((2, 4)) + params, jnp.array([1.0, 2.0]) + params

    batch = Batch(
        obs=jnp.zeros((2, 100), jnp.int8), player=jnp.zeros(2, jnp.int32), action=jnp.array([0, 1]),
        log_prob=jnp.log(jnp.array([0.25, 0.25])) - jnp.array([0.5, 0.0]), value=jnp.array([1.0, 1.5]),
        advantage=jnp.array([3.0, 1.0]), target=jnp.array([2.0, 2.0]),
    )
    total, (pl, vl, ent, kl, clip) = ppo_loss(policy, 0.0, batch, 0.2, 0.5, 0.01, clip_value=True)
    r0 = np.exp(0.5)  # row 0: adv +1, ratio clipped to 1.2; row 1: adv -1, ratio 1
    assert np.isclose(pl, -np.mean([min(r0 * 1, 1.2 * 1), min(1 * -1, 1 * -1)]), atol=1e-5)
    # values: row 0 predicted 1 (old 1, target 2) -> 0.5; row 1 predicted 2, old 1.5:
    # clipped to 1.7, max((2-2)^2, (1.7-2)^2) = 0.09
    assert np.isclose(vl, 0.5 * np.mean([1.0, 0.09]), atol=1e-5)
    assert np.isclose(ent, np.log(4), atol=1e-6)
    assert np.isclose(kl, np.mean([(r0 - 1) - 0.5, 0.0]), atol=1e-5)
    assert np.isclose(clip, 0.5)
    assert np.isclose(total, pl + 0.5 * vl - 0.01 * ent, atol=1e-6)
    # unclipped (rl.clip_value false): the plain squared errors, (1-2)^2 and (2-2)^2
    _, (pl_plain, vl_plain, *_) = ppo_loss(policy, 0.0, batch, 0.2, 0.5, 0.01, clip_value=False)
    assert np.isclose(vl_plain, 0.5 * np.mean([1.0, 0.0]), atol=1e-6) and pl_plain == pl


# --- the compiled update --------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    config = RLConfig(**SMALL)
    trainer = make_trainer(config)
    update = jax.jit(chex.assert_max_traces(trainer.update, n=1))
    init = jax.jit(trainer.init)
    return config, trainer, init, update


def _bytes(tree):
    return b"".join(np.asarray(x).tobytes() for x in jax.tree_util.tree_leaves(tree))


def test_update_compiles_once_and_is_deterministic(small):
    config, _, init, update = small
    runs = []
    for _ in range(2):
        runner = init(jax.random.key(3))
        for _ in range(2):
            runner, metrics = update(runner)
        runs.append((runner, metrics))
    # chex.assert_max_traces(n=1) raises on a second trace: four calls, one compile
    assert _bytes(runs[0][0].params) == _bytes(runs[1][0].params)
    assert int(runs[0][0].update) == 2
    metrics = runs[0][1]
    assert int(metrics["env_turns"]) == 2 * config.num_envs * config.num_steps
    for name in ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "help_rate"):
        assert np.isfinite(metrics[name]), name
    assert 0.0 < float(metrics["entropy"]) <= np.log(4) + 1e-6
    other = init(jax.random.key(4))
    assert _bytes(update(other)[0].params) != _bytes(runs[0][0].params)


def _update_loop(small, updates):
    config, _, init, update = small
    runner = init(jax.random.key(config.seed))
    for _ in range(updates):
        runner, _ = update(runner)
    return runner


def test_driver_yields_each_interval_and_equals_the_update_loop(small):
    config = small[0]
    intervals = list(train_in_intervals(config))
    assert [i.updates_done for i in intervals] == [1, 2]
    assert intervals[0].metrics["loss"].shape == (config.checkpoint_every,)
    assert isinstance(intervals[0].metrics["loss"], np.ndarray)
    # The same numbers; not always the same bits: the interval is a scan of the update,
    # another program, and the suite compiles with XLA's optimisation off (conftest.py),
    # where the two programs may round differently. A resumed run repeats its own program.
    for a, b in zip(jax.tree_util.tree_leaves(intervals[-1].runner.params), jax.tree_util.tree_leaves(_update_loop(small, config.updates).params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# --- staggered games ------------------------------------------------------------------

# 10 games x 4 turns per update, 20-turn episodes: games start at turns 0, 2, ..., 18
STAGGER_ENV = EnvParams(episode_turns=20)
STAGGER = dict(num_envs=10, num_steps=4, updates=6, checkpoint_every=6, num_minibatches=2, update_epochs=1, hidden=(8,))


@pytest.fixture(scope="module")
def staggered():
    config = RLConfig(**STAGGER)
    trainer = make_trainer(config, STAGGER_ENV)
    return config, trainer, jax.jit(trainer.init)(jax.random.key(0))


def test_rollout_rows_spread_evenly_over_the_episode(staggered):
    """The games start on even turns spread over the episode (Frog moves first in each), so
    over one rollout of an episode's length every episode turn is held by exactly
    games x turns / episode_turns = 10 rows (all games starting together: 10 games at each
    of turns 0-9 then again, none later)."""
    config, _, runner = staggered
    np.testing.assert_array_equal(runner.games.turn, np.arange(0, 20, 2))
    assert not np.any(runner.games.current_player)
    decide = agent(make_policy(config), runner.params)
    turn = jax.jit(lambda s, k: play_turn(decide, STAGGER_ENV, s, turn_uniforms(k, config.num_envs, STAGGER_ENV)))
    states, seen = runner.games, []
    for k in jax.random.split(jax.random.key(1), 20):
        seen.append(np.asarray(states.turn))
        states, _ = turn(states, k)
    np.testing.assert_array_equal(np.bincount(np.concatenate(seen), minlength=20), [10] * 20)


def test_episodes_end_in_every_update_and_the_return_pools_them(staggered):
    """num_envs * num_steps >= episode_turns: the staggered games end exactly two episodes
    in every update (games ending after turns 1 and 3 of the update, then 5 and 7, ...),
    and the update's return is their pooled mean."""
    config, trainer, runner = staggered
    _, metrics = jax.jit(lambda r: trainer.run(r, 6))(runner)
    np.testing.assert_array_equal(metrics["episodes"], [2] * 6)
    np.testing.assert_allclose(metrics["return_per_player"], np.asarray(metrics["episode_return_sum"]) / 2)
    assert np.all(np.asarray(metrics["episode_return_sum"]) > 0)


def member_train(config: RLConfig):
    """`make_train` with a member's D, I, lr and w as arguments: traced, so one program
    trains any member, alone (jit) or as a population (jit of vmap)."""

    def member(key, dependency, veil, lr, w):
        return make_train(config, EnvParams(dependency=dependency, veil=veil), lr=lr, partner_reward_weight=w)(key)

    return member


@pytest.fixture(scope="module")
def train_alone(small):
    """jit(member_train(SMALL)): the whole-run test and the population test share its compile."""
    return jax.jit(member_train(small[0]))


@pytest.mark.slow
def test_make_train_whole_run_equals_the_update_loop(small, train_alone):
    config = small[0]
    defaults = EnvParams()  # the update loop's env, lr and w, here as arguments
    whole, metrics = train_alone(jax.random.key(config.seed), defaults.dependency, defaults.veil, config.lr, config.partner_reward_weight)
    assert metrics["loss"].shape == (config.updates,)
    assert metrics["return_per_player"].shape == (config.updates, 2)
    # The same numbers, to rounding: the whole run is a scan of the update, and XLA fuses a
    # loop body and a top-level program differently (the last bits of a loss can differ).
    chex.assert_trees_all_close(whole.params, _update_loop(small, config.updates).params, rtol=1e-5, atol=1e-7)


# The independent update (two networks, each learning from its own player's decisions) is
# trained and checked end to end in tests/test_rl_run.py (test_independent_networks_are_two_per_member).


# --- baselines ----------------------------------------------------------------------

def test_oracle_action_from_each_players_own_side():
    env = EnvParams()
    ground = [1] * 32
    ground[17] = 2  # rough right of Toad (16) ; Frog at 15 sees solid at 16
    state = state_from_values(ground=ground, flies=[False] * 32, position=(15, 16), energy=(5, 5), current_player=0)
    assert int(oracle_action(state, env)) == HOP
    # Toad's turn: the cell after it is rough, f + 5 < W - 1, so it leaps (rule 5)
    assert int(oracle_action(state.replace(current_player=jnp.int32(1)), env)) == 2
    # Toad out of energy -> jump; Toad at the right edge -> help
    assert int(oracle_action(state.replace(current_player=jnp.int32(1), energy=jnp.array([5, 0])), env)) == JUMP
    edge = state.replace(position=jnp.array([26, 31]), current_player=jnp.int32(1))
    assert int(oracle_action(edge, env)) == HELP
    # Frog near the edge, Toad distressed, Frog not: help (rule 3)
    ground2 = [1] * 32
    ground2[20] = 2
    near = state_from_values(ground=ground2, flies=[False] * 32, position=(27, 20), energy=(5, 5))
    assert int(oracle_action(near, env)) == HELP


def test_evaluate_counts_complete_episodes_only():
    env = EnvParams(episode_turns=10)
    policies = {"oracle": oracle_policy(env), "behaviour": behaviour_policy()}
    results = jax.jit(lambda k: compare_policies(policies, env, k, 64, 25))(jax.random.key(0))
    oracle, behaviour = results["oracle"], results["behaviour"]
    # 25 turns of 10-turn episodes: two complete episodes per game (the third is cut off)
    assert int(oracle["episodes"]) == int(behaviour["episodes"]) == 128
    assert int(oracle["decisions"]) == 64 * 25
    # the oracle hops on solid ground from full energy: 5 hops per player per episode
    np.testing.assert_allclose(oracle["return_per_player"], [5.0, 5.0])
    assert float(oracle["help_rate"]) == 0.0
    assert float(behaviour["return"]) < 5.0
    assert 0.05 < float(behaviour["help_rate"]) < 0.2


@pytest.mark.slow
def test_ppo_learns_to_beat_the_behaviour_policy():
    """A short self-play run (8 updates of 256 games x 64 turns, about 131k turns) must
    clearly beat both its own untrained start and the behaviour policy (spec §9 Return)."""
    config = RLConfig(num_envs=256, num_steps=64, updates=8, checkpoint_every=8)
    env = EnvParams()
    trainer = make_trainer(config)
    policy = make_policy(config)
    start = trainer.init(jax.random.key(0))
    trained, _ = jax.jit(make_train(config))(jax.random.key(0))
    score = jax.jit(lambda act_params, k: evaluate(agent_policy(policy, act_params), env, k, 128, 400)["return"])
    untrained = float(score(start.params, jax.random.key(1)))
    learned = float(score(trained.params, jax.random.key(1)))
    behaviour = float(jax.jit(lambda k: evaluate(behaviour_policy(), env, k, 128, 400)["return"])(jax.random.key(1)))
    assert learned > untrained + 15 and learned > behaviour + 15, (untrained, behaviour, learned)


@pytest.mark.slow
def test_a_vmapped_population_member_equals_its_run_alone(small, train_alone):
    """`jax.vmap` over seeds, D, I, learning rate and reward weight: a member ends where
    the same trial run alone ends."""
    keys = jax.random.split(jax.random.key(5), 2)
    axes = [jnp.array(v) for v in ([0.0, 0.5], [0.0, 1.0], [1e-3, 3e-3], [0.0, 0.5])]
    together, _ = jax.jit(jax.vmap(member_train(small[0])))(keys, *axes)
    alone, _ = train_alone(keys[1], 0.5, 1.0, 3e-3, 0.5)
    member_params = jax.tree_util.tree_map(lambda x: x[1], together.params)
    chex.assert_trees_all_close(member_params, alone.params, rtol=1e-5, atol=1e-6)
    # the members did train differently
    assert not np.allclose(together.params["actor"]["output"]["kernel"][0], together.params["actor"]["output"]["kernel"][1])


# --- the on-policy probe ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sharing", ["shared", "independent"])
def test_probe_rows_are_turn_major_views_of_staggered_games(staggered, sharing):
    """collect_probe = the agents' staggered games played by the one turn function, each
    decision's model input kept turn-major per network: row = t * games + g, so a row's
    game is row % games (independent networks: turn t is player t % 2's)."""
    from mirror.env.seat import policy_rows
    from mirror.rl.population import collect_probe
    from mirror.rl.turns import start_games

    config, _, runner = staggered
    policy, games, turns = make_policy(config), 5, 6
    key = jax.random.key(9)
    inputs, scenarios, idle = collect_probe(policy, runner.params, STAGGER_ENV, key, games, turns, sharing)
    start_key, turns_key = jax.random.split(key)
    decide = agent(policy, runner.params)
    states = start_games(start_key, STAGGER_ENV, games, decide)
    np.testing.assert_array_equal(states.turn, [0, 4, 8, 12, 16])  # spread over the 20-turn episode
    views = []
    for k in jax.random.split(turns_key, turns):
        states, t = play_turn(decide, STAGGER_ENV, states, turn_uniforms(k, games, STAGGER_ENV))
        views.append(np.asarray(policy_rows(t.obs)))  # the network's input: the seat view, score zeroed
    views = np.stack(views)  # [turns, games, 3W + 4]
    networks = 1 if sharing == "shared" else 2
    assert inputs.shape == (networks, turns // networks * games, 100)
    for n in range(networks):
        mine = views[n::networks]  # the network's turns
        for row in range(inputs.shape[1]):
            np.testing.assert_array_equal(inputs[n, row], mine[row // games, row % games])
    assert scenarios.shape == inputs.shape[:2] and idle.shape == inputs.shape[:2] + (2,)
