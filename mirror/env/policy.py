"""The behaviour policy of the paper's rollouts (spec §5.1): a fixed action distribution."""

import jax
import jax.numpy as jnp

# hop, jump, leap, help (spec §5.1 default).
BEHAVIOUR_PROBS = (0.5, 0.25, 0.125, 0.125)


def actions_from_uniforms(u: jax.Array, probs) -> jax.Array:
    """Inverse-CDF sampling: u[...] in [0, 1) -> actions int32[...] with P(a) = probs[a].

    One uniform per action is far cheaper than `jax.random.categorical` (four Gumbels).
    """
    probs = jnp.asarray(probs, jnp.float32)
    edges = jnp.cumsum(probs / jnp.sum(probs))[:-1]
    return jnp.sum(u[..., None] >= edges, axis=-1).astype(jnp.int32)


def sample_actions(key: jax.Array, shape, probs=BEHAVIOUR_PROBS) -> jax.Array:
    return actions_from_uniforms(jax.random.uniform(key, shape, jnp.float32), probs)
