"""Two CMNIs beside the paper's, with the same nulls: scale-free and composition-matched.

`VARIANTS` names three indices; each is `sum_n MNS_n / N` over the same neurons and test
rows as `mirror.analysis.cmni` (groups 0-2 of `mirror.analysis.groups`), and differs only
in how dFrog_n and dToad_n are formed:

- **cmni**: the paper's raw CMNI, unchanged (`cmni.cmni`).
- **cmni_scaled**: dFrog_n / s_n and dToad_n / s_n, where s_n is neuron n's activation
  standard deviation (ddof 0) over every row of groups 0-2 pooled together. Raw CMNI
  scales with the weights (multiplying a layer's kernel and bias by c > 0 multiplies that
  layer's deltas by c, and weight decay shrinks them), so a trained network and an
  untrained one are not comparable on it; the scaled terms are invariant. Floor: s_n is
  raised to at least RELATIVE_FLOOR (1e-3) x the median s of the live (s > 0, real)
  neurons of its layer, then to ABSOLUTE_FLOOR (1e-12), so a nearly dead neuron cannot
  blow up its term and a dead layer gives 0, not NaN. Because the floor is relative,
  scale invariance holds exactly (above the absolute floor). The pooled std does not
  change under a permutation of the group labels, so the permutation null divides the
  permuted deltas by the same s_n. Two passes over row chunks: the pooled mean, then the
  centred squares (as `mirror.analysis.moments`), hidden and output neurons alike.
- **cmni_matched**: post-stratification of the group means. Cells are oracle label (4)
  x energy bin (`analysis.match_energy_bins` bins, edges at the baseline group's energy
  quantiles, energy = the model input `layout_of(inputs).energy`, bin i = (e_{i-1}, e_i];
  tied quantiles merge bins). The common support S is the set of cells that hold rows of
  all three groups; group g's matched mean is

      mu~_n(g) = sum_{c in S} p0(c | S) x mean of neuron n over group g's rows in cell c,

  p0 the baseline (group 0) composition. Each group then has the baseline's label x
  energy mix on S, so a delta no longer measures a difference in label rates. Row r of
  group g in cell c carries the weight p0(c|S) / n_g(c) (0 outside S), so this is one
  weighted one-hot pass. Reported per group (`VariantCMNI.matching`): the effective
  sample size (sum w)^2 / sum w^2 and `coverage`, the share of the group's rows in S
  (the baseline's is the share of the baseline the matched means speak for). The
  permutation null for this variant permutes the group labels WITHIN cells (stratified):
  every group keeps its count in every cell, so the weights stay fixed and the K null
  values cost one weighted one-hot pass of 3K columns. Without oracle labels (cells
  None) the matched variant is NaN; with an empty support too.

Everything is vectorised over the parameters' leading model axes (`[checkpoints]` or
`[checkpoints, members]`) and over row chunks, like `cmni.cmni`.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mirror.analysis.cmni import (
    cmni_stats,
    flat_layer_of,
    flat_neuron_mask,
    flatten_models,
    full_unit_mask,
    group_counts,
    group_sums,
    model_axes,
    neuron_activations_t,
    output_means,
    permutation_cmni_jit,
    permutation_means,
    permutation_sums,
    permuted_groups,
    scan_rows,
)
from mirror.analysis.groups import CMNI_GROUPS, NONE
from mirror.env.constants import layout_of

VARIANTS = ("cmni", "cmni_scaled", "cmni_matched")
RELATIVE_FLOOR = 1e-3  # s_n >= this x the median pooled std of the live neurons of its layer
ABSOLUTE_FLOOR = 1e-12  # and >= this: a dead layer (every s = 0, every delta = 0) scores 0
LABELS = 4  # oracle labels hop, jump, leap, help
_STRATIFIED_STREAM = 0x5EED  # the stratified permutations' random stream (apart from permuted_groups')


class VariantCMNI(NamedTuple):
    """Leading axes `...` are the parameters' model axes; neurons as in CMNIResult."""

    values: dict  # variant -> [...]
    terms: dict  # variant -> [..., neurons] per-neuron MNS terms (0 for padded neurons)
    scale: jax.Array  # [..., neurons] the floored pooled std s_n of cmni_scaled
    matching: dict  # per group (none, frog, toad): ess, coverage, rows; support_cells (JSON-ready)


# ----------------------------------------------------------------------------- cells and weights


def energy_edges(inputs, groups, energy_bins: int) -> np.ndarray:
    """The inner energy-bin edges: the baseline group's energy quantiles 1/B .. (B-1)/B
    (duplicates merged: energy takes few values)."""
    energy = np.asarray(inputs)[:, layout_of(np.asarray(inputs)).energy].astype(np.float64)
    base = energy[np.asarray(groups) == NONE]
    if energy_bins <= 1 or base.size == 0:
        return np.zeros(0)
    return np.unique(np.quantile(base, np.arange(1, energy_bins) / energy_bins))


def match_cells(inputs, labels, groups, energy_bins: int) -> np.ndarray:
    """int32[rows]: each row's matching cell, label x energy_bins + energy bin; -1 for rows
    outside the CMNI groups 0-2. inputs int8[rows, 3W+4], labels int[rows] (0-3)."""
    labels, groups = np.asarray(labels).astype(np.int64), np.asarray(groups)
    if labels.shape != groups.shape:
        raise ValueError(f"labels have {labels.shape[0]} rows, groups {groups.shape[0]}")
    if labels.size and (labels.min() < 0 or labels.max() >= LABELS):
        raise ValueError(f"labels must be in 0..{LABELS - 1}, got {labels.min()}..{labels.max()}")
    energy = np.asarray(inputs)[:, layout_of(np.asarray(inputs)).energy].astype(np.float64)
    bins = np.searchsorted(energy_edges(inputs, groups, energy_bins), energy, side="left")
    cells = labels * energy_bins + bins
    cells[(groups < 0) | (groups >= CMNI_GROUPS)] = -1
    return cells.astype(np.int32)


def match_weights(groups: np.ndarray, cells: np.ndarray, cell_count: int) -> tuple[np.ndarray, dict]:
    """The post-stratification weight table float32[3, cells] (row weight = table[group,
    cell]; each group's weights sum to 1, 0 outside the support) and the matching facts."""
    groups, cells = np.asarray(groups, np.int64), np.asarray(cells, np.int64)
    inside = (groups >= 0) & (groups < CMNI_GROUPS) & (cells >= 0)
    counts = np.bincount(groups[inside] * cell_count + cells[inside], minlength=CMNI_GROUPS * cell_count)
    counts = counts.reshape(CMNI_GROUPS, cell_count).astype(np.float64)
    support = (counts > 0).all(axis=0)
    base = np.where(support, counts[0], 0.0)
    p0 = base / base.sum() if base.sum() else base
    table = np.where(support, p0 / np.where(counts > 0, counts, 1.0), 0.0)
    sum_w, sum_w2 = (table * counts).sum(axis=1), (table**2 * counts).sum(axis=1)
    ess = np.where(sum_w2 > 0, sum_w**2 / np.where(sum_w2 > 0, sum_w2, 1.0), 0.0)
    totals = counts.sum(axis=1)
    coverage = np.where(totals > 0, (counts * support).sum(axis=1) / np.where(totals > 0, totals, 1.0), 0.0)
    info = {
        "ess": [float(v) for v in ess],
        "coverage": [float(v) for v in coverage],
        "rows": [int(v) for v in totals],
        "support_cells": int(support.sum()),
    }
    return table.astype(np.float32), info


def stratified_permutations(seed: int, groups, cells, permutations: int) -> np.ndarray:
    """int8[K, rows]: K shuffles of `groups` within each cell (every group keeps its count
    in every cell): NumPy's row-wise shuffle of each cell's block of rows (a loop over the
    few cells, not over rows)."""
    groups, cells = np.asarray(groups, np.int8), np.asarray(cells, np.int64)
    rng = np.random.default_rng((seed, _STRATIFIED_STREAM))
    order = np.argsort(cells, kind="stable")
    bounds = np.flatnonzero(np.diff(cells[order])) + 1
    by_cell = np.empty((permutations, len(groups)), np.int8)
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(groups)]):
        block = groups[order[lo:hi]]
        by_cell[:, lo:hi] = rng.permuted(np.broadcast_to(block, (permutations, len(block))), axis=1)
    out = np.empty_like(by_cell)
    out[:, order] = by_cell
    return out


# ----------------------------------------------------------------------------- per-neuron terms


def mns_terms(d_frog: jax.Array, d_toad: jax.Array, neuron_mask: jax.Array) -> jax.Array:
    """min(dFrog, dToad) where both are positive and the neuron is real, else 0."""
    return jnp.where(neuron_mask & (d_frog > 0) & (d_toad > 0), jnp.minimum(d_frog, d_toad), 0.0)


def floored_scale(std: jax.Array, neuron_mask: jax.Array, layer_of: np.ndarray) -> jax.Array:
    """std[models, neurons] -> s_n floored (module docstring): max(std, RELATIVE_FLOOR x
    median live std of the layer, ABSOLUTE_FLOOR)."""
    layers = int(layer_of.max()) + 1
    in_layer = jnp.asarray(layer_of[None, :] == np.arange(layers)[:, None])  # [layers, neurons]
    live = neuron_mask & (std > 0)
    per_layer = jnp.where(live[:, None, :] & in_layer[None], std[:, None, :], jnp.nan)  # [models, layers, neurons]
    median = jnp.nan_to_num(jnp.nanmedian(per_layer, axis=-1), nan=0.0)  # a layer with no live neuron: 0
    return jnp.maximum(jnp.maximum(std, RELATIVE_FLOOR * median[:, layer_of]), ABSOLUTE_FLOOR)


def _index(terms: jax.Array, neuron_mask: jax.Array) -> jax.Array:
    """sum_n terms / N over the last (neuron) axis."""
    return terms.sum(-1) / neuron_mask.sum(-1)


def _matched_columns(groups: jax.Array, cells: jax.Array, table: jax.Array) -> jax.Array:
    """groups int[sets, rows], cells int[rows] -> float32[rows, sets * 3]: the one-hot group
    columns scaled by each row's weight table[group, cell] (0 for rows without a cell)."""
    by_group = jax.nn.one_hot(cells, table.shape[1], dtype=jnp.float32) @ table.T  # [rows, 3]: row r's weight in each group (no gather)
    return (jax.nn.one_hot(groups.T, CMNI_GROUPS, dtype=jnp.float32) * by_group[:, None, :]).reshape(groups.shape[1], -1)


def _pooled_pass(flat_params, flat_masks, inputs, groups, cells, sets, table, pooled_mean, *, activation, chunk_rows):
    """One pass over the CMNI rows: the centred squares about pooled_mean[models, neurons]
    and the weighted group sums of `sets` int[K, rows] -> float32[models, neurons, 1 + 3K]."""
    forward = jax.vmap(functools.partial(neuron_activations_t, activation=activation), in_axes=(0, 0, None))
    labels = jnp.concatenate([groups[None], cells[None], sets]).astype(jnp.int32)

    def chunk(x_t, lab):
        a = forward(flat_params, flat_masks, x_t)  # [models, neurons, rows]
        d = jnp.where(lab[0] >= 0, a - pooled_mean[:, :, None], 0.0)  # padding rows: -1
        weighted = jnp.einsum("mnr,rc->mnc", a, _matched_columns(lab[2:], lab[1], table))
        return jnp.concatenate([jnp.sum(d * d, axis=-1)[..., None], weighted], axis=-1)

    zeros = jnp.zeros(pooled_mean.shape + (1 + CMNI_GROUPS * sets.shape[0],), jnp.float32)
    return scan_rows(chunk, zeros, inputs, labels, chunk_rows)


def _pooled_mean(flat_params, flat_masks, hidden_total: jax.Array, rows) -> jax.Array:
    """[models, neurons] mean over the CMNI rows from the hidden sums over them [models, hidden]."""
    hidden = hidden_total / rows
    out = output_means(flat_params, hidden[..., None], flat_masks[-1].shape[-1])[..., 0]
    return jnp.concatenate([hidden, out], axis=1)


def _deltas(mu: jax.Array):
    return mu[..., 1] - mu[..., 0], mu[..., 2] - mu[..., 0]


# ----------------------------------------------------------------------------- observed


@functools.partial(jax.jit, static_argnames=("activation", "chunk_rows"))
def _variants_flat(flat_params, flat_masks, inputs, groups, cells, table, *, activation, chunk_rows):
    models = flat_params["output"]["bias"].shape[0]
    sums = group_sums(flat_params, flat_masks, inputs, groups[None], groups=CMNI_GROUPS, activation=activation, chunk_rows=chunk_rows)[:, :, 0]
    counts = group_counts(groups, models)  # [models, 3]
    raw = cmni_stats(flat_params, flat_masks, sums / counts[:, None, :])
    rows = counts.sum(-1)[:, None]
    pooled = _pooled_pass(
        flat_params, flat_masks, inputs, groups, cells, groups[None], table, _pooled_mean(flat_params, flat_masks, sums.sum(-1), rows),
        activation=activation, chunk_rows=chunk_rows,
    )  # fmt: skip
    mask = flat_neuron_mask(flat_params, flat_masks)
    scale = floored_scale(jnp.sqrt(pooled[..., 0] / rows), mask, flat_layer_of(flat_params, flat_masks))
    d_frog, d_toad = _deltas(raw["mu"])
    scaled = mns_terms(d_frog / scale, d_toad / scale, mask)
    matched = mns_terms(*_deltas(pooled[..., 1:]), mask)
    terms = {"cmni": raw["mns"], "cmni_scaled": scaled, "cmni_matched": matched}
    return {k: _index(t, mask) for k, t in terms.items()}, terms, scale


def _cmni_rows(inputs, groups, cells):
    """The CMNI rows (groups 0-2) of inputs, groups and cells (zeros when cells is None)."""
    groups = np.asarray(groups)
    keep = (groups >= 0) & (groups < CMNI_GROUPS)
    c = np.zeros(int(keep.sum()), np.int32) if cells is None else np.asarray(cells, np.int32)[keep]
    return jnp.asarray(np.asarray(inputs)[keep]), np.asarray(groups[keep], np.int32), c


def _matching(g: np.ndarray, c: np.ndarray, cells) -> tuple[np.ndarray, dict, bool]:
    """The weight table, the matching facts and whether the matched variant is defined."""
    # Padded to a multiple of 16 cells (empty cells weigh 0): one compiled program serves
    # any bin count up to 4, labelled or not.
    count = -(-(int(c.max()) + 1 if c.size else 1) // 16) * 16
    table, info = match_weights(g, c, count)
    defined = cells is not None and info["support_cells"] > 0
    return table, (info if cells is not None else {}), defined


def cmni_variants(params, inputs, groups, cells, *, unit_mask=None, activation: str = "relu", chunk_rows: int = 512) -> VariantCMNI:
    """Every variant of every model in `params` (leading model axes `...`) on the test rows.

    inputs int8[rows, 3W+4]; groups int8[rows] (`groups.cmni_groups`); cells int[rows] from
    `match_cells` (or None: cmni_matched is NaN); unit_mask as in `cmni.cmni`."""
    masks = full_unit_mask(params, unit_mask)
    lead = model_axes(params)
    flat_params, flat_masks = flatten_models(params, masks)
    x, g, c = _cmni_rows(inputs, groups, cells)
    table, info, defined = _matching(g, c, cells)
    values, terms, scale = _variants_flat(flat_params, flat_masks, x, jnp.asarray(g), jnp.asarray(c), jnp.asarray(table), activation=activation, chunk_rows=chunk_rows)
    shape = lambda a: a.reshape(lead + a.shape[1:])  # noqa: E731
    values, terms = {k: shape(v) for k, v in values.items()}, {k: shape(v) for k, v in terms.items()}
    if not defined:
        values["cmni_matched"] = jnp.full_like(values["cmni_matched"], jnp.nan)
        terms["cmni_matched"] = jnp.full_like(terms["cmni_matched"], jnp.nan)
    return VariantCMNI(values=values, terms=terms, scale=shape(scale), matching=info)


# ----------------------------------------------------------------------------- permutation null


@functools.partial(jax.jit, static_argnames=("activation", "chunk_rows"))
def _variant_null_flat(flat_params, flat_masks, inputs, groups, cells, sums, counts, stratified, table, *, activation, chunk_rows):
    rows = counts.sum(-1)[:, None]
    pooled = _pooled_pass(
        flat_params, flat_masks, inputs, groups, cells, stratified, table, _pooled_mean(flat_params, flat_masks, sums[:, :, 0, 0], rows),
        activation=activation, chunk_rows=chunk_rows,
    )  # fmt: skip
    mask = flat_neuron_mask(flat_params, flat_masks)
    scale = floored_scale(jnp.sqrt(pooled[..., 0] / rows), mask, flat_layer_of(flat_params, flat_masks))
    d_frog, d_toad = _deltas(permutation_means(flat_params, flat_masks, sums, counts))  # [models, neurons, K]
    scaled = _index(mns_terms(d_frog / scale[..., None], d_toad / scale[..., None], mask[..., None]).swapaxes(1, 2), mask[:, None])
    matched_mu = pooled[..., 1:].reshape(pooled.shape[:2] + (-1, CMNI_GROUPS))  # [models, neurons, K, 3]
    matched = _index(mns_terms(*_deltas(matched_mu), mask[..., None]).swapaxes(1, 2), mask[:, None])
    return scaled, matched  # [models, K] each


def variant_permutation_null(seed: int, params, inputs, groups, cells, *, permutations: int = 200, unit_mask=None, activation: str = "relu", chunk_rows: int = 512) -> dict:
    """Null values of every variant: variant -> float32[..., K].

    "cmni" and "cmni_scaled" use the K permutations of `cmni.permutation_null` (the
    "cmni" entry is bit-identical to it); "cmni_matched" uses K permutations within cells
    (`stratified_permutations`; NaN when cells is None)."""
    masks = full_unit_mask(params, unit_mask)
    lead = model_axes(params)
    flat_params, flat_masks = flatten_models(params, masks)
    x, g, c = _cmni_rows(inputs, groups, cells)
    shuffled = jnp.asarray(permuted_groups(seed, g, permutations))
    sums = permutation_sums(flat_params, flat_masks, x, shuffled, activation=activation, chunk_rows=chunk_rows)
    counts = group_counts(jnp.asarray(g), sums.shape[0])
    raw = permutation_cmni_jit(flat_params, flat_masks, sums, counts)
    table, _, defined = _matching(g, c, cells)
    stratified = jnp.asarray(stratified_permutations(seed, g, c, permutations))
    scaled, matched = _variant_null_flat(
        flat_params, flat_masks, x, jnp.asarray(g), jnp.asarray(c), sums, counts, stratified, jnp.asarray(table),
        activation=activation, chunk_rows=chunk_rows,
    )  # fmt: skip
    if not defined:
        matched = jnp.full_like(matched, jnp.nan)
    shape = lambda a: a.reshape(lead + (permutations,))  # noqa: E731
    return {"cmni": shape(raw), "cmni_scaled": shape(scaled), "cmni_matched": shape(matched)}
