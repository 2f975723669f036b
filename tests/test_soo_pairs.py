"""Self/other pairs (`mirror.env.pairs`): what a pair changes, the involution, and that the
pairs contrast exactly the CMNI's two single-distress groups."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mirror.analysis.groups import FROG, TOAD, cmni_groups
from mirror.data.labels import frog_distress, idle_shown, scenario, toad_distress
from mirror.env import EnvParams, observe_given_veil, state_from_values
from mirror.env.constants import ACTION_CODES, DISTRESS, ROUGH, SOLID, layout_of
from mirror.env.pairs import distress_mirror
from mirror.env.seat import seat_view

mirror = jax.jit(distress_mirror)  # one compile for every test's 3,000 views

ENV = EnvParams()
W = ENV.world_width
LAYOUT = layout_of(3 * W + 4)


def random_views(key, games: int, player: int, veil: float = 0.0):
    """`player`'s seat views of random mid-game states (rough ground, any positions and
    shown actions; a fifth of the players share a cell), with each state's true positions
    and the veil draw."""
    return tuple(np.asarray(x) for x in _random_views(key, games, player, veil))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _random_views(key, games: int, player: int, veil):
    k = jax.random.split(key, 6)
    position = jax.random.randint(k[0], (games, 2), 0, W)
    same = jax.random.uniform(k[1], (games,)) < 0.2
    position = position.at[:, 1].set(jnp.where(same, position[:, 0], position[:, 1]))
    states = jax.vmap(state_from_values)(
        ground=jnp.where(jax.random.uniform(k[2], (games, W)) < 0.4, ROUGH, SOLID),
        flies=jax.random.uniform(k[3], (games, W)) < 0.3,
        position=position,
        energy=jax.random.randint(k[4], (games, 2), 0, 5),
        score=jnp.zeros((games, 2), jnp.int32),
        action_code=jnp.asarray(ACTION_CODES, jnp.int8)[jax.random.randint(k[5], (games, 2), 0, 4)],
        pending_rough=jnp.zeros((games,), jnp.int32),
        pending_solid=jnp.zeros((games,), bool),
        obstacle_rate=jnp.full((games,), 0.3),
        turn=jnp.zeros((games,), jnp.int32),
        current_player=jnp.full((games,), player, jnp.int32),
    )
    veiled = jax.random.uniform(jax.random.fold_in(key, 9), (games,)) < veil
    obs = jax.vmap(lambda s, v: observe_given_veil(s, player, ENV, v))(states, veiled)
    return seat_view(obs, player, veiled), position, veiled


def frog_groups(views, toad_position):
    """The CMNI group of each of Frog's views (spec §7), from the view and Toad's cell."""
    rows = jnp.asarray(views)
    s = scenario(frog_distress(rows), toad_distress(rows, toad_position))
    return cmni_groups(np.asarray(s), np.asarray(idle_shown(rows, toad_position)))


@pytest.mark.parametrize("player", [0, 1])
def test_a_pair_differs_in_the_two_players_ground_and_codes_only(player):
    views, position, _ = random_views(jax.random.key(player), 3000, player)
    mirrored, pairable = map(np.asarray, mirror(jnp.asarray(views)))
    assert 300 < pairable.sum() < 3000  # both kinds of rows are drawn
    own, partner = position[:, player], position[:, 1 - player]
    for i in np.flatnonzero(pairable):
        changed = set(np.flatnonzero(views[i] != mirrored[i]).tolist())
        assert changed == {own[i], partner[i], W + own[i], W + partner[i]}, i
        g, m = views[i], mirrored[i]
        assert (m[own[i]], m[partner[i]]) == (g[partner[i]], g[own[i]])  # the ground swapped
        idle = (4, 5)[player]
        assert {g[W + own[i]], m[W + own[i]]} == {DISTRESS, idle}  # the observer: distress <-> its idle code
        assert {g[W + partner[i]], m[W + partner[i]]} == {DISTRESS, 9 - idle}
    np.testing.assert_array_equal(mirrored[~pairable], views[~pairable])  # any other view is its own mirror


def test_mirroring_twice_gives_the_view_back_and_pairs_are_pairable_both_ways():
    views, _, _ = random_views(jax.random.key(5), 3000, 0, veil=0.3)
    once, pairable = mirror(jnp.asarray(views))
    twice, pairable_again = mirror(once)
    np.testing.assert_array_equal(np.asarray(twice), views)
    np.testing.assert_array_equal(np.asarray(pairable_again), np.asarray(pairable))


def test_the_pairs_are_the_cmni_groups_frog_and_toad_swapped():
    """On Frog's views (probe set (a)'s rows), a view is pairable exactly when it is in the
    CMNI's group 1 (Frog distressed, Toad idle) or 2 (Toad distressed, Frog idle), and its
    mirror is in the other group."""
    views, position, _ = random_views(jax.random.key(7), 3000, 0)
    toad = jnp.asarray(position[:, 1])
    groups = frog_groups(views, toad)
    mirrored, pairable = mirror(jnp.asarray(views))
    pairable = np.asarray(pairable)
    np.testing.assert_array_equal(pairable, np.isin(groups, [FROG, TOAD]))
    assert np.sum(groups == FROG) > 100 and np.sum(groups == TOAD) > 100
    swapped = frog_groups(np.asarray(mirrored), toad)
    np.testing.assert_array_equal(swapped[groups == FROG], TOAD)
    np.testing.assert_array_equal(swapped[groups == TOAD], FROG)


def test_a_view_that_does_not_show_the_seat_is_not_paired():
    """Veiled views (the seat and position hidden), and the paper's input, do not say
    which marker is the observer: none is paired."""
    views, _, veiled = random_views(jax.random.key(8), 3000, 0, veil=1.0)
    assert veiled.all()
    _, pairable = mirror(jnp.asarray(views))
    assert not np.asarray(pairable).any()
    shown, _, _ = random_views(jax.random.key(8), 3000, 0)
    paper = shown.copy()
    paper[:, [LAYOUT.own_code, LAYOUT.score, LAYOUT.position]] = 0
    assert np.asarray(mirror(jnp.asarray(shown))[1]).any()
    assert not np.asarray(mirror(jnp.asarray(paper))[1]).any()
