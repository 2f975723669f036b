"""One turn of Frog and Toad as a chain of pure functions (spec §2, §6).

`transition(state, action, noise, params)` is deterministic: all randomness comes
from the `Noise` record. The work happens on the bit-packed state (`packed.py`):
`packed_transition` chains `apply_action`, `move_flies`, `scroll` and the clock, each
`f(packed, ...) -> packed` and testable alone. Every branch is a `jnp.where` (what
`vmap` turns a `lax.cond` into anyway), and per-player values are picked with
2-element masks rather than dynamic gathers.
"""

import jax
import jax.numpy as jnp

from mirror.env.constants import ACTION_CODE_IDLE, DEPENDENCY_GRID, HELP, HELPING, HOP, JUMP, JUMPING, LEAP, LEAPING
from mirror.env.noise import Noise, fly_moves, obstacle_widths
from mirror.env.packed import PackedState, bit_at, pack, pack_bits, unpack
from mirror.env.params import EnvParams
from mirror.env.state import EnvState

U32 = jnp.uint32


def _pick(pair: jax.Array, is_p: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Split a [2] array into (acting player's value, partner's value)."""
    return jnp.sum(jnp.where(is_p, pair, 0)), jnp.sum(jnp.where(is_p, 0, pair))


def _land(energy, rough, cell, moved, params: EnvParams):
    """Landing on rough ground hurts; energy never goes below 0 (spec §2.1)."""
    hurt = moved & bit_at(rough, jnp.clip(cell, 0, params.world_width - 1))
    return jnp.where(hurt, jnp.maximum(energy - params.rough_cost, 0), energy)


def apply_action(state: PackedState, action, noise: Noise, params: EnvParams) -> PackedState:
    """Step 1 of a turn: the acting player's hop, jump, leap or help."""
    width = params.world_width
    is_p = jnp.arange(2) == state.current_player
    x_p, x_q = _pick(state.position, is_p)
    e_p, e_q = _pick(state.energy, is_p)
    s_p, _ = _pick(state.score, is_p)
    reach = params.leap_distance

    hop = (action == HOP) & (e_p > 0) & (x_p + 1 < width)
    leap = (action == LEAP) & (e_p > 0) & (x_p + reach < width)
    jump = action == JUMP
    helping = (action == HELP) & (e_p > 0)
    help_ok = helping & (x_q + reach < width)
    gift = help_ok & (e_q < params.max_energy)

    # Acting player. Energy never goes below 0, whatever the (non-default) costs.
    eat = jump & bit_at(state.flies, x_p)
    new_x_p = x_p + jnp.where(hop, 1, 0) + jnp.where(leap, reach, 0)
    new_e_p = jnp.maximum(e_p - jnp.where(leap, params.leap_cost, 0) - jnp.where(gift, params.help_cost, 0), 0)
    new_e_p = jnp.where(eat, jnp.minimum(params.max_energy, e_p + params.fly_energy), new_e_p)
    new_e_p = _land(new_e_p, state.rough, new_x_p, hop | leap, params)
    new_s_p = s_p + jnp.where(hop, 1, 0)
    code_p = jnp.select([jump, leap, helping], [JUMPING, LEAPING, HELPING], ACTION_CODE_IDLE).astype(jnp.int8)

    # Partner: the gift, then (independently) the help-triggered leap paid by the partner.
    new_e_q = jnp.where(gift, jnp.minimum(params.max_energy, e_q + params.help_gift), e_q)
    pushed = help_ok & (noise.help_leap < params.help_leap_prob) & (new_e_q > 0)
    new_x_q = x_q + jnp.where(pushed, reach, 0)
    new_e_q = jnp.maximum(new_e_q - jnp.where(pushed, params.leap_cost, 0), 0)
    new_e_q = _land(new_e_q, state.rough, new_x_q, pushed, params)

    flies = jnp.where(eat, state.flies & ~jnp.left_shift(U32(1), x_p.astype(U32)), state.flies)
    return state.replace(
        position=jnp.where(is_p, new_x_p, new_x_q).astype(jnp.int32),
        energy=jnp.where(is_p, new_e_p, new_e_q).astype(jnp.int32),
        score=jnp.where(is_p, new_s_p, state.score).astype(jnp.int32),
        action_code=jnp.where(is_p, code_p, state.action_code),
        flies=flies,
    )


def move_flies(flies: jax.Array, noise: Noise, params: EnvParams) -> jax.Array:
    """Step 2: spawn, then every fly moves by -1/0/+1 (clamped); flies on one cell merge.

    On bitmasks: flies moving right shift up one bit, left down one bit; a fly that
    would leave the window stays on its edge cell.
    """
    top = U32(1 << (params.world_width - 1))
    flies = flies | pack_bits(noise.fly_spawn < params.fly_spawn_prob)
    move = fly_moves(noise.fly_move)
    right = flies & pack_bits(move == 1)
    left = flies & pack_bits(move == -1)
    stay = flies & ~(right | left)
    inside = U32((1 << params.world_width) - 1)
    return stay | (jnp.left_shift(right, U32(1)) & inside) | (right & top) | jnp.right_shift(left, U32(1)) | (left & U32(1))


def dependency_steps(dependency) -> jax.Array:
    """D as an integer number of 1/DEPENDENCY_GRID steps (exact for D on that grid)."""
    return jnp.round(jnp.asarray(dependency, jnp.float32) * DEPENDENCY_GRID).astype(jnp.int32)


def scroll_anchor(position: jax.Array, params: EnvParams) -> jax.Array:
    """floor(D * (p0 + p1) / 2 + (1 - D) * leader) (spec §6), exactly.

    With D = k / G the anchor is floor((k * (p0 + p1) + 2 * (G - k) * leader) / (2 * G)),
    all integers (at most 2 * G * 31, far inside int32), so no rounding can move floor().
    """
    k = dependency_steps(params.dependency)
    position = position.astype(jnp.int32)
    numerator = k * (position[0] + position[1]) + 2 * (DEPENDENCY_GRID - k) * jnp.max(position)
    return numerator // (2 * DEPENDENCY_GRID)


def new_right_cells(obstacle_left, obstacle_rate, shift, noise: Noise, params: EnvParams):
    """Rough-cell bitmask of the cells appended on the right (spec §2, 'Obstacle rule').

    `left` counts the cells still owed by the current obstacle (its rough cells plus the
    closing solid one): `left > 1` emits ROUGH, `left == 1` the closing SOLID, `left == 0`
    may start an obstacle of width w (emit ROUGH, w cells left). The rule is sequential,
    so it is unrolled over the static maximum number of new cells; the count advances
    only for k < shift (later cells are computed but never shown).
    Returns (bit k = k-th new cell is ROUGH, obstacle_left after `shift` cells).
    """
    widths = obstacle_widths(noise.cell_width, params.obstacle_max_width)
    starts = noise.cell_start < obstacle_rate
    left = obstacle_left
    bits = U32(0)
    for k in range(params.new_cells_max):
        start = (left == 0) & starts[k]
        bits = bits | jnp.where((left > 1) | start, U32(1 << k), U32(0))
        left = jnp.where(k < shift, jnp.where(start, widths[k], jnp.maximum(left - 1, 0)), left)
    return bits, left


def shift_window(rough: jax.Array, appended: jax.Array, shift, width: int) -> jax.Array:
    """Cell i of the new window shows old cell i + shift: new cells (bits of `appended`)
    past the right edge, SOLID (0) before the left edge."""
    inside = U32((1 << width) - 1)
    up = jnp.clip(shift, 0, width - 1).astype(U32)
    down = jnp.clip(-shift, 0, width - 1).astype(U32)
    new_cells = jnp.left_shift(appended & (jnp.left_shift(U32(1), up) - U32(1)), U32(width) - up)
    forward = jnp.right_shift(rough, up) | jnp.where(shift > 0, new_cells, U32(0))
    backward = jnp.left_shift(rough, down) & inside
    return jnp.where(shift >= 0, forward, backward)


def scroll(state: PackedState, noise: Noise, params: EnvParams) -> PackedState:
    """Step 3: raise the obstacle rate, move the window to the anchor, shift the players."""
    width = params.world_width
    rate = jnp.minimum(
        jnp.asarray(params.obstacle_rate_max, jnp.float32),
        state.obstacle_rate + jnp.asarray(params.obstacle_rate_step, jnp.float32),
    )
    shift = scroll_anchor(state.position, params) - width // 2
    appended, left = new_right_cells(state.obstacle_left, rate, shift, noise, params)
    return state.replace(
        rough=shift_window(state.rough, appended, shift, width),
        position=jnp.clip(state.position - shift, 0, width - 1).astype(jnp.int32),
        obstacle_left=left.astype(jnp.int32),
        obstacle_rate=rate,
    )


def packed_transition(state: PackedState, action, noise: Noise, params: EnvParams) -> PackedState:
    """One turn of `state.current_player` (spec §2): action, flies, scroll (unless jump), time."""
    action = jnp.asarray(action, jnp.int32)
    state = apply_action(state, action, noise, params)
    state = state.replace(flies=move_flies(state.flies, noise, params))
    scrolled = scroll(state, noise, params)
    state = jax.tree_util.tree_map(lambda moved, still: jnp.where(action == JUMP, still, moved), scrolled, state)
    return state.replace(turn=state.turn + 1, current_player=1 - state.current_player)


def transition(state: EnvState, action, noise: Noise, params: EnvParams) -> EnvState:
    """`packed_transition` on the readable state (the public, spec-shaped API)."""
    return unpack(packed_transition(pack(state), action, noise, params), params.world_width)
