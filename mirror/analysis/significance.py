"""Per-neuron significance: which neurons respond to distress, and which respond more than
the units of an untrained network do.

The paper's roles (`mirror.analysis.neurons`) use thresholds fitted to its Table 4. Here
each neuron's responses get permutation p-values, Benjamini-Hochberg control of the false
discovery rate, and a calibration against random initialisation.

The label-permutation null. The group labels (none, frog, toad) of the CMNI rows are
shuffled K times, with THE SAME K shufflings as the CMNI's permutation null
(`cmni.permuted_groups(seed, CMNI rows' groups, K)`), so `neuron_null_mns(...).mns.sum(neurons)
/ N` is exactly the null CMNI of `cmni.permutation_null` with the same seed. For each
shuffle and neuron: dFrog*, dToad* and MNS* = min(dFrog*, dToad*) when both are positive,
else 0. What a small p here shows is that the neuron's activation differs between the
groups. A row's group is written in its input (the distress code), so a unit of an
UNTRAINED network that reads that input passes too: this null alone is no evidence that
training built anything.

The Frog-Toad null (`frog_toad_permutations`): the labels of the Frog-distress and
Toad-distress rows are shuffled among those rows only (the none rows keep their label),
K times, from their own random stream. It tests dFrog - dToad = mu(frog) - mu(toad)
directly: does the neuron respond differently to the two distresses?

The p-values (`(1 + #{null >= observed}) / (K + 1)`, so never below 1 / (K + 1)):

    p_mirror  for MNS > 0      (1 where the observed MNS is 0)    one-sided
    p_frog    for dFrog > 0    (1 where the observed dFrog <= 0)  one-sided
    p_toad    for dToad > 0    (1 where the observed dToad <= 0)  one-sided
    p_diff    for dFrog != dToad, on |dFrog - dToad|              two-sided

Setting p = 1 where the observed statistic shows no rise only makes the test more
conservative, so the p-values stay valid.

The random-initialisation calibration (`init_p_values`, `above_init`). The analysis already
draws S random initialisations of each member's architecture for the CMNI's init null.
Each neuron's scale-free score MNS_scaled = min(dFrog, dToad) / s_n (s_n its pooled
activation sd, `mirror.analysis.variants`; 0 unless both rise) is ranked among the same
score of the random-init units of its layer on the same rows (S x units of the layer):
p_init_mns = (1 + #{init units >= it}) / (n + 1), BH-controlled at `alpha` within each
layer, is `above_init`. So a mirror neuron must beat untrained units of its layer, and
in an untrained network (whose units are draws of that same reference) a layer shows a
false mirror with probability about alpha, not about 5 % of its units as a plain 95th
percentile cut would give. The scale-free score is used because the raw MNS is in
activation units, which weight decay shrinks: against raw init MNS a decayed network
would never show a mirror neuron, whatever it learned. Resolution: the smallest p in a
layer of w units is 1 / (S w + 1), and BH over its w neurons needs 1 / (S w + 1) <= alpha / w
to call a single one (2 x 17 at S = 32: 1/545 against 0.0029; with fewer draws raise
analysis.init_seeds).

The roles (`significant_roles`), each test BH-controlled at `alpha` over the real neurons
of one model (hidden and output layers together; padded neurons are not tested and not
counted), the four tests as four separate families:

    mirror           MNS > 0, p_mirror, p_frog and p_toad all significant, AND above_init
    differentiating  p_diff significant and at least one of p_frog, p_toad significant
                     (and not mirror): it responds to distress, differently to the two
    other            everything else

Why mirror also needs both one-sided tests: the label permutation tests exchangeability
of the three groups, which a neuron responding to one distress alone already violates;
its chance MNS (a chance rise to the other distress) can then look significant (in a
simulation at alpha 0.05, 10 % of such neurons pass the MNS test; 4 % pass the rule). Asking
for both rises to be significant (an intersection-union test) makes "mirror" mean that
the neuron rises in both distress groups, and `above_init` that it does so more than an
untrained unit. Why differentiating is tested directly: "dFrog significant, dToad not" is
no evidence that the two differ (the difference between significant and not significant
is not itself significant); the Frog-Toad shuffle tests the difference.

Resolution: with K permutations and N neurons, BH can only reject when at least
N / (alpha (K + 1)) neurons reach the floor 1 / (K + 1) together (K = 200, N = 38,
alpha = 0.05: 4 neurons); raise `analysis.permutations` to resolve single neurons.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mirror.analysis.cmni import flatten_models, full_unit_mask, group_sums, model_axes, output_means, permuted_groups
from mirror.analysis.groups import CMNI_GROUPS, FROG, TOAD
from mirror.analysis.neurons import DIFFERENTIATING, MIRROR, OTHER


class NeuronNull(NamedTuple):
    """Per-neuron null statistics [..., neurons, K] (neurons ordered as `CMNIResult`; 0 for padded neurons)."""

    d_frog: jax.Array
    d_toad: jax.Array
    mns: jax.Array
    diff: jax.Array | None = None  # dFrog* - dToad* under the Frog-Toad shuffles (None: not computed)


class NeuronP(NamedTuple):
    """Per-neuron p-values [..., neurons] (NaN for padded neurons) and BH decisions."""

    p_mirror: np.ndarray
    p_frog: np.ndarray
    p_toad: np.ndarray
    significant_mirror: np.ndarray  # bool: BH-significant on p_mirror
    significant_frog: np.ndarray
    significant_toad: np.ndarray
    p_diff: np.ndarray  # two-sided, dFrog != dToad (the Frog-Toad shuffle)
    significant_diff: np.ndarray


# ----------------------------------------------------------------------------- Benjamini-Hochberg


def benjamini_hochberg(p, alpha: float = 0.05, mask=None) -> np.ndarray:
    """bool[...]: Benjamini-Hochberg's step-up procedure along the last axis. With the m
    tested p-values sorted, p_(1) <= ... <= p_(m), the k* smallest are rejected, k* the
    largest k with p_(k) <= alpha k / m (none if there is no such k). Entries where
    `mask` is False are neither tested nor counted in m; NaN p-values must be masked out."""
    p = np.asarray(p, np.float64)
    mask = np.ones(p.shape, bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), p.shape)
    if np.isnan(p[mask]).any():
        raise ValueError("benjamini_hochberg: NaN p-values must be masked out")
    m = mask.sum(axis=-1, keepdims=True)
    ordered = np.sort(np.where(mask, p, np.inf), axis=-1)  # masked entries last
    k = np.arange(1, p.shape[-1] + 1)
    passes = ordered <= alpha * k / np.maximum(m, 1)
    k_star = np.where(passes, k, 0).max(axis=-1, keepdims=True)
    cutoff = np.take_along_axis(ordered, np.maximum(k_star - 1, 0), axis=-1)
    return mask & (k_star > 0) & (p <= cutoff)


# ----------------------------------------------------------------------------- the per-neuron null


def cmni_rows_only(inputs, groups):
    """(inputs, groups int32) of the CMNI rows (groups 0-2), the rows `cmni.permutation_null`
    shuffles: keeping the same rows in the same order gives the same permutations."""
    groups = np.asarray(groups)
    keep = (groups >= 0) & (groups < CMNI_GROUPS)
    return jnp.asarray(np.asarray(inputs)[keep]), jnp.asarray(groups[keep].astype(np.int32))


def _neuron_mask(flat_params, flat_masks) -> jax.Array:
    """bool[models, neurons]: the real hidden units, then every output."""
    models, actions = flat_params["output"]["bias"].shape
    return jnp.concatenate(flat_masks + [jnp.ones((models, actions), bool)], axis=1)


@functools.partial(jax.jit, static_argnames=("activation", "chunk_rows"))
def _neuron_null_flat(flat_params, flat_masks, inputs, groups, shuffled, *, activation, chunk_rows):
    # The label sets of `cmni.permutation_null`: set 0 is the total of every CMNI row, sets
    # 1..K the permuted frog (1 -> 0) and toad (2 -> 1) rows; none = total - frog - toad.
    labels = jnp.concatenate([jnp.zeros((1, groups.shape[0]), jnp.int32), shuffled.astype(jnp.int32) - 1])
    sums = group_sums(flat_params, flat_masks, inputs, labels, groups=2, activation=activation, chunk_rows=chunk_rows)
    counts = jnp.sum(jax.nn.one_hot(groups, CMNI_GROUPS, dtype=jnp.float32), axis=0)
    frog, toad = sums[:, :, 1:, 0], sums[:, :, 1:, 1]  # [models, hidden, K]
    none = sums[:, :, :1, 0] - frog - toad
    hidden_mu = jnp.stack([none / counts[0], frog / counts[1], toad / counts[2]], axis=-1)  # [models, hidden, K, 3]
    mu = jnp.concatenate([hidden_mu, output_means(flat_params, hidden_mu, flat_masks[-1].shape[-1])], axis=1)
    d_frog = mu[..., 1] - mu[..., 0]  # [models, neurons, K]
    d_toad = mu[..., 2] - mu[..., 0]
    real = _neuron_mask(flat_params, flat_masks)[:, :, None]
    mns = jnp.where(real & (d_frog > 0) & (d_toad > 0), jnp.minimum(d_frog, d_toad), 0.0)
    return jnp.where(real, d_frog, 0.0), jnp.where(real, d_toad, 0.0), mns


_FROG_TOAD_STREAM = 0xF7  # the Frog-Toad shuffles' random stream (apart from permuted_groups')


def frog_toad_permutations(seed: int, groups: np.ndarray, permutations: int) -> np.ndarray:
    """int8[K, rows]: K shuffles of the labels of the Frog- and Toad-distress rows among
    those rows only; every other row (none, or outside the CMNI groups) keeps its label."""
    groups = np.asarray(groups, np.int8)
    distress = (groups == FROG) | (groups == TOAD)
    out = np.broadcast_to(groups, (permutations, len(groups))).copy()
    rng = np.random.default_rng((seed, _FROG_TOAD_STREAM))
    out[:, distress] = rng.permuted(np.broadcast_to(groups[distress], (permutations, int(distress.sum()))), axis=1)
    return out


@functools.partial(jax.jit, static_argnames=("activation", "chunk_rows"))
def _difference_null_flat(flat_params, flat_masks, inputs, groups, shuffled, *, activation, chunk_rows):
    # Frog (1 -> 0) and Toad (2 -> 1) columns per shuffle; the group sizes stay.
    sums = group_sums(flat_params, flat_masks, inputs, shuffled.astype(jnp.int32) - 1, groups=2, activation=activation, chunk_rows=chunk_rows)
    counts = jnp.sum(jax.nn.one_hot(groups, CMNI_GROUPS, dtype=jnp.float32), axis=0)
    hidden_mu = sums / counts[1:]  # [models, hidden, K, 2]
    mu = jnp.concatenate([hidden_mu, output_means(flat_params, hidden_mu, flat_masks[-1].shape[-1])], axis=1)
    return jnp.where(_neuron_mask(flat_params, flat_masks)[:, :, None], mu[..., 0] - mu[..., 1], 0.0)  # [models, neurons, K]


def neuron_null_mns(seed: int, params, inputs, groups, *, permutations: int = 200, unit_mask=None, activation: str = "relu", chunk_rows: int = 512) -> NeuronNull:
    """Every neuron's dFrog, dToad and MNS under K label permutations, and dFrog - dToad
    under K Frog-Toad shuffles: [..., neurons, K] for params with leading model axes `...`.
    The permutations are those of `cmni.permutation_null(seed, ...)` on the same rows
    (module docstring)."""
    if permutations < 1:
        raise ValueError(f"neuron_null_mns needs at least one permutation, got {permutations}")
    masks = full_unit_mask(params, unit_mask)
    lead = model_axes(params)
    flat_params, flat_masks = flatten_models(params, masks)
    x, g = cmni_rows_only(inputs, groups)
    shuffled = jnp.asarray(permuted_groups(seed, np.asarray(g), permutations))
    out = _neuron_null_flat(flat_params, flat_masks, x, g, shuffled, activation=activation, chunk_rows=chunk_rows)
    frog_toad = jnp.asarray(frog_toad_permutations(seed, np.asarray(g), permutations))
    diff = _difference_null_flat(flat_params, flat_masks, x, g, frog_toad, activation=activation, chunk_rows=chunk_rows)
    return NeuronNull(*(v.reshape(lead + v.shape[1:]) for v in (*out, diff)))


# ----------------------------------------------------------------------------- p-values and roles


def _one_sided_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """(1 + #{null >= observed}) / (K + 1), and 1 where the observed value is not > 0."""
    p = (1 + (null >= observed[..., None]).sum(axis=-1)) / (null.shape[-1] + 1)
    return np.where(observed > 0, p, 1.0)


def _two_sided_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """(1 + #{|null| >= |observed|}) / (K + 1), with a float32 tolerance: a shuffle that
    reproduces the observed split ties with it."""
    tol = 1e-6 * np.maximum(np.abs(observed), 1e-30)
    return (1 + (np.abs(null) >= np.abs(observed)[..., None] - tol[..., None]).sum(axis=-1)) / (null.shape[-1] + 1)


def neuron_p_values(d_frog, d_toad, mns, null: NeuronNull, neuron_mask=None, alpha: float = 0.05) -> NeuronP:
    """Observed d_frog, d_toad, mns [..., neurons] and their null [..., neurons, K] -> the
    p-values (NaN where `neuron_mask` is False) and each test's BH decision at `alpha`
    over the real neurons of each model (module docstring). Without `null.diff` the
    difference test is not run (p_diff NaN, nothing significant)."""
    observed = [np.asarray(v, np.float64) for v in (mns, d_frog, d_toad)]
    nulls = [np.asarray(v, np.float64) for v in (null.mns, null.d_frog, null.d_toad)]
    real = np.ones(observed[0].shape, bool) if neuron_mask is None else np.broadcast_to(np.asarray(neuron_mask, bool), observed[0].shape)
    p = [np.where(real, _one_sided_p(o, n), np.nan) for o, n in zip(observed, nulls)]
    significant = [benjamini_hochberg(np.where(real, v, 1.0), alpha, real) for v in p]
    if null.diff is None:
        p_diff, significant_diff = np.full(real.shape, np.nan), np.zeros(real.shape, bool)
    else:
        p_diff = np.where(real, _two_sided_p(observed[1] - observed[2], np.asarray(null.diff, np.float64)), np.nan)
        significant_diff = benjamini_hochberg(np.where(real, p_diff, 1.0), alpha, real)
    return NeuronP(*p, *significant, p_diff, significant_diff)


def init_p_values(scores, real, init_scores, init_real, layer_of) -> np.ndarray:
    """float[members, neurons]: each neuron's one-sided p-value against the random-init
    units of its layer, (1 + #{init units with score >= the neuron's}) / (n + 1), n the
    real init units of the layer over all draws; 1 where the neuron's score is not > 0,
    NaN where it is not real. scores [members, neurons], real bool[members, neurons],
    init_scores / init_real [members, S, neurons] (each member's S initialisations;
    padded units are left out)."""
    scores = np.asarray(scores, np.float64)
    pooled_all = np.where(np.asarray(init_real, bool), np.asarray(init_scores, np.float64), np.nan)
    p = np.ones(scores.shape)
    layer_of = np.asarray(layer_of)
    for layer in np.unique(layer_of):  # a handful of layers
        in_layer = layer_of == layer
        pooled = pooled_all[:, :, in_layer].reshape(len(scores), 1, -1)  # [members, 1, S x units]
        at_least = (pooled >= scores[:, in_layer, None]).sum(axis=-1)  # NaN compares False
        p[:, in_layer] = (1 + at_least) / (1 + np.isfinite(pooled).sum(axis=-1))
    return np.where(np.asarray(real, bool), np.where(scores > 0, p, 1.0), np.nan)


def above_init(p_init, real, layer_of, alpha: float = 0.05) -> np.ndarray:
    """bool[members, neurons]: BH at `alpha` on `init_p_values`, within each layer (the
    reference the p-values are drawn from)."""
    out = np.zeros(np.shape(p_init), bool)
    real = np.asarray(real, bool)
    for layer in np.unique(layer_of):
        in_layer = np.asarray(layer_of) == layer
        mask = real[:, in_layer]
        out[:, in_layer] = benjamini_hochberg(np.where(mask, p_init[:, in_layer], 1.0), alpha, mask)
    return out


def significant_roles(p: NeuronP, mns, neuron_mask=None, calibrated=None) -> np.ndarray:
    """int[..., neurons]: MIRROR, DIFFERENTIATING or OTHER by the rule of the module
    docstring; calibrated bool[..., neurons] (`above_init`; None: no calibration, every
    neuron passes)."""
    mns = np.asarray(mns)
    real = np.ones(mns.shape, bool) if neuron_mask is None else np.broadcast_to(np.asarray(neuron_mask, bool), mns.shape)
    calibrated = np.ones(mns.shape, bool) if calibrated is None else np.asarray(calibrated, bool)
    frog, toad = p.significant_frog & real, p.significant_toad & real
    mirror = real & (mns > 0) & p.significant_mirror & frog & toad & calibrated
    differentiating = real & p.significant_diff & (frog | toad) & ~mirror
    return np.where(mirror, MIRROR, np.where(differentiating, DIFFERENTIATING, OTHER))


def untested(shape) -> NeuronP:
    """The NeuronP of neurons that were not tested (no permutations): NaN p, nothing significant."""
    nan, false = np.full(shape, np.nan), np.zeros(shape, bool)
    return NeuronP(nan, nan, nan, false, false, false, nan, false)
