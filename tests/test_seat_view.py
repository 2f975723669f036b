"""The RL view knows its seat unless veiled (spec §9 "Seat", §6 veil): `mirror.env.seat`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mirror.data.processing import model_inputs
from mirror.env import EnvParams, observe_given_veil, state_from_values
from mirror.env.packed import pack
from mirror.env.seat import frog_rows_view, input_mask, policy_input, policy_rows, seat_view
from mirror.rl.baselines import behaviour_policy
from mirror.rl.ppo import make_policy
from mirror.rl.config import RLConfig
from mirror.rl.turns import play_turn, start_games, turn_uniforms, view_of

W = 32
ENV = EnvParams()


def _the_issues_state():
    """Frog pinned at the right edge (cell 31), Toad at cell 2, both idle, equal energy."""
    return state_from_values(ground=[1] * W, flies=[False] * W, position=(31, 2), energy=(7, 7))


def _views(state, veiled):
    """Frog's and Toad's RL views, both veiled or both not."""
    raw = [observe_given_veil(state, p, ENV, veiled) for p in (0, 1)]
    return [seat_view(o, p, veiled) for p, o in enumerate(raw)]


def _inputs(view_obs, view="seat"):
    return np.asarray(policy_input(view_obs, view))


def test_unveiled_the_two_seats_inputs_differ_and_the_papers_input_cannot_tell_them_apart():
    frog, toad = _views(_the_issues_state(), False)
    assert not np.array_equal(_inputs(frog), _inputs(toad))
    # where they differ: the seat (4 Frog, 5 Toad) and the own position (31, 2) only
    diff = np.flatnonzero(_inputs(frog) != _inputs(toad))
    assert diff.tolist() == [96, 99]
    assert _inputs(frog)[[96, 99]].tolist() == [4, 31] and _inputs(toad)[[96, 99]].tolist() == [5, 2]
    # the paper's §5.6 input (what the first learner read) is the same for both seats
    np.testing.assert_array_equal(_inputs(frog, "paper"), _inputs(toad, "paper"))


def test_veiled_the_two_seats_give_identical_inputs_which_are_the_papers_input():
    frog, toad = _views(_the_issues_state(), True)
    np.testing.assert_array_equal(_inputs(frog), _inputs(toad))
    raw = observe_given_veil(_the_issues_state(), 0, ENV, True)
    np.testing.assert_array_equal(_inputs(frog), np.asarray(model_inputs(raw), np.float32))


def test_the_seat_is_who_not_how_a_distressed_player_still_shows_its_seat():
    ground = [1] * W
    ground[2] = 2  # Toad stands on rough ground
    state = state_from_values(ground=ground, flies=[False] * W, position=(31, 2), energy=(7, 7))
    _, toad = _views(state, False)
    assert int(toad[96]) == 5 and int(toad[W + 2]) == 9  # seat 5, its cell shows distress


def test_masks_and_stored_rows_agree_and_are_idempotent():
    assert np.flatnonzero(np.asarray(input_mask(100, "seat")) == 0).tolist() == [98]
    assert np.flatnonzero(np.asarray(input_mask(100, "paper")) == 0).tolist() == [96, 98, 99]
    frog, _ = _views(_the_issues_state().replace(score=jnp.asarray([9, 4], jnp.int32)), False)
    for view in ("seat", "paper"):
        rows = policy_rows(frog, view)
        np.testing.assert_array_equal(np.asarray(policy_input(rows, view)), _inputs(frog, view))
        np.testing.assert_array_equal(np.asarray(policy_rows(rows, view)), np.asarray(rows))
    with pytest.raises(ValueError, match="view must be one of seat, paper"):
        input_mask(100, "mine")


def test_probe_set_a_rows_become_frogs_own_rl_input():
    """The dataset's rows (Frog's §5.6 inputs) shown as Frog's RL view equal Frog's RL view
    of the same state, unveiled and veiled."""
    state = _the_issues_state().replace(action_code=jnp.asarray([0, 6], jnp.int8))
    for veiled in (False, True):
        raw = observe_given_veil(state, 0, ENV, veiled)
        expected = policy_rows(seat_view(raw, 0, veiled))
        got = frog_rows_view(model_inputs(raw)[None], jnp.asarray([31], jnp.int8), veiled)[0]
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


def test_the_turns_view_is_the_seat_view_of_the_spec_observation():
    state = _the_issues_state()
    packed = jax.tree.map(lambda x: x[None], pack(state))
    for player in (0, 1):
        got = view_of(packed, jnp.asarray([player]), ENV, jnp.asarray([0.5]))[0]  # I = 0: never veiled
        np.testing.assert_array_equal(np.asarray(got), np.asarray(_views(state, False)[player]))
    veil = EnvParams(veil=1.0)
    np.testing.assert_array_equal(
        np.asarray(view_of(packed, jnp.asarray([1]), veil, jnp.asarray([0.5]))[0]),
        np.asarray(seat_view(observe_given_veil(state, 1, veil, True), 1, True)),
    )


def _played_views(veil: float, games: int = 256, turns: int = 40):
    """RL inputs and seats of every decision in `games` x `turns` of behaviour-policy play."""
    env = EnvParams(veil=veil)
    decide = behaviour_policy()
    states = start_games(jax.random.key(1), env, games, decide)

    def turn(states, k):
        states, t = play_turn(decide, env, states, turn_uniforms(k, games, env))
        return states, (policy_input(t.obs), t.player)

    _, (x, player) = jax.jit(lambda s: jax.lax.scan(turn, s, jax.random.split(jax.random.key(2), turns)))(states)
    return np.asarray(x).reshape(-1, x.shape[-1]), np.asarray(player).reshape(-1) == 0


def _linear_probe_accuracy(x, y) -> float:
    """Held-out accuracy of a least-squares linear classifier (standardised inputs, bias)."""
    half = len(x) // 2
    mean, sd = x[:half].mean(0), x[:half].std(0) + 1e-6
    design = lambda a: np.hstack([(a - mean) / sd, np.ones((len(a), 1))])  # noqa: E731
    target = np.where(y[:half], 1.0, -1.0)
    weights = np.linalg.lstsq(design(x[:half]), target, rcond=None)[0]
    return float(np.mean((design(x[half:]) @ weights > 0) == y[half:]))


def test_a_linear_probe_reads_am_i_frog_unveiled_and_not_under_the_veil():
    x0, frog0 = _played_views(0.0)
    x1, frog1 = _played_views(1.0)
    assert _linear_probe_accuracy(x0, frog0) > 0.99
    assert abs(_linear_probe_accuracy(x1, frog1) - 0.5) < 0.08  # chance, within sampling noise


def test_a_shared_policy_reads_the_seat():
    """The shared network's logits move with the seat input at I = 0 (nothing masks it)."""
    config = RLConfig(num_envs=4, num_steps=2, updates=1, checkpoint_every=1, num_minibatches=1)
    from mirror.rl.ppo import init_params

    params = init_params(config, jax.random.key(0))
    frog, toad = _views(_the_issues_state(), False)
    policy = make_policy(config)
    logits = policy(params, jnp.stack([frog, toad]), jnp.asarray([0, 1]))[0]
    assert not np.allclose(logits[0], logits[1])
    paper = make_policy(RLConfig(num_envs=4, num_steps=2, updates=1, checkpoint_every=1, num_minibatches=1, view="paper"))
    same = paper(params, jnp.stack([frog, toad]), jnp.asarray([0, 1]))[0]
    np.testing.assert_array_equal(np.asarray(same[0]), np.asarray(same[1]))


@pytest.mark.slow  # a probe dataset per view
def test_the_probe_set_in_memory_follows_the_view():
    """`mirror.probe_set(..., view="seat")`: Frog's seat (4) on every row and its position
    kept unveiled; under the veil I = 1 the paper's rows exactly; groups unchanged."""
    from mirror.analysis.probe import probe_set

    key = jax.random.key(4)
    paper, groups = probe_set(ENV, 200, key)
    seat, seat_groups = probe_set(ENV, 200, key, view="seat")
    np.testing.assert_array_equal(groups, seat_groups)
    assert (seat[:, 96] == 4).all() and not paper[:, 96].any() and not paper[:, 99].any()
    np.testing.assert_array_equal(np.delete(seat, [96, 99], axis=1), np.delete(paper, [96, 99], axis=1))
    # the kept position is Frog's: its cell on the players line shows Frog (4) or distress (9),
    # but where Toad stands on the same cell (the partner is drawn there)
    shown = seat[np.arange(len(seat)), 32 + seat[:, 99].astype(int)]
    assert np.mean(np.isin(shown, (4, 9))) > 0.9 and np.isin(shown, (4, 5, 6, 7, 8, 9)).all()
    veiled, _ = probe_set(EnvParams(veil=1.0), 200, key, view="seat")
    plain, _ = probe_set(EnvParams(veil=1.0), 200, key)
    np.testing.assert_array_equal(veiled, plain)
