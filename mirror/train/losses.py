"""Losses of spec §8: MSE on one-hot targets (the paper's) or softmax cross-entropy, plus
an L2 penalty on the hidden kernels (not the output kernel), and optional per-class
weights on the data term (`train.class_weights`).

Class weights. "none" (the paper): every row counts once. "balanced": a row of class c
counts n / (4 n_c), with n_c the class's count in the TRAINING split (the rows in use,
after `train.max_train_rows`) and n its size, so
each class carries a quarter of the training loss (the weights average to 1 over the
training rows, keeping the loss on the paper's scale). A class absent from the training
split gets weight 0 (no training row has it; a validation or test row of it then adds
nothing to the loss). The weighted data term of a batch is mean(w[y] * loss): the same
normalisation as the unweighted one.
"""

import jax
import jax.numpy as jnp
import numpy as np

from mirror.agents.mlp import NUM_ACTIONS

LOSSES = ("mse", "cross_entropy")
CLASS_WEIGHTS = ("none", "balanced")


def class_weights(labels, kind: str) -> np.ndarray | None:
    """Per-class loss weights f32[4] from the training split's labels int[rows]
    (see the module docstring); None for "none" (the unweighted loss, bit for bit)."""
    if kind == "none":
        return None
    if kind != "balanced":
        raise ValueError(f"unknown class weighting {kind!r}; expected one of {CLASS_WEIGHTS}")
    counts = np.bincount(np.asarray(labels, np.int64), minlength=NUM_ACTIONS).astype(np.float64)
    weights = np.divide(counts.sum(), NUM_ACTIONS * counts, out=np.zeros(NUM_ACTIONS), where=counts > 0)
    return weights.astype(np.float32)


def weighted_row_loss(outputs: jax.Array, labels: jax.Array, kind: str, weights: jax.Array | None) -> jax.Array:
    """`row_loss` times the row's class weight; `weights` None: `row_loss` itself."""
    loss = row_loss(outputs, labels, kind)
    return loss if weights is None else loss * weights[labels.astype(jnp.int32)]


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
