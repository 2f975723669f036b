"""The noise record's sampler: every field uniform, fly spawn and move independent."""

import jax
import numpy as np
import pytest

from mirror.env import EnvParams, sample_noise
from mirror.env.noise import fly_moves, noise_from_uniforms, noise_size


def test_record_shapes_and_ranges():
    params = EnvParams()
    noise = sample_noise(jax.random.key(0), params)
    assert noise.fly_spawn.shape == noise.fly_move.shape == (32,)
    assert noise.cell_start.shape == noise.cell_width.shape == (params.new_cells_max,) == (15,)
    for leaf in jax.tree_util.tree_leaves(noise):
        assert leaf.dtype == np.float32 and (np.asarray(leaf) >= 0).all() and (np.asarray(leaf) < 1).all()


@pytest.mark.slow
def test_fly_move_is_uniform_and_independent_of_the_spawn_draw():
    # The move uniform is the remainder of the spawn uniform; check the joint law of
    # (spawned, move) at a large spawn probability, where a dependence would show.
    params = EnvParams(fly_spawn_prob=0.3)
    u = jax.random.uniform(jax.random.key(1), (400_000, noise_size(params)))
    noise = noise_from_uniforms(u, params)
    spawned = np.asarray(noise.fly_spawn < 0.3).ravel()
    move = np.asarray(fly_moves(noise.fly_move)).ravel()
    n = spawned.size
    for s, p_s in ((True, 0.3), (False, 0.7)):
        for m in (-1, 0, 1):
            observed = np.mean((spawned == s) & (move == m))
            expected = p_s / 3
            # 5 binomial standard errors.
            assert abs(observed - expected) < 5 * np.sqrt(expected * (1 - expected) / n), (s, m, observed)
    assert set(np.unique(move)) == {-1, 0, 1}
