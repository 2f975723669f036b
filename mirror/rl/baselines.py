"""Policies to compare in the same games (spec §9) and the evaluation that scores them.

Every policy is `act(state, obs, key) -> actions int32[games]` on a batch of env states and
the acting players' own views. `evaluate` plays `num_turns` turns of `num_games` games
and reports, over complete episodes only, each player's own score gained (spec §9
"Return", whatever reward weight was trained on), the help rate and the help rate when
the partner stood on rough ground at decision time.
"""

import jax
import jax.numpy as jnp

from mirror.data.labels import oracle_label
from mirror.env import HELP, EnvParams, distressed, observe_given_veil
from mirror.env import step as env_step
from mirror.env.policy import BEHAVIOUR_PROBS, sample_actions
from mirror.rl.selfplay import Games, Policy, own_view, start_games


def behaviour_policy(probs=BEHAVIOUR_PROBS):
    """Spec §5.1: each player picks hop/jump/leap/help with fixed probabilities."""

    def act(state, obs, key):
        return sample_actions(key, obs.shape[:1], probs)

    return act


def oracle_action(state, params: EnvParams) -> jax.Array:
    """Spec §9 "Oracle policy" for one game: the §5.4 label rules applied to the acting
    player's true state from its own side (real energy, its own position and distress in
    Frog's place, the partner's distress in Toad's)."""
    player = state.current_player
    own = observe_given_veil(state, player, params, False)  # the veil hides no rule input
    partner_distress = distressed(state)[1 - player]
    return oracle_label(own, partner_distress, params.world_width).astype(jnp.int32)


def oracle_policy(env_params: EnvParams):
    def act(state, obs, key):
        return jax.vmap(oracle_action, in_axes=(0, None))(state, env_params)

    return act


def agent_policy(policy: Policy, params, greedy: bool = False):
    """A trained actor-critic: samples from its logits (or takes the argmax when greedy)."""

    def act(state, obs, key):
        logits, _ = policy(params, obs, state.current_player)
        if greedy:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return jax.random.categorical(key, logits).astype(jnp.int32)

    return act


def evaluate(act, env_params: EnvParams, key: jax.Array, num_games: int, num_turns: int) -> dict:
    """Play and score a policy (jittable; `num_games`, `num_turns` static).

    The same key gives every policy the same start states and the same env noise on each
    turn (common random numbers), so policies compare in the same games.

    Returns arrays: episodes, return_per_player f32[2] (mean own score over complete
    episodes), return (mean over both players), help_rate, help_when_partner_distressed
    (NaN when no complete episode / no distressed partner), and the raw counts.
    """
    start_key, turns_key = jax.random.split(key)
    games = start_games(start_key, env_params, num_games)

    def turn(carry, k):
        games, totals = carry
        state = games.state
        player = state.current_player
        act_key, step_key = jax.random.split(k)
        action = act(state, own_view(games.obs, player), act_key)
        partner_d = jnp.take_along_axis(jax.vmap(distressed)(state), (1 - player)[:, None], axis=1)[:, 0]
        obs, state, _, done, info = jax.vmap(env_step, in_axes=(0, 0, 0, None))(
            jax.random.split(step_key, num_games), state, action, env_params
        )
        helps = action == HELP
        totals = {
            "episodes": totals["episodes"] + jnp.sum(done),
            "return_sum": totals["return_sum"] + jnp.sum(jnp.where(done[:, None], info["episode_score"], 0), axis=0),
            "decisions": totals["decisions"] + num_games,
            "helps": totals["helps"] + jnp.sum(helps),
            "partner_distressed": totals["partner_distressed"] + jnp.sum(partner_d),
            "helps_partner_distressed": totals["helps_partner_distressed"] + jnp.sum(helps & partner_d),
        }
        return (Games(state, obs), totals), None

    zero = jnp.zeros((), jnp.int32)
    totals = {
        "episodes": zero,
        "return_sum": jnp.zeros((2,), jnp.int32),
        "decisions": zero,
        "helps": zero,
        "partner_distressed": zero,
        "helps_partner_distressed": zero,
    }
    (_, totals), _ = jax.lax.scan(turn, (games, totals), jax.random.split(turns_key, num_turns))
    per_player = totals["return_sum"] / jnp.where(totals["episodes"] > 0, totals["episodes"], jnp.nan)
    return {
        **totals,
        "return_per_player": per_player,
        "return": jnp.mean(per_player),
        "help_rate": totals["helps"] / totals["decisions"],
        "help_when_partner_distressed": totals["helps_partner_distressed"]
        / jnp.where(totals["partner_distressed"] > 0, totals["partner_distressed"], jnp.nan),
    }


def compare_policies(policies: dict, env_params: EnvParams, key: jax.Array, num_games: int, num_turns: int) -> dict:
    """{name: evaluate(...)} for several policies in the same games, e.g.
    {"agent": agent_policy(...), "behaviour": behaviour_policy(), "oracle": oracle_policy(env)}.
    A run's summary takes `return_<name>` = result[name]["return"]."""
    return {name: evaluate(act, env_params, key, num_games, num_turns) for name, act in policies.items()}
