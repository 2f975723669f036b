"""RL sweeps (`mode: rl`): the sweep file, the trials, their grouping into RL populations
(one config with rl.population_* lists), the trial directories cut from a population
run, and summary.csv's RL columns. The RL training call itself is wired by the integrator
(`mirror.sweep.run.train_rl_population`); these tests use hand-made population runs and
results."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import rl_values
from test_play_agent import UPDATES, make_rl_run

from mirror.base.errors import ConfigError
from mirror.base.hashing import config_hash
from mirror.cli import main
from mirror.runs.checkpoints import load_run
from mirror.runs.report import read_csv
from mirror.runs.watch import load_agents
from mirror.sweep.plan import networks_of, populations, rl_member_of
from mirror.sweep.rl_trial import cmni_outcomes, finish_rl_trial, rl_outcomes, rl_result_row, write_rl_trial_files
from mirror.sweep.spec import load_sweep
from mirror.sweep.summary import RL_COLUMNS, rl_theory_rows, write_summary
from mirror.sweep.trial import RESULT_FILE, trial_dir

UPDATES_RUN = [2, 4, 6]  # the tiny RL config's checkpoints
THEORY = Path(__file__).resolve().parents[1] / "configs" / "sweep_rl_theory.yaml"


def _sweep_file(tmp_path, sweep: dict, **base) -> Path:
    values = {
        "name": "rl-test",
        "model": {"hidden_layers": 2, "width": 6},
        "rl": {"num_envs": 8, "num_steps": 4, "updates": 4, "checkpoint_every": 2, "num_minibatches": 2},
        **base,
        "sweep": {"mode": "rl", **sweep},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


# ----------------------------------------------------------------------------- the sweep file


def test_theory_sweep_is_36_rl_trials_in_one_population():
    sweep = load_sweep(THEORY)
    assert sweep.mode == "rl" and len(sweep.trials) == 36
    assert sweep.swept == ["env.dependency", "env.veil", "rl.partner_reward_weight", "seed"]
    assert len({t.trial_id for t in sweep.trials}) == 36
    assert all(t.is_rl and t.config.data.seed == sweep.base.data_seed for t in sweep.trials)
    (population,) = populations(sweep.trials, sweep.max_population)
    assert population.is_rl and population.trials == tuple(sweep.trials) and population.padding == 0
    rl = population.config.rl
    # Grid order: D, then I, then w, then the seeds innermost.
    assert rl["population_dependencies"] == [d for d in (0.0, 0.5, 1.0) for _ in range(12)]
    assert rl["population_veils"] == [i for _ in range(3) for i in (0.0, 1.0) for _ in range(6)]
    assert rl["population_partner_reward_weights"] == [w for _ in range(6) for w in (0.0, 0.5) for _ in range(3)]
    assert rl["population_seeds"] == [0, 1, 2] * 12
    assert rl["population_lrs"] == [2.5e-3] * 36
    # The rest is the base's; the lists replace the scalars they list.
    assert {k: v for k, v in rl.items() if not k.startswith("population_")} == {k: v for k, v in sweep.base.rl.items() if k != "lr"}


def test_member_is_the_trials_seed_lr_w_and_env():
    sweep = load_sweep(THEORY)
    trial = sweep.trials[23]  # D 0.5, I 1, w 0.5, seed 2
    assert trial.fields == {"env.dependency": 0.5, "env.veil": 1.0, "rl.partner_reward_weight": 0.5, "seed": 2}
    assert rl_member_of(trial) == {"seed": 2, "lr": 2.5e-3, "partner_reward_weight": 0.5, "env": {"dependency": 0.5, "veil": 1.0}}


def test_only_member_settings_share_a_population(tmp_path):
    grid = {"rl.lr": [1e-3, 2e-3], "rl.num_steps": [4, 8], "env.help_gift": [2, 3]}
    sweep = load_sweep(_sweep_file(tmp_path, {"grid": grid}))
    pops = populations(sweep.trials, max_population=64)
    # lr is a member setting; num_steps (a shape) and help_gift (not a population list) are not.
    assert [[t.index for t in p.trials] for p in pops] == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert [p.config.rl["population_lrs"] for p in pops] == [[1e-3, 2e-3]] * 4
    assert pops[1].config.env["help_gift"] == 3 and pops[2].config.rl["num_steps"] == 8
    # A cap on the population size splits a group; device padding repeats the last member.
    split = populations(sweep.trials, max_population=1, devices=2)
    assert len(split) == 8 and all(len(p.members) == 2 and p.padding == 1 for p in split)


def test_networks_of_a_member():
    sweep = load_sweep(THEORY)
    assert networks_of(sweep.trials[0].config, 5) == [5]
    independent = load_sweep(THEORY, ["--rl.sharing", "independent"])
    assert networks_of(independent.trials[0].config, 5) == [10, 11]


def test_supervised_trial_ids_do_not_change(tmp_path):
    """An RL section (empty for supervised trials) does not enter a supervised trial's id."""
    path = tmp_path / "sup.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "sweep": {"grid": {"model.width": [3, 4]}}}))
    for trial in load_sweep(path).trials:
        values = trial.config.to_dict()
        values["data"].pop("cache_dir")
        assert trial.trial_id == config_hash({k: values[k] for k in ("seed", "env", "data", "model", "train", "analysis")})[:12]


@pytest.mark.parametrize(
    "sweep, base, message",
    [
        ({"mode": "evolution"}, {}, "sweep.mode = 'evolution' is invalid: expected one of ['supervised', 'rl']"),
        ({"grid": {"train.lr": [1e-3]}}, {}, "'train.lr' cannot be swept in a rl sweep; allowed: seed, data.seed"),
        ({"grid": {"rl.hidden": [[4]]}}, {}, "'rl.hidden' cannot be swept in a rl sweep"),
        ({"grid": {"rl.population_seeds": [[1]]}}, {}, "'rl.population_seeds' cannot be swept"),
        ({"seeds": [0]}, {"rl": {"population_seeds": [0, 1]}}, "rl.population_seeds is set in the base of an RL sweep"),
        ({"grid": {"rl.num_minibatches": [3]}}, {}, "sweep trial 0 ({'rl.num_minibatches': 3}): rl.num_minibatches must be a divisor"),
        ({"grid": {"rl.partner_reward_weight": [0.5, 2.0]}}, {}, "sweep trial 1 ({'rl.partner_reward_weight': 2.0}): rl.partner_reward_weight"),
        ({"grid": {"rl.sharing": ["both"]}}, {}, "rl.sharing must be one of shared, independent"),
    ],
)
def test_bad_rl_sweeps_fail_before_any_work(tmp_path, capsys, sweep, base, message):
    path = _sweep_file(tmp_path, sweep, **base)
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    assert message in str(err.value)
    assert main(["sweep", str(path), "--dry-run", "--sweep-dir", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_supervised_sweep_refuses_an_rl_section(tmp_path):
    path = tmp_path / "sup.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "rl": {"lr": 1e-3}, "sweep": {"seeds": [0, 1]}}))
    with pytest.raises(ConfigError, match="set `mode: rl`"):
        load_sweep(path)


# ----------------------------------------------------------------------------- trial results


def test_rl_outcomes_pick_the_trials_networks():
    line = {"epoch": 40, "env_turns": 81920, "return_agent": [1.0, 3.0, 5.0, None], "help_rate": [0.1, 0.2, 0.3, 0.4],
            "help_when_partner_distressed": [0.5, 0.6, None, 0.8], "help_when_partner_energy0": [0.0, 0.1, 0.2, 0.6],
            "help_given_opportunity": [0.1, 0.2, 0.3, 0.5], "gain_help_stalled": [1.0, 1.0, -0.5, -0.5],
            "at_best_response": [True, True, False, True]}  # fmt: skip
    per_member = {"behaviour": [{"return": -1.5}, {"return": -2.5}], "oracle": {"return": [7.0, 9.0]}, "hop_jump": {"return": [6.0, 8.0]}}
    # Independent member 1: networks 2 and 3 (means over them, nulls skipped).
    assert rl_outcomes(line, per_member, 1, [2, 3]) == {
        "updates": 40, "env_turns": 81920, "return_agent": 5.0, "return_behaviour": -2.5, "return_oracle": 9.0,
        "return_hop_jump": 8.0, "help_rate": pytest.approx(0.35), "help_when_partner_distressed": 0.8,
        "help_when_partner_energy0": pytest.approx(0.4), "help_given_opportunity": pytest.approx(0.4),
        "at_best_response": False,  # one of its two networks' members is not
        **{f"gain_{d}{s}": None for d in ("help_stalled", "never_help", "oracle_move") for s in ("", "_low", "_high")},
        "gain_help_stalled": -0.5,
    }  # fmt: skip
    # A single network's run stores scalars.
    single = {"epoch": 2, "env_turns": 64, "return_agent": 4.5, "help_rate": 0.25, "help_when_partner_distressed": None}
    assert rl_outcomes(single, {"behaviour": {"return": 1.0}}, 0, [0]) == {
        "updates": 2, "env_turns": 64, "return_agent": 4.5, "return_behaviour": 1.0, "return_oracle": None,
        "return_hop_jump": None, "help_rate": 0.25, "help_when_partner_distressed": None, "help_when_partner_energy0": None,
        "help_given_opportunity": None, "at_best_response": None,  # runs before the yardstick
        **{f"gain_{d}{s}": None for d in ("help_stalled", "never_help", "oracle_move") for s in ("", "_low", "_high")},
    }  # fmt: skip


def test_cmni_outcomes_final_and_peak():
    out = cmni_outcomes([10, 20, 30], [0.2, float("nan"), 0.1], 0.05, 0.25, 0.5)
    assert out == {"cmni": 0.1, "cmni_onpolicy": 0.05, "p_init": 0.25, "p_init_onpolicy": 0.5, "peak_cmni": 0.2, "peak_update": 10}
    none = {"cmni": None, "cmni_onpolicy": None, "p_init": None, "p_init_onpolicy": None, "peak_cmni": None, "peak_update": None}
    assert cmni_outcomes([10], [float("nan")], None) == none


def test_init_rank_p_of_a_trials_networks_hand_worked():
    from mirror.sweep.rl_trial import init_rank_p

    # Two networks, 4 draws: draw means 0.15, 0.25, 0.35, 0.45 against the networks' mean 0.3 -> (1 + 2) / 5.
    init = np.array([[0.1, 0.2, 0.3, 0.4], [0.2, 0.3, 0.4, 0.5]])
    assert init_rank_p([0.2, 0.4], init) == pytest.approx(3 / 5)
    assert init_rank_p([0.2, np.nan], init) == pytest.approx(4 / 5)  # network 1 left out: draws 0.1 .. 0.4, three at or above 0.2
    assert init_rank_p([1.0, 1.0], init) == pytest.approx(1 / 5)
    assert init_rank_p([np.nan, np.nan], init) is None and init_rank_p([0.2, 0.4], np.zeros((2, 0))) is None


def test_scaled_outcomes_z_init_hand_worked():
    """Two networks, 4 init draws: draw means 0.15, 0.25, 0.35, 0.45 (mean 0.3, sample sd
    sqrt(0.05 / 3)); the networks' mean cmni_scaled 0.5 -> z = 0.2 / sqrt(0.05 / 3); no draw
    reaches 0.5 -> p = 1 / 5."""
    from mirror.sweep.rl_trial import scaled_outcomes

    init = np.array([[0.1, 0.2, 0.3, 0.4], [0.2, 0.3, 0.4, 0.5]])
    out = scaled_outcomes([0.4, 0.6], init, np.array([np.nan, 0.7]))
    assert out == {
        "cmni_scaled": pytest.approx(0.5), "cmni_scaled_onpolicy": pytest.approx(0.7), "init_scaled_mean": pytest.approx(0.3),
        "init_scaled_sd": pytest.approx(np.sqrt(0.05 / 3)), "z_init": pytest.approx(0.2 / np.sqrt(0.05 / 3)), "p_init_scaled": pytest.approx(1 / 5),
    }  # fmt: skip
    # Network 1 without a value: network 0 against its own draws (mean 0.25, sd sqrt(1 / 60)).
    assert scaled_outcomes([0.4, np.nan], init, None)["z_init"] == pytest.approx(0.15 / np.sqrt(0.05 / 3))
    none = scaled_outcomes([0.4, 0.6], np.zeros((2, 0)), None)
    assert none["z_init"] is None and none["init_scaled_mean"] is None and none["cmni_scaled_onpolicy"] is None and none["cmni_scaled"] == pytest.approx(0.5)
    assert scaled_outcomes([0.4], np.full((1, 3), 0.2), None)["z_init"] is None  # identical draws: sd 0, no z


def test_return_trend_over_the_last_quarter_hand_worked():
    """Updates 1..12: the last quarter is updates 10, 11, 12 (above 9); returns 5, 7, 9 there
    -> slope 2 per update, fitted change 2 x 12 / 4 = 6 over the quarter, relative to its
    mean return 7: 6 / 7. Earlier updates do not count."""
    from mirror.sweep.rl_trial import return_trend

    updates = np.arange(1, 13)
    returns = np.r_[np.full(9, -100.0), 5.0, 7.0, 9.0]
    out = return_trend(updates, returns)
    assert out == {"return_slope": pytest.approx(2.0), "return_change_last_quarter": pytest.approx(6 / 7)}
    returns[-2:] = np.nan  # one finite update left in the quarter: no slope
    assert return_trend(updates, returns) == {"return_slope": None, "return_change_last_quarter": None}
    assert return_trend([], []) == {"return_slope": None, "return_change_last_quarter": None}


def test_training_returns_read_both_layouts():
    from mirror.sweep.rl_trial import training_returns

    population = [{"update": 1, "return_per_player": [[1.0, 3.0], [5.0, None]]}, {"update": 2, "return_per_player": None}]
    updates, returns = training_returns(population, 0)
    np.testing.assert_array_equal(updates, [1, 2])
    np.testing.assert_array_equal(returns, [2.0, np.nan])
    assert np.isnan(training_returns(population, 1)[1]).all()  # a player without a finished episode: no return
    np.testing.assert_array_equal(training_returns([{"update": 3, "return_per_player": [4.0, 6.0]}], 0)[1], [5.0])


def test_trial_directory_reads_as_its_own_run(tmp_path):
    """A trial's directory: its networks of the population run, its own dataset, its
    member's env; `load_run` and `mirror play --agent` read it."""
    sweep = load_sweep(_sweep_file(tmp_path, {"grid": {"env.dependency": [1.0, 0.0]}}, rl={"sharing": "independent", "num_envs": 8, "num_steps": 4, "updates": 4, "checkpoint_every": 2, "num_minibatches": 2}))
    (population,) = populations(sweep.trials, 64)
    run_dir = tmp_path / "sweep" / "populations" / population.population_id
    saved = make_rl_run(run_dir, sharing="independent", member_envs=[m["env"] for m in population.members])
    trial = sweep.trials[1]
    out = write_rl_trial_files(tmp_path / "sweep", trial, 1, run_dir, {"rows": 7}, tmp_path / "own-dataset")
    assert out == trial_dir(tmp_path / "sweep", trial)
    pointer = json.loads((out / "population.json").read_text())
    assert pointer == {"run_dir": str(run_dir), "member": 2, "networks": [2, 3], "checkpoints": len(UPDATES), "rl_member": 1}
    run = load_run(out)
    assert run.dataset_path == str(tmp_path / "own-dataset")  # its own probe set (a), not the population's
    assert len(run.members) == 2 and list(run.epochs) == list(UPDATES)
    np.testing.assert_array_equal(run.params["output"]["kernel"][-1], saved[UPDATES[-1]]["output"]["kernel"][2:4])
    population_rl_run = json.loads((run_dir / "rl_run.json").read_text())
    assert json.loads((out / "rl_run.json").read_text()) == {**population_rl_run, "members": [population_rl_run["members"][1]]}
    agents = load_agents(out)
    assert agents.networks == (0, 1) and agents.env_params.dependency == 0.0
    np.testing.assert_array_equal(agents.params["hidden_0"]["kernel"], saved[UPDATES[-1]]["hidden_0"]["kernel"][2:4])

    (run_dir / "baselines.json").write_text(json.dumps({"behaviour": {"return": [1.0, 2.0]}, "oracle": {"return": [8.0, 9.0]}}))
    # Training returns of updates 1..8 (member 1: 10 + u, as the mean of 9 + u and 11 + u):
    # the last quarter (updates 7, 8) rises by 1 per update, 2 over the quarter, mean 17.5.
    lines = [{"update": u, "return_per_player": [[0.0, 0.0], [9.0 + u, 11.0 + u]]} for u in range(1, 9)]
    (run_dir / "rl_metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    row = finish_rl_trial(out, trial, 1, run_dir, cmni_outcomes(list(UPDATES), [0.3, 0.4], None))
    assert (row["return_slope"], row["return_change_last_quarter"]) == (pytest.approx(1.0), pytest.approx(2 / 17.5))
    assert json.loads((out / RESULT_FILE).read_text()) == row
    assert (row["dependency"], row["return_behaviour"], row["return_oracle"], row["return_agent"]) == (0.0, 2.0, 9.0, 0.0)
    assert (row["sharing"], row["updates"], row["cmni"], row["peak_update"]) == ("independent", UPDATES[-1], 0.4, UPDATES[-1])


# ----------------------------------------------------------------------------- summary


def _write_result(sweep_dir, trial, **values):
    out = trial_dir(sweep_dir, trial)
    out.mkdir(parents=True)
    row = rl_result_row(trial, out, values, {k: values.get(k) for k in ("cmni", "cmni_onpolicy", "p_init", "p_init_onpolicy")})
    (out / RESULT_FILE).write_text(json.dumps(row))
    (out / "cmni.csv").write_text("checkpoint,epoch,member,cmni\n0,2,0,%s\n1,4,0,%s\n" % (values["peak"], values["cmni"]))
    return row


def test_rl_summary_columns_table_and_figure(tmp_path):
    grid = {"env.dependency": [0.0, 1.0], "rl.partner_reward_weight": [0.0, 0.5]}
    sweep = load_sweep(_sweep_file(tmp_path, {"grid": grid, "seeds": [0, 1]}))
    sweep_dir = tmp_path / "out"
    help_rates = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    for trial, help_rate in zip(sweep.trials[:-1], help_rates):  # the last trial is unfinished
        _write_result(sweep_dir, trial, return_agent=10.0 + trial.index, return_behaviour=-3.0, return_oracle=12.0, return_hop_jump=11.0,
                      help_rate=help_rate, help_when_partner_distressed=2 * help_rate, cmni=0.01 * trial.index, cmni_onpolicy=None, peak=0.9,
                      env_turns=64, updates=4, p_init=0.01 * (1 + trial.index), p_init_onpolicy=None)  # fmt: skip
    summary = write_summary(sweep, sweep_dir)
    assert summary["finished"] == 7 and summary["trials"] == 8
    rows = read_csv(sweep_dir / "summary.csv")
    assert list(rows[0]) == RL_COLUMNS
    assert [float(r["help_rate"]) for r in rows] == help_rates[:7]
    assert rows[6]["dependency"] == "1" and rows[6]["partner_reward_weight"] == "0.5" and rows[6]["seed"] == "0"
    assert rows[3]["return_agent"] == "13" and rows[3]["cmni_onpolicy"] == ""
    table = rl_theory_rows(summary["results"])
    assert [(r["dependency"], r["partner_reward_weight"], r["trials"]) for r in table] == [(0.0, 0.0, 2), (0.0, 0.5, 2), (1.0, 0.0, 2), (1.0, 0.5, 1)]
    assert table[1]["help_rate"] == pytest.approx(0.25) and table[3]["help_rate"] == pytest.approx(0.6)
    assert table[0]["cmni_onpolicy"] is None and table[0]["cmni_onpolicy_sd"] is None
    assert table[1]["help_rate_sd"] == pytest.approx(np.std([0.2, 0.3], ddof=1)) and table[3]["help_rate_sd"] is None
    top = read_csv(sweep_dir / "top_checkpoints.csv")
    assert [(r["trial"], r["update"], r["cmni"]) for r in top[:1]] == [("0", "2", "0.9")]
    assert (sweep_dir / "figures" / "help_vs_theory.png").stat().st_size > 10_000
    report = (sweep_dir / "report.md").read_text()
    assert "7 of 8 trials finished" in report and "| 1 | 0 | 0.5 | 1 | 16 | -3 | 12 | 11 | 0.6 | 1.2 | 0.06 | - | 0/1 | - |" in report
    # Mean ± sample sd over the seeds: trials 2 and 3; p_init 0.01 (trial 0) .. 0.07 (trial 6): 5 of 7 at or below 0.05.
    assert "| 0 | 0 | 0.5 | 2 | 12.5 ± 0.71 | -3 ± 0 | 12 ± 0 | 11 ± 0 | 0.25 ± 0.071 | 0.5 ± 0.14 | 0.025 ± 0.0071 | - | 2/2 | - |" in report
    assert "above the random-init null" in report and "5/7 on probe set (a), not tested on the on-policy probe set (b)" in report


# ----------------------------------------------------------------------------- orchestration


@pytest.mark.slow
def test_rl_sweep_end_to_end(tiny_dataset, dataset_cache, tmp_path, capsys):
    """`mirror sweep` on an RL sweep file with the real trainer: one RL population run of
    both trials, then per trial its own dataset (its D), its networks' checkpoints and
    probes, its analysis and its row of summary.csv, which agree with the population run's
    files. A sweep killed after one trial was analysed resumes without training again and
    analyses only the other trial. The tiny RL config (TINY_RL): the population's programs
    are those of any two-member tiny population, compiled once for the session."""
    from mirror.runs.checkpoints import read_metrics, read_probes
    from mirror.runs.rl_files import read_baselines

    path = tmp_path / "sweep.yaml"
    spec = {**rl_values(dataset_cache), "name": "rl-test", "sweep": {"mode": "rl", "grid": {"env.dependency": [1.0, 0.0]}}}
    spec["analysis"]["checkpoint"] = "last"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    sweep_dir = tmp_path / "out"
    assert main(["sweep", str(path), "--sweep-dir", str(sweep_dir)]) == 0
    sweep = load_sweep(path)
    (run_dir,) = (sweep_dir / "populations").iterdir()
    baselines, lines = read_baselines(run_dir), read_metrics(run_dir)
    assert sorted(lines) == UPDATES_RUN and len(baselines["behaviour"]["return"]) == 2
    probes = read_probes(run_dir)
    rows = read_csv(sweep_dir / "summary.csv")
    assert list(rows[0]) == RL_COLUMNS and len(rows) == 2
    results = []
    for member, (trial, row) in enumerate(zip(sweep.trials, rows)):
        out = trial_dir(sweep_dir, trial)
        result = json.loads((out / RESULT_FILE).read_text())
        results.append(result)
        dependency = trial.config.env_params.dependency
        assert json.loads((out / "dataset.json").read_text())["config"]["env"]["dependency"] == dependency  # its own probe set (a)
        assert (result["dependency"], result["updates"], result["env_turns"]) == (dependency, 6, 6 * 16 * 8)
        assert result["return_behaviour"] == baselines["behaviour"]["return"][member]
        assert result["return_oracle"] == baselines["oracle"]["return"][member]
        assert result["return_hop_jump"] == baselines["hop_jump"]["return"][member]
        for key in ("return_agent", "help_rate", "help_when_partner_distressed", "help_when_partner_energy0"):
            assert result[key] == lines[UPDATES_RUN[-1]][key][member]
        # Its networks' checkpoints and on-policy probes, read through population.json.
        assert list(load_run(out).epochs) == UPDATES_RUN
        own = read_probes(out)
        np.testing.assert_array_equal(own["inputs"], probes["inputs"][:, [member]])
        np.testing.assert_array_equal(own["updates"], UPDATES_RUN)
        assert load_agents(out).env_params.dependency == dependency  # `mirror play --agent TRIAL_DIR`
        final = read_csv(out / "cmni.csv")[-1]
        assert int(final["epoch"]) == 6 and float(final["cmni"]) == pytest.approx(result["cmni"])
        # The theory measures: the last checkpoint's cmni_scaled on both probe sets, z_init
        # against the trial's own random-init draws (summary.json's init baseline).
        assert float(final["cmni_scaled"]) == pytest.approx(result["cmni_scaled"])
        if result["cmni_scaled_onpolicy"] is not None:
            assert float(final["cmni_scaled_onpolicy"]) == pytest.approx(result["cmni_scaled_onpolicy"])
        baseline = json.loads((out / "summary.json").read_text())["init_baseline"]["cmni_scaled"]
        assert (result["init_scaled_mean"], result["init_scaled_sd"]) == (pytest.approx(baseline["mean"]), pytest.approx(baseline["sd"]))
        assert result["z_init"] == pytest.approx((result["cmni_scaled"] - baseline["mean"]) / baseline["sd"])
        assert result["return_slope"] is None  # 6 updates: only update 6 lies in the last quarter (above 4.5)
        assert result["cmni_onpolicy"] is None or np.isfinite(result["cmni_onpolicy"])
        assert float(row["return_agent"]) == pytest.approx(result["return_agent"]) and row["dir"] == result["dir"]
    report = (sweep_dir / "report.md").read_text()
    assert "2 of 2 trials finished" in report and "| 0 | 0 | 0 | 1 |" in report and "| 1 | 0 | 0 | 1 |" in report
    assert (sweep_dir / "figures" / "help_vs_theory.png").is_file()

    # Killed while analysing trial 1: the population run is reused as it is, not trained again.
    (trial_dir(sweep_dir, sweep.trials[1]) / RESULT_FILE).unlink()
    trained = (run_dir / "rl_metrics.jsonl").read_bytes()
    capsys.readouterr()
    assert main(["sweep", str(path), "--sweep-dir", str(sweep_dir)]) == 0
    log = capsys.readouterr().out
    assert "1 already finished; 1 to run" in log and "update 2/6" not in log and "trial 0:" not in log
    assert [p.name for p in (sweep_dir / "populations").iterdir()] == [run_dir.name]
    assert (run_dir / "rl_metrics.jsonl").read_bytes() == trained
    assert json.loads((trial_dir(sweep_dir, sweep.trials[1]) / RESULT_FILE).read_text()) == results[1]
    assert main(["sweep", str(path), "--sweep-dir", str(sweep_dir)]) == 0
    assert "2 already finished; 0 to run" in capsys.readouterr().out


def test_progress_line_of_a_large_population_shows_its_spread():
    """A 36-member sweep population logs the spread of its members, not 36 numbers."""
    from mirror.runs.rl_run import interval_line

    line = {"epoch": 10, "env_turns": 100, "return_agent": [1.0, 2.0, None, 4.0, 5.0], "help_rate": [0.5, 0.25]}
    assert interval_line(line, 50, 1.0) == (
        "update 10/50: return mean 3 (min 1, max 5, 5 networks), help rate 0.5, 0.25, 100 turns per member (1.0 s)"
    )
    assert "return - (all 5 networks)" in interval_line({**line, "return_agent": [None] * 5}, 50, 1.0)


def test_trial_without_on_policy_cmni_records_none_not_nan(monkeypatch, tmp_path):
    """On-policy rows that miss a CMNI group in every network give NaN CMNIs: the trial's
    cmni_onpolicy is None (valid JSON in result.json), and finite networks are averaged.
    The theory measures come from the LAST checkpoint (cmni_scaled, its init draws)."""
    import types

    import mirror.sweep.run as sweep_run
    from mirror.sweep.run import analyse_rl_trial

    def fake(onpolicy):
        scaled = np.array([[0.9, 0.9], [0.2, 0.4]])  # checkpoint 0 is not the measured one
        done = types.SimpleNamespace(
            analysis=types.SimpleNamespace(result=types.SimpleNamespace(cmni=np.array([[0.1, 0.3], [0.2, 0.4]], np.float32)), init_null=np.zeros((2, 0)),
                                           variants={"cmni_scaled": scaled}, variant_init_null={"cmni_scaled": np.array([[0.0, 0.2], [0.2, 0.4]])}),
            onpolicy=types.SimpleNamespace(cmni=np.array(onpolicy, np.float32), init_null=np.zeros((2, 2, 0)), cmni_scaled=2 * np.array(onpolicy)),
            run=types.SimpleNamespace(epochs=np.array([2, 4])),
        )  # fmt: skip
        monkeypatch.setattr(sweep_run, "analyse_run", lambda out, to: done)

    fake([[0.5, 0.5], [np.nan, np.nan]])
    out = analyse_rl_trial(tmp_path, lambda line: None)
    assert {k: out[k] for k in ("cmni", "cmni_onpolicy", "p_init", "p_init_onpolicy", "peak_cmni", "peak_update")} == {
        "cmni": pytest.approx(0.3), "cmni_onpolicy": None, "p_init": None, "p_init_onpolicy": None, "peak_cmni": pytest.approx(0.3), "peak_update": 4,
    }  # fmt: skip
    # Draw means 0.1 and 0.3 (mean 0.2, sd sqrt(0.02)); the last checkpoint's cmni_scaled 0.3.
    assert out["cmni_scaled"] == pytest.approx(0.3) and out["cmni_scaled_onpolicy"] is None
    assert out["z_init"] == pytest.approx(0.1 / np.sqrt(0.02)) and out["p_init_scaled"] == pytest.approx(2 / 3)
    fake([[np.nan, np.nan], [np.nan, 0.25]])
    out = analyse_rl_trial(tmp_path, lambda line: None)
    assert out["cmni_onpolicy"] == 0.25 and out["cmni_scaled_onpolicy"] == pytest.approx(0.5)
