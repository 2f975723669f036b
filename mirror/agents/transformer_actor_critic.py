"""Actor-critic with the transformer torso (`model.kind: transformer` in `mirror rl`).

    x[batch, 3W+4] -> the supervised `Transformer`'s tokens, position embeddings, blocks,
                      final LayerNorm and mean over the cell tokens (`pooled`, [batch, d_model])
                   -> output: 4 policy logits (linear)      } both read `pooled`
                   -> value: 1 state value (linear)         }

Every layer except `value` has the name and shape of the supervised `Transformer`'s, so
the parameters without the value head (`mirror.agents.actor_critic.cmni_params`) ARE a
supervised transformer's parameters: checkpoints store them, and the CMNI code, the
run loader and `Transformer.apply` read them unchanged (`Transformer.apply` on them gives
this module's logits and activations exactly; tests/test_rl_transformer.py pins it).

CMNI neurons, as for the supervised transformer: each block's MLP hidden units, pooled
over the cell tokens, then the 4 logits; the value head is not counted (the MLP
actor-critic's reasons, `mirror.agents.actor_critic`).

Initialisation: the blocks and embeddings as the supervised transformer's default
(glorot_uniform; `model.kernel_init` is not read: the actor-critic has its
own init, like the MLP torso's); the heads as the MLP actor-critic's (PureJaxRL): orthogonal
kernels, scale 0.01 for the logits (a near-uniform first policy) and 1 for the value, zero
biases. No dropout: RL trains without it.

A separate critic (`rl.critic: separate`) is a second module of the same shape with
`role="critic"`, and the actor `role="actor"` (see `mirror.agents.actor_critic`).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from mirror.agents.heads import actor_critic_heads
from mirror.agents.mlp import NUM_ACTIONS
from mirror.agents.transformer import DEFAULTS, pooled_trunk

BLOCK_INIT = "glorot_uniform"  # the supervised Transformer's default kernel_init


class TransformerActorCritic(nn.Module):
    """(depth, d_model, heads, mlp_ratio) as `mirror.agents.transformer.Transformer`."""

    depth: int = DEFAULTS["depth"]
    d_model: int = DEFAULTS["d_model"]
    heads: int = DEFAULTS["heads"]
    mlp_ratio: int = DEFAULTS["mlp_ratio"]
    activation: str = "relu"
    num_actions: int = NUM_ACTIONS
    role: str = "both"  # or "actor" (logits only), "critic" (value only): `mirror.agents.actor_critic`

    @nn.compact
    def __call__(self, x):
        """x[batch, 3W+4] -> (logits[batch, 4], value[batch], activations: list of [batch, units]:
        each block's pooled MLP hidden units, then the logits; the value is not in the list).
        A head that `role` leaves out is returned as None."""
        # The supervised Transformer's trunk, layer for layer (same names, so the
        # parameter trees coincide up to the heads).
        pooled, activations = pooled_trunk(self, x, BLOCK_INIT)
        logits, value = actor_critic_heads(pooled, self.role, self.num_actions, activations)
        return logits, value, activations


def init_transformer_actor_critic(key: jax.Array, arch: tuple, activation: str = "relu", *, num_inputs: int):
    """Parameters (the supervised transformer's layers plus "value") for inputs of
    `num_inputs` codes (3W + 4); arch = (depth, d_model, heads, mlp_ratio)."""
    model = TransformerActorCritic(*arch, activation=activation)
    return model.init(key, jnp.zeros((1, num_inputs), jnp.float32))["params"]

