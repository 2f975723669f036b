"""Self/other overlap (SOO) as a training signal (`rl.soo_weight`; Carauleanu et al. 2024).

The CMNI asks whether a unit responds alike to the agent's own distress and to its
partner's. SOO training asks for it: it adds to the actor's loss a distance between the
actor's hidden activations on a view and on its distress mirror (`mirror.env.pairs`: the
same scene with the distress moved between self and partner), over the pairs in the
rollout's own views (on-policy: the states the agent meets).

    distance = mean over hidden units n of   E_pairs[(a_n(v) - a_n(v'))^2] / (Var_rows a_n(v) + eps)

A raw squared distance is won by shrinking every activation: scaled by each unit's own
variance over the minibatch's rows (with its gradient, so a unit's size cancels), the
distance only falls when a unit responds more alike to the two views than it varies
overall, the way `cmni_scaled` reads a unit's deltas in units of its own spread. Units
that never vary (dead ReLUs) add 0. The output layer is left out: it is the policy, and
the loss would otherwise ask directly for the same action whoever is in distress.
"""

import jax
import jax.numpy as jnp

from mirror.agents.mlp import MLP
from mirror.env.seat import policy_input

SOO_EPS = 1e-6  # added to each unit's variance


def hidden_widths(layers) -> tuple:
    """The torso widths of an MLP's params in the supervised layout ({"hidden_i", "output"})."""
    return tuple(layers[f"hidden_{i}"]["bias"].shape[-1] for i in range(sum(n.startswith("hidden_") for n in layers)))


def hidden_activations(layers, views: jax.Array, activation: str) -> list:
    """[rows, units] per hidden layer (after the activation) of an MLP actor on RL views int8[rows, 3W+4]."""
    _, activations = MLP(hidden_widths(layers), activation).apply({"params": layers}, policy_input(views, "seat"))
    return activations[:-1]


def overlap_distance(layers, views: jax.Array, mirrored: jax.Array, weights: jax.Array, activation: str) -> jax.Array:
    """The scaled self/other distance (module docstring) of one MLP actor (`layers`: the
    supervised layout) over views int8[rows, 3W+4] and their mirrors, each row's pair
    counted with weights f32[rows] (0 for a view that is not pairable); 0 without pairs."""
    own = hidden_activations(layers, views, activation)
    other = hidden_activations(layers, mirrored, activation)
    total = jnp.maximum(jnp.sum(weights), 1.0)
    terms = []
    for a, b in zip(own, other):
        spread = jnp.var(a, axis=0) + SOO_EPS
        terms.append(jnp.sum(weights[:, None] * jnp.square(a - b), axis=0) / total / spread)
    return jnp.mean(jnp.concatenate(terms))
