"""Tests of the per-row facts in mirror.data.labels (spec §4, §5.4, §5.5, §7).

Expected values are worked out by hand from the spec (W = 32, so W-1 = 31, W-6 = 26 and
rule 5 needs f + 5 < 31, i.e. f <= 25), then a differential test compares the jitted
functions with a plain-Python transcription of spec §5.4 on 120,000 random rows.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mirror.data.labels import (
    SCENARIO_BOTH,
    SCENARIO_FROG,
    SCENARIO_NAMES,
    SCENARIO_NONE,
    SCENARIO_TOAD,
    frog_distress,
    idle_shown,
    oracle_label,
    scenario,
    toad_distress,
)
from mirror.data.processing import ENERGY_VALUES
from mirror.env import EnvParams, distressed, observe_given_veil
from mirror.env.constants import HELP, HOP, JUMP, LEAP, ROUGH, SOLID
from mirror.env.state import EnvState

W = 32
FROG_IDLE, TOAD_IDLE, JUMPING, LEAPING, HELPING, DISTRESS = 4, 5, 6, 7, 8, 9


# --------------------------------------------------------------------------- helpers


def make_row(rough=(), frog=15, toad=16, frog_code=None, toad_code=None, energy=10, score=0, flies=()):
    """(int8[100] Frog observation, Toad's position) built by hand from the spec §4 layout.

    Codes default to what the game would show: 9 on rough ground, else Frog 4 and Toad 5.
    Toad is drawn after Frog, so a shared cell shows Toad's code.
    """
    ground = [SOLID] * W
    for i in rough:
        ground[i] = ROUGH
    if frog_code is None:
        frog_code = DISTRESS if ground[frog] == ROUGH else FROG_IDLE
    if toad_code is None:
        toad_code = DISTRESS if ground[toad] == ROUGH else TOAD_IDLE
    line = [0] * W
    line[frog] = frog_code
    line[toad] = toad_code
    fly = [3 if i in flies else 0 for i in range(W)]
    row = ground + line + fly + [frog_code, energy, score, frog]
    assert len(row) == 100
    return np.array(row, np.int8), toad


def facts(row, toad):
    """Python values of every labels function on one row (jitted, via a batch of one)."""
    rows, t = jnp.asarray(row)[None], jnp.asarray([toad])
    fd, td = frog_distress(rows), toad_distress(rows, t)
    return {
        "frog_d": bool(fd[0]),
        "toad_d": bool(td[0]),
        "scenario": int(scenario(fd, td)[0]),
        "label": int(oracle_label(rows, td)[0]),
        "idle": tuple(bool(x) for x in idle_shown(rows, t)[0]),
    }


def label_of(**kw):
    return facts(*make_row(**kw))["label"]


# --------------------------------------------------------------------------- constants


def test_scenario_constants():
    assert (SCENARIO_NONE, SCENARIO_FROG, SCENARIO_TOAD, SCENARIO_BOTH) == (0, 1, 2, 3)
    assert SCENARIO_NAMES == ("none", "frog", "toad", "both")


# --------------------------------------------------------------------------- distress and scenario


@pytest.mark.parametrize(
    "rough, frog, toad, frog_d, toad_d, expected",
    [
        ((), 15, 16, False, False, SCENARIO_NONE),
        ((15,), 15, 16, True, False, SCENARIO_FROG),
        ((16,), 15, 16, False, True, SCENARIO_TOAD),
        ((15, 16), 15, 16, True, True, SCENARIO_BOTH),
        ((0,), 0, 31, True, False, SCENARIO_FROG),  # edges of the strip
        ((31,), 0, 31, False, True, SCENARIO_TOAD),
        ((14, 17), 15, 16, False, False, SCENARIO_NONE),  # rough next to them is not distress
    ],
)
def test_distress_and_scenario(rough, frog, toad, frog_d, toad_d, expected):
    got = facts(*make_row(rough=rough, frog=frog, toad=toad))
    assert (got["frog_d"], got["toad_d"], got["scenario"]) == (frog_d, toad_d, expected)


def test_both_on_one_rough_cell_is_scenario_3():
    row, toad = make_row(rough=(20,), frog=20, toad=20)
    assert row[32 + 20] == DISTRESS  # the shared cell shows one 9 (Toad's)
    assert facts(row, toad)["scenario"] == SCENARIO_BOTH


def test_both_on_one_solid_cell_shows_toads_code():
    row, toad = make_row(frog=20, toad=20, toad_code=JUMPING)
    assert row[32 + 20] == JUMPING  # Frog's 4 is hidden under Toad's code
    got = facts(row, toad)
    assert got["scenario"] == SCENARIO_NONE
    # Frog's distress comes from the ground at index 99, not from the (Toad's) code shown.
    assert not got["frog_d"]


def test_distress_reads_the_ground_not_the_players_line():
    # Codes deliberately contradicting the ground: the definition is the ground (spec §5.4).
    row, toad = make_row(rough=(15,), frog=15, toad=16, frog_code=FROG_IDLE, toad_code=DISTRESS)
    got = facts(row, toad)
    assert (got["frog_d"], got["toad_d"]) == (True, False)


def test_scenario_truth_table_and_dtype():
    fd = jnp.array([False, True, False, True])
    td = jnp.array([False, False, True, True])
    s = scenario(fd, td)
    assert s.dtype == jnp.int8
    assert s.tolist() == [0, 1, 2, 3]


# --------------------------------------------------------------------------- oracle label, rule by rule


def test_rule1_energy_zero_jumps():
    assert label_of(energy=0) == JUMP
    assert label_of(energy=-1) == JUMP  # <= 0, not == 0


def test_rule1_beats_every_other_rule():
    # rule 2 would help
    assert label_of(frog=31, toad=30, energy=0) == JUMP
    # rule 3 would help
    assert label_of(rough=(30,), frog=28, toad=30, energy=0) == JUMP
    # rule 4 would hop
    assert label_of(frog=5, toad=6, energy=0) == JUMP
    # rule 5 would leap
    assert label_of(rough=(6,), frog=5, toad=3, energy=0) == JUMP
    # rule 6 would hop; Frog distressed too
    assert label_of(rough=(27, 28), frog=27, toad=20, energy=0) == JUMP


def test_rule2_right_edge_helps():
    assert label_of(frog=31, toad=30) == HELP
    assert label_of(frog=31, toad=31) == HELP  # same cell
    assert label_of(rough=(31,), frog=31, toad=25) == HELP  # Frog distressed: rule 2 still fires
    assert label_of(rough=range(W), frog=31, toad=0, energy=1) == HELP  # all rough, smallest energy


def test_rule2_never_reads_past_the_strip():
    # f + 1 == 32 does not exist; whatever the ground, the label is help and nothing breaks.
    for rough in ((), (31,), (0,), tuple(range(W))):
        assert label_of(rough=rough, frog=31, toad=5, energy=18) == HELP


@pytest.mark.parametrize("f", [26, 27, 28, 29, 30])
def test_rule3_near_edge_toad_distressed_helps(f):
    # Next cell rough too, so rules 4-6 would not give help: the help is rule 3's.
    toad = 10
    assert label_of(rough=(toad, f + 1), frog=f, toad=toad) == HELP
    assert label_of(rough=(toad,), frog=f, toad=toad) == HELP  # beats rule 4 (next solid)


def test_rule3_boundaries():
    # f = 25 < W-6: rule 3 does not apply; next solid -> hop, next rough -> leap (25+5 < 31).
    assert label_of(rough=(10,), frog=25, toad=10) == HOP
    assert label_of(rough=(10, 26), frog=25, toad=10) == LEAP
    # Frog distressed as well (scenario 3): no help; falls to rule 4 / rule 6.
    assert label_of(rough=(10, 28), frog=28, toad=10) == HOP  # next (29) solid: rule 4
    assert label_of(rough=(10, 28, 29), frog=28, toad=10) == HOP  # next rough, 33 >= 31: rule 6
    # Toad not distressed: no help.
    assert label_of(frog=28, toad=10) == HOP
    assert label_of(rough=(29,), frog=28, toad=10) == HOP


def test_rule3_toad_on_frogs_cell():
    # Toad shares a solid cell with Frog at the edge zone: Toad not distressed -> hop.
    assert label_of(frog=27, toad=27) == HOP
    # Both on one rough cell: Frog distressed, so rule 3 fails; next solid -> hop.
    assert label_of(rough=(27,), frog=27, toad=27) == HOP


def test_rule4_next_solid_hops():
    assert label_of(frog=0, toad=1) == HOP
    assert label_of(rough=(3,), frog=3, toad=1) == HOP  # Frog distressed, next solid
    assert label_of(rough=(5,), frog=0, toad=5) == HOP  # Toad distressed far from the edge
    assert label_of(frog=30, toad=31) == HOP  # f = 30, next (31) solid, Toad fine


@pytest.mark.parametrize("f", [0, 10, 25])
def test_rule5_next_rough_far_from_edge_leaps(f):
    assert label_of(rough=(f + 1,), frog=f, toad=f) == LEAP
    assert label_of(rough=(f, f + 1), frog=f, toad=f) == LEAP  # distressed, same cell


@pytest.mark.parametrize("f", [26, 27, 28, 29, 30])
def test_rule6_next_rough_near_edge_hops(f):
    assert label_of(rough=(f + 1,), frog=f, toad=0) == HOP
    assert label_of(rough=(f, f + 1), frog=f, toad=0) == HOP


# --------------------------------------------------------------------------- idle_shown


@pytest.mark.parametrize(
    "kw, expected",
    [
        (dict(), (True, True)),  # Frog 4, Toad 5
        (dict(toad_code=FROG_IDLE), (True, True)),  # veil: Toad shown as 4
        (dict(toad_code=JUMPING), (True, False)),
        (dict(toad_code=LEAPING), (True, False)),
        (dict(toad_code=HELPING), (True, False)),
        (dict(rough=(16,)), (True, False)),  # Toad distressed: 9
        (dict(rough=(15,)), (False, True)),  # Frog distressed: 9
        (dict(rough=(15, 16)), (False, False)),
        (dict(frog=20, toad=20), (False, True)),  # one cell: Toad's 5 shown, Frog hidden
        (dict(frog=20, toad=20, toad_code=FROG_IDLE), (False, True)),  # one cell, veiled Toad
        (dict(frog=20, toad=20, toad_code=JUMPING), (False, False)),
        (dict(rough=(20,), frog=20, toad=20), (False, False)),
        (dict(frog=31, toad=0), (True, True)),  # ends of the strip
    ],
)
def test_idle_shown(kw, expected):
    assert facts(*make_row(**kw))["idle"] == expected


# --------------------------------------------------------------------------- shapes, jit, vmap


def _random_rows(rng, n):
    """n random Frog observations consistent with the game's display rules, and Toad positions.

    Grounds with a per-row rough share in [0, 1); Frog's position uniform on half the rows
    and in the edge zone [W-7, W-1] on the other half, so rules 2, 3, 5 and 6 all fire often.
    """
    rough_share = rng.random((n, 1))
    ground = np.where(rng.random((n, W)) < rough_share, ROUGH, SOLID).astype(np.int8)
    f = np.where(rng.random(n) < 0.5, rng.integers(0, W, n), rng.integers(W - 7, W, n))
    t = np.where(rng.random(n) < 0.5, rng.integers(0, W, n), rng.integers(W - 7, W, n))
    t = np.where(rng.random(n) < 0.05, f, t)  # a share of rows with both on one cell
    idx = np.arange(n)
    frog_code = np.where(ground[idx, f] == ROUGH, DISTRESS, FROG_IDLE)
    toad_shown = rng.choice([FROG_IDLE, TOAD_IDLE, JUMPING, LEAPING, HELPING], n)  # 4: veiled
    toad_code = np.where(ground[idx, t] == ROUGH, DISTRESS, toad_shown)
    line = np.zeros((n, W), np.int8)
    line[idx, f] = frog_code
    line[idx, t] = toad_code  # Toad drawn last: wins a shared cell
    flies = np.where(rng.random((n, W)) < 0.1, 3, 0)
    energy = rng.choice(ENERGY_VALUES, n)
    score = rng.integers(0, 128, n)
    rows = np.concatenate(
        [ground, line, flies, np.stack([frog_code, energy, score, f], axis=1)], axis=1
    ).astype(np.int8)
    return rows, t.astype(np.int32)


def _all_facts(rows, t):
    fd = frog_distress(rows)
    td = toad_distress(rows, t)
    return fd, td, scenario(fd, td), oracle_label(rows, td), idle_shown(rows, t)


def test_any_leading_shape_jit_and_vmap():
    rows, t = _random_rows(np.random.default_rng(1), 24)
    eager = [np.asarray(x) for x in _all_facts(rows, t)]
    shaped = jax.jit(_all_facts)(rows.reshape(2, 3, 4, 100), t.reshape(2, 3, 4))
    vmapped = jax.vmap(_all_facts)(jnp.asarray(rows), jnp.asarray(t))
    single = _all_facts(rows[5], t[5])  # no batch dimension at all
    for e, s, v, one in zip(eager, shaped, vmapped, single):
        assert s.shape == (2, 3, 4) + e.shape[1:]
        np.testing.assert_array_equal(np.asarray(s).reshape(e.shape), e)
        np.testing.assert_array_equal(np.asarray(v), e)
        np.testing.assert_array_equal(np.asarray(one), e[5])
    fd, td, sc, lab, idle = eager
    assert fd.dtype == td.dtype == np.bool_ and idle.dtype == np.bool_ and idle.shape == (24, 2)
    assert sc.dtype == lab.dtype == np.int8


def test_wrong_row_length_is_rejected():
    rows, t = _random_rows(np.random.default_rng(2), 3)
    with pytest.raises(ValueError):
        oracle_label(rows, jnp.zeros(3, bool), world_width=16)
    with pytest.raises(ValueError):
        frog_distress(rows[:, :99])


# --------------------------------------------------------------------------- differential test


def py_oracle(ground, f, energy, toad_d, w=W):
    """Spec §5.4 transcribed literally; returns (label, number of the rule that fired)."""
    frog_d = ground[f] == ROUGH
    if energy <= 0:
        return JUMP, 1
    if f == w - 1:
        return HELP, 2
    if f >= w - 6 and not frog_d and toad_d:
        return HELP, 3
    if ground[f + 1] == SOLID:
        return HOP, 4
    if f + 5 < w - 1:
        return LEAP, 5
    return HOP, 6


def py_idle(line, f, t):
    return (line[f] == FROG_IDLE and t != f, line[t] in (FROG_IDLE, TOAD_IDLE))


def test_differential_against_python_transcription():
    n = 120_000
    rows, t = _random_rows(np.random.default_rng(20240607), n)
    fd, td, sc, lab, idle = (np.asarray(x) for x in jax.jit(_all_facts)(rows, t))

    exp_fd = np.empty(n, bool)
    exp_td = np.empty(n, bool)
    exp_sc = np.empty(n, np.int8)
    exp_lab = np.empty(n, np.int8)
    exp_idle = np.empty((n, 2), bool)
    rule_counts = [0] * 7
    for i, (row, ti) in enumerate(zip(rows.tolist(), t.tolist())):
        ground, line, f, energy = row[:W], row[W : 2 * W], row[99], row[97]
        frog_d, toad_d = ground[f] == ROUGH, ground[ti] == ROUGH
        label, rule = py_oracle(ground, f, energy, toad_d)
        rule_counts[rule] += 1
        exp_fd[i], exp_td[i] = frog_d, toad_d
        exp_sc[i] = {(False, False): 0, (True, False): 1, (False, True): 2, (True, True): 3}[(frog_d, toad_d)]
        exp_lab[i] = label
        exp_idle[i] = py_idle(line, f, ti)

    np.testing.assert_array_equal(fd, exp_fd)
    np.testing.assert_array_equal(td, exp_td)
    np.testing.assert_array_equal(sc, exp_sc)
    np.testing.assert_array_equal(lab, exp_lab)
    np.testing.assert_array_equal(idle, exp_idle)
    # The comparison is not vacuous: every rule, scenario and label occurs many times.
    assert min(rule_counts[1:]) > 1000, rule_counts
    assert np.bincount(exp_sc, minlength=4).min() > 1000
    assert np.bincount(exp_lab, minlength=4).min() > 1000
    assert (idle[:, 0] & idle[:, 1]).sum() > 1000 and (~idle).all(axis=1).sum() > 1000


# --------------------------------------------------------------------------- agreement with the env


def test_agrees_with_env_observations():
    """Rows made by the env's own observe(): the labels' distress/idle facts match the state."""
    n = 4000
    rng = np.random.default_rng(7)
    ground = np.where(rng.random((n, W)) < 0.3, ROUGH, SOLID).astype(np.int8)
    position = rng.integers(0, W, (n, 2)).astype(np.int32)
    position[: n // 10, 1] = position[: n // 10, 0]  # both on one cell
    action_code = rng.choice([0, JUMPING, LEAPING, HELPING], (n, 2)).astype(np.int8)
    veiled = rng.random(n) < 0.5
    state = EnvState(
        ground=jnp.asarray(ground),
        flies=jnp.asarray(rng.random((n, W)) < 0.1),
        position=jnp.asarray(position),
        energy=jnp.asarray(rng.integers(0, 21, (n, 2)), jnp.int32),
        score=jnp.asarray(rng.integers(0, 300, (n, 2)), jnp.int32),
        action_code=jnp.asarray(action_code),
        pending_rough=jnp.zeros(n, jnp.int32),
        pending_solid=jnp.zeros(n, bool),
        obstacle_rate=jnp.zeros(n, jnp.float32),
        turn=jnp.zeros(n, jnp.int32),
        current_player=jnp.zeros(n, jnp.int32),
    )
    params = EnvParams()
    rows = jax.vmap(observe_given_veil, in_axes=(0, None, None, 0))(state, 0, params, jnp.asarray(veiled))
    dist = np.asarray(jax.vmap(distressed)(state))
    t = position[:, 1]
    np.testing.assert_array_equal(np.asarray(frog_distress(rows)), dist[:, 0])
    np.testing.assert_array_equal(np.asarray(toad_distress(rows, t)), dist[:, 1])
    # Frog (the observer) shows idle unless distressed, and is hidden on a shared cell;
    # Toad shows idle (5, or 4 when veiled) unless distressed or its last action had a code.
    idle = np.asarray(idle_shown(rows, t))
    np.testing.assert_array_equal(idle[:, 0], ~dist[:, 0] & (position[:, 0] != t))
    np.testing.assert_array_equal(idle[:, 1], ~dist[:, 1] & (action_code[:, 1] == 0))
