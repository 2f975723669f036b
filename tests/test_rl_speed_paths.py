"""The trainer's fast paths against their plain references: the minibatch split."""

import jax
import numpy as np
import pytest

from mirror.rl.ppo import minibatch_order


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
