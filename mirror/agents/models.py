"""The supervised model of a config: `model.kind` picks the MLP (spec §8) or the
transformer. Both take x[batch, 3W+4] and return (outputs[batch, 4],
activations: list of [batch, units]); this module is the one place that chooses.

A model is described by a hashable `Arch` (static in the jitted programs)."""

from typing import NamedTuple

import jax

from mirror.agents.mlp import MLP, init_params, num_inputs_of, unpad_params
from mirror.agents.transformer import (
    Transformer,
    init_transformer_params,
    is_l2_kernel,
    is_transformer_params,
    transformer_num_inputs,
)


class Arch(NamedTuple):
    kind: str  # "mlp" | "transformer"
    widths: tuple  # MLP hidden widths (unused by the transformer)
    activation: str
    kernel_init: str
    transformer: tuple = ()  # (depth, d_model, heads, mlp_ratio) for the transformer
    residual_neurons: bool = False  # the transformer's residual stream read out as CMNI neurons


def arch_of(model_config, widths: tuple | None = None) -> Arch:
    """The Arch of a `ModelConfig` (widths: the MLP widths to use, default the config's)."""
    m = model_config
    return Arch(
        m.kind, tuple(m.widths if widths is None else widths), m.activation, m.kernel_init, m.transformer.as_tuple(),
        m.kind == "transformer" and m.transformer.residual_neurons,
    )  # fmt: skip


def build_model(arch: Arch):
    if arch.kind == "transformer":
        return Transformer(*arch.transformer, activation=arch.activation, kernel_init=arch.kernel_init, residual_neurons=arch.residual_neurons)
    return MLP(arch.widths, arch.activation, arch.kernel_init)


def init_model_params(key: jax.Array, arch: Arch, *, num_inputs: int):
    """A model's parameters at its true shapes."""
    if arch.kind == "transformer":
        depth, d_model, heads, mlp_ratio = arch.transformer
        return init_transformer_params(
            key, num_inputs=num_inputs, depth=depth, d_model=d_model, heads=heads, mlp_ratio=mlp_ratio,
            activation=arch.activation, kernel_init=arch.kernel_init, residual_neurons=arch.residual_neurons,
        )  # fmt: skip
    return init_params(key, arch.widths, arch.activation, arch.kernel_init, num_inputs=num_inputs)


def l2_leaf(kind: str, path: str) -> bool:
    """Whether the leaf at `path` (a `jax.tree_util.keystr`) carries the L2 penalty: the
    MLP's hidden kernels (spec §8); the transformer's kernels except embeddings."""
    if kind == "transformer":
        return is_l2_kernel(path)
    return "hidden_" in path and "kernel" in path


def unpad_model_params(params, widths):
    """`mirror.agents.mlp.unpad_params` for either kind: a transformer is never padded, so
    its params are returned as they are."""
    return params if is_transformer_params(params) else unpad_params(params, widths)


def model_num_inputs(params) -> int:
    """The input width (3W + 4) of either model's params (leaves may carry model axes)."""
    return transformer_num_inputs(params) if is_transformer_params(params) else num_inputs_of(params)
