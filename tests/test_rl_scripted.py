"""Scripted baselines (spec §9) on hand-built states, and the evaluation that scores every
policy, agents and scripted alike, in the same fixed-key games (common random numbers,
per-game counts)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mirror.env import HELP, HOP, JUMP, EnvParams, state_from_values
from mirror.rl import evaluate, hop_jump_policy, per_player, scripted_baselines, scripted_policy
from mirror.rl.baselines import COUNTS, SCRIPTED_BASELINES, agent_policy
from mirror.rl.scripted import CODES, always_jump, by_code, frozen_partner, helper, hop_jump, lone_helper, oracle, seats

ENV = EnvParams()


def _state(own_energy, partner_energy, partner_position, player=0, own_position=10):
    position, energy = [0, 0], [0, 0]
    position[player], position[1 - player] = own_position, partner_position
    energy[player], energy[1 - player] = own_energy, partner_energy
    ground = [1] * 32
    ground[partner_position] = 2  # the partner in distress: the oracle's help rule may fire
    return state_from_values(ground=ground, flies=[False] * 32, position=position, energy=energy, current_player=player)


def _stack(states):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


# own energy, partner energy, partner position (26 is the last reachable cell: 26 + 5 < 32), player
GRID = list(itertools.product(range(5), range(5), (20, 26, 27, 31), (0, 1)))
STATES = _stack([_state(*cell) for cell in GRID])


def _acts(act):
    return np.asarray(jax.jit(jax.vmap(lambda s: act(s, ENV)))(STATES))


def test_hop_jump_hops_with_energy_and_jumps_without():
    np.testing.assert_array_equal(_acts(hop_jump), [HOP if own > 0 else JUMP for own, *_ in GRID])
    np.testing.assert_array_equal(_acts(always_jump), [JUMP] * len(GRID))


@pytest.mark.parametrize("base", ["hop_jump", "oracle"])
def test_helper_helps_exactly_when_the_partner_is_low_it_has_enough_and_can_reach(base):
    """helper(base, K=2, M=3) on every cell of the grid: help iff partner energy <= 2, own
    energy >= 3 and partner position + 5 < 32; otherwise exactly the base's action."""
    base_act = {"hop_jump": hop_jump, "oracle": oracle}[base]
    expected_base = _acts(base_act)
    got = _acts(helper(base_act, 2, 3))
    rule = np.asarray([partner <= 2 and own >= 3 and pos + 5 < 32 for own, partner, pos, _ in GRID])
    np.testing.assert_array_equal(got, np.where(rule, HELP, expected_base))
    assert rule.any() and (~rule).any() and (expected_base[rule] != HELP).any()  # the rule changes actions


def test_seats_and_codes_give_each_player_its_own_policy():
    """seats(frog, toad): Frog plays hop_jump, Toad a frozen partner (always jump); by_code
    with traced codes plays the same seating."""
    frozen = seats(hop_jump, always_jump)
    players = np.asarray([player for *_, player in GRID])
    np.testing.assert_array_equal(_acts(frozen), np.where(players == 0, _acts(hop_jump), JUMP))
    np.testing.assert_array_equal(_acts(frozen_partner(hop_jump, seat=1)), np.where(players == 1, _acts(hop_jump), JUMP))
    lone = _acts(lone_helper(oracle, 2, 3, seat=1))
    np.testing.assert_array_equal(lone, np.where(players == 1, _acts(helper(oracle, 2, 3)), _acts(oracle)))
    codes = jnp.asarray([CODES.index("helper_oracle"), CODES.index("hop_jump")])
    np.testing.assert_array_equal(_acts(by_code(codes[0], codes[1], 2, 3)), _acts(seats(helper(oracle, 2, 3), hop_jump)))


# --- evaluation in fixed-key games -----------------------------------------------------

# Short episodes, little energy and many obstacles: players run out of energy and help.
SHORT = EnvParams(episode_turns=40, max_energy=2, obstacle_rate_step=0.05, obstacle_rate_max=0.3)
GAMES, TURNS = 8, 80  # two whole episodes per game


def _hop_jump_network(params, obs, player, central=None):
    """A stand-in network whose sampled action is hop_jump's: hop with energy (index 3W + 1),
    else jump, by a margin no Gumbel draw overturns."""
    hop = obs[:, 97] > 0
    logits = jnp.where(hop[:, None], jnp.array([0.0, -1e4, -1e4, -1e4]), jnp.array([-1e4, 0.0, -1e4, -1e4]))
    return logits, jnp.zeros(obs.shape[0])


def _eval(decide, key=0):
    return jax.jit(lambda k: evaluate(decide, SHORT, k, GAMES, TURNS))(jax.random.key(key))


def test_every_policy_plays_the_same_games_for_the_same_key():
    """Common random numbers: an agent that samples hop_jump's actions plays exactly the
    scripted hop_jump's games (start states, env noise, flies caught: every per-game count),
    although it draws Gumbel noise; Frog-only combinations compose the same way; another
    key gives other games."""
    scripted_games = _eval(hop_jump_policy())
    agent_games = _eval(agent_policy(_hop_jump_network, None))
    for name in ("episodes",) + COUNTS:
        np.testing.assert_array_equal(agent_games["per_game"][name], scripted_games["per_game"][name], err_msg=name)
    assert np.ptp(np.asarray(scripted_games["per_game"]["score"])) > 0  # the games differ from each other
    mixed = _eval(per_player(agent_policy(_hop_jump_network, None), scripted_policy(always_jump)))
    frozen = _eval(scripted_policy(seats(hop_jump, always_jump)))
    for name in ("episodes",) + COUNTS:
        np.testing.assert_array_equal(mixed["per_game"][name], frozen["per_game"][name], err_msg=name)
    other = _eval(hop_jump_policy(), key=1)
    assert not np.array_equal(other["per_game"]["score"], scripted_games["per_game"]["score"])


def test_per_game_counts_add_up_to_the_pooled_numbers():
    """helper(hop_jump, K=0, M=1): it helps only a partner at energy 0, so every help is a help
    when the partner is at energy 0; the pooled rates are the per-game counts' ratios."""
    result = _eval(scripted_policy(helper(hop_jump, 0, 1)))
    g = {k: np.asarray(v) for k, v in result["per_game"].items()}
    np.testing.assert_array_equal(g["episodes"], [2] * GAMES)
    np.testing.assert_array_equal(g["decisions"], np.full((GAMES, 2), TURNS // 2))
    assert g["helps"].sum() > 0 and g["partner_energy0"].sum() > g["helps"].sum()  # not every stalled partner is helped
    np.testing.assert_array_equal(g["helps"], g["helps_partner_energy0"])
    assert np.all(g["helps_partner_distressed"] <= g["partner_distressed"])
    assert np.all(g["decisions_energy0"] <= g["decisions"])
    np.testing.assert_allclose(result["return_per_player"], g["score"].sum(0) / g["episodes"].sum())
    np.testing.assert_allclose(result["help_rate"], g["helps"].sum() / g["decisions"].sum())
    np.testing.assert_allclose(result["help_when_partner_energy0"], g["helps"].sum() / g["partner_energy0"].sum())
    np.testing.assert_allclose(result["energy0_share"], g["decisions_energy0"].sum() / g["decisions"].sum())


@pytest.mark.slow
def test_scripted_baselines_equal_their_policies_played_alone():
    """The vmapped seatings give each baseline exactly what `evaluate` gives its seating
    alone: pairs pooled over both players; a lone helper's and a frozen partner's player as
    Frog ([0]) and as Toad ([1])."""
    results = jax.jit(lambda k: scripted_baselines(SHORT, k, GAMES, TURNS, 0, 1))(jax.random.key(0))
    assert set(results) == set(SCRIPTED_BASELINES)
    helper_hj = helper(hop_jump, 0, 1)
    np.testing.assert_allclose(results["hop_jump"]["return"], _eval(hop_jump_policy())["return"])
    np.testing.assert_allclose(results["helper_hop_jump"]["return"], _eval(scripted_policy(helper_hj))["return"])
    as_frog = _eval(scripted_policy(seats(helper_hj, hop_jump)))
    as_toad = _eval(scripted_policy(seats(hop_jump, helper_hj)))
    lone = results["lone_helper_hop_jump"]
    np.testing.assert_allclose(lone["return_per_player"], [as_frog["return_per_player"][0], as_toad["return_per_player"][1]])
    np.testing.assert_allclose(lone["return"], np.mean(lone["return_per_player"]))
    helps = as_frog["per_game"]["helps"][:, 0].sum() + as_toad["per_game"]["helps"][:, 1].sum()
    np.testing.assert_allclose(lone["help_rate"], helps / (2 * GAMES * TURNS // 2))
    frozen = results["frozen_partner_hop_jump"]
    alone = _eval(scripted_policy(seats(hop_jump, always_jump)))
    np.testing.assert_allclose(frozen["return_per_player"][0], alone["return_per_player"][0])
