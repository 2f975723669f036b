"""Frog and Toad: a two-player, turn-based cooperative game (gymnax/JaxMARL-style API).

The rulebook
------------
Numbers in brackets are `EnvParams` fields with their defaults; section marks (§1-§6)
are those of `docs/game.md`, which tells the same rules at length with a worked example.

**The world (§1).** A strip of W cells [`world_width` 32] seen through a window that
follows the players. Three layers share the window's cell coordinates 0..W-1:

- ground: every cell is SOLID (code 1) or ROUGH (code 2). A game starts all solid;
  rough cells enter from the right, as obstacles, when the window scrolls;
- players: Frog (player 0) and Toad (player 1), each standing on one cell; they may
  share one. Frog starts on cell W//2 - 1, Toad on W//2;
- flies: each cell holds a fly or not (code 3). Flies belong to the window, not to
  the ground: a scroll slides the ground under them and leaves them where they are.
  At the start each cell gets a fly with the spawn chance [`fly_spawn_prob` 0.01].

Each player also has an energy in 0..max [`max_energy` 20; both start full], a score
(the number of hops it made; starts at 0, never decreases) and the last action it
showed its partner. A player standing on rough ground is *in distress*.

**Turns (§2).** Frog and Toad take turns: Frog, Toad, Frog, ... (`current_player`).
One `step` is one turn: an action of the player whose turn it is (called p below; q
is its partner), then the world's reply. The four actions:

- hop (0): one cell to the right and one point of score. It needs energy > 0 (it
  costs none) and a cell to land on (position + 1 < W); otherwise nothing happens.
- jump (1): a jump on the spot, to catch a fly. Always allowed, even at energy 0. A
  fly on p's cell is eaten: p gains energy [`fly_energy` 4], capped at the maximum.
  Eating is the only way to regain energy without help.
- leap (2): [`leap_distance` 5] cells to the right for [`leap_cost` 1] energy; needs
  energy > 0 and position + 5 < W, else nothing happens. A leap scores nothing.
- help (3): needs energy > 0, else nothing happens. If q is far enough from the right
  edge to leap (q's position + 5 < W) two things can happen, independently: if q is
  below full energy, q gains [`help_gift` 2] (capped) and p pays [`help_cost` 1];
  and with probability [`help_leap_prob` 0.25] q is pushed into a leap, under the
  leap rule, paid from q's energy after the gift.
- landing: a player that lands on rough ground after a hop, a leap or a pushed
  leap is hurt: [`rough_cost` 1] energy. No cost ever takes energy below 0.

Then the world moves, in this order:

1. flies: every cell may get a new fly (spawn chance as above), then every fly
   moves one cell left, stays, or moves one cell right, each with chance 1/3; a fly
   never leaves the window (it stays on the edge cell); flies that meet merge.
2. scroll, after every hop, leap or help, whether or not it did anything (never
   after a jump). The obstacle rate rises by [`obstacle_rate_step` 0.005] up to
   [`obstacle_rate_max` 0.075]. The window re-centres on the anchor cell

       anchor = floor(D * (x0 + x1) / 2 + (1 - D) * max(x0, x1))

   (x0, x1 the players' positions, D the dependency below): shift = anchor - W//2.
   A positive shift drops `shift` cells on the left and appends as many new cells on
   the right; a negative shift drops cells on the right and prepends SOLID cells on
   the left. Both players move by -shift in window coordinates, clamped to 0..W-1.
3. obstacles: each appended cell comes from a small generator. While an obstacle is
   under way it emits its remaining ROUGH cells, then one SOLID cell that closes it.
   Otherwise the new cell starts an obstacle with probability equal to the obstacle
   rate, of width w drawn uniformly from 1..[`obstacle_max_width` 4]: the cell is
   ROUGH, w - 1 rough cells and the closing solid cell follow. Otherwise it is SOLID.
4. the clock: one more turn. After [`episode_turns` 200] turns (100 decisions each)
   the episode is truncated. Nothing ends an episode earlier.

**Dependency D (§6)** [`dependency` 1.0]. At D = 1 the window follows the players'
mean position, so a player whose partner stalls drifts towards the right edge, where
it can no longer hop or leap until the partner moves or is helped along: each player
needs the other. At D = 0 the window follows the leader and drags the laggard along
(its position clamps at cell 0): nobody needs anybody. Values between mix the two.

**Veil of ignorance I (§6)** [`veil` 0.0]. With probability I an observation shows
Toad's idle code as Frog's (both 4), so an idle player cannot tell from the codes
alone who is who. Each observation draws its own veil. Distress (9) shows no
identity anyway. The veil changes what players see, never the game.

**Observation (§4).** `int8[3W + 4]` per player (100 values at W = 32), from the
observing player's side:

- `[0, W)`      ground: 1 solid, 2 rough;
- `[W, 2W)`     players line: 0 on empty cells, each player's code on its cell (on a
                shared cell, the partner's code);
- `[2W, 3W)`    flies: 3 where a fly is, 0 elsewhere;
- `3W`          the observer's own code: 4 (Frog) or 5 (Toad; 4 when veiled), 9 in
                distress;
- `3W + 1`      the observer's energy;
- `3W + 2`      the observer's score (saturates at 127; the state keeps counting);
- `3W + 3`      the observer's position.

Player codes: 4 Frog idle, 5 Toad idle, 6 jumping, 7 leaping, 8 helping, 9 distress.
Distress wins over everything. Otherwise the observer always sees itself idle, and
sees its partner with the partner's own last action: 6 after any jump, 7 after a
leap that moved it, 8 after a help made with energy > 0 (even one that reached no
one), idle after a hop or an action that did nothing. A pushed leap is not the
pushed player's own action: it leaves that player's shown code as it was.

**Randomness (§3).** Everything random in a turn (fly spawns and moves, the obstacle
draws for every appended cell, the pushed-leap draw) is drawn first as one noise
record (`noise.py`), so `dynamics.transition(state, action, noise, params)` is
deterministic; `reference.py` plays the same records in plain Python, and the tests
compare the two turn by turn.

The API
-------
`reset(key, params) -> (obs[2, 3W+4], state)` and
`step(key, state, action, params) -> (obs[2, 3W+4], state, rewards[2], done, info)`.
One step applies one action of `state.current_player`. Rewards are each player's score
gain. At truncation (`turn >= episode_turns`) the game resets itself; `info` keeps the
pre-reset observation (`terminal_obs`) and the finished episode's scores
(`episode_score`).
"""

import jax
import jax.numpy as jnp

from mirror.env.constants import SOLID
from mirror.env.dynamics import transition
from mirror.env.noise import sample_noise
from mirror.env.observation import observe_both
from mirror.env.params import EnvParams
from mirror.env.state import EnvState


def initial_state(key: jax.Array, params: EnvParams) -> EnvState:
    """Start of an episode (spec §1): flies placed once by the spawn rule."""
    width = params.world_width
    fly_spawn_u = jax.random.uniform(key, (width,), jnp.float32)
    return EnvState(
        ground=jnp.full((width,), SOLID, jnp.int8),
        flies=fly_spawn_u < params.fly_spawn_prob,
        position=jnp.array([width // 2 - 1, width // 2], jnp.int32),
        energy=jnp.full((2,), params.max_energy, jnp.int32),
        score=jnp.zeros((2,), jnp.int32),
        action_code=jnp.zeros((2,), jnp.int8),
        pending_rough=jnp.zeros((), jnp.int32),
        pending_solid=jnp.zeros((), jnp.bool_),
        obstacle_rate=jnp.zeros((), jnp.float32),
        turn=jnp.zeros((), jnp.int32),
        current_player=jnp.zeros((), jnp.int32),
    )


def reset(key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
    """A new episode of one game: (obs int8[2, 3W+4] (Frog's view, Toad's view), state
    (`EnvState`: ground int8[W], position int32[2], ...)). `jax.vmap` over keys for many."""
    state_key, obs_key = jax.random.split(key)
    state = initial_state(state_key, params)
    return observe_both(state, params, obs_key), state


def step(key: jax.Array, state: EnvState, action, params: EnvParams):
    """One turn of one game (the current player's `action`, an int32 scalar 0-3: hop, jump,
    leap, help) with auto-reset at truncation. Returns (obs int8[2, 3W+4], state,
    rewards int32[2] (each player's score gained), done bool[], info {terminal_obs
    int8[2, 3W+4], episode_score int32[2]}). `jax.vmap` over games for a batch."""
    noise_key, obs_key, reset_key = jax.random.split(key, 3)
    next_state = transition(state, action, sample_noise(noise_key, params), params)
    rewards = next_state.score - state.score
    done = next_state.turn >= params.episode_turns
    obs = observe_both(next_state, params, obs_key)
    reset_obs, reset_state = reset(reset_key, params)
    info = {"terminal_obs": obs, "episode_score": next_state.score}
    new_state = jax.tree_util.tree_map(lambda r, s: jnp.where(done, r, s), reset_state, next_state)
    return jnp.where(done, reset_obs, obs), new_state, rewards, done, info
