"""`mirror play --agent RUN_DIR[:CHECKPOINT]`: trained networks play both players and
every decision shows its action probabilities, which are the softmax of the policy
logits of the right network at the right checkpoint for the shown observation."""

import json
import re
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import copy_run

from mirror.agents.actor_critic import cmni_params, init_actor_critic
from mirror.cli import main
from mirror.data.processing import model_inputs
from mirror.env import observe
from mirror.env.constants import ACTION_NAMES, obs_size
from mirror.rl.config import make_config
from mirror.rl.ppo import init_params, make_policy, policy_logits
from mirror.runs.checkpoints import open_manager, save_checkpoint, write_json_atomic, write_run_files
from mirror.runs.config import load_config
from mirror.runs.watch import load_agents, parse_agent, play_agents
from mirror.train.population import Member

WIDTHS = (6, 5)
UPDATES = (2, 4)
LINE = re.compile(r"^(Frog|Toad) \(network (\d+)\): hop ([\d.]+)  jump ([\d.]+)  leap ([\d.]+)  help ([\d.]+)  -> (\w+)$")


def make_rl_run(run_dir, *, sharing="shared", member_envs=({"dependency": 0.5, "veil": 0.0},), activation="tanh"):
    """A tiny RL run directory in the RL_CONTRACT layout, with known random params: a
    checkpoint per update in UPDATES, the networks' params of update U drawn from key U.
    Returns {update: MLP-layout params, leaves [networks, ...]}.
    (The integrator may swap this for helper A's writer; it is the only place that writes.)"""
    per = 1 if sharing == "shared" else 2
    networks = per * len(member_envs)
    config = load_config(
        None,
        {"name": "rl-fixture", "seed": 3, "env": {"episode_turns": 20}, "model": {"hidden_layers": 2, "width": 6, "activation": activation}},
    )
    run_dir.mkdir(parents=True)
    members = [Member(seed=m, lr=1e-3, dropout=0.0, l2=0.0, widths=WIDTHS) for m in range(networks)]
    write_run_files(run_dir, config, {"rows": 0}, run_dir / "no-dataset", members)
    rl_members = [{"seed": m, "lr": 1e-3, "partner_reward_weight": 0.0, "env": env} for m, env in enumerate(member_envs)]
    write_json_atomic(
        run_dir / "rl_run.json",
        {"sharing": sharing, "networks_per_member": per, "num_inputs": obs_size(32), "members": rl_members,
         "probe": {"games": 4, "turns": 8, "seed": 0}, "eval": {"games": 4, "turns": 20}},
    )  # fmt: skip
    saved = {}
    manager = open_manager(run_dir)
    for update in UPDATES:
        keys = jax.random.split(jax.random.key(update), networks)
        full = jax.vmap(lambda k: init_actor_critic(k, WIDTHS, activation, num_inputs=obs_size(32)))(keys)
        # Orthogonal init gives near-uniform logits; scale the logits' kernel so probabilities differ.
        full["output"]["kernel"] = full["output"]["kernel"] * 300.0
        params = jax.tree.map(np.asarray, cmni_params(full))
        state = types.SimpleNamespace(params=params, opt_state={"count": np.zeros(networks, np.int32)})
        save_checkpoint(manager, update, state, {"epoch": update, "best_epoch": UPDATES[0], "config_hash": "fixture"})
        with open(run_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps({"epoch": update, "return_agent": 0.0}) + "\n")
        saved[update] = params
    manager.wait_until_finished()
    manager.close()
    return saved


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """`make_rl_run` with its defaults, once for the module: (run_dir, saved params). Read
    it only; a test that changes it works on a copy."""
    run = tmp_path_factory.mktemp("play") / "run"
    return run, make_rl_run(run)


def _expected_probs(params, network, obs, activation="tanh"):
    """softmax of the logits, computed here without the library's forward: dense layers by hand
    on the §5.6 model input."""
    h = np.asarray(model_inputs(jnp.asarray(obs)), np.float64)
    act = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}[activation]
    for i in range(len(WIDTHS)):
        h = act(h @ np.asarray(params[f"hidden_{i}"]["kernel"][network], np.float64) + params[f"hidden_{i}"]["bias"][network])
    logits = h @ np.asarray(params["output"]["kernel"][network], np.float64) + params["output"]["bias"][network]
    return np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()


def _play(capsys, *argv):
    code = main(["play", "--fps", "0", *argv])
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def _decisions(lines):
    return [LINE.match(line).groups() for line in lines if LINE.match(line)]


def test_policy_logits_are_the_actor_critics_logits():
    """The one forward from MLP-layout params equals what the training policy acts on."""
    config = make_config(hidden=(6, 5), activation="tanh")
    params = init_params(config, jax.random.key(0))
    obs = jax.random.randint(jax.random.key(1), (7, obs_size(32)), 0, 5).astype(jnp.int8)
    logits, _ = make_policy(config)(params, obs, jnp.zeros(7, jnp.int32))
    np.testing.assert_allclose(policy_logits(cmni_params(params), obs, (6, 5), "tanh"), logits, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_shared_agents_print_each_decisions_probabilities(shared_run, capsys):
    run, saved = shared_run
    code, lines, err = _play(capsys, "--agent", str(run), "--turns", "6", "--seed", "4")
    assert code == 0, err
    assert lines[0].startswith(f"agents: rl run {run}, update {UPDATES[-1]} (network 0 plays Frog and Toad); D=0.5, I=0")
    rows = _decisions(lines)
    assert [r[0] for r in rows] == ["Frog", "Toad"] * 3  # one decision per turn, both players act
    assert {r[1] for r in rows} == {"0"}
    agents = load_agents(run)
    replay = list(play_agents(agents, jax.random.key(4), 6))
    for row, d in zip(rows, replay):
        probs = np.asarray([float(p) for p in row[2:6]])
        assert abs(probs.sum() - 1.0) < 2e-4
        # The shown observation is the acting player's own view of the shown state (no veil: no noise).
        assert d.player == int(d.state.current_player)
        np.testing.assert_array_equal(d.obs, np.asarray(observe(d.state, d.player, agents.env_params, jax.random.key(0))))
        np.testing.assert_allclose(probs, _expected_probs(saved[UPDATES[-1]], 0, d.obs), atol=6e-5)
        assert row[6] == ACTION_NAMES[d.action]
    # Probabilities are not all uniform (the fixture's logits are scaled): the test can fail.
    assert max(max(float(p) for p in r[2:6]) for r in rows) > 0.4
    assert lines[-1].startswith("running game (episode 1) after 6 turns:")


def test_checkpoint_and_independent_networks_per_player(tmp_path, capsys):
    run = tmp_path / "run"
    envs = ({"dependency": 1.0, "veil": 0.0}, {"dependency": 0.0, "veil": 0.0})
    saved = make_rl_run(run, sharing="independent", member_envs=envs)
    code, lines, err = _play(capsys, "--agent", f"{run}:{UPDATES[0]}", "--member", "1", "--turns", "4", "--greedy")
    assert code == 0, err
    assert lines[0].startswith(f"agents: rl run {run}, update {UPDATES[0]} (network 2 plays Frog, network 3 Toad); D=0, I=0")
    rows = _decisions(lines)
    assert [(r[0], r[1]) for r in rows] == [("Frog", "2"), ("Toad", "3")] * 2
    agents = load_agents(run, str(UPDATES[0]), member=1)
    for row, d in zip(rows, play_agents(agents, jax.random.key(0), 4, greedy=True)):
        expected = _expected_probs(saved[UPDATES[0]], 2 + d.player, d.obs)
        np.testing.assert_allclose([float(p) for p in row[2:6]], expected, atol=6e-5)
        assert row[6] == ACTION_NAMES[int(np.argmax(expected))]  # greedy: the most probable action


def test_full_episode_by_default_with_scores(shared_run, capsys):
    run, _ = shared_run
    code, lines, _ = _play(capsys, "--agent", f"{run}:last")
    assert code == 0
    assert len(_decisions(lines)) == 20  # env.episode_turns of the run's config
    assert any(line.startswith("episode 1 finished after 20 turns: Frog ") for line in lines)


def test_supervised_run_plays_with_softmax_of_outputs(shared_run, tmp_path, capsys):
    run, saved = copy_run(shared_run[0], tmp_path / "run"), shared_run[1]
    (run / "rl_run.json").unlink()  # the same files without the RL marker: a supervised run
    code, lines, err = _play(capsys, "--agent", str(run), "--turns", "2")
    assert code == 0, err
    assert "supervised run" in lines[0] and "softmax" in lines[1]
    agents = load_agents(run)
    assert agents.env_params.dependency == 1.0  # the config's env alone (no member overrides)
    rows = _decisions(lines)
    for row, d in zip(rows, play_agents(agents, jax.random.key(0), 2)):
        np.testing.assert_allclose([float(p) for p in row[2:6]], _expected_probs(saved[UPDATES[-1]], 0, d.obs), atol=6e-5)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--agent", "{tmp}/nowhere"], "no such directory"),
        (["--agent", "{tmp}/empty"], "is not a run directory (config.yaml is missing)"),
        (["--agent", "{run}:7"], "no checkpoint '7'; available: 2, 4, last, best"),
        (["--agent", "{run}", "--member", "1"], "--member 1 is out of range"),
        (["--agent", "{run}", "--dependency", "0.5"], "--dependency cannot be used with --agent"),
        (["--member", "1"], "--member and --greedy only apply to --agent"),
        (["--agent", "{run}", "--turns", "0"], "--turns must be positive"),
    ],
)
def test_bad_agent_input_is_one_line(shared_run, tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    code, lines, err = _play(capsys, *[a.format(tmp=tmp_path, run=shared_run[0]) for a in argv])
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not any(LINE.match(line) for line in lines)


def test_parse_agent_keeps_colons_of_paths(tmp_path):
    odd = tmp_path / "a:b"
    odd.mkdir()
    assert parse_agent(str(odd)) == (odd, None)
    assert parse_agent(f"{odd}:12") == (odd, "12")
    # Without a directory before the colon, the whole text is the path (then: no such directory).
    assert parse_agent(f"{tmp_path}/missing:3") == (tmp_path / "missing:3", None)
