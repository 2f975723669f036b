"""Frog and Toad: reset/step API in the gymnax/JaxMARL style (turn based, two players).

`reset(key, params) -> (obs[2, 100], state)` and
`step(key, state, action, params) -> (obs[2, 100], state, rewards[2], done, info)`.
One step applies one action of `state.current_player`. Rewards are each player's score
gain. At truncation (`turn >= episode_turns`) the game resets itself; `info` keeps the
pre-reset observation (`terminal_obs`) and the score-based episode return.
"""

import jax
import jax.numpy as jnp

from mirror.env.constants import SOLID
from mirror.env.dynamics import transition
from mirror.env.noise import sample_noise
from mirror.env.observation import observe_both
from mirror.env.params import EnvParams
from mirror.env.state import EnvState


def initial_state(key: jax.Array, params: EnvParams) -> EnvState:
    """Start of an episode (spec §1): flies placed once by the spawn rule."""
    width = params.world_width
    fly_spawn_u = jax.random.uniform(key, (width,), jnp.float32)
    return EnvState(
        ground=jnp.full((width,), SOLID, jnp.int8),
        flies=fly_spawn_u < params.fly_spawn_prob,
        position=jnp.array([width // 2 - 1, width // 2], jnp.int32),
        energy=jnp.full((2,), params.max_energy, jnp.int32),
        score=jnp.zeros((2,), jnp.int32),
        action_code=jnp.zeros((2,), jnp.int8),
        pending_rough=jnp.zeros((), jnp.int32),
        pending_solid=jnp.zeros((), jnp.bool_),
        obstacle_rate=jnp.zeros((), jnp.float32),
        turn=jnp.zeros((), jnp.int32),
        current_player=jnp.zeros((), jnp.int32),
    )


def reset(key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
    state_key, obs_key = jax.random.split(key)
    state = initial_state(state_key, params)
    return observe_both(state, params, obs_key), state


def step(key: jax.Array, state: EnvState, action, params: EnvParams):
    """One turn with auto-reset at truncation. Returns (obs, state, rewards, done, info)."""
    noise_key, obs_key, reset_key = jax.random.split(key, 3)
    next_state = transition(state, action, sample_noise(noise_key, params), params)
    rewards = next_state.score - state.score
    done = next_state.turn >= params.episode_turns
    obs = observe_both(next_state, params, obs_key)
    reset_obs, reset_state = reset(reset_key, params)
    info = {"terminal_obs": obs, "episode_score": next_state.score}
    new_state = jax.tree_util.tree_map(lambda r, s: jnp.where(done, r, s), reset_state, next_state)
    return jnp.where(done, reset_obs, obs), new_state, rewards, done, info
