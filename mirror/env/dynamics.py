"""One turn of Frog and Toad as a chain of pure functions (spec §2, §6).

`transition(state, action, noise, params)` is deterministic: all randomness comes
from the `Noise` record. Each stage is `f(state, ...) -> state` so it can be tested
alone; every branch is computed with `jnp.where` rather than `lax.cond`, which is what
`vmap` would turn a cond into anyway and keeps the code branch-free for XLA.

Per-player quantities are indexed by the acting player `p` and partner `q = 1 - p`
through 2-element masks, avoiding dynamic gathers on the hot path.
"""

import jax
import jax.numpy as jnp

from mirror.env.constants import (
    ACTION_CODE_IDLE,
    HELP,
    HELPING,
    HOP,
    JUMP,
    JUMPING,
    LEAP,
    LEAPING,
    ROUGH,
    SOLID,
)
from mirror.env.noise import Noise, fly_moves, obstacle_widths
from mirror.env.params import EnvParams
from mirror.env.state import EnvState


def _pick(pair: jax.Array, is_p: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Split a [2] array into (acting player's value, partner's value)."""
    return jnp.sum(jnp.where(is_p, pair, 0)), jnp.sum(jnp.where(is_p, 0, pair))


def _ground_at(ground: jax.Array, cell: jax.Array) -> jax.Array:
    return jnp.take(ground, jnp.clip(cell, 0, ground.shape[0] - 1))


def _land(energy, ground, cell, moved, params: EnvParams):
    """Landing on rough ground hurts; energy never goes below 0 (spec §2.1)."""
    hurt = moved & (_ground_at(ground, cell) == ROUGH)
    return jnp.where(hurt, jnp.maximum(energy - params.rough_cost, 0), energy)


def apply_action(state: EnvState, action, noise: Noise, params: EnvParams) -> EnvState:
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

    # Acting player.
    fly_here = jnp.take(state.flies, x_p)
    eat = jump & fly_here
    new_x_p = x_p + jnp.where(hop, 1, 0) + jnp.where(leap, reach, 0)
    # Energy never goes below 0, whatever the (non-default) costs.
    new_e_p = jnp.maximum(e_p - jnp.where(leap, params.leap_cost, 0) - jnp.where(gift, params.help_cost, 0), 0)
    new_e_p = jnp.where(eat, jnp.minimum(params.max_energy, e_p + params.fly_energy), new_e_p)
    new_e_p = _land(new_e_p, state.ground, new_x_p, hop | leap, params)
    new_s_p = s_p + jnp.where(hop, 1, 0)
    code_p = jnp.select(
        [jump, leap, helping], [JUMPING, LEAPING, HELPING], ACTION_CODE_IDLE
    ).astype(jnp.int8)

    # Partner: the gift, then (independently) the help-triggered leap paid by the partner.
    new_e_q = jnp.where(gift, jnp.minimum(params.max_energy, e_q + params.help_gift), e_q)
    pushed = help_ok & (noise.help_leap < params.help_leap_prob) & (new_e_q > 0)
    new_x_q = x_q + jnp.where(pushed, reach, 0)
    new_e_q = jnp.maximum(new_e_q - jnp.where(pushed, params.leap_cost, 0), 0)
    new_e_q = _land(new_e_q, state.ground, new_x_q, pushed, params)

    flies = state.flies & ~(eat & (jnp.arange(width) == x_p))
    return state.replace(
        position=jnp.where(is_p, new_x_p, new_x_q).astype(jnp.int32),
        energy=jnp.where(is_p, new_e_p, new_e_q).astype(jnp.int32),
        score=jnp.where(is_p, new_s_p, state.score).astype(jnp.int32),
        action_code=jnp.where(is_p, code_p, state.action_code),
        flies=flies,
    )


def move_flies(flies: jax.Array, noise: Noise, params: EnvParams) -> jax.Array:
    """Step 2: spawn, then every fly moves by -1/0/+1 (clamped); flies on one cell merge.

    Written as shifts of the source masks instead of a scatter: cell j receives the fly
    from j-1 moving right, from j staying, and from j+1 moving left; the edge cells also
    keep the flies that tried to leave the window.
    """
    flies = flies | (noise.fly_spawn < params.fly_spawn_prob)
    move = fly_moves(noise.fly_move)
    right, stay, left = flies & (move == 1), flies & (move == 0), flies & (move == -1)
    no = jnp.zeros((1,), jnp.bool_)
    from_left = jnp.concatenate([no, right[:-1]])
    from_right = jnp.concatenate([left[1:], no])
    blocked_left = jnp.concatenate([left[:1], jnp.zeros_like(left[1:])])
    blocked_right = jnp.concatenate([jnp.zeros_like(right[:-1]), right[-1:]])
    return stay | from_left | from_right | blocked_left | blocked_right


def scroll_anchor(position: jax.Array, params: EnvParams) -> jax.Array:
    """floor(D * mean + (1 - D) * leader) in float32 (spec §6)."""
    d = jnp.asarray(params.dependency, jnp.float32)
    total = (position[0] + position[1]).astype(jnp.float32)
    leader = jnp.max(position).astype(jnp.float32)
    return jnp.floor(d * total / 2 + (1 - d) * leader).astype(jnp.int32)


def new_right_cells(state: EnvState, shift, noise: Noise, params: EnvParams):
    """Emit the cells appended on the right by the obstacle rule (spec §2, 'Obstacle rule').

    The pending obstacle is tracked as one count `left` = pending rough cells + the
    closing solid cell (a pending rough cell always has its closing cell pending too):
    `left > 1` emits ROUGH, `left == 1` the closing SOLID, `left == 0` is free to start
    an obstacle of width w (emit ROUGH, w cells left). The rule is sequential, so it is
    unrolled over the static maximum number of new cells; the count only advances for
    k < shift (later cells are computed but never shown).
    Returns (cells int8[K], pending_rough, pending_solid).
    """
    widths = obstacle_widths(noise.cell_width, params.obstacle_max_width)
    starts = noise.cell_start < state.obstacle_rate
    left = state.pending_rough + state.pending_solid.astype(jnp.int32)
    cells = []
    for k in range(params.new_cells_max):
        start = (left == 0) & starts[k]
        cells.append((left > 1) | start)
        left = jnp.where(k < shift, jnp.where(start, widths[k], jnp.maximum(left - 1, 0)), left)
    rough = jnp.stack(cells)
    cells = jnp.where(rough, ROUGH, SOLID).astype(jnp.int8)
    return cells, jnp.maximum(left - 1, 0), left > 0


def shift_window(ground: jax.Array, appended: jax.Array, shift) -> jax.Array:
    """Cell i of the new window shows old cell i + shift: new cells past the right edge,
    SOLID before the left edge.

    A barrel shifter (one static slice and select per bit of the offset) instead of a
    gather: XLA fuses the gather with the obstacle rule feeding it and recomputes that
    rule once per cell, which made the scroll 20x slower.
    """
    width = ground.shape[0]
    lead = width // 2  # most cells a negative shift can prepend (anchor >= 0)
    strip = jnp.concatenate([jnp.full((lead,), SOLID, ground.dtype), ground, appended.astype(ground.dtype)])
    offset = shift + lead  # in [0, strip length - width]
    span = strip.shape[0] - width
    bit = 1
    while bit <= span:
        keep = strip.shape[0] - bit
        strip = jnp.where((offset & bit) != 0, strip[bit : bit + keep], strip[:keep])
        bit *= 2
    return strip[:width]


def scroll(state: EnvState, noise: Noise, params: EnvParams) -> EnvState:
    """Step 3: raise the obstacle rate, move the window to the anchor, shift the players."""
    width = params.world_width
    rate = jnp.minimum(
        jnp.asarray(params.obstacle_rate_max, jnp.float32),
        state.obstacle_rate + jnp.asarray(params.obstacle_rate_step, jnp.float32),
    )
    state = state.replace(obstacle_rate=rate)
    shift = scroll_anchor(state.position, params) - width // 2
    appended, pending_rough, pending_solid = new_right_cells(state, shift, noise, params)
    return state.replace(
        ground=shift_window(state.ground, appended, shift),
        position=jnp.clip(state.position - shift, 0, width - 1).astype(jnp.int32),
        pending_rough=pending_rough.astype(jnp.int32),
        pending_solid=pending_solid,
    )


def transition(state: EnvState, action, noise: Noise, params: EnvParams) -> EnvState:
    """One turn of `state.current_player` (spec §2): action, flies, scroll (unless jump), time."""
    action = jnp.asarray(action, jnp.int32)
    state = apply_action(state, action, noise, params)
    state = state.replace(flies=move_flies(state.flies, noise, params))
    scrolled = scroll(state, noise, params)
    state = jax.tree_util.tree_map(
        lambda moved, still: jnp.where(action == JUMP, still, moved), scrolled, state
    )
    return state.replace(turn=state.turn + 1, current_player=1 - state.current_player)
