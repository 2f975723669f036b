"""Per-neuron significance (`mirror.analysis.significance`): Benjamini-Hochberg, the
per-neuron permutation null and p-values, and the roles they give on a hand-made network
with planted mirror units, through `analyse_checkpoints`, neurons.csv and the report."""

import itertools

import jax
import numpy as np
import pytest

from mirror.analysis.cmni import cmni, permutation_null, permuted_groups
from mirror.analysis.neurons import DIFFERENTIATING, MIRROR, OTHER, neuron_roles
from mirror.analysis.significance import (
    NeuronNull,
    NeuronP,
    above_init,
    benjamini_hochberg,
    frog_toad_permutations,
    init_p_values,
    neuron_null_mns,
    neuron_p_values,
    significant_roles,
)  # fmt: skip
from mirror.base.errors import ConfigError
from mirror.runs.config import load_config

# ----------------------------------------------------------------------------- Benjamini-Hochberg


def test_bh_on_hand_worked_p_values():
    # m = 6, thresholds alpha k / m = .0083 .0167 .025 .0333 .0417 .05; sorted p: .004 .012 | .029 .039 .06 .5
    p = np.array([0.012, 0.039, 0.029, 0.004, 0.5, 0.06])
    np.testing.assert_array_equal(benjamini_hochberg(p, 0.05), [True, False, False, True, False, False])
    # step-up: p_(1) = .02 fails its threshold .0125 but p_(4) = .023 <= .05, so all four are rejected
    np.testing.assert_array_equal(benjamini_hochberg(np.array([0.02, 0.021, 0.022, 0.023]), 0.05), [True] * 4)
    # nothing passes: none rejected
    assert not benjamini_hochberg(np.array([0.2, 0.3, 0.9]), 0.05).any()
    # alpha matters: at 0.10 the thresholds double (.0167 .0333 .05 .0667 .0833 .1): .029 .039 .06 pass too
    np.testing.assert_array_equal(benjamini_hochberg(p, 0.10), [True, True, True, True, False, True])


def test_bh_masked_entries_are_neither_tested_nor_counted():
    p = np.array([0.001, 0.2, 0.03, 0.9])
    # m = 4: thresholds .0125 .025 .0375 .05; .03 > .025 -> only the first
    np.testing.assert_array_equal(benjamini_hochberg(p, 0.05), [True, False, False, False])
    # entry 1 masked out: m = 3, thresholds .0167 .0333 .05 -> .001 and .03 rejected
    mask = np.array([True, False, True, True])
    np.testing.assert_array_equal(benjamini_hochberg(p, 0.05, mask), [True, False, True, False])
    # a masked entry is never rejected, even with p = 0; NaN is fine where masked
    np.testing.assert_array_equal(benjamini_hochberg(np.array([0.0, np.nan, 0.01]), 0.05, [False, False, True]), [False, False, True])
    with pytest.raises(ValueError, match="NaN"):
        benjamini_hochberg(np.array([0.01, np.nan]))
    assert not benjamini_hochberg(np.ones((2, 3)), 0.05, np.zeros((2, 3), bool)).any()  # nothing tested


def _bh_brute_force(p, alpha, mask):
    """The definition, one row at a time: the largest k with p_(k) <= alpha k / m; reject the k smallest."""
    idx = np.flatnonzero(mask)
    m = len(idx)
    order = idx[np.argsort(p[idx], kind="stable")]
    k_star = max([k for k in range(1, m + 1) if p[order[k - 1]] <= alpha * k / m], default=0)
    out = np.zeros(p.shape, bool)
    out[order[:k_star]] = True
    return out


def test_bh_matches_the_brute_force_definition_along_the_last_axis():
    rng = np.random.default_rng(5)
    p = np.round(rng.beta(0.4, 2.0, (40, 12)), 3)  # many small p-values, and ties
    mask = rng.random((40, 12)) > 0.2
    got = benjamini_hochberg(p, 0.1, mask)
    want = np.stack([_bh_brute_force(p[i], 0.1, mask[i]) for i in range(40)])
    np.testing.assert_array_equal(got, want)
    assert 0 < got.sum() < mask.sum()  # a test that exercises both outcomes
    # leading axes are independent families
    np.testing.assert_array_equal(benjamini_hochberg(p.reshape(4, 10, 12), 0.1, mask.reshape(4, 10, 12)), got.reshape(4, 10, 12))


# ----------------------------------------------------------------------------- the per-neuron null vs NumPy


def _activations(params, x):
    """NumPy forward pass of one model: [rows, neurons] (hidden layers after ReLU, then the outputs)."""
    h, outs = x.astype(np.float64), []
    for i in itertools.count():
        if f"hidden_{i}" not in params:
            break
        h = np.maximum(h @ np.asarray(params[f"hidden_{i}"]["kernel"], np.float64) + np.asarray(params[f"hidden_{i}"]["bias"], np.float64), 0)
        outs.append(h)
    outs.append(h @ np.asarray(params["output"]["kernel"], np.float64) + np.asarray(params["output"]["bias"], np.float64))
    return np.concatenate(outs, axis=1)


def _deltas(a, g):
    mu = [a[g == k].mean(axis=0) for k in range(3)]
    return mu[1] - mu[0], mu[2] - mu[0]


def random_params(rng, models: int, sizes):
    """[models, ...] parameters of an MLP with layer sizes (inputs, hidden..., outputs);
    positive biases keep the ReLU units alive, so MNS > 0 happens."""
    names = [f"hidden_{i}" for i in range(len(sizes) - 2)] + ["output"]
    return {
        name: {"kernel": rng.normal(0, 0.5, (models, n_in, n_out)).astype(np.float32), "bias": rng.uniform(0, 0.5, (models, n_out)).astype(np.float32)}
        for name, n_in, n_out in zip(names, sizes[:-1], sizes[1:])
    }


def test_neuron_null_and_p_values_match_a_numpy_brute_force():
    rng = np.random.default_rng(0)
    rows, k, seed = 240, 29, 4
    inputs = rng.integers(0, 10, (rows, 10)).astype(np.int8)
    groups = rng.integers(-1, 4, rows).astype(np.int8)
    params = random_params(rng, 2, (10, 5, 3, 4))
    null = neuron_null_mns(seed, params, inputs, groups, permutations=k, chunk_rows=64)
    observed = cmni(params, inputs, groups, chunk_rows=64)
    p = neuron_p_values(observed.d_frog, observed.d_toad, observed.mns, null, observed.neuron_mask, alpha=0.2)
    keep = (groups >= 0) & (groups < 3)
    x, g = inputs[keep], groups[keep]
    shuffles = permuted_groups(seed, g, k)  # THE permutations of cmni.permutation_null
    for m in range(2):
        model = jax.tree.map(lambda a: np.asarray(a)[m], params)
        acts = _activations(model, x)
        d_frog, d_toad = _deltas(acts, g)
        null_frog, null_toad = np.stack([np.stack(_deltas(acts, s)) for s in shuffles], axis=-1)  # [neurons, K]
        null_mns = np.where((null_frog > 0) & (null_toad > 0), np.minimum(null_frog, null_toad), 0)
        np.testing.assert_allclose(np.asarray(null.d_frog[m]), null_frog, atol=2e-5)
        np.testing.assert_allclose(np.asarray(null.d_toad[m]), null_toad, atol=2e-5)
        np.testing.assert_allclose(np.asarray(null.mns[m]), null_mns, atol=2e-5)
        mns = np.where((d_frog > 0) & (d_toad > 0), np.minimum(d_frog, d_toad), 0)
        for got, obs, nul in ((p.p_mirror, mns, null_mns), (p.p_frog, d_frog, null_frog), (p.p_toad, d_toad, null_toad)):
            want = np.where(obs > 0, (1 + (nul >= obs[:, None]).sum(-1)) / (k + 1), 1.0)
            np.testing.assert_allclose(got[m], want)
        np.testing.assert_array_equal(p.significant_frog[m], _bh_brute_force(p.p_frog[m], 0.2, np.ones(12, bool)))
        # dFrog - dToad under the Frog-Toad shuffles (none rows fixed), two-sided p
        null_diff = np.stack([np.subtract(*_deltas(acts, s)) for s in frog_toad_permutations(seed, g, k)], axis=-1)
        np.testing.assert_allclose(np.asarray(null.diff[m]), null_diff, atol=2e-5)
        want = (1 + (np.abs(null_diff) >= np.abs(d_frog - d_toad)[:, None] - 1e-6 * np.abs(d_frog - d_toad)[:, None]).sum(-1)) / (k + 1)
        np.testing.assert_allclose(p.p_diff[m], want)
    assert ((p.p_mirror < 1) & (p.p_mirror > 1 / (k + 1))).any()  # the null comparison, not only the shortcuts, is exercised
    assert ((p.p_diff < 1) & (p.p_diff > 1 / (k + 1))).any()
    # the same permutations as the CMNI's null: summing the per-neuron null MNS gives its null CMNIs
    np.testing.assert_allclose(np.asarray(null.mns).sum(-2) / 12, np.asarray(permutation_null(seed, params, inputs, groups, permutations=k, chunk_rows=64)), rtol=1e-5)


def test_padded_neurons_get_no_p_value_and_are_not_counted():
    rng = np.random.default_rng(3)
    inputs = rng.integers(0, 10, (90, 10)).astype(np.int8)
    groups = np.repeat(np.arange(3, dtype=np.int8), 30)
    params = random_params(rng, 1, (10, 4, 4))
    mask = [np.array([[True, True, False, False]])]
    observed = cmni(params, inputs, groups, unit_mask=mask)
    null = neuron_null_mns(0, params, inputs, groups, permutations=9, unit_mask=mask)
    assert not np.asarray(null.mns)[0, 2:4].any() and not np.asarray(null.d_frog)[0, 2:4].any()
    p = neuron_p_values(observed.d_frog, observed.d_toad, observed.mns, null, observed.neuron_mask)
    assert np.isnan(p.p_mirror[0, 2:4]).all() and np.isfinite(p.p_mirror[0, [0, 1, 4, 5, 6, 7]]).all()
    assert not p.significant_mirror[0, 2:4].any()
    with pytest.raises(ValueError, match="at least one permutation"):
        neuron_null_mns(0, params, inputs, groups, permutations=0)


# ----------------------------------------------------------------------------- planted mirror units

W = 2  # world width: 3W + 4 = 10 model inputs; input 8 (the score) is where the leak would go
FROG_FLAG, TOAD_FLAG, NOISE = 0, 1, slice(2, 6)
PLANTED_MIRROR, PLANTED_FROG_ONLY, PLANTED_TOAD_ONLY = (0, 1), 2, 3  # first-layer units; 4, 5 noise


def planted_network(distress_wired: bool = True):
    """A hand-made 2-layer network (6 -> 3 units, 4 outputs) on 10 inputs: units 0 and 1
    rise with both distress flags (mirror), unit 2 with Frog's only, unit 3 with Toad's
    only; units 4, 5, the second layer and the outputs see only the noise inputs."""
    k0 = np.zeros((10, 6), np.float32)
    k0[[FROG_FLAG, TOAD_FLAG, 2], 0] = 1.0, 1.0, 0.2
    k0[[FROG_FLAG, TOAD_FLAG, 3], 1] = 0.5, 0.8, 0.1
    k0[[FROG_FLAG, 4], 2] = 1.0, 0.2
    k0[[TOAD_FLAG, 5], 3] = 0.7, 0.2
    k0[2:6, 4] = 0.3, -0.2, 0.1, 0.05
    k0[2:6, 5] = -0.1, 0.05, 0.0, 0.25
    if not distress_wired:
        k0[[FROG_FLAG, TOAD_FLAG]] = 0.0
    b0 = np.array([0.0, -0.2, 0.0, 0.0, 0.2, 0.5], np.float32)
    k1 = np.zeros((6, 3), np.float32)
    k1[4:6] = [[0.5, -0.3, 0.2], [0.4, 0.6, -0.1]]  # only from the noise units
    k2 = np.array([[0.3, -0.2, 0.1, 0.5], [0.2, 0.4, -0.3, 0.1], [-0.1, 0.2, 0.6, 0.3]], np.float32)
    return {
        "hidden_0": {"kernel": k0, "bias": b0},
        "hidden_1": {"kernel": k1, "bias": np.array([0.1, 0.2, 0.3], np.float32)},
        "output": {"kernel": k2, "bias": np.array([0.0, 0.1, -0.1, 0.2], np.float32)},
    }


def planted_rows(per_group: int = 150, seed: int = 0):
    """Synthetic test rows: scenarios 0 (none), 1 (Frog distressed: flag 0 on), 2 (Toad
    distressed: flag 1 on), 3 (both), every partner idle. Each group gets the same noise
    values in its own order, so a unit wired to noise alone has the same mean in every
    group; one Toad row also carries Frog's flag, so the Frog-only unit's dToad is a small
    positive number (MNS > 0) that is not a mirror response."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 10, (per_group, 4))
    blocks, scenarios = [], []
    for scenario in range(4):
        x = np.zeros((per_group, 10), np.int8)
        x[:, NOISE] = rng.permutation(noise)
        x[:, FROG_FLAG] = scenario in (1, 3)
        x[:, TOAD_FLAG] = scenario in (2, 3)
        blocks.append(x)
        scenarios.append(np.full(per_group, scenario, np.int8))
    blocks[2][0, FROG_FLAG] = 1
    return np.concatenate(blocks), np.concatenate(scenarios), np.ones((4 * per_group, 2), bool)


def stacked(*models):
    """[checkpoints = 1, members, ...] parameters from one-model dicts."""
    return jax.tree.map(lambda *a: np.stack(a)[None], *models)


def analysis_config(**fields):
    return load_config(None, {"analysis": {"permutations": 199, "init_seeds": 32, "chunk_rows": 128, **fields}}).analysis


@pytest.fixture(scope="module")
def planted_analysis():
    """The planted network (member 0) and the same network with the distress flags cut
    (member 1, every unit noise), analysed with roles: significance and roles: paper."""
    from mirror.analysis.analyse import analyse_checkpoints

    params = stacked(planted_network(), planted_network(distress_wired=False))
    inputs, scenarios, idle = planted_rows()
    masks = [np.ones((2, 6), bool), np.ones((2, 3), bool)]
    run = lambda config: analyse_checkpoints(0, params, masks, [(6, 3), (6, 3)], inputs, scenarios, idle, np.array([0, 0]), config)  # noqa: E731
    return run(analysis_config()), run(analysis_config(roles="paper"))


def test_planted_mirror_units_and_only_they_are_mirror(planted_analysis):
    a, _ = planted_analysis
    roles = np.asarray(a.roles)
    want = np.full(13, OTHER)
    want[list(PLANTED_MIRROR)] = MIRROR
    want[[PLANTED_FROG_ONLY, PLANTED_TOAD_ONLY]] = DIFFERENTIATING
    np.testing.assert_array_equal(roles[0], want)
    np.testing.assert_array_equal(roles[1], np.full(13, OTHER))  # nothing planted, nothing found
    p = a.neuron_p
    floor = 1 / 200
    np.testing.assert_array_equal(p["p_mirror"][0, list(PLANTED_MIRROR)], floor)
    np.testing.assert_array_equal(p["p_frog"][0, [0, 1, PLANTED_FROG_ONLY]], floor)
    np.testing.assert_array_equal(p["p_toad"][0, [0, 1, PLANTED_TOAD_ONLY]], floor)
    # the Frog-only unit has MNS > 0 (its chance dToad) but no significant Toad response
    d_toad, mns = np.asarray(a.result.d_toad)[0, 0], np.asarray(a.result.mns)[0, 0]
    assert 0 < d_toad[PLANTED_FROG_ONLY] < 0.01 and mns[PLANTED_FROG_ONLY] > 0
    assert p["p_toad"][0, PLANTED_FROG_ONLY] > 0.05 and not p["significant_toad"][0, PLANTED_FROG_ONLY]
    assert set(np.flatnonzero(p["significant_mirror"][0])) == set(PLANTED_MIRROR)
    for key in ("p_mirror", "p_frog", "p_toad"):
        assert p[key].shape == (2, 13) and ((p[key] >= floor) & (p[key] <= 1)).all()


def test_roles_paper_keeps_the_paper_thresholds(planted_analysis):
    significance, paper = planted_analysis
    r, at = paper.result, (lambda v: np.asarray(v)[0])
    want = neuron_roles(at(r.d_frog), at(r.d_toad), at(r.mns), paper.layer_of, at(r.neuron_mask), 0.15)
    np.testing.assert_array_equal(paper.roles, want)
    assert paper.roles[0, PLANTED_FROG_ONLY] == DIFFERENTIATING and (paper.roles[0, list(PLANTED_MIRROR)] == MIRROR).all()
    # the p-values are computed either way (same seed, same permutations)
    for key, value in significance.neuron_p.items():
        np.testing.assert_array_equal(paper.neuron_p[key], value)
    # significant_roles is the rule of the module docstring on the stored decisions
    s, p = significance.result, significance.neuron_p
    got = significant_roles(NeuronP(**{k: p[k] for k in NeuronP._fields}), np.asarray(s.mns)[0], np.asarray(s.neuron_mask)[0], p["above_init"])
    np.testing.assert_array_equal(got, significance.roles)


def test_neurons_csv_and_report_name_the_tests(planted_analysis, tmp_path):
    from mirror.runs.outputs import neuron_rows
    from mirror.runs.report import role_method

    a, paper = planted_analysis
    header, rows = neuron_rows(a, np.array([7]))
    assert header[header.index("mns") + 1 : header.index("mns") + 9] == ["p_mns", "p_frog", "p_toad", "significant", "p_diff", "mns_scaled", "p_init_mns", "above_init"]
    by_neuron = {(r[0], r[3]): dict(zip(header, r)) for r in rows if r[header.index("scenario")] == "none"}
    mirror = by_neuron[(0, "L1N0")]
    assert mirror["significant"] == "mns+frog+toad" and mirror["role"] == "mirror" and mirror["above_init"] is True
    assert mirror["mns_scaled"] > 1 and mirror["p_init_mns"] == pytest.approx(1 / (32 * 6 + 1))  # above every init unit of layer 1
    assert by_neuron[(0, "L1N2")]["significant"] == "frog+diff" and by_neuron[(0, "L1N2")]["role"] == "differentiating"
    assert by_neuron[(0, "L1N3")]["significant"] == "toad+diff"
    assert by_neuron[(0, "L1N4")]["significant"] == "none" and by_neuron[(1, "L1N0")]["significant"] == "none"
    assert by_neuron[(0, "L1N0")]["p_mns"] == pytest.approx(1 / 200)
    assert len(rows) == 2 * 13 * 4
    assert role_method({"roles": "significance", "alpha": 0.05, "permutations": 199}).startswith("Roles: per-neuron permutation tests, BH at alpha 0.05 (199 label permutations)")
    assert role_method({"roles": "paper", "response_fraction": 0.15}).startswith("Roles: the paper-fitted thresholds")
    assert role_method({"permutations": 200}).startswith("Roles: the paper-fitted thresholds")  # analysed before analysis.roles existed
    assert role_method({}) == ""
    # the resolution: 1/(K+1) <= alpha k / N needs k >= N / (alpha (K + 1)): 38 / (0.05 x 201) = 3.8 -> 4
    assert role_method({"roles": "significance", "alpha": 0.05, "permutations": 200}, 38).endswith("at least 4 of the 38 neurons reach it.")
    assert role_method({"roles": "significance", "alpha": 0.05, "permutations": 199}, 10).endswith("at least 1 of the 10 neurons reach it.")
    assert "no neuron can be significant" in role_method({"roles": "significance", "alpha": 0.05, "permutations": 16}, 38)


def test_untested_neurons_without_permutations(planted_analysis):
    from mirror.analysis.analyse import analyse_checkpoints
    from mirror.runs.outputs import neuron_rows

    params = stacked(planted_network(), planted_network())  # the fixture's shapes: compiled already
    inputs, scenarios, idle = planted_rows()
    a = analyse_checkpoints(0, params, [np.ones((2, 6), bool), np.ones((2, 3), bool)], [(6, 3)] * 2, inputs, scenarios, idle, np.array([0, 0]),
                            analysis_config(roles="paper", permutations=0))  # fmt: skip
    assert np.isnan(a.neuron_p["p_mirror"]).all() and not a.neuron_p["significant_mirror"].any()
    header, rows = neuron_rows(a, np.array([1]))
    assert {r[header.index("significant")] for r in rows} == {""} and all(np.isnan(r[header.index("p_mns")]) for r in rows)


# ----------------------------------------------------------------------------- config


def test_roles_config_is_validated_with_clear_errors():
    assert load_config(None, {}).analysis.roles == "significance" and load_config(None, {}).analysis.alpha == 0.05
    assert load_config(None, ["--analysis.roles", "paper", "--analysis.permutations", "0"]).analysis.roles == "paper"
    assert load_config(None, ["--analysis.alpha", "0.1"]).analysis.alpha == 0.1
    with pytest.raises(ConfigError, match=r"analysis.roles = 'thresholds' is invalid: expected one of \['significance', 'paper'\]"):
        load_config(None, ["--analysis.roles", "thresholds"])
    for bad in ("0", "1", "-0.1", "1.5", "nan"):
        with pytest.raises(ConfigError, match=r"analysis.alpha = .* is invalid: expected a number in \(0, 1\)"):
            load_config(None, ["--analysis.alpha", bad])
    with pytest.raises(ConfigError, match=r"analysis.roles = 'significance' needs .* analysis.permutations = 0"):
        load_config(None, ["--analysis.permutations", "0"])
    with pytest.raises(ConfigError, match=r"analysis.roles = 'significance' calibrates .* analysis.init_seeds = 0"):
        load_config(None, ["--analysis.init_seeds", "0"])
    assert load_config(None, ["--analysis.init_seeds", "0", "--analysis.roles", "paper"]).analysis.init_seeds == 0
    # a config built in code, never validated, is caught by the analysis before any work
    from mirror.analysis.analyse import analyse_checkpoints
    from mirror.analysis.config import AnalysisConfig

    with pytest.raises(ConfigError, match="analysis.permutations"):
        analyse_checkpoints(0, None, None, [], np.zeros((1, 10)), None, None, None, AnalysisConfig(permutations=0))


def test_a_frog_only_neuron_is_rarely_mirror_though_its_mns_test_alone_often_rejects():
    """Why mirror needs the dFrog and dToad tests too: a neuron that rises with Frog's
    distress only (dToad truly 0) breaks the exchangeability the label permutation tests,
    so its chance MNS (a chance positive dToad) passes the MNS test far more often than
    alpha. The role rule keeps such a neuron's false mirror rate at about alpha or below.
    400 independent one-neuron models (N = 1: BH is the plain threshold), NumPy null."""
    rng = np.random.default_rng(0)
    models, per_group, k, alpha = 400, 200, 99, 0.05
    groups = np.repeat(np.arange(3), per_group)
    activation = rng.normal(0, 1, (models, 3 * per_group)) + 0.3 * (groups == 1)  # [models, rows]

    def deltas(g):  # g [..., rows] -> dFrog, dToad [models, ...]
        mu = [(activation[:, None] * (g == c)).sum(-1) / (g == c).sum(-1) for c in range(3)]
        return mu[1] - mu[0], mu[2] - mu[0]

    shuffles = np.stack([rng.permutation(groups) for _ in range(k)])
    d_frog, d_toad = (v[:, 0] for v in deltas(groups[None]))
    null_frog, null_toad = deltas(shuffles)  # [models, K]
    mns = np.where((d_frog > 0) & (d_toad > 0), np.minimum(d_frog, d_toad), 0)
    null_mns = np.where((null_frog > 0) & (null_toad > 0), np.minimum(null_frog, null_toad), 0)
    null_diff = np.subtract(*deltas(frog_toad_permutations(1, groups, k)))
    null = NeuronNull(null_frog[:, None], null_toad[:, None], null_mns[:, None], null_diff[:, None])
    p = neuron_p_values(d_frog[:, None], d_toad[:, None], mns[:, None], null, alpha=alpha)
    roles = significant_roles(p, mns[:, None])[:, 0]
    assert p.significant_mirror.mean() > 1.5 * alpha  # the MNS test alone: 0.10 false mirrors here
    assert (roles == MIRROR).mean() <= alpha  # 0.04 here
    assert (roles == DIFFERENTIATING).mean() > 0.5  # and the Frog response is found


def test_a_sweep_trial_gets_its_own_members_p_values(planted_analysis):
    from mirror.sweep.trial import member_analysis

    a, _ = planted_analysis
    for member in (0, 1):
        one = member_analysis(a, member, 1)
        assert set(one.neuron_p) == set(a.neuron_p)
        for key, value in a.neuron_p.items():
            np.testing.assert_array_equal(one.neuron_p[key], value[member : member + 1])
        np.testing.assert_array_equal(one.roles, a.roles[member : member + 1])


# ----------------------------------------------------------------------------- differentiating, tested directly


def test_frog_toad_permutations_shuffle_the_distress_rows_only():
    groups = np.asarray([0, 1, 2, 1, -1, 3, 2, 2, 0, 1], np.int8)
    shuffled = frog_toad_permutations(3, groups, 50)
    distress = (groups == 1) | (groups == 2)
    assert (shuffled[:, ~distress] == groups[~distress]).all()
    assert (np.sort(shuffled[:, distress], axis=1) == np.sort(groups[distress])).all()
    assert len({tuple(r) for r in shuffled}) > 10
    np.testing.assert_array_equal(shuffled, frog_toad_permutations(3, groups, 50))


def _one_unit_test(frog_mean, toad_mean, toad_rows, seed=0):
    """One hidden unit that copies input 0 (noise of sd 1 around each group's mean: none 0,
    frog `frog_mean` on 400 rows, toad `toad_mean` on `toad_rows`), tested as a model of
    1 neuron (its outputs cut): the p-values and the roles."""
    rng = np.random.default_rng(seed)
    sizes = (400, 400, toad_rows)
    groups = np.repeat(np.arange(3, dtype=np.int8), sizes)
    signal = np.repeat([0.0, frog_mean, toad_mean], sizes) + rng.normal(0, 1, len(groups))
    inputs = np.round(np.c_[signal * 10 + 50, np.zeros(len(groups))]).astype(np.int8)  # int8 inputs: 0.1 units
    params = {"hidden_0": {"kernel": np.array([[[1.0], [0.0]]], np.float32), "bias": np.zeros((1, 1), np.float32)},
              "output": {"kernel": np.zeros((1, 1, 4), np.float32), "bias": np.zeros((1, 4), np.float32)}}  # fmt: skip
    observed = cmni(params, inputs, groups)
    null = neuron_null_mns(2, params, inputs, groups, permutations=199)
    only_unit = np.array([[True, False, False, False, False]])
    p = neuron_p_values(observed.d_frog, observed.d_toad, observed.mns, null, only_unit)
    return p, significant_roles(p, observed.mns, only_unit)[0, 0], observed


def test_differentiating_needs_a_significant_difference_not_one_test_passing_and_one_failing():
    """dFrog 3 (in 0.1 input units) on 400 rows is significant; dToad 2.5 on 12 noisy rows
    is not; their difference 0.5 is nothing the Frog-Toad shuffle cannot produce. The old
    rule (exactly one of dFrog, dToad significant) called this neuron differentiating."""
    p, role, observed = _one_unit_test(0.3, 0.25, 12)
    assert p.significant_frog[0, 0] and not p.significant_toad[0, 0]  # the difference-in-significance trap
    assert p.p_diff[0, 0] > 0.2 and not p.significant_diff[0, 0]
    assert role == OTHER
    # Opposite responses to the two distresses: the difference is significant.
    p, role, _ = _one_unit_test(0.3, -0.4, 100)
    assert p.significant_frog[0, 0] and p.p_diff[0, 0] == 1 / 200 and role == DIFFERENTIATING
    # A Frog-only response against a flat Toad one, Toad's group as large: differentiating too.
    p, role, _ = _one_unit_test(0.3, 0.0, 400)
    assert p.significant_diff[0, 0] and role == DIFFERENTIATING


# ----------------------------------------------------------------------------- calibration against random init


def test_init_p_values_rank_each_neuron_among_its_layers_init_units():
    # 1 member, 2 draws; neurons: layer 0 = units 0-2 (unit 2 padded in draw 1), layer 1 = unit 3.
    init = np.array([[[0.0, 1.0, 2.0, 5.0], [3.0, 4.0, 100.0, 7.0]]])
    init_real = np.array([[[True, True, True, True], [True, True, False, True]]])
    layer_of = np.array([0, 0, 0, 1])
    scores = np.array([[2.5, 5.0, 0.0, 6.0]])
    real = np.array([[True, True, True, True]])
    got = init_p_values(scores, real, init, init_real, layer_of)
    # layer 0 pools 0, 1, 2, 3, 4 (the padded 100 left out): 2.5 is beaten by 3 and 4 -> (1 + 2) / 6;
    # 5.0 by none -> 1/6; MNS 0 -> 1. Layer 1 pools 5, 7: 6.0 -> (1 + 1) / 3.
    np.testing.assert_allclose(got, [[3 / 6, 1 / 6, 1.0, 2 / 3]])
    assert np.isnan(init_p_values(scores, [[True, False, True, True]], init, init_real, layer_of)[0, 1])
    # BH within each layer at alpha 0.75: layer 0's sorted p 1/6, 1/2, 1 against 0.25, 0.5, 0.75 -> the first
    # two; layer 1 alone: 2/3 <= 0.75. At 0.5 (thresholds 1/6, 1/3, 1/2; 1/2 for layer 1): only 1/6.
    np.testing.assert_array_equal(above_init(got, real, layer_of, 0.75), [[True, True, False, True]])
    np.testing.assert_array_equal(above_init(got, real, layer_of, 0.5), [[False, True, False, False]])


@pytest.mark.slow
def test_a_random_network_gets_no_mirror_neurons_once_calibrated():
    """Sixteen members that are themselves random initialisations (glorot, the init null's
    distribution, other keys) on the planted rows, whose distress flags any unit reading
    them responds to. The label-permutation tests alone call some of their units mirror;
    calibrated, a unit has to beat its layer's init units (BH within the layer), which an
    init-like unit does in a layer with probability about alpha."""
    from mirror.agents.mlp import init_params
    from mirror.analysis.analyse import analyse_checkpoints

    members = 16
    inputs, scenarios, idle = planted_rows(600)
    params = stacked(*[init_params(jax.random.key(300 + i), (6, 3), num_inputs=10) for i in range(members)])
    masks = [np.ones((members, 6), bool), np.ones((members, 3), bool)]
    a = analyse_checkpoints(0, params, masks, [(6, 3)] * members, inputs, scenarios, idle, np.zeros(members, int), analysis_config())
    p, r = a.neuron_p, a.result
    uncalibrated = significant_roles(NeuronP(**{k: p[k] for k in NeuronP._fields}), np.asarray(r.mns)[0], np.asarray(r.neuron_mask)[0])
    assert (uncalibrated == MIRROR).sum() >= 8  # what the permutation tests alone call mirror (14 of 208 units here)
    assert (a.roles == MIRROR).sum() <= 1
    np.testing.assert_array_equal(a.roles == MIRROR, (uncalibrated == MIRROR) & p["above_init"])


def test_the_planted_mirror_units_beat_every_init_unit(planted_analysis):
    planted, _ = planted_analysis
    p = planted.neuron_p
    assert p["above_init"][0, list(PLANTED_MIRROR)].all() and not p["above_init"][1].any()
    assert (p["p_init_mns"][0, list(PLANTED_MIRROR)] == 1 / (32 * 6 + 1)).all()
