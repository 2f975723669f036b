"""Per-neuron significance: which neurons' distress responses are more than chance.

The paper's roles (`mirror.analysis.neurons`) use thresholds fitted to its Table 4. Here
each neuron's responses get a permutation p-value instead, and the roles follow from
Benjamini-Hochberg control of the false discovery rate.

The null. The group labels (none, frog, toad) of the CMNI rows are shuffled K times,
with THE SAME K shufflings as the CMNI's permutation null (`cmni.permuted_groups(seed,
CMNI rows' groups, K)`), so `neuron_null_mns(...).mns.sum(neurons) / N` is exactly the
null CMNI of `cmni.permutation_null` with the same seed. For each shuffle and neuron:
dFrog*, dToad* and MNS* = min(dFrog*, dToad*) when both are positive, else 0.

The p-values (one-sided, `(1 + #{null >= observed}) / (K + 1)`, so never below
1 / (K + 1)):

    p_mirror  for MNS > 0      (1 where the observed MNS is 0)
    p_frog    for dFrog > 0    (1 where the observed dFrog <= 0)
    p_toad    for dToad > 0    (1 where the observed dToad <= 0)

Setting p = 1 where the observed statistic shows no rise only makes the test more
conservative, so the p-values stay valid.

The roles (`significant_roles`), each test BH-controlled at `alpha` over the real neurons
of one model (hidden and output layers together; padded neurons are not tested and not
counted), the three tests as three separate families:

    mirror           MNS > 0, p_mirror significant, AND p_frog and p_toad both significant
    differentiating  exactly one of p_frog, p_toad significant (and not mirror)
    other            everything else

Why mirror also needs both one-sided tests: the label permutation tests exchangeability
of the three groups, which a neuron responding to one distress alone already violates;
its chance MNS (a chance rise to the other distress) can then look significant (in a
simulation at alpha 0.05, 10 % of such neurons pass the MNS test; 4 % pass the rule). Asking
for both rises to be significant (an intersection-union test) makes "mirror" mean what
it says: the neuron rises in both distress groups.

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
from mirror.analysis.groups import CMNI_GROUPS
from mirror.analysis.neurons import DIFFERENTIATING, MIRROR, OTHER


class NeuronNull(NamedTuple):
    """Per-neuron null statistics [..., neurons, K] (neurons ordered as `CMNIResult`; 0 for padded neurons)."""

    d_frog: jax.Array
    d_toad: jax.Array
    mns: jax.Array


class NeuronP(NamedTuple):
    """Per-neuron p-values [..., neurons] (NaN for padded neurons) and BH decisions."""

    p_mirror: np.ndarray
    p_frog: np.ndarray
    p_toad: np.ndarray
    significant_mirror: np.ndarray  # bool: BH-significant on p_mirror
    significant_frog: np.ndarray
    significant_toad: np.ndarray


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


def neuron_null_mns(seed: int, params, inputs, groups, *, permutations: int = 200, unit_mask=None, activation: str = "relu", chunk_rows: int = 512) -> NeuronNull:
    """Every neuron's dFrog, dToad and MNS under K label permutations: [..., neurons, K]
    for params with leading model axes `...`. The permutations are those of
    `cmni.permutation_null(seed, ...)` on the same rows (module docstring)."""
    if permutations < 1:
        raise ValueError(f"neuron_null_mns needs at least one permutation, got {permutations}")
    masks = full_unit_mask(params, unit_mask)
    lead = model_axes(params)
    flat_params, flat_masks = flatten_models(params, masks)
    x, g = cmni_rows_only(inputs, groups)
    shuffled = jnp.asarray(permuted_groups(seed, np.asarray(g), permutations))
    out = _neuron_null_flat(flat_params, flat_masks, x, g, shuffled, activation=activation, chunk_rows=chunk_rows)
    return NeuronNull(*(v.reshape(lead + v.shape[1:]) for v in out))


# ----------------------------------------------------------------------------- p-values and roles


def _one_sided_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """(1 + #{null >= observed}) / (K + 1), and 1 where the observed value is not > 0."""
    p = (1 + (null >= observed[..., None]).sum(axis=-1)) / (null.shape[-1] + 1)
    return np.where(observed > 0, p, 1.0)


def neuron_p_values(d_frog, d_toad, mns, null: NeuronNull, neuron_mask=None, alpha: float = 0.05) -> NeuronP:
    """Observed d_frog, d_toad, mns [..., neurons] and their null [..., neurons, K] -> the
    p-values (NaN where `neuron_mask` is False) and each test's BH decision at `alpha`
    over the real neurons of each model (module docstring)."""
    observed = [np.asarray(v, np.float64) for v in (mns, d_frog, d_toad)]
    nulls = [np.asarray(v, np.float64) for v in (null.mns, null.d_frog, null.d_toad)]
    real = np.ones(observed[0].shape, bool) if neuron_mask is None else np.broadcast_to(np.asarray(neuron_mask, bool), observed[0].shape)
    p = [np.where(real, _one_sided_p(o, n), np.nan) for o, n in zip(observed, nulls)]
    significant = [benjamini_hochberg(np.where(real, v, 1.0), alpha, real) for v in p]
    return NeuronP(*p, *significant)


def significant_roles(p: NeuronP, mns, neuron_mask=None) -> np.ndarray:
    """int[..., neurons]: MIRROR, DIFFERENTIATING or OTHER by the rule of the module docstring."""
    mns = np.asarray(mns)
    real = np.ones(mns.shape, bool) if neuron_mask is None else np.broadcast_to(np.asarray(neuron_mask, bool), mns.shape)
    frog, toad = p.significant_frog & real, p.significant_toad & real
    mirror = real & (mns > 0) & p.significant_mirror & frog & toad
    differentiating = (frog ^ toad) & ~mirror
    return np.where(mirror, MIRROR, np.where(differentiating, DIFFERENTIATING, OTHER))


def untested(shape) -> NeuronP:
    """The NeuronP of neurons that were not tested (no permutations): NaN p, nothing significant."""
    nan, false = np.full(shape, np.nan), np.zeros(shape, bool)
    return NeuronP(nan, nan, nan, false, false, false)
