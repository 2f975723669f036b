"""CMNI on on-policy probe rows (issue 12, probe set (b)): every model has its own rows.

An RL run collects, at each checkpoint, the states its own agents visit (`mirror.rl`
writes them per checkpoint and network). So unlike the test split, which every model
reads, model m here reads rows inputs[m]. The CMNI is the one of `mirror.analysis.cmni`
(same neurons, same groups, same float32 Kahan-summed means); only the row pass differs:
the row chunks of all models go through one `lax.scan`, each model's forward pass on its
own chunk (`jax.vmap` over models), so there is no Python loop over checkpoints or networks.

Rows outside the CMNI groups 0-2 stay in place with no group (their one-hot row is zero),
so every model keeps a static row count. A model whose rows miss one of the groups none,
frog or toad has no CMNI: NaN (the test split always has all three; the states an agent
visits need not).

Inputs are fed exactly as the supervised analysis feeds the test split: the stored
dataset holds `mirror.data.processing.model_inputs(rows)` (spec §5.6: own code, score and
position zeroed), and the probe rows are the acting player's raw view, so they get the
same mask here (the mask is idempotent, so masked rows pass unchanged).

The permutation null shuffles each model's group labels among its own CMNI rows (group
sizes kept), K times, and reuses the same pass with K more label sets.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mirror.agents.transformer import is_transformer_params
from mirror.analysis.cmni import (
    cmni_stats,
    empirical_p_value,
    flatten_models,
    full_unit_mask,
    hidden_activations_t,
    model_axes,
    neuron_activations_t,
    one_hot_columns,
    permutation_cmni,
    scan_rows,
)
from mirror.analysis.groups import CMNI_GROUPS, cmni_groups
from mirror.data.processing import model_inputs


class OnPolicyCMNI(NamedTuple):
    """Leading axes `...` are the parameters' model axes ([checkpoints, networks])."""

    cmni: np.ndarray  # [...] (NaN where a group has no rows)
    mne: np.ndarray  # [...]
    layer_cmni: np.ndarray  # [..., layers] (hidden layers, then the policy logits)
    counts: np.ndarray  # int[..., 3] rows in groups none, frog, toad
    p_permutation: np.ndarray  # [...] NaN when permutations = 0
    null: np.ndarray  # [..., K] the permutation null's CMNIs (K = 0 without permutations)


def own_rows_group_sums(flat_params, flat_masks, inputs, labels, *, groups: int, activation: str, chunk_rows: int):
    """Like `cmni.group_sums`, but model m reads its own rows: inputs int8[models, rows, F],
    labels int[models, sets, rows] -> float32[models, hidden neurons, sets, groups] (a
    transformer's: every neuron, its outputs included, as `cmni.group_sums`)."""
    models, rows, features = inputs.shape
    sets = labels.shape[1]
    hidden = sum(m.shape[-1] for m in flat_masks)
    activations_t = hidden_activations_t
    if is_transformer_params(flat_params):  # every neuron row by row, outputs included (as `cmni.group_sums`)
        activations_t = neuron_activations_t
        hidden += flat_params["output"]["bias"].shape[-1]
    forward = jax.vmap(functools.partial(activations_t, activation=activation))  # every argument per model

    def chunk_sums(x_t, lab):
        # scan_rows chunks along rows only: models ride along in the feature / label-set axes.
        x = x_t.reshape(models, features, -1)  # [models, F, chunk]
        h = forward(flat_params, flat_masks, x)  # [models, hidden, chunk]
        onehot = jax.vmap(one_hot_columns, in_axes=(0, None))(lab.reshape(models, sets, -1), groups)  # [models, chunk, sets*groups]
        return jnp.einsum("mhr,mrc->mhc", h, onehot)

    flat_inputs = inputs.transpose(1, 0, 2).reshape(rows, models * features)
    flat_labels = labels.reshape(models * sets, rows)
    total = jnp.zeros((models, hidden, sets * groups), jnp.float32)
    total = scan_rows(chunk_sums, total, flat_inputs, flat_labels, chunk_rows)
    return total.reshape(models, hidden, sets, groups)


def _group_counts(groups):
    return jnp.sum(jax.nn.one_hot(groups, CMNI_GROUPS, dtype=jnp.int32), axis=-2)  # [models, 3]


@functools.partial(jax.jit, static_argnames=("activation", "chunk_rows"))
def _onpolicy_flat(flat_params, flat_masks, inputs, groups, *, activation, chunk_rows):
    sums = own_rows_group_sums(flat_params, flat_masks, inputs, groups[:, None], groups=CMNI_GROUPS, activation=activation, chunk_rows=chunk_rows)
    counts = _group_counts(groups)
    return cmni_stats(flat_params, flat_masks, sums[:, :, 0] / counts[:, None, :]), counts


@functools.partial(jax.jit, static_argnames=("activation", "chunk_rows"))
def _onpolicy_null_flat(flat_params, flat_masks, inputs, groups, shuffled, *, activation, chunk_rows):
    # As cmni._permutation_flat: set 0 is every CMNI row in group 0 (the total), sets 1..K
    # the permuted frog (1 -> 0) and toad (2 -> 1) rows.
    total = jnp.where((groups >= 0) & (groups < CMNI_GROUPS), 0, -1)[:, None]
    labels = jnp.concatenate([total, shuffled.astype(jnp.int32) - 1], axis=1)
    sums = own_rows_group_sums(flat_params, flat_masks, inputs, labels, groups=2, activation=activation, chunk_rows=chunk_rows)
    return permutation_cmni(flat_params, flat_masks, sums, _group_counts(groups))


def onpolicy_permuted_groups(seed: int, groups: np.ndarray, permutations: int) -> np.ndarray:
    """int8[models, K, rows]: K shuffles of each model's groups[models, rows] among its own
    CMNI rows (groups 0-2); the other rows keep their group. Vectorised: a random sort key
    per row, the non-CMNI rows sorted last and left where they are."""
    groups = np.asarray(groups, np.int8)
    models, rows = groups.shape
    keep = (groups >= 0) & (groups < CMNI_GROUPS)
    order = np.argsort(~keep, axis=1, kind="stable")  # each model's CMNI rows first
    compact = np.take_along_axis(groups, order, axis=1)  # [models, rows]
    u = np.random.default_rng(seed).random((models, permutations, rows))
    u[np.broadcast_to(~np.take_along_axis(keep, order, axis=1)[:, None], u.shape)] = np.inf
    perm = np.argsort(u, axis=2, kind="stable")  # a uniform permutation of the CMNI rows, the rest in place
    shuffled_compact = np.take_along_axis(np.broadcast_to(compact[:, None], u.shape), perm, axis=2)
    out = np.empty((models, permutations, rows), np.int8)
    np.put_along_axis(out, np.broadcast_to(order[:, None], u.shape), shuffled_compact, axis=2)
    return out


def onpolicy_cmni(params, unit_mask, inputs, scenarios, idle_shown, *, activation: str, chunk_rows: int = 512, permutations: int = 0, seed: int = 0) -> OnPolicyCMNI:
    """CMNI of every model on its own probe rows.

    params: leaves [checkpoints, networks, ...] (the supervised MLP's or transformer's
    layout, `cmni_params`);
    unit_mask: None or bool[..., units] per hidden layer (broadcast over the model axes);
    inputs int8[checkpoints, networks, rows, 3W+4] (raw own views; the §5.6 mask is applied
    here); scenarios int8[checkpoints, networks, rows] (0-3);
    idle_shown bool[checkpoints, networks, rows, 2] (Frog, Toad shown idle, as
    `mirror.data.labels.idle_shown`). `seed` draws the K label permutations.
    """
    lead = model_axes(params)
    inputs, scenarios, idle = np.asarray(inputs), np.asarray(scenarios), np.asarray(idle_shown, bool)
    if inputs.shape[: len(lead)] != lead or scenarios.shape != inputs.shape[:-1]:
        raise ValueError(f"probe inputs {inputs.shape} and scenarios {scenarios.shape} must be [{', '.join(map(str, lead))}, rows(, features)]")
    if idle.shape != scenarios.shape + (2,):
        raise ValueError(f"idle_shown must be bool[..., rows, 2] (Frog, Toad shown idle) = {scenarios.shape + (2,)}, got {idle.shape}")
    rows, features = inputs.shape[-2:]
    groups = cmni_groups(scenarios.reshape(-1), idle.reshape(-1, 2)).reshape(-1, rows)  # [models, rows]
    x = np.asarray(model_inputs(inputs.reshape(-1, rows, features)), np.int8)
    flat_params, flat_masks = flatten_models(params, full_unit_mask(params, unit_mask))
    stats, counts = _onpolicy_flat(flat_params, flat_masks, x, jnp.asarray(groups, jnp.int32), activation=activation, chunk_rows=chunk_rows)
    counts = np.asarray(counts)
    defined = (counts > 0).all(axis=-1)
    cmni_values = np.where(defined, np.asarray(stats["cmni"]), np.nan)
    null = np.zeros((len(groups), 0), np.float32)
    p = np.full(len(groups), np.nan)
    if permutations:
        shuffled = onpolicy_permuted_groups(seed, groups, permutations)
        null = np.asarray(_onpolicy_null_flat(flat_params, flat_masks, x, jnp.asarray(groups, jnp.int32), jnp.asarray(shuffled), activation=activation, chunk_rows=chunk_rows))
        p = np.where(defined, np.asarray(empirical_p_value(cmni_values, null)), np.nan)
    shape = lambda a: np.asarray(a).reshape(lead + np.shape(a)[1:])  # noqa: E731
    return OnPolicyCMNI(
        cmni=shape(cmni_values),
        mne=shape(stats["mne"]),
        layer_cmni=shape(stats["layer_cmni"]),
        counts=shape(counts),
        p_permutation=shape(p),
        null=shape(null),
    )
