"""Every analysis of a run's checkpoints, as arrays (no files, no printing).

`analyse_checkpoints` takes the stacked parameters [checkpoints, members, ...] of a run
(or any stack of models), the test rows and the analysis config, and returns the CMNI
of every checkpoint and member (clean and with the published leak), its scale-free and
composition-matched variants (`mirror.analysis.variants`), the permutation and
random-initialisation nulls of every variant, and, for one selected checkpoint per member, moments,
roles, weight z-scores and circuits. `mirror.runs.outputs` writes them out.
"""

import dataclasses
import time
import zlib
from typing import Callable

import jax
import numpy as np

from mirror.agents.mlp import unit_masks
from mirror.agents.models import model_num_inputs
from mirror.agents.transformer import is_transformer_params
from mirror.analysis.circuits import circuits, weight_zscores
from mirror.analysis.cmni import CMNIResult, cmni, init_params_batch, init_transformer_batch, neuron_layout, param_widths
from mirror.analysis.config import AnalysisConfig
from mirror.analysis.groups import cmni_groups, leak_scenario
from mirror.analysis.moments import Moments, scenario_moments
from mirror.analysis.neurons import mirror_rank, neuron_roles
from mirror.analysis.significance import NeuronP, above_init, init_p_values, neuron_null_mns, neuron_p_values, significant_roles, untested
from mirror.analysis.variants import LABELS, VARIANTS, cmni_variants, energy_edges, match_cells, variant_permutation_null


@dataclasses.dataclass
class CheckpointAnalysis:
    result: CMNIResult  # [checkpoints, members] (the CMNI as configured: clean unless leak_scenario)
    cmni_clean: np.ndarray  # [checkpoints, members]
    cmni_leak: np.ndarray  # [checkpoints, members]
    p_permutation: np.ndarray  # [checkpoints, members] (nan when permutations = 0)
    init_null: np.ndarray  # [members, seeds] CMNI at random initialisation
    p_init: np.ndarray  # [checkpoints, members] (1 + #init >= observed) / (seeds + 1); nan without seeds
    selected: np.ndarray  # int[members] checkpoint index analysed per neuron
    moments: Moments  # [members, neurons, 4] at the selected checkpoints
    roles: np.ndarray  # int[members, neurons] (neurons.ROLE_NAMES), by config.roles (`select_roles`)
    # NeuronP field -> [members, neurons]: per-neuron p-values and BH decisions (NaN / False
    # without permutations), and the random-init calibration: mns_scaled (the neuron's
    # MNS_scaled), p_init_mns (its rank among its layer's random-init units), above_init
    # (p_init_mns BH-significant within the layer; NaN / False without init draws).
    neuron_p: dict
    mirror_rank: np.ndarray  # int[members, neurons]
    circuits: list  # per member: rows of circuits.circuits
    zscores: list  # per member: {kernel: z[fan_in, units]}
    layer_of: np.ndarray  # int[neurons]
    unit_of: np.ndarray  # int[neurons]
    group_counts: np.ndarray  # int[4] test rows in groups none, frog, toad, both
    timings: dict  # seconds per phase
    # Every variant of `mirror.analysis.variants.VARIANTS`; the "cmni" entries are
    # result.cmni, p_permutation, init_null and p_init. cmni_matched is NaN without labels.
    variants: dict = dataclasses.field(default_factory=dict)  # variant -> [checkpoints, members]
    variant_p_permutation: dict = dataclasses.field(default_factory=dict)  # variant -> [checkpoints, members] (nan: permutations = 0)
    variant_init_null: dict = dataclasses.field(default_factory=dict)  # variant -> [members, seeds]
    variant_p_init: dict = dataclasses.field(default_factory=dict)  # variant -> [checkpoints, members]
    matching: dict = dataclasses.field(default_factory=dict)  # cmni_matched's cells, ESS and coverage per group (JSON-ready)


def select_member_params(params, selected):
    """params [checkpoints, members, ...] -> [members, ...] at checkpoint selected[m] of member m."""
    members = np.arange(len(selected))
    return jax.tree.map(lambda a: np.asarray(a)[np.asarray(selected), members], params)


def analyse_checkpoints(
    seed: int,
    params,
    unit_mask,
    member_widths: list,
    inputs: np.ndarray,
    scenarios: np.ndarray,
    idle_shown: np.ndarray,
    selected: np.ndarray,
    config: AnalysisConfig,
    *,
    activation: str = "relu",
    kernel_init: str = "glorot_uniform",
    progress: Callable[[str], None] | None = None,
    labels: np.ndarray | None = None,
) -> CheckpointAnalysis:
    """params [checkpoints, members, ...] (padded), unit_mask bool[members, units] per hidden
    layer, member_widths: true hidden widths per member, test rows, selected int[members].
    `seed` draws the label permutations and the random initialisations. labels int[rows]:
    the test rows' oracle labels, which cmni_matched matches on (None: it is NaN)."""
    step = progress or (lambda name: None)
    timings = {}
    config.validate_roles()  # roles by significance need permutations: fail before any work
    if np.shape(inputs)[1] != model_num_inputs(params):
        raise ValueError(f"the test rows have {np.shape(inputs)[1]} inputs but the models take {model_num_inputs(params)}")
    groups = cmni_groups(scenarios, idle_shown)
    leaked = leak_scenario(inputs, scenarios)
    masks = [np.asarray(m)[None] for m in unit_mask]  # broadcast over checkpoints
    kw = dict(unit_mask=masks, activation=activation, chunk_rows=config.chunk_rows)

    def timed(name, fn):
        start = time.perf_counter()
        out = jax.block_until_ready(fn())
        timings[name] = time.perf_counter() - start
        step(name)
        return out

    clean = timed("cmni", lambda: cmni(params, inputs, groups, **kw))
    leak = timed("cmni with the leak", lambda: cmni(params, leaked, groups, **kw))
    result = leak if config.leak_scenario else clean
    analysed_inputs = leaked if config.leak_scenario else inputs
    shape = np.asarray(result.cmni).shape
    cells = None if labels is None else match_cells(analysed_inputs, labels, groups, config.match_energy_bins)
    observed = timed("cmni variants", lambda: cmni_variants(params, analysed_inputs, groups, cells, **kw))
    variants = {name: np.asarray(observed.values[name]) for name in VARIANTS}
    variants["cmni"] = np.asarray(result.cmni)
    variant_p = {name: np.full(shape, np.nan) for name in VARIANTS}
    if config.permutations:
        null = timed("permutation null", lambda: variant_permutation_null(seed, params, analysed_inputs, groups, cells, permutations=config.permutations, **kw))
        variant_p = {name: _p_value(variants[name], np.asarray(null[name])) for name in VARIANTS}
    init = {name: np.zeros((shape[1], 0)) for name in VARIANTS}
    init_scores = init_real = np.zeros((shape[1], 0, len(neuron_layout(params)[0])))
    if config.init_seeds:
        key = jax.random.key(seed)
        init, init_scores, init_real = timed(
            "random-init null", lambda: _init_null(key, member_widths, params, analysed_inputs, groups, cells, config, activation, kernel_init)
        )
    variant_p_init = {name: _p_value(variants[name], init[name][None]) for name in VARIANTS}
    matching = {} if cells is None else {**observed.matching, "cells": LABELS * config.match_energy_bins, "energy_bins": config.match_energy_bins,
                                         "energy_edges": [float(e) for e in energy_edges(analysed_inputs, groups, config.match_energy_bins)]}  # fmt: skip

    chosen = select_member_params(params, selected)
    moments = timed("moments", lambda: scenario_moments(chosen, analysed_inputs, groups, unit_mask=unit_mask, activation=activation, chunk_rows=config.chunk_rows))
    layer_of, unit_of = neuron_layout(chosen)
    members = np.arange(shape[1])
    at = lambda a: np.asarray(a)[np.asarray(selected), members]  # noqa: E731
    real = at(result.neuron_mask)
    neuron_p = untested(real.shape)
    if config.permutations:
        deltas = at(result.d_frog), at(result.d_toad), at(result.mns)
        neuron_p = timed("per-neuron permutation null", lambda: neuron_tests(seed, chosen, unit_mask, analysed_inputs, groups, deltas, real, config, activation))
    calibration = init_calibration(at(observed.terms["cmni_scaled"]), real, init_scores, init_real, layer_of, config.alpha)
    roles = select_roles(config, at(result.d_frog), at(result.d_toad), at(result.mns), layer_of, real, neuron_p, calibration["above_init"])
    rank = mirror_rank(at(result.mns), layer_of, real)
    member_params = [jax.tree.map(lambda a: a[m], chosen) for m in members]
    member_masks = [[np.asarray(u)[m] for u in unit_mask] for m in members]
    if is_transformer_params(params):  # circuits and weight z-scores read an MLP's dense layers
        member_circuits, zscores = [[] for _ in members], [{} for _ in members]
    else:
        member_circuits = [circuits(p, roles[m], k, config.circuit_z, config.circuit_share) for m, (p, k) in enumerate(zip(member_params, member_masks))]
        zscores = [weight_zscores(p, k) for p, k in zip(member_params, member_masks)]
    step("neurons and circuits")
    return CheckpointAnalysis(
        result=result,
        cmni_clean=np.asarray(clean.cmni),
        cmni_leak=np.asarray(leak.cmni),
        p_permutation=variant_p["cmni"],
        init_null=init["cmni"],
        p_init=variant_p_init["cmni"],
        selected=np.asarray(selected),
        moments=moments,
        roles=roles,
        neuron_p={**neuron_p._asdict(), **calibration},
        mirror_rank=rank,
        circuits=member_circuits,
        zscores=zscores,
        layer_of=layer_of,
        unit_of=unit_of,
        group_counts=np.bincount(groups[groups >= 0], minlength=4),
        timings=timings,
        variants=variants,
        variant_p_permutation=variant_p,
        variant_init_null=init,
        variant_p_init=variant_p_init,
        matching=matching,
    )


def neuron_tests(seed, chosen, unit_mask, inputs, groups, observed, real, config: AnalysisConfig, activation: str) -> NeuronP:
    """Per-neuron p-values at the selected checkpoint of each member: chosen params
    [members, ...], observed (d_frog, d_toad, mns) [members, neurons]. The permutations are
    the CMNI permutation null's (same seed, same rows)."""
    null = neuron_null_mns(seed, chosen, inputs, groups, permutations=config.permutations, unit_mask=unit_mask, activation=activation, chunk_rows=config.chunk_rows)
    return neuron_p_values(*observed, null, real, config.alpha)


def init_calibration(mns_scaled, real, init_scores, init_real, layer_of, alpha: float) -> dict:
    """The random-init calibration of the selected checkpoints' neurons (module docstring of
    `mirror.analysis.significance`): mns_scaled, real [members, neurons], the init units'
    init_scores / init_real [members, S, neurons] -> {mns_scaled, p_init_mns, above_init}."""
    mns_scaled = np.where(real, np.asarray(mns_scaled, np.float64), np.nan)
    if not np.shape(init_scores)[1]:
        return {"mns_scaled": mns_scaled, "p_init_mns": np.full(mns_scaled.shape, np.nan), "above_init": np.zeros(mns_scaled.shape, bool)}
    p = init_p_values(mns_scaled, real, init_scores, init_real, layer_of)
    return {"mns_scaled": mns_scaled, "p_init_mns": p, "above_init": above_init(p, real, layer_of, alpha)}


def select_roles(config: AnalysisConfig, d_frog, d_toad, mns, layer_of, real, neuron_p: NeuronP, above_init=None) -> np.ndarray:
    """int[members, neurons]: the roles by `config.roles` ("significance": BH-controlled
    permutation tests with mirror calibrated against random-init units,
    `significance.significant_roles`; "paper": the paper-fitted thresholds)."""
    if config.roles == "paper":
        return neuron_roles(d_frog, d_toad, mns, layer_of, real, config.response_fraction)
    return significant_roles(neuron_p, mns, real, above_init)


ANALYSIS_STEPS = 8  # progress steps reported by analyse_checkpoints (at most)


def widths_key(widths) -> int:
    """A stable 31-bit integer naming a tuple of hidden widths."""
    return zlib.crc32(",".join(str(int(w)) for w in widths).encode()) & 0x7FFFFFFF


def _p_value(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """(1 + #{null >= observed}) / (K + 1): observed[checkpoints, members], null[checkpoints
    or 1, members, K]; NaN where the observed value is NaN or K = 0."""
    if not null.shape[-1]:
        return np.full(observed.shape, np.nan)
    p = (1 + (null >= observed[..., None]).sum(-1)) / (null.shape[-1] + 1)
    return np.where(np.isnan(observed), np.nan, p)


def init_draws(key, member_widths, params, *, seeds: int, num_inputs: int, activation: str, kernel_init: str):
    """The random initialisations of the init null: `seeds` draws per distinct member width,
    keyed by the widths themselves (so a member's baseline does not depend on which other
    widths share its population; sweeps regroup trials freely). Returns (params [D * seeds,
    ...] numpy, unit masks bool[D * seeds, units] per hidden layer, index int[members, seeds]
    into the first axis: member m's draws)."""
    padded = param_widths(params)
    distinct = sorted({tuple(w) for w in member_widths})
    if is_transformer_params(params):  # fresh transformers of the same architecture (never padded)
        batches = [init_transformer_batch(jax.random.fold_in(key, widths_key(w)), seeds, params, num_inputs=num_inputs, activation=activation, kernel_init=kernel_init) for w in distinct]
    else:
        batches = [init_params_batch(jax.random.fold_in(key, widths_key(w)), seeds, w, num_inputs=num_inputs, activation=activation, kernel_init=kernel_init, padded_to=padded) for w in distinct]
    stacked = jax.tree.map(lambda *a: np.concatenate(a), *batches)
    masks = unit_masks([w for w in distinct for _ in range(seeds)], padded)
    first = [distinct.index(tuple(w)) * seeds for w in member_widths]
    return stacked, masks, np.asarray(first)[:, None] + np.arange(seeds)


def _init_null(key, member_widths, params, inputs, groups, cells, config, activation, kernel_init):
    """(variant -> [members, seeds], the draws' per-neuron MNS_scaled [members, seeds, neurons],
    which of those neurons are real) for the init null and the neuron calibration."""
    stacked, masks, index = init_draws(key, member_widths, params, seeds=config.init_seeds, num_inputs=inputs.shape[1], activation=activation, kernel_init=kernel_init)
    out = cmni_variants(stacked, inputs, groups, cells, unit_mask=masks, activation=activation, chunk_rows=config.chunk_rows)
    actions = int(np.shape(stacked["output"]["bias"])[-1])
    real = np.concatenate([np.asarray(m, bool) for m in masks] + [np.ones((len(masks[0]), actions), bool)], axis=1)
    values = {name: np.asarray(out.values[name], np.float64)[index] for name in VARIANTS}
    return values, np.asarray(out.terms["cmni_scaled"], np.float64)[index], real[index]
