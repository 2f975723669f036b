"""Per-player credit in turn-based self-play (spec §9): what a decision earned.

A rollout is one time axis of turns `[T, games]` (`mirror.rl.turns.rollout`); each turn
is one decision of `current_player`, so the two players' decisions interleave on it and
each player's decisions form its own stream (every second turn, restarting at each new
episode).

Credit (spec §9): the reward of player p's decision at turn t is the sum, over turns
t .. (p's next decision - 1), of `gain_p + w * gain_q`; its value target bootstraps
from p's next decision, or, when the episode is truncated first, from the value of
p's view of the pre-reset state (`Transition.terminal_value`; truncation is not
termination, so the bootstrap is kept and only the advantage recursion stops).

`per_player_gae` computes this with one reverse `lax.scan` over turns, carrying for each
player the value and advantage of its next decision and the reward accumulated since:
  - at an episode end after turn t, both players' futures become their terminal values;
  - every turn's gains are added to both players' accumulators (the partner's gains go
    to the partner's previous decision, which the scan reaches next);
  - the acting player's decision takes its accumulated reward and resets its carry.

The rollout's last decision of each player needs the gains and the state that follow
the rollout. One extra look-ahead turn from the final state (sampled with the same
policy, not kept: the next rollout restarts from the final state) supplies them
(`Lookahead`), so the waiting player's last reward includes the partner's turn and
bootstraps from its own next decision state, as inside the rollout.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Transition(NamedTuple):
    """One turn of every game: leaves are [games, ...] (stacked [turns, games, ...] by a scan)."""

    obs: jax.Array  # int8[3W+4]: the acting player's own view
    player: jax.Array  # int32: who decided (0 Frog, 1 Toad)
    action: jax.Array  # int32
    log_prob: jax.Array  # f32: of the action under the acting policy
    value: jax.Array  # f32: V(obs)
    gains: jax.Array  # f32[2]: score gained this turn by Frog and by Toad
    done: jax.Array  # bool: the episode was truncated after this turn
    terminal_value: jax.Array  # f32[2]: each player's V of its pre-reset view (0 unless done)
    partner_distressed: jax.Array  # bool: the partner stood on rough ground at decision time
    episode_score: jax.Array  # int32[2]: final scores of the episode that ended (0 unless done)
    central: jax.Array | None = None  # int8[CENTRAL_SIZE]: the state a central critic reads (`mirror.rl.central`)


class Lookahead(NamedTuple):
    """The turn after a rollout (not trained on) and both players' values of the state after it."""

    turn: Transition
    next_values: jax.Array  # f32[games, 2]


class GaeCarry(NamedTuple):
    """Per game and player ([games, 2]): value and advantage of the player's next decision,
    and the reward gained since its last one."""

    next_value: jax.Array
    next_advantage: jax.Array
    pending_reward: jax.Array

    @staticmethod
    def start(next_values: jax.Array) -> "GaeCarry":
        zeros = jnp.zeros_like(next_values)
        return GaeCarry(next_values, zeros, zeros)


def mixed_gains(gains: jax.Array, partner_reward_weight) -> jax.Array:
    """gains[..., 2] -> [..., 2]: for each player, own gain + w * partner's gain."""
    return gains + partner_reward_weight * gains[..., ::-1]


def gae_step(carry: GaeCarry, t: Transition, gamma, gae_lambda, partner_reward_weight):
    """One turn of the reverse scan. Returns (carry, (advantage[games], reward[games]))."""
    ended = t.done[:, None]
    next_value = jnp.where(ended, t.terminal_value, carry.next_value)
    next_advantage = jnp.where(ended, 0.0, carry.next_advantage)
    pending = jnp.where(ended, 0.0, carry.pending_reward) + mixed_gains(t.gains, partner_reward_weight)
    acting = t.player[:, None] == jnp.arange(2)

    def mine(x):
        return jnp.sum(jnp.where(acting, x, 0.0), axis=-1)

    reward = mine(pending)
    delta = reward + gamma * mine(next_value) - t.value
    advantage = delta + gamma * gae_lambda * mine(next_advantage)
    carry = GaeCarry(
        next_value=jnp.where(acting, t.value[:, None], next_value),
        next_advantage=jnp.where(acting, advantage[:, None], next_advantage),
        pending_reward=jnp.where(acting, 0.0, pending),
    )
    return carry, (advantage, reward)


def tail_carry(lookahead: Lookahead, gamma, gae_lambda, partner_reward_weight) -> GaeCarry:
    """The carry after a rollout's last turn: the look-ahead turn folded into the values after
    it. Its own advantage is dropped (as at the end of any PPO rollout, GAE starts from zero)."""
    carry, _ = gae_step(GaeCarry.start(lookahead.next_values), lookahead.turn, gamma, gae_lambda, partner_reward_weight)
    return carry._replace(next_advantage=jnp.zeros_like(carry.next_advantage))


def per_player_gae(transitions: Transition, tail: GaeCarry, gamma, gae_lambda, partner_reward_weight):
    """Advantages, value targets and rewards per decision, each player on its own stream.

    transitions: leaves [T, games, ...]; tail: the carry after the last turn (`tail_carry`).
    Returns (advantages f32[T, games], targets f32[T, games], rewards f32[T, games]).
    """
    _, (advantages, rewards) = jax.lax.scan(
        lambda c, t: gae_step(c, t, gamma, gae_lambda, partner_reward_weight), tail, transitions, reverse=True
    )
    return advantages, advantages + transitions.value, rewards
