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
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mirror.agents.mlp import ACTIVATIONS, NUM_ACTIONS
from mirror.agents.transformer_actor_critic import TransformerActorCritic


class ActorCritic(nn.Module):
    """widths: hidden layer sizes (e.g. (17, 17)); activation: a key of `ACTIVATIONS`."""

    widths: Sequence[int]
    activation: str = "relu"
    num_actions: int = NUM_ACTIONS

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
        policy_kernel = nn.initializers.orthogonal(0.01)
        logits = nn.Dense(self.num_actions, kernel_init=policy_kernel, bias_init=zeros, name="output")(h)
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), bias_init=zeros, name="value")(h)
        activations.append(logits)
        return logits, value[..., 0], activations


def init_actor_critic(key: jax.Array, widths: Sequence[int], activation: str = "relu", *, num_inputs: int):
    """Parameters {"hidden_i": {kernel, bias}, "output": {...}, "value": {...}} for inputs
    of `num_inputs` codes (3W + 4)."""
    model = ActorCritic(tuple(widths), activation)
    return model.init(key, jnp.zeros((1, num_inputs), jnp.float32))["params"]


def actor_critic_module(widths: Sequence[int], activation: str = "relu", transformer: tuple = ()) -> nn.Module:
    """The actor-critic of an RL config: the MLP torso at `widths`, or the transformer torso
    (`mirror.agents.transformer_actor_critic`) when `transformer` = (depth, d_model, heads,
    mlp_ratio) is given. Both return (logits, value, activations)."""
    if transformer:
        return TransformerActorCritic(*transformer, activation=activation)
    return ActorCritic(tuple(widths), activation)


def cmni_params(params):
    """The layers that count as CMNI neurons: the parameters without the value head, in the
    supervised model's layout (the MLP's {"hidden_i", "output"}, or the transformer's
    tree), ready for the existing CMNI code. Either torso names its value head "value"."""
    return {name: layer for name, layer in params.items() if name != "value"}
