"""Mirror candidates and differentiating neurons (paper §5.2, Table 4, Figure 3).

- A **mirror candidate** has MNS > 0: its mean activation rises over the baseline both
  when Frog is distressed and when Toad is. Candidates are ranked by MNS within a layer.
- A neuron **responds** to Frog's (Toad's) distress when dFrog (dToad) exceeds
  `fraction` times the largest distress response in its layer (the layer's max over
  neurons of max(dFrog, dToad)). A **differentiating** neuron responds to exactly one.

Roles: a differentiating neuron is "differentiating" even when a small response to the
other distress gives it MNS > 0 (the paper's L1N11: dFrog 0.005, dToad 0.066); other
neurons with MNS > 0 are "mirror"; the rest "other". With fraction 0.15 the paper's
Table 4 gives mirror L1N3, L1N7, L1N12, L1N13 and differentiating L1N9, L1N11.

All functions take numpy arrays with any leading model axes and neurons last.
"""

import numpy as np

OTHER, MIRROR, DIFFERENTIATING = 0, 1, 2
ROLE_NAMES = ("other", "mirror", "differentiating")


def _layer_max(values: np.ndarray, layer_of: np.ndarray, neuron_mask: np.ndarray) -> np.ndarray:
    """[..., neurons]: the max of `values` over the real neurons of each neuron's layer."""
    out = np.zeros_like(values)
    for layer in np.unique(layer_of):
        in_layer = layer_of == layer
        v = np.where(neuron_mask[..., in_layer], values[..., in_layer], -np.inf)
        out[..., in_layer] = v.max(axis=-1, keepdims=True)
    return out


def responses(d_frog, d_toad, layer_of, neuron_mask, fraction: float = 0.15):
    """(responds_frog, responds_toad): bool[..., neurons]."""
    d_frog, d_toad = np.asarray(d_frog, np.float64), np.asarray(d_toad, np.float64)
    neuron_mask = np.asarray(neuron_mask, bool)
    strongest = np.maximum(_layer_max(np.maximum(np.maximum(d_frog, d_toad), 0.0), layer_of, neuron_mask), 0.0)
    threshold = fraction * strongest
    return neuron_mask & (d_frog > threshold), neuron_mask & (d_toad > threshold)


def neuron_roles(d_frog, d_toad, mns, layer_of, neuron_mask, fraction: float = 0.15) -> np.ndarray:
    """int[..., neurons]: OTHER, MIRROR or DIFFERENTIATING (module docstring)."""
    frog, toad = responses(d_frog, d_toad, layer_of, neuron_mask, fraction)
    differentiating = frog ^ toad
    mirror = np.asarray(neuron_mask, bool) & (np.asarray(mns) > 0) & ~differentiating
    return np.where(differentiating, DIFFERENTIATING, np.where(mirror, MIRROR, OTHER))


def mirror_rank(mns, layer_of, neuron_mask) -> np.ndarray:
    """int[..., neurons]: 1 for the largest MNS in its layer, 2 for the next, ...; 0 where MNS <= 0."""
    mns = np.where(np.asarray(neuron_mask, bool), np.asarray(mns, np.float64), 0.0)
    rank = np.zeros(mns.shape, np.int64)
    for layer in np.unique(layer_of):
        in_layer = np.flatnonzero(layer_of == layer)
        v = mns[..., in_layer]
        order = np.argsort(-v, axis=-1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(1, len(in_layer) + 1) + np.zeros_like(order), axis=-1)
        rank[..., in_layer] = np.where(v > 0, ranks, 0)
    return rank


def mirror_candidates(mns, layer_of, neuron_mask, layer: int) -> np.ndarray:
    """One model: indices (into the neuron axis) of `layer`'s neurons with MNS > 0, by MNS descending."""
    mns, neuron_mask = np.asarray(mns), np.asarray(neuron_mask, bool)
    idx = np.flatnonzero((layer_of == layer) & neuron_mask & (mns > 0))
    return idx[np.argsort(-mns[idx], kind="stable")]


