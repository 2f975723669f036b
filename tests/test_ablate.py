"""`mirror ablate` (`mirror.rl.ablation`): actor units fixed at their mean (or zero)
in the run's report games, beside the intact agents.

Most tests use a hand-built actor whose helping hangs on known units: L1N2 = relu(own
energy) feeds L2N1, which drives the help logit (30 per unit of energy); L1N0 (constant 1)
feeds L2N0, which drives hop (5 + 5). With energy the agents help (help 30+ against hop
10), without they hop. Every other unit has no weights.
"""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import copy_run

from mirror.agents.actor_critic import cmni_params, init_actor_critic
from mirror.cli import main
from mirror.env import HELP, EnvParams
from mirror.env.constants import ENERGY_INDEX, HOP, OBS_SIZE
from mirror.rl import ablation as A
from mirror.rl.baselines import evaluate
from mirror.rl.ppo import policy_logits
from mirror.rl.turns import agent, per_player
from mirror.runs.rl_run import REPORT_STREAM, fixed_key

WIDTHS = (17, 17)  # the tiny RL run's actor (the config's default 2 x 17)
GAMES, TURNS = 8, 200  # the tiny RL run's report games: one whole episode per game
ENV = EnvParams()
KEY = jax.random.key(5)
HELP_UNIT, HELP_UNIT_2, HOP_UNIT = (0, 2), (1, 1), (0, 0)  # (layer, unit): L1N2, L2N1, L1N0


def helping_network() -> dict:
    """One network in the supervised MLP layout (module docstring)."""
    p = {
        "hidden_0": {"kernel": np.zeros((OBS_SIZE, 17), np.float32), "bias": np.zeros(17, np.float32)},
        "hidden_1": {"kernel": np.zeros((17, 17), np.float32), "bias": np.zeros(17, np.float32)},
        "output": {"kernel": np.zeros((17, 4), np.float32), "bias": np.zeros(4, np.float32)},
    }
    p["hidden_0"]["kernel"][ENERGY_INDEX, 2] = 1.0  # L1N2 = relu(energy)
    p["hidden_0"]["bias"][0] = 1.0  # L1N0 = 1
    p["hidden_1"]["kernel"][2, 1] = 1.0  # L2N1 = L1N2
    p["hidden_1"]["kernel"][0, 0] = 1.0  # L2N0 = L1N0
    p["output"]["kernel"][1, HELP] = 30.0
    p["output"]["kernel"][0, HOP] = 5.0
    p["output"]["bias"][HOP] = 5.0
    return p


def both(tree, second=None):
    """Leaves [2, ...]: Frog's network (tree) and Toad's (second, default the same)."""
    return jax.tree.map(lambda a, b: np.stack([a, b]), tree, tree if second is None else second)


def masks_of(*unit_sets) -> list[np.ndarray]:
    """bool[len(unit_sets), 2, units_i]: ablation d ablates unit_sets[d] in both networks."""
    masks = A.no_masks(WIDTHS, len(unit_sets))
    for d, units in enumerate(unit_sets):
        for layer, unit in units:
            masks[layer][d, :, unit] = True
    return masks


def rows_with_energy(energies) -> np.ndarray:
    """int8[2, rows, 3W+4]: blank views with the given own energies (both networks)."""
    rows = np.zeros((len(energies), OBS_SIZE), np.int8)
    rows[:, ENERGY_INDEX] = energies
    return np.stack([rows, rows])


def hand_mns() -> np.ndarray:
    """f[neurons] (hidden then 4 outputs): L1N2 highest, L2N1 next, ties elsewhere at 0."""
    mns = np.zeros(sum(WIDTHS) + 4)
    mns[2], mns[17 + 1], mns[17 + 5] = 0.9, 0.5, 0.1
    mns[-1] = 5.0  # an output neuron: never chosen
    return mns


@pytest.fixture(scope="module")
def helping():
    return both(helping_network())


# ----------------------------------------------------------------------------- the ablated agents


def test_zero_ablating_the_help_units_stops_the_helping_and_other_units_change_nothing(helping):
    unused = [(0, 5)], [(1, 7), (0, 16)]
    masks = masks_of([], [HELP_UNIT], [HELP_UNIT_2], *unused, [HOP_UNIT])
    zero = A.ablation_values(helping, None, "zero")
    rates = A.evaluate_ablations(helping, masks, zero, ENV, KEY, games=GAMES, turns=TURNS, shared=True)
    assert np.all(rates["episodes"] == GAMES)
    assert rates["help_rate"][0] > 0.9  # intact: the agents help
    assert rates["help_rate"][1] == 0.0 and rates["help_rate"][2] == 0.0  # the helping hangs on L1N2 -> L2N1
    for d in (3, 4):  # units with no weights: the same games, decision for decision
        for k in A.RATES:
            np.testing.assert_array_equal(rates[k][d], rates[k][0])
    # The hop unit only matters when the help unit is silent (no energy): helping stays.
    assert rates["help_rate"][5] > 0.9


def test_mean_ablation_fixes_units_at_their_mean_over_the_rows(helping):
    rows = rows_with_energy([3, 0, 0, 1])  # L1N2: mean relu(energy) = 1; L1N0 = 1 on every row
    values = A.ablation_values(helping, rows, "mean")
    expected = np.zeros((2, 17), np.float32)
    expected[:, 0], expected[:, 2] = 1.0, 1.0
    np.testing.assert_array_equal(values[0], expected)
    np.testing.assert_array_equal(values[1][:, :2], [[1.0, 1.0], [1.0, 1.0]])  # L2N0 = L1N0, L2N1 = L1N2
    # The logits at energy 0: intact hop 10 > help 0; with L1N2 at its mean 1, help 30 > hop 10.
    view = rows_with_energy([0])[0]
    mask = [m[0, 0] for m in masks_of([HELP_UNIT])]
    policy = A.ablated_policy(mask, [v[0] for v in values], "relu")
    network = jax.tree.map(lambda a: a[0], helping)
    logits, _ = policy(network, jnp.asarray(view), jnp.zeros(1, jnp.int32))
    np.testing.assert_allclose(logits[0], [10.0, 0.0, 0.0, 30.0])
    intact, _ = A.ablated_policy([m[0, 0] for m in masks_of([])], [v[0] for v in values], "relu")(network, jnp.asarray(view), None)
    np.testing.assert_allclose(intact[0], [10.0, 0.0, 0.0, 0.0])
    # In games: a mean over rows without energy is the zero ablation, decision for decision.
    no_energy = A.ablation_values(helping, rows_with_energy([0, 0]), "mean")
    zero = A.ablation_values(helping, None, "zero")
    masks = masks_of([HELP_UNIT])
    a = A.evaluate_ablations(helping, masks, no_energy, ENV, KEY, games=GAMES, turns=TURNS, shared=True)
    b = A.evaluate_ablations(helping, masks, zero, ENV, KEY, games=GAMES, turns=TURNS, shared=True)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert a["help_rate"][0] == 0.0
    # ... and a mean with energy keeps the agents helping, in every state.
    c = A.evaluate_ablations(helping, masks, values, ENV, KEY, games=GAMES, turns=TURNS, shared=True)
    assert c["help_rate"][0] == 1.0


@pytest.mark.slow
def test_unablated_agents_play_exactly_as_the_policy_of_the_checkpoint():
    """Differential: no unit ablated is `agent(policy_logits)` of each network, in the same
    games; two different networks (independent sharing) play Frog and Toad."""
    keys = jax.random.split(jax.random.key(1), 2)
    nets = [jax.tree.map(np.asarray, cmni_params(init_actor_critic(k, WIDTHS, "relu", num_inputs=OBS_SIZE))) for k in keys]
    for net in nets:
        net["output"]["kernel"] = net["output"]["kernel"] * 100.0  # orthogonal init's logits are near uniform
    params = both(*nets)

    def policy(p, obs, player, central=None):
        logits = policy_logits(p, obs, WIDTHS, "relu")
        return logits, jnp.zeros(logits.shape[:-1])

    reference = evaluate(per_player(agent(policy, nets[0]), agent(policy, nets[1])), ENV, KEY, GAMES, TURNS)
    mine = evaluate(A.ablated_agents(params, [m[0] for m in masks_of([])], A.ablation_values(params, None, "zero"), "relu"), ENV, KEY, GAMES, TURNS)
    jax.tree.map(np.testing.assert_array_equal, mine["per_game"], reference["per_game"])
    assert 0.0 < float(reference["help_rate"]) < 1.0


def test_independent_networks_are_ablated_each_in_its_own_network(helping):
    """Only Toad's network helps; ablating its help unit stops Toad's helping alone."""
    hopper = helping_network()
    hopper["output"]["kernel"][1, HELP] = 0.0
    params = both(hopper, helping_network())
    masks = masks_of([], [HELP_UNIT])
    rates = A.evaluate_ablations(params, masks, A.ablation_values(params, None, "zero"), ENV, KEY, games=GAMES, turns=TURNS)
    assert 0.4 < rates["help_rate"][0] < 0.55  # Toad helps, Frog does not: about half the decisions
    assert rates["help_rate"][1] == 0.0


# ----------------------------------------------------------------------------- choosing units


def test_top_mns_picks_the_highest_hidden_units():
    masks = A.top_mns_masks(hand_mns(), WIDTHS, 2)
    assert A.unit_names(masks) == ["L1N2", "L2N1"]  # the output neuron's MNS 5 is not a unit
    assert A.unit_names(A.top_mns_masks(hand_mns(), WIDTHS, 4)) == ["L1N0", "L1N2", "L2N1", "L2N5"]  # a tie at 0: lowest first
    np.testing.assert_array_equal(A.layer_counts(A.top_mns_masks(hand_mns(), WIDTHS, 3)), [1, 2])
    toad = hand_mns()
    toad[:34] = np.roll(toad[:34], 1)  # Toad's network: L1N3, L2N2 on top
    per_network = np.stack([hand_mns(), toad])
    masks = A.top_mns_masks(per_network, WIDTHS, 2)
    assert [A.unit_names([m[n] for m in masks]) for n in (0, 1)] == [["L1N2", "L2N1"], ["L1N3", "L2N2"]]


def test_random_draws_keep_the_count_per_layer_and_are_fixed_by_the_key():
    key = jax.random.key(9)
    masks = A.random_masks(key, (3, 1), WIDTHS, 200)
    np.testing.assert_array_equal(A.layer_counts(masks), np.tile([3, 1], (200, 1)))
    assert len({tuple(np.flatnonzero(m)) for m in masks[0]}) > 150  # the draws differ
    assert masks[0].any(axis=0).all() and masks[1].any(axis=0).all()  # every unit is drawn sometimes
    again = A.random_masks(key, (3, 1), WIDTHS, 200)
    jax.tree.map(np.testing.assert_array_equal, again, masks)
    per_network = A.network_random_masks(key, np.asarray([[3, 1], [3, 1]]), WIDTHS, 200)
    for layer in (0, 1):  # the same draw in both networks
        np.testing.assert_array_equal(per_network[layer][:, 0], masks[layer])
        np.testing.assert_array_equal(per_network[layer][:, 1], masks[layer])


@pytest.mark.parametrize(
    "text, message",
    [
        ("top:4", "unknown kind 'top'"),
        ("random:0", "K must be a positive integer"),
        ("L1N3,N4", "'N4' is not a unit name"),
        ("L0N1", "'L0N1' is not a unit name"),
        ("L1N3,L1N3", "L1N3 is named twice"),
    ],
)
def test_unit_syntax_errors_name_the_allowed_forms(text, message):
    with pytest.raises(ValueError, match=message):
        A.parse_units(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("L3N1", "L3N1 is in L3, the output layer \\(the policy logits\\), which cannot be ablated"),
        ("L4N0", "no layer L4; the actor has 2 hidden layers L1..L2 of 17, 17 units"),
        ("L2N17", "no unit L2N17; layer L2 has units L2N0..L2N16"),
        ("top-mns:35", "K must be in 1..34"),
        ("random:35", "K must be in 1..34"),
    ],
)
def test_units_out_of_range_name_the_allowed_range(text, message):
    with pytest.raises(ValueError, match=message):
        A.check_units(A.parse_units(text), WIDTHS)


def test_parse_units_reads_the_three_forms():
    assert A.parse_units("top-mns:4") == A.UnitSpec("top-mns", 4)
    assert A.parse_units("random:2") == A.UnitSpec("random", 2)
    spec = A.parse_units("L1N3, L2N7")
    assert spec == A.UnitSpec("units", 2, ((0, 3), (1, 7))) and str(spec) == "L1N3,L2N7"


# ----------------------------------------------------------------------------- the test and the curve


@pytest.mark.slow
def test_top_mns_ablation_beside_random_draws_and_the_curve(helping):
    zero = A.ablation_values(helping, None, "zero")
    draw_key = jax.random.key(3)
    kw = dict(games=GAMES, turns=TURNS, shared=True)
    out = A.ablation_test(helping, A.parse_units("top-mns:2"), zero, ENV, KEY, mns=hand_mns(), draws=6, draw_key=draw_key, **kw)
    assert out["units"] == [["L1N2", "L2N1"]] * 2
    np.testing.assert_array_equal(out["counts"], [[1, 1], [1, 1]])
    assert out["intact"]["help_rate"] > 0.9 and out["ablated"]["help_rate"] == 0.0
    random = out["random"]
    assert all(len(units) == 2 and units[0].startswith("L1") and units[1].startswith("L2") for units in random["units"])
    hits = np.asarray([u[0] == "L1N2" or u[1] == "L2N1" for u in random["units"]])
    # A draw that misses both help units plays exactly as the intact agents.
    np.testing.assert_array_equal(random["rates"]["help_rate"][~hits], out["intact"]["help_rate"])
    assert out["gap"]["help_rate"] == pytest.approx(np.mean(random["rates"]["help_rate"]) - 0.0)
    assert random["mean"]["help_rate"] == pytest.approx(np.mean(random["rates"]["help_rate"]))
    assert random["sd"]["help_rate"] == pytest.approx(np.std(random["rates"]["help_rate"], ddof=1))
    # random:2 alone: the same draws (same key, same counts per layer), no top-MNS row.
    alone = A.ablation_test(helping, A.parse_units("random:2"), zero, ENV, KEY, mns=hand_mns(), draws=6, draw_key=draw_key, **kw)
    assert alone["ablated"] is None and alone["gap"] is None and alone["random"]["units"] == random["units"]
    np.testing.assert_array_equal(alone["random"]["rates"]["help_rate"], random["rates"]["help_rate"])
    # The curve: K = 1 (L1N2 alone) already stops the helping; K = 2 is the test above.
    curve = A.ablation_curve(helping, hand_mns(), zero, [1, 2], ENV, KEY, draw_key, draws=6, **kw)
    np.testing.assert_array_equal(curve["k"], [1, 2])
    np.testing.assert_array_equal(curve["top_mns"]["help_rate"], [0.0, 0.0])
    np.testing.assert_array_equal(curve["counts"][:, 0], [[1, 0], [1, 1]])
    assert curve["intact"]["help_rate"] == out["intact"]["help_rate"]
    assert curve["random_mean"]["help_rate"][1] == pytest.approx(random["mean"]["help_rate"])
    assert curve["gap"]["help_rate"][1] == pytest.approx(out["gap"]["help_rate"])
    assert np.all(curve["gap"]["help_rate"] > 0.5)


def test_ablation_gap_is_the_drop_beyond_the_random_drop():
    # intact 0.6: top-MNS drops it to 0.1 (0.5), random draws to 0.5 and 0.3 (mean drop 0.2) -> 0.3
    assert A.ablation_gap(0.1, [0.5, 0.3, np.nan]) == pytest.approx(0.3)
    assert np.isnan(A.ablation_gap(np.nan, [0.5])) and np.isnan(A.ablation_gap(0.1, [np.nan]))


# ----------------------------------------------------------------------------- the command


def write_params(run_dir, update: int, params) -> None:
    """Replace checkpoint `update`'s "params" item (leaves [networks, ...])."""
    path = run_dir / "checkpoints" / str(update) / "params"
    shutil.rmtree(path)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, jax.tree.map(np.asarray, params))
        checkpointer.wait_until_finished()


def last_update(run_dir) -> int:
    return max(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())


def ablate(capsys, *argv):
    code = main(["ablate", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def hand_run(tiny_rl_run, tmp_path_factory):
    """A copy of the tiny RL run whose last checkpoint holds the helping network."""
    run = copy_run(tiny_rl_run, tmp_path_factory.mktemp("ablate") / "run")
    write_params(run, last_update(run), jax.tree.map(lambda a: a[None], helping_network()))
    return run


def test_command_on_a_checkpoint_with_the_helping_network(hand_run, tmp_path, capsys):
    out_json = tmp_path / "out" / "zero.json"
    code, out, err = ablate(capsys, hand_run, "--units", "L1N2", "--mode", "zero", "--json", out_json)
    assert code == 0, err
    result = json.loads(out_json.read_text())["members"][0]
    assert result["checkpoint"] == last_update(hand_run) and result["ablated_units"] == [["L1N2"]]
    assert result["intact"]["help_rate"] > 0.9 and result["ablated"]["help_rate"] == 0.0
    assert "random" not in result and "ablation_gap" not in result
    lines = out.splitlines()
    assert lines[0].startswith(f"member 0: {hand_run}, update {last_update(hand_run)} (one network plays Frog and Toad)")
    intact_row = next(line for line in lines if line.strip().startswith("intact"))
    ablated_row = next(line for line in lines if line.strip().startswith("L1N2 (zero)"))
    assert f"{result['intact']['help_rate']:.4f}" in intact_row.split()
    assert ablated_row.split()[3:5] == ["0.0000", "0.0000"]  # label (2 words), return, help_rate, help|distressed
    code, out, err = ablate(capsys, hand_run, "--units", "L1N5,L2N16", "--mode", "zero", "--json", out_json)
    assert code == 0, err
    result = json.loads(out_json.read_text())["members"][0]
    assert result["ablated"] == result["intact"]


def test_command_on_the_tiny_run_matches_its_metrics(tiny_rl_run, tmp_path, capsys):
    """The intact agents are the run's reported numbers (the trainer's fused actor-critic
    pass and the actor alone agree to float rounding, which flips no sampled action here);
    top-mns:2 with its random control."""
    out_json = tmp_path / "top.json"
    code, out, err = ablate(capsys, f"{tiny_rl_run}:4", "--units", "top-mns:2", "--seeds", "3", "--json", out_json)
    assert code == 0, err
    result = json.loads(out_json.read_text())["members"][0]
    line = {json.loads(x)["epoch"]: json.loads(x) for x in (tiny_rl_run / "metrics.jsonl").read_text().splitlines()}[4]
    assert result["checkpoint"] == 4 and result["mean_rows"] > 0
    for k in ("return", "help_rate", "help_when_partner_distressed"):
        assert result["intact"][k] == pytest.approx(line[k if k != "return" else "return_agent"], abs=1e-6)
    assert sum(result["counts_per_layer"][0]) == 2 and len(result["ablated_units"][0]) == 2
    assert len(result["random"]["per_draw"]["help_rate"]) == 3
    assert all(sorted(u[:2] for u in units) == sorted(u[:2] for u in result["ablated_units"][0]) for units in result["random"]["units"])
    draws = [x for x in result["random"]["per_draw"]["help_when_partner_energy0"] if x is not None]
    top = result["ablated"]["help_when_partner_energy0"]
    expected = None if not draws or top is None else np.mean(draws) - top
    assert result["ablation_gap"] == (expected if expected is None else pytest.approx(expected))
    assert "top-MNS units on probe set (a)" in out and "random x3 (mean)" in out and "ablation gap (help|energy0)" in out


def test_command_on_a_sweep_trial_directory(tiny_rl_run, tmp_path, capsys):
    """A trial directory (population.json pointing at the run) is ablated as the run."""
    trial = tmp_path / "trial"
    trial.mkdir()
    for name in ("config.yaml", "members.json", "rl_run.json", "dataset.json", "metrics.jsonl"):
        shutil.copy(tiny_rl_run / name, trial / name)
    checkpoints = len((tiny_rl_run / "metrics.jsonl").read_text().splitlines())
    pointer = {"run_dir": str(tiny_rl_run), "member": 0, "networks": [0], "checkpoints": checkpoints, "rl_member": 0}
    (trial / "population.json").write_text(json.dumps(pointer))
    results = []
    for target in (trial, tiny_rl_run):
        code, _, err = ablate(capsys, target, "--units", "L1N0,L2N3", "--json", tmp_path / "t.json")
        assert code == 0, err
        results.append(json.loads((tmp_path / "t.json").read_text())["members"][0])
    assert results[0]["intact"] == results[1]["intact"] and results[0]["ablated"] == results[1]["ablated"]
    code, _, err = ablate(capsys, trial, "--units", "L1N0,L2N3", "--member", "all", "--json", tmp_path / "t.json")
    assert code == 0, err
    assert json.loads((tmp_path / "t.json").read_text())["members"] == results[:1]  # the trial's one member


@pytest.mark.parametrize(
    "args, message",
    [
        (["--units", "L3N0"], "L3N0 is in L3, the output layer (the policy logits), which cannot be ablated"),
        (["--units", "L1N17"], "no unit L1N17; layer L1 has units L1N0..L1N16"),
        (["--units", "top-mns:40"], "K must be in 1..34"),
        (["--units", "hop:2"], "unknown kind 'hop'"),
        (["--units", "random:2", "--seeds", "0"], "needs --seeds >= 1"),
        (["--units", "L1N0", "--member", "1"], "--member '1' is out of range"),
        (["--units", "L1N0", "--seeds", "-1"], "--seeds must be >= 0"),
        (["--units", "L1N0", "--json", "."], "--json . is a directory"),
    ],
)
def test_command_errors_are_one_line(tiny_rl_run, capsys, args, message):
    code, out, err = ablate(capsys, tiny_rl_run, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_command_refuses_what_it_cannot_ablate(tiny_rl_run, tmp_path, capsys, monkeypatch):
    code, _, err = ablate(capsys, f"{tiny_rl_run}:5", "--units", "L1N0")
    assert code == 2 and "no checkpoint '5'; available: 2, 4, 6, last, best" in err and "--agent" not in err
    code, _, err = ablate(capsys, tmp_path, "--units", "L1N0")  # a supervised run has no rl_run.json either
    assert code == 2 and "is not an RL run" in err
    code, _, err = ablate(capsys, tmp_path / "missing", "--units", "L1N0")
    assert code == 2 and "is not a directory" in err
    import mirror.runs.ablation as run_ablation

    real = run_ablation.load_agents

    def as_transformer(*args, **kwargs):
        agents = real(*args, **kwargs)
        return agents.__class__(**{**agents.__dict__, "params": {**agents.params, "position": np.zeros((2, 1))}})

    monkeypatch.setattr(run_ablation, "load_agents", as_transformer)
    code, _, err = ablate(capsys, tiny_rl_run, "--units", "L1N0")
    assert code == 2 and "transformer actors: mirror ablate takes MLP actors only" in err


@pytest.mark.slow
def test_command_on_independent_networks(tmp_path, capsys):
    """Two networks per member: named units are ablated in both, and the intact agents are
    each network's own policy playing its player, in the run's report games."""
    from test_play_agent import UPDATES, make_rl_run
    from test_play_agent import WIDTHS as FIXTURE_WIDTHS

    run = tmp_path / "run"
    saved = make_rl_run(run, sharing="independent", member_envs=({"dependency": 0.5}, {"dependency": 1.0}), activation="tanh")
    rl_run = json.loads((run / "rl_run.json").read_text())
    rl_run["eval"] = {"games": 4, "turns": 40, "seed": 3, "report_stream": REPORT_STREAM, "greedy": False}
    (run / "rl_run.json").write_text(json.dumps(rl_run))
    code, out, err = ablate(capsys, f"{run}:{UPDATES[0]}", "--units", "L1N1,L2N4", "--mode", "zero", "--member", "1", "--json", tmp_path / "i.json")
    assert code == 0, err
    result = json.loads((tmp_path / "i.json").read_text())["members"][0]
    assert result["networks"] == [2, 3] and result["ablated_units"] == [["L1N1", "L2N4"]] * 2 and result["dependency"] == 1.0
    assert "Frog's network: ablated units: L1N1, L2N4" in out and "Toad's network: ablated units: L1N1, L2N4" in out
    nets = [jax.tree.map(lambda a: a[n], saved[UPDATES[0]]) for n in (2, 3)]

    def policy(p, obs, player, central=None):
        logits = policy_logits(p, obs, FIXTURE_WIDTHS, "tanh", "paper")  # a run without rl_run.json "view": the paper's input
        return logits, jnp.zeros(logits.shape[:-1])

    env = EnvParams(episode_turns=20, dependency=1.0)
    reference = evaluate(per_player(agent(policy, nets[0]), agent(policy, nets[1])), env, fixed_key(3, REPORT_STREAM), 4, 40)
    for k in A.RATES:
        expected = float(reference[k])
        assert result["intact"][k] == (None if np.isnan(expected) else pytest.approx(expected, abs=1e-6))
