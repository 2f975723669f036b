"""The Checkpoint Mirror Neuron Index (spec §7, paper §4.5) of many models in one jitted call.

For one model and the test rows of groups 0, 1, 2 (`mirror.analysis.groups`):

    mu_n(g)  = mean activation of neuron n over the rows of group g
    dFrog_n  = mu_n(1) - mu_n(0),   dToad_n = mu_n(2) - mu_n(0)
    MNS_n    = min(dFrog_n, dToad_n) if both are positive, else 0
    MNE      = sum_n MNS_n,          CMNI = MNE / N

over every dense layer's output (hidden layers after the activation, the linear output
layer included: 17 + 17 + 4 = 38 neurons for 2 x 17). Padded (masked-out) units of a
population member are neither neurons nor counted in N.

How it is computed. Parameters carry leading model axes (`[checkpoints]` or
`[checkpoints, members]`), flattened to one `models` axis and `jax.vmap`ped. Test rows
go through in chunks (`lax.scan`), each chunk transposed to `[features, rows]` so that
the first layer is one GEMM over every model and later layers are fused multiply-add
chains along rows; per-group sums are a GEMM of the activations with the chunk's one-hot
group matrix, accumulated over chunks (Kahan-compensated). Memory is `models x hidden x chunk_rows` floats,
whatever the number of rows. The output layer is linear, so its group means follow from
the last hidden layer's means (`mu_out = mu_hidden @ W + b`) without a per-row pass.

Transformers (`mirror.agents.transformer`, told apart by their parameter tree): the
neurons are each block's MLP hidden units pooled over the cell tokens, then the outputs
(`param_widths`, `neuron_layout` read the blocks). Their outputs are not a linear map of
those means, so `group_sums` sums every neuron row by row (`neuron_activations_t`) and
`output_means` adds nothing; every caller (variants, nulls, moments) runs unchanged.

The permutation null reuses the same pass: K label permutations become K more column
pairs of the one-hot matrix, so all K null CMNIs of every model cost one more sweep.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mirror.agents.actor_critic import cmni_params, init_actor_critic
from mirror.agents.mlp import ACTIVATIONS, init_params, pad_params
from mirror.agents.transformer import (
    has_residual_neurons,
    init_transformer_params,
    is_transformer_params,
    neuron_widths,
    transformer_arch,
    transformer_of_params,
)
from mirror.agents.transformer_actor_critic import init_transformer_actor_critic
from mirror.analysis.groups import CMNI_GROUPS

UNROLL_MAX_FAN_IN = 64  # up to this fan-in a dense layer is a multiply-add chain, above it a GEMM


class CMNIResult(NamedTuple):
    """Leading axes `...` are the parameters' model axes ([checkpoints] or [checkpoints, members]).
    Neurons are ordered layer by layer (padded widths), the output layer last."""

    cmni: jax.Array  # [...]
    mne: jax.Array  # [...]
    neurons: jax.Array  # int[...] neurons counted (N)
    layer_cmni: jax.Array  # [..., layers] MNE / N within each layer (hidden layers, then outputs)
    layer_mne: jax.Array  # [..., layers]
    layer_neurons: jax.Array  # int[..., layers]
    mu: jax.Array  # [..., neurons, 3] mean activation in groups none, frog, toad
    d_frog: jax.Array  # [..., neurons]
    d_toad: jax.Array  # [..., neurons]
    mns: jax.Array  # [..., neurons] (0 for padded neurons)
    neuron_mask: jax.Array  # bool[..., neurons]: real (counted) neurons
    counts: jax.Array  # int[3] rows in groups none, frog, toad


# ----------------------------------------------------------------------------- models


def hidden_names(params) -> list[str]:
    layers = sum(1 for name in params if name.startswith("hidden_"))
    return [f"hidden_{i}" for i in range(layers)]


def model_axes(params) -> tuple:
    """The leading (model) axes of a stacked parameter pytree."""
    return params["output"]["bias"].shape[:-1]


def param_widths(params) -> list[int]:
    """The hidden widths a parameter tree is stored at (its shapes: padded for a population).
    A transformer's are its blocks' MLP hidden units (the neurons of each block)."""
    if is_transformer_params(params):
        return neuron_widths(params)
    return [int(params[name]["bias"].shape[-1]) for name in hidden_names(params)]


def analysed_widths(params, widths, padded) -> tuple[list, tuple]:
    """(each member's true hidden widths, the widths the params are stored at), for
    `unit_masks`. A transformer is never padded: its stored CMNI layers are all real,
    whatever the members' (MLP) widths say."""
    if is_transformer_params(params):
        padded = tuple(param_widths(params))
        return [list(padded)] * len(widths), padded
    return widths, padded


def neuron_layout(params) -> tuple[np.ndarray, np.ndarray]:
    """(layer int[neurons], unit int[neurons]): 0-based layer (hidden layers, then the
    output layer) and unit index of each neuron in the order used by CMNIResult."""
    widths = param_widths(params) + [int(params["output"]["bias"].shape[-1])]
    layer = np.concatenate([np.full(w, i) for i, w in enumerate(widths)])
    unit = np.concatenate([np.arange(w) for w in widths])
    return layer, unit


def full_unit_mask(params, unit_mask=None) -> list[jax.Array]:
    """bool[..., units] per hidden layer, broadcast to the model axes (all True if None)."""
    lead = model_axes(params)
    widths = param_widths(params)
    if unit_mask is None:
        return [jnp.ones(lead + (w,), bool) for w in widths]
    if len(unit_mask) != len(widths):
        raise ValueError(f"unit_mask has {len(unit_mask)} layers, the model {len(widths)}")
    return [jnp.broadcast_to(jnp.asarray(m, bool), lead + (w,)) for m, w in zip(unit_mask, widths)]


def flatten_models(params, masks):
    """Stacked params [..., ...] and masks [..., units] -> one leading `models` axis."""
    lead = model_axes(params)
    flat = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[len(lead) :]), params)
    return flat, [m.reshape(-1, m.shape[-1]) for m in masks]


def _dense_t(kernel: jax.Array, h: jax.Array, shared: bool = False) -> jax.Array:
    """kernel[fan_in, units], h[fan_in, rows] -> [units, rows] (no bias).

    shared: `h` is the same for every model (the inputs), so under vmap this is one GEMM,
    whatever the fan-in (3W + 4 inputs can be as few as 28)."""
    fan_in = kernel.shape[0]
    if shared or fan_in > UNROLL_MAX_FAN_IN:
        return kernel.T @ h
    # Tiny per-model matrices: XLA:CPU runs a batched dot of [units, fan_in] x [fan_in, rows]
    # as many small calls; a fused chain of fan_in multiply-adds vectorises along rows instead.
    out = kernel[0][:, None] * h[0][None, :]
    for j in range(1, fan_in):
        out = out + kernel[j][:, None] * h[j][None, :]
    return out


def hidden_activations_t(params, masks, x_t: jax.Array, activation: str) -> jax.Array:
    """One model: x_t[inputs, rows] -> [hidden neurons, rows], every hidden layer after the
    activation (padded units zero), stacked layer by layer. Same values as `MLP.apply`."""
    act = ACTIVATIONS[activation]
    h, outs = x_t, []
    for i, (name, mask) in enumerate(zip(hidden_names(params), masks)):
        layer = params[name]
        h = jnp.where(mask[:, None], act(_dense_t(layer["kernel"], h, shared=i == 0) + layer["bias"][:, None]), 0.0)
        outs.append(h)
    return jnp.concatenate(outs, axis=0)


def transformer_activations_t(params, x_t: jax.Array, activation: str) -> jax.Array:
    """One transformer: x_t[inputs, rows] -> [neurons, rows], each block's pooled MLP hidden
    units then the outputs (`Transformer.apply`'s activations, stacked)."""
    model = transformer_of_params(params, activation)
    _, activations = model.apply({"params": params}, x_t.T)
    return jnp.concatenate(activations, axis=1).T


def neuron_activations_t(params, masks, x_t: jax.Array, activation: str) -> jax.Array:
    """One model of either kind: x_t[inputs, rows] -> [neurons, rows] in `neuron_layout` order."""
    if is_transformer_params(params):
        return transformer_activations_t(params, x_t, activation)
    return all_activations_t(params, masks, x_t, activation)


def all_activations_t(params, masks, x_t: jax.Array, activation: str) -> jax.Array:
    """One model: x_t[inputs, rows] -> [neurons, rows], hidden layers then the linear outputs."""
    hidden = hidden_activations_t(params, masks, x_t, activation)
    last = hidden[hidden.shape[0] - masks[-1].shape[0] :]
    out = _dense_t(params["output"]["kernel"], last) + params["output"]["bias"][:, None]  # a batched [4, W] @ [W, rows] is slow on CPU
    return jnp.concatenate([hidden, out], axis=0)


# ----------------------------------------------------------------------------- group sums


def _chunks(inputs: jax.Array, labels: jax.Array, chunk_rows: int):
    """inputs[rows, n], labels[sets, rows] -> [chunks, chunk_rows, n], [chunks, sets, chunk_rows];
    padding rows get label -1 (no group)."""
    rows = inputs.shape[0]
    chunks = max(1, -(-rows // chunk_rows))
    pad = chunks * chunk_rows - rows
    inputs = jnp.pad(inputs, ((0, pad), (0, 0)))
    labels = jnp.pad(labels, ((0, 0), (0, pad)), constant_values=-1)
    return inputs.reshape(chunks, chunk_rows, -1), labels.reshape(labels.shape[0], chunks, chunk_rows).transpose(1, 0, 2)


def scan_rows(fn, zeros, inputs: jax.Array, labels: jax.Array, chunk_rows: int):
    """The sum over row chunks of fn(x_t[inputs, chunk_rows] float32, labels[sets, chunk_rows])
    (an array shaped like `zeros`).

    Chunks are added with Kahan compensation: a plain float32 running total of ~10^5
    activations drifts by ~1e-6 relative, which is the tolerance we promise.
    """
    xs = _chunks(inputs, labels, chunk_rows)

    def body(carry, chunk):
        total, compensation = carry
        y = fn(chunk[0].astype(jnp.float32).T, chunk[1]) - compensation
        new = total + y
        return (new, (new - total) - y), None

    return lax.scan(body, (zeros, jnp.zeros_like(zeros)), xs)[0][0]


def one_hot_columns(labels: jax.Array, groups: int) -> jax.Array:
    """labels[sets, rows] -> float32[rows, sets * groups]; labels outside [0, groups) give zero rows."""
    return jax.nn.one_hot(labels.T, groups, dtype=jnp.float32).reshape(labels.shape[1], -1)


def group_sums(flat_params, flat_masks, inputs, labels, *, groups: int, activation: str, chunk_rows: int):
    """Sums of every hidden neuron's activation per label set and group.

    flat_params: one leading `models` axis; inputs int8[rows, 3W+4]; labels int[sets, rows].
    Returns float32[models, hidden neurons, sets, groups]. For a transformer the "hidden"
    sums are every neuron's, outputs included (`neuron_group_sums`), and `output_means`
    adds nothing: its outputs are not a linear map of its neurons' means.
    """
    if is_transformer_params(flat_params):
        return neuron_group_sums(flat_params, flat_masks, inputs, labels, groups=groups, activation=activation, chunk_rows=chunk_rows)
    forward = jax.vmap(functools.partial(hidden_activations_t, activation=activation), in_axes=(0, 0, None))
    models = flat_params["output"]["bias"].shape[0]
    hidden = sum(m.shape[-1] for m in flat_masks)

    def chunk_sums(x_t, lab):
        h = forward(flat_params, flat_masks, x_t)  # [models, hidden, rows]
        return jnp.einsum("mhr,rc->mhc", h, one_hot_columns(lab, groups))

    total = jnp.zeros((models, hidden, labels.shape[0] * groups), jnp.float32)
    total = scan_rows(chunk_sums, total, inputs, labels, chunk_rows)
    return total.reshape(models, hidden, labels.shape[0], groups)


# ----------------------------------------------------------------------------- CMNI from means


def output_means(flat_params, hidden_mu: jax.Array, last_width: int) -> jax.Array:
    """The linear output layer's group means from the last hidden layer's:
    hidden_mu[models, hidden, ...] -> [models, actions, ...]. A transformer's hidden_mu
    already holds its outputs' means (`group_sums`): none are added, [models, 0, ...]."""
    if is_transformer_params(flat_params):
        return hidden_mu[:, :0]
    last = hidden_mu[:, hidden_mu.shape[1] - last_width :]
    kernel, bias = flat_params["output"]["kernel"], flat_params["output"]["bias"]
    mu = jnp.einsum("mu...,mua->ma...", last, kernel)
    return mu + bias.reshape(bias.shape + (1,) * (mu.ndim - 2))


def _stats(mu: jax.Array, neuron_mask: jax.Array, layer_of: np.ndarray, layers: int) -> dict:
    """One model: mu[neurons, 3], neuron_mask bool[neurons] -> the CMNIResult fields."""
    d_frog = mu[:, 1] - mu[:, 0]
    d_toad = mu[:, 2] - mu[:, 0]
    mns = jnp.where(neuron_mask & (d_frog > 0) & (d_toad > 0), jnp.minimum(d_frog, d_toad), 0.0)
    by_layer = jnp.asarray(np.eye(layers, dtype=np.float32)[layer_of])  # [neurons, layers]
    layer_mne = mns @ by_layer
    layer_neurons = neuron_mask.astype(jnp.int32) @ by_layer.astype(jnp.int32)
    neurons = layer_neurons.sum()
    return dict(
        cmni=layer_mne.sum() / neurons,
        mne=layer_mne.sum(),
        neurons=neurons,
        layer_cmni=layer_mne / layer_neurons,
        layer_mne=layer_mne,
        layer_neurons=layer_neurons,
        mu=mu,
        d_frog=d_frog,
        d_toad=d_toad,
        mns=mns,
        neuron_mask=neuron_mask,
    )


def flat_neuron_mask(flat_params, flat_masks) -> jax.Array:
    """bool[models, neurons]: the real (counted) neurons of flattened models, outputs last."""
    return _neuron_mask(flat_params, flat_masks)


def flat_layer_of(flat_params, flat_masks) -> np.ndarray:
    """int[neurons]: each neuron's 0-based layer (hidden layers, then the outputs)."""
    return _layer_of(flat_masks, flat_params)


def _neuron_mask(flat_params, flat_masks) -> jax.Array:
    models = flat_params["output"]["bias"].shape[0]
    actions = flat_params["output"]["bias"].shape[1]
    return jnp.concatenate(flat_masks + [jnp.ones((models, actions), bool)], axis=1)


def neuron_group_sums(flat_params, flat_masks, inputs, labels, *, groups: int, activation: str, chunk_rows: int):
    """Like `group_sums`, over every neuron (outputs included, computed row by row):
    float32[models, neurons, sets, groups]. The path for models whose outputs are not a
    linear map of their last neurons' means (transformers)."""
    forward = jax.vmap(functools.partial(neuron_activations_t, activation=activation), in_axes=(0, 0, None))
    models = flat_params["output"]["bias"].shape[0]
    neurons = sum(m.shape[-1] for m in flat_masks) + flat_params["output"]["bias"].shape[-1]

    def chunk_sums(x_t, lab):
        return jnp.einsum("mhr,rc->mhc", forward(flat_params, flat_masks, x_t), one_hot_columns(lab, groups))

    total = scan_rows(chunk_sums, jnp.zeros((models, neurons, labels.shape[0] * groups), jnp.float32), inputs, labels, chunk_rows)
    return total.reshape(models, neurons, labels.shape[0], groups)


@functools.partial(jax.jit, static_argnames=("activation", "chunk_rows"))
def _cmni_flat(flat_params, flat_masks, inputs, groups, *, activation, chunk_rows):
    sums = group_sums(flat_params, flat_masks, inputs, groups[None], groups=CMNI_GROUPS, activation=activation, chunk_rows=chunk_rows)
    counts = jnp.sum(jax.nn.one_hot(groups, CMNI_GROUPS, dtype=jnp.int32), axis=0)
    return cmni_stats(flat_params, flat_masks, sums[:, :, 0] / counts), counts  # hidden means [models, hidden, 3]


def cmni_stats(flat_params, flat_masks, hidden_mu: jax.Array) -> dict:
    """The CMNIResult fields (all but `counts`) of every model from its hidden neurons'
    group means hidden_mu[models, hidden, 3] (none, frog, toad); the output layer's
    means follow from the last hidden layer's. Leaves have a leading `models` axis."""
    mu = jnp.concatenate([hidden_mu, output_means(flat_params, hidden_mu, flat_masks[-1].shape[-1])], axis=1)
    layer_of = _layer_of(flat_masks, flat_params)
    return jax.vmap(lambda m, k: _stats(m, k, layer_of, int(layer_of.max()) + 1))(mu, _neuron_mask(flat_params, flat_masks))


def _layer_of(flat_masks, flat_params) -> np.ndarray:
    widths = [m.shape[-1] for m in flat_masks] + [flat_params["output"]["bias"].shape[-1]]
    return np.concatenate([np.full(w, i) for i, w in enumerate(widths)])


def _cmni_rows(inputs, groups):
    """Keep only the rows that feed the CMNI (groups 0, 1, 2): the others cost time and add nothing."""
    groups = np.asarray(groups)
    keep = (groups >= 0) & (groups < CMNI_GROUPS)
    return jnp.asarray(np.asarray(inputs)[keep]), jnp.asarray(groups[keep].astype(np.int32))


def cmni(params, inputs, groups, *, unit_mask=None, activation: str = "relu", chunk_rows: int = 512) -> CMNIResult:
    """CMNI of every model in `params` (leading model axes `...`) on the test rows.

    inputs int8[rows, 3W+4] (model inputs, spec §5.6; see `groups.leak_scenario` for the
    published leak); groups int8[rows] from `groups.cmni_groups` (rows outside 0-2 are
    ignored); unit_mask: None or bool[..., units] per hidden layer (padded populations).
    Returns a `CMNIResult`: `.cmni` float32[...], one per model; per-neuron fields
    [..., neurons] (see the class).
    """
    masks = full_unit_mask(params, unit_mask)
    lead = model_axes(params)
    flat_params, flat_masks = flatten_models(params, masks)
    x, g = _cmni_rows(inputs, groups)
    stats, counts = _cmni_flat(flat_params, flat_masks, x, g, activation=activation, chunk_rows=chunk_rows)
    stats = {k: v.reshape(lead + v.shape[1:]) for k, v in stats.items()}
    return CMNIResult(counts=counts, **stats)


# ----------------------------------------------------------------------------- null baselines


@functools.partial(jax.jit, static_argnames=("activation", "chunk_rows"))
def permutation_sums(flat_params, flat_masks, inputs, shuffled, *, activation: str, chunk_rows: int) -> jax.Array:
    """The permuted-label group sums [models, hidden, 1 + K, 2] that `permutation_cmni`
    reads, of the CMNI rows inputs[rows, 3W+4] under shuffled int[K, rows] (groups 0-2).
    One jitted program, shared by every null built on the same permutations (so they agree
    bit for bit)."""
    # Label set 0 puts every row in its group 0: the total. Sets 1..K hold the permuted
    # frog (1 -> 0) and toad (2 -> 1) rows; the none-rows (-1) follow as total - frog - toad.
    labels = jnp.concatenate([jnp.zeros((1, shuffled.shape[1]), jnp.int32), shuffled.astype(jnp.int32) - 1])
    return group_sums(flat_params, flat_masks, inputs, labels, groups=2, activation=activation, chunk_rows=chunk_rows)


def group_counts(groups: jax.Array, models: int) -> jax.Array:
    """int[models, 3] rows of the CMNI groups 0-2 (a permutation keeps them)."""
    counts = jnp.sum(jax.nn.one_hot(groups, CMNI_GROUPS, dtype=jnp.int32), axis=0)
    return jnp.broadcast_to(counts, (models, CMNI_GROUPS))


def permutation_means(flat_params, flat_masks, sums: jax.Array, counts: jax.Array) -> jax.Array:
    """Every neuron's group means under each permutation, mu[models, neurons, K, 3] (none,
    frog, toad), from `permutation_sums`' sums[models, hidden, 1 + K, 2] and counts
    int[models, 3]; the output layer's follow from the last hidden layer's."""
    frog, toad = sums[:, :, 1:, 0], sums[:, :, 1:, 1]  # [models, hidden, K]
    none = sums[:, :, :1, 0] - frog - toad
    per_group = lambda total, g: total / counts[:, g, None, None]  # noqa: E731
    hidden_mu = jnp.stack([per_group(none, 0), per_group(frog, 1), per_group(toad, 2)], axis=-1)  # [models, hidden, K, 3]
    return jnp.concatenate([hidden_mu, output_means(flat_params, hidden_mu, flat_masks[-1].shape[-1])], axis=1)


def permutation_cmni(flat_params, flat_masks, sums: jax.Array, counts: jax.Array) -> jax.Array:
    """The null CMNIs [models, K] from permuted-label sums: sums[models, hidden, 1 + K, 2]
    (`group_sums` with label set 0 putting every CMNI row in group 0, the total, and sets
    1..K holding the permuted frog (1 -> 0) and toad (2 -> 1) rows; the none-rows follow
    as total - frog - toad); counts int[models, 3] rows per group (kept by a permutation)."""
    return cmni_of_means(flat_params, flat_masks, permutation_means(flat_params, flat_masks, sums, counts))


def cmni_of_means(flat_params, flat_masks, mu: jax.Array) -> jax.Array:
    """The CMNI [models, K] of K sets of group means mu[models, neurons, K, 3] (none, frog,
    toad; every neuron, outputs included), e.g. the means under K relabellings of the rows."""
    layer_of = _layer_of(flat_masks, flat_params)
    one = lambda m, k: _stats(m, k, layer_of, int(layer_of.max()) + 1)["cmni"]  # noqa: E731
    per_set = jax.vmap(one, in_axes=(0, None))  # over K
    return jax.vmap(per_set)(mu.transpose(0, 2, 1, 3), _neuron_mask(flat_params, flat_masks))  # [models, K]


permutation_cmni_jit = jax.jit(permutation_cmni)


def permuted_groups(seed: int, groups: np.ndarray, permutations: int) -> np.ndarray:
    """int8[K, rows]: K independent shuffles of `groups` (NumPy's row-wise Fisher-Yates:
    a sort-based `jax.random.permutation` of 10^5 rows is ~50x slower on CPU)."""
    rng = np.random.default_rng(seed)
    return rng.permuted(np.broadcast_to(np.asarray(groups, np.int8), (permutations, len(groups))), axis=1)


def permutation_null(seed: int, params, inputs, groups, *, permutations: int = 200, unit_mask=None, activation: str = "relu", chunk_rows: int = 512):
    """CMNI with the group labels of the CMNI rows (groups 0-2) permuted, K times:
    float32[..., K] for params with leading model axes `...`, inputs int8[rows, 3W+4] and
    groups int8[rows] as in `cmni`. Group sizes are kept; the K = `permutations`
    permutations (`permuted_groups(seed, CMNI rows' groups, K)`, from the int `seed`) are
    shared by all models."""
    masks = full_unit_mask(params, unit_mask)
    lead = model_axes(params)
    flat_params, flat_masks = flatten_models(params, masks)
    x, g = _cmni_rows(inputs, groups)
    shuffled = jnp.asarray(permuted_groups(seed, np.asarray(g), permutations))
    sums = permutation_sums(flat_params, flat_masks, x, shuffled, activation=activation, chunk_rows=chunk_rows)
    null = permutation_cmni_jit(flat_params, flat_masks, sums, group_counts(g, sums.shape[0]))
    return null.reshape(lead + (permutations,))


def empirical_p_value(observed, null):
    """(1 + #{null >= observed}) / (K + 1) per model: observed[...], null[..., K]."""
    observed, null = jnp.asarray(observed), jnp.asarray(null)
    return (1 + jnp.sum(null >= observed[..., None], axis=-1)) / (null.shape[-1] + 1)


# The `kernel_init` name that draws the null from the actor-critic's own initialisation
# (orthogonal, PureJaxRL scales; `mirror.agents.actor_critic`) rather than the MLP's: an RL
# run's networks start there, so that is the random baseline their CMNI is compared with.
ACTOR_CRITIC_INIT = "actor_critic"


def _actor_critic_init(key, *, widths, activation, num_inputs):
    return cmni_params(init_actor_critic(key, widths, activation, num_inputs=num_inputs))


@functools.lru_cache(maxsize=None)
def _jitted_init(widths: tuple, activation: str, kernel_init: str, num_inputs: int):
    # One jitted init called per key: compiling a vmapped init takes several seconds on CPU.
    if kernel_init == ACTOR_CRITIC_INIT:
        return jax.jit(functools.partial(_actor_critic_init, widths=widths, activation=activation, num_inputs=num_inputs))
    return jax.jit(functools.partial(init_params, widths=widths, activation=activation, kernel_init=kernel_init, num_inputs=num_inputs))


def init_params_batch(key, seeds: int, widths, *, num_inputs: int, activation: str = "relu", kernel_init: str = "glorot_uniform", padded_to=None):
    """Parameters of `seeds` freshly initialised models [seeds, ...] (numpy) for `num_inputs`
    model inputs (the data's 3W + 4), optionally zero-padded to wider hidden layers. The
    i-th model is `init_params(split(key)[i], ...)`; with kernel_init=ACTOR_CRITIC_INIT it
    is the actor-critic's CMNI layers, `cmni_params(init_actor_critic(split(key)[i], ...))`."""
    widths = tuple(int(w) for w in widths)
    init = _jitted_init(widths, activation, kernel_init, int(num_inputs))
    models = [jax.tree.map(np.asarray, init(k)) for k in jax.random.split(key, seeds)]
    params = jax.tree.map(lambda *leaves: np.stack(leaves), *models)
    if padded_to is None or tuple(padded_to) == widths:
        return params
    return jax.tree.map(np.asarray, pad_params(params, widths, padded_to))


def _transformer_actor_critic_init(key, *, arch, activation, num_inputs):
    return cmni_params(init_transformer_actor_critic(key, arch, activation, num_inputs=num_inputs))


@functools.lru_cache(maxsize=None)
def _jitted_transformer_init(arch: tuple, activation: str, kernel_init: str, num_inputs: int, residual_neurons: bool = False):
    if kernel_init == ACTOR_CRITIC_INIT:  # an RL run's transformer torso (`mirror.agents.transformer_actor_critic`)
        return jax.jit(functools.partial(_transformer_actor_critic_init, arch=arch, activation=activation, num_inputs=num_inputs))
    depth, d_model, heads, mlp_ratio = arch
    return jax.jit(
        functools.partial(
            init_transformer_params, num_inputs=num_inputs, depth=depth, d_model=d_model, heads=heads, mlp_ratio=mlp_ratio,
            activation=activation, kernel_init=kernel_init, residual_neurons=residual_neurons,
        )
    )  # fmt: skip


def init_transformer_batch(key, seeds: int, like, *, num_inputs: int, activation: str = "relu", kernel_init: str = "glorot_uniform"):
    """`seeds` freshly initialised transformers [seeds, ...] (numpy) of the architecture of
    the params `like` (any leading model axes); the i-th is initialised from split(key)[i].
    kernel_init=ACTOR_CRITIC_INIT draws the RL transformer actor-critic's CMNI layers."""
    init = _jitted_transformer_init(transformer_arch(like), activation, kernel_init, int(num_inputs), has_residual_neurons(like))
    models = [jax.tree.map(np.asarray, init(k)) for k in jax.random.split(key, seeds)]
    return jax.tree.map(lambda *leaves: np.stack(leaves), *models)


def init_null(key, widths, inputs, groups, *, seeds: int = 32, activation: str = "relu", kernel_init: str = "glorot_uniform", chunk_rows: int = 512):
    """CMNI of the architecture at random initialisation: float32[seeds], the i-th network
    drawn from `jax.random.split(key, seeds)[i]` (`init_params_batch`) with hidden `widths`
    (e.g. (17, 17)) and measured on inputs int8[rows, 3W+4], groups int8[rows] as in `cmni`.
    kernel_init="actor_critic" draws an RL actor's initialisation (`ACTOR_CRITIC_INIT`)."""
    params = init_params_batch(key, seeds, widths, num_inputs=inputs.shape[1], activation=activation, kernel_init=kernel_init)
    return cmni(params, inputs, groups, activation=activation, chunk_rows=chunk_rows).cmni
