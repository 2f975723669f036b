"""Regime diagnostics (`mirror stakes`, spec §10), against games played by hand.

The hand-played games run in a deterministic regime: no flies, no help-leaps, and every
new cell starts an obstacle of width 1 (rate 1 from the first scroll), so the ground
alternates rough and solid and nothing depends on the noise. The plain-Python reference
game (`mirror.env.reference`) plays each scripted pairing with the policies written out
here from spec §9, and the test computes the stakes of spec §10 by hand from its scores.
"""

import jax
import numpy as np
import pytest

from mirror.env import EnvParams
from mirror.env.constants import HELP, HOP, JUMP, ROUGH
from mirror.env.noise import sample_noise
from mirror.env.policy import oracle_label
from mirror.env.reference import ReferenceGame
from mirror.rl.stakes import difference, stakes_by_dependency, stakes_per_game, stakes_table

DETERMINISTIC = {
    "episode_turns": 80, "max_energy": 10, "fly_spawn_prob": 0.0, "help_leap_prob": 0.0,
    "obstacle_rate_step": 1.0, "obstacle_rate_max": 1.0, "obstacle_max_width": 1,
}  # fmt: skip
K, M = 0, 1


def hop_jump(game, me):
    return HOP if game.players[me].energy > 0 else JUMP


def oracle(game, me):
    partner = game.players[1 - me]
    own = np.asarray(game.observe(me), np.int8)
    return int(oracle_label(own, game.ground[partner.position] == ROUGH, game.width))


def helper(base):
    def act(game, me):
        mine, theirs = game.players[me], game.players[1 - me]
        if theirs.energy <= K and mine.energy >= M and theirs.position + game.params.leap_distance < game.width:
            return HELP
        return base(game, me)

    return act


def always_jump(game, me):
    return JUMP


def hand_played(frog, toad, env: EnvParams):
    """Own score per 100 decisions of Frog and Toad, and each one's decisions at energy 0."""
    noise = sample_noise(jax.random.key(0), env)  # the rules here use none of it
    game = ReferenceGame.new_game(np.ones(env.world_width), env)
    energy0 = [0, 0]
    for _ in range(env.episode_turns):
        me = game.current_player
        energy0[me] += game.players[me].energy == 0
        game.play((frog, toad)[me](game, me), noise)
    decisions = env.episode_turns / 2
    return [100 * p.score / decisions for p in game.players], [e / decisions for e in energy0]


def hand_stakes(dependency: float) -> dict:
    env = EnvParams(**DETERMINISTIC, dependency=dependency)
    pair = {name: hand_played(b, b, env) for name, b in (("hop_jump", hop_jump), ("oracle", oracle))}
    base_name = max(pair, key=lambda name: np.mean(pair[name][0]))
    base = {"hop_jump": hop_jump, "oracle": oracle}[base_name]
    pair_return = np.mean(pair[base_name][0])
    lone = [hand_played(helper(base), base, env)[0][0], hand_played(base, helper(base), env)[0][1]]
    frozen = [hand_played(base, always_jump, env)[0][0], hand_played(always_jump, base, env)[0][1]]
    return {
        "base": base_name,
        "cooperative_surplus": np.mean(hand_played(helper(base), helper(base), env)[0]) - pair_return,
        "help_incentive": np.mean(lone) - pair_return,
        "partner_stake": pair_return - np.mean(frozen),
        "energy0_share": np.mean(pair[base_name][1]),
    }


@pytest.fixture(scope="module")
def diagnostics():
    return stakes_by_dependency(DETERMINISTIC, [0.0, 1.0], jax.random.key(3), 3, K, M)


@pytest.mark.parametrize("dependency", [0.0, 1.0])
def test_stakes_equal_the_hand_played_games(diagnostics, dependency):
    hand = hand_stakes(dependency)
    ours = diagnostics["by_dependency"][f"{dependency:g}"]
    assert ours["base"] == hand["base"]
    for measure in ("cooperative_surplus", "help_incentive", "partner_stake", "energy0_share"):
        assert ours[measure]["mean"] == pytest.approx(hand[measure], abs=1e-9), measure
        # every game is the same game here, so the interval has no width
        assert ours[measure]["ci95"] == pytest.approx([hand[measure]] * 2, abs=1e-9), measure


def test_the_hand_played_regime_has_stakes_to_measure(diagnostics):
    """A check on the test itself: players stall, helping changes returns, D matters."""
    d0, d1 = (hand_stakes(d) for d in (0.0, 1.0))
    assert d1["energy0_share"] > 0.1 and d1["cooperative_surplus"] != 0
    assert d1["partner_stake"] != d0["partner_stake"]
    rise = diagnostics["help_incentive_rise"]
    assert rise["mean"] == pytest.approx(d1["help_incentive"] - d0["help_incentive"], abs=1e-9)


@pytest.mark.slow
def test_intervals_are_normal_intervals_over_games():
    env = EnvParams(episode_turns=40, max_energy=5, rough_cost=2, fly_spawn_prob=0.002, obstacle_max_width=8)
    per_game = stakes_per_game(env, jax.random.key(1), 64, K, M)
    values = per_game["help_incentive"]
    assert values.shape == (64,)
    # the diagnostics fixture's games (3 of them), so its compiled play is reused
    s = stakes_by_dependency({**DETERMINISTIC}, [1.0], jax.random.key(1), 3, K, M)["by_dependency"]["1"]["partner_stake"]
    assert s["ci95"][0] == pytest.approx(s["mean"])  # identical games: no spread
    half = 1.959963984540054 * values.std(ddof=1) / np.sqrt(64)
    summary = difference({"x": values}, {"x": np.zeros(64)}, "x")
    assert summary["mean"] == pytest.approx(values.mean())
    assert summary["ci95"] == pytest.approx([values.mean() - half, values.mean() + half])


def test_the_table_names_every_measure(diagnostics):
    text = stakes_table(diagnostics)
    for words in ("cooperative surplus", "help incentive", "partner stake", "energy-0 share", "help incentive at D = 1 minus D = 0"):
        assert words in text


@pytest.mark.slow
def test_the_stakes_preset_meets_its_criteria_by_its_own_diagnostics(tmp_path, capsys):
    """The shipped regime (`env.preset: stakes`): (a) a cooperative surplus of at least 5
    points per 100 decisions at D = 1; (b) the help incentive at D = 1 above that at D = 0
    by at least 3 points, its 95 % interval above 0; (c) a 200-turn episode."""
    from mirror.cli import main

    out = tmp_path / "stakes.json"
    assert main(["stakes", "--env.preset", "stakes", "--dependency", "0", "1", "--games", "512", "--json", str(out)]) == 0
    assert "help incentive at D = 1 minus D = 0" in capsys.readouterr().out
    import json

    r = json.loads(out.read_text())
    assert r["env"]["preset"] == "stakes" and r["env"]["episode_turns"] == 200
    assert r["by_dependency"]["1"]["cooperative_surplus"]["ci95"][0] >= 5.0
    assert r["help_incentive_rise"]["mean"] >= 3.0 and r["help_incentive_rise"]["ci95"][0] > 0.0


@pytest.mark.parametrize(
    "args, words",
    [
        (["--games", "1"], "--games must be an integer >= 2"),
        (["--dependency", "1.5"], "--dependency values must be in [0, 1]"),
        (["--env.preset", "nope"], "env.preset must be one of default, stakes"),
        (["--rl.helper_min_own_energy", "99"], "rl.helper_min_own_energy"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(args, words, capsys):
    from mirror.cli import main

    assert main(["stakes", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_a_preset_is_spelled_out_and_explicit_fields_win():
    from mirror.runs.config import load_config

    config = load_config(None, ["--env.preset", "stakes", "--env.help_gift", "3"])
    assert config.env["preset"] == "stakes" and config.env["help_gift"] == 3 and config.env["max_energy"] == 10
    params = config.env_params
    assert (params.help_gift, params.max_energy, params.rough_cost, params.fly_spawn_prob) == (3, 10, 3, pytest.approx(0.001))
    assert load_config(None, ["--env.preset", "default"]).env_params == EnvParams()
