"""What a learner knows of its own seat (spec §9 "Seat", veil §6): the RL view and input.

The paper's model input (§5.6) zeroes the observer's own code and position. A network
that plays both seats (parameter sharing) then cannot tell its own marker from an idle
partner's: with both players idle, Frog at cell 31 and Toad at cell 2, Frog's input and
Toad's input are the same. The RL view tells the observer who and where it is, unless
the veil hides it:

    index 3W    (96)  the seat: the observer's idle code, 4 Frog or 5 Toad (even when it
                      stands in distress: who it is, not how it is); 0 when veiled
    index 3W+3  (99)  the observer's own position; 0 when veiled
    every other index as in the observation (spec §4)

So under the veil the RL input is exactly the §5.6 model input (`model_inputs`), and at
I = 0 a shared network can locate itself. `view` names what a network is fed:

    "seat"   the RL view above, score zeroed (`rl.view: seat`, the default)
    "paper"  the §5.6 model input: own code, score and position zeroed (the runs before
             `rl.view` existed; bit-identical to them)

The supervised pipeline keeps the paper's input; `frog_rows_view` shows its (Frog's) rows
as the RL view, for probe set (a) of an RL run.
"""

import jax
import jax.numpy as jnp

from mirror.env.constants import FROG_IDLE, TOAD_IDLE, layout_of

VIEWS = ("seat", "paper")
HIDDEN = 0  # what the seat and position show under the veil


def seat_code(player) -> jax.Array:
    """int8: the seat a player is shown (4 Frog, 5 Toad)."""
    return jnp.where(jnp.asarray(player) == 0, FROG_IDLE, TOAD_IDLE).astype(jnp.int8)


def seat_view(obs: jax.Array, player, veiled) -> jax.Array:
    """obs int8[..., 3W+4] (spec §4, `player`'s own observation) -> the RL view int8[..., 3W+4]:
    the seat at 3W and the position kept at 3W+3, both 0 where `veiled` (bool[...])."""
    layout = layout_of(obs)
    veiled = jnp.asarray(veiled)
    seat = jnp.where(veiled, HIDDEN, seat_code(player)).astype(jnp.int8)
    position = jnp.where(veiled, HIDDEN, obs[..., layout.position]).astype(jnp.int8)
    return obs.at[..., layout.own_code].set(seat).at[..., layout.position].set(position)


def input_mask(size: int, view: str) -> jax.Array:
    """f32[size]: 1 where the network reads a code of a view of `size` codes, 0 where it is zeroed."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    layout = layout_of(size)
    hidden = [layout.score] if view == "seat" else [layout.own_code, layout.score, layout.position]
    return jnp.ones((size,), jnp.float32).at[jnp.asarray(hidden)].set(0.0)


def policy_input(view_obs: jax.Array, view: str = "seat") -> jax.Array:
    """RL views int8[..., 3W+4] -> the network input f32[..., 3W+4] (a multiply by a
    constant mask: a scatter is slow on a CPU in the hot loop). Idempotent."""
    return view_obs.astype(jnp.float32) * input_mask(view_obs.shape[-1], view)


def policy_rows(view_obs: jax.Array, view: str = "seat") -> jax.Array:
    """int8[..., 3W+4]: the network inputs as stored rows (probe sets, `mirror ablate`)."""
    return (view_obs * input_mask(view_obs.shape[-1], view).astype(jnp.int8)).astype(jnp.int8)


def veiled_frog_rows(inputs: jax.Array, frog_position: jax.Array, veil, key: jax.Array, view: str = "seat") -> jax.Array:
    """`frog_rows_view` with each row veiled where a uniform draw from `key` falls below
    `veil` (I: none at 0, all at 1): the dataset's rows as a network of that game reads them."""
    veiled = jax.random.uniform(key, (jnp.shape(inputs)[0],)) < veil
    return frog_rows_view(inputs, frog_position, veiled, view)


def frog_rows_view(inputs: jax.Array, frog_position: jax.Array, veiled, view: str = "seat") -> jax.Array:
    """The supervised dataset's rows (Frog's §5.6 model inputs, int8[rows, 3W+4]) as Frog's
    network input under `view`: with `seat`, Frog's seat (4) and position shown where not
    `veiled` (bool, broadcast over the rows); with `paper`, unchanged."""
    if view == "paper":
        return policy_rows(jnp.asarray(inputs), "paper")
    rows = jnp.asarray(inputs).astype(jnp.int8)
    layout = layout_of(rows)
    rows = rows.at[..., layout.position].set(jnp.asarray(frog_position).astype(jnp.int8))
    return policy_rows(seat_view(rows, 0, jnp.broadcast_to(jnp.asarray(veiled), rows.shape[:-1])), view)
