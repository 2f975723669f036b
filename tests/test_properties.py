"""Property tests of the transition and observation over random valid states (spec §1-§4, §6).

The transition and the observations are jitted once at module level so the hypothesis loop
only pays for dispatch; `chex.assert_max_traces` checks that a jitted scan compiles once.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirror.env import (
    EnvParams,
    Noise,
    initial_state,
    observe_given_veil,
    sample_noise,
    state_from_values,
    step,
    transition,
)
from mirror.env.constants import HELP, HOP, JUMP, LEAP, ROUGH, SOLID

W = 32
K = W - 1 - W // 2
MAX_E = 20

_jit_transition = jax.jit(transition)


def _obs_both(state, params, veiled):
    return jnp.stack(
        [observe_given_veil(state, 0, params, veiled), observe_given_veil(state, 1, params, veiled)]
    )


_jit_obs = jax.jit(_obs_both)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ strategies

uniform = st.one_of(
    st.floats(0.0, 1.0, exclude_max=True, width=32),
    st.sampled_from([0.0, 0.004, 0.02, 0.06, 0.2, 0.3, 0.5, 0.7, 0.99]),
)


@st.composite
def states(draw):
    pending_rough = draw(st.integers(0, 3))
    pending_solid = True if pending_rough > 0 else draw(st.booleans())
    return dict(
        ground=draw(st.lists(st.sampled_from([SOLID, ROUGH]), min_size=W, max_size=W)),
        flies=draw(st.lists(st.booleans(), min_size=W, max_size=W)),
        position=draw(st.tuples(st.integers(0, W - 1), st.integers(0, W - 1))),
        energy=draw(st.tuples(st.integers(0, MAX_E), st.integers(0, MAX_E))),
        score=draw(st.tuples(st.integers(0, 100_000), st.integers(0, 100_000))),
        action_code=draw(st.tuples(st.sampled_from([0, 6, 7, 8]), st.sampled_from([0, 6, 7, 8]))),
        pending_rough=pending_rough,
        pending_solid=pending_solid,
        obstacle_rate=draw(st.one_of(st.sampled_from([0.0, 0.005, 0.05, 0.07, 0.075]),
                                     st.floats(0.0, float(np.float32(0.075)), width=32))),
        turn=draw(st.integers(0, 100_000)),
        current_player=draw(st.integers(0, 1)),
    )


@st.composite
def noises(draw):
    def arr(n):
        return np.asarray(draw(st.lists(uniform, min_size=n, max_size=n)), np.float32)

    return Noise(
        fly_spawn=jnp.asarray(arr(W)),
        fly_move=jnp.asarray(arr(W)),
        cell_start=jnp.asarray(arr(K)),
        cell_width=jnp.asarray(arr(K)),
        help_leap=jnp.asarray(np.float32(draw(uniform))),
    )


def check_obs(obs, state_np, veiled):
    """Observation values in their allowed sets and consistent with the state."""
    obs = np.asarray(obs)
    assert obs.shape == (2, 100)
    g, pos, en, sc = state_np["ground"], state_np["position"], state_np["energy"], state_np["score"]
    for o in (0, 1):
        v = obs[o].astype(int)
        assert set(v[0:32]) <= {1, 2}
        np.testing.assert_array_equal(v[0:32], g)
        assert set(v[32:64]) <= {0, 4, 5, 6, 7, 8, 9}
        assert set(np.flatnonzero(v[32:64])) == {int(pos[0]), int(pos[1])}
        assert set(v[64:96]) <= {0, 3}
        np.testing.assert_array_equal(v[64:96], 3 * np.asarray(state_np["flies"], int))
        own = 9 if g[pos[o]] == ROUGH else (4 if veiled else 4 + o)
        assert v[96] == own
        assert 0 <= v[97] <= MAX_E and v[97] == en[o]
        assert 0 <= v[98] <= 127 and v[98] == min(int(sc[o]), 127)
        assert 0 <= v[99] <= W - 1 and v[99] == pos[o]
        if veiled:
            assert 5 not in set(v[32:64])


def to_np(s):
    return {k: np.asarray(getattr(s, k)) for k in
            ("ground", "flies", "position", "energy", "score", "action_code", "pending_rough", "pending_solid",
             "obstacle_rate", "turn", "current_player")}


# ------------------------------------------------------------------ transition properties


@pytest.mark.slow
@SETTINGS
@given(states(), noises(), st.integers(0, 3), st.floats(0.0, 1.0), st.booleans())
def test_transition_invariants(values, noise, action, dependency, veiled):
    params = EnvParams(dependency=dependency)
    s0 = state_from_values(**values)
    s1 = _jit_transition(s0, jnp.int32(action), noise, params)
    a, b = to_np(s0), to_np(s1)
    p = int(a["current_player"])
    q = 1 - p

    # ranges
    assert b["energy"].min() >= 0 and b["energy"].max() <= MAX_E
    assert b["position"].min() >= 0 and b["position"].max() <= W - 1
    assert set(b["ground"].tolist()) <= {SOLID, ROUGH}
    assert set(b["action_code"].tolist()) <= {0, 6, 7, 8}
    assert 0 <= int(b["pending_rough"]) <= 3
    if int(b["pending_rough"]) > 0:
        assert bool(b["pending_solid"])

    # dtypes are stable (scan carries need this)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k

    # score: only a successful hop scores, +1 for the acting player only
    gain = b["score"] - a["score"]
    hop_ok = action == HOP and a["energy"][p] > 0 and a["position"][p] + 1 < W
    assert gain[p] == (1 if hop_ok else 0)
    assert gain[q] == 0

    # time
    assert int(b["turn"]) == int(a["turn"]) + 1
    assert int(b["current_player"]) == q

    # codes: the partner's code is never touched; the actor's follows the action
    assert b["action_code"][q] == a["action_code"][q]
    e_p = a["energy"][p]
    want_code = {
        HOP: 0,
        JUMP: 6,
        LEAP: 7 if (e_p > 0 and a["position"][p] + 5 < W) else 0,
        HELP: 8 if e_p > 0 else 0,
    }[action]
    assert b["action_code"][p] == want_code

    # the partner's energy only changes through help
    if action != HELP:
        assert b["energy"][q] == a["energy"][q]

    if action == JUMP:
        # no scroll: ground, queue, rate, positions unchanged; energy +4 (capped) iff a fly was there
        np.testing.assert_array_equal(b["ground"], a["ground"])
        np.testing.assert_array_equal(b["position"], a["position"])
        assert int(b["pending_rough"]) == int(a["pending_rough"])
        assert bool(b["pending_solid"]) == bool(a["pending_solid"])
        assert b["obstacle_rate"] == a["obstacle_rate"]
        fly = bool(a["flies"][a["position"][p]])
        assert b["energy"][p] == (min(MAX_E, e_p + 4) if fly else e_p)
    else:
        want_rate = np.minimum(np.float32(0.075), np.float32(a["obstacle_rate"] + np.float32(0.005)))
        np.testing.assert_allclose(b["obstacle_rate"], want_rate, rtol=1e-6)
        assert b["energy"][p] <= e_p  # hop/leap/help never raise the actor's energy

    # observations of the new state and of the old one
    check_obs(_jit_obs(s1, params, veiled), b, veiled)
    check_obs(_jit_obs(s0, params, veiled), a, veiled)


# ------------------------------------------------------------------ compile once / long scans


def _rollout(key, state, params):
    def body(s, k):
        ka, kn = jax.random.split(k)
        action = jax.random.randint(ka, (), 0, 4)
        s2 = transition(s, action, sample_noise(kn, params), params)
        return s2, s2

    return jax.lax.scan(body, state, jax.random.split(key, 500))


def _check_trajectory(traj):
    energy, position = np.asarray(traj.energy), np.asarray(traj.position)
    assert energy.min() >= 0 and energy.max() <= MAX_E
    assert position.min() >= 0 and position.max() <= W - 1
    assert set(np.unique(np.asarray(traj.ground)).tolist()) <= {SOLID, ROUGH}
    assert set(np.unique(np.asarray(traj.action_code)).tolist()) <= {0, 6, 7, 8}
    score = np.asarray(traj.score)
    d = np.diff(score, axis=0)
    assert d.min() >= 0 and d.max() <= 1 and (d.sum(axis=1) <= 1).all()
    np.testing.assert_array_equal(np.diff(np.asarray(traj.turn)), 1)
    rate = np.asarray(traj.obstacle_rate)
    assert rate.min() >= 0 and rate.max() <= np.float32(0.075)


def test_scan_compiles_once():
    chex.clear_trace_counter()
    rollout = jax.jit(chex.assert_max_traces(_rollout, n=1))
    s0 = initial_state(jax.random.PRNGKey(0), EnvParams())
    final1, traj1 = rollout(jax.random.PRNGKey(1), s0, EnvParams())
    _check_trajectory(traj1)
    # different values everywhere (state from state_from_values, other params): no retrace
    s_other = state_from_values(
        ground=[ROUGH] * 5 + [SOLID] * (W - 5),
        flies=[True] * W,
        position=(3, 30),
        energy=(0, 7),
        score=(5, 9),
        action_code=(6, 8),
        pending_rough=2,
        pending_solid=True,
        obstacle_rate=0.03,
        turn=11,
        current_player=1,
    )
    final2, traj2 = rollout(jax.random.PRNGKey(2), s_other, EnvParams(dependency=0.3, veil=0.5))
    _check_trajectory(traj2)
    final3, _ = rollout(jax.random.PRNGKey(3), final2, EnvParams(dependency=0.0))
    assert int(final3.turn) == 11 + 1000


def test_step_scan_compiles_once_and_auto_resets():
    chex.clear_trace_counter()
    params = EnvParams(episode_turns=50)

    def run(key, state, params):
        def body(s, k):
            ka, kn = jax.random.split(k)
            action = jax.random.randint(ka, (), 0, 4)
            obs, s2, rewards, done, info = step(kn, s, action, params)
            return s2, (obs, rewards, done, s2.turn)

        return jax.lax.scan(body, state, jax.random.split(key, 200))

    f = jax.jit(chex.assert_max_traces(run, n=1))
    s0 = initial_state(jax.random.PRNGKey(0), params)
    _, (obs, rewards, done, turn) = f(jax.random.PRNGKey(1), s0, params)
    _, _ = f(jax.random.PRNGKey(2), s0, EnvParams(episode_turns=30, dependency=0.5))
    done, turn, rewards = np.asarray(done), np.asarray(turn), np.asarray(rewards)
    assert done.sum() == 4  # 200 steps, truncation every 50 turns
    np.testing.assert_array_equal(np.flatnonzero(done), [49, 99, 149, 199])
    assert (turn[done] == 0).all()
    assert rewards.min() >= 0 and rewards.max() <= 1
    obs = np.asarray(obs)
    assert obs.shape == (200, 2, 100) and obs.dtype == np.int8


# ------------------------------------------------------------------ vmap over params


def _stack_params(plist):
    return jax.tree.map(lambda *xs: jnp.asarray(xs), *plist)


@pytest.mark.slow
def test_vmap_over_dependency_matches_single_runs():
    ds = [0.0, 0.25, 0.5, 0.75, 1.0]
    plist = [EnvParams(dependency=d) for d in ds]
    batch = _stack_params(plist)
    quiet = Noise(
        fly_spawn=jnp.full((W,), 0.99, jnp.float32),
        fly_move=jnp.full((W,), 0.5, jnp.float32),
        cell_start=jnp.full((K,), 0.99, jnp.float32),
        cell_width=jnp.zeros((K,), jnp.float32),
        help_leap=jnp.float32(0.99),
    )
    s = state_from_values(ground=[SOLID] * W, flies=[False] * W, position=(24, 8), energy=(9, 9))
    out = jax.vmap(transition, in_axes=(None, None, None, 0))(s, jnp.int32(HOP), quiet, batch)
    # by hand: Frog 25, Toad 8, anchor floor(D * 33 / 2 + (1 - D) * 25)
    # D=0: 25 -> shift 9 -> (16, 0); D=.25: floor(4.125+18.75)=22 -> (19, 2);
    # D=.5: floor(8.25+12.5)=20 -> (21, 4); D=.75: floor(12.375+6.25)=18 -> (23, 6); D=1: 16 -> (25, 8)
    np.testing.assert_array_equal(np.asarray(out.position), [[16, 0], [19, 2], [21, 4], [23, 6], [25, 8]])
    for i, p in enumerate(plist):
        single = _jit_transition(s, jnp.int32(HOP), quiet, p)
        jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x)[i], np.asarray(y)), out, single)


def test_vmap_rollouts_over_params_match_single_rollouts():
    ds = [0.0, 0.4, 1.0]
    plist = [EnvParams(dependency=d) for d in ds]
    batch = _stack_params(plist)
    s0 = initial_state(jax.random.PRNGKey(5), EnvParams())
    key = jax.random.PRNGKey(6)
    jr = jax.jit(_rollout)
    vfinal, vtraj = jax.jit(jax.vmap(_rollout, in_axes=(None, None, 0)))(key, s0, batch)
    finals = []
    for i, p in enumerate(plist):
        final, traj = jr(key, s0, p)
        jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x)[i], np.asarray(y)), vtraj, traj)
        finals.append(np.asarray(final.ground))
    # the dependency must actually matter over 500 turns
    pos = np.asarray(vtraj.position)
    assert not np.array_equal(pos[0], pos[2])


def test_vmap_over_states_matches_single():
    keys = jax.random.split(jax.random.PRNGKey(9), 8)
    params = EnvParams()
    states = jax.vmap(lambda k: initial_state(k, params))(keys)
    noises_ = jax.vmap(lambda k: sample_noise(k, params))(jax.random.split(jax.random.PRNGKey(10), 8))
    actions = jnp.arange(8, dtype=jnp.int32) % 4
    out = jax.jit(jax.vmap(transition, in_axes=(0, 0, 0, None)))(states, actions, noises_, params)  # op by op: ~10 s
    for i in range(8):
        si = jax.tree.map(lambda x: x[i], states)
        ni = jax.tree.map(lambda x: x[i], noises_)
        single = _jit_transition(si, actions[i], ni, params)
        jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x)[i], np.asarray(y)), out, single)
