"""The central critic (`rl.critic: central`): the value reads the game state, the actor its view."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mirror.env import EnvParams, observe_given_veil, state_from_values
from mirror.env.packed import pack
from mirror.env.seat import seat_view
from mirror.rl.central import CENTRAL_NAMES, CENTRAL_SIZE, central_features
from mirror.rl.config import RLConfig, RLConfigError, make_config
from mirror.rl.ppo import init_params, make_policy, make_trainer

SMALL = dict(num_envs=16, num_steps=8, updates=2, checkpoint_every=1, num_minibatches=2, update_epochs=2, critic="central")
W = 32


def _state(partner_energy=7, turn=50):
    return state_from_values(
        ground=[1] * W, flies=[False] * W, position=(20, 9), energy=(3, partner_energy), score=(12, 200),
        action_code=(0, 8), turn=turn, current_player=1,
    )  # fmt: skip


def _packed(state):
    return jax.tree.map(lambda x: x[None], pack(state))


def test_the_features_are_the_state_from_the_acting_players_side():
    env = EnvParams(episode_turns=200)
    toad = np.asarray(central_features(_packed(_state()), jnp.asarray([1]), env))[0]
    assert dict(zip(CENTRAL_NAMES, toad.tolist())) == {
        "own_position": 9, "partner_position": 20, "own_energy": 7, "partner_energy": 3, "own_action": 8,
        "partner_action": 0, "own_score": 127, "partner_score": 12, "phase": 25, "seat": 1,
    }  # fmt: skip
    frog = np.asarray(central_features(_packed(_state()), jnp.asarray([0]), env))[0]
    assert frog[:8].tolist() == [20, 9, 3, 7, 0, 8, 12, 127] and frog[9] == 0


def test_the_critic_reads_what_the_actor_cannot_and_the_actor_reads_only_its_view():
    config = RLConfig(**SMALL)
    params = init_params(config, jax.random.key(0))
    assert params["actor"]["hidden_0"]["kernel"].shape == (100, 17)
    assert params["critic"]["hidden_0"]["kernel"].shape == (100 + CENTRAL_SIZE, 17)
    policy = make_policy(config)
    env = EnvParams()
    view = seat_view(observe_given_veil(_state(), 1, env, False), 1, False)[None]
    # Toad's view hides Frog's energy; the central features show it
    views = jnp.concatenate([view, view])
    central = jnp.concatenate([central_features(_packed(_state(partner_energy=7)), jnp.asarray([1]), env)] * 2)
    central = central.at[1, 3].set(0)  # the partner at energy 0
    logits, value = policy(params, views, jnp.asarray([1, 1]), central)
    np.testing.assert_array_equal(np.asarray(logits[0]), np.asarray(logits[1]))
    assert float(value[0]) != float(value[1])
    with pytest.raises(ValueError, match="central critic needs the central features"):
        policy(params, views, jnp.asarray([1, 1]))


def test_the_value_loss_leaves_the_actor_alone():
    config = RLConfig(**SMALL)
    params = init_params(config, jax.random.key(1))
    policy = make_policy(config)
    views = jnp.zeros((4, 100), jnp.int8).at[:, 97].set(5)
    central = jnp.arange(4 * CENTRAL_SIZE, dtype=jnp.int8).reshape(4, CENTRAL_SIZE)
    grads = jax.grad(lambda p: jnp.sum(policy(p, views, jnp.zeros(4, jnp.int32), central)[1] ** 2))(params)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads["actor"]))
    assert any(float(jnp.abs(g).max()) > 0.0 for g in jax.tree.leaves(grads["critic"]))


@pytest.mark.slow  # a few updates of each sharing
@pytest.mark.parametrize("sharing", ["shared", "independent"])
def test_a_central_critic_trains(sharing):
    trainer = make_trainer(RLConfig(**{**SMALL, "sharing": sharing}))
    runner = jax.jit(trainer.init)(jax.random.key(0))
    runner, metrics = jax.jit(trainer.update)(runner)
    for name in ("loss", "policy_loss", "value_loss", "entropy"):
        assert np.isfinite(metrics[name]), name
    assert int(runner.update) == 1


def test_the_config_names_the_views_and_critics():
    with pytest.raises(RLConfigError, match=r"rl.view must be one of seat, paper"):
        make_config(view="mine")
    with pytest.raises(RLConfigError, match=r"rl.critic must be one of separate, shared, central"):
        make_config(critic="centre")
    with pytest.raises(RLConfigError, match=r"rl.critic must be separate or shared with a transformer torso"):
        make_config(critic="central", transformer=(1, 8, 2, 2))
