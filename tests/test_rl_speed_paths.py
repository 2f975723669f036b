"""The trainer's fast paths against their plain references: the one (packed-state) turn
function against the public, unpacked env on the same uniforms (`rl_reference.py`), on
random mid-game states and on staggered games; the cheap minibatch split."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rl_reference import FIELDS, reference_offsets, reference_start, reference_turn

from mirror.env import EnvParams, state_from_values
from mirror.env.constants import ACTION_CODES, ROUGH, SOLID
from mirror.env.packed import pack, unpack
from mirror.rl import RLConfig, make_policy
from mirror.rl.credit import per_player_gae, tail_carry
from mirror.rl.ppo import init_params, minibatch_order
from mirror.rl.turns import (
    agent, agent_values, episode_ends_bound, fresh_games, play_turn, rollout, start_games, turn_uniforms,
)  # fmt: skip


@pytest.mark.parametrize("steps, envs, minibatches", [(8, 16, 4), (5, 12, 3), (4, 6, 4)])
def test_minibatch_order_splits_every_row_exactly_once(steps, envs, minibatches):
    """(4, 6, 4): 6 games do not split in 4, the full permutation is used instead."""
    order = np.asarray(minibatch_order(jax.random.key(0), steps, envs, minibatches))
    assert order.shape == (minibatches, steps * envs // minibatches)
    np.testing.assert_array_equal(np.sort(order.reshape(-1)), np.arange(steps * envs))


def test_minibatch_order_holds_every_turn_equally_and_changes_with_the_key():
    steps, envs, minibatches = 8, 16, 4
    orders = [np.asarray(minibatch_order(jax.random.key(k), steps, envs, minibatches)) for k in range(2)]
    for order in orders:
        turns = order // envs
        for m in range(minibatches):  # each minibatch: envs / minibatches games at every turn
            np.testing.assert_array_equal(np.bincount(turns[m], minlength=steps), [envs // minibatches] * steps)
    assert not np.array_equal(np.sort(orders[0], axis=1), np.sort(orders[1], axis=1))


def test_minibatch_order_gives_each_row_every_minibatch_alike():
    """Over many keys a row lands in each minibatch about equally often (a uniform split),
    and two games share a minibatch at a turn about as often as under a full shuffle."""
    steps, envs, minibatches, draws = 4, 8, 4, 2000
    keys = jax.random.split(jax.random.key(1), draws)
    orders = np.asarray(jax.vmap(lambda k: minibatch_order(k, steps, envs, minibatches))(keys))
    where = np.argsort(orders.reshape(draws, -1), axis=1) // (steps * envs // minibatches)  # row -> minibatch
    for row in range(steps * envs):
        counts = np.bincount(where[:, row], minlength=minibatches)
        assert np.all(np.abs(counts / draws - 1 / minibatches) < 0.05), (row, counts)
    together = np.mean(where[:, 0] == where[:, 1])  # games 0 and 1 at turn 0
    assert abs(together - (envs // minibatches - 1) / (envs - 1)) < 0.05


# --- the packed rollout against the public, unpacked env -----------------------------

# short episodes, frequent flies and obstacles, half the views veiled: every path is taken
ENV = EnvParams(
    episode_turns=6, veil=0.5, fly_spawn_prob=0.2, dependency=0.5, obstacle_rate_step=0.3, obstacle_rate_max=0.6
)


def _policy_and_params():
    config = RLConfig(num_envs=8, num_steps=4, hidden=(8,), critic="central")  # the central critic's features too
    policy = make_policy(config)
    params = init_params(config, jax.random.key(7))
    # larger logits than the near-uniform init, so the draw really depends on them
    actor = params["actor"]
    params = {**params, "actor": {**actor, "output": {**actor["output"], "kernel": actor["output"]["kernel"] * 300.0}}}
    return policy, params


def _random_states(key, games, env):
    """Mid-game states: rough ground, flies, any positions, energies (0 included), shown
    actions, pending obstacles, turns and players (games out of step with each other)."""
    w = env.world_width
    k = jax.random.split(key, 10)
    pending_rough = jax.random.randint(k[6], (games,), 0, 3)
    return jax.vmap(state_from_values)(
        ground=jnp.where(jax.random.uniform(k[0], (games, w)) < 0.4, ROUGH, SOLID),
        flies=jax.random.uniform(k[1], (games, w)) < 0.3,
        position=jax.random.randint(k[2], (games, 2), 0, w),
        energy=jax.random.randint(k[3], (games, 2), 0, 4),
        score=jax.random.randint(k[4], (games, 2), 0, 130),
        action_code=jnp.asarray(ACTION_CODES, jnp.int8)[jax.random.randint(k[5], (games, 2), 0, 4)],
        pending_rough=pending_rough,
        pending_solid=(pending_rough > 0) | (jax.random.uniform(k[7], (games,)) < 0.5),
        obstacle_rate=jnp.full((games,), 0.3),
        turn=jax.random.randint(k[8], (games,), 0, env.episode_turns),
        current_player=jax.random.randint(k[9], (games,), 0, 2),
    )


def _fast_turn(policy, params, env):
    """The library's one turn function with the agent deciding, as the trainer plays it."""
    return jax.jit(lambda s, u: play_turn(agent(policy, params), env, s, u, agent_values(policy, params)))


@pytest.mark.slow
def test_packed_turns_equal_the_unpacked_env_on_the_same_uniforms():
    """20 turns of 8 games from random mid-game states (episode ends, veiled views, every
    action, partners in distress): each field of every `Transition` and every game state
    equals the public env's on the same uniforms."""
    policy, params = _policy_and_params()
    games, turns = 8, 20
    state = _random_states(jax.random.key(0), games, ENV)
    packed = jax.vmap(pack)(state)
    fast_turn = _fast_turn(policy, params, ENV)
    slow_turn = jax.jit(lambda s, u: reference_turn(policy, params, ENV, s, u))
    seen_actions, veiled_views, ends, distress = set(), 0, 0, 0
    for t, key in enumerate(jax.random.split(jax.random.key(1), turns)):
        u = turn_uniforms(key, games, ENV)
        packed, got = fast_turn(packed, u)
        state, expected = slow_turn(state, u)
        assert sorted(expected) == sorted(FIELDS) == sorted(got._fields)
        for name, value in expected.items():
            np.testing.assert_allclose(getattr(got, name), value, rtol=1e-6, atol=1e-6, err_msg=f"turn {t}: {name}")
        assert got.central is not None
        chex.assert_trees_all_equal(jax.vmap(unpack, in_axes=(0, None))(packed, ENV.world_width), state)
        seen_actions |= set(np.asarray(got.action).tolist())
        toad_turns = np.asarray(got.player) == 1
        veiled_views += int(np.sum(np.asarray(got.obs)[toad_turns, 3 * ENV.world_width] == 0))  # the seat hidden
        ends += int(np.sum(got.done))
        distress += int(np.sum(got.partner_distressed))
    assert seen_actions == {0, 1, 2, 3} and veiled_views > 0 and ends >= 16 and distress > 0


@pytest.mark.slow
def test_staggered_games_and_their_turns_equal_the_unpacked_reference():
    """The trainer's start (each game played alone by the agent for its own even offset)
    and then 8 turns of the staggered games equal the plain reference field by field, and
    the games really are out of step: every phase of the 6-turn episode is in play."""
    policy, params = _policy_and_params()
    games = 6
    key = jax.random.key(4)
    packed = jax.jit(lambda k: start_games(k, ENV, games, agent(policy, params)))(key)
    state = reference_start(policy, params, ENV, key, games)
    chex.assert_trees_all_equal(jax.vmap(unpack, in_axes=(0, None))(packed, ENV.world_width), state)
    np.testing.assert_array_equal(packed.turn, reference_offsets(games, 6))
    np.testing.assert_array_equal(packed.turn, [0, 0, 2, 2, 4, 4])
    assert not np.any(packed.current_player)  # even offsets: Frog moves first everywhere
    fast_turn = _fast_turn(policy, params, ENV)
    slow_turn = jax.jit(lambda s, u: reference_turn(policy, params, ENV, s, u))
    done = []
    for t, k in enumerate(jax.random.split(jax.random.key(5), 8)):
        u = turn_uniforms(k, games, ENV)
        packed, got = fast_turn(packed, u)
        state, expected = slow_turn(state, u)
        for name in FIELDS:
            np.testing.assert_allclose(getattr(got, name), expected[name], rtol=1e-6, atol=1e-6, err_msg=f"turn {t}: {name}")
        done.append(np.asarray(got.done))
    # games end where their offset says: after turns 5, 3 and 1 of the episode's 6 (then every 6)
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(done)[:, 0]), [5])
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(done)[:, 2]), [3])
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(done)[:, 4]), [1, 7])


def test_rollout_matches_its_turns_and_closes_with_the_lookahead():
    """`rollout` = its turns scanned, then one look-ahead turn whose next values are both
    players' values of their views after it."""
    policy, params = _policy_and_params()
    packed = fresh_games(jax.random.key(2), ENV, 8)  # all at turn 0
    play = jax.jit(lambda s, k: rollout(agent(policy, params), agent_values(policy, params), ENV, s, k, 7))
    final, transitions, lookahead = play(packed, jax.random.key(3))
    assert transitions.obs.shape == (7, 8, 3 * ENV.world_width + 4)
    np.testing.assert_array_equal(transitions.player[:, 0], [0, 1, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(transitions.done[:, 0], [0, 0, 0, 0, 0, 1, 0])
    # the turn counter restarts after the episode end: 7 turns = 6 + 1
    np.testing.assert_array_equal(final.turn, np.ones(8))
    assert lookahead.turn.obs.shape == (8, 3 * ENV.world_width + 4) and int(lookahead.turn.player[0]) == 1
    assert lookahead.next_values.shape == (8, 2)


def _energy_critic(params, obs, player, central=None):
    """Always jump; the value is the observer's own energy (index 3W + 1)."""
    logits = jnp.tile(jnp.array([-1e9, 0.0, -1e9, -1e9]), (obs.shape[0], 1))
    return logits, obs[:, 97].astype(jnp.float32)


@pytest.mark.slow
def test_packed_truncation_bootstraps_from_the_pre_reset_view():
    """As tests/test_rl.py for the reference: energies 7 and 3 on the last turn, 20 after
    the reset; the terminal values are the pre-reset views' (7, 3)."""
    env = EnvParams(episode_turns=10, fly_spawn_prob=0.0)
    state = state_from_values(
        ground=[1] * 32, flies=[False] * 32, position=(15, 16), energy=(7, 3), turn=9, current_player=1
    )
    packed = jax.tree_util.tree_map(lambda x: x[None], pack(state))
    critic = (agent(_energy_critic, None), agent_values(_energy_critic, None))
    play = jax.jit(lambda s, k: rollout(*critic, env, s, k, num_steps=1))
    _, transitions, lookahead = play(packed, jax.random.key(1))
    assert bool(transitions.done[0, 0]) and int(transitions.player[0, 0]) == 1
    np.testing.assert_allclose(transitions.terminal_value[0, 0], [7, 3])
    np.testing.assert_array_equal(transitions.episode_score[0, 0], [0, 0])
    # the look-ahead is Frog's first decision of the new episode, at full energy
    np.testing.assert_allclose(lookahead.next_values[0], [20, 20])
    adv, targets, rewards = per_player_gae(transitions, tail_carry(lookahead, 1.0, 0.0, 0.0), 1.0, 0.0, 0.0)
    assert float(rewards[0, 0]) == 0.0 and float(targets[0, 0]) == 3.0 and float(adv[0, 0]) == 0.0


@pytest.mark.slow
def test_a_rollout_values_each_episode_end_once_with_the_per_turn_numbers():
    """`rollout` values each game's pre-reset states once, after its turns, where
    `play_turn` values them on every turn: the terminal values (and every other field)
    are the per-turn ones bit for bit, with several ends per game in one rollout (6-turn
    episodes over 16 turns: 3 slots), with one (16-turn episodes), and for a traced env
    with and without the static bound."""
    policy, params = _policy_and_params()
    games, steps = 8, 16
    decide, values = agent(policy, params), agent_values(policy, params)

    def per_turn(env, states, key):  # the rollout as it was: terminal values on every turn
        scan_key, look_key, after_key = jax.random.split(key, 3)

        def turn(s, k):
            return play_turn(decide, env, s, turn_uniforms(k, games, env), values)

        states, transitions = jax.lax.scan(turn, states, jax.random.split(scan_key, steps))
        return states, transitions

    for env, slots in ((ENV, 3), (ENV.replace(episode_turns=16), 1)):
        assert episode_ends_bound(steps, env) == slots
        states = jax.vmap(pack)(_random_states(jax.random.key(2), games, env))
        key = jax.random.key(3)
        expected = jax.jit(per_turn)(env, states, key)
        got = jax.jit(lambda s, k: rollout(decide, values, env, s, k, steps)[:2])(states, key)  # env a constant
        traced = jax.jit(lambda e, s, k: rollout(decide, values, e, s, k, steps, env.episode_turns)[:2])(env, states, key)
        unbounded = jax.jit(lambda e, s, k: rollout(decide, values, e, s, k, steps)[:2])  # env traced: a slot per turn
        assert int(np.sum(expected[1].done)) >= games * (slots - 1)
        for other in (got, traced, unbounded(env, states, key)):
            chex.assert_trees_all_equal(other, expected)
