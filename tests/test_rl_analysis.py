"""The analysis layer of RL runs: on-policy CMNI (every checkpoint its own probe rows),
the actor-critic init null, `analyse_run` on an RL run, the RL figures and report.md."""

import csv
import json

import jax
import numpy as np
import pytest

from mirror.agents.actor_critic import cmni_params, init_actor_critic
from mirror.agents.mlp import init_params, pad_params, unit_masks
from mirror.analysis.cmni import ACTOR_CRITIC_INIT, cmni, init_params_batch, permutation_null
from mirror.analysis.groups import cmni_groups
from mirror.analysis.onpolicy import game_shifted_groups, onpolicy_cmni
from mirror.analysis.variants import cmni_variants
from mirror.data.processing import model_inputs
from mirror.env.constants import layout_of

W = 4
F = 3 * W + 4  # 16 codes at world width 4
LAYOUT = layout_of(F)


def read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _stack(trees):
    return jax.tree.map(lambda *a: np.stack(a), *trees)


def random_probes(rng, lead, rows):
    """Raw own views (the masked columns hold junk, as a real observation does), scenarios
    0-3 and idle flags, [*lead, rows, ...]. Every model gets the same multiset of (scenario,
    idle) in its own row order, so the per-model reference `cmni()` calls share one shape
    (one compile) while the rows still differ."""
    inputs = rng.integers(0, 9, lead + (rows, F)).astype(np.int8)
    base_scenarios = rng.integers(0, 4, rows).astype(np.int8)
    base_idle = rng.random((rows, 2)) < 0.7
    order = np.argsort(rng.random(lead + (rows,)), axis=-1)
    return inputs, base_scenarios[order], base_idle[order]


# ----------------------------------------------------------------------------- on-policy CMNI


@pytest.mark.slow
def test_onpolicy_cmni_equals_cmni_run_per_checkpoint_on_its_own_rows():
    """Differential: the vectorised pass = the existing `cmni()` per (checkpoint, network) on
    that model's rows, masked as the dataset's inputs are (§5.6), padded units included."""
    rng = np.random.default_rng(0)
    checkpoints, networks, rows = 2, 2, 300
    widths = [(5, 4), (3, 4)]  # network 1 is narrower: padded to (5, 4)
    keys = jax.random.split(jax.random.key(1), checkpoints * networks)
    trees = [pad_params(init_params(k, widths[i % 2], num_inputs=F), widths[i % 2], (5, 4)) for i, k in enumerate(keys)]
    params = jax.tree.map(lambda a: a.reshape((checkpoints, networks) + a.shape[1:]), _stack(trees))
    masks = [m[None] for m in unit_masks(widths, (5, 4))]  # [1, networks, units]
    inputs, scenarios, idle = random_probes(rng, (checkpoints, networks), rows)

    got = onpolicy_cmni(params, masks, inputs, scenarios, idle, activation="relu", chunk_rows=64)
    assert got.cmni.shape == (checkpoints, networks) and got.counts.shape == (checkpoints, networks, 3)
    for c in range(checkpoints):
        for n in range(networks):
            one = jax.tree.map(lambda a: a[c, n], params)
            x = np.asarray(model_inputs(inputs[c, n]))
            groups = cmni_groups(scenarios[c, n], idle[c, n])
            want = cmni(one, x, groups, unit_mask=[m[0, n] for m in masks], activation="relu", chunk_rows=64)
            np.testing.assert_allclose(got.cmni[c, n], want.cmni, rtol=1e-5, atol=1e-8)
            scaled = cmni_variants(one, x, groups, None, unit_mask=[m[0, n] for m in masks], activation="relu", chunk_rows=64)
            np.testing.assert_allclose(got.cmni_scaled[c, n], scaled.values["cmni_scaled"], rtol=1e-5, atol=1e-8)
            np.testing.assert_allclose(got.layer_cmni[c, n], want.layer_cmni, rtol=1e-5, atol=1e-8)
            np.testing.assert_array_equal(got.counts[c, n], want.counts)
    assert (got.cmni > 0).sum() >= 3 and len(np.unique(got.cmni)) == 4  # a non-trivial comparison
    assert len(np.unique(got.cmni_scaled)) == 4 and not np.allclose(got.cmni_scaled, got.cmni)
    assert np.isnan(got.p_permutation).all() and got.null.shape == (checkpoints, networks, 0)


@pytest.mark.slow
def test_onpolicy_cmni_scaled_of_a_transformer_equals_its_variant_on_its_own_rows():
    """A transformer's neurons (every one row by row, outputs included) take the same scaled
    pass: each network's on-policy cmni_scaled = `cmni_variants` on that network's rows."""
    from mirror.agents.transformer import init_transformer_params

    rng = np.random.default_rng(4)
    keys = jax.random.split(jax.random.key(2), 2)
    trees = [init_transformer_params(k, num_inputs=F, depth=1, d_model=8, heads=2, mlp_ratio=2) for k in keys]
    params = jax.tree.map(lambda a: a[None], _stack(trees))  # [checkpoints 1, networks 2, ...]
    inputs, scenarios, idle = random_probes(rng, (1, 2), 200)
    got = onpolicy_cmni(params, None, inputs, scenarios, idle, activation="relu", chunk_rows=64)
    for n in range(2):
        x = np.asarray(model_inputs(inputs[0, n]))
        want = cmni_variants(trees[n], x, cmni_groups(scenarios[0, n], idle[0, n]), None, activation="relu", chunk_rows=64)
        np.testing.assert_allclose(got.cmni_scaled[0, n], want.values["cmni_scaled"], rtol=1e-5, atol=1e-8)
    assert np.all(got.cmni_scaled > 0)


def _probe_unit_model(out_weight):
    """One hidden unit reading the energy input (+100 x the own-code input, which the §5.6
    mask zeroes) and 4 linear outputs with weights out_weight."""
    kernel = np.zeros((F, 1), np.float32)
    kernel[LAYOUT.energy, 0] = 1.0
    kernel[LAYOUT.own_code, 0] = 100.0
    return {
        "hidden_0": {"kernel": kernel, "bias": np.zeros(1, np.float32)},
        "output": {"kernel": np.asarray([out_weight], np.float32), "bias": np.zeros(4, np.float32)},
    }


def _rows(energies, own_codes):
    x = np.zeros((len(energies), F), np.int8)
    x[:, LAYOUT.energy] = energies
    x[:, LAYOUT.own_code] = own_codes
    return x


def test_onpolicy_cmni_hand_checked():
    """Checkpoint 0: energy means none 1, frog 3, toad 2 -> the unit's MNS = min(2, 1) = 1,
    output 0 copies it (MNS 1), outputs 1-3 are flat: CMNI = 2 / (1 + 4) = 0.4. The
    excluded row (Frog distressed, Toad not idle; energy 50) and the own-code column (x100)
    change nothing. Checkpoint 1: toad mean below none -> 0. Checkpoint 2: no toad rows -> NaN.
    cmni_scaled: the unit's energies over the six rows of groups 0-2 (0 2 3 3 1 3) have mean 2
    and sd sqrt(8 / 6), so its term and output 0's are 1 / sqrt(4 / 3); the flat outputs
    score 0: 2 / sqrt(4 / 3) / 5 = 0.4 sqrt(3) / 2."""
    params = _stack([_probe_unit_model([1, 0, 0, 0])] * 3)
    params = jax.tree.map(lambda a: a[:, None], params)  # [checkpoints 3, networks 1, ...]
    scen = np.asarray([0, 0, 1, 1, 2, 2, 1], np.int8)
    idle = np.ones((7, 2), bool)
    idle[6, 1] = False  # row 6: Toad shows an action code -> excluded
    energies = [
        [0, 2, 3, 3, 1, 3, 50],  # none 1, frog 3, toad 2
        [1, 1, 3, 3, 0, 0, 50],  # toad 0 < none 1
        [1, 1, 3, 3, 0, 0, 50],
    ]
    scenarios = np.stack([scen, scen, np.where(scen == 2, 3, scen)])  # checkpoint 2: toad rows become both-distressed
    inputs = np.stack([_rows(e, 7) for e in energies])[:, None]
    got = onpolicy_cmni(params, None, inputs, scenarios[:, None], np.broadcast_to(idle, (3, 1, 7, 2)), activation="relu")
    np.testing.assert_allclose(got.cmni[:2, 0], [0.4, 0.0], rtol=1e-6)
    assert np.isnan(got.cmni[2, 0])
    np.testing.assert_array_equal(got.counts[:, 0], [[2, 2, 2], [2, 2, 2], [2, 2, 0]])
    np.testing.assert_allclose(got.layer_cmni[0, 0], [1.0, 0.25], rtol=1e-6)
    np.testing.assert_allclose(got.cmni_scaled[:2, 0], [0.4 * np.sqrt(3) / 2, 0.0], rtol=1e-6)
    assert np.isnan(got.cmni_scaled[2, 0])


def test_onpolicy_cmni_rejects_mismatched_probe_shapes():
    params = jax.tree.map(lambda a: a[None, None], _probe_unit_model([1, 0, 0, 0]))
    inputs = np.zeros((1, 1, 5, F), np.int8)
    with pytest.raises(ValueError, match="idle_shown"):
        onpolicy_cmni(params, None, inputs, np.zeros((1, 1, 5), np.int8), np.zeros((1, 1, 5), bool), activation="relu")
    with pytest.raises(ValueError, match="scenarios"):
        onpolicy_cmni(params, None, inputs, np.zeros((1, 2, 5), np.int8), np.zeros((1, 2, 5, 2), bool), activation="relu")


def test_game_shifted_groups_rotate_each_games_labels():
    """Rows are turn-major (row = t * games + g): every relabelling shifts each game's label
    sequence circularly by its own offset, so each game keeps its labels, their order
    around the circle and hence their spells, and no label moves to another game."""
    rng = np.random.default_rng(3)
    models, games, turns, k = 3, 4, 10, 25
    groups = rng.integers(-1, 4, (models, turns * games)).astype(np.int8)
    shifted = game_shifted_groups(7, groups, games, k)
    assert shifted.shape == (models, k, turns * games) and shifted.dtype == np.int8
    offsets = set()
    for m in range(models):
        for i in range(k):
            for g in range(games):
                mine, theirs = groups[m, g::games], shifted[m, i, g::games]
                found = [o for o in range(turns) if np.array_equal(np.roll(mine, -o), theirs)]
                assert found, (m, i, g)
                offsets.add(found[0])
    assert offsets == set(range(turns))  # every offset 0 .. T - 1 drawn somewhere
    np.testing.assert_array_equal(shifted, game_shifted_groups(7, groups, games, k))
    # Hand-worked: 2 games x 3 turns, rows (t0 g0, t0 g1, t1 g0, t1 g1, t2 g0, t2 g1).
    one = np.asarray([[0, 1, 2, 1, 3, 2]], np.int8)
    for labels in game_shifted_groups(0, one, 2, 20)[0]:
        assert tuple(labels[0::2]) in {(0, 2, 3), (2, 3, 0), (3, 0, 2)} and tuple(labels[1::2]) in {(1, 1, 2), (1, 2, 1), (2, 1, 1)}
    with pytest.raises(ValueError, match="games"):
        game_shifted_groups(0, groups, 7, 2)


def test_onpolicy_permutation_null_equals_cmni_on_the_shifted_labels():
    """Each null CMNI is the plain `cmni()` of that model on its rows with the game-wise
    shifted labels (rows of every group move, those outside the CMNI groups included);
    p = (1 + #null >= observed) / (K + 1)."""
    rng = np.random.default_rng(4)
    checkpoints, networks, games, k = 1, 2, 8, 6
    rows = games * 15
    keys = jax.random.split(jax.random.key(5), checkpoints * networks)
    params = jax.tree.map(lambda a: a.reshape((checkpoints, networks) + a.shape[1:]), _stack([init_params(key, (6,), num_inputs=F) for key in keys]))
    inputs, scenarios, idle = random_probes(rng, (checkpoints, networks), rows)
    got = onpolicy_cmni(params, None, inputs, scenarios, idle, activation="relu", chunk_rows=32, permutations=k, seed=11, games=games)
    groups = cmni_groups(scenarios.reshape(-1), idle.reshape(-1, 2)).reshape(-1, rows)
    shifted = game_shifted_groups(11, groups, games, k).reshape(checkpoints, networks, k, rows)
    for c in range(checkpoints):
        for n in range(networks):
            one = jax.tree.map(lambda a: a[c, n], params)
            x = np.asarray(model_inputs(inputs[c, n]))
            want = [float(cmni(one, x, shifted[c, n, i], chunk_rows=32).cmni) for i in range(k)]
            np.testing.assert_allclose(got.null[c, n], want, rtol=1e-5, atol=1e-7)  # CMNIs near 0.1: float32 differences of means
            assert got.p_permutation[c, n] == pytest.approx((1 + np.sum(np.asarray(want, np.float32) >= got.cmni[c, n])) / (k + 1))
    with pytest.raises(ValueError, match="games"):
        onpolicy_cmni(params, None, inputs, scenarios, idle, activation="relu", permutations=k)
    with pytest.raises(ValueError, match="probe.games = 7"):
        onpolicy_cmni(params, None, inputs, scenarios, idle, activation="relu", permutations=k, games=7)


def test_onpolicy_permutation_p_value_of_a_planted_signal_is_minimal():
    """The hand-checked model on 4 games x 30 turns, each game's spells none, frog, toad of
    10 turns: its CMNI (0.4) beats every shift except the identity."""
    params = jax.tree.map(lambda a: a[None, None], _probe_unit_model([1, 0, 0, 0]))
    scen = np.repeat(np.repeat(np.asarray([0, 1, 2], np.int8), 10), 4)  # turn-major: each turn's 4 games share the group
    energies = np.repeat(np.repeat([1, 3, 2], 10), 4)
    got = onpolicy_cmni(
        params, None, _rows(energies, 0)[None, None], scen[None, None], np.ones((1, 1, 120, 2), bool), activation="relu", permutations=49, seed=0, games=4
    )
    np.testing.assert_allclose(got.cmni[0, 0], 0.4, rtol=1e-6)
    assert got.p_permutation[0, 0] <= 3 / 50  # the odd draw of zero shifts in every game ties
    assert np.sum(got.null[0, 0] >= 0.4 - 1e-6) <= 2
    # The p-values are float64: with 19 shifts the floor 1/20 is <= 0.05 (a float32 1/20 is not).
    floor = onpolicy_cmni(
        params, None, _rows(energies, 0)[None, None], scen[None, None], np.ones((1, 1, 120, 2), bool), activation="relu", permutations=19, seed=0, games=4
    ).p_permutation[0, 0]
    assert floor == 1 / 20 and floor <= 0.05


def test_onpolicy_init_null_is_each_draw_on_every_checkpoints_own_rows():
    """init_null[c, n, s] is the CMNI of draw s of network n's architecture on the rows of
    checkpoint c and network n (padded network included); p_init = (1 + #init >= observed) / (S + 1)."""
    rng = np.random.default_rng(6)
    checkpoints, networks, rows, draws = 2, 2, 96, 3
    widths = [(5, 4), (3, 4)]
    keys = jax.random.split(jax.random.key(2), checkpoints * networks)
    trees = [pad_params(init_params(k, widths[i % 2], num_inputs=F), widths[i % 2], (5, 4)) for i, k in enumerate(keys)]
    params = jax.tree.map(lambda a: a.reshape((checkpoints, networks) + a.shape[1:]), _stack(trees))
    masks = [m[None] for m in unit_masks(widths, (5, 4))]
    init = _stack([_stack([pad_params(init_params(jax.random.key(50 + 10 * n + s), widths[n], num_inputs=F), widths[n], (5, 4)) for s in range(draws)])
                   for n in range(networks)])  # [networks, S, ...]  # fmt: skip
    init_masks = [np.broadcast_to(m[0][:, None], (networks, draws, m.shape[-1])) for m in masks]
    inputs, scenarios, idle = random_probes(rng, (checkpoints, networks), rows)
    got = onpolicy_cmni(params, masks, inputs, scenarios, idle, activation="relu", chunk_rows=32, init_params=init, init_unit_mask=init_masks)
    assert got.init_null.shape == (checkpoints, networks, draws) and np.isnan(got.p_permutation).all()
    for c in range(checkpoints):
        for n in range(networks):
            for s in range(draws):
                one = jax.tree.map(lambda a: np.asarray(a)[n, s][None, None], init)
                want = onpolicy_cmni(one, [m[0, n][None, None] for m in masks], inputs[c, n][None, None], scenarios[c, n][None, None], idle[c, n][None, None],
                                     activation="relu", chunk_rows=32).cmni[0, 0]  # fmt: skip
                assert got.init_null[c, n, s] == pytest.approx(float(want), rel=1e-5, abs=1e-8)
            assert got.p_init[c, n] == (1 + np.sum(got.init_null[c, n] >= got.cmni[c, n])) / (draws + 1)
    assert len(np.unique(got.init_null)) > draws  # every checkpoint's rows give their own values
    with pytest.raises(ValueError, match="leading axes"):
        onpolicy_cmni(params, masks, inputs, scenarios, idle, activation="relu", init_params=jax.tree.map(lambda a: a[:1], init))


def _autocorrelated_probes(rng, models, games, turns, stay=0.95):
    """Probe rows with no link between group and input: per game a Markov chain of groups
    (none, frog, toad; a spell lasts 1 / (1 - stay) turns) and an independent slow random
    walk of the energy input (0-18), both autocorrelated as real probe games are.
    Turn-major rows; returns inputs int8[models, rows, F], scenarios int8[models, rows]."""
    labels = np.zeros((models, turns, games), np.int8)
    energy = np.zeros((models, turns, games))
    labels[:, 0] = rng.integers(0, 3, (models, games))
    energy[:, 0] = rng.integers(0, 19, (models, games))
    for t in range(1, turns):
        move = rng.random((models, games)) > stay
        labels[:, t] = np.where(move, rng.integers(0, 3, (models, games)), labels[:, t - 1])
        energy[:, t] = np.clip(energy[:, t - 1] + rng.choice([-1, 0, 1], (models, games), p=[0.1, 0.8, 0.1]), 0, 18)
    x = np.zeros((models, turns * games, F), np.int8)
    x[:, :, LAYOUT.energy] = energy.reshape(models, -1)
    return x, labels.reshape(models, -1)


def test_the_game_wise_null_holds_its_level_where_a_row_wise_shuffle_does_not():
    """Few long games, groups and inputs autocorrelated but unrelated: the row-by-row
    shuffle (the supervised null, which the on-policy null was) rejects at 0.05 far more
    often than 5 %; the game-wise circular shift about 5 % (3.5 % and 27 % here)."""
    models, games, turns, k = 200, 4, 96, 99
    x, scenarios = _autocorrelated_probes(np.random.default_rng(0), models, games, turns)
    unit = _probe_unit_model([1, 0, 0, 0])
    params = jax.tree.map(lambda a: np.broadcast_to(a, (models, 1) + a.shape), unit)
    got = onpolicy_cmni(params, None, x[:, None], scenarios[:, None], np.ones((models, 1, games * turns, 2), bool), activation="relu",
                        permutations=k, seed=1, games=games)  # fmt: skip
    row_wise = np.asarray([np.mean(np.asarray(permutation_null(2, unit, np.asarray(model_inputs(x[m])), scenarios[m], permutations=k)) >= got.cmni[m, 0])
                           for m in range(models)])  # fmt: skip
    row_p = (1 + row_wise * k) / (k + 1)
    game_rate, row_rate = np.mean(got.p_permutation[:, 0] <= 0.05), np.mean(row_p <= 0.05)
    assert game_rate <= 0.09 and row_rate >= 0.18, (game_rate, row_rate)


# ----------------------------------------------------------------------------- actor-critic init null


def test_actor_critic_init_null_draws_the_actor_critics_initialisation():
    key = jax.random.key(9)
    batch = init_params_batch(key, 3, (5, 4), num_inputs=F, kernel_init=ACTOR_CRITIC_INIT)
    assert set(batch) == {"hidden_0", "hidden_1", "output"}  # no value head: it is no CMNI neuron
    for i, k in enumerate(jax.random.split(key, 3)):
        want = cmni_params(init_actor_critic(k, (5, 4), num_inputs=F))
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[i], np.asarray(b)), batch, want)
    # Orthogonal hidden kernels with gain sqrt 2 (the MLP's glorot init is not): W^T W = 2 I.
    kernel = batch["hidden_1"]["kernel"][0]
    np.testing.assert_allclose(kernel.T @ kernel, 2 * np.eye(4), atol=1e-5)
    # Padded to a wider population like the glorot null.
    padded = init_params_batch(key, 3, (5, 4), num_inputs=F, kernel_init=ACTOR_CRITIC_INIT, padded_to=(6, 4))
    assert padded["hidden_0"]["kernel"].shape == (3, F, 6) and not padded["hidden_0"]["kernel"][:, :, 5].any()


def test_permutation_null_unchanged_by_the_shared_refactor():
    """cmni.permutation_null still matches the per-permutation cmni() after permutation_cmni was split out."""
    rng = np.random.default_rng(2)
    params = init_params(jax.random.key(0), (6,), num_inputs=F)
    inputs = np.asarray(model_inputs(rng.integers(0, 9, (90, F)).astype(np.int8)))
    groups = rng.integers(-1, 4, 90).astype(np.int8)
    null = permutation_null(3, params, inputs, groups, permutations=4, chunk_rows=32)
    keep = (groups >= 0) & (groups < 3)
    from mirror.analysis.cmni import permuted_groups

    for i, g in enumerate(permuted_groups(3, groups[keep], 4)):
        np.testing.assert_allclose(null[i], cmni(params, inputs[keep], g, chunk_rows=32).cmni, rtol=1e-5)


# ----------------------------------------------------------------------------- analyse_run on an RL run

UPDATES = (2, 4, 6)
PROBE_ROWS = 240


def _fake_rl_run(run_dir, dataset, dataset_cache, *, networks=2, permutations=5):
    """An RL run directory as the contract lays it out (helper A writes the real one):
    config, members (one per network), rl_run.json, three checkpoints of actor-critic
    CMNI params with metadata, metrics.jsonl, rl_metrics.jsonl, baselines.json; and the
    on-policy probe set as `read_probes` returns it."""
    import types

    import yaml
    from conftest import TINY_DATA

    from mirror.runs.checkpoints import open_manager, save_checkpoint
    from mirror.runs.config import load_config

    run_dir.mkdir(parents=True)
    config = load_config(None, [*TINY_DATA, "--data.cache_dir", str(dataset_cache), "--model.width", "5", "--analysis.permutations", str(permutations),
                                "--analysis.init_seeds", "4", "--analysis.chunk_rows", "256"])  # fmt: skip
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=True))
    (run_dir / "dataset.json").write_text(json.dumps({"path": str(dataset.path)}))
    (run_dir / "members.json").write_text(json.dumps([{"seed": n, "lr": 3e-4, "dropout": 0.0, "l2": 0.0, "widths": [5, 5]} for n in range(networks)]))
    members = [{"seed": 0, "lr": 3e-4, "partner_reward_weight": 0.0, "env": {"dependency": 0.5, "veil": 0.0}}]
    rl_run = {"sharing": "independent" if networks == 2 else "shared", "networks_per_member": networks, "num_inputs": dataset.inputs.shape[1],
              "members": members, "probe": {"games": 16, "turns": 15, "seed": 1}, "eval": {"games": 64, "turns": 60}}  # fmt: skip
    (run_dir / "rl_run.json").write_text(json.dumps(rl_run))
    manager = open_manager(run_dir)
    rng = np.random.default_rng(0)
    for i, update in enumerate(UPDATES):
        keys = jax.random.split(jax.random.key(i), networks)
        params = _stack([cmni_params(init_actor_critic(k, (5, 5), num_inputs=dataset.inputs.shape[1])) for k in keys])
        params = jax.tree.map(lambda a: a * (1 + i), params)  # checkpoints differ
        line = {"epoch": update, "env_turns": 1000 * update, "return_agent": [1.0 + i, 2.0 + i], "help_rate": [0.1 * i, 0.2],
                "help_when_partner_distressed": [0.3, None], "wall_s": 1.0}  # fmt: skip
        with open(run_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(line) + "\n")
        save_checkpoint(manager, update, types.SimpleNamespace(params=params, opt_state={"step": np.zeros(1)}), {"epoch": update, "best_epoch": 4 if update >= 4 else 2})
    manager.wait_until_finished()
    manager.close()
    with open(run_dir / "rl_metrics.jsonl", "w") as fh:
        for u in range(1, 7):
            fh.write(json.dumps({"update": u, "env_turns": 1000 * u, "return_per_player": [0.5 * u, 0.5 * u + 1], "entropy": 1.0, "help_rate": 0.1}) + "\n")
    baselines = {"behaviour": {"return_per_player": [1.0, 1.5], "return": 1.25, "help_rate": 0.05, "help_when_partner_distressed": 0.1, "episodes": 64},
                 "oracle": {"return_per_player": [3.0, 3.0], "return": 3.0, "help_rate": 0.2, "help_when_partner_distressed": 0.6, "episodes": 64}}  # fmt: skip
    (run_dir / "baselines.json").write_text(json.dumps(baselines))
    inputs, scenarios, idle = random_probes(rng, (len(UPDATES), networks), PROBE_ROWS)
    inputs = np.concatenate([inputs, np.zeros(inputs.shape[:-1] + (dataset.inputs.shape[1] - F,), np.int8)], axis=-1)
    probes = {"inputs": inputs[::-1], "scenarios": scenarios[::-1], "idle_shown": idle[::-1], "updates": np.asarray(UPDATES[::-1])}  # out of order on purpose
    return probes, (inputs, scenarios, idle)


@pytest.fixture
def rl_run(tmp_path, tiny_dataset, dataset_cache):
    run_dir = tmp_path / "rl"
    probes, ordered = _fake_rl_run(run_dir, tiny_dataset, dataset_cache)
    return run_dir, probes, ordered


@pytest.mark.slow
def test_mirror_cmni_on_an_rl_run(rl_run, tmp_path, monkeypatch, capsys, tiny_dataset):
    """`mirror cmni RUN_DIR` on an RL run: the probes come from the RL layer's reader
    (`mirror.runs.checkpoints.read_probes`, stood in for here where the analysis reads it)."""
    from mirror.cli import main
    from mirror.runs import analysis as run_analysis
    from mirror.runs.checkpoints import load_run

    run_dir, probes, (inputs, scenarios, idle) = rl_run
    monkeypatch.setattr(run_analysis, "read_probes", lambda d: probes if d == run_dir.absolute() else None)
    monkeypatch.setattr(run_analysis, "rl_summary", lambda d: {"return_agent": 1.5} if d == run_dir.absolute() else None)
    assert main(["cmni", str(run_dir), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "member 1: selected epoch 4" in printed and "on-policy states (b): CMNI" in printed
    rows = read_csv(tmp_path / "out" / "cmni.csv")
    header = list(rows[0])
    assert header[:7] == ["checkpoint", "epoch", "member", "env_turns", "return_agent", "help_rate", "help_when_partner_distressed"]
    assert header[-4:] == ["cmni_onpolicy", "p_onpolicy", "p_init_onpolicy", "cmni_scaled_onpolicy"] and "val_loss" not in header
    assert len(rows) == len(UPDATES) * 2
    by = {(int(r["checkpoint"]), int(r["member"])): r for r in rows}
    assert by[(1, 0)]["epoch"] == "4" and by[(1, 0)]["env_turns"] == "4000" and by[(2, 1)]["return_agent"] == "4"
    assert by[(0, 1)]["help_when_partner_distressed"] == ""  # null -> NaN -> empty
    # The selected checkpoint is the metadata's best_epoch (4), for both networks.
    assert [r["epoch"] for r in rows if r["selected"] == "1"] == ["4", "4"]
    # cmni_onpolicy is the on-policy CMNI of each checkpoint on ITS OWN probe rows (re-ordered by update).
    run = load_run(run_dir)
    # p_onpolicy is the game-wise null over rl_run.json's 16 probe games (same seed, the config's 0);
    # p_init_onpolicy ranks it among probe set (a)'s random initialisations on the same rows.
    from mirror.analysis.analyse import init_draws

    stacked, draw_masks, index = init_draws(jax.random.key(0), run.widths, run.params, seeds=4, num_inputs=tiny_dataset.inputs.shape[1],
                                            activation="relu", kernel_init=ACTOR_CRITIC_INIT)  # fmt: skip
    want = onpolicy_cmni(run.params, None, inputs, scenarios, idle, activation="relu", chunk_rows=256, permutations=5, seed=0, games=16,
                         init_params=jax.tree.map(lambda a: a[index], stacked), init_unit_mask=[m[index] for m in draw_masks])  # fmt: skip
    assert want.init_null.shape == (len(UPDATES), 2, 4)
    for (c, n), r in by.items():
        assert float(r["cmni_onpolicy"]) == pytest.approx(float(want.cmni[c, n]), rel=1e-6)
        assert float(r["p_onpolicy"]) == pytest.approx(float(want.p_permutation[c, n]))
        assert float(r["p_init_onpolicy"]) == pytest.approx(float(want.p_init[c, n]))
        assert float(r["cmni_scaled_onpolicy"]) == pytest.approx(float(want.cmni_scaled[c, n]), rel=1e-6)
    # The init null is the actor-critic's (orthogonal) initialisation.
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["rl"]["init_null"] == ACTOR_CRITIC_INIT and summary["rl"]["probe_rows_per_network"] == PROBE_ROWS
    assert [o["epoch"] for o in summary["rl"]["onpolicy"]] == [4, 4]
    assert [o["init_onpolicy_seeds"] for o in summary["rl"]["onpolicy"]] == [4, 4] and "game-wise" in summary["rl"]["onpolicy_null"]
    assert summary["rl"]["onpolicy"][1]["init_onpolicy_mean"] == pytest.approx(float(np.mean(want.init_null[1, 1])), rel=1e-5)
    assert summary["return_agent"] == 1.5  # the RL headline survives a re-analysis
    figures = sorted(p.name for p in (tmp_path / "out" / "figures").iterdir())
    assert {"learning_curve.png", "cmni_checkpoints_m0.png", "cmni_checkpoints_m1.png"} <= set(figures)
    assert not any(name.startswith("training") for name in figures)  # no validation loss in RL
    assert [entry["seeds"] for entry in summary["init_null"]] == [4, 4]


# ----------------------------------------------------------------------------- RL figures


def _legend_labels(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_learning_curve_figure_lines_and_baselines(tmp_path):
    from test_play_and_figures import assert_legends_hide_nothing, assert_png_matches

    from mirror.runs import rl_figures

    turns = np.arange(1, 41) * 16384.0
    returns = 3.0 * (1 - np.exp(-turns / 2e5))  # rises into the upper right corner
    fig = rl_figures.learning_curve_figure(turns, returns, behaviour=1.2, oracle=2.9)
    ax = fig.axes[0]
    assert len(ax.lines) == 3  # the agents, the behaviour line, the oracle line
    np.testing.assert_allclose(ax.lines[0].get_ydata(), returns)
    assert [tuple(line.get_ydata()) for line in ax.lines[1:]] == [(1.2, 1.2), (2.9, 2.9)]
    assert ax.get_xlabel() == "env turns" and ax.get_ylabel() == "mean return per player per episode"
    assert _legend_labels(fig) == ["agents (PPO self-play)", "behaviour policy (1.20)", "label oracle (2.90)"]
    assert_legends_hide_nothing(fig)
    path = rl_figures.plot_learning_curve(tmp_path / "lc.png", turns, returns, behaviour=1.2, oracle=2.9)
    assert_png_matches(path, fig)

    # A population with its own env params per member: one line per member, their mean, per-member baselines.
    pop = np.stack([returns, returns * 0.5, returns * 0.8], axis=1)
    fig = rl_figures.learning_curve_figure(turns, pop, behaviour=[1.0, 0.5, 0.7], oracle=2.9, member_labels=["D=0", "D=0.5", "D=1"])
    ax = fig.axes[0]
    assert len(ax.lines) == 3 + 1 + 3 + 1
    np.testing.assert_allclose(ax.lines[3].get_ydata(), pop.mean(axis=1))
    assert _legend_labels(fig)[:4] == ["D=0", "D=0.5", "D=1", "mean of 3 members"]
    assert "behaviour policy (per member, its colour)" in _legend_labels(fig)

    # The scripted baselines: one more horizontal line each, labelled with its return.
    fig = rl_figures.learning_curve_figure(turns, returns, behaviour=1.2, oracle=2.9, scripted={"hop_jump": 2.5, "helper (oracle)": 2.7})
    ax = fig.axes[0]
    assert [tuple(line.get_ydata()) for line in ax.lines[1:]] == [(1.2, 1.2), (2.9, 2.9), (2.5, 2.5), (2.7, 2.7)]
    assert _legend_labels(fig)[-2:] == ["hop_jump (2.50)", "helper (oracle) (2.70)"]
    assert_legends_hide_nothing(fig)


def test_checkpoint_cmni_figure_both_probe_sets(tmp_path):
    from test_play_and_figures import assert_legends_hide_nothing

    from mirror.runs import rl_figures

    x = np.arange(1, 11) * 1e5
    test = 0.001 + 0.006 * (1 - np.exp(-np.arange(10) / 3))
    onpolicy = test * 1.3
    p = np.where(np.arange(10) < 3, 0.4, 0.005)
    fig = rl_figures.checkpoint_cmni_figure(x, test, onpolicy, p_test=p, p_onpolicy=p, init_null=np.linspace(0.002, 0.003, 8), selected=x[6])
    ax = fig.axes[0]
    curves = [line for line in ax.lines if len(line.get_xdata()) == 10]
    assert len(curves) == 2
    np.testing.assert_allclose(curves[0].get_ydata(), test)
    np.testing.assert_allclose(curves[1].get_ydata(), onpolicy)
    assert len(ax.collections) == 4  # significant / not, for each probe set
    assert [len(c.get_offsets()) for c in ax.collections] == [7, 3, 7, 3]
    assert len(ax.patches) == 1  # the init-null band
    assert ax.get_ylabel() == "CMNI" and ax.get_xlabel() == "env turns"
    labels = _legend_labels(fig)
    assert "CMNI (a): test split" in labels and "CMNI (b): on-policy states" in labels
    assert "selected checkpoint (env turns 700,000)" in labels
    assert_legends_hide_nothing(fig)
    assert rl_figures.plot_checkpoint_cmni(tmp_path / "c.png", x, test, onpolicy).is_file()


def _sweep_rows():
    rows = []
    for d in (0.0, 0.5, 1.0):
        for veil in (0.0, 1.0):
            for w in (0.0, 0.5):
                for seed in range(3):
                    help_rate = 0.1 + 0.2 * d + 0.3 * w + 0.01 * seed - 0.05 * veil
                    rows.append({"dependency": d, "veil": veil, "partner_reward_weight": w, "seed": seed, "help_rate": help_rate,
                                 "help_when_partner_distressed": help_rate + 0.1, "cmni": 0.002 * (1 + d)})  # fmt: skip
    rows.append({**rows[0], "seed": 9, "help_rate": float("nan")})  # a failed trial is left out, not averaged in
    return rows


def test_help_by_dependency_figure_one_line_per_w_panels_per_veil(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from mirror.runs import rl_figures

    rows = _sweep_rows()
    d, mean, std, seeds = rl_figures.sweep_cells(rows, "help_rate")[(0.0, 0.5)]
    np.testing.assert_allclose(d, [0, 0.5, 1])
    np.testing.assert_allclose(mean, [0.26, 0.36, 0.46])  # 0.1 + 0.2 D + 0.15 + mean seed 0.01
    np.testing.assert_allclose(std, np.std([0, 0.01, 0.02]))
    np.testing.assert_array_equal(seeds, [3, 3, 3])

    fig = rl_figures.help_by_dependency_figure(rows)
    assert len(fig.axes) == 4  # (help rate, help when distressed) x (I = 0, I = 1)
    assert [ax.get_title() for ax in fig.axes] == ["veil I = 0", "veil I = 1"] * 2
    assert fig.axes[0].get_ylabel() == "help rate" and fig.axes[2].get_ylabel() == "help rate, partner in distress"
    for ax in fig.axes:
        assert len(ax.containers) == 2  # one errorbar line per w
        assert ax.get_xlabel() == "dependency D"
    line = fig.axes[0].containers[1].lines[0]
    np.testing.assert_allclose(line.get_ydata(), [0.26, 0.36, 0.46])
    assert _legend_labels(fig) == ["w = 0", "w = 0.5"]
    # (error bars are line collections, which assert_legends_hide_nothing does not read:
    # the legend is checked to sit outside every panel and inside the figure instead)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()
    box = fig.legends[0].get_window_extent(renderer)
    assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1
    assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)
    fig = rl_figures.help_by_dependency_figure(rows, metrics=("cmni",))
    assert len(fig.axes) == 2 and fig.axes[0].get_ylabel() == "CMNI (probe set a)"
    assert rl_figures.plot_help_by_dependency(tmp_path / "s.png", rows).is_file()


# ----------------------------------------------------------------------------- report.md


def _report_run(run_dir, *, networks_per_member=1):
    """A finished RL run's files, written by hand (two members: D = 0.5 and D = 1)."""
    run_dir.mkdir()
    members = [{"seed": 0, "lr": 3e-4, "partner_reward_weight": 0.0, "env": {"dependency": 0.5}},
               {"seed": 1, "lr": 3e-4, "partner_reward_weight": 0.5, "env": {}}]  # fmt: skip
    rl_run = {"sharing": "shared", "networks_per_member": networks_per_member, "num_inputs": 100, "members": members,
              "probe": {"games": 64, "turns": 30, "seed": 1}, "eval": {"games": 256, "turns": 60}}  # fmt: skip
    (run_dir / "rl_run.json").write_text(json.dumps(rl_run))
    (run_dir / "config.yaml").write_text("seed: 0\nenv:\n  veil: 1.0\nrl:\n  sharing: shared\n  updates: 3\n")
    summary = {"return_agent": [2.5, 2.0], "return_behaviour": [1.0, 1.1], "return_oracle": [2.4, 2.6], "return_hop_jump": 2.1,
               "return_helper": {"hop_jump": None, "oracle": None}, "return_lone_helper": {"hop_jump": None, "oracle": 2.4},
               "selected_update": 2, "return_agent_selected": 2.25, "help_rate": [0.21, 0.1],
               "help_when_partner_distressed": [0.64, None], "env_turns": 3 * 131072, "turns_per_s": 250000.0,
               "analysis_config": {"permutations": 200}, "init_null": [{"member": 0, "seeds": 32, "mean": 0.004, "std": 0.001, "p95": 0.0055, "max": 0.006},
                                                                       {"member": 1, "seeds": 32, "mean": 0.004, "std": 0.001, "p95": 0.0055, "max": 0.006}],
               "rl": {"onpolicy": [{"network": 0, "epoch": 2, "init_onpolicy_seeds": 32, "init_onpolicy_mean": 0.005, "init_onpolicy_std": 0.002},
                                   {"network": 1, "epoch": 2, "init_onpolicy_seeds": 32, "init_onpolicy_mean": 0.005, "init_onpolicy_std": 0.002}]}}  # fmt: skip
    (run_dir / "summary.json").write_text(json.dumps(summary))
    baselines = {"behaviour": {"return_per_player": [[0.9, 1.1], [1.0, 1.2]], "return": [1.0, 1.1], "help_rate": [0.05, 0.05], "help_when_partner_distressed": [0.1, 0.1], "episodes": [256, 256]},
                 "oracle": {"return_per_player": [[2.3, 2.5], [2.6, 2.6]], "return": [2.4, 2.6], "help_rate": [0.2, 0.25], "help_when_partner_distressed": [0.7, 0.8], "episodes": [256, 256]},
                 "hop_jump": {"return_per_player": [[2.0, 2.2], [2.1, 2.1]], "return": [2.1, 2.1], "help_rate": [0.0, 0.0], "help_when_partner_distressed": [0.0, 0.0], "help_when_partner_energy0": [0.0, None], "episodes": [256, 256]},
                 "lone_helper_oracle": {"return_per_player": [[2.2, 2.4], [2.5, 2.5]], "return": [2.3, 2.5], "help_rate": [0.3, 0.3], "help_when_partner_distressed": [0.75, 0.8], "help_when_partner_energy0": [0.9, 1.0], "episodes": [512, 512]}}  # fmt: skip
    (run_dir / "baselines.json").write_text(json.dumps(baselines))
    with open(run_dir / "rl_metrics.jsonl", "w") as fh:
        for u in (1, 2, 3):
            fh.write(json.dumps({"update": u, "env_turns": 131072 * u, "return_per_player": [[u, u + 0.5], [u - 1, u]], "entropy": 1.2, "approx_kl": None}) + "\n")
    with open(run_dir / "metrics.jsonl", "w") as fh:  # per checkpoint, per network: the eval games
        for u in (1, 2, 3):
            fh.write(json.dumps({"epoch": u, "env_turns": 131072 * u, "return_per_player": [[u, u + 0.5], [u - 1, u]]}) + "\n")
    header = ["checkpoint", "epoch", "member", "env_turns", "return_agent", "help_rate", "help_when_partner_distressed", "cmni", "p_permutation", "p_init", "selected", "cmni_onpolicy", "p_onpolicy", "p_init_onpolicy"]
    rows = [
        [0, 1, 0, 131072, 1.0, 0.1, 0.3, 0.002, 0.2, 0.8, 0, 0.003, 0.5, 0.9],
        [1, 2, 0, 262144, 2.0, 0.2, 0.5, 0.009, 0.004, 0.03, 1, 0.004, 0.3, 0.4],
        [2, 3, 0, 393216, 2.5, 0.21, 0.64, 0.007, 0.01, 0.06, 0, 0.011, 0.004, 0.03],
    ]
    rows += [[c, e, 1, t, r, h, d, x / 2, 0.6, 0.9, s, y, 0.7, 0.8] for c, e, _, t, r, h, d, x, _, _, s, y, _, _ in rows]
    with open(run_dir / "cmni.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return run_dir


def test_rl_report_from_the_run_files(tmp_path):
    from mirror.runs.rl_report import build_rl_report, write_rl_report

    run_dir = _report_run(tmp_path / "run")
    text = build_rl_report(run_dir)
    assert text.startswith("# RL run report: run")
    # Setup: members with their w, D (member override over env defaults) and I (config env).
    assert "| 0 | 0 | 0.0003 | 0.0 | 0.5 | 1.0 |" in text and "| 1 | 1 | 0.0003 | 0.5 | 1.0 | 1.0 |" in text
    assert "updates: 3; env turns: 393,216; 250,000 trained turns/s." in text
    # Returns: agents at the last checkpoint (metrics.jsonl), baselines per player, same eval games.
    assert "agents **[2.500, 2.000]**, behaviour policy [1.000, 1.100], label oracle [2.400, 2.600], hop_jump 2.100" in text
    assert "lone helper's own (hop_jump -, oracle 2.400)" in text
    assert "selection games: update 2, return 2.250 in the held-out report games" in text
    assert "| 1 | hop_jump | 2.100 | 2.100 | 2.100 |" in text and "| 0 | lone helper (oracle) | 2.200 | 2.400 | 2.300 |" in text
    assert "| 0 | agents (last checkpoint) | 3.000 | 3.500 | 3.250 |" in text
    assert "| 1 | behaviour policy | 1.000 | 1.200 | 1.100 |" in text
    assert "| 1 | label oracle | 2.600 | 2.600 | 2.600 |" in text
    # Help rates (a null is shown as '-').
    assert "| agents | [0.210, 0.100] | [0.640, -] | - |" in text
    assert "| label oracle | [0.200, 0.250] | [0.700, 0.800] | - |" in text
    assert "| lone helper (oracle) | [0.300, 0.300] | [0.750, 0.800] | [0.900, 1.000] |" in text
    assert "helper (hop_jump) |" not in text  # a baseline the run did not score has no row
    # CMNI: peak / final / selected on both probe sets; verdicts name the test and never exceed it.
    assert "| (a) test split | 0.009000 (2) | 0.007000 (3) | 0.009000 (2) |" in text
    assert "| (b) on-policy | 0.011000 (3) | 0.011000 (3) | 0.004000 (2) |" in text
    assert "### Network 1 (member 1)" in text
    # The random-init verdict leads; the permutation test is read as "the groups' activations differ".
    assert ("(a) at the selected checkpoint (update 2): CMNI 0.009000, above the random-initialisation null (p = 0.03, rank among 32 random "
            "actor-critic initialisations (orthogonal init), whose CMNI is 0.004000 ± 0.001000); the groups' activations differ (p = 0.004, "
            "permutation test over scenario labels, 200 permutations; untrained networks pass this too)") in text  # fmt: skip
    assert ("(b) at the same checkpoint: CMNI 0.004000, not distinguishable from the random-initialisation null (p = 0.4, rank among the same 32 "
            "random initialisations on the same on-policy rows, whose CMNI there is 0.005000 ± 0.002000); no difference between the groups' "
            "activations shown (p = 0.3, game-wise permutation test") in text  # fmt: skip
    assert "no difference between the groups' activations shown (p = 0.6" in text  # network 1
    assert "above the permutation null" not in text
    assert "![return against env turns](figures/learning_curve.png)" in text
    assert "figures/cmni_checkpoints_m0.png" in text and "figures/cmni_checkpoints_m1.png" in text
    assert "```yaml\nseed: 0" in text
    path = write_rl_report(run_dir)
    assert path == run_dir / "report.md" and path.read_text() == text


def test_rl_report_before_the_analysis(tmp_path):
    from mirror.runs.rl_report import build_rl_report

    run_dir = _report_run(tmp_path / "run")
    (run_dir / "cmni.csv").unlink()
    (run_dir / "baselines.json").unlink()
    text = build_rl_report(run_dir)
    assert "No analysis yet (cmni.csv is missing)." in text
    assert "behaviour policy |" not in text.split("## Help")[1]  # no baseline rows without baselines.json


def test_rl_report_names_independent_networks_by_player(tmp_path):
    from mirror.runs.rl_report import build_rl_report, network_name

    assert network_name(3, 2) == "member 1, Toad's network" and network_name(2, 2) == "member 1, Frog's network"
    run_dir = _report_run(tmp_path / "run", networks_per_member=2)  # cmni.csv has networks 0 and 1 only
    text = build_rl_report(run_dir)
    assert "4 network(s) analysed" in text and "one network per player" in text
    assert "### Network 1 (member 0, Toad's network)" in text
    assert "### Network 2" not in text  # no rows in cmni.csv: nothing to report


def test_rl_files_read_both_per_member_layouts(tmp_path):
    from mirror.runs.checkpoints import is_rl_run
    from mirror.runs.rl_files import baseline, read_jsonl, returns_per_member

    path = tmp_path / "rl_metrics.jsonl"
    path.write_text('{"update": 1, "env_turns": 10, "return_per_player": [[1, 2], [3, null]]}\n{"update": 2, "env_turns": 20, "return_per_player": [[2, 2], [4, 4]]}\n{"update": 3, "env')
    lines = read_jsonl(path)
    assert [line["update"] for line in lines] == [1, 2]  # the torn last line is skipped
    returns = np.stack([returns_per_member(line["return_per_player"], 2).mean(-1) for line in lines])
    np.testing.assert_array_equal(returns, [[1.5, np.nan], [2.0, 4.0]])
    np.testing.assert_array_equal(returns_per_member([1.0, 3.0], 1).mean(-1), [2.0])
    # baselines.json: lists per member, a list of one dict per member, or scalars for one member.
    as_lists = {"behaviour": {"return_per_player": [[1, 2], [3, 4]], "help_rate": [0.1, 0.2]}}
    as_dicts = {"behaviour": [{"return_per_player": [1, 2], "help_rate": 0.1}, {"return_per_player": [3, 4], "help_rate": 0.2}]}
    for baselines in (as_lists, as_dicts):
        np.testing.assert_array_equal(baseline(baselines, "behaviour", "return", 2), [1.5, 3.5])  # from return_per_player
        np.testing.assert_array_equal(baseline(baselines, "behaviour", "help_rate", 2), [0.1, 0.2])
        assert baseline(baselines, "oracle", "return", 2) is None and baseline(baselines, "behaviour", "episodes", 2) is None
    np.testing.assert_array_equal(baseline({"oracle": {"return": 2.5}}, "oracle", "return", 3), [2.5, 2.5, 2.5])
    assert baseline(None, "oracle", "return", 1) is None
    assert not is_rl_run(tmp_path)
    (tmp_path / "rl_run.json").write_text("{}")
    assert is_rl_run(tmp_path)


def test_rl_selected_checkpoint_is_the_metadata_best_epoch(tmp_path):
    from mirror.base.errors import TrainError
    from mirror.runs.analysis import rl_metrics, rl_selected
    from mirror.runs.checkpoints import LoadedRun

    def run(best, networks, **line):
        metadata = [{"epoch": u, "best_epoch": best, **line} for u in UPDATES]
        return LoadedRun(None, None, np.asarray(UPDATES), metadata, [[5]] * networks, (5,), "", [None] * networks, tmp_path, "rl")

    np.testing.assert_array_equal(rl_selected(run(4, 2), "best", 2), [1, 1])  # one for the run
    np.testing.assert_array_equal(rl_selected(run([6, 2], 2), "best", 1), [2, 0])  # per network
    np.testing.assert_array_equal(rl_selected(run([2, 6], 4), "best", 2), [0, 0, 2, 2])  # per member: Frog's and Toad's network
    np.testing.assert_array_equal(rl_selected(run(4, 2), "last", 2), [2, 2])
    np.testing.assert_array_equal(rl_selected(run(4, 2), 2, 2), [0, 0])
    with pytest.raises(TrainError, match="network 1 .* no best checkpoint"):
        rl_selected(run([2, None], 2), "best", 1)
    with pytest.raises(TrainError, match="best_epoch has 3 values for 2 networks"):
        rl_selected(run([2, 2, 2], 2), "best", 1)
    metrics = rl_metrics(run(4, 4, env_turns=100, return_agent=[1.0, 2.0]))
    np.testing.assert_array_equal(metrics["env_turns"], np.full((3, 4), 100.0))
    np.testing.assert_array_equal(metrics["return_agent"][0], [1.0, 1.0, 2.0, 2.0])
    assert np.isnan(metrics["help_rate"]).all()
