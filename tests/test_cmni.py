"""The vectorised CMNI, moments and null baselines against the NumPy reference of spec §7
(`test_cmni_reference.py`), a hand-computed example and scipy.stats."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_cmni_reference import hand_example, reference_cmni, reference_moments

from mirror.agents.mlp import MLP, pad_params, unit_masks
from mirror.analysis.cmni import (
    all_activations_t,
    cmni,
    empirical_p_value,
    init_null,
    init_params_batch,
    neuron_layout,
    permutation_null,
    permuted_groups,
)
from mirror.analysis.config import AnalysisConfig
from mirror.analysis.groups import BOTH, EXCLUDED, FROG, NONE, TOAD, cmni_groups, leak_scenario
from mirror.analysis.moments import scenario_moments

CHECKPOINTS, MEMBERS = 3, 2


def stacked(seed: int, widths=(17, 17), shape=(CHECKPOINTS, MEMBERS)):
    """Glorot-uniform models with small random biases stacked [*shape, ...] (stand-ins for
    checkpoints x members; drawn with NumPy, which is much quicker than compiling flax's init)."""
    rng = np.random.default_rng(seed)
    params, fan_in = {}, 100
    for i, width in enumerate(list(widths) + [4]):
        limit = np.sqrt(6 / (fan_in + width))
        name = f"hidden_{i}" if i < len(widths) else "output"
        params[name] = {
            "kernel": jnp.asarray(rng.uniform(-limit, limit, shape + (fan_in, width)), jnp.float32),
            "bias": jnp.asarray(rng.normal(0, 0.05, shape + (width,)), jnp.float32),
        }
        fan_in = width
    return params


def model_at(params, index):
    return jax.tree.map(lambda a: np.asarray(a[index]), params)


def dataset_arrays(dataset):
    return dataset.inputs, dataset.scenarios, dataset.idle_shown, cmni_groups(dataset.scenarios, dataset.idle_shown)


def assert_matches_reference(result, index, ref, *, mask=None):
    """One model of a CMNIResult against reference_cmni, to 1e-6."""
    real = np.asarray(result.neuron_mask[index])
    assert int(result.neurons[index]) == ref["neurons"] == real.sum()
    np.testing.assert_allclose(float(result.cmni[index]), ref["cmni"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(float(result.mne[index]), ref["mne"], atol=1e-6 * ref["neurons"], rtol=0)
    np.testing.assert_allclose(np.asarray(result.layer_cmni[index]), ref["layer_cmni"], atol=1e-6, rtol=0)
    mu = np.asarray(result.mu[index])[real]
    np.testing.assert_allclose(mu, np.stack([ref["mu_none"], ref["mu_frog"], ref["mu_toad"]], 1), atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(result.d_frog[index])[real], ref["d_frog"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.asarray(result.d_toad[index])[real], ref["d_toad"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.asarray(result.mns[index])[real], ref["mns"], atol=1e-6, rtol=0)
    assert np.all(np.asarray(result.mns[index])[~real] == 0)


# ----------------------------------------------------------------------------- rows and model


def test_groups_follow_spec_7():
    scenarios = np.array([0, 0, 1, 1, 2, 2, 3, 3], np.int8)
    idle = np.array([[0, 0], [1, 1], [0, 1], [1, 0], [1, 0], [0, 1], [1, 1], [0, 0]], bool)
    expected = [NONE, NONE, FROG, EXCLUDED, TOAD, EXCLUDED, BOTH, BOTH]
    np.testing.assert_array_equal(cmni_groups(scenarios, idle), expected)


def test_transposed_forward_equals_the_flax_model():
    params = stacked(0, shape=(4,))
    x = np.random.default_rng(0).integers(0, 10, (300, 100)).astype(np.int8)
    masks = [jnp.ones((4, 17), bool)] * 2
    fast = jax.vmap(lambda p, m: all_activations_t(p, m, jnp.asarray(x, jnp.float32).T, "relu"))(params, masks)
    apply = jax.jit(MLP((17, 17)).apply)
    for i in range(4):
        _, acts = apply({"params": model_at(params, i)}, x)
        np.testing.assert_allclose(np.asarray(fast[i]).T, np.concatenate(acts, 1), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- CMNI


def test_hand_example_is_exact():
    params, inputs, scenarios, idle_shown, expected = hand_example()
    batched = jax.tree.map(lambda a: a[None], params)
    result = cmni(batched, inputs, cmni_groups(scenarios, idle_shown), chunk_rows=4)  # 2 chunks, 1 padded row
    assert float(result.cmni[0]) == pytest.approx(expected["cmni"], abs=1e-7)
    assert float(result.mne[0]) == pytest.approx(expected["mne"], abs=1e-6)
    assert int(result.neurons[0]) == expected["neurons"]
    np.testing.assert_allclose(np.asarray(result.layer_cmni[0]), expected["layer_cmni"], atol=1e-7)
    np.testing.assert_allclose(np.asarray(result.mns[0]), expected["mns"], atol=1e-7)
    np.testing.assert_array_equal(np.asarray(result.counts), [2, 1, 1])


def test_every_checkpoint_and_member_matches_the_reference(tiny_dataset):
    inputs, scenarios, idle, groups = dataset_arrays(tiny_dataset)
    params = stacked(1)
    result = cmni(params, inputs, groups, chunk_rows=1000)
    assert result.cmni.shape == (CHECKPOINTS, MEMBERS) and result.mu.shape == (CHECKPOINTS, MEMBERS, 38, 3)
    for c in range(CHECKPOINTS):
        for m in range(MEMBERS):
            ref = reference_cmni(model_at(params, (c, m)), inputs, scenarios, idle)
            assert_matches_reference(result, (c, m), ref)
    assert np.all(np.asarray(result.cmni) > 0)  # distress codes move even untrained ReLUs


def test_chunk_size_does_not_change_the_result(tiny_dataset):
    inputs, _, _, groups = dataset_arrays(tiny_dataset)
    params = stacked(2, shape=(2,))
    a = cmni(params, inputs, groups, chunk_rows=317)
    b = cmni(params, inputs, groups, chunk_rows=2048)
    np.testing.assert_allclose(np.asarray(a.cmni), np.asarray(b.cmni), atol=1e-7)
    np.testing.assert_allclose(np.asarray(a.mu), np.asarray(b.mu), atol=1e-6, rtol=1e-6)


def test_padded_units_are_not_neurons(tiny_dataset):
    inputs, scenarios, idle, groups = dataset_arrays(tiny_dataset)
    widths, padded = [(17, 17), (9, 5)], (17, 17)
    true = [stacked(10 + i, w, shape=()) for i, w in enumerate(widths)]
    params = jax.tree.map(lambda *a: jnp.stack(a), *[pad_params(p, w, padded) for p, w in zip(true, widths)])
    masks = unit_masks(widths, padded)
    result = cmni(params, inputs, groups, unit_mask=masks, chunk_rows=1024)
    np.testing.assert_array_equal(np.asarray(result.neurons), [38, 18])
    np.testing.assert_array_equal(np.asarray(result.layer_neurons), [[17, 17, 4], [9, 5, 4]])
    for m, w in enumerate(widths):
        ref = reference_cmni(jax.tree.map(np.asarray, true[m]), inputs, scenarios, idle)
        assert_matches_reference(result, m, ref)
    # padded units whose activation would not be 0 (sigmoid(0) = 1/2) are masked too
    sig = cmni(params, inputs, groups, unit_mask=masks, activation="sigmoid", chunk_rows=1024)
    ref = reference_cmni(jax.tree.map(np.asarray, true[1]), inputs, scenarios, idle, activation="sigmoid")
    assert_matches_reference(sig, 1, ref)


def test_layout_names_every_neuron():
    layer, unit = neuron_layout(stacked(0, widths=(5, 3), shape=(2,)))
    np.testing.assert_array_equal(layer, [0] * 5 + [1] * 3 + [2] * 4)
    np.testing.assert_array_equal(unit, [0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3])


# ----------------------------------------------------------------------------- the leak


def test_leak_is_off_by_default_and_feeds_the_scenario_into_input_98(tiny_dataset):
    assert AnalysisConfig().leak_scenario is False
    inputs, scenarios, idle, groups = dataset_arrays(tiny_dataset)
    assert np.all(inputs[:, 98] == 0)  # the score column is always 0 in the model inputs
    leaked = leak_scenario(inputs, scenarios)
    np.testing.assert_array_equal(leaked[:, 98], scenarios)
    assert np.all(inputs[:, 98] == 0)  # a copy
    # A unit that only reads input 98 is blind without the leak and a perfect
    # "mirror neuron" with it: mu = 0, 1, 2 in groups none, frog, toad.
    kernel = np.zeros((100, 1), np.float32)
    kernel[98, 0] = 1.0
    probe = {
        "hidden_0": {"kernel": kernel, "bias": np.zeros(1, np.float32)},
        "output": {"kernel": np.zeros((1, 4), np.float32), "bias": np.zeros(4, np.float32)},
    }
    batched = jax.tree.map(lambda a: a[None], probe)
    clean, leaky = cmni(batched, inputs, groups), cmni(batched, leaked, groups)
    assert float(clean.mns[0, 0]) == 0.0
    np.testing.assert_allclose(np.asarray(leaky.mu[0, 0]), [0.0, 1.0, 2.0])
    assert float(leaky.mns[0, 0]) == pytest.approx(1.0) and float(leaky.cmni[0]) == pytest.approx(1 / 5)
    # and a random model: the leak changes the CMNI, and matches the reference on the leaked inputs
    params = stacked(3, shape=(1,))
    a, b = cmni(params, inputs, groups), cmni(params, leaked, groups)
    assert abs(float(a.cmni[0]) - float(b.cmni[0])) > 1e-4
    assert_matches_reference(b, 0, reference_cmni(model_at(params, 0), leaked, scenarios, idle))


# ----------------------------------------------------------------------------- moments


def test_moments_equal_scipy_stats(tiny_dataset):
    inputs, scenarios, idle, groups = dataset_arrays(tiny_dataset)
    params = stacked(4, shape=(2,))
    moments = scenario_moments(params, inputs, groups, chunk_rows=3000)
    assert moments.mean.shape == (2, 38, 4)
    for m in range(2):
        ref = reference_moments(model_at(params, m), inputs, scenarios, idle)
        np.testing.assert_allclose(np.asarray(moments.mean[m]), ref["mean"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(moments.variance[m]), ref["variance"], rtol=1e-4, atol=1e-7)
        # Stated tolerance: 1e-3 relative or absolute (float32 central sums over ~10^4 rows).
        for stat in ("skewness", "kurtosis"):
            ours = np.asarray(getattr(moments, stat)[m])
            np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref[stat]), err_msg=stat)
            np.testing.assert_allclose(ours, ref[stat], rtol=1e-3, atol=1e-3, equal_nan=True, err_msg=stat)


def test_moments_of_a_dead_neuron_are_nan_like_scipy():
    params, inputs, scenarios, idle_shown, _ = hand_example()
    params["hidden_0"]["bias"] = np.array([0.0, -1000.0], np.float32)  # h1 never fires
    moments = scenario_moments(jax.tree.map(lambda a: a[None], params), inputs, cmni_groups(scenarios, idle_shown))
    assert np.all(np.asarray(moments.variance[0, 1]) == 0)
    assert np.all(np.isnan(np.asarray(moments.skewness[0, 1]))) and np.all(np.isnan(np.asarray(moments.kurtosis[0, 1])))


# ----------------------------------------------------------------------------- null baselines


def test_p_value_counts_ties_and_adds_one():
    null = jnp.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.5, 0.5]])
    np.testing.assert_allclose(np.asarray(empirical_p_value(jnp.array([0.3, 0.6]), null)), [3 / 5, 1 / 5])


def test_each_permutation_equals_the_cmni_of_the_permuted_labels(tiny_dataset):
    inputs, _, _, groups = dataset_arrays(tiny_dataset)
    params = stacked(5, shape=(2, 2))
    seed, k = 7, 6
    null = permutation_null(seed, params, inputs, groups, permutations=k, chunk_rows=2000)
    assert null.shape == (2, 2, k)
    keep = (groups >= NONE) & (groups <= TOAD)
    x, g = inputs[keep], groups[keep]
    shuffled = permuted_groups(seed, g, k)
    for row in shuffled:  # each a permutation of the CMNI rows' groups
        np.testing.assert_array_equal(np.bincount(row, minlength=3), np.bincount(g, minlength=3))
    assert not np.array_equal(shuffled[0], shuffled[1])
    for i in range(3):
        again = cmni(params, x, shuffled[i], chunk_rows=2000)
        np.testing.assert_allclose(np.asarray(null[..., i]), np.asarray(again.cmni), atol=1e-6)
    assert np.unique(np.asarray(null)).size == null.size  # different permutations, different CMNI


def test_a_real_signal_beats_every_permutation_and_noise_does_not(tiny_dataset):
    inputs, scenarios, _, groups = dataset_arrays(tiny_dataset)
    k = 49
    leaked = leak_scenario(inputs, scenarios)
    probe = stacked(6, shape=(8,))
    probe["hidden_0"]["kernel"] = probe["hidden_0"]["kernel"].at[:, 98, :].set(1.0)  # every unit reads the leak
    observed = cmni(probe, leaked, groups).cmni
    p = empirical_p_value(observed, permutation_null(0, probe, leaked, groups, permutations=k))
    np.testing.assert_allclose(np.asarray(p), 1 / (k + 1))
    # Labels that carry no information about the rows: p-values spread over (0, 1].
    shuffled = np.random.default_rng(0).permutation(groups)
    params = stacked(7, shape=(8,))
    observed = cmni(params, inputs, shuffled).cmni
    p = np.asarray(empirical_p_value(observed, permutation_null(1, params, inputs, shuffled, permutations=k)))
    assert p.max() > 0.3 and np.median(p) > 0.1


def test_init_null_is_the_cmni_of_fresh_initialisations(tiny_dataset):
    inputs, _, _, groups = dataset_arrays(tiny_dataset)
    key = jax.random.key(3)
    null = init_null(key, (17, 17), inputs, groups, seeds=5)
    assert null.shape == (5,) and np.all(np.isfinite(np.asarray(null)))
    fresh = init_params_batch(key, 5, (17, 17), num_inputs=inputs.shape[1])
    np.testing.assert_allclose(np.asarray(null), np.asarray(cmni(fresh, inputs, groups).cmni))
    assert np.unique(np.asarray(null)).size == 5
    # padding matches pad_params
    one = jax.tree.map(lambda a: a[2], fresh)
    padded = init_params_batch(key, 5, (17, 17), num_inputs=inputs.shape[1], padded_to=(20, 18))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[2], b), padded, pad_params(one, (17, 17), (20, 18)))
