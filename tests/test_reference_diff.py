"""Differential test: the JAX env against the plain-Python reference (mirror/env/reference.py).

Everything random is produced in JAX in one jitted call (vmap over episodes, scan over
turns): the noise records, uniformly random actions, random veil flags, every state
after every turn and both players' observations. Each episode is then replayed in the
reference from the same initial fly uniforms, and every state field and both
observations must be equal at every turn. Cases: default params (200 episodes x 500
turns) and two busy non-default ones (D = 0 and 0.5, many flies, fast obstacle ramp);
a coverage test asserts that the runs fired every rule. A last test checks one step from
random hand-built states (scores above 127, edge clamping, fractional D).
"""

from __future__ import annotations

import collections
import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mirror.env import EnvParams, initial_state, observe_given_veil, sample_noise, transition
from mirror.env.constants import DISTRESS, HELPING, JUMPING, LEAPING, NUM_ACTIONS, OBS_SIZE, ROUGH
from mirror.env.reference import ReferenceGame

STATE_FIELDS = (
    "ground",
    "flies",
    "position",
    "energy",
    "score",
    "action_code",
    "pending_rough",
    "pending_solid",
    "obstacle_rate",
    "turn",
    "current_player",
)
NOISE_FIELDS = ("fly_spawn", "fly_move", "cell_start", "cell_width", "help_leap")
LONG = 10_000  # episode_turns: transition never resets anyway

# Every case is generated with one shape (one compilation, ~10 s on CPU); a case replays
# its first `episodes` episodes (the replay in Python is the expensive part).
GEN_EPISODES, GEN_TURNS = 200, 500
CASES = {
    # name: (seed, episodes replayed, params)
    "default": (0, 200, EnvParams(episode_turns=LONG)),
    "dep0_busy": (1, 50, EnvParams(episode_turns=LONG, dependency=0.0, fly_spawn_prob=0.1, obstacle_rate_step=0.02)),
    "dep05_busy": (2, 50, EnvParams(episode_turns=LONG, dependency=0.5, fly_spawn_prob=0.1, obstacle_rate_step=0.02)),
}


def _observe_both(state, veil, params):
    return jnp.stack([observe_given_veil(state, 0, params, veil[0]), observe_given_veil(state, 1, params, veil[1])])


@functools.partial(jax.jit, static_argnums=(2, 3))
def _generate(key, params, num_episodes, num_turns):
    """One jitted call producing every input and output of the JAX side."""
    width = params.world_width

    def episode(key):
        k_init, k_veil0, k_turns = jax.random.split(key, 3)
        fly_spawn_u = jax.random.uniform(k_init, (width,), jnp.float32)  # what initial_state draws
        state0 = initial_state(k_init, params)
        veil0 = jax.random.bernoulli(k_veil0, 0.5, (2,))
        obs0 = _observe_both(state0, veil0, params)

        def turn(state, k):
            k_action, k_noise, k_veil = jax.random.split(k, 3)
            action = jax.random.randint(k_action, (), 0, NUM_ACTIONS)
            noise = sample_noise(k_noise, params)
            new_state = transition(state, action, noise, params)
            veil = jax.random.bernoulli(k_veil, 0.5, (2,))
            return new_state, (noise, action, veil, new_state, _observe_both(new_state, veil, params))

        _, (noise, action, veil, states, obs) = jax.lax.scan(turn, state0, jax.random.split(k_turns, num_turns))
        return fly_spawn_u, state0, veil0, obs0, noise, action, veil, states, obs

    return jax.vmap(episode)(jax.random.split(key, num_episodes))


def _state_repr(states: dict, e: int, t: int) -> str:
    """A `state_from_values(...)` call rebuilding the JAX state at (episode, turn index)."""
    parts = []
    for f in STATE_FIELDS:
        v = states[f][e, t]
        v = v.tolist() if np.ndim(v) else v.item()
        parts.append(f"{f}={v!r}")
    return "state_from_values(" + ", ".join(parts) + ")"


@functools.lru_cache(maxsize=None)
def run_case(name: str):
    """Generate in JAX, replay in the reference; returns everything needed by the tests."""
    seed, episodes, params = CASES[name]
    turns = GEN_TURNS
    out = _generate(jax.random.PRNGKey(seed), params, GEN_EPISODES, GEN_TURNS)
    out = jax.device_get(jax.tree.map(lambda x: x[:episodes], out))
    fly_spawn_u, state0, veil0, obs0, noise, action, veil, states, obs = out

    # JAX side, turn index 0 = the initial state, index t+1 = after turn t.
    jax_states = {
        f: np.concatenate([np.asarray(getattr(state0, f))[:, None], np.asarray(getattr(states, f))], axis=1)
        for f in STATE_FIELDS
    }
    jax_obs = np.concatenate([np.asarray(obs0)[:, None], np.asarray(obs)], axis=1)  # [E, T+1, 2, 100]
    veils = np.concatenate([np.asarray(veil0)[:, None], np.asarray(veil)], axis=1)  # [E, T+1, 2]
    actions = np.asarray(action)
    noise_np = {f: np.asarray(getattr(noise, f), np.float32) for f in NOISE_FIELDS}

    ref_states = {f: np.zeros_like(v) for f, v in jax_states.items()}
    ref_obs = np.zeros(jax_obs.shape, np.int64)
    events: collections.Counter[str] = collections.Counter()
    for e in range(episodes):
        game = ReferenceGame.new_game(fly_spawn_u[e], params)
        for t in range(turns + 1):
            if t > 0:
                record = types.SimpleNamespace(**{f: noise_np[f][e, t - 1] for f in NOISE_FIELDS})
                game.play(int(actions[e, t - 1]), record)
            for f, v in game.to_dict().items():
                ref_states[f][e, t] = v
            for o in (0, 1):
                ref_obs[e, t, o] = game.observe(o, bool(veils[e, t, o]))
        events.update(game.events)
    return types.SimpleNamespace(
        params=params,
        jax_states=jax_states,
        ref_states=ref_states,
        jax_obs=jax_obs,
        ref_obs=ref_obs,
        veils=veils,
        actions=actions,
        noise=noise_np,
        events=events,
    )


def _first_mismatch(run) -> str | None:
    """Describe the earliest (turn, then episode) disagreement, or None."""
    masks = {}
    for f in STATE_FIELDS:
        diff = run.ref_states[f] != run.jax_states[f]
        masks[f] = diff.reshape(diff.shape[0], diff.shape[1], -1).any(axis=-1)
    for o in (0, 1):
        masks[f"obs[{o}]"] = (run.ref_obs[:, :, o] != run.jax_obs[:, :, o]).any(axis=-1)
    any_mask = np.any(np.stack(list(masks.values())), axis=0)  # [E, T+1]
    if not any_mask.any():
        return None
    t = int(np.argmax(any_mask.any(axis=0)))
    e = int(np.argmax(any_mask[:, t]))
    lines = [f"first mismatch: episode {e}, turn index {t} ({'initial state' if t == 0 else f'after turn {t - 1}'})"]
    if t > 0:
        a = int(run.actions[e, t - 1])
        lines.append(f"  action {a} by player {run.jax_states['current_player'][e, t - 1]}")
        lines.append(f"  state before (JAX == reference there): {_state_repr(run.jax_states, e, t - 1)}")
        lines.append(
            "  noise: " + ", ".join(f"{f}={run.noise[f][e, t - 1].tolist()!r}" for f in NOISE_FIELDS)
        )
    for name, mask in masks.items():
        if not mask[e, t]:
            continue
        if name.startswith("obs"):
            o = int(name[4])
            ref, got = run.ref_obs[e, t, o], run.jax_obs[e, t, o]
            idx = np.flatnonzero(ref != got)
            lines.append(
                f"  {name} (veiled={bool(run.veils[e, t, o])}) differs at indices {idx.tolist()}: "
                f"reference {ref[idx].tolist()} vs JAX {got[idx].tolist()}"
            )
        else:
            lines.append(f"  {name}: reference {run.ref_states[name][e, t]!r} vs JAX {run.jax_states[name][e, t]!r}")
    return "\n".join(lines)


# The default case replays 200 episodes in Python (~20 s): slow; the busy cases stay in the quick loop.
CASE_PARAMS = [pytest.param(name, marks=pytest.mark.slow) if name == "default" else name for name in CASES]


@pytest.mark.slow
@pytest.mark.parametrize("name", CASE_PARAMS)
def test_jax_matches_reference(name):
    run = run_case(name)
    mismatch = _first_mismatch(run)
    assert mismatch is None, f"[{name}] {mismatch}"


@pytest.mark.slow
@pytest.mark.parametrize("name", CASE_PARAMS)
def test_jax_dtypes(name):
    run = run_case(name)
    for f in STATE_FIELDS:
        assert run.jax_states[f].dtype == run.ref_states[f].dtype, f
    assert run.jax_obs.dtype == np.int8
    assert run.jax_obs.shape[-1] == OBS_SIZE


def _exercise_counts(names) -> collections.Counter:
    """What the random runs covered, from reference events and the (equal) JAX outputs."""
    counts: collections.Counter[str] = collections.Counter()
    for name in names:
        run = run_case(name)
        counts.update(run.events)
        s, ob = run.jax_states, run.jax_obs
        players_line = ob[..., 32:64]
        counts["rough_cells_seen"] += int((s["ground"] == ROUGH).sum())
        counts["pos_at_0"] += int((s["position"] == 0).sum())
        counts["pos_at_right_edge"] += int((s["position"] == run.params.world_width - 1).sum())
        counts["same_cell"] += int((s["position"][..., 0] == s["position"][..., 1]).sum())
        counts["pending_solid"] += int(s["pending_solid"].sum())
        counts["rate_at_max"] += int((s["obstacle_rate"] == np.float32(run.params.obstacle_rate_max)).sum())
        counts["energy_0"] += int((s["energy"] == 0).sum())
        counts["energy_max"] += int((s["energy"] == run.params.max_energy).sum())
        for code in (DISTRESS, JUMPING, LEAPING, HELPING):
            counts[f"shown_{code}"] += int((players_line == code).sum())
        counts["veiled_obs"] += int(run.veils.sum())
    return counts


@pytest.mark.slow  # replays the default case
def test_runs_exercise_the_rules():
    """The random runs must not pass vacuously: every rule fired, in both scroll directions."""
    busy = _exercise_counts(["dep0_busy", "dep05_busy"])
    default = _exercise_counts(["default"])
    common = (
        "hop",
        "hop_blocked",
        "leap",
        "leap_blocked",
        "gift",
        "help_leap",
        "help_blocked",
        "fly_eaten",
        "rough_emitted",
        "obstacle_started",
        "rough_landing",
        "scroll_forward",
        "scroll_back",
        "rough_cells_seen",
        "same_cell",
        "pending_solid",
        "rate_at_max",
        "energy_0",
        "energy_max",
        f"shown_{DISTRESS}",
        f"shown_{JUMPING}",
        f"shown_{LEAPING}",
        f"shown_{HELPING}",
        "veiled_obs",
    )
    # At D = 1 the mean anchor can never push a player below 0 (it needs |p0 - p1| > 32);
    # at D < 1 the leader drags the laggard to the left edge.
    for counts, label, keys in ((busy, "busy", common + ("clamped_low", "pos_at_0")), (default, "default", common)):
        for key in keys:
            assert counts[key] > 0, f"{label} runs never exercised {key}: {dict(counts)}"


# ---------------------------------------------------------------------------------------
# One-step differential test from random hand-built states: reaches corners that random
# rollouts from the start rarely do (scores above 127, clamping at the right edge, both
# players on one cell, energy 0 or max with flies, fractional dependency values).


@jax.jit
def _one_step(states, actions, noises, veils, params):
    def one(state, action, noise, veil):
        new_state = transition(state, action, noise, params)
        return new_state, _observe_both(new_state, veil, params), _observe_both(state, veil, params)

    return jax.vmap(one)(states, actions, noises, veils)


def _random_states(rng: np.random.Generator, n: int, width: int = 32) -> dict:
    energy = np.where(rng.random((n, 2)) < 0.3, rng.choice([0, 1, 19, 20], (n, 2)), rng.integers(0, 21, (n, 2)))
    pending_rough = np.where(rng.random(n) < 0.5, 0, rng.integers(0, 4, n))
    obstacle_rate = (rng.integers(0, 16, n) * np.float32(0.005)).astype(np.float32)  # rates reached in play
    arbitrary = rng.random(n) < 0.3
    obstacle_rate[arbitrary] = rng.random(int(arbitrary.sum()), np.float32) * np.float32(0.1)
    return {
        "ground": np.where(rng.random((n, width)) < 0.3, ROUGH, 1).astype(np.int8),
        "flies": rng.random((n, width)) < 0.3,
        "position": np.where(rng.random((n, 2)) < 0.2, rng.choice([0, width - 1], (n, 2)), rng.integers(0, width, (n, 2))).astype(np.int32),
        "energy": energy.astype(np.int32),
        "score": np.where(rng.random((n, 2)) < 0.5, rng.integers(0, 128, (n, 2)), rng.integers(120, 2000, (n, 2))).astype(np.int32),
        "action_code": rng.choice(np.array([0, 6, 7, 8], np.int8), (n, 2)),
        "pending_rough": pending_rough.astype(np.int32),
        "pending_solid": (pending_rough > 0) | (rng.random(n) < 0.3),
        "obstacle_rate": obstacle_rate,
        "turn": rng.integers(0, 1000, n).astype(np.int32),
        "current_player": rng.integers(0, 2, n).astype(np.int32),
    }


@pytest.mark.parametrize("dependency", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_random_states_one_step(dependency):
    from mirror.env import EnvState, Noise

    n = 2000
    params = EnvParams(episode_turns=LONG, dependency=dependency, fly_spawn_prob=0.05, obstacle_rate_step=0.01)
    rng = np.random.default_rng(int(dependency * 10) + 100)
    before = _random_states(rng, n)
    actions = rng.integers(0, NUM_ACTIONS, n).astype(np.int32)
    veils = rng.random((n, 2)) < 0.5
    k = params.new_cells_max
    noise = {
        "fly_spawn": rng.random((n, 32), np.float32),
        "fly_move": rng.random((n, 32), np.float32),
        "cell_start": rng.random((n, k), np.float32) * np.float32(0.2),  # start obstacles often
        "cell_width": rng.random((n, k), np.float32),
        "help_leap": rng.random(n, np.float32),
    }
    after, obs_after, obs_before = jax.device_get(
        _one_step(EnvState(**before), jnp.asarray(actions), Noise(**noise), jnp.asarray(veils), params)
    )
    events: collections.Counter[str] = collections.Counter()
    for i in range(n):
        game = ReferenceGame.from_state(types.SimpleNamespace(**{f: v[i] for f, v in before.items()}), params)
        context = lambda: (
            f"D={dependency} sample {i}: action {actions[i]}, state before "
            f"{ {f: v[i].tolist() for f, v in before.items()} }, noise { {f: v[i].tolist() for f, v in noise.items()} }"
        )
        for o in (0, 1):
            ref = game.observe(o, bool(veils[i, o]))
            assert list(obs_before[i, o]) == ref, f"observation of player {o} (before) differs; {context()}"
        game.play(int(actions[i]), types.SimpleNamespace(**{f: v[i] for f, v in noise.items()}))
        for f, ref in game.to_dict().items():
            got = np.asarray(getattr(after, f))[i]
            assert np.array_equal(ref, got), f"field {f}: reference {ref!r} vs JAX {got!r}; {context()}"
        for o in (0, 1):
            ref = game.observe(o, bool(veils[i, o]))
            assert list(obs_after[i, o]) == ref, f"observation of player {o} differs: reference {ref} vs JAX {obs_after[i, o].tolist()}; {context()}"
        events.update(game.events)
    # The corners this test exists for were reached.
    saturated = (obs_after[..., 98] == 127) & (np.asarray(after.score)[:, None, :] > 127).any(-1)
    assert saturated.any()
    assert (np.asarray(after.position)[:, 0] == np.asarray(after.position)[:, 1]).any()
    for key in ("clamped_high" if dependency == 1.0 else "clamped_low", "fly_eaten", "help_leap", "rough_landing", "obstacle_started"):
        assert events[key] > 0, (key, dict(events))
