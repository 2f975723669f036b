"""Per-neuron activation moments in each of the four scenarios (spec §7, paper Table 5).

mean, variance (population, ddof = 0), skewness and excess kurtosis (Fisher, biased),
i.e. `np.var`, `scipy.stats.skew` and `scipy.stats.kurtosis` with their defaults, per
neuron and group (none, frog, toad, both of `mirror.analysis.groups`). Two passes over
row chunks: group means first, then central power sums, so float32 keeps its precision
where raw power sums would cancel. Like scipy, skewness and kurtosis are NaN where the
variance is zero to float32 resolution (a dead ReLU, for instance).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mirror.analysis.cmni import flatten_models, full_unit_mask, model_axes, neuron_activations_t, one_hot_columns, scan_rows
from mirror.analysis.groups import GROUP_NAMES

GROUPS = len(GROUP_NAMES)
_RESOLUTION = 10 * float(np.finfo(np.float32).resolution)  # scipy's "effectively constant" test


class Moments(NamedTuple):
    """Leading axes `...` are the parameters' model axes; neurons as in CMNIResult."""

    mean: jax.Array  # [..., neurons, 4] groups none, frog, toad, both
    variance: jax.Array  # [..., neurons, 4]
    skewness: jax.Array  # [..., neurons, 4]
    kurtosis: jax.Array  # [..., neurons, 4] excess (normal = 0)
    counts: jax.Array  # int[4] rows per group


@functools.partial(jax.jit, static_argnames=("activation", "chunk_rows"))
def _moments_flat(flat_params, flat_masks, inputs, groups, *, activation, chunk_rows):
    forward = jax.vmap(functools.partial(neuron_activations_t, activation=activation), in_axes=(0, 0, None))
    models = flat_params["output"]["bias"].shape[0]
    neurons = sum(m.shape[-1] for m in flat_masks) + flat_params["output"]["bias"].shape[-1]
    labels = groups[None]
    counts = jnp.sum(jax.nn.one_hot(groups, GROUPS, dtype=jnp.int32), axis=0)

    def first(x_t, lab):
        return jnp.einsum("mnr,rg->mng", forward(flat_params, flat_masks, x_t), one_hot_columns(lab, GROUPS))

    mean = scan_rows(first, jnp.zeros((models, neurons, GROUPS)), inputs, labels, chunk_rows) / counts

    def second(x_t, lab):
        a = forward(flat_params, flat_masks, x_t)  # [models, neurons, rows]
        d = a - jnp.take(mean, jnp.clip(lab[0], 0, GROUPS - 1), axis=2)  # rows outside a group: one-hot zero
        powers = jnp.stack([d * d, d * d * d, d * d * d * d])
        return jnp.einsum("pmnr,rg->pmng", powers, one_hot_columns(lab, GROUPS))

    m2, m3, m4 = scan_rows(second, jnp.zeros((3, models, neurons, GROUPS)), inputs, labels, chunk_rows) / counts
    constant = m2 <= (_RESOLUTION * mean) ** 2
    skewness = jnp.where(constant, jnp.nan, m3 / jnp.where(constant, 1.0, m2) ** 1.5)
    kurtosis = jnp.where(constant, jnp.nan, m4 / jnp.where(constant, 1.0, m2) ** 2 - 3.0)
    return mean, m2, skewness, kurtosis, counts


def scenario_moments(params, inputs, groups, *, unit_mask=None, activation: str = "relu", chunk_rows: int = 512) -> Moments:
    """Moments of every neuron of every model in `params` per group (none, frog, toad, both).

    inputs int8[rows, 3W+4]; groups int8[rows] from `groups.cmni_groups` (-1 rows ignored).
    """
    masks = full_unit_mask(params, unit_mask)
    lead = model_axes(params)
    flat_params, flat_masks = flatten_models(params, masks)
    groups = np.asarray(groups)
    keep = groups >= 0
    x, g = jnp.asarray(np.asarray(inputs)[keep]), jnp.asarray(groups[keep].astype(np.int32))
    mean, var, skew, kurt, counts = _moments_flat(flat_params, flat_masks, x, g, activation=activation, chunk_rows=chunk_rows)
    shape = lambda a: a.reshape(lead + a.shape[1:])  # noqa: E731
    return Moments(shape(mean), shape(var), shape(skew), shape(kurt), counts)
