"""CMNI on on-policy probe rows (probe set (b)): every model has its own rows.

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

The nulls. Probe rows are not independent: they are the views met in G games over T
consecutive turns (row = t * G + g, turn-major, so a row's game is `row % G`), and a
distress lasts several turns, so neighbouring rows of a game share their group and much of
their input. A row-by-row label shuffle ignores that and gives p-values that are too small.
The permutation null here is game-wise (`game_shifted_groups`): each game's sequence of
group labels is shifted circularly by its own random offset (0 .. T - 1), K times. A shift
keeps every game's group counts and the autocorrelation of its labels (the length of its
distress spells) and breaks only the alignment between the labels and the rows they tag,
which is what the null says carries no information. (Shuffling whole games' label sequences
between games would keep the same, but the probe games are few, and games start at
different points of the episode, so their sequences are not exchangeable.) It is valid
when the label sequence is stationary within a game; the wrap-around joins a game's last
turn to its first, one seam per game. With T offsets per game the null has T^G equally
likely relabellings, far more than K.

The scale-free CMNI (`cmni_scaled`, `mirror.analysis.variants`) is computed here too, on
each model's own rows: every neuron's deltas divided by its activation standard deviation
over that model's rows of groups 0-2 pooled (floored as there), one more pass over the rows.

Like the test split's permutation null, it only shows that the groups' activations differ:
a row's group is written in its input (the distress code), so any network that reads its
input passes it, an untrained one included. Whether training built more than an untrained
network has is the random-initialisation null: the CMNI of freshly initialised networks of
the same architecture (the draws of probe set (a)'s init null, `init_params`) on the same
probe rows, per checkpoint and network, and `p_init` the trained network's rank among them.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mirror.agents.transformer import is_transformer_params
from mirror.analysis.cmni import (
    cmni_of_means,
    cmni_stats,
    flat_layer_of,
    flat_neuron_mask,
    flatten_models,
    full_unit_mask,
    hidden_activations_t,
    model_axes,
    neuron_activations_t,
    one_hot_columns,
    output_means,
    scan_rows,
)
from mirror.analysis.groups import CMNI_GROUPS, cmni_groups
from mirror.analysis.variants import floored_scale, mns_terms
from mirror.data.processing import model_inputs


class OnPolicyCMNI(NamedTuple):
    """Leading axes `...` are the parameters' model axes ([checkpoints, networks])."""

    cmni: np.ndarray  # [...] (NaN where a group has no rows)
    mne: np.ndarray  # [...]
    layer_cmni: np.ndarray  # [..., layers] (hidden layers, then the policy logits)
    counts: np.ndarray  # int[..., 3] rows in groups none, frog, toad
    p_permutation: np.ndarray  # [...] the game-wise permutation null's p; NaN when permutations = 0
    null: np.ndarray  # [..., K] the game-wise permutation null's CMNIs (K = 0 without permutations)
    init_null: np.ndarray = np.zeros((0,))  # [..., S] random initialisations' CMNI on the same rows (S = 0: none)
    p_init: np.ndarray = np.zeros((0,))  # [...] (1 + #{init >= observed}) / (S + 1); NaN without draws
    cmni_scaled: np.ndarray = np.zeros((0,))  # [...] the scale-free CMNI on the same rows (NaN where a group has no rows)


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


def _onpolicy_stats(flat_params, flat_masks, inputs, groups, *, activation, chunk_rows):
    sums = own_rows_group_sums(flat_params, flat_masks, inputs, groups[:, None], groups=CMNI_GROUPS, activation=activation, chunk_rows=chunk_rows)
    counts = _group_counts(groups)
    return cmni_stats(flat_params, flat_masks, sums[:, :, 0] / counts[:, None, :]), counts


_onpolicy_flat = jax.jit(_onpolicy_stats, static_argnames=("activation", "chunk_rows"))


@functools.partial(jax.jit, static_argnames=("activation", "chunk_rows"))
def _onpolicy_scaled_flat(flat_params, flat_masks, inputs, groups, stats, counts, *, activation, chunk_rows):
    """cmni_scaled [models] of every model on its own rows inputs[models, rows, F] (groups
    [models, rows]), from its `_onpolicy_stats` (group means, deltas): the centred squares
    about each neuron's pooled mean over the model's rows of groups 0-2, then
    `variants.floored_scale` and `variants.mns_terms` as the test split's cmni_scaled."""
    models, rows, features = inputs.shape
    forward = jax.vmap(functools.partial(neuron_activations_t, activation=activation))
    total = jnp.maximum(counts.sum(-1), 1).astype(jnp.float32)  # [models]
    pooled = jnp.einsum("mng,mg->mn", jnp.nan_to_num(stats["mu"]), counts.astype(jnp.float32)) / total[:, None]

    def chunk_squares(x_t, lab):
        a = forward(flat_params, flat_masks, x_t.reshape(models, features, -1))  # [models, neurons, chunk]
        inside = (lab >= 0) & (lab < CMNI_GROUPS)  # [models, chunk]; padding rows are -1
        d = jnp.where(inside[:, None, :], a - pooled[:, :, None], 0.0)
        return jnp.sum(d * d, axis=-1)

    flat_inputs = inputs.transpose(1, 0, 2).reshape(rows, models * features)
    squares = scan_rows(chunk_squares, jnp.zeros(pooled.shape, jnp.float32), flat_inputs, groups, chunk_rows)
    mask = flat_neuron_mask(flat_params, flat_masks)
    scale = floored_scale(jnp.sqrt(squares / total[:, None]), mask, flat_layer_of(flat_params, flat_masks))
    return mns_terms(stats["d_frog"] / scale, stats["d_toad"] / scale, mask).sum(-1) / mask.sum(-1)


@functools.partial(jax.jit, static_argnames=("activation", "chunk_rows"))
def _onpolicy_null_flat(flat_params, flat_masks, inputs, counts, shifted, *, activation, chunk_rows):
    # A circular shift moves rows of every group, those outside the CMNI groups included, so
    # the none group is summed like the others (3 columns per label set, not 2 + a total);
    # every group keeps its count.
    sums = own_rows_group_sums(flat_params, flat_masks, inputs, shifted.astype(jnp.int32), groups=CMNI_GROUPS, activation=activation, chunk_rows=chunk_rows)
    hidden_mu = sums / counts[:, None, None, :]  # [models, hidden, K, 3]
    mu = jnp.concatenate([hidden_mu, output_means(flat_params, hidden_mu, flat_masks[-1].shape[-1])], axis=1)
    return cmni_of_means(flat_params, flat_masks, mu)  # [models, K]


@functools.partial(jax.jit, static_argnames=("checkpoints", "activation", "chunk_rows"))
def _onpolicy_init_flat(init_params, init_masks, inputs, groups, *, checkpoints, activation, chunk_rows):
    """init_params / init_masks [S, networks, ...] -> CMNI [S, checkpoints * networks]: draw
    s of network n on the rows of every (checkpoint, network n), one draw at a time."""

    def one_draw(draw):
        params, masks = draw
        tile = lambda a: jnp.broadcast_to(a[None], (checkpoints,) + a.shape).reshape((-1,) + a.shape[1:])  # noqa: E731
        stats, _ = _onpolicy_stats(jax.tree.map(tile, params), [tile(m) for m in masks], inputs, groups, activation=activation, chunk_rows=chunk_rows)
        return stats["cmni"]

    return jax.lax.map(one_draw, (init_params, init_masks))


def game_shifted_groups(seed: int, groups: np.ndarray, games: int, permutations: int) -> np.ndarray:
    """int8[models, K, rows]: K relabellings of each model's groups[models, rows] in which
    every game's label sequence is shifted circularly by its own uniform random offset.
    Rows are turn-major (row = t * games + g, T = rows / games turns): the label of turn t
    of game g becomes the one of turn (t + offset) mod T of the same game."""
    groups = np.asarray(groups, np.int8)
    models, rows = groups.shape
    if games < 1 or rows % games:
        raise ValueError(f"the probe has {rows} rows per network, not a whole number of turns of {games} games (probe.games)")
    turns = rows // games
    offsets = np.random.default_rng(seed).integers(0, turns, (models, permutations, 1, games), dtype=np.int32)
    source = (np.arange(turns, dtype=np.int32)[:, None] + offsets) % turns * games + np.arange(games, dtype=np.int32)  # [models, K, turns, games]
    return np.take_along_axis(groups[:, None, :], source.reshape(models, permutations, rows), axis=2)


def onpolicy_cmni(
    params, unit_mask, inputs, scenarios, idle_shown, *, activation: str, chunk_rows: int = 512, permutations: int = 0, seed: int = 0,
    games: int | None = None, init_params=None, init_unit_mask=None,
) -> OnPolicyCMNI:  # fmt: skip
    """CMNI of every model on its own probe rows, with the game-wise permutation null and
    the random-initialisation null (module docstring).

    params: leaves [checkpoints, networks, ...] (the supervised MLP's or transformer's
    layout, `cmni_params`);
    unit_mask: None or bool[..., units] per hidden layer (broadcast over the model axes);
    inputs int8[checkpoints, networks, rows, 3W+4] (raw own views; the §5.6 mask is applied
    here); scenarios int8[checkpoints, networks, rows] (0-3);
    idle_shown bool[checkpoints, networks, rows, 2] (Frog, Toad shown idle, as
    `mirror.data.labels.idle_shown`).
    permutations > 0: the game-wise null, which needs `games`, the probe's games per
    checkpoint (rows = turns x games, turn-major); `seed` draws the K circular shifts.
    init_params: leaves [networks, S, ...] (S random initialisations of each network's
    architecture, padded like `params`), init_unit_mask: None or bool[networks, S, units]
    per hidden layer: the random-initialisation null on every checkpoint's rows.
    """
    lead = model_axes(params)
    inputs, scenarios, idle = np.asarray(inputs), np.asarray(scenarios), np.asarray(idle_shown, bool)
    if inputs.shape[: len(lead)] != lead or scenarios.shape != inputs.shape[:-1]:
        raise ValueError(f"probe inputs {inputs.shape} and scenarios {scenarios.shape} must be [{', '.join(map(str, lead))}, rows(, features)]")
    if idle.shape != scenarios.shape + (2,):
        raise ValueError(f"idle_shown must be bool[..., rows, 2] (Frog, Toad shown idle) = {scenarios.shape + (2,)}, got {idle.shape}")
    rows, features = inputs.shape[-2:]
    if permutations and games is None:
        raise ValueError("onpolicy_cmni: the game-wise permutation null needs games (the probe's games per checkpoint, rl_run.json probe.games)")
    if permutations and (games < 1 or rows % games):
        raise ValueError(f"probe.games = {games} does not divide the probe's {rows} rows per network (rows = turns x games)")
    groups = cmni_groups(scenarios.reshape(-1), idle.reshape(-1, 2)).reshape(-1, rows)  # [models, rows]
    x = np.asarray(model_inputs(inputs.reshape(-1, rows, features)), np.int8)
    flat_params, flat_masks = flatten_models(params, full_unit_mask(params, unit_mask))
    stats, counts = _onpolicy_flat(flat_params, flat_masks, x, jnp.asarray(groups, jnp.int32), activation=activation, chunk_rows=chunk_rows)
    scaled = _onpolicy_scaled_flat(flat_params, flat_masks, x, jnp.asarray(groups, jnp.int32), stats, counts, activation=activation, chunk_rows=chunk_rows)
    counts = np.asarray(counts)
    defined = (counts > 0).all(axis=-1)
    cmni_values = np.where(defined, np.asarray(stats["cmni"]), np.nan)
    scaled_values = np.where(defined, np.asarray(scaled), np.nan)
    null = np.zeros((len(groups), 0), np.float32)
    p = np.full(len(groups), np.nan)
    if permutations:
        shifted = game_shifted_groups(seed, groups, games, permutations)
        null = np.asarray(_onpolicy_null_flat(flat_params, flat_masks, x, jnp.asarray(counts), jnp.asarray(shifted), activation=activation, chunk_rows=chunk_rows))
        p = np.where(defined, _rank_p(cmni_values, null), np.nan)
    init_null = np.zeros((len(groups), 0), np.float32)
    p_init = np.full(len(groups), np.nan)
    if init_params is not None:
        init_null = np.where(defined[:, None], _init_null(init_params, init_unit_mask, lead, x, groups, activation=activation, chunk_rows=chunk_rows), np.nan)
        if init_null.shape[-1]:
            p_init = np.where(defined, _rank_p(cmni_values, init_null), np.nan)
    shape = lambda a: np.asarray(a).reshape(lead + np.shape(a)[1:])  # noqa: E731
    return OnPolicyCMNI(
        cmni=shape(cmni_values),
        mne=shape(stats["mne"]),
        layer_cmni=shape(stats["layer_cmni"]),
        counts=shape(counts),
        p_permutation=shape(p),
        null=shape(null),
        init_null=shape(init_null),
        p_init=shape(p_init),
        cmni_scaled=shape(scaled_values),
    )


def _rank_p(observed, null) -> np.ndarray:
    """(1 + #{null >= observed}) / (K + 1) in float64 (a float32 1/20 is above 0.05)."""
    null = np.asarray(null)
    return (1 + np.sum(null >= np.asarray(observed)[..., None], axis=-1)) / (null.shape[-1] + 1)


def _init_null(init_params, init_unit_mask, lead: tuple, x, groups, *, activation: str, chunk_rows: int) -> np.ndarray:
    """float32[models, S]: each random initialisation of network n on the rows of every
    (checkpoint, network n) model (models flattened from `lead` = (..., networks))."""
    networks = lead[-1]
    draws_lead = model_axes(init_params)
    if len(draws_lead) != 2 or draws_lead[0] != networks:
        raise ValueError(f"init_params must have leading axes [networks = {networks}, draws], got {draws_lead}")
    masks = full_unit_mask(init_params, init_unit_mask)  # [networks, S, units] per layer
    if not draws_lead[1]:
        return np.zeros((int(np.prod(lead)), 0), np.float32)
    to_draw_major = lambda a: jnp.swapaxes(jnp.asarray(a), 0, 1)  # noqa: E731  [S, networks, ...]
    values = _onpolicy_init_flat(
        jax.tree.map(to_draw_major, init_params), [to_draw_major(m) for m in masks], x, jnp.asarray(groups, jnp.int32),
        checkpoints=int(np.prod(lead[:-1])), activation=activation, chunk_rows=chunk_rows,
    )  # fmt: skip
    return np.asarray(values).T  # [models, S]
