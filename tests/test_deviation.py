"""The deviation-gain yardstick (spec §9 "Deviation gain", "Help given opportunity")."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mirror.env import HELP, JUMP, EnvParams
from mirror.env.presets import PRESETS
from mirror.rl.baselines import evaluate, oracle_policy
from mirror.rl.deviation import DEVIATIONS, seat_objective, deviation_gains, interval, summarise
from mirror.rl.ppo import policy_logits
from mirror.rl.turns import agent

GAMES, TURNS = 32, 200  # one whole stakes episode per game
STAKES = EnvParams(**PRESETS["stakes"])


def _fixed_action_network(action: int):
    """A hand-built 2 x 4 MLP actor whose logits put a margin of 60 on `action` whatever it
    sees: zero kernels, the output bias alone (a Gumbel draw never overturns 60)."""
    hidden = {"kernel": jnp.zeros((100, 4)), "bias": jnp.zeros(4)}
    bias = jnp.full(4, -30.0).at[action].set(30.0)
    return {"hidden_0": hidden, "hidden_1": {"kernel": jnp.zeros((4, 4)), "bias": jnp.zeros(4)}, "output": {"kernel": jnp.zeros((4, 4)), "bias": bias}}


def _network_policy(params, obs, player, central=None):
    logits = policy_logits(params, obs, (4, 4), "relu")
    return logits, jnp.zeros(logits.shape[:-1])


@functools.lru_cache(maxsize=None)
def _gains(action: int, w: float = 0.0):
    decide = agent(_network_policy, _fixed_action_network(action))
    run = jax.jit(lambda key: deviation_gains(decide, STAKES, key, GAMES, TURNS, w))
    return jax.tree.map(np.asarray, run(jax.random.key(5)))


def test_an_agent_that_always_jumps_gains_from_the_oracles_moves_and_from_nothing_else():
    """It never helps (never_help changes nothing) and never spends energy, so its partner
    never stalls (help_stalled never fires): both gains are exactly 0 in every game. The
    oracle's moves score where jumping never does."""
    gain = _gains(JUMP)["gain"]
    assert gain.shape == (len(DEVIATIONS), 2, GAMES)
    np.testing.assert_array_equal(gain[DEVIATIONS.index("never_help")], 0.0)
    np.testing.assert_array_equal(gain[DEVIATIONS.index("help_stalled")], 0.0)
    summary = summarise(_gains(JUMP), 0.0)
    oracle_gain = summary["gains"]["oracle_move"]
    assert oracle_gain["low"] > 0 and all(s["low"] > 0 for s in oracle_gain["per_seat"])
    assert summary["at_best_response"] is False
    assert summary["deviations_that_gain"] == ["oracle_move"] and summary["best_deviation"] == "oracle_move"
    assert summary["return"] == 0.0  # jumping never scores


def test_an_agent_that_always_helps_gains_by_never_helping():
    """Help costs the helper energy and never moves it; a hop scores."""
    summary = summarise(_gains(HELP), 0.0)
    assert summary["gains"]["never_help"]["low"] > 0
    assert summary["at_best_response"] is False


def test_the_oracle_pair_gains_nothing_from_its_own_moves():
    """oracle_move replaces the oracle's non-help moves by the oracle's: the same games,
    turn for turn (common random numbers), so the gain is exactly 0 in every game."""
    run = jax.jit(lambda key: deviation_gains(oracle_policy(), STAKES, key, GAMES, TURNS, 0.0))
    gain = np.asarray(run(jax.random.key(5))["gain"])
    np.testing.assert_array_equal(gain[DEVIATIONS.index("oracle_move")], 0.0)


def test_the_objective_is_own_plus_w_times_the_partners_per_episode():
    counts = {"score": jnp.asarray([[10, 4], [6, 6]]), "episodes": jnp.asarray([2, 1])}
    np.testing.assert_allclose(np.asarray(seat_objective(counts, 0, 0.5)), [(10 + 2) / 2, 6 + 3])
    np.testing.assert_allclose(np.asarray(seat_objective(counts, 1, 0.0)), [2.0, 6.0])


def test_the_interval_is_the_normal_interval_of_the_mean():
    out = interval(np.asarray([1.0, 2.0, 3.0, 4.0]))
    half = 1.959963984540054 * np.std([1, 2, 3, 4], ddof=1) / 2
    assert out["mean"] == 2.5 and out["low"] == pytest.approx(2.5 - half) and out["high"] == pytest.approx(2.5 + half)


def test_help_given_opportunity_counts_only_decisions_where_help_can_restart_the_partner():
    """A lone scripted helper (K = 0, M = 1) helps at every opportunity: its rate is 1,
    and the opportunities are a subset of the partner-at-energy-0 decisions."""
    from mirror.rl.scripted import helper, lone_helper, hop_jump
    from mirror.rl.turns import scripted_policy

    out = jax.jit(lambda k: evaluate(scripted_policy(lone_helper(hop_jump, 0, 1, seat=0)), STAKES, k, GAMES, TURNS))(jax.random.key(1))
    counts = jax.tree.map(np.asarray, out["per_game"])
    frog_opportunities = counts["opportunities"][:, 0].sum()
    assert frog_opportunities > 0
    assert counts["helps_opportunity"][:, 0].sum() == frog_opportunities  # Frog helps at every one
    assert counts["helps_opportunity"][:, 1].sum() == 0  # Toad never helps
    assert np.all(counts["opportunities"] <= counts["partner_energy0"])
    both = jax.jit(lambda k: evaluate(scripted_policy(helper(hop_jump, 0, 1)), STAKES, k, GAMES, TURNS))(jax.random.key(1))
    assert float(both["help_given_opportunity"]) == 1.0
    never = jax.jit(lambda k: evaluate(scripted_policy(hop_jump), EnvParams(), k, GAMES, TURNS))(jax.random.key(1))
    assert float(never["help_given_opportunity"]) in (0.0,) or np.isnan(float(never["help_given_opportunity"]))
