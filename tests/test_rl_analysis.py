"""The analysis layer of RL runs: on-policy CMNI (every checkpoint its own probe rows),
the actor-critic init null, `analyse_run` on an RL run, the RL figures and report.md."""

import json

import jax
import numpy as np
import pytest

from mirror.agents.actor_critic import cmni_params, init_actor_critic
from mirror.agents.mlp import init_params, pad_params, unit_masks
from mirror.analysis.cmni import ACTOR_CRITIC_INIT, cmni, init_params_batch, permutation_null
from mirror.analysis.groups import cmni_groups
from mirror.analysis.onpolicy import onpolicy_cmni, onpolicy_permuted_groups
from mirror.data.processing import model_inputs
from mirror.env.constants import layout_of

W = 4
F = 3 * W + 4  # 16 codes at world width 4
LAYOUT = layout_of(F)


def _stack(trees):
    return jax.tree.map(lambda *a: np.stack(a), *trees)


def random_probes(rng, lead, rows):
    """Raw own views (the masked columns hold junk, as a real observation does), scenarios
    0-3 and idle flags, [*lead, rows, ...]."""
    inputs = rng.integers(0, 9, lead + (rows, F)).astype(np.int8)
    scenarios = rng.integers(0, 4, lead + (rows,)).astype(np.int8)
    idle = rng.random(lead + (rows, 2)) < 0.7
    return inputs, scenarios, idle


# ----------------------------------------------------------------------------- on-policy CMNI


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
            np.testing.assert_allclose(got.layer_cmni[c, n], want.layer_cmni, rtol=1e-5, atol=1e-8)
            np.testing.assert_array_equal(got.counts[c, n], want.counts)
    assert (got.cmni > 0).sum() >= 3 and len(np.unique(got.cmni)) == 4  # a non-trivial comparison
    assert np.isnan(got.p_permutation).all() and got.null.shape == (checkpoints, networks, 0)


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
    change nothing. Checkpoint 1: toad mean below none -> 0. Checkpoint 2: no toad rows -> NaN."""
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


def test_onpolicy_cmni_rejects_mismatched_probe_shapes():
    params = jax.tree.map(lambda a: a[None, None], _probe_unit_model([1, 0, 0, 0]))
    inputs = np.zeros((1, 1, 5, F), np.int8)
    with pytest.raises(ValueError, match="idle_shown"):
        onpolicy_cmni(params, None, inputs, np.zeros((1, 1, 5), np.int8), np.zeros((1, 1, 5), bool), activation="relu")
    with pytest.raises(ValueError, match="scenarios"):
        onpolicy_cmni(params, None, inputs, np.zeros((1, 2, 5), np.int8), np.zeros((1, 2, 5, 2), bool), activation="relu")


def test_onpolicy_permutations_shuffle_each_models_cmni_rows_only():
    rng = np.random.default_rng(3)
    groups = rng.integers(-1, 4, (4, 50)).astype(np.int8)
    shuffled = onpolicy_permuted_groups(7, groups, 20)
    assert shuffled.shape == (4, 20, 50)
    outside = (groups < 0) | (groups > 2)
    for m in range(4):
        for k in range(20):
            np.testing.assert_array_equal(shuffled[m, k, outside[m]], groups[m, outside[m]])
            np.testing.assert_array_equal(np.sort(shuffled[m, k, ~outside[m]]), np.sort(groups[m, ~outside[m]]))
    assert (shuffled != groups[:, None]).any(axis=2).all()  # every permutation moved something
    np.testing.assert_array_equal(shuffled, onpolicy_permuted_groups(7, groups, 20))


def test_onpolicy_permutation_null_equals_cmni_on_the_shuffled_labels():
    """Each null CMNI is the plain `cmni()` of that model on its rows with the permuted labels;
    p = (1 + #null >= observed) / (K + 1)."""
    rng = np.random.default_rng(4)
    checkpoints, networks, rows, k = 1, 2, 120, 6
    keys = jax.random.split(jax.random.key(5), checkpoints * networks)
    params = jax.tree.map(lambda a: a.reshape((checkpoints, networks) + a.shape[1:]), _stack([init_params(key, (6,), num_inputs=F) for key in keys]))
    inputs, scenarios, idle = random_probes(rng, (checkpoints, networks), rows)
    got = onpolicy_cmni(params, None, inputs, scenarios, idle, activation="relu", chunk_rows=32, permutations=k, seed=11)
    groups = cmni_groups(scenarios.reshape(-1), idle.reshape(-1, 2)).reshape(-1, rows)
    shuffled = onpolicy_permuted_groups(11, groups, k).reshape(checkpoints, networks, k, rows)
    for c in range(checkpoints):
        for n in range(networks):
            one = jax.tree.map(lambda a: a[c, n], params)
            x = np.asarray(model_inputs(inputs[c, n]))
            want = [float(cmni(one, x, shuffled[c, n, i], chunk_rows=32).cmni) for i in range(k)]
            np.testing.assert_allclose(got.null[c, n], want, rtol=1e-5, atol=1e-8)
            assert got.p_permutation[c, n] == pytest.approx((1 + np.sum(np.asarray(want, np.float32) >= got.cmni[c, n])) / (k + 1))


def test_onpolicy_permutation_p_value_of_a_planted_signal_is_minimal():
    """The hand-checked model on many rows: its CMNI (0.4) beats every shuffle of the labels."""
    params = jax.tree.map(lambda a: a[None, None], _probe_unit_model([1, 0, 0, 0]))
    scen = np.repeat(np.asarray([0, 1, 2], np.int8), 40)
    energies = np.repeat([1, 3, 2], 40)
    got = onpolicy_cmni(
        params, None, _rows(energies, 0)[None, None], scen[None, None], np.ones((1, 1, 120, 2), bool), activation="relu", permutations=49, seed=0
    )
    np.testing.assert_allclose(got.cmni[0, 0], 0.4, rtol=1e-6)
    assert got.p_permutation[0, 0] == pytest.approx(1 / 50)
    assert np.all(got.null[0, 0] < 0.4)


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
    glorot = init_params_batch(key, 1, (5, 4), num_inputs=F)["hidden_1"]["kernel"][0]
    assert not np.allclose(glorot.T @ glorot, 2 * np.eye(4), atol=1e-2)
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
