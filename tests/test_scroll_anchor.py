"""The scroll anchor (spec §6) is exact: checked against `fractions` for every D on a
0.01 grid and every pair of positions, in the JAX env and in the reference alike."""

import fractions
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror.env import EnvParams
from mirror.env.constants import DEPENDENCY_GRID
from mirror.env.dynamics import scroll_anchor
from mirror.env.reference import Player, ReferenceGame, RefParams

WIDTH = 32


def exact_anchor(d: str, p0: int, p1: int) -> int:
    """The spec's formula in exact rationals, D given as a decimal string."""
    d = fractions.Fraction(d)
    return math.floor(d * fractions.Fraction(p0 + p1, 2) + (1 - d) * max(p0, p1))


def all_positions(width: int = WIDTH) -> jax.Array:
    p0, p1 = np.meshgrid(np.arange(width), np.arange(width), indexing="ij")
    return jnp.asarray(np.stack([p0.ravel(), p1.ravel()], axis=1), jnp.int32)


@jax.jit
def anchors_for(dependency, positions):
    return jax.vmap(lambda p: scroll_anchor(p, EnvParams(dependency=dependency)))(positions)


def test_d_one_tenth_with_both_players_on_cell_3_anchors_at_3():
    # Float32 gave 0.1 * 6 / 2 + 0.9 * 3 = 2.9999998 -> 2; the spec gives exactly 3.
    assert int(scroll_anchor(jnp.array([3, 3]), EnvParams(dependency=0.1))) == 3


@pytest.mark.parametrize("hundredths", range(101))
def test_jax_anchor_is_exact_for_every_d_on_a_hundredths_grid(hundredths):
    d = f"{hundredths / 100:.2f}"
    positions = all_positions()
    got = np.asarray(anchors_for(jnp.float32(float(d)), positions))
    want = np.array([exact_anchor(d, int(a), int(b)) for a, b in np.asarray(positions)])
    np.testing.assert_array_equal(got, want)


def test_reference_anchor_is_exact_for_every_d_and_position():
    for hundredths in range(101):
        d = f"{hundredths / 100:.2f}"
        game = ReferenceGame(RefParams(dependency=np.float32(float(d))), [1] * WIDTH, [False] * WIDTH, [Player(0, 20), Player(0, 20)])
        for p0 in range(WIDTH):
            for p1 in range(WIDTH):
                game.players[0].position, game.players[1].position = p0, p1
                assert game._scroll_anchor() == exact_anchor(d, p0, p1), (d, p0, p1)


@settings(max_examples=200, deadline=None)
@given(steps=st.integers(0, DEPENDENCY_GRID), p0=st.integers(0, WIDTH - 1), p1=st.integers(0, WIDTH - 1))
def test_anchor_is_exact_on_the_whole_dependency_grid(steps, p0, p1):
    d = str(fractions.Fraction(steps, DEPENDENCY_GRID))
    got = int(anchors_for(jnp.float32(steps / DEPENDENCY_GRID), jnp.array([[p0, p1]], jnp.int32))[0])
    assert got == exact_anchor(d, p0, p1)


def test_anchor_lies_between_the_mean_and_the_leader():
    positions = all_positions()
    mean_floor = (positions[:, 0] + positions[:, 1]) // 2
    leader = positions.max(axis=1)
    for d in (0.0, 0.37, 1.0):
        got = anchors_for(jnp.float32(d), positions)
        assert bool(jnp.all((mean_floor <= got) & (got <= leader)))
    np.testing.assert_array_equal(anchors_for(jnp.float32(1.0), positions), mean_floor)
    np.testing.assert_array_equal(anchors_for(jnp.float32(0.0), positions), leader)
