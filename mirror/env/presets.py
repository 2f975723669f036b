"""Named env regimes: `env.preset: NAME` in any env section starts from the preset's
values; fields given beside it override them.

    default   the spec's game (every `EnvParams` default)
    stakes    a game where the partner matters (spec §10): short of energy (10, rough
              landings cost 3, almost no flies, obstacles wider than a leap), so players
              stall at energy 0 and a help (gift 6) can restart them. Found with
              `mirror stakes` and `scripts/stakes_search.py`; its diagnostics are in
              docs/stakes.md.
"""

PRESETS: dict[str, dict] = {
    "default": {},
    "stakes": {
        "episode_turns": 200,
        "max_energy": 10,
        "rough_cost": 3,
        "fly_spawn_prob": 0.001,
        "obstacle_max_width": 8,
        "help_gift": 6,
    },
}


def expand_preset(values: dict) -> dict:
    """An env section with `preset` replaced by the preset's fields (explicit fields win)."""
    values = dict(values)
    name = values.pop("preset", None)
    if name is None:
        return values
    if name not in PRESETS:
        raise ValueError(f"env.preset must be one of {', '.join(PRESETS)}, got {name!r}")
    return {**PRESETS[name], **values}


def spell_out_preset(values: dict) -> dict:
    """An env section with its preset's fields written out beside `preset` (explicit fields
    win), so a run's config.yaml shows both the regime's name and every value it sets."""
    if "preset" not in values:
        return dict(values)
    return {"preset": values["preset"], **expand_preset(values)}
