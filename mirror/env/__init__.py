"""The Frog-and-Toad environment in JAX (spec §1–4, §6)."""

from mirror.env.constants import ACTION_NAMES, FROG, HELP, HOP, JUMP, LEAP, NUM_ACTIONS, OBS_SIZE, TOAD
from mirror.env.dynamics import transition
from mirror.env.frog_and_toad import initial_state, reset, step
from mirror.env.noise import Noise, sample_noise
from mirror.env.observation import distressed, observe, observe_both, observe_given_veil
from mirror.env.params import EnvParams, default_params
from mirror.env.render import render
from mirror.env.state import EnvState, state_from_values

__all__ = [
    "ACTION_NAMES", "FROG", "HELP", "HOP", "JUMP", "LEAP", "NUM_ACTIONS", "OBS_SIZE", "TOAD",
    "EnvParams", "EnvState", "Noise", "default_params", "distressed", "initial_state",
    "observe", "observe_both", "observe_given_veil", "render", "reset", "sample_noise",
    "state_from_values", "step", "transition",
]
