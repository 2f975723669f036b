"""RL runs (`mirror rl`): the rl config section, populations in one program, the run
directory (checkpoints, probes, metrics, baselines, summary), resume and `mirror cmni`."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import CLASSIC_EMITTERS, RL_DEFAULT_GAME, TINY_RL, copy_run, overrides, rl_values, xla_env

from mirror.base.errors import TrainError
from mirror.cli import main
from mirror.data.labels import idle_shown
from mirror.rl.config import RLConfigError, rl_config
from mirror.rl.population import PopulationTrainer, own_view_idle_shown, rl_members
from mirror.runs.checkpoints import RL_ITEMS, Network, load_run, open_rl_manager, read_probes, read_rl_run, restore_rl_state
from mirror.runs.config import load_config
from mirror.runs.rl_files import read_baselines, read_rl_metrics
from mirror.runs.rl_run import rl_run


def tiny_config(cache: Path, **rl):
    """The tiny RL config of every test here (conftest's TINY_RL, so its programs are compiled once)."""
    return load_config(None, rl_values(cache, **rl))


@pytest.fixture(scope="module")
def rl_dir(tiny_rl_run) -> Path:
    """`mirror rl` end to end on the tiny config (shared: read it, never change it)."""
    return tiny_rl_run


def checkpoint_items(run_dir: Path) -> dict:
    """update -> {"params", "rl_state", "probe"} as host arrays."""
    manager = open_rl_manager(run_dir, read_only=True)
    try:
        out = {}
        for update in manager.all_steps():
            args = {name: ocp.args.StandardRestore() for name in ("params", "rl_state", "probe")}
            restored = manager.restore(update, args=ocp.args.Composite(**args))
            out[update] = {name: jax.tree.map(np.asarray, restored[name]) for name in args}
        return out
    finally:
        manager.close()


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def lines_without_wall(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k != "wall_s"} for x in path.read_text().splitlines()]


def assert_same_rl_run(a: Path, b: Path):
    items_a, items_b = checkpoint_items(a), checkpoint_items(b)
    assert sorted(items_a) == sorted(items_b)
    assert_trees_equal(items_a, items_b)
    for name in ("metrics.jsonl", "rl_metrics.jsonl"):
        assert lines_without_wall(a / name) == lines_without_wall(b / name), name
    assert read_baselines(a) == read_baselines(b)


# --- the rl section ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "rl, words",
    [
        ({"hidden": [8]}, "rl.hidden is not an rl field: set model.width and model.hidden_layers"),
        ({"activation": "tanh"}, "rl.activation is not an rl field: set model.activation"),
        ({"seed": 3}, "rl.seed is not an rl field: set the top-level seed"),
        ({"num_env": 16}, "unknown field(s) rl.num_env; allowed:"),
        ({"lr": -1.0}, "rl.lr must be a number > 0"),
        ({"num_minibatches": 3}, "rl.num_minibatches must be a divisor of num_envs * num_steps"),
        ({"population_seeds": [0, 1], "population_lrs": [1e-3]}, "lengths differ"),
        ({"population_veils": [0.0, 1.5]}, "rl.population_veils must be a list of numbers in [0, 1]"),
        ({"eval_turns": 100}, "rl.eval_turns must be >= env.episode_turns = 200"),
        ({"probe_turns": 15}, "rl.probe_turns must be an even positive integer"),
        ({"probe_turns": 202}, "rl.probe_turns must be <= env.episode_turns = 200"),
        ({"helper_max_partner_energy": -1}, "rl.helper_max_partner_energy must be an integer in [0, env.max_energy = 20]"),
        ({"helper_min_own_energy": 1.5}, "rl.helper_min_own_energy must be an integer in [0, env.max_energy = 20]"),
        ({"member_batching": "pmap"}, "rl.member_batching must be one of auto, map, vmap"),
    ],
)
def test_bad_rl_fields_are_rejected_naming_the_field(tmp_path, rl, words):
    with pytest.raises(RLConfigError) as err:
        tiny_config(tmp_path, **rl)
    assert words in str(err.value)


def test_bad_rl_field_on_the_command_line_is_one_line_before_any_work(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["rl", "--run-dir", str(run_dir), "--rl.hidden", "[8]", "--data.cache_dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "rl.hidden" in err and "model.width" in err
    assert not run_dir.exists() and not (tmp_path / "d").exists()  # nothing written


def test_rl_config_takes_the_architecture_and_seed_from_model_and_seed(tmp_path):
    config = load_config(None, {**rl_values(tmp_path), "seed": 7, "model": {"hidden_layers": 3, "width": 9, "activation": "tanh"}})
    ppo = rl_config(config)
    assert (ppo.hidden, ppo.activation, ppo.seed, ppo.num_envs) == ((9, 9, 9), "tanh", 7, 16)


def test_members_zip_the_population_lists(tmp_path):
    config = tiny_config(tmp_path, population_seeds=[3, 4], population_dependencies=[0.0, 0.5], population_partner_reward_weights=[0, 0.5])
    members = rl_members(config)
    assert [m.to_dict() for m in members] == [
        {"seed": 3, "lr": 2.5e-3, "partner_reward_weight": 0.0, "env": {"dependency": 0.0}},
        {"seed": 4, "lr": 2.5e-3, "partner_reward_weight": 0.5, "env": {"dependency": 0.5}},
    ]
    trainer = PopulationTrainer(config)  # builds, compiles nothing yet
    np.testing.assert_array_equal(trainer.env.dependency, [0.0, 0.5])
    np.testing.assert_array_equal(trainer.env.veil, [0.0, 0.0])
    np.testing.assert_array_equal(trainer.env.leap_distance, [5, 5])  # the spec's default under every member
    np.testing.assert_array_equal(trainer.weights, [0.0, 0.5])


@pytest.mark.slow
def test_own_view_idle_shown_equals_idle_shown_on_frogs_views():
    from mirror.env import EnvParams, reset
    from mirror.env.observation import observe_given_veil

    keys = jax.random.split(jax.random.key(0), 64)
    _, states = jax.vmap(reset, in_axes=(0, None))(keys, EnvParams())
    states = states.replace(position=jax.random.randint(jax.random.key(1), (64, 2), 0, 32))
    for veiled in (False, True):
        frog = jax.vmap(lambda s: observe_given_veil(s, 0, EnvParams(), veiled))(states)
        np.testing.assert_array_equal(own_view_idle_shown(frog, states.position[:, 1]), idle_shown(frog, states.position[:, 1]))
        # Toad's own view: Toad in Frog's place shows its own idle code (5, or 4 veiled)
        toad = jax.vmap(lambda s: observe_given_veil(s, 1, EnvParams(), veiled))(states)
        shared = states.position[:, 0] == states.position[:, 1]
        np.testing.assert_array_equal(own_view_idle_shown(toad, states.position[:, 0])[:, 0], ~shared)


# --- populations ----------------------------------------------------------------------


# Three members, each with its own seed, D, I, lr and w: the population of the member test
# and of the two-device test (one program, compiled once).
POPULATION = {
    "population_seeds": [0, 5, 7], "population_dependencies": [1.0, 0.5, 0.0], "population_veils": [0.0, 1.0, 0.5],
    "population_lrs": [1e-3, 3e-3, 2e-3], "population_partner_reward_weights": [0.0, 0.5, 1.0], "member_batching": "map",
}  # fmt: skip


@pytest.fixture(scope="module")
def population_interval(tmp_path_factory):
    """One interval of the three-member POPULATION on one device: (runner, metrics)."""
    trainer = PopulationTrainer(tiny_config(tmp_path_factory.mktemp("pop"), **POPULATION))
    assert trainer.mesh is None
    return trainer.interval(trainer.init())


@pytest.mark.slow
def test_a_population_member_equals_the_same_trial_run_alone(tmp_path, population_interval):
    """lax.map over members: member 1 of a population of three (other seed, D, I, lr, w)
    ends bit-identical to the same trial trained as a population of one."""
    runner_t, metrics_t = population_interval
    alone = PopulationTrainer(tiny_config(tmp_path, **{k: v[1:2] if isinstance(v, list) else v for k, v in POPULATION.items()}))
    runner_a, metrics_a = alone.interval(alone.init())
    member = jax.tree.map(lambda x: np.asarray(x)[1:2], (runner_t.params, runner_t.opt_state, runner_t.games, runner_t.value_norm))
    assert_trees_equal(jax.tree.map(np.asarray, (runner_a.params, runner_a.opt_state, runner_a.games, runner_a.value_norm)), member)
    np.testing.assert_array_equal(jax.random.key_data(runner_a.key), jax.random.key_data(runner_t.key)[1:2])
    np.testing.assert_array_equal(np.asarray(metrics_a["loss"]), np.asarray(metrics_t["loss"])[1:2])
    # and the members did train differently
    kernels = np.asarray(runner_t.params["actor"]["output"]["kernel"])
    assert not np.array_equal(kernels[0], kernels[1]) and not np.array_equal(kernels[1], kernels[2])


# --- the run directory --------------------------------------------------------------------


def test_rl_run_directory_follows_the_contract(rl_dir):
    names = {p.name for p in rl_dir.iterdir()}
    for name in ("config.yaml", "dataset.json", "members.json", "rl_run.json", "metrics.jsonl", "rl_metrics.jsonl",
                 "baselines.json", "summary.json", "report.md", "cmni.csv", "checkpoints"):  # fmt: skip
        assert name in names, name
    info = read_rl_run(rl_dir)
    assert info["sharing"] == "shared" and info["networks_per_member"] == 1 and info["num_inputs"] == 100
    assert info["probe"] == {"games": 4, "turns": 16, "seed": 0, "stream": 2}
    assert info["eval"] == {"games": 8, "turns": 200, "seed": 0, "greedy": False, "select_stream": 1, "report_stream": 3}
    assert info["helper"] == {"max_partner_energy": 0, "min_own_energy": 1}
    assert json.loads((rl_dir / "members.json").read_text()) == [{"seed": 0, "lr": 2.5e-3, "widths": [17, 17]}]  # a Network
    # a checkpoint after updates 2, 4 and 6, each with the four items
    assert sorted(int(p.name) for p in (rl_dir / "checkpoints").iterdir()) == [2, 4, 6]
    for update in (2, 4, 6):
        assert {p.name for p in (rl_dir / "checkpoints" / str(update)).iterdir()} >= set(RL_ITEMS)
    # load_run (what `mirror cmni` reads) sees the actor-critic without its value head
    run = load_run(rl_dir)
    assert run.kind == "rl" and run.members == [Network(seed=0, lr=2.5e-3, widths=(17, 17))]
    assert run.epochs.tolist() == [2, 4, 6]
    assert sorted(run.params) == ["hidden_0", "hidden_1", "output"]
    assert run.params["hidden_0"]["kernel"].shape == (3, 1, 100, 17) and run.params["output"]["kernel"].shape == (3, 1, 17, 4)
    assert run.checkpoint_index("best") in (0, 1, 2)
    # metrics.jsonl: one line per checkpoint; rl_metrics.jsonl: one per update
    checkpoints = [json.loads(x) for x in (rl_dir / "metrics.jsonl").read_text().splitlines()]
    assert [c["epoch"] for c in checkpoints] == [2, 4, 6] and [c["env_turns"] for c in checkpoints] == [256, 512, 768]
    assert set(checkpoints[0]) == {
        "epoch", "env_turns", "return_agent", "return_per_player", "help_rate", "help_when_partner_distressed",
        "help_when_partner_energy0", "help_given_opportunity", "return_agent_selection", "selected_update", "wall_s",
        "at_best_response", *(f"gain_{d}{s}" for d in ("help_stalled", "never_help", "oracle_move") for s in ("", "_low", "_high")),
    }  # fmt: skip
    updates = read_rl_metrics(rl_dir)
    assert [u["update"] for u in updates] == [1, 2, 3, 4, 5, 6] and [u["env_turns"] for u in updates] == [128 * u for u in range(1, 7)]
    for u in updates:  # every key in every update
        assert set(u) == {
            "update", "env_turns", "episodes", "return_per_player", "entropy", "policy_loss", "value_loss", "explained_variance",
            "approx_kl",
            "help_rate", "help_when_partner_distressed", "wall_s",
        }  # fmt: skip
    assert 0 < updates[0]["entropy"] <= np.log(4) + 1e-6
    # 16 games staggered over the 200-turn episode (turns 0, 12, 24, ..., 186), 8 turns per
    # update: the games started at 186, 174 and 162 end their episode in updates 2, 4 and 5;
    # the return of an update without an ended episode is null
    assert [u["episodes"] for u in updates] == [0, 1, 0, 1, 1, 0]
    for u in updates:
        assert len(u["return_per_player"]) == 2
        assert all(v is None for v in u["return_per_player"]) == (u["episodes"] == 0)
    # the probe set (b) of every checkpoint: 4 games x 16 turns, the network's input (the seat
    # view: the seat 4 / 5 alternating with the turn, the own position kept, the score zeroed)
    probes = read_probes(rl_dir)
    assert probes["inputs"].shape == (3, 1, 64, 100) and probes["inputs"].dtype == np.int8
    assert probes["scenarios"].shape == (3, 1, 64) and probes["idle_shown"].shape == (3, 1, 64, 2)
    assert probes["updates"].tolist() == [2, 4, 6]
    assert not probes["inputs"][..., 98].any()
    seats = probes["inputs"][..., 96].reshape(3, 16, 4)  # [checkpoints, turns, games]: turn t is player t % 2's
    np.testing.assert_array_equal(seats, np.broadcast_to(np.asarray([4, 5] * 8)[None, :, None], seats.shape))
    assert (probes["inputs"][..., 99] > 0).any()
    assert set(np.unique(probes["scenarios"])) <= {0, 1, 2, 3}
    # baselines: the same games as the agent's evaluation, once per member
    baselines = read_baselines(rl_dir)
    assert set(baselines) == {
        "behaviour", "oracle", "hop_jump", "helper_hop_jump", "helper_oracle", "lone_helper_hop_jump",
        "lone_helper_oracle", "frozen_partner_hop_jump", "frozen_partner_oracle",
    }  # fmt: skip
    assert baselines["oracle"]["episodes"] == baselines["behaviour"]["episodes"] == [8]  # 8 games x 1 episode
    assert baselines["lone_helper_oracle"]["episodes"] == [16]  # the helper as Frog, then as Toad
    assert baselines["oracle"]["return"][0] > baselines["behaviour"]["return"][0]
    for entry in baselines.values():
        assert set(entry) == {
            "return_per_player", "return", "help_rate", "help_when_partner_distressed", "help_when_partner_energy0",
            "help_given_opportunity",
            "energy0_share", "episodes",
        }  # fmt: skip
    assert baselines["hop_jump"]["help_rate"] == [0.0]


def test_summary_has_the_rl_keys(rl_dir):
    summary = json.loads((rl_dir / "summary.json").read_text())
    for key in ("return_agent", "return_behaviour", "return_oracle", "return_hop_jump", "help_rate", "help_when_partner_distressed",
                "help_when_partner_energy0", "env_turns", "turns_per_s", "explained_variance", "selected_update", "return_agent_selected"):  # fmt: skip
        assert key in summary, key
    assert summary["explained_variance"] == read_rl_metrics(rl_dir)[-1]["explained_variance"]  # the last update's
    assert summary["env_turns"] == 768 and summary["turns_per_s"] > 0
    baselines = read_baselines(rl_dir)
    assert summary["return_oracle"] == baselines["oracle"]["return"][0]
    assert summary["return_hop_jump"] == baselines["hop_jump"]["return"][0]
    for name in ("helper", "lone_helper"):
        assert summary[f"return_{name}"] == {b: baselines[f"{name}_{b}"]["return"][0] for b in ("hop_jump", "oracle")}
    last = json.loads((rl_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert summary["return_agent"] == last["return_agent"]
    assert len(summary["return_agent_per_player"]) == 2
    # the regime's stakes (spec §10) at the run's D, over rl.eval_games whole episodes
    stakes = summary["stakes"]
    assert stakes["games"] == 8 and list(stakes["by_dependency"]) == ["1"]
    assert set(stakes["by_dependency"]["1"]) == {"base", "pair_return", "cooperative_surplus", "help_incentive", "partner_stake", "energy0_share"}
    report = (rl_dir / "report.md").read_text()
    assert "## Stakes of the regime" in report and "help incentive" in report
    assert "cmni" in summary or "selected" in summary or len(summary) > 15  # the analysis summary is kept


def test_the_checkpoint_is_chosen_in_selection_games_and_reported_in_held_out_ones(rl_dir):
    """best_epoch is the first highest return in the selection games (stream 1); every
    reported number (metrics.jsonl, summary.json) is the return in the held-out report
    games (stream 3): recomputed here for each checkpoint's network in both sets of games."""
    from mirror.env.validate import env_params_from_dict
    from mirror.rl.baselines import agent_policy, evaluate
    from mirror.rl.ppo import policy_logits
    from mirror.runs.rl_run import REPORT_STREAM, SELECT_STREAM, fixed_key

    lines = [json.loads(x) for x in (rl_dir / "metrics.jsonl").read_text().splitlines()]
    best, best_update, expected = -np.inf, 0, []
    for line in lines:
        if line["return_agent_selection"] > best:
            best, best_update = line["return_agent_selection"], line["epoch"]
        expected.append(best_update)
    run = load_run(rl_dir)
    assert run.metric("best_epoch")[:, 0].tolist() == expected == [line["selected_update"] for line in lines]
    summary = json.loads((rl_dir / "summary.json").read_text())
    assert summary["selected_update"] == expected[-1]
    assert summary["return_agent_selected"] == next(x["return_agent"] for x in lines if x["epoch"] == expected[-1])

    config = run.config
    env = env_params_from_dict(config.env)

    def policy(params, obs, player, central=None):
        return policy_logits(params, obs, (17, 17), "relu"), jnp.zeros(obs.shape[0])

    score = jax.jit(lambda params, key: evaluate(agent_policy(policy, params), env, key, 8, 200)["return"])
    for i, line in enumerate(lines):
        params = jax.tree.map(lambda x: x[i, 0], run.params)
        reported = float(score(params, fixed_key(config.seed, REPORT_STREAM)))
        selection = float(score(params, fixed_key(config.seed, SELECT_STREAM)))
        np.testing.assert_allclose([reported, selection], [line["return_agent"], line["return_agent_selection"]], rtol=1e-6)
    assert any(x["return_agent"] != x["return_agent_selection"] for x in lines)  # two different sets of games


@pytest.mark.slow
def test_mirror_cmni_reads_an_rl_run(rl_dir, tmp_path, capsys):
    out = tmp_path / "analysis"
    assert main(["cmni", str(rl_dir), "--out", str(out), "--analysis.permutations", "0", "--analysis.init_seeds", "0", "--analysis.roles", "paper"]) == 0
    rows = (out / "cmni.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # header, 3 checkpoints x 1 network
    assert "member 0: selected epoch" in capsys.readouterr().out


@pytest.mark.slow
def test_same_seed_gives_a_bit_identical_run(rl_dir, dataset_cache, tmp_path):
    again = tmp_path / "again"
    rl_run(tiny_config(dataset_cache), again, log=lambda line: None)
    assert_same_rl_run(rl_dir, again)


@pytest.mark.slow
def test_interrupted_run_resumes_bit_identical(rl_dir, dataset_cache, tmp_path):
    """Stopped after checkpoint 2 with a torn rl_metrics line behind it: the resume trims the
    files back to the checkpoint and ends exactly where the uninterrupted run ends."""
    run_dir = tmp_path / "run"

    class Stop(Exception):
        pass

    def stop(report):
        if report.update == 2:
            raise Stop

    with pytest.raises(Stop):
        rl_run(tiny_config(dataset_cache), run_dir, on_update=stop, log=lambda line: None)
    with open(run_dir / "rl_metrics.jsonl", "a") as fh:
        fh.write('{"update": 3, "env_turns": 3')  # a kill in the middle of the next interval's lines
    logs = []
    result = rl_run(tiny_config(dataset_cache), run_dir, resume=True, log=logs.append)
    assert f"resuming {run_dir.absolute()} after update 2" in logs
    assert result.last_update == TINY_RL["updates"]
    assert_same_rl_run(rl_dir, run_dir)


def test_a_restored_state_lowers_to_the_programs_of_a_fresh_one(rl_dir, dataset_cache):
    """Restored arrays are not committed to a device, as a fresh state's are not: jit
    specialises on placement, so a resumed run would otherwise compile every program again."""
    trainer = PopulationTrainer(tiny_config(dataset_cache))
    fresh = trainer.init()
    manager = open_rl_manager(rl_dir, read_only=True)
    try:
        restored, _ = restore_rl_state(manager, 2, jax.eval_shape(lambda: trainer.unpad(trainer.init())))
    finally:
        manager.close()
    assert not any(leaf.committed for leaf in jax.tree.leaves(restored))
    program = jax.jit(lambda runner: jax.tree.map(lambda x: x, runner))
    assert program.lower(restored).as_text() == program.lower(fresh).as_text()


def test_resume_refuses_other_critic_settings_and_keeps_every_checkpoint(rl_dir, dataset_cache, tmp_path):
    """A run of the separate critic resumed with `rl.critic: shared` (another runner state,
    as for a run trained before the setting existed): refused for its settings before any
    restore, with its checkpoints left in place rather than set aside as unreadable."""
    run_dir = copy_run(rl_dir, tmp_path / "run")
    with pytest.raises(TrainError, match="trained with other seed/model/env/rl settings"):
        rl_run(tiny_config(dataset_cache, critic="shared"), run_dir, resume=True, log=lambda line: None)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["2", "4", "6"]


def test_cli_refuses_a_non_empty_run_dir_and_resuming_a_non_rl_dir(tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("")
    assert main(["rl", "--run-dir", str(busy)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert main(["rl", "--resume", str(busy)]) == 2
    assert "is not an RL run" in capsys.readouterr().err
    assert main(["rl", "--resume", str(busy), "--rl.updates", "4"]) == 2
    assert "drop --config, --run-dir and overrides" in capsys.readouterr().err


# --- slow: processes and independent networks ---------------------------------------------


# `mirror rl` in a process that stops for good in the `on_update` call of one update:
# the test waits for its marker file and kills it there (a stop by event, not by time).
VICTIM = """
import os, sys, time
from pathlib import Path

import mirror.runs.rl_run
from mirror.cli import main

stop_at, marker = int(sys.argv[1]), Path(sys.argv[2])
run = mirror.runs.rl_run.rl_run


def rl_run(config, run_dir, *, on_update=None, **kwargs):
    def stop(report):
        if on_update is not None:
            on_update(report)
        if report.update == stop_at:
            marker.write_text(str(os.getpid()))
            time.sleep(3600)  # killed here

    return run(config, run_dir, on_update=stop, **kwargs)


mirror.runs.rl_run.rl_run = rl_run  # `mirror rl` looks it up when it starts training
sys.exit(main(sys.argv[3:]))
"""


def complete_checkpoints(run_dir: Path) -> list[int]:
    if not (run_dir / "checkpoints").is_dir():
        return []
    manager = open_rl_manager(run_dir, read_only=True)
    try:
        return sorted(manager.all_steps())
    finally:
        manager.close()


def wait_for(condition, process, log: Path, timeout_s: float = 900):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)


@pytest.mark.slow  # a process to kill
def test_sigkill_then_resume_ends_bit_identical(rl_dir, dataset_cache, tmp_path, capsys):
    """`mirror rl` killed with SIGKILL while checkpoint 4 is being saved (the on_update of
    update 3 comes right after that save starts; checkpoint 2 is finalised), then `mirror rl
    --resume` of what the kill left: the run ends bit-identical to the uninterrupted `rl_dir`
    (the same config, `mirror rl` in this process)."""
    killed, marker, log = tmp_path / "killed", tmp_path / "stopped", tmp_path / "killed.log"
    command = ["rl", "--config", RL_DEFAULT_GAME, "--run-dir", str(killed), *overrides(rl_values(dataset_cache))]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the session's compilation cache: rl_dir compiled it all
    with open(log, "w") as fh:
        victim = subprocess.Popen([sys.executable, "-c", VICTIM, "3", str(marker), *command], env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_for(marker.is_file, victim, log)
        wait_for(lambda: 2 in complete_checkpoints(killed), victim, log)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=60) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert 2 <= max(complete_checkpoints(killed)) < TINY_RL["updates"]
    assert "report.md" not in {p.name for p in killed.iterdir()}  # killed before the analysis
    assert main(["rl", "--resume", str(killed)]) == 0  # in this process: the programs rl_dir compiled
    assert f"resuming {killed}" in capsys.readouterr().out
    assert_same_rl_run(rl_dir, killed)


@pytest.mark.slow
def test_independent_networks_are_two_per_member(dataset_cache, tmp_path):
    config = tiny_config(dataset_cache, sharing="independent", population_seeds=[0, 1], updates=2)
    run_dir = tmp_path / "run"
    rl_run(config, run_dir, log=lambda line: None)
    assert read_rl_run(run_dir)["networks_per_member"] == 2
    assert len(json.loads((run_dir / "members.json").read_text())) == 4
    items = checkpoint_items(run_dir)[2]
    assert items["params"]["hidden_0"]["kernel"].shape == (4, 100, 17)
    (member_kernels,) = [v for k, v in items["rl_state"].items() if k[4:] == "params_actor_hidden_0_kernel"]
    assert member_kernels.shape == (2, 2, 100, 17)  # [members, players, ...]
    np.testing.assert_array_equal(items["params"]["hidden_0"]["kernel"][3], member_kernels[1, 1])  # Toad of member 1
    assert items["probe"]["inputs"].shape == (4, 32, 100)  # each player's 8 of 16 turns x 4 games
    line = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert len(line["return_agent"]) == 4 and line["return_agent"][0] == line["return_agent"][1]
    # every player's network of every member learned from its own decisions
    start = PopulationTrainer(config)
    before = jax.tree.map(np.asarray, start.network_params(start.init().params))
    for network in range(4):
        assert not np.allclose(items["params"]["output"]["kernel"][network], before["output"]["kernel"][network]), network
    for update in read_rl_metrics(run_dir):
        assert np.isfinite(update["policy_loss"]).all() and np.isfinite(update["value_loss"]).all()


MESH_SCRIPT = """
import json, sys
import jax, numpy as np
from mirror.runs.config import load_config
from mirror.rl.population import PopulationTrainer
trainer = PopulationTrainer(load_config(None, json.loads(sys.argv[1])))
if jax.device_count() == 2:
    assert trainer.mesh is not None and trainer.mesh.size == 2 and trainer.padded == 4, (trainer.mesh, trainer.padded)
else:
    assert trainer.mesh is None and trainer.padded == 3, (trainer.mesh, trainer.padded)
runner, _ = trainer.interval(trainer.init())
leaves = jax.tree.leaves(trainer.unpad(runner.params))
np.savez(sys.argv[2], *[np.asarray(x) for x in leaves])
"""


@pytest.mark.slow  # two subprocesses, with one and two CPU devices
def test_population_split_over_two_devices_equals_one_device(tmp_path):
    """The three POPULATION members over a two-device `pop` mesh (padded to four): the same
    parameters, bit for bit, as on one device (lax.map). Both run with XLA:CPU's default
    (fusion) emitters, as a user's runs do: the suite's classic emitters (TEST_XLA_FLAGS),
    which compile faster, round the split population differently in the last bit."""
    values = json.dumps(rl_values(tmp_path, **POPULATION))
    runs = {}
    for devices in (1, 2):
        env = xla_env(devices=devices)
        env["XLA_FLAGS"] = env["XLA_FLAGS"].replace(CLASSIC_EMITTERS, "")
        out = tmp_path / f"{devices}.npz"
        process = subprocess.Popen([sys.executable, "-c", MESH_SCRIPT, values, str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        runs[devices] = (process, out)
    outputs = {devices: process.communicate(timeout=900)[0] for devices, (process, _) in runs.items()}
    for devices, (process, _) in runs.items():
        assert process.returncode == 0, outputs[devices]
    with np.load(runs[1][1]) as one, np.load(runs[2][1]) as split:
        assert len(split.files) == len(one.files) > 0
        for name in one.files:
            np.testing.assert_array_equal(one[name], split[name])


def test_rl_runs_with_stand_in_members_still_load(tiny_run, tiny_rl_run, tmp_path):
    """Older RL runs wrote each network as a supervised Member (dropout 0, l2 0): they load
    as the same Networks and checkpoints; the run's kind comes from rl_run.json."""
    from conftest import copy_run

    from mirror.train.population import Member

    old = copy_run(tiny_rl_run, tmp_path / "old")
    entries = json.loads((old / "members.json").read_text())
    (old / "members.json").write_text(json.dumps([{**e, "dropout": 0.0, "l2": 0.0} for e in entries], indent=2) + "\n")
    then, now = load_run(old), load_run(tiny_rl_run)
    assert then.kind == now.kind == "rl" and then.members == now.members
    assert then.widths == now.widths and then.padded_widths == now.padded_widths
    jax.tree.map(np.testing.assert_array_equal, then.params, now.params)
    supervised = load_run(tiny_run)
    assert supervised.kind == "supervised" and all(isinstance(m, Member) for m in supervised.members)


def test_the_run_reports_help_given_opportunity_and_its_deviation_gains(rl_dir, tmp_path, capsys):
    """deviation.json (the last checkpoint, held-out report games) feeds metrics.jsonl,
    summary.json and report.md; `mirror deviate` recomputes it from the checkpoint's actor."""
    from mirror.rl.deviation import DEVIATIONS

    deviation = json.loads((rl_dir / "deviation.json").read_text())
    last = json.loads((rl_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert deviation["update"] == last["epoch"] and len(deviation["members"]) == 1
    entry = deviation["members"][0]
    assert list(entry["gains"]) == list(DEVIATIONS) and entry["games"] == TINY_RL["eval_games"]
    for name in DEVIATIONS:
        g = entry["gains"][name]
        assert g["low"] <= g["mean"] <= g["high"] and len(g["per_seat"]) == 2
        assert last[f"gain_{name}"] == g["mean"] and last[f"gain_{name}_low"] == g["low"]
    assert last["at_best_response"] == entry["at_best_response"] == (not any(entry["gains"][n]["low"] > 0 for n in DEVIATIONS))
    summary = json.loads((rl_dir / "summary.json").read_text())
    assert summary["deviation_gain"] == deviation["members"] and "help_given_opportunity" in summary
    assert entry["return"] == pytest.approx(last["return_agent"])  # plain self-play in the same report games
    assert "## Best response: deviation gains" in (rl_dir / "report.md").read_text()
    out_json = tmp_path / "deviate.json"
    assert main(["deviate", str(rl_dir), "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "help_stalled" in printed and "best response" in printed
    again = json.loads(out_json.read_text())
    assert again["checkpoint"] == deviation["update"] and again["view"] == "seat"
    for name in DEVIATIONS:  # the actor alone, in the same games: the same gains
        assert again["gains"][name]["mean"] == pytest.approx(entry["gains"][name]["mean"], abs=1e-9)
