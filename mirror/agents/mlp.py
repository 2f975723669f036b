"""The paper's MLP (spec §8) in Flax: 3W+4 inputs (100 at the spec's world width 32; the
input size always comes from the data) -> L hidden dense layers (activation,
dropout) -> 4 linear outputs, with every layer's post-activation output available to
the CMNI (spec §7).

Two choices serve populations (`jax.vmap` over members):
- the dropout rate is a call argument, so it can be a traced, per-member value;
- a model can be zero-padded to a wider shape: `unit_mask` switches the padded units
  off, and dropout draws each unit's randomness from its own key (`fold_in(key, unit)`),
  so a padded member sees exactly the dropout masks it would see at its true width.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = {"relu": nn.relu, "tanh": jnp.tanh, "gelu": nn.gelu, "sigmoid": nn.sigmoid, "linear": lambda x: x}
KERNEL_INITS = {
    "glorot_uniform": nn.initializers.glorot_uniform,
    "glorot_normal": nn.initializers.glorot_normal,
    "he_uniform": nn.initializers.he_uniform,
    "he_normal": nn.initializers.he_normal,
    "lecun_normal": nn.initializers.lecun_normal,
}
NUM_ACTIONS = 4


def unit_dropout(key: jax.Array, h: jax.Array, rate) -> jax.Array:
    """Inverted dropout on h[batch, units] with a traced rate; unit j's mask comes from
    fold_in(key, j), so it does not depend on how many units the layer has."""
    units = jnp.arange(h.shape[-1])
    u = jax.vmap(lambda j: jax.random.uniform(jax.random.fold_in(key, j), h.shape[:-1]), out_axes=-1)(units)
    keep = u >= rate
    # An explicit reciprocal: XLA may or may not turn `h / (1 - rate)` into a multiply
    # depending on how the program is partitioned, which would change the last bit.
    scale = 1.0 / jnp.maximum(1.0 - rate, 1e-6)
    return jnp.where(keep, h * scale, 0.0)


class MLP(nn.Module):
    """widths: hidden layer sizes (e.g. (17, 17)); outputs are linear (MSE on one-hot)."""

    widths: Sequence[int]
    activation: str = "relu"
    kernel_init: str = "glorot_uniform"
    num_actions: int = NUM_ACTIONS

    @nn.compact
    def __call__(self, x, *, dropout_rate=0.0, dropout_key=None, unit_mask=None):
        """x[batch, inputs] -> (outputs[batch, 4], activations: list of [batch, units] per layer,
        hidden layers after the activation (before dropout) and the final linear output).

        dropout_key=None means evaluation (no dropout). unit_mask: optional list of
        bool[units] per hidden layer (padded populations).
        """
        act = ACTIVATIONS[self.activation]
        init = KERNEL_INITS[self.kernel_init]()
        h = x.astype(jnp.float32)
        activations = []
        for i, width in enumerate(self.widths):
            h = act(nn.Dense(width, kernel_init=init, bias_init=nn.initializers.zeros, name=f"hidden_{i}")(h))
            if unit_mask is not None:
                h = jnp.where(unit_mask[i], h, 0.0)
            activations.append(h)
            if dropout_key is not None:
                h = unit_dropout(jax.random.fold_in(dropout_key, i), h, dropout_rate)
        out = nn.Dense(self.num_actions, kernel_init=init, bias_init=nn.initializers.zeros, name="output")(h)
        activations.append(out)
        return out, activations


def init_params(
    key: jax.Array, widths: Sequence[int], activation: str = "relu", kernel_init: str = "glorot_uniform", *, num_inputs: int
):
    """Parameters of an MLP at its true widths: {"hidden_i": {kernel, bias}, "output": {...}}.

    num_inputs: the model-input width of the data (3W + 4; `Dataset.input_width`)."""
    model = MLP(tuple(widths), activation, kernel_init)
    return model.init(key, jnp.zeros((1, num_inputs), jnp.float32))["params"]


def num_inputs_of(params) -> int:
    """The input width of MLP params (leaves may carry leading model axes)."""
    return int(params["hidden_0"]["kernel"].shape[-2])


def pad_params(params, widths: Sequence[int], padded_widths: Sequence[int]):
    """Zero-pad a model's parameters from hidden widths `widths` to the wider `padded_widths`
    (same depth). Leaves may carry leading model axes ([..., fan_in, units]); the input size
    is read from the first kernel. The one padding routine: training, the random-init null
    and the tests all pad with it, and `unpad_params` inverts it."""
    if len(widths) != len(padded_widths):
        raise ValueError(f"cannot pad {len(widths)} hidden layers to {len(padded_widths)}")
    out = {}
    fan_in = padded_in = num_inputs_of(params)
    for i, (w, pw) in enumerate(zip(widths, padded_widths)):
        layer = params[f"hidden_{i}"]
        kernel, bias = jnp.asarray(layer["kernel"]), jnp.asarray(layer["bias"])
        lead = kernel.shape[:-2]
        out[f"hidden_{i}"] = {
            "kernel": jnp.zeros(lead + (padded_in, pw), kernel.dtype).at[..., :fan_in, :w].set(kernel),
            "bias": jnp.zeros(lead + (pw,), bias.dtype).at[..., :w].set(bias),
        }
        fan_in, padded_in = w, pw
    kernel = jnp.asarray(params["output"]["kernel"])
    out["output"] = {
        "kernel": jnp.zeros(kernel.shape[:-2] + (padded_in, kernel.shape[-1]), kernel.dtype).at[..., :fan_in, :].set(kernel),
        "bias": jnp.asarray(params["output"]["bias"]),
    }
    return out


def unit_masks(member_widths: Sequence[Sequence[int]], padded_widths: Sequence[int]) -> list[np.ndarray]:
    """bool[members, padded_width] per hidden layer: True for each member's real units.

    member_widths: the true hidden widths of each member (one tuple per member). The one
    place masks are built: training, the analysis and sweeps all call it."""
    widths = np.asarray([tuple(w) for w in member_widths], np.int64).reshape(-1, len(padded_widths))
    return [np.arange(pw)[None, :] < widths[:, i, None] for i, pw in enumerate(padded_widths)]


def unpad_params(params, widths: Sequence[int]):
    """The inverse of `pad_params`: keep the first `widths[i]` units of each hidden layer.
    Leaves may carry leading model axes ([..., fan_in, units])."""
    out, fan_in = {}, num_inputs_of(params)
    for i, w in enumerate(widths):
        layer = params[f"hidden_{i}"]
        out[f"hidden_{i}"] = {"kernel": layer["kernel"][..., :fan_in, :w], "bias": layer["bias"][..., :w]}
        fan_in = w
    out["output"] = {"kernel": params["output"]["kernel"][..., :fan_in, :], "bias": params["output"]["bias"]}
    return out
