"""A plain NumPy, one-checkpoint-at-a-time transcription of spec §7, and its own checks.

This is the reference the vectorised `mirror.analysis` code is compared with (here and
in `benchmarks/bench_cmni.py`, whose loop baseline it is). It is written to be read
against the spec line by line, in float64, with no cleverness: select the rows of each
scenario, take means, loop over neurons.
"""

import numpy as np
import scipy.stats  # pytest is not imported: benchmarks/bench_cmni.py imports this module on machines without it

ACTIVATIONS_NP = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "linear": lambda z: z,
}


def reference_activations(params: dict, inputs: np.ndarray, unit_mask=None, activation: str = "relu") -> list[np.ndarray]:
    """One model (numpy params {"hidden_i": {kernel, bias}, "output": ...}):
    float64[rows, units] per dense layer, hidden layers after the activation, then the outputs."""
    act = ACTIVATIONS_NP[activation]
    layers = sum(1 for name in params if name.startswith("hidden_"))
    h = np.asarray(inputs, np.float64)
    outs = []
    for i in range(layers):
        layer = params[f"hidden_{i}"]
        h = act(h @ np.asarray(layer["kernel"], np.float64) + np.asarray(layer["bias"], np.float64))
        if unit_mask is not None:
            h = np.where(np.asarray(unit_mask[i]), h, 0.0)
        outs.append(h)
    out = h @ np.asarray(params["output"]["kernel"], np.float64) + np.asarray(params["output"]["bias"], np.float64)
    outs.append(out)
    return outs


def reference_rows(scenarios: np.ndarray, idle_shown: np.ndarray) -> dict:
    """Spec §7's rows: baseline = scenario 0; distress Frog = scenario 1 with Toad shown
    idle; distress Toad = scenario 2 with Frog shown idle; distress both = scenario 3."""
    return {
        "none": scenarios == 0,
        "frog": (scenarios == 1) & idle_shown[:, 1],
        "toad": (scenarios == 2) & idle_shown[:, 0],
        "both": scenarios == 3,
    }


def reference_cmni(params, inputs, scenarios, idle_shown, unit_mask=None, activation="relu") -> dict:
    """Spec §7 for one checkpoint. Returns cmni, mne, neurons, layer_cmni, and per real
    neuron (in layer order, padded units skipped) mu_none/frog/toad, d_frog, d_toad, mns."""
    rows = reference_rows(np.asarray(scenarios), np.asarray(idle_shown, bool))
    acts = reference_activations(params, inputs, unit_mask, activation)
    per_neuron = {k: [] for k in ("layer", "unit", "mu_none", "mu_frog", "mu_toad", "d_frog", "d_toad", "mns")}
    for layer, a in enumerate(acts):
        for unit in range(a.shape[1]):
            hidden = layer < len(acts) - 1
            if hidden and unit_mask is not None and not unit_mask[layer][unit]:
                continue  # a padded unit is not a neuron
            mu0 = a[rows["none"], unit].mean()
            mu1 = a[rows["frog"], unit].mean()
            mu2 = a[rows["toad"], unit].mean()
            d_frog, d_toad = mu1 - mu0, mu2 - mu0
            mns = min(d_frog, d_toad) if (d_frog > 0 and d_toad > 0) else 0.0
            for key, value in zip(per_neuron, (layer, unit, mu0, mu1, mu2, d_frog, d_toad, mns)):
                per_neuron[key].append(value)
    out = {k: np.asarray(v) for k, v in per_neuron.items()}
    mne = out["mns"].sum()
    out["mne"], out["neurons"], out["cmni"] = mne, len(out["mns"]), mne / len(out["mns"])
    out["layer_cmni"] = np.asarray([out["mns"][out["layer"] == i].mean() for i in range(len(acts))])
    return out


def reference_moments(params, inputs, scenarios, idle_shown, unit_mask=None, activation="relu") -> dict:
    """scipy.stats per neuron (all padded units included) and scenario group:
    {stat: float64[neurons, 4]} for mean, variance (ddof 0), skewness, kurtosis (excess)."""
    rows = reference_rows(np.asarray(scenarios), np.asarray(idle_shown, bool))
    a = np.concatenate(reference_activations(params, inputs, unit_mask, activation), axis=1)
    stats = {"mean": [], "variance": [], "skewness": [], "kurtosis": []}
    for group in ("none", "frog", "toad", "both"):
        x = a[rows[group]]
        with np.errstate(all="ignore"):
            stats["mean"].append(x.mean(0))
            stats["variance"].append(x.var(0))
            stats["skewness"].append(scipy.stats.skew(x, axis=0))
            stats["kurtosis"].append(scipy.stats.kurtosis(x, axis=0))
    return {k: np.stack(v, axis=1) for k, v in stats.items()}


# ----------------------------------------------------------------------------- the hand example


def hand_example():
    """One hidden layer of 2 ReLU units and 6 rows, small enough to do on paper.

    h0 = relu(x0), h1 = relu(x1 - 1); outputs o0 = h0 + h1, o1 = -h0, o2 = h1 / 2, o3 = 7.

    row  x0  x1  scenario  idle (Frog, Toad)  group     h0  h1
    A     1   2     0        (1, 1)            none      1   1
    B     3   0     0        (1, 1)            none      3   0
    C     4   1     1        (0, 1)            frog      4   0
    D     5   3     2        (1, 0)            toad      5   2
    E   100 100     1        (0, 0)            excluded (Toad not shown idle)
    F    50  50     3        (0, 0)            both (not in the CMNI)

    mu(none) = (2, 0.5), mu(frog) = (4, 0), mu(toad) = (5, 2)
    h0: dFrog 2, dToad 3 -> MNS 2;   h1: dFrog -0.5 -> 0
    o0: mu 2.5, 4, 7 -> dFrog 1.5, dToad 4.5 -> MNS 1.5;  o1, o2: a negative d -> 0;  o3: d = 0 -> 0
    MNE = 3.5, N = 6, CMNI = 3.5 / 6; per layer: hidden 2 / 2 = 1, outputs 1.5 / 4 = 0.375
    """
    hidden_kernel = np.zeros((100, 2), np.float32)
    hidden_kernel[0, 0] = 1.0
    hidden_kernel[1, 1] = 1.0
    output_kernel = np.array([[1.0, -1.0, 0.0, 0.0], [1.0, 0.0, 0.5, 0.0]], np.float32)
    params = {
        "hidden_0": {"kernel": hidden_kernel, "bias": np.array([0.0, -1.0], np.float32)},
        "output": {"kernel": output_kernel, "bias": np.array([0.0, 0.0, 0.0, 7.0], np.float32)},
    }
    inputs = np.zeros((6, 100), np.int8)
    inputs[:, 0] = [1, 3, 4, 5, 100, 50]
    inputs[:, 1] = [2, 0, 1, 3, 100, 50]
    scenarios = np.array([0, 0, 1, 2, 1, 3], np.int8)
    idle_shown = np.array([[1, 1], [1, 1], [0, 1], [1, 0], [0, 0], [0, 0]], bool)
    expected = {"cmni": 3.5 / 6, "mne": 3.5, "neurons": 6, "layer_cmni": [1.0, 0.375], "mns": [2, 0, 1.5, 0, 0, 0]}
    return params, inputs, scenarios, idle_shown, expected


def test_reference_reproduces_the_hand_example():
    params, inputs, scenarios, idle_shown, expected = hand_example()
    ref = reference_cmni(params, inputs, scenarios, idle_shown)
    np.testing.assert_allclose(ref["cmni"], expected["cmni"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ref["mne"], expected["mne"], rtol=1e-12)
    assert ref["neurons"] == expected["neurons"]
    np.testing.assert_allclose(ref["layer_cmni"], expected["layer_cmni"])
    np.testing.assert_allclose(ref["mns"], expected["mns"])
    np.testing.assert_allclose(ref["mu_none"][:2], [2.0, 0.5])
    np.testing.assert_allclose(ref["mu_toad"][:2], [5.0, 2.0])
