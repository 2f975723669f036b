"""Actor-critic for learning in the game (spec §9): the paper's MLP torso with two heads.

    x[batch, 3W+4] -> hidden_0 .. hidden_{L-1} (dense + activation)
                  -> output: 4 policy logits (linear)      } both read the last hidden layer
                  -> value: 1 state value (linear)         }

Layer names follow the supervised `MLP` (`hidden_i`, `output`), and `__call__` returns
the activations the same way (a list: every hidden layer after its activation, then the
linear `output`), so the CMNI code reads an actor-critic exactly as it reads the MLP.

CMNI neurons: the hidden units and the 4 policy logits count (the logits play the role
of the MLP's 4 action outputs: both are the network's preference over hop/jump/leap/help);
the value head does not. The value is a training aid of PPO, one scalar about the
state's worth rather than about an action, and counting it would make RL and supervised
CMNI divide by different neuron counts (17 + 17 + 4 = 38 for the paper's torso in both).

Initialisation follows PureJaxRL: orthogonal kernels (scale sqrt 2 for hidden layers,
0.01 for the logits so the first policy is near uniform, 1 for the value), zero biases.

`model.kind: transformer` swaps the torso for the supervised transformer's
(`mirror.agents.transformer_actor_critic`, same heads); `actor_critic_module` picks one.

Separate critic (`rl.critic: separate`, the default; PureJaxRL's and JaxMARL's
actor-critics): two networks of the same torso shape, `role="actor"` (torso + logits:
the analysed network, exactly the supervised layout) and `role="critic"` (its own torso +
value), so no hidden unit the CMNI measures is trained by value regression. Their
parameters are {"actor": ..., "critic": ...} (`separate_params`). The actor is drawn with
the key a shared actor-critic would use, so its initial weights are that actor-critic's
torso and logits (what the random-initialisation null draws); the critic with
`critic_key(key)`. `rl.critic: shared` keeps the single network with two heads.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mirror.agents.heads import actor_critic_heads
from mirror.agents.mlp import ACTIVATIONS, NUM_ACTIONS
from mirror.agents.transformer_actor_critic import TransformerActorCritic

ROLES = ("both", "actor", "critic")
CRITIC_STREAM = 1  # the separate critic's key: fold_in(the network's key, CRITIC_STREAM)


class ActorCritic(nn.Module):
    """widths: hidden layer sizes (e.g. (17, 17)); activation: a key of `ACTIVATIONS`;
    role: "both" (logits and value on one torso), "actor" (logits only) or "critic"
    (value only); a missing head is returned as None."""

    widths: Sequence[int]
    activation: str = "relu"
    num_actions: int = NUM_ACTIONS
    role: str = "both"

    @nn.compact
    def __call__(self, x):
        """x[batch, 3W+4] -> (logits[batch, 4], value[batch], activations: list of [batch, units]:
        each hidden layer after its activation, then the logits; the value is not in the list)."""
        act = ACTIVATIONS[self.activation]
        zeros = nn.initializers.zeros
        h = x.astype(jnp.float32)
        activations = []
        for i, width in enumerate(self.widths):
            kernel = nn.initializers.orthogonal(np.sqrt(2))
            h = act(nn.Dense(width, kernel_init=kernel, bias_init=zeros, name=f"hidden_{i}")(h))
            activations.append(h)
        logits, value = actor_critic_heads(h, self.role, self.num_actions, activations)
        return logits, value, activations


def init_actor_critic(key: jax.Array, widths: Sequence[int], activation: str = "relu", *, num_inputs: int):
    """Parameters {"hidden_i": {kernel, bias}, "output": {...}, "value": {...}} for inputs
    of `num_inputs` codes (3W + 4)."""
    model = ActorCritic(tuple(widths), activation)
    return model.init(key, jnp.zeros((1, num_inputs), jnp.float32))["params"]


def actor_critic_module(widths: Sequence[int], activation: str = "relu", transformer: tuple = (), role: str = "both") -> nn.Module:
    """The actor-critic of an RL config: the MLP torso at `widths`, or the transformer torso
    (`mirror.agents.transformer_actor_critic`) when `transformer` = (depth, d_model, heads,
    mlp_ratio) is given. Both return (logits, value, activations); `role` as `ActorCritic`'s."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if transformer:
        return TransformerActorCritic(*transformer, activation=activation, role=role)
    return ActorCritic(tuple(widths), activation, role=role)


def _block_diagonal(a: jax.Array, b: jax.Array) -> jax.Array:
    top = jnp.concatenate([a, jnp.zeros((a.shape[0], b.shape[1]), a.dtype)], axis=1)
    bottom = jnp.concatenate([jnp.zeros((b.shape[0], a.shape[1]), b.dtype), b], axis=1)
    return jnp.concatenate([top, bottom], axis=0)


def actor_and_critic(params, x: jax.Array, activation: str = "relu", critic_extra: jax.Array | None = None):
    """(logits[batch, 4], value[batch]) of a separate MLP actor and critic ({"actor",
    "critic"}, `role="actor"` and `role="critic"` `ActorCritic`s of one torso shape) on
    x[batch, 3W+4], in one pass: the first layers as one matmul of the concatenated kernels,
    every later layer and the two heads as one matmul of block-diagonal kernels. The same
    function as applying the two modules (tested); a CPU runs it much faster (fewer, larger
    ops). Gradients reach each network's own kernels only (the off-diagonal blocks are
    constants).

    `critic_extra` f32[batch, K]: inputs only the critic reads (a central critic: its input
    is x followed by them, its first kernel [3W+4+K, width])."""
    actor, critic = params["actor"], params["critic"]
    act = ACTIVATIONS[activation]
    h = x.astype(jnp.float32)
    depth = sum(name.startswith("hidden_") for name in actor)
    for i in range(depth):
        a, c = actor[f"hidden_{i}"], critic[f"hidden_{i}"]
        if i == 0:
            c_kernel = c["kernel"][: h.shape[-1]]
            pre = h @ jnp.concatenate([a["kernel"], c_kernel], axis=1)
            if critic_extra is not None:  # the critic's columns also read the extra inputs
                pre = pre.at[..., a["kernel"].shape[1] :].add(critic_extra @ c["kernel"][h.shape[-1] :])
        else:
            pre = h @ _block_diagonal(a["kernel"], c["kernel"])
        h = act(pre + jnp.concatenate([a["bias"], c["bias"]]))
    heads = _block_diagonal(actor["output"]["kernel"], critic["value"]["kernel"])
    out = h @ heads + jnp.concatenate([actor["output"]["bias"], critic["value"]["bias"]])
    return out[..., :-1], out[..., -1]


def critic_key(key: jax.Array) -> jax.Array:
    """The key of a separate critic whose actor is drawn with `key`."""
    return jax.random.fold_in(key, CRITIC_STREAM)


def separate_params(params) -> bool:
    """Whether `params` are a separate actor and critic ({"actor", "critic"})."""
    return isinstance(params, dict) and set(params) == {"actor", "critic"}


def cmni_params(params):
    """The layers that count as CMNI neurons, in the supervised model's layout (the MLP's
    {"hidden_i", "output"}, or the transformer's tree), ready for the existing CMNI code:
    the actor of a separate actor and critic, or a shared actor-critic without its value
    head (either torso names it "value")."""
    if separate_params(params):
        return params["actor"]
    return {name: layer for name, layer in params.items() if name != "value"}
