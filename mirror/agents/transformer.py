"""A small pre-LayerNorm transformer with the MLP's calling convention.

Tokens (W + 1 of them at world width W):
- one per world cell: the cell's ground, players-line and fly codes, each looked up in
  its own small embedding table, summed;
- one for energy, the only observer statistic kept in the model input: a learned linear
  map of the raw energy value. Own code, score and position are always zeroed in the
  model input (`mirror.data.processing.model_inputs`), so they get no token.

Each token gets a learned position embedding (`position`, [W + 1, d_model]); then
`depth` pre-LayerNorm blocks (x += attn(LN(x)); x += mlp(LN(x))), a final LayerNorm,
the mean over the W cell tokens and a linear layer to the 4 outputs.

"Neurons" for the CMNI (spec §7): each block's MLP hidden units after the activation
(before dropout), mean-pooled over the cell tokens, then the 4 outputs; `activations`
lists those layers in order, [batch, units] each, like the MLP's. With
`residual_neurons` (`model.transformer.residual_neurons`, off by default) each block's
MLP layer is followed by that block's residual stream after the block, layer-normalised
(`residual_ln_i`: the view a next LayerNorm reads, at unit scale) and mean-pooled over
the cell tokens: d_model more neurons per block, in the order block_0 MLP, block_0
residual, block_1 MLP, ..., outputs. The read-out feeds nothing, so it leaves the outputs
and the training unchanged; its LayerNorm parameters are the marker from which the
analysis reads the layout (`neuron_widths`).

Dropout (training only) acts on the blocks' MLP hidden units with `unit_dropout`, so the
rate may be a traced per-member value as for the MLP. Transformers are never padded:
`unit_mask` must be None.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from mirror.agents.mlp import ACTIVATIONS, KERNEL_INITS, NUM_ACTIONS, unit_dropout
from mirror.env.constants import DISTRESS, FLY, ROUGH, layout_of

# Embedding table sizes: every code a layer can hold (codes outside are clipped into range).
GROUND_CODES = ROUGH + 1
PLAYER_CODES = DISTRESS + 1
FLY_CODES = FLY + 1
DEFAULTS = {"depth": 2, "d_model": 32, "heads": 2, "mlp_ratio": 2}


class Block(nn.Module):
    d_model: int
    heads: int
    mlp_ratio: int
    activation: str
    kernel_init: str

    @nn.compact
    def __call__(self, x, cells: int, dropout_rate, dropout_key):
        init = KERNEL_INITS[self.kernel_init]()
        h = nn.LayerNorm(name="ln_attn")(x)
        x = x + nn.MultiHeadDotProductAttention(
            num_heads=self.heads, qkv_features=self.d_model, kernel_init=init, deterministic=True, name="attention"
        )(h, h)
        h = nn.LayerNorm(name="ln_mlp")(x)
        hidden = ACTIVATIONS[self.activation](nn.Dense(self.d_model * self.mlp_ratio, kernel_init=init, name="mlp_in")(h))
        neurons = jnp.mean(hidden[:, :cells], axis=1)  # pooled over the cell tokens
        if dropout_key is not None:
            hidden = unit_dropout(dropout_key, hidden, dropout_rate)
        x = x + nn.Dense(self.d_model, kernel_init=init, name="mlp_out")(hidden)
        return x, neurons


def pooled_trunk(module: nn.Module, x, kernel_init: str, dropout_rate=0.0, dropout_key=None):
    """Everything before the heads, called inside `module`'s compact method (so its layers
    are `module`'s: ground/players/flies/energy embeddings, `position`, `block_i`,
    `ln_final`): x[batch, 3W+4] -> (pooled[batch, d_model], each block's pooled MLP units).
    `module` has depth, d_model, heads, mlp_ratio and activation fields."""
    layout = layout_of(x.shape[-1])
    codes = x.astype(jnp.int32)
    d = module.d_model
    tokens = (
        nn.Embed(GROUND_CODES, d, name="ground_embed")(jnp.clip(codes[:, layout.ground], 0, GROUND_CODES - 1))
        + nn.Embed(PLAYER_CODES, d, name="players_embed")(jnp.clip(codes[:, layout.players], 0, PLAYER_CODES - 1))
        + nn.Embed(FLY_CODES, d, name="flies_embed")(jnp.clip(codes[:, layout.flies], 0, FLY_CODES - 1))
    )
    energy = nn.Dense(d, name="energy_embed")(x[:, layout.energy, None].astype(jnp.float32))
    h = jnp.concatenate([tokens, energy[:, None, :]], axis=1)
    h = h + module.param("position", nn.initializers.normal(0.02), (layout.width + 1, d))
    activations = []
    for i in range(module.depth):
        key = None if dropout_key is None else jax.random.fold_in(dropout_key, i)
        block = Block(d, module.heads, module.mlp_ratio, module.activation, kernel_init, name=f"block_{i}")
        h, neurons = block(h, layout.width, dropout_rate, key)
        activations.append(neurons)
        if getattr(module, "residual_neurons", False):
            # A read-out only: nothing downstream uses it, so its LayerNorm keeps its initial
            # unit scale and zero bias (zero gradients) and the outputs do not change.
            stream = nn.LayerNorm(name=f"residual_ln_{i}")(h)
            activations.append(jnp.mean(stream[:, : layout.width], axis=1))
    pooled = jnp.mean(nn.LayerNorm(name="ln_final")(h)[:, : layout.width], axis=1)
    return pooled, activations


class Transformer(nn.Module):
    depth: int = DEFAULTS["depth"]
    d_model: int = DEFAULTS["d_model"]
    heads: int = DEFAULTS["heads"]
    mlp_ratio: int = DEFAULTS["mlp_ratio"]
    activation: str = "relu"
    kernel_init: str = "glorot_uniform"
    num_actions: int = NUM_ACTIONS
    residual_neurons: bool = False  # also read out each block's residual stream (see the module docstring)

    @nn.compact
    def __call__(self, x, *, dropout_rate=0.0, dropout_key=None, unit_mask=None):
        """x[batch, 3W+4] -> (outputs[batch, 4], activations: list of [batch, units]:
        each block's pooled MLP hidden units, then the outputs). dropout_key=None means
        evaluation (no dropout)."""
        if unit_mask is not None:
            raise ValueError("transformers are not padded: unit_mask must be None")
        pooled, activations = pooled_trunk(self, x, self.kernel_init, dropout_rate, dropout_key)
        init = KERNEL_INITS[self.kernel_init]()
        out = nn.Dense(self.num_actions, kernel_init=init, bias_init=nn.initializers.zeros, name="output")(pooled)
        activations.append(out)
        return out, activations


def init_transformer_params(
    key: jax.Array,
    *,
    num_inputs: int,
    depth: int = DEFAULTS["depth"],
    d_model: int = DEFAULTS["d_model"],
    heads: int = DEFAULTS["heads"],
    mlp_ratio: int = DEFAULTS["mlp_ratio"],
    activation: str = "relu",
    kernel_init: str = "glorot_uniform",
    residual_neurons: bool = False,
):
    """Parameters of a transformer for `num_inputs` = 3W + 4 model inputs."""
    model = Transformer(depth, d_model, heads, mlp_ratio, activation, kernel_init, residual_neurons=residual_neurons)
    return model.init(key, jnp.zeros((1, num_inputs), jnp.float32))["params"]


def is_l2_kernel(path: str) -> bool:
    """The L2 penalty's leaves: every kernel except the embeddings (`*_embed`, the
    position table) and LayerNorm (scale/bias, no kernel)."""
    return "kernel" in path and "embed" not in path


def is_transformer_params(params) -> bool:
    """Whether a parameter tree (leaves may carry leading model axes) is a transformer's."""
    return "position" in params


def transformer_arch(params) -> tuple:
    """(depth, d_model, heads, mlp_ratio) of transformer parameters (leaves may carry
    leading model axes)."""
    depth = sum(1 for name in params if name.startswith("block_"))
    d_model = int(params["position"].shape[-1])
    block = params["block_0"]
    heads = int(block["attention"]["query"]["kernel"].shape[-2])
    return depth, d_model, heads, int(block["mlp_in"]["kernel"].shape[-1]) // d_model


def has_residual_neurons(params) -> bool:
    """Whether the residual stream is read out as neurons (`residual_ln_i` layers exist)."""
    return "residual_ln_0" in params


def transformer_of_params(params, activation: str = "relu") -> Transformer:
    """The Transformer module whose parameters these are."""
    return Transformer(*transformer_arch(params), activation=activation, residual_neurons=has_residual_neurons(params))


def transformer_num_inputs(params) -> int:
    """3W + 4 for the W + 1 position embeddings (W cells and energy)."""
    return 3 * (int(params["position"].shape[-2]) - 1) + 4


def neuron_widths(params) -> list[int]:
    """Units per CMNI layer (the outputs excluded): each block's MLP hidden units, each
    followed by its residual stream's d_model units when those are read out."""
    depth = sum(1 for name in params if name.startswith("block_"))
    residual = [int(params["position"].shape[-1])] if has_residual_neurons(params) else []
    return [w for i in range(depth) for w in [int(params[f"block_{i}"]["mlp_in"]["bias"].shape[-1]), *residual]]
