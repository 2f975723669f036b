"""The command line, parameter validation and the batched rollout hot path."""

import subprocess
import sys
import textwrap

import chex
import jax
import numpy as np
import pytest
from conftest import xla_env

from mirror.cli import main
from mirror.env import EnvParams, initial_state, transition
from mirror.env.noise import noise_from_uniforms, noise_size
from mirror.env.packed import pack, unpack
from mirror.env.policy import BEHAVIOUR_PROBS, actions_from_uniforms
from mirror.env.rollout import batch_step, make_rollout
from mirror.env.validate import env_params_from_dict


def test_play_prints_frames_and_final_scores(capsys):
    assert main(["play", "--turns", "4", "--fps", "0", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("turn ") == 5  # four frames before the actions plus the final one
    assert out.strip().splitlines()[-1].startswith("running game (episode 1) after 4 turns: Frog")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["play", "--veil", "1.5"], "--veil must be in [0, 1]"),
        (["play", "--turns", "0"], "--turns must be positive"),
        (["demo", "--games", "4", "--show", "5"], "--show must be in [0, --games=4]"),
    ],
)
def test_bad_arguments_fail_naming_the_flag(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_run_demo_reports_throughput(capsys):
    assert main(["demo", "--games", "8", "--turns", "20", "--show", "1"]) == 0
    out = capsys.readouterr().out
    assert "8 games x 20 turns" in out and "turns/s" in out


def test_env_params_validation_names_field_and_range():
    assert env_params_from_dict({"dependency": 0, "episode_turns": 7}).dependency == 0.0
    with pytest.raises(ValueError, match=r"unknown env field\(s\) \['dependancy'\]"):
        env_params_from_dict({"dependancy": 1.0})
    with pytest.raises(ValueError, match=r"env.veil = 2.0 is outside the allowed range \[0.0, 1.0\]"):
        env_params_from_dict({"veil": 2.0})
    with pytest.raises(ValueError, match="env.episode_turns must be an integer"):
        env_params_from_dict({"episode_turns": 1.5})
    # The hot path packs the world into one uint32: wider worlds fail before any work.
    with pytest.raises(ValueError, match=r"env.world_width = 40 is outside the allowed range \[8, 32\]"):
        env_params_from_dict({"world_width": 40})


def test_behaviour_policy_frequencies():
    u = jax.random.uniform(jax.random.key(0), (200_000,))
    counts = np.bincount(np.asarray(actions_from_uniforms(u, BEHAVIOUR_PROBS)), minlength=4) / u.size
    # Binomial standard error at n = 200k is <= 0.0012; 5 sigma.
    np.testing.assert_allclose(counts, BEHAVIOUR_PROBS, atol=0.006)


@pytest.mark.slow
def test_batch_step_equals_single_transitions_and_resets_at_truncation():
    params = EnvParams(episode_turns=3)
    games = 5

    @jax.jit  # op by op, 15 transitions take ~15 s
    def single_step(state, u):
        return transition(state, actions_from_uniforms(u[-1], BEHAVIOUR_PROBS), noise_from_uniforms(u[:-1], params), params)

    states = jax.vmap(initial_state, in_axes=(0, None))(jax.random.split(jax.random.key(1), games), params)
    for turn in range(3):
        u = jax.random.uniform(jax.random.fold_in(jax.random.key(2), turn), (games, noise_size(params) + 1))
        single = [jax.tree_util.tree_map(lambda x: x[g], states) for g in range(games)]
        expected = [single_step(single[g], u[g]) for g in range(games)]
        packed, done, gained = batch_step(jax.vmap(pack)(states), u, params, BEHAVIOUR_PROBS)
        states = jax.vmap(unpack, in_axes=(0, None))(packed, params.world_width)
        expected_gain = np.stack([np.asarray(e.score) - np.asarray(s.score) for e, s in zip(expected, single)])
        np.testing.assert_array_equal(np.asarray(gained), expected_gain)
        if turn < 2:
            assert not bool(done.any())
            for g in range(games):
                chex.assert_trees_all_equal(jax.tree_util.tree_map(lambda x: x[g], states), expected[g])
        else:
            assert bool(done.all())
            assert (np.asarray(states.turn) == 0).all() and (np.asarray(states.energy) == params.max_energy).all()
            # The fresh game's flies come from this turn's spawn uniforms.
            np.testing.assert_array_equal(np.asarray(states.flies), np.asarray(u[:, : params.world_width] < params.fly_spawn_prob))


def test_rollout_is_deterministic_and_compiles_once():
    rollout = make_rollout(EnvParams(episode_turns=50), num_games=16, num_turns=120)
    first = rollout(jax.random.key(7))
    again = rollout(jax.random.key(7))
    other = rollout(jax.random.key(8))
    assert rollout._cache_size() == 1  # new keys reuse the compiled program
    chex.assert_trees_all_equal(first, again)
    assert int(first[1].episodes) == 16 * 2  # 120 turns at 50 per episode: two truncations per game
    assert int(first[1].hops) > 0
    assert not np.array_equal(np.asarray(first[0].ground), np.asarray(other[0].ground))


@pytest.mark.slow  # a subprocess with two XLA devices
def test_sharded_rollout_equals_single_device():
    """Two XLA CPU devices (set before JAX starts) give the same games as one."""
    script = textwrap.dedent(
        """
        import jax, numpy as np
        from mirror.env import EnvParams
        from mirror.env.rollout import make_rollout
        assert len(jax.devices()) == 2
        p = EnvParams(episode_turns=40)
        a = make_rollout(p, 8, 90, shard=True)(jax.random.key(3))
        b = make_rollout(p, 8, 90, shard=False)(jax.random.key(3))
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        print("same")
        """
    )
    env = xla_env(devices=2)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "same" in out.stdout


def test_play_with_the_oracle_policy_makes_progress(capsys):
    assert main(["play", "--turns", "40", "--fps", "0", "--policy", "oracle", "--seed", "1"]) == 0
    final = capsys.readouterr().out.strip().splitlines()[-1]
    frog, toad = (int(x.strip(" ,")) for x in final.split("turns: Frog")[1].split("Toad"))
    # 20 turns each: the oracle hops on solid ground and leaps or jumps otherwise.
    assert frog >= 15 and toad >= 15


def test_the_default_configs_are_found_from_any_working_directory(tmp_path, monkeypatch):
    """`mirror run` and `mirror rl` without --config read the repository's quickstart
    configs even when started outside the repository."""
    from mirror.cli.commands import default_config_path
    from mirror.cli.rl import default_rl_config_path

    monkeypatch.chdir(tmp_path)
    assert default_config_path().is_file() and default_config_path().name == "quickstart.yaml"
    assert default_rl_config_path().is_file() and default_rl_config_path().name == "rl_quickstart.yaml"
