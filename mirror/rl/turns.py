"""The one turn function: training, evaluation and the on-policy probe all play the game
with `play_turn`, on the env's bit-packed states (`mirror.env.rollout.step_games`, the
dataset rollout's hot path).

Who decides is a `Decide` callable, so agents and scripted policies go through the same
turn:

    decide(states: PackedState [games], obs int8[games, 3W+4], gumbel_u f32[games, 4],
           env_params) -> Decision(action int32[games], log_prob f32[games], value f32[games])

`obs` is the acting player's own view (spec §4); `gumbel_u` are the turn's uniforms for
an action draw. `agent(policy, params)` samples from the network's logits with them
(argmax of logits + Gumbel noise, exactly a draw from softmax(logits)); `scripted_policy(act)`
batches a pure per-game function of the true state, `act(EnvState, EnvParams) -> action`
(`mirror.rl.scripted`); `per_player(frog, toad)` lets Frog and Toad play different
policies ("player 0 plays X, player 1 plays Y" in one line).

One RNG call per turn draws all of its randomness as a `[games, turn_columns]` block of
uniforms, so the env noise never depends on who decides (common random numbers: the same
key gives every policy the same games):

    [0, n)        the env noise record (n = `noise_size`)
    [n, n + 4)    Gumbel uniforms of the action draw
    n + 4         the veil of the acting player's view
    n + 5, n + 6  the veils of Frog's and Toad's pre-reset views (used on done turns)

Only the acting player's view is built for the decision. Both players' values of their
pre-reset views (`Transition.terminal_value`) are needed where an episode ended: games are
staggered, so episodes end on any turn. `play_turn` with a `values` function computes them
on every turn and keeps them where one ended; `rollout` keeps each game's pre-reset states
and values them once after its turns (the same numbers, without a forward pass per turn). `tests/rl_reference.py` replays the same uniforms through the
public unpacked env and `tests/test_rl_speed_paths.py` compares every field.

**Staggered starts.** `start_games` spreads the games evenly over the episode: game g
first plays `stagger_offsets(...)[g]` turns (even, so Frog still moves first, and every
game's turn parity is the same) with the given `decide`, alone, and only then does the
caller's play begin (`mirror.env.rollout.burn_in`, the dataset pipeline's burn-in). A
batch of turns then holds every phase of the episode equally, to within one game.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from mirror.env import EnvParams, observe_given_veil
from mirror.env.noise import noise_size
from mirror.env.packed import PackedState, bit_at, unpack
from mirror.env.rollout import burn_in, phase_offsets, step_games
from mirror.env.rollout import start_games as fresh_games
from mirror.env.seat import seat_view
from mirror.rl.central import central_features
from mirror.rl.credit import Lookahead, Transition

__all__ = [
    "Decide", "Decision", "Policy", "agent", "agent_values", "both_central", "both_values", "reads_central", "both_views",
    "episode_ends_bound", "fresh_games", "per_player",
    "play_turn", "rollout", "sample_action", "scripted_policy", "stagger_offsets", "start_games", "turn_columns",
    "turn_uniforms", "view_of",
]  # fmt: skip

# policy(params, obs int8[B, 3W+4], player int32[B], central int8[B, CENTRAL_SIZE] | None)
#   -> (logits f32[B, 4], value f32[B]); only a central critic reads `central` (`mirror.rl.central`)
Policy = Callable[..., tuple[jax.Array, jax.Array]]
EXTRA_COLUMNS = 7  # 4 Gumbel uniforms, the acting view's veil, both pre-reset views' veils


class Decision(NamedTuple):
    """The acting players' choices, leaves [games]."""

    action: jax.Array  # int32
    log_prob: jax.Array  # f32: of the action under the acting policy (0 for a scripted one)
    value: jax.Array  # f32: the acting policy's V(obs) (0 for a scripted one)
    central: jax.Array | None = None  # int8[games, CENTRAL_SIZE]: what a central critic read (else None)


# decide(states, obs int8[games, 3W+4], gumbel_u f32[games, 4], env_params) -> Decision
Decide = Callable[[PackedState, jax.Array, jax.Array, EnvParams], Decision]
# values(views int8[games, 2, 3W+4], states PackedState [games], env_params) -> f32[games, 2]:
# each player's value of its own view (and, for a central critic, of the states)
Values = Callable[[jax.Array, PackedState, EnvParams], jax.Array]


def reads_central(policy: Policy) -> bool:
    """Whether `policy`'s value reads the central features (`rl.critic: central`): only then
    are they computed, so every other learner's program is what it was before them."""
    return bool(getattr(policy, "reads_central", False))


def turn_columns(env_params: EnvParams) -> int:
    """Uniforms drawn per game per turn."""
    return noise_size(env_params) + EXTRA_COLUMNS


def turn_uniforms(key: jax.Array, num_envs: int, env_params: EnvParams) -> jax.Array:
    """f32[games, turn_columns]: everything random in one turn of every game."""
    return jax.random.uniform(key, (num_envs, turn_columns(env_params)), jnp.float32)


def view_of(states: PackedState, player: jax.Array, env_params: EnvParams, veil_u: jax.Array) -> jax.Array:
    """int8[games, 3W+4]: each game's `player` RL view (spec §4 with the seat shown,
    `mirror.env.seat.seat_view`), veiled where veil_u < I (the veil hides the seat too)."""

    def one(state, p, u):
        veiled = u < env_params.veil
        return seat_view(observe_given_veil(unpack(state, env_params.world_width), p, env_params, veiled), p, veiled)

    return jax.vmap(one)(states, player, veil_u)


def both_views(states: PackedState, env_params: EnvParams, veil_u: jax.Array) -> jax.Array:
    """int8[games, 2, 3W+4]: Frog's and Toad's views; veil_u f32[games, 2]."""
    num_envs = veil_u.shape[0]
    views = [view_of(states, jnp.full((num_envs,), p, jnp.int32), env_params, veil_u[:, p]) for p in (0, 1)]
    return jnp.stack(views, axis=1)


def both_central(states: PackedState, env_params: EnvParams) -> jax.Array:
    """int8[games, 2, CENTRAL_SIZE]: the central critic's features from Frog's and Toad's side."""
    games = states.turn.shape[0]
    return jnp.stack([central_features(states, jnp.full((games,), p, jnp.int32), env_params) for p in (0, 1)], axis=1)


def both_values(policy: Policy, params, obs_both: jax.Array, central_both: jax.Array | None = None) -> jax.Array:
    """f32[B, 2]: each player's value of its own view (obs_both int8[B, 2, 3W+4]; the
    central features central_both int8[B, 2, CENTRAL_SIZE] where the critic reads them)."""
    batch = obs_both.shape[0]
    values = [
        policy(params, obs_both[:, p], jnp.full((batch,), p, jnp.int32), None if central_both is None else central_both[:, p])[1]
        for p in (0, 1)
    ]
    return jnp.stack(values, axis=-1)


def sample_action(logits: jax.Array, gumbel_u: jax.Array) -> jax.Array:
    """int32[games]: argmax(logits + Gumbel), a draw from softmax(logits)."""
    tiny = jnp.finfo(jnp.float32).tiny
    gumbel = -jnp.log(-jnp.log(jnp.clip(gumbel_u, tiny, 1.0)))
    return jnp.argmax(logits + gumbel, axis=-1).astype(jnp.int32)


# --- who decides ----------------------------------------------------------------------


def agent(policy: Policy, params, greedy: bool = False) -> Decide:
    """A network: samples from its logits with the turn's Gumbel uniforms (the most
    probable action when `greedy`)."""

    central_needed = reads_central(policy)

    def decide(states, obs, gumbel_u, env_params):
        central = central_features(states, states.current_player, env_params) if central_needed else None
        logits, value = policy(params, obs, states.current_player, central)
        action = jnp.argmax(logits, axis=-1).astype(jnp.int32) if greedy else sample_action(logits, gumbel_u)
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=-1)[:, 0]
        return Decision(action, log_prob, value, central)

    return decide


def agent_values(policy: Policy, params) -> Values:
    """Both players' values of their own views: what truncation bootstraps from."""
    central_needed = reads_central(policy)

    def values(views, states, env_params):
        return both_values(policy, params, views, both_central(states, env_params) if central_needed else None)

    return values


def scripted_policy(act: Callable) -> Decide:
    """A pure per-game function of the true state, `act(EnvState, EnvParams) -> int32`
    (the acting player is `state.current_player`), batched over the games."""

    def decide(states, obs, gumbel_u, env_params):
        action = jax.vmap(lambda s: act(unpack(s, env_params.world_width), env_params))(states).astype(jnp.int32)
        zeros = jnp.zeros(action.shape, jnp.float32)
        return Decision(action, zeros, zeros)

    return decide


def per_player(frog: Decide, toad: Decide) -> Decide:
    """Frog (player 0) decides by `frog`, Toad by `toad`."""

    def decide(states, obs, gumbel_u, env_params):
        a, b = frog(states, obs, gumbel_u, env_params), toad(states, obs, gumbel_u, env_params)
        pick = states.current_player == 0
        return jax.tree_util.tree_map(lambda x, y: jnp.where(pick, x, y), a, b)

    return decide


# --- the turn ---------------------------------------------------------------------------


def play_turn(decide: Decide, env_params: EnvParams, states: PackedState, u: jax.Array, values: Values | None = None):
    """One decision in every game from the uniforms `u` f32[games, turn_columns].
    Returns (states after the turn, its `Transition`). Without `values`, terminal values
    are 0 (nothing bootstraps from them: evaluation, probes, burn-in)."""
    next_states, transition, ended = _turn(decide, env_params, states, u)
    if values is not None:  # every turn (games end on any turn), kept where an episode ended
        n = noise_size(env_params)
        terminal = values(both_views(ended, env_params, u[:, n + 5 : n + 7]), ended, env_params)
        transition = transition._replace(terminal_value=terminal * transition.done[:, None])
    return next_states, transition


def _turn(decide: Decide, env_params: EnvParams, states: PackedState, u: jax.Array):
    """(states after the turn, its Transition with terminal values 0, the pre-reset states)."""
    n = noise_size(env_params)
    player = states.current_player
    obs = view_of(states, player, env_params, u[:, n + 4])
    decision = decide(states, obs, u[:, n : n + 4], env_params)
    partner_position = jnp.where(player == 0, states.position[:, 1], states.position[:, 0])
    partner_d = jax.vmap(bit_at)(states.rough, partner_position)
    next_states, done, gains, ended = step_games(states, decision.action, u[:, :n], env_params)
    transition = Transition(
        obs=obs,
        player=player,
        action=decision.action,
        log_prob=decision.log_prob,
        value=decision.value,
        gains=gains.astype(jnp.float32),
        done=done,
        terminal_value=jnp.zeros((done.shape[0], 2), jnp.float32),
        partner_distressed=partner_d,
        episode_score=jnp.where(done[:, None], ended.score, 0),
        central=decision.central,
    )
    return next_states, transition, ended


def episode_ends_bound(num_steps: int, env_params: EnvParams, min_episode_turns: int | None = None) -> int:
    """The most episodes one game can end in `num_steps` turns: ceil(num_steps / E) for
    E = `env_params.episode_turns` where it is a number, else `min_episode_turns` (a lower
    bound on the traced episode lengths of a population), else every turn."""
    turns = min_episode_turns
    if turns is None and not isinstance(env_params.episode_turns, jax.core.Tracer):
        turns = int(env_params.episode_turns)
    if turns is None:
        return num_steps
    return min(num_steps, -(-num_steps // max(int(turns), 1)))


def rollout(
    decide: Decide, values: Values, env_params: EnvParams, states: PackedState, key: jax.Array, num_steps: int,
    min_episode_turns: int | None = None,
):  # fmt: skip
    """`num_steps` turns of every game, plus the look-ahead turn that closes each player's
    last decision (`mirror.rl.credit`). Returns (states after num_steps turns,
    Transition [T, games], Lookahead).

    The terminal values are computed once per episode end, not on every turn: each game
    keeps the pre-reset states of the episodes it ends (at most `episode_ends_bound`: one
    when num_steps <= episode_turns) in slots, valued after the turns are played. The
    values are those of `play_turn` with `values`, bit for bit (the same function on the
    same [games] shapes); on a CPU they cost a rollout half its time when taken per turn."""
    num_envs = states.turn.shape[0]
    scan_key, look_key, after_key = jax.random.split(key, 3)
    slots = episode_ends_bound(num_steps, env_params, min_episode_turns)
    n = noise_size(env_params)

    def turn(carry, k):
        states, ended_slots, veils, ends = carry
        u = turn_uniforms(k, num_envs, env_params)
        states, transition, ended = _turn(decide, env_params, states, u)
        hit = transition.done[None, :] & (ends[None, :] == jnp.arange(slots)[:, None])  # [slots, games]
        ended_slots = jax.tree.map(lambda e, old: _where_games(hit, e[None], old), ended, ended_slots)
        veils = jnp.where(hit[..., None], u[None, :, n + 5 : n + 7], veils)
        slot = jnp.where(transition.done, ends, -1)
        return (states, ended_slots, veils, ends + transition.done.astype(jnp.int32)), (transition, slot)

    empty = jax.tree.map(lambda x: jnp.broadcast_to(x, (slots,) + x.shape), states)
    start = (states, empty, jnp.zeros((slots, num_envs, 2), jnp.float32), jnp.zeros((num_envs,), jnp.int32))
    (states, ended_slots, veils, _), (transitions, slot) = jax.lax.scan(turn, start, jax.random.split(scan_key, num_steps))
    # A loop over the slots, as the per-turn values were a loop body: the same program for
    # the same [games] shapes, whatever surrounds the rollout (a scan of updates or not).
    slot_values = jax.lax.map(lambda ev: values(both_views(ev[0], env_params, ev[1]), ev[0], env_params), (ended_slots, veils))
    terminal = slot_values[jnp.maximum(slot, 0), jnp.arange(num_envs)[None, :]]  # [T, games, 2]
    transitions = transitions._replace(terminal_value=jnp.where(transitions.done[..., None], terminal, 0.0))
    after, look = play_turn(decide, env_params, states, turn_uniforms(look_key, num_envs, env_params), values)
    after_views = both_views(after, env_params, jax.random.uniform(after_key, (num_envs, 2), jnp.float32))
    return states, transitions, Lookahead(look, values(after_views, after, env_params))


def _where_games(pick: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
    """`new` where pick[..., games], else `old` (leaves [..., games, ...])."""
    return jnp.where(pick.reshape(pick.shape + (1,) * (old.ndim - pick.ndim)), new, old)


# --- staggered starts -------------------------------------------------------------------


def stagger_offsets(num_games: int, env_params: EnvParams) -> jax.Array:
    """int32[games]: game g's starting turn, 2 * (g * R // games) with R = episode_turns // 2
    rounds: even (Frog moves first) and spread evenly over [0, episode_turns)."""
    return 2 * phase_offsets(num_games, env_params.episode_turns // 2)


def start_games(key: jax.Array, env_params: EnvParams, num_games: int, decide: Decide) -> PackedState:
    """`num_games` fresh games, game g then played by `decide` for its stagger offset
    (`stagger_offsets`) while the others wait: real states of their episode's phase."""
    start_key, burn_key = jax.random.split(key)
    states = fresh_games(start_key, env_params, num_games)

    def play(states, k):
        return play_turn(decide, env_params, states, turn_uniforms(k, num_games, env_params))[0]

    offsets = stagger_offsets(num_games, env_params)
    return burn_in(play, states, offsets, lambda i: jax.random.fold_in(burn_key, i))
