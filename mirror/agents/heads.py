"""The two heads of every actor-critic torso (PureJaxRL's initialisation): 4 policy logits
(orthogonal × 0.01, so the first policy is near uniform) and a state value (orthogonal × 1),
zero biases. `role` picks which a network has: "both", "actor" or "critic"."""

import flax.linen as nn
import jax


def actor_critic_heads(h: jax.Array, role: str, num_actions: int, activations: list):
    """(logits[batch, num_actions] or None, value[batch] or None) on the torso output h;
    called inside a compact module, so the layers are its `output` and `value`. The logits
    join `activations` (they count as CMNI neurons; the value does not)."""
    zeros = nn.initializers.zeros
    logits = value = None
    if role != "critic":
        logits = nn.Dense(num_actions, kernel_init=nn.initializers.orthogonal(0.01), bias_init=zeros, name="output")(h)
        activations.append(logits)
    if role != "actor":
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), bias_init=zeros, name="value")(h)[..., 0]
    return logits, value
