"""Self/other pairs of RL views: one scene with the distress moved from self to partner.

The CMNI (spec §7) contrasts two kinds of rows against the calm ones: the observer in
distress with its partner idle, and the partner in distress with the observer idle. A
*self/other pair* is one view of each kind that differ in nothing else the rules let
stay the same. `distress_mirror(view)` makes the other view of a pair from either one.

What a pair changes, with o the observer's cell and p the partner's (`seat` view):

    ground o, ground p      swapped (one is rough, one is solid: distress is standing on
                            rough ground, spec §4)
    players line o          9 (distress) <-> the observer's idle code (4 Frog, 5 Toad)
    players line p          the partner's idle code <-> 9

Everything else stays: both positions, the observer's energy, seat and score, the flies,
and the rest of the ground. What cannot stay equal, and is not claimed to: the ground
under the two players is what distress *is*, so it moves with it; the swapped cells can
make an obstacle layout the generator never draws (a rough run wider than 4 cells, or
one without its closing solid cell, spec §2); and the partner's energy, which sets a
stall, is not in a view at all, so "at energy 0" cannot be mirrored, only distress.

A view is *pairable* when it is one of the two kinds: exactly one player in distress,
the other shown with its idle code (the CMNI's groups 1 and 2: a partner shown with an
action code 6, 7 or 8 is in neither), the two on different cells, and the seat shown,
so that the view itself says which marker is the observer (a veiled view, or one in the
paper's input without seat and position, is not: under the veil the network cannot
know). Any other view is its own mirror, so `distress_mirror` is an involution on every
view, and a pair is made from the view alone.
"""

import jax
import jax.numpy as jnp

from mirror.env.constants import DISTRESS, FROG_IDLE, ROUGH, SOLID, TOAD_IDLE, layout_of


def distress_mirror(views: jax.Array) -> tuple[jax.Array, jax.Array]:
    """RL views int8[..., 3W+4] (`rl.view: seat`) -> (their mirrors int8[..., 3W+4],
    pairable bool[...]): the mirror of a pairable view moves the distress between the
    observer and its partner (module docstring); any other view is returned unchanged."""
    layout = layout_of(views)
    flat = views.reshape((-1, layout.size))
    mirrored, pairable = jax.vmap(_mirror_one)(flat)
    return mirrored.reshape(views.shape), pairable.reshape(views.shape[:-1])


def _mirror_one(view: jax.Array):
    layout = layout_of(view)
    width = layout.width
    ground, players = view[layout.ground], view[layout.players]
    seat = view[layout.own_code].astype(jnp.int32)
    own = jnp.clip(view[layout.position].astype(jnp.int32), 0, width - 1)
    own_idle, partner_idle = seat, FROG_IDLE + TOAD_IDLE - seat
    others = (players != 0) & (jnp.arange(width) != own)
    partner = jnp.argmax(others)
    code_own, code_partner = players[own].astype(jnp.int32), players[partner].astype(jnp.int32)
    ground_own, ground_partner = ground[own].astype(jnp.int32), ground[partner].astype(jnp.int32)
    self_distressed = (code_own == DISTRESS) & (ground_own == ROUGH) & (code_partner == partner_idle) & (ground_partner == SOLID)
    other_distressed = (code_own == own_idle) & (ground_own == SOLID) & (code_partner == DISTRESS) & (ground_partner == ROUGH)
    pairable = ((seat == FROG_IDLE) | (seat == TOAD_IDLE)) & jnp.any(others) & (self_distressed | other_distressed)
    new_own = jnp.where(self_distressed, own_idle, DISTRESS).astype(view.dtype)
    new_partner = jnp.where(self_distressed, DISTRESS, partner_idle).astype(view.dtype)
    swapped = (
        view.at[layout.ground.start + own].set(ground[partner])
        .at[layout.ground.start + partner].set(ground[own])
        .at[layout.players.start + own].set(new_own)
        .at[layout.players.start + partner].set(new_partner)
    )  # fmt: skip
    return jnp.where(pairable, swapped, view), pairable
