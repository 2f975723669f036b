"""Losses of spec §8: MSE on one-hot targets (the paper's) or softmax cross-entropy, plus
an L2 penalty on the hidden kernels (not the output kernel)."""

import jax
import jax.numpy as jnp

from mirror.agents.mlp import NUM_ACTIONS

LOSSES = ("mse", "cross_entropy")


def row_loss(outputs: jax.Array, labels: jax.Array, kind: str) -> jax.Array:
    """outputs[rows, 4], labels int[rows] -> loss per row [rows] (the data term)."""
    if kind == "mse":
        return jnp.mean(jnp.square(outputs - jax.nn.one_hot(labels, NUM_ACTIONS, dtype=outputs.dtype)), axis=-1)
    if kind == "cross_entropy":
        log_probs = jax.nn.log_softmax(outputs, axis=-1)
        return -jnp.take_along_axis(log_probs, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]
    raise ValueError(f"unknown loss {kind!r}; expected one of {LOSSES}")


def l2_penalty(params: dict, l2) -> jax.Array:
    """l2 * sum(w^2) over every hidden layer's kernel (spec §8)."""
    hidden = [layer["kernel"] for name, layer in params.items() if name.startswith("hidden_")]
    return l2 * sum(jnp.sum(jnp.square(kernel)) for kernel in hidden)
