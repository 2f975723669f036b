"""Scripted policies (spec §9 "Scripted baselines"): pure functions of one game's true state.

Each is `act(state: EnvState, params: EnvParams) -> int32`, the action of the player whose
turn it is (`state.current_player`), from that player's own side; `mirror.rl.turns.scripted_policy`
batches one over the games of a turn, so scripted policies and agents are played by the
same turn function, in the same fixed-key games.

    hop_jump                hop if own energy > 0, else jump
    oracle                  the §5.4 label rules on the player's own true state
    always_jump             jump, whatever the state (a frozen partner)
    helper(base, K, M)      as `base`, but help when the partner's energy <= K, the
                            player's own energy >= M and the partner can be reached
                            (partner position + leap_distance < W)
    seats(frog, toad)       Frog plays `frog`, Toad plays `toad`
    lone_helper(base, K, M, seat)  the player in `seat` plays helper(base, K, M), the other base
    frozen_partner(base, seat)     the player in `seat` plays base, its partner always jumps

`by_code` picks policies by integer code (`CODES`), so many seatings can be evaluated as one
vmapped program.
"""

import jax
import jax.numpy as jnp

from mirror.data.labels import oracle_label
from mirror.env import HELP, HOP, JUMP, EnvParams, EnvState, distressed, observe_given_veil

# The scripted policies `by_code` knows, in code order.
CODES = ("hop_jump", "oracle", "always_jump", "helper_hop_jump", "helper_oracle")


def _players(state: EnvState):
    player = state.current_player
    return player, 1 - player


def hop_jump(state: EnvState, params: EnvParams) -> jax.Array:
    """Hop while the player has energy, else jump (the only move at energy 0 that can gain)."""
    player, _ = _players(state)
    return jnp.where(state.energy[player] > 0, HOP, JUMP).astype(jnp.int32)


def oracle(state: EnvState, params: EnvParams) -> jax.Array:
    """Spec §9 "Oracle policy": the §5.4 label rules applied to the acting player's true
    state from its own side (real energy, its own position and distress in Frog's place,
    the partner's distress in Toad's)."""
    player, partner = _players(state)
    own = observe_given_veil(state, player, params, False)  # the veil hides no rule input
    return oracle_label(own, distressed(state)[partner], params.world_width).astype(jnp.int32)


def always_jump(state: EnvState, params: EnvParams) -> jax.Array:
    return jnp.int32(JUMP)


def helps(state: EnvState, params: EnvParams, max_partner_energy, min_own_energy) -> jax.Array:
    """bool: the helper rule fires: partner energy <= K, own energy >= M, partner reachable."""
    player, partner = _players(state)
    reachable = state.position[partner] + params.leap_distance < params.world_width
    return (state.energy[partner] <= max_partner_energy) & (state.energy[player] >= min_own_energy) & reachable


def helper(base, max_partner_energy, min_own_energy):
    """helper(base, K, M): act as `base`, except help when `helps` (K, M may be traced)."""

    def act(state: EnvState, params: EnvParams) -> jax.Array:
        rule = helps(state, params, max_partner_energy, min_own_energy)
        return jnp.where(rule, HELP, base(state, params)).astype(jnp.int32)

    return act


def seats(frog, toad):
    """Frog (player 0) acts by `frog`, Toad by `toad`."""

    def act(state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.where(state.current_player == 0, frog(state, params), toad(state, params)).astype(jnp.int32)

    return act


def lone_helper(base, max_partner_energy, min_own_energy, seat: int = 0):
    """The player in `seat` (0 Frog, 1 Toad) helps as helper(base, K, M); the other plays base."""
    helping = helper(base, max_partner_energy, min_own_energy)
    return seats(helping, base) if seat == 0 else seats(base, helping)


def frozen_partner(base, seat: int = 0):
    """The player in `seat` plays `base`; its partner always jumps (never moves, never helps)."""
    return seats(base, always_jump) if seat == 0 else seats(always_jump, base)


def by_code(frog_code, toad_code, max_partner_energy, min_own_energy):
    """seats of two `CODES` policies; the codes (int32) may be traced."""
    table = (
        hop_jump,
        oracle,
        always_jump,
        helper(hop_jump, max_partner_energy, min_own_energy),
        helper(oracle, max_partner_energy, min_own_energy),
    )

    def act(state: EnvState, params: EnvParams) -> jax.Array:
        code = jnp.where(state.current_player == 0, frog_code, toad_code)
        return jax.lax.switch(code, [lambda s, f=f: f(s, params) for f in table], state)

    return act
