"""Unit ablation of an MLP actor: chosen hidden units replaced by a fixed value.

An ablation is a pair per hidden layer: `ablate[i]` bool[units] picks the units of
layer i, `value[i]` f32[units] is what they output instead (their mean activation over
some states for a mean ablation, zeros for a zero ablation). The replacement happens
after the activation, where the CMNI reads the unit, so the layers above see the
ablated value exactly as the CMNI would have measured it. Parameters are in the
supervised layout (`{"hidden_i": ..., "output": ...}`, what RL checkpoints store).
"""

from typing import Sequence

import jax
import jax.numpy as jnp

from mirror.agents.mlp import ACTIVATIONS


def _layers(params) -> int:
    return sum(1 for name in params if name.startswith("hidden_"))


def hidden_activations(params, x: jax.Array, activation: str = "relu") -> list[jax.Array]:
    """x f32[B, inputs] -> [f32[B, units_i]] per hidden layer (after the activation)."""
    act = ACTIVATIONS[activation]
    h, out = x.astype(jnp.float32), []
    for i in range(_layers(params)):
        h = act(h @ params[f"hidden_{i}"]["kernel"] + params[f"hidden_{i}"]["bias"])
        out.append(h)
    return out


def mean_activations(params, x: jax.Array, activation: str = "relu") -> list[jax.Array]:
    """[f32[units_i]]: each hidden unit's mean activation over the rows of x."""
    return [jnp.mean(h, axis=0) for h in hidden_activations(params, x, activation)]


def ablated_logits(
    params, x: jax.Array, ablate: Sequence[jax.Array], value: Sequence[jax.Array], activation: str = "relu"
) -> jax.Array:
    """logits f32[B, 4] of the MLP with units `ablate[i]` of hidden layer i fixed at `value[i]`.

    With no unit ablated this is exactly the MLP's forward pass (without dropout)."""
    act = ACTIVATIONS[activation]
    h = x.astype(jnp.float32)
    for i in range(_layers(params)):
        h = act(h @ params[f"hidden_{i}"]["kernel"] + params[f"hidden_{i}"]["bias"])
        h = jnp.where(ablate[i], value[i], h)
    return h @ params["output"]["kernel"] + params["output"]["bias"]


def no_ablation(params) -> list[jax.Array]:
    """bool[units_i] per hidden layer, all False."""
    return [jnp.zeros(params[f"hidden_{i}"]["bias"].shape[-1], bool) for i in range(_layers(params))]


def layer_widths(params) -> tuple[int, ...]:
    return tuple(int(params[f"hidden_{i}"]["bias"].shape[-1]) for i in range(_layers(params)))


def random_ablation(key: jax.Array, counts: Sequence[int], widths: Sequence[int]) -> list[jax.Array]:
    """bool[units_i] per layer: `counts[i]` units of layer i drawn uniformly without replacement."""
    masks = []
    for i, (count, width) in enumerate(zip(counts, widths)):
        order = jax.random.permutation(jax.random.fold_in(key, i), width)
        masks.append(jnp.zeros(width, bool).at[order[:count]].set(True))
    return masks
