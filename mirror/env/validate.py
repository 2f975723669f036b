"""Checks of `EnvParams` values with messages that name the field and its allowed range."""

import dataclasses

from mirror.env.params import EnvParams
from mirror.env.presets import expand_preset

# field -> (lowest, highest) allowed, None for unbounded.
_RANGES = {
    "max_energy": (1, 127),
    "fly_energy": (0, None),
    "leap_cost": (0, None),
    "leap_distance": (1, None),
    "help_gift": (0, None),
    "help_cost": (0, None),
    "help_leap_prob": (0.0, 1.0),
    "rough_cost": (0, None),
    "fly_spawn_prob": (0.0, 1.0),
    "obstacle_rate_step": (0.0, 1.0),
    "obstacle_rate_max": (0.0, 1.0),
    "obstacle_max_width": (1, None),
    "episode_turns": (1, None),
    "dependency": (0.0, 1.0),
    "veil": (0.0, 1.0),
    "world_width": (8, 32),  # the hot path packs a row of cells into one uint32
}


def env_params_from_dict(values: dict) -> EnvParams:
    """Build `EnvParams` from plain values, rejecting unknown fields and out-of-range values.
    `preset` names a regime of `mirror.env.presets` whose fields the others override."""
    values = expand_preset(values)
    known = {f.name: f for f in dataclasses.fields(EnvParams)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown env field(s) {unknown}; allowed fields: {sorted(known)} and preset")
    for name, value in values.items():
        wants_int = isinstance(getattr(EnvParams(), name), int)
        if isinstance(value, bool) or not isinstance(value, int if wants_int else (int, float)):
            kind = "an integer" if wants_int else "a number"
            raise ValueError(f"env.{name} must be {kind}, got {value!r}")
        low, high = _RANGES[name]
        if (low is not None and value < low) or (high is not None and value > high):
            allowed = f"[{low}, {high if high is not None else 'inf'}]"
            raise ValueError(f"env.{name} = {value!r} is outside the allowed range {allowed}")
    return EnvParams(**{k: (float(v) if isinstance(getattr(EnvParams(), k), float) else v) for k, v in values.items()})
