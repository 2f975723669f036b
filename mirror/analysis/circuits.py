"""Weight z-scores and distress-activated circuits of one checkpoint (paper §6, Tables 7-10).

Every weight gets a z-score relative to its own weight matrix (mean and standard
deviation over the matrix's real entries; padded entries are NaN). The circuits start
at the first hidden layer's mirror candidates and differentiating neurons (sources) and
run through the units of the next layer (hubs) to the action each hub projects to most
strongly:

- an edge source -> hub counts when its weight is positive with z >= `z_min`;
- `mirror_in` / `differentiating_in`: a hub's summed counted input from each kind;
- action: the largest weight hub -> output (2 hidden layers); for deeper networks the
  largest entry of the product of the remaining kernels (a linear path, ReLUs ignored);
  for 1 hidden layer the hubs are the actions themselves;
- `distress_share`: (mirror_in + differentiating_in) / the hub's summed positive input
  from every first-layer neuron;
- circuit, for hubs with distress_share >= `min_share` and a positive projection to
  their action: "empathy help" (mirror input, projects to help; the paper's L2N1, which
  also takes differentiating input), "tactical help" (only differentiating input,
  projects to help; L2N7), "self-preservation" (mirror input at least the
  differentiating input, projects to another action; L2N0 -> leap); else "".
"""

import numpy as np

from mirror.agents.units import neuron_name
from mirror.analysis.neurons import DIFFERENTIATING, MIRROR
from mirror.env.constants import ACTION_NAMES, HELP

CIRCUITS = ("self-preservation", "tactical help", "empathy help")


def _hidden_count(params) -> int:
    return sum(1 for name in params if name.startswith("hidden_"))


def kernel_names(params) -> list[str]:
    return [f"hidden_{i}" for i in range(_hidden_count(params))] + ["output"]


def real_units(params, unit_mask=None) -> list[np.ndarray]:
    """bool[units] per layer: the inputs (all 3W+4), each hidden layer, the outputs."""
    names = kernel_names(params)
    units = [np.ones(np.asarray(params[names[0]]["kernel"]).shape[0], bool)]
    for i, name in enumerate(names):
        width = np.asarray(params[name]["bias"]).shape[-1]
        hidden = name != "output" and unit_mask is not None
        units.append(np.asarray(unit_mask[i], bool) if hidden else np.ones(width, bool))
    return units


def weight_zscores(params, unit_mask=None) -> dict[str, np.ndarray]:
    """One model: {kernel name: z[fan_in, units]} relative to that kernel's real entries."""
    units = real_units(params, unit_mask)
    out = {}
    for i, name in enumerate(kernel_names(params)):
        w = np.asarray(params[name]["kernel"], np.float64)
        real = units[i][:, None] & units[i + 1][None, :]
        mean, std = w[real].mean(), w[real].std()
        out[name] = np.where(real, (w - mean) / (std if std > 0 else 1.0), np.nan)
    return out


def _hub_to_action(params) -> tuple[np.ndarray, np.ndarray]:
    """(weights[hubs, actions], z[hubs, actions]) from the hub layer to the actions."""
    names = kernel_names(params)
    if len(names) == 2:  # one hidden layer: the hubs are the actions
        eye = np.eye(np.asarray(params["output"]["bias"]).shape[-1])
        return eye, np.full_like(eye, np.nan)
    path = np.asarray(params[names[2]]["kernel"], np.float64)
    for name in names[3:]:
        path = path @ np.asarray(params[name]["kernel"], np.float64)
    real = np.abs(path).sum(axis=1) > 0  # padded hubs have all-zero rows
    mean, std = path[real].mean(), path[real].std()
    return path, (path - mean) / (std if std > 0 else 1.0)


def circuit_label(mirror_in: float, differentiating_in: float, action: int, action_weight: float = 1.0, share: float = 1.0, min_share: float = 0.5) -> str:
    """The circuit a hub belongs to (module docstring), or ""."""
    if action_weight <= 0 or share < min_share:
        return ""
    if action == HELP:
        if mirror_in > 0:
            return "empathy help"
        if differentiating_in > 0:
            return "tactical help"
        return ""
    if mirror_in > 0 and mirror_in >= differentiating_in:
        return "self-preservation"
    return ""


def circuits(params, roles: np.ndarray, unit_mask=None, z_min: float = 0.5, min_share: float = 0.5) -> list[dict]:
    """One model: a row per (real) hub of the layer after the first hidden layer.

    params: numpy params of one model; roles int[neurons] from `neurons.neuron_roles`
    (only the first hidden layer's entries are used). Each row: hub, unit, mirror_in,
    differentiating_in, mirror_sources, differentiating_sources ([(source unit, weight,
    z)] of counted edges), distress_share, action, action_weight, action_z,
    other_actions_mean, circuit.
    """
    names = kernel_names(params)
    units = real_units(params, unit_mask)
    z = weight_zscores(params, unit_mask)
    first_width = units[1].shape[0]
    source_roles = np.asarray(roles)[:first_width]
    w = np.asarray(params[names[1]]["kernel"], np.float64)  # [first hidden, hubs]
    counted = (w > 0) & (z[names[1]] >= z_min) & units[1][:, None]
    to_action, to_action_z = _hub_to_action(params)
    hub_layer = 1
    rows = []
    for hub in np.flatnonzero(units[2]):
        kinds = {}
        for kind, role in (("mirror", MIRROR), ("differentiating", DIFFERENTIATING)):
            sources = np.flatnonzero(counted[:, hub] & (source_roles == role))
            kinds[kind] = [(int(s), float(w[s, hub]), float(z[names[1]][s, hub])) for s in sources]
        action = int(np.argmax(to_action[hub]))
        others = np.delete(to_action[hub], action)
        mirror_in = sum(e[1] for e in kinds["mirror"])
        differentiating_in = sum(e[1] for e in kinds["differentiating"])
        positive_in = float(np.where(units[1] & (w[:, hub] > 0), w[:, hub], 0.0).sum())
        share = (mirror_in + differentiating_in) / positive_in if positive_in > 0 else 0.0
        action_weight = float(to_action[hub, action])
        rows.append(
            dict(
                hub=neuron_name(hub_layer, int(hub)),
                unit=int(hub),
                mirror_in=mirror_in,
                differentiating_in=differentiating_in,
                mirror_sources=kinds["mirror"],
                differentiating_sources=kinds["differentiating"],
                distress_share=share,
                action=ACTION_NAMES[action],
                action_weight=action_weight,
                action_z=float(to_action_z[hub, action]),
                other_actions_mean=float(others.mean()) if others.size else float("nan"),
                circuit=circuit_label(mirror_in, differentiating_in, action, action_weight, share, min_share),
            )
        )
    return rows


def source_summary(params, roles: np.ndarray, hub: int, unit_mask=None) -> list[dict]:
    """One model, one hub: for every real first-layer neuron, its weight and z-score into
    `hub` and the mean over the other hubs (paper Table 7)."""
    names = kernel_names(params)
    units = real_units(params, unit_mask)
    w = np.asarray(params[names[1]]["kernel"], np.float64)
    z = weight_zscores(params, unit_mask)[names[1]]
    others = units[2].copy()
    others[hub] = False
    return [
        dict(
            source=neuron_name(0, int(s)),
            role=int(roles[s]),
            weight=float(w[s, hub]),
            z=float(z[s, hub]),
            other_hubs_weight=float(w[s, others].mean()) if others.any() else float("nan"),
            other_hubs_z=float(z[s, others].mean()) if others.any() else float("nan"),
        )
        for s in np.flatnonzero(units[1])
    ]
