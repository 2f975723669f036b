"""The scale-free and composition-matched CMNIs (`mirror.analysis.variants`) against a
plain NumPy brute force, their invariances, and their permutation nulls."""

import jax
import numpy as np
import pytest
from test_cmni import stacked
from test_cmni_reference import reference_activations

from mirror.analysis.cmni import cmni, permutation_null, permuted_groups
from mirror.analysis.config import AnalysisConfig
from mirror.analysis.variants import (
    ABSOLUTE_FLOOR,
    RELATIVE_FLOOR,
    VARIANTS,
    cmni_variants,
    energy_edges,
    match_cells,
    match_weights,
    stratified_permutations,
    variant_permutation_null,
)
from mirror.base.errors import ConfigError
from mirror.env.constants import layout_of

F = 100  # 3W + 4 inputs at W = 32
ENERGY = layout_of(F).energy
# One shape for every model stack, row set and chunking below: each new shape costs a compilation.
WIDTHS, MODELS, ROWS, CHUNK, BINS, K = (5, 4), (2, 2), 240, 64, 2, 3
NEURONS = sum(WIDTHS) + 4


def rows(seed: int = 0):
    """Random model inputs (energy 0-20), oracle labels and CMNI groups (-1..3); the groups
    are the same for every seed (so is the number of CMNI rows, hence the shapes)."""
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, 10, (ROWS, F)).astype(np.int8)
    inputs[:, ENERGY] = rng.integers(0, 21, ROWS)
    labels = rng.integers(0, 4, ROWS).astype(np.int8)
    groups = np.random.default_rng(99).integers(-1, 4, ROWS).astype(np.int8)
    return inputs, labels, groups


def models(seed: int):
    return stacked(seed, widths=WIDTHS, shape=MODELS)


# ----------------------------------------------------------------------------- brute force


def brute_force(params, inputs, labels, groups, bins, perm_groups=None):
    """Spec §7's CMNI and both variants for one model, neuron by neuron, in float64."""
    keep = (groups >= 0) & (groups < 3)
    acts = np.concatenate(reference_activations(params, inputs[keep]), axis=1)  # [rows, neurons]
    layer = np.concatenate([np.full(a.shape[1], i) for i, a in enumerate(reference_activations(params, inputs[:1]))])
    g = groups[keep] if perm_groups is None else perm_groups
    energy = inputs[keep, ENERGY].astype(float)
    base_energy = inputs[groups == 0, ENERGY].astype(float)
    edges = np.unique(np.quantile(base_energy, np.arange(1, bins) / bins)) if bins > 1 else np.zeros(0)
    cell = [(int(lab), int(np.sum(e > edges))) for lab, e in zip(labels[keep], energy)]
    cells = sorted(set(cell))
    in_all = [c for c in cells if all(any(cc == c and gg == k for cc, gg in zip(cell, g)) for k in range(3))]
    base_in = [c for c, gg in zip(cell, g) if gg == 0 and c in in_all]
    p0 = {c: base_in.count(c) / len(base_in) for c in in_all}
    std = acts.std(axis=0)
    out = {"cmni": 0.0, "cmni_scaled": 0.0, "cmni_matched": 0.0}
    n = acts.shape[1]
    for j in range(n):
        a = acts[:, j]
        mu = [a[g == k].mean() for k in range(3)]
        matched = [sum(p0[c] * a[(g == k) & np.array([cc == c for cc in cell])].mean() for c in in_all) for k in range(3)]
        live = [std[i] for i in range(n) if layer[i] == layer[j] and std[i] > 0]
        s = max(std[j], RELATIVE_FLOOR * float(np.median(live)) if live else 0.0, ABSOLUTE_FLOOR)
        for name, m, div in (("cmni", mu, 1.0), ("cmni_scaled", mu, s), ("cmni_matched", matched, 1.0)):
            df, dt = (m[1] - m[0]) / div, (m[2] - m[0]) / div
            out[name] += min(df, dt) / n if df > 0 and dt > 0 else 0.0
    return out


def test_both_variants_match_the_brute_force_on_random_models():
    params = models(1)
    inputs, labels, groups = rows(0)
    cells = match_cells(inputs, labels, groups, BINS)
    got = cmni_variants(params, inputs, groups, cells, chunk_rows=CHUNK)
    assert set(got.values) == set(VARIANTS) and got.terms["cmni_scaled"].shape == MODELS + (NEURONS,)
    np.testing.assert_allclose(got.values["cmni"], cmni(params, inputs, groups, chunk_rows=CHUNK).cmni, rtol=1e-6)
    for index in np.ndindex(*MODELS):
        want = brute_force(jax.tree.map(lambda a: np.asarray(a[index]), params), inputs, labels, groups, BINS)
        for name in VARIANTS:
            np.testing.assert_allclose(float(got.values[name][index]), want[name], rtol=1e-4, atol=1e-7, err_msg=name)


def test_matched_variant_is_nan_without_labels():
    params = models(2)
    inputs, _, groups = rows(1)
    got = cmni_variants(params, inputs, groups, None, chunk_rows=CHUNK)
    assert np.isnan(got.values["cmni_matched"]).all() and np.isfinite(got.values["cmni_scaled"]).all() and got.matching == {}
    null = variant_permutation_null(0, params, inputs, groups, None, permutations=K, chunk_rows=CHUNK)
    assert np.isnan(null["cmni_matched"]).all() and np.isfinite(null["cmni_scaled"]).all()


# ----------------------------------------------------------------------------- scale invariance


@pytest.mark.parametrize("layer", ["hidden_0", "hidden_1", "output"])
def test_scaling_one_layer_leaves_its_scaled_terms_and_scales_its_raw_terms(layer):
    """Multiplying one layer's kernel and bias by c > 0 (ReLU is positively homogeneous)
    multiplies that layer's raw terms by c and leaves its cmni_scaled terms unchanged."""
    params = models(3)
    inputs, labels, groups = rows(2)
    cells = match_cells(inputs, labels, groups, BINS)
    which = {"hidden_0": slice(0, 5), "hidden_1": slice(5, 9), "output": slice(9, 13)}[layer]
    before = cmni_variants(params, inputs, groups, cells, chunk_rows=CHUNK)
    assert np.asarray(before.terms["cmni"])[..., which].any()  # something to scale
    for c in (3.7, 0.02):
        scaled = {k: dict(v) for k, v in params.items()}
        scaled[layer] = {k: v * c for k, v in params[layer].items()}
        after = cmni_variants(scaled, inputs, groups, cells, chunk_rows=CHUNK)
        np.testing.assert_allclose(np.asarray(after.terms["cmni"])[..., which], c * np.asarray(before.terms["cmni"])[..., which], rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(np.asarray(after.terms["cmni_scaled"])[..., which], np.asarray(before.terms["cmni_scaled"])[..., which], rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(np.asarray(after.scale)[..., which], c * np.asarray(before.scale)[..., which], rtol=1e-4)


def test_floor_keeps_a_nearly_dead_neuron_and_a_dead_layer_finite():
    """A unit active on one row has a tiny pooled std; the relative floor bounds its term.
    A layer whose units never fire scores 0, not NaN."""
    params = jax.tree.map(np.array, models(4))
    params["hidden_1"]["bias"][:] = -1e3  # the second layer never fires
    inputs, labels, groups = rows(3)
    params["hidden_0"]["kernel"][..., 0] = 0.0
    params["hidden_0"]["kernel"][..., ENERGY, 0] = 1e-4
    params["hidden_0"]["bias"][..., 0] = -19.5e-4  # unit 0 fires (5e-5) only on the rows with energy 20
    keep = (groups >= 0) & (groups < 3)
    inputs[:, ENERGY] = np.minimum(inputs[:, ENERGY], 19)
    inputs[np.flatnonzero(groups == 1)[0], ENERGY] = 20  # one Frog-distress row
    got = cmni_variants(params, inputs, groups, match_cells(inputs, labels, groups, BINS), chunk_rows=CHUNK)
    scale = np.asarray(got.scale)
    assert np.isfinite(got.values["cmni_scaled"]).all()
    assert np.all(np.asarray(got.terms["cmni_scaled"])[..., 5:9] == 0)
    np.testing.assert_allclose(scale[..., 5:9], ABSOLUTE_FLOOR)
    for index in np.ndindex(*MODELS):
        std = reference_activations(jax.tree.map(lambda a: a[index], params), inputs[keep])[0].std(axis=0)
        floor = RELATIVE_FLOOR * np.median(std[std > 0])
        assert std[0] < floor  # the floor binds on unit 0 ...
        np.testing.assert_allclose(scale[index][:5], np.maximum(std, floor), rtol=1e-3)  # ... and nowhere else


# ----------------------------------------------------------------------------- matching


def test_cells_follow_label_and_baseline_energy_quantiles():
    inputs = np.zeros((8, F), np.int8)
    inputs[:, ENERGY] = [0, 0, 0, 10, 20, 0, 10, 20]
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    groups = np.array([0, 0, 0, 0, 1, 2, -1, 3])
    # Baseline energies 0, 0, 0, 10: the quartiles 0, 0, 2.5 -> edges [0, 2.5]; bins (-inf, 0], (0, 2.5], (2.5, inf)
    np.testing.assert_allclose(energy_edges(inputs, groups, 4), [0.0, 2.5])
    np.testing.assert_array_equal(match_cells(inputs, labels, groups, 4), [0, 4, 8, 14, 2, 4, -1, -1])
    with pytest.raises(ValueError, match="labels must be in 0..3"):
        match_cells(inputs, labels + 1, groups, 4)


def test_weights_ess_and_coverage_by_hand():
    # Cells 0, 1 hold rows of every group; cell 2 only baseline rows (outside the support).
    groups = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    cells = np.array([0, 0, 0, 1, 2, 0, 1, 1, 0, 0, 0, 1])
    table, info = match_weights(groups, cells, 3)
    # p0(.|S) = (3/4, 1/4); weights p0(c) / n_g(c)
    np.testing.assert_allclose(table, [[0.25, 0.25, 0], [0.75, 0.125, 0], [0.25, 0.25, 0]])
    # ESS = 1 / sum_c p0(c)^2 / n_g(c): baseline 4; frog 1 / (0.5625 + 0.03125); toad 1 / (0.1875 + 0.0625)
    np.testing.assert_allclose(info["ess"], [4.0, 1 / 0.59375, 4.0])
    np.testing.assert_allclose(info["coverage"], [0.8, 1.0, 1.0])
    assert info["support_cells"] == 2 and info["rows"] == [5, 3, 4]


def planted_composition(seed: int = 0):
    """Rows whose only informative inputs are the oracle label (input 0) and the energy
    (2 or 9), with groups of very different label x energy mixes: every activation is a
    function of the matching cell, so a composition-matched delta is exactly 0."""
    rng = np.random.default_rng(seed)
    groups, n = rows()[2], ROWS
    distressed = groups > 0
    labels = np.where(distressed, rng.choice(4, n, p=[0.1, 0.1, 0.2, 0.6]), rng.choice(4, n, p=[0.6, 0.25, 0.1, 0.05]))
    energy = np.where(distressed, rng.choice([2, 9], n, p=[0.2, 0.8]), rng.choice([2, 9], n, p=[0.7, 0.3]))
    inputs = np.zeros((n, F), np.int8)
    inputs[:, 0], inputs[:, ENERGY] = labels, energy
    return inputs, labels.astype(np.int8), groups


def test_a_planted_composition_difference_moves_raw_cmni_but_not_the_matched_one():
    inputs, labels, groups = planted_composition()
    params = models(5)
    cells = match_cells(inputs, labels, groups, BINS)
    got = cmni_variants(params, inputs, groups, cells, chunk_rows=CHUNK)
    raw, matched = np.asarray(got.values["cmni"]), np.asarray(got.values["cmni_matched"])
    assert np.all(raw > 1e-3) and np.all(np.abs(matched) < 1e-6)
    keep = (groups >= 0) & (groups < 3)
    support = set.intersection(*[set(cells[keep & (groups == g)]) for g in range(3)])
    assert got.matching["support_cells"] == len(support) >= 6
    for g in range(3):
        assert got.matching["coverage"][g] == pytest.approx(np.isin(cells[keep & (groups == g)], list(support)).mean())
    null = variant_permutation_null(1, params, inputs, groups, cells, permutations=K, chunk_rows=CHUNK)
    assert np.all(np.abs(np.asarray(null["cmni_matched"])) < 1e-6)


# ----------------------------------------------------------------------------- nulls


def test_raw_null_entry_is_bit_identical_to_permutation_null():
    params = models(6)
    inputs, labels, groups = rows(4)
    cells = match_cells(inputs, labels, groups, BINS)
    null = variant_permutation_null(7, params, inputs, groups, cells, permutations=K, chunk_rows=CHUNK)
    assert all(v.shape == MODELS + (K,) for v in null.values())
    np.testing.assert_array_equal(np.asarray(null["cmni"]), np.asarray(permutation_null(7, params, inputs, groups, permutations=K, chunk_rows=CHUNK)))


def test_nulls_match_the_brute_force_on_the_same_permutations():
    params = models(7)
    inputs, labels, groups = rows(5)
    cells = match_cells(inputs, labels, groups, BINS)
    null = variant_permutation_null(3, params, inputs, groups, cells, permutations=K, chunk_rows=CHUNK)
    keep = (groups >= 0) & (groups < 3)
    model = jax.tree.map(lambda a: np.asarray(a[1, 0]), params)
    for k, g in enumerate(permuted_groups(3, groups[keep], K)):
        want = brute_force(model, inputs, labels, groups, BINS, perm_groups=g)
        np.testing.assert_allclose(float(null["cmni_scaled"][1, 0, k]), want["cmni_scaled"], rtol=1e-4, atol=1e-7)
    for k, g in enumerate(stratified_permutations(3, groups[keep], cells[keep], K)):
        want = brute_force(model, inputs, labels, groups, BINS, perm_groups=g)
        np.testing.assert_allclose(float(null["cmni_matched"][1, 0, k]), want["cmni_matched"], rtol=1e-4, atol=1e-7)


def test_stratified_permutations_keep_every_groups_cell_counts():
    rng = np.random.default_rng(0)
    groups, cells = rng.integers(0, 3, 500).astype(np.int8), rng.integers(0, 16, 500)
    perms = stratified_permutations(11, groups, cells, 20)
    count = lambda g: np.bincount(g.astype(int) * 16 + cells, minlength=48)  # noqa: E731
    for p in perms:
        np.testing.assert_array_equal(count(p), count(groups))
    assert (perms != groups).any(axis=1).all()  # they do shuffle
    np.testing.assert_array_equal(perms, stratified_permutations(11, groups, cells, 20))  # and are reproducible


def test_match_energy_bins_is_validated():
    AnalysisConfig(match_energy_bins=1).validate()
    with pytest.raises(ConfigError, match="analysis.match_energy_bins"):
        AnalysisConfig(match_energy_bins=0).validate()


# ----------------------------------------------------------------------------- the analysis and cmni.csv


def scenario_rows(groups):
    """Scenarios and idle flags that `cmni_groups` maps back to `groups` (-1: a Frog-distress
    row where Toad is not shown idle)."""
    scenarios = np.select([groups == 0, groups == 2, groups == 3], [0, 2, 3], 1).astype(np.int8)
    idle = np.stack([groups == 2, groups != -1], axis=1)
    return scenarios, idle


def test_analyse_checkpoints_carries_every_variant_and_cmni_csv_its_columns():
    from mirror.analysis.analyse import analyse_checkpoints
    from mirror.analysis.groups import cmni_groups
    from mirror.runs.outputs import VARIANT_COLUMNS, cmni_rows

    params = models(8)  # [checkpoints 2, members 2]
    inputs, labels, groups = rows(6)
    scenarios, idle = scenario_rows(groups)
    np.testing.assert_array_equal(cmni_groups(scenarios, idle), groups)
    config = AnalysisConfig(permutations=K, init_seeds=2, chunk_rows=CHUNK, match_energy_bins=BINS)
    masks = [np.ones((2, w), bool) for w in WIDTHS]
    args = (0, params, masks, [WIDTHS, WIDTHS], inputs, scenarios, idle, np.array([0, 1]), config)
    a = analyse_checkpoints(*args, labels=labels)
    assert set(a.variants) == set(a.variant_p_permutation) == set(a.variant_init_null) == set(a.variant_p_init) == set(VARIANTS)
    np.testing.assert_array_equal(a.variants["cmni"], np.asarray(a.result.cmni))
    np.testing.assert_array_equal(a.variant_p_permutation["cmni"], a.p_permutation)
    np.testing.assert_array_equal(a.variant_init_null["cmni"], a.init_null)
    np.testing.assert_array_equal(a.variant_p_init["cmni"], a.p_init)
    expected = cmni_variants(params, inputs, groups, match_cells(inputs, labels, groups, BINS), chunk_rows=CHUNK)
    for name in VARIANTS:
        assert a.variants[name].shape == a.variant_p_permutation[name].shape == (2, 2) and a.variant_init_null[name].shape == (2, 2)
        np.testing.assert_allclose(a.variants[name], expected.values[name], rtol=1e-6)
        assert np.all((a.variant_p_permutation[name] >= 1 / (K + 1)) & (a.variant_p_permutation[name] <= 1))
        assert np.all(np.isin(a.variant_p_init[name], [1 / 3, 2 / 3, 1]))
    assert a.matching["energy_bins"] == BINS and len(a.matching["ess"]) == 3 and a.matching["energy_edges"] == list(energy_edges(inputs, groups, BINS))

    header, table = cmni_rows(a, [1, 2], {k: np.zeros((2, 2)) for k in ("val_loss", "val_loss_data", "val_accuracy")}, extra_columns={"x": np.ones((2, 2))})
    columns = [c for names in VARIANT_COLUMNS.values() for c in names]
    assert header[header.index("selected") + 1 :] == columns + ["x"]
    assert columns == ["cmni_scaled", "p_permutation_scaled", "p_init_scaled", "cmni_matched", "p_permutation_matched", "p_init_matched"]
    row = dict(zip(header, table[3]))  # checkpoint 1, member 1
    assert row["cmni_matched"] == a.variants["cmni_matched"][1, 1] and row["p_init_scaled"] == a.variant_p_init["cmni_scaled"][1, 1]

    # A sweep trial's share of a population's analysis carries its own member's variants.
    from mirror.sweep.trial import member_analysis

    mine = member_analysis(a, 1, 1)
    for field in ("variants", "variant_p_permutation", "variant_p_init"):
        for name in VARIANTS:
            np.testing.assert_array_equal(getattr(mine, field)[name], getattr(a, field)[name][:1, 1:2])
    np.testing.assert_array_equal(mine.variant_init_null["cmni_scaled"], a.variant_init_null["cmni_scaled"][1:2])
    assert cmni_rows(mine, [1], {k: np.zeros((1, 1)) for k in ("val_loss", "val_loss_data", "val_accuracy")})[1][0][-1] == a.variant_p_init["cmni_matched"][0, 1]

    # Without labels (and without nulls, which the tests above cover) the matched variant is NaN.
    unlabelled = analyse_checkpoints(*args[:-1], AnalysisConfig(permutations=0, init_seeds=0, chunk_rows=CHUNK, roles="paper"))
    assert np.isnan(unlabelled.variants["cmni_matched"]).all() and np.isnan(unlabelled.variant_p_permutation["cmni_matched"]).all()
    assert unlabelled.variant_init_null["cmni_matched"].shape == (2, 0) and unlabelled.matching == {}
    np.testing.assert_allclose(unlabelled.variants["cmni_scaled"], a.variants["cmni_scaled"], rtol=1e-6)
