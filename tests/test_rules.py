"""Hand-worked rule tests for the Frog-and-Toad transition and observation (spec §1-§4, §6).

Every expected value below was worked out by hand from the spec and the project's
interpretations (env_api contract), never from the implementation. Unless a test says
otherwise the world width is W = 32 (W//2 = 16) and the noise is "quiet": no fly spawns,
every fly stays, no obstacle starts, no help-triggered leap.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mirror.env import (
    EnvParams,
    Noise,
    initial_state,
    observe,
    observe_given_veil,
    reset,
    state_from_values,
    step,
    transition,
)
from mirror.env.constants import HELP, HOP, JUMP, LEAP, ROUGH, SOLID

W = 32
K = W - 1 - W // 2  # new_cells_max = 15
P = EnvParams()

S, R = SOLID, ROUGH


# --------------------------------------------------------------------------- helpers


def ground(rough=()):
    g = [SOLID] * W
    for i in rough:
        g[i] = ROUGH
    return g


def flies(cells=()):
    f = [False] * W
    for i in cells:
        f[i] = True
    return f


def quiet_noise(fly_spawn=None, fly_move=None, cell_start=None, cell_width=None, help_leap=0.99):
    """Quiet noise with per-index overrides given as {index: uniform}."""
    spawn = np.full(W, 0.99, np.float32)
    move = np.full(W, 0.5, np.float32)  # floor(3 * 0.5) - 1 = 0: every fly stays
    start = np.full(K, 0.99, np.float32)  # never below a rate <= 0.075
    width = np.zeros(K, np.float32)  # width 1
    for arr, over in ((spawn, fly_spawn), (move, fly_move), (start, cell_start), (width, cell_width)):
        for i, u in (over or {}).items():
            arr[i] = np.float32(u)
    return Noise(
        fly_spawn=jnp.asarray(spawn),
        fly_move=jnp.asarray(move),
        cell_start=jnp.asarray(start),
        cell_width=jnp.asarray(width),
        help_leap=jnp.asarray(np.float32(help_leap)),
    )


def mk(**kw):
    kw.setdefault("ground", ground())
    kw.setdefault("flies", flies())
    return state_from_values(**kw)


def run(state, action, noise=None, params=P):
    return transition(state, jnp.int32(action), quiet_noise() if noise is None else noise, params)


def assert_state(s, **expected):
    for name, want in expected.items():
        got = np.asarray(getattr(s, name))
        if name == "obstacle_rate":
            np.testing.assert_allclose(got, np.float32(want), rtol=1e-6, atol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(got, np.asarray(want), err_msg=name)


def f32_rate_after(rate, n=1, step=0.005, cap=0.075):
    r = np.float32(rate)
    for _ in range(n):
        r = np.minimum(np.float32(cap), np.float32(r + np.float32(step)))
    return r


def obs_vec(ground_codes, players_line, fly_cells, own, energy, score, position):
    v = list(ground_codes) + list(players_line) + [3 if i in fly_cells else 0 for i in range(W)]
    return np.asarray(v + [own, energy, score, position], np.int8)


def line(**cells):
    """players line with {index: code}; keys are 'c<index>'."""
    l = [0] * W
    for k, v in cells.items():
        l[int(k[1:])] = v
    return l


# --------------------------------------------------------------------------- hop


@pytest.mark.slow
def test_hop_onto_rough_costs_one_energy_and_scores():
    # Frog 15 -> 16 (rough): energy 10 -> 9, score 3 -> 4. anchor floor((16+16)/2) = 16: shift 0.
    s0 = mk(ground=ground([16]), position=(15, 16), energy=(10, 10), score=(3, 4), action_code=(6, 7))
    s1 = run(s0, HOP)
    assert_state(
        s1,
        ground=ground([16]),
        flies=flies(),
        position=(16, 16),
        energy=(9, 10),
        score=(4, 4),
        action_code=(0, 7),  # hop -> idle; partner's code untouched
        pending_rough=0,
        pending_solid=False,
        obstacle_rate=0.005,
        turn=1,
        current_player=1,
    )


def test_hop_onto_solid_costs_nothing():
    s0 = mk(position=(15, 16), energy=(10, 10))
    s1 = run(s0, HOP)
    assert_state(s1, position=(16, 16), energy=(10, 10), score=(1, 0), action_code=(0, 0))


def test_hop_to_last_cell_is_allowed():
    # 30 + 1 = 31 < 32. anchor floor((31+2)/2) = 16: shift 0.
    s1 = run(mk(position=(30, 2), energy=(5, 5)), HOP)
    assert_state(s1, position=(31, 2), score=(1, 0), energy=(5, 5))


def test_hop_blocked_at_right_edge():
    # 31 + 1 = 32 is not < 32: nothing. anchor floor((31+1)/2) = 16: shift 0.
    s0 = mk(position=(31, 1), energy=(5, 5), score=(7, 2), action_code=(6, 0))
    s1 = run(s0, HOP)
    assert_state(
        s1,
        position=(31, 1),
        energy=(5, 5),
        score=(7, 2),
        action_code=(0, 0),
        obstacle_rate=0.005,  # the scroll step still runs (success irrelevant)
        turn=1,
        current_player=1,
    )


def test_hop_at_energy_zero_does_nothing():
    # anchor floor((15+17)/2) = 16: shift 0.
    s0 = mk(position=(15, 17), energy=(0, 5))
    s1 = run(s0, HOP)
    assert_state(s1, position=(15, 17), energy=(0, 5), score=(0, 0), action_code=(0, 0), obstacle_rate=0.005)


def test_toad_hop():
    # Toad 16 -> 17 (rough). anchor floor((15+17)/2) = 16: shift 0.
    s0 = mk(ground=ground([17]), position=(15, 16), energy=(4, 3), score=(1, 1), current_player=1, turn=1)
    s1 = run(s0, HOP)
    assert_state(s1, position=(15, 17), energy=(4, 2), score=(1, 2), turn=2, current_player=0)


# --------------------------------------------------------------------------- jump


def test_jump_with_fly_caps_energy_removes_fly_and_does_not_scroll():
    # Positions 20/24 would shift by 6 if a scroll happened: they must stay.
    g = ground([3, 21])
    s0 = mk(ground=g, flies=flies([5, 20]), position=(20, 24), energy=(18, 3), obstacle_rate=0.02,
            pending_rough=2, pending_solid=True)
    s1 = run(s0, JUMP)
    assert_state(
        s1,
        ground=g,
        flies=flies([5]),
        position=(20, 24),
        energy=(20, 3),  # min(20, 18 + 4)
        score=(0, 0),
        action_code=(6, 0),
        pending_rough=2,
        pending_solid=True,
        turn=1,
        current_player=1,
    )
    assert np.asarray(s1.obstacle_rate) == np.float32(0.02)  # no scroll: rate untouched


def test_toad_jump_with_fly_gains_four():
    s0 = mk(flies=flies([24]), position=(20, 24), energy=(5, 10), action_code=(7, 0), turn=5, current_player=1)
    s1 = run(s0, JUMP)
    assert_state(s1, flies=flies(), energy=(5, 14), action_code=(7, 6), position=(20, 24), turn=6,
                 current_player=0, obstacle_rate=0.0)


def test_jump_without_fly_only_sets_code():
    s0 = mk(flies=flies([21]), position=(20, 24), energy=(0, 3))
    s1 = run(s0, JUMP)
    assert_state(s1, flies=flies([21]), energy=(0, 3), action_code=(6, 0), position=(20, 24))


def test_jump_at_energy_zero_with_fly():
    s0 = mk(flies=flies([20]), position=(20, 24), energy=(0, 3))
    s1 = run(s0, JUMP)
    assert_state(s1, flies=flies(), energy=(4, 3), action_code=(6, 0))


def test_jump_removes_fly_before_spawn():
    # The fly at 15 is eaten (energy +4 once), then a new fly spawns at 15 (u 0.0 < 0.01) and stays.
    s0 = mk(flies=flies([15]), position=(15, 16), energy=(10, 10))
    s1 = run(s0, JUMP, quiet_noise(fly_spawn={15: 0.0}))
    assert_state(s1, flies=flies([15]), energy=(14, 10), action_code=(6, 0))


# --------------------------------------------------------------------------- leap


def test_leap_cost_and_landing():
    # Frog 10 -> 15, energy 5 -> 4. anchor floor((15+17)/2) = 16: shift 0.
    s0 = mk(position=(10, 17), energy=(5, 9), score=(2, 3))
    s1 = run(s0, LEAP)
    assert_state(s1, position=(15, 17), energy=(4, 9), score=(2, 3), action_code=(7, 0), obstacle_rate=0.005,
                 turn=1, current_player=1)


def test_leap_onto_rough():
    s0 = mk(ground=ground([15]), position=(10, 17), energy=(5, 9))
    s1 = run(s0, LEAP)
    assert_state(s1, position=(15, 17), energy=(3, 9), action_code=(7, 0), ground=ground([15]))


def test_leap_with_energy_one_onto_rough_stops_at_zero():
    # 1 - 1 (leap) = 0, then rough: max(0, 0 - 1) = 0, never -1.
    s0 = mk(ground=ground([15]), position=(10, 17), energy=(1, 9))
    s1 = run(s0, LEAP)
    assert_state(s1, position=(15, 17), energy=(0, 9), action_code=(7, 0))


def test_hop_with_energy_one_onto_rough():
    s0 = mk(ground=ground([16]), position=(15, 16), energy=(1, 9))
    s1 = run(s0, HOP)
    assert_state(s1, position=(16, 16), energy=(0, 9), score=(1, 0))


def test_leap_blocked_near_edge_is_idle():
    # 27 + 5 = 32 is not < 32. anchor floor((27+5)/2) = 16: shift 0.
    s0 = mk(position=(27, 5), energy=(5, 5), action_code=(7, 8))
    s1 = run(s0, LEAP)
    assert_state(s1, position=(27, 5), energy=(5, 5), action_code=(0, 8), obstacle_rate=0.005)


def test_leap_to_last_cell_allowed():
    # 26 + 5 = 31 < 32. anchor floor((31+1)/2) = 16: shift 0.
    s1 = run(mk(position=(26, 1), energy=(5, 5)), LEAP)
    assert_state(s1, position=(31, 1), energy=(4, 5), action_code=(7, 0))


def test_leap_at_energy_zero_is_idle():
    s0 = mk(position=(10, 22), energy=(0, 5), action_code=(6, 0))
    s1 = run(s0, LEAP)
    assert_state(s1, position=(10, 22), energy=(0, 5), action_code=(0, 0))


# --------------------------------------------------------------------------- help


def test_help_gift_capped_at_max():
    s0 = mk(position=(16, 16), energy=(5, 19), action_code=(0, 6))
    s1 = run(s0, HELP)
    assert_state(s1, position=(16, 16), energy=(4, 20), action_code=(8, 6), score=(0, 0), obstacle_rate=0.005,
                 turn=1, current_player=1)


def test_toad_helps_frog():
    # Toad helps: Frog 10 -> 12, Toad 10 -> 9. Frog 14 + 5 < 32. anchor floor((14+18)/2) = 16.
    s0 = mk(position=(14, 18), energy=(10, 10), action_code=(6, 0), current_player=1, turn=3)
    s1 = run(s0, HELP)
    assert_state(s1, position=(14, 18), energy=(12, 9), action_code=(6, 8), turn=4, current_player=0)


def test_help_partner_at_full_energy_no_gift_no_cost():
    s0 = mk(position=(16, 16), energy=(5, 20))
    s1 = run(s0, HELP)
    assert_state(s1, position=(16, 16), energy=(5, 20), action_code=(8, 0))


def test_help_partner_at_full_energy_can_still_leap():
    # No gift, no cost; help-leap (0.1 < 0.25): Toad 16 -> 21, 20 -> 19; Toad's code stays 6.
    # anchor floor((11+21)/2) = 16: shift 0.
    s0 = mk(position=(11, 16), energy=(5, 20), action_code=(0, 6))
    s1 = run(s0, HELP, quiet_noise(help_leap=0.1))
    assert_state(s1, position=(11, 21), energy=(5, 19), action_code=(8, 6), score=(0, 0))


def test_help_triggered_leap():
    # Gift: Toad 10 -> 12, Frog 10 -> 9; then Toad leaps 16 -> 21 paying 1: 12 -> 11.
    s0 = mk(position=(11, 16), energy=(10, 10), score=(4, 5))
    s1 = run(s0, HELP, quiet_noise(help_leap=0.1))
    assert_state(s1, position=(11, 21), energy=(9, 11), action_code=(8, 0), score=(4, 5))


def test_help_leap_uses_partner_energy_after_gift():
    # Toad at 0 gets 2, so the leap is allowed: 2 -> 1, 16 -> 21.
    s0 = mk(position=(11, 16), energy=(3, 0))
    s1 = run(s0, HELP, quiet_noise(help_leap=0.0))
    assert_state(s1, position=(11, 21), energy=(2, 1), action_code=(8, 0))


def test_help_leap_onto_rough():
    s0 = mk(ground=ground([21]), position=(11, 16), energy=(10, 10))
    s1 = run(s0, HELP, quiet_noise(help_leap=0.1))
    assert_state(s1, position=(11, 21), energy=(9, 10), action_code=(8, 0))  # 10+2-1-1


def test_help_leap_energy_floor_zero():
    # help_gift 0: gift branch runs (1 < 20) but adds nothing; helper pays 1. Leap 1 -> 0, rough -> max(0,-1) = 0.
    params = EnvParams(help_gift=0)
    s0 = mk(ground=ground([21]), position=(11, 16), energy=(5, 1))
    s1 = run(s0, HELP, quiet_noise(help_leap=0.1), params)
    assert_state(s1, position=(11, 21), energy=(4, 0), action_code=(8, 0))


def test_help_leap_draw_threshold():
    s0 = mk(position=(11, 16), energy=(10, 10))
    no = run(s0, HELP, quiet_noise(help_leap=0.25))  # 0.25 < 0.25 is false
    # no leap: anchor floor((11+16)/2) = 13, shift -3 -> (14, 19)
    assert_state(no, position=(14, 19), energy=(9, 12))
    yes = run(s0, HELP, quiet_noise(help_leap=0.2499))
    assert_state(yes, position=(11, 21), energy=(9, 11))


def test_help_at_energy_zero_does_nothing():
    s0 = mk(position=(16, 16), energy=(0, 10), action_code=(8, 0))
    s1 = run(s0, HELP, quiet_noise(help_leap=0.1))
    assert_state(s1, position=(16, 16), energy=(0, 10), action_code=(0, 0), obstacle_rate=0.005)


def test_help_partner_too_far_right():
    # Toad 27 + 5 = 32: no gift, no cost, no leap even with the draw, but the code is 8.
    # anchor floor((5+27)/2) = 16: shift 0.
    s0 = mk(position=(5, 27), energy=(5, 10))
    s1 = run(s0, HELP, quiet_noise(help_leap=0.1))
    assert_state(s1, position=(5, 27), energy=(5, 10), action_code=(8, 0))


# --------------------------------------------------------------------------- flies


def test_fly_spawn_move_merge_and_clamp():
    s0 = mk(flies=flies([0, 10, 12, 25, 31]), position=(15, 16), energy=(5, 5))
    noise = quiet_noise(
        fly_spawn={3: 0.005, 7: 0.0099, 8: 0.0101, 9: 0.01, 25: 0.0},
        fly_move={0: 0.1, 3: 0.9, 10: 0.9, 12: 0.1, 31: 0.9, 20: 0.9, 7: 0.5},
    )
    s1 = run(s0, JUMP, noise)
    # spawns at 3, 7 (and 25, already occupied); 0 -> -1 clamped 0; 3 -> 4; 10 -> 11 and 12 -> 11 merge;
    # 25 stays; 31 -> 32 clamped 31; 20 has no fly.
    assert_state(s1, flies=flies([0, 4, 7, 11, 25, 31]))


def test_fly_move_decode():
    # floor(3u) - 1: u in [0, 1/3) -> -1, [1/3, 2/3) -> 0, [2/3, 1) -> +1.
    s0 = mk(flies=flies([4, 10, 16, 22, 28]), position=(15, 16), energy=(5, 5))
    noise = quiet_noise(fly_move={4: 0.0, 10: 0.34, 16: 0.66, 22: 0.67, 28: 0.9999})
    s1 = run(s0, JUMP, noise)
    assert_state(s1, flies=flies([3, 10, 16, 23, 29]))


def test_flies_do_not_scroll():
    # Frog 20 -> 21, Toad 24: anchor floor(22.5) = 22, shift 6; flies stay at 5 and 30.
    s0 = mk(flies=flies([5, 30]), position=(20, 24), energy=(5, 5))
    s1 = run(s0, HOP)
    assert_state(s1, flies=flies([5, 30]), position=(15, 18))


# --------------------------------------------------------------------------- scroll


def test_scroll_d1_positive_shift_floor_mean():
    # Frog 20 -> 21; anchor floor((21+24)/2) = floor(22.5) = 22, shift 6.
    s0 = mk(ground=ground([0, 7, 10, 25]), position=(20, 24), energy=(5, 5))
    s1 = run(s0, HOP)
    assert_state(
        s1,
        ground=ground([1, 4, 19]),  # old 7, 10, 25 minus 6; 0 dropped; 26..31 new SOLID
        position=(15, 18),
        score=(1, 0),
        energy=(5, 5),
        pending_rough=0,
        pending_solid=False,
        obstacle_rate=0.005,
    )


def test_scroll_d1_negative_shift_prepends_solid():
    # Frog 3 -> 4; anchor floor((4+9)/2) = 6, shift -10: positions 14, 19.
    s0 = mk(ground=ground([0, 2, 20, 25]), position=(3, 9), energy=(5, 5))
    s1 = run(s0, HOP)
    assert_state(s1, ground=ground([10, 12, 30]), position=(14, 19), score=(1, 0))


def test_scroll_clamps_to_last_cell():
    # Frog blocked at energy 0; anchor floor((0+31)/2) = 15, shift -1: Frog 1, Toad 32 -> 31.
    s0 = mk(ground=ground([5, 31]), position=(0, 31), energy=(0, 5))
    s1 = run(s0, HOP)
    assert_state(s1, ground=ground([6]), position=(1, 31))


def test_scroll_d0_leader_drags_laggard_clamped_at_zero():
    # D = 0: anchor = max = 27 after Frog 26 -> 27; shift 11: Frog 16, Toad 5 - 11 -> 0.
    params = EnvParams(dependency=0.0)
    s0 = mk(ground=ground([12, 20]), position=(26, 5), energy=(5, 5))
    s1 = run(s0, HOP, params=params)
    assert_state(s1, ground=ground([1, 9]), position=(16, 0), score=(1, 0))


def test_scroll_d0_toad_leads():
    # D = 0, Toad leaps 20 -> 25: anchor 25, shift 9: Frog 14 -> 5, Toad 16.
    params = EnvParams(dependency=0.0)
    s0 = mk(position=(14, 20), energy=(5, 5), current_player=1, turn=1)
    s1 = run(s0, LEAP, params=params)
    assert_state(s1, position=(5, 16), energy=(5, 4), action_code=(0, 7), turn=2, current_player=0)


def test_scroll_d0_negative_shift():
    # D = 0: Frog 3 -> 4, Toad 9: anchor 9, shift -7: Frog 11, Toad 16; 7 SOLID prepended.
    params = EnvParams(dependency=0.0)
    s0 = mk(ground=ground([0, 28]), position=(3, 9), energy=(5, 5))
    s1 = run(s0, HOP, params=params)
    assert_state(s1, ground=ground([7]), position=(11, 16))


def test_scroll_d_half():
    # D = 0.5: anchor = floor(0.5 * 32 / 2 + 0.5 * 27) = floor(21.5) = 21, shift 5: Frog 22, Toad 0.
    params = EnvParams(dependency=0.5)
    s0 = mk(ground=ground([6]), position=(26, 5), energy=(5, 5))
    s1 = run(s0, HOP, params=params)
    assert_state(s1, ground=ground([1]), position=(22, 0))


def test_no_scroll_after_jump():
    g = ground([1, 17, 30])
    s0 = mk(ground=g, position=(28, 30), energy=(5, 5), pending_rough=1, pending_solid=True,
            obstacle_rate=0.03)
    s1 = run(s0, JUMP, quiet_noise(cell_start={i: 0.0 for i in range(K)}))
    assert_state(s1, ground=g, position=(28, 30), pending_rough=1, pending_solid=True, turn=1, current_player=1)
    assert np.asarray(s1.obstacle_rate) == np.float32(0.03)


# --------------------------------------------------------------------------- obstacles


def test_obstacle_queue_across_turns():
    """Widths 1, 2, 3, 4 with their closing SOLID cells, one new cell per Frog turn.

    D = 0, Frog starts at 16 and hops every Frog turn (17 -> anchor 17 -> shift 1 -> back to 16);
    Toad jumps (no scroll, consumes nothing). Rate starts at 0.05; start draws are 0.0 except
    on turn 15 (0.99: no obstacle), so a pending cell always wins over a successful start draw.
    """
    params = EnvParams(dependency=0.0)
    # (start u, width u) -> (emitted cell, pending_rough, pending_solid)
    plan = [
        ((0.0, 0.0), (R, 0, True)),  # width 1
        ((0.0, 0.9), (S, 0, False)),  # closing solid
        ((0.0, 0.3), (R, 1, True)),  # width 2: 1 + floor(4 * 0.3) = 2
        ((0.0, 0.9), (R, 0, True)),
        ((0.0, 0.9), (S, 0, False)),
        ((0.0, 0.6), (R, 2, True)),  # width 3
        ((0.0, 0.0), (R, 1, True)),
        ((0.0, 0.0), (R, 0, True)),
        ((0.0, 0.0), (S, 0, False)),
        ((0.0, 0.9), (R, 3, True)),  # width 4
        ((0.0, 0.0), (R, 2, True)),
        ((0.0, 0.0), (R, 1, True)),
        ((0.0, 0.0), (R, 0, True)),
        ((0.0, 0.0), (S, 0, False)),
        ((0.99, 0.9), (S, 0, False)),  # no start
        ((0.0, 0.6), (R, 2, True)),  # width 3 again
    ]
    s = mk(position=(16, 10), energy=(20, 20), obstacle_rate=0.05)
    expected_ground = ground()
    rate = np.float32(0.05)
    toad = 10
    frog_energy = 20
    for t, ((su, wu), (cell, pr, ps)) in enumerate(plan, start=1):
        s = run(s, HOP, quiet_noise(cell_start={0: su}, cell_width={0: wu}), params)
        if t == 16:  # the cell emitted on turn 1 (ROUGH) has scrolled to 17: Frog lands on it
            assert expected_ground[17] == R
            frog_energy -= 1
        else:
            assert expected_ground[17] == S
        expected_ground = expected_ground[1:] + [cell]
        rate = f32_rate_after(rate)
        toad = max(0, toad - 1)
        assert_state(
            s,
            ground=expected_ground,
            pending_rough=pr,
            pending_solid=ps,
            position=(16, toad),
            energy=(frog_energy, 20),
            score=(t, 0),
            obstacle_rate=rate,
            current_player=1,
        )
        assert int(s.ground[W - 1]) == cell, f"Frog turn {t}"
        # Toad's jump: nothing about the ground or the queue changes.
        s = run(s, JUMP, quiet_noise(cell_start={i: 0.0 for i in range(K)}), params)
        assert_state(s, ground=expected_ground, pending_rough=pr, pending_solid=ps, position=(16, toad),
                     current_player=0, turn=2 * t)
    assert expected_ground[16:] == [R, S, R, R, S, R, R, R, S, R, R, R, R, S, S, R]


def test_obstacle_several_cells_in_one_turn():
    # D = 0, Frog leaps 16 -> 21, Toad 10: anchor 21, shift 5: new cells k = 0..4.
    # Rate 0.05 -> 0.055. k0: 0.01 < 0.055, width 1 + floor(4*0.3) = 2 -> R (pending 1, solid)
    # k1: pending R; k2: closing S (start draw 0.01 ignored); k3: 0.5 no start -> S;
    # k4: 0.01 start, width 1 -> R, pending 0 + closing solid.
    params = EnvParams(dependency=0.0)
    s0 = mk(ground=ground([5, 9]), position=(16, 10), energy=(20, 20), obstacle_rate=0.05)
    noise = quiet_noise(
        cell_start={0: 0.01, 1: 0.5, 2: 0.01, 3: 0.5, 4: 0.01, 5: 0.0},
        cell_width={0: 0.3, 1: 0.9, 2: 0.9, 3: 0.9, 4: 0.0, 5: 0.9},
    )
    s1 = run(s0, LEAP, noise, params)
    g = ground([0, 4])[:27] + [R, R, S, S, R]  # old 5 -> 0, old 9 -> 4; 0..4 dropped
    assert_state(s1, ground=g, position=(16, 5), energy=(19, 20), pending_rough=0, pending_solid=True,
                 obstacle_rate=f32_rate_after(0.05), action_code=(7, 0))
    # Next turn (Toad hops 5 -> 6 under D = 0: anchor 16, shift 0; then Frog hops for one cell)
    s2 = run(s1, HOP, noise, params)
    assert_state(s2, ground=g, position=(16, 6), pending_rough=0, pending_solid=True)
    s3 = run(s2, HOP, quiet_noise(cell_start={0: 0.0}, cell_width={0: 0.9}), params)
    # closing solid wins over the start draw
    assert_state(s3, ground=g[1:] + [S], position=(16, 5), pending_rough=0, pending_solid=False)


def test_obstacle_pending_from_state_has_priority():
    # D = 1: Frog 19 -> 20, Toad 20: anchor 20, shift 4. pending 2 rough + solid from the state.
    # k0: R (1 left), k1: R (0 left), k2: S (closing), k3: start 0.0 < rate, width 2 -> R, pending 1 + solid.
    s0 = mk(position=(19, 20), energy=(9, 9), pending_rough=2, pending_solid=True, obstacle_rate=0.02)
    noise = quiet_noise(cell_start={0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0}, cell_width={0: 0.9, 1: 0.9, 2: 0.9, 3: 0.3})
    s1 = run(s0, HOP, noise)
    assert_state(s1, ground=ground()[:28] + [R, R, S, R], position=(16, 16), pending_rough=1, pending_solid=True,
                 obstacle_rate=f32_rate_after(0.02), score=(1, 0))


def test_obstacle_start_uses_rate_after_increment():
    # D = 1: Frog 17 -> 18, Toad 16: anchor 17, shift 1. Rate 0.05 -> 0.055.
    s0 = mk(position=(17, 16), energy=(9, 9), obstacle_rate=0.05)
    hit = run(s0, HOP, quiet_noise(cell_start={0: 0.052}, cell_width={0: 0.0}))  # 0.052 < 0.055
    assert_state(hit, ground=ground([31]), position=(17, 15), pending_rough=0, pending_solid=True)
    miss = run(s0, HOP, quiet_noise(cell_start={0: 0.056}, cell_width={0: 0.0}))
    assert_state(miss, ground=ground(), position=(17, 15), pending_rough=0, pending_solid=False)


def test_obstacle_rate_increment_and_cap():
    s = mk(position=(15, 17), energy=(0, 0))  # hops do nothing, shift 0 every turn
    s1 = run(s, HOP)
    assert np.asarray(s1.obstacle_rate) == np.float32(0.005)
    s = mk(position=(15, 17), energy=(0, 0), obstacle_rate=0.073)
    assert np.asarray(run(s, HOP).obstacle_rate) == np.float32(0.075)
    s = mk(position=(15, 17), energy=(0, 0), obstacle_rate=0.075)
    assert np.asarray(run(s, LEAP).obstacle_rate) == np.float32(0.075)
    assert np.asarray(run(s, HELP).obstacle_rate) == np.float32(0.075)
    # chain of 20 scrolling turns from 0
    s = mk(position=(15, 17), energy=(0, 0))
    rates = []
    for _ in range(20):
        s = run(s, HOP)
        rates.append(float(s.obstacle_rate))
    np.testing.assert_allclose(rates[:14], [0.005 * (i + 1) for i in range(14)], rtol=1e-5)
    assert rates[-1] == np.float32(0.075)
    assert max(rates) == np.float32(0.075)
    assert all(b >= a for a, b in zip(rates, rates[1:]))


def test_obstacle_rate_cap_is_a_param():
    params = EnvParams(obstacle_rate_step=0.01, obstacle_rate_max=0.02)
    s = mk(position=(15, 17), energy=(0, 0), obstacle_rate=0.015)
    assert np.asarray(run(s, HOP, params=params).obstacle_rate) == np.float32(0.02)


# --------------------------------------------------------------------------- time


def test_turn_counter_and_current_player_alternate():
    s = mk(position=(15, 16), energy=(5, 5), turn=10, current_player=0)
    expected = [(11, 1), (12, 0), (13, 1), (14, 0), (15, 1)]
    for action, (turn, player) in zip([HOP, JUMP, LEAP, HELP, HOP], expected):
        s = run(s, action)
        assert_state(s, turn=turn, current_player=player)


def test_turn_advances_even_when_nothing_happens():
    # anchor floor((15+16)/2) = 15: shift -1 -> (16, 17) even though nobody moved
    s = mk(position=(15, 16), energy=(0, 0), current_player=1, turn=0)
    s1 = run(s, HELP)
    assert_state(s1, turn=1, current_player=0, energy=(0, 0), position=(16, 17), action_code=(0, 0))


# --------------------------------------------------------------------------- observation


def _obs(state, player, params=P, veiled=False):
    o = observe_given_veil(state, player, params, veiled)
    assert o.shape == (100,) and o.dtype == jnp.int8
    return np.asarray(o)


def test_observation_layout_exact():
    g = ground([3, 10, 20])
    s = mk(ground=g, flies=flies([0, 5, 31]), position=(10, 12), energy=(13, 7), score=(200, 5),
           action_code=(6, 7))
    # Frog observes: own cell 10 is rough -> 9; Toad on solid with code 7 -> 7.
    frog = obs_vec(g, line(c10=9, c12=7), {0, 5, 31}, own=9, energy=13, score=127, position=10)
    np.testing.assert_array_equal(_obs(s, 0), frog)
    # Toad observes: own cell 12 solid -> idle 5 (its own code 7 is not shown); Frog on rough -> 9.
    toad = obs_vec(g, line(c10=9, c12=5), {0, 5, 31}, own=5, energy=7, score=5, position=12)
    np.testing.assert_array_equal(_obs(s, 1), toad)


def test_observation_partner_codes():
    g = ground([20])
    for frog_code, toad_code in [(0, 0), (6, 8), (8, 6), (7, 0), (0, 7)]:
        s = mk(ground=g, position=(4, 6), energy=(1, 2), score=(3, 4), action_code=(frog_code, toad_code))
        want_toad_shown = toad_code if toad_code else 5
        want_frog_shown = frog_code if frog_code else 4
        np.testing.assert_array_equal(
            _obs(s, 0), obs_vec(g, line(c4=4, c6=want_toad_shown), set(), own=4, energy=1, score=3, position=4)
        )
        np.testing.assert_array_equal(
            _obs(s, 1), obs_vec(g, line(c4=want_frog_shown, c6=5), set(), own=5, energy=2, score=4, position=6)
        )


def test_observation_distress_overrides_partner_code():
    g = ground([4, 6])
    s = mk(ground=g, position=(4, 6), energy=(1, 2), action_code=(8, 7))
    np.testing.assert_array_equal(_obs(s, 0), obs_vec(g, line(c4=9, c6=9), set(), 9, 1, 0, 4))
    np.testing.assert_array_equal(_obs(s, 1), obs_vec(g, line(c4=9, c6=9), set(), 9, 2, 0, 6))


def test_observation_both_on_one_cell_shows_partner():
    g = ground()
    s = mk(ground=g, position=(14, 14), energy=(3, 4), action_code=(6, 0))
    # Frog sees Toad (code 0 -> idle 5); Toad sees Frog's 6.
    np.testing.assert_array_equal(_obs(s, 0), obs_vec(g, line(c14=5), set(), 4, 3, 0, 14))
    np.testing.assert_array_equal(_obs(s, 1), obs_vec(g, line(c14=6), set(), 5, 4, 0, 14))
    s = mk(ground=g, position=(14, 14), energy=(3, 4), action_code=(0, 8))
    np.testing.assert_array_equal(_obs(s, 0), obs_vec(g, line(c14=8), set(), 4, 3, 0, 14))
    np.testing.assert_array_equal(_obs(s, 1), obs_vec(g, line(c14=4), set(), 5, 4, 0, 14))
    g = ground([14])
    s = mk(ground=g, position=(14, 14), energy=(3, 4), action_code=(6, 7))
    np.testing.assert_array_equal(_obs(s, 0), obs_vec(g, line(c14=9), set(), 9, 3, 0, 14))


@pytest.mark.parametrize("score,shown", [(0, 0), (126, 126), (127, 127), (128, 127), (300, 127), (100000, 127)])
def test_observation_score_saturates(score, shown):
    s = mk(position=(15, 16), energy=(20, 20), score=(score, 1))
    assert _obs(s, 0)[98] == shown
    assert _obs(s, 1)[98] == 1


def test_observation_indices_96_to_99():
    s = mk(ground=ground([31]), position=(0, 31), energy=(0, 20), score=(2, 9), action_code=(7, 6))
    np.testing.assert_array_equal(_obs(s, 0)[96:], [4, 0, 2, 0])
    np.testing.assert_array_equal(_obs(s, 1)[96:], [9, 20, 9, 31])


def test_veil_hides_idle_identity():
    g = ground([20])
    s = mk(ground=g, flies=flies([3]), position=(12, 20), energy=(6, 7), score=(1, 2), action_code=(0, 0))
    # Toad is on rough (9) and stays 9; Frog idle 4 stays 4.
    toad_veiled = obs_vec(g, line(c12=4, c20=9), {3}, 9, 7, 2, 20)
    s2 = mk(ground=ground(), flies=flies([3]), position=(12, 20), energy=(6, 7), score=(1, 2), action_code=(0, 0))
    frog_plain = obs_vec(ground(), line(c12=4, c20=5), {3}, 4, 6, 1, 12)
    frog_veiled = obs_vec(ground(), line(c12=4, c20=4), {3}, 4, 6, 1, 12)
    toad_plain = obs_vec(ground(), line(c12=4, c20=5), {3}, 5, 7, 2, 20)
    toad_veiled2 = obs_vec(ground(), line(c12=4, c20=4), {3}, 4, 7, 2, 20)

    np.testing.assert_array_equal(_obs(s2, 0, veiled=True), frog_veiled)
    np.testing.assert_array_equal(_obs(s2, 1, veiled=True), toad_veiled2)
    np.testing.assert_array_equal(_obs(s2, 1, veiled=False), toad_plain)
    np.testing.assert_array_equal(_obs(s, 1, veiled=True), toad_veiled)

    veil1 = EnvParams(veil=1.0)
    veil0 = EnvParams(veil=0.0)
    for i in range(20):
        key = jax.random.PRNGKey(i)
        np.testing.assert_array_equal(np.asarray(observe(s2, 0, veil1, key)), frog_veiled)
        np.testing.assert_array_equal(np.asarray(observe(s2, 1, veil1, key)), toad_veiled2)
        np.testing.assert_array_equal(np.asarray(observe(s2, 0, veil0, key)), frog_plain)
        np.testing.assert_array_equal(np.asarray(observe(s2, 1, veil0, key)), toad_plain)


def test_veil_keeps_action_codes():
    s = mk(position=(12, 20), energy=(6, 7), action_code=(6, 8))
    np.testing.assert_array_equal(_obs(s, 0, veiled=True), obs_vec(ground(), line(c12=4, c20=8), set(), 4, 6, 0, 12))
    np.testing.assert_array_equal(_obs(s, 1, veiled=True), obs_vec(ground(), line(c12=6, c20=4), set(), 4, 7, 0, 20))


def test_veil_draw_follows_contract():
    # veiled = uniform(key, (), float32) < veil
    s = mk(position=(12, 20), energy=(6, 7))
    params = EnvParams(veil=0.5)
    for i in range(20):
        key = jax.random.PRNGKey(100 + i)
        veiled = bool(jax.random.uniform(key, (), jnp.float32) < np.float32(0.5))
        np.testing.assert_array_equal(np.asarray(observe(s, 1, params, key)), _obs(s, 1, params, veiled))


# --------------------------------------------------------------------------- reset / step


START_FROG_OBS = obs_vec(ground(), line(c15=4, c16=5), set(), 4, 20, 0, 15)
START_TOAD_OBS = obs_vec(ground(), line(c15=4, c16=5), set(), 5, 20, 0, 16)


def _assert_start(s):
    assert_state(
        s,
        ground=ground(),
        position=(15, 16),
        energy=(20, 20),
        score=(0, 0),
        action_code=(0, 0),
        pending_rough=0,
        pending_solid=False,
        obstacle_rate=0.0,
        turn=0,
        current_player=0,
    )


def test_initial_state_and_flies():
    key = jax.random.PRNGKey(3)
    s = initial_state(key, P)
    _assert_start(s)
    want = np.asarray(jax.random.uniform(key, (W,), jnp.float32)) < np.float32(0.01)
    np.testing.assert_array_equal(np.asarray(s.flies), want)
    assert not np.asarray(initial_state(key, EnvParams(fly_spawn_prob=0.0)).flies).any()
    assert np.asarray(initial_state(key, EnvParams(fly_spawn_prob=1.0)).flies).all()
    # the dtype contract of state_from_values
    assert s.ground.dtype == jnp.int8 and s.action_code.dtype == jnp.int8
    assert s.position.dtype == jnp.int32 and s.energy.dtype == jnp.int32 and s.score.dtype == jnp.int32
    assert s.flies.dtype == jnp.bool_ and s.pending_solid.dtype == jnp.bool_
    assert s.obstacle_rate.dtype == jnp.float32


def test_reset():
    params = EnvParams(fly_spawn_prob=0.0)
    obs, s = reset(jax.random.PRNGKey(0), params)
    _assert_start(s)
    assert obs.shape == (2, 100) and obs.dtype == jnp.int8
    np.testing.assert_array_equal(np.asarray(obs[0]), START_FROG_OBS)
    np.testing.assert_array_equal(np.asarray(obs[1]), START_TOAD_OBS)


def test_step_auto_reset_terminal_obs_and_rewards():
    # fly_spawn_prob 0 and obstacle_rate_step 0 make the run independent of the step's noise.
    params = EnvParams(episode_turns=3, fly_spawn_prob=0.0, obstacle_rate_step=0.0)
    key = jax.random.PRNGKey(7)
    _, s = reset(key, params)
    # t1 Frog hop 15->16 (anchor 16); t2 Toad hop 16->17 (anchor floor(16.5)=16);
    # t3 Frog hop 16->17, anchor 17, shift 1: both at 16. Scores (2, 1), turn 3 -> done.
    want_rewards = [(1, 0), (0, 1), (1, 0)]
    want_done = [False, False, True]
    for t in range(3):
        key, k = jax.random.split(key)
        prev = s
        obs, s, rewards, done, info = step(k, s, jnp.int32(HOP), params)
        assert rewards.shape == (2,) and rewards.dtype == jnp.int32
        np.testing.assert_array_equal(np.asarray(rewards), want_rewards[t])
        assert bool(done) == want_done[t]
        if t < 2:
            np.testing.assert_array_equal(np.asarray(rewards), np.asarray(s.score) - np.asarray(prev.score))
            assert_state(s, turn=t + 1)
    # after the terminal step: fresh start state and the start observation
    _assert_start(s)
    assert not np.asarray(s.flies).any()
    np.testing.assert_array_equal(np.asarray(obs[0]), START_FROG_OBS)
    np.testing.assert_array_equal(np.asarray(obs[1]), START_TOAD_OBS)
    term = np.asarray(info["terminal_obs"])
    assert term.shape == (2, 100)
    # terminal state: both at 16 (Frog sees Toad idle 5 there, Toad sees Frog idle 4), scores (2, 1)
    np.testing.assert_array_equal(term[0], obs_vec(ground(), line(c16=5), set(), 4, 20, 2, 16))
    np.testing.assert_array_equal(term[1], obs_vec(ground(), line(c16=4), set(), 5, 20, 1, 16))
    terminal_state = mk(position=(16, 16), energy=(20, 20), score=(2, 1), turn=3, current_player=1)
    np.testing.assert_array_equal(term[0], _obs(terminal_state, 0, params))
    np.testing.assert_array_equal(term[1], _obs(terminal_state, 1, params))


def test_step_rewards_equal_score_gains():
    params = EnvParams(episode_turns=1000)
    key = jax.random.PRNGKey(11)
    _, s = reset(key, params)
    actions = [HOP, HOP, LEAP, JUMP, HELP, HOP, HOP, LEAP, HOP, JUMP, HOP, HOP]
    for a in actions:
        key, k = jax.random.split(key)
        prev = s
        _, s, rewards, done, _ = step(k, s, jnp.int32(a), params)
        assert not bool(done)
        gain = np.asarray(s.score) - np.asarray(prev.score)
        np.testing.assert_array_equal(np.asarray(rewards), gain)
        actor = int(prev.current_player)
        expect_gain = [0, 0]
        if a == HOP and int(prev.energy[actor]) > 0 and int(prev.position[actor]) + 1 < W:
            expect_gain[actor] = 1
        np.testing.assert_array_equal(gain, expect_gain)
