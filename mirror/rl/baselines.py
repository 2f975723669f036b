"""Policies to compare in the same games (spec §9) and the evaluation that scores them.

A policy is a `mirror.rl.turns.Decide`: agents (`agent_policy`), the behaviour policy and
the scripted policies of `mirror.rl.scripted` are all played by the one turn function.
`evaluate` plays `num_turns` turns of `num_games` games from their start (turn 0, so every
game plays whole episodes) and reports, over complete episodes only, each player's own
score gained (spec §9 "Return", whatever reward weight was trained on), the help rate and
the help rate when the partner stood on rough ground, or had no energy, at decision time;
and the same counts per game (`per_game`), from which confidence intervals over games can
be computed.

`scripted_baselines` scores every scripted baseline of spec §9 in the same games (one
vmapped program): `oracle`, `hop_jump`, `helper_<base>` (both players helpers),
`lone_helper_<base>` (one helper, the other plays `base`: the helper's own numbers) and
`frozen_partner_<base>` (a `base` player whose partner always jumps: its own numbers),
for base in hop_jump, oracle. A seated baseline is played twice, its player once as Frog
and once as Toad, and its numbers are that player's, pooled over both seats.
"""

import jax
import jax.numpy as jnp
import numpy as np

from mirror.env import HELP, EnvParams
from mirror.env.policy import BEHAVIOUR_PROBS
from mirror.rl.scripted import CODES, by_code, hop_jump, oracle
from mirror.rl.scripted import helps as helper_rule_fires
from mirror.rl.turns import Decision, Policy, agent, fresh_games, play_turn, sample_action, turn_uniforms
from mirror.rl.turns import scripted_policy as scripted_decide

BASES = ("hop_jump", "oracle")
# name -> ((Frog's, Toad's) policy in each seating, the player reported in each seating);
# None: both players, pooled.
SCRIPTED_BASELINES = {
    "oracle": ((("oracle", "oracle"),), None),
    "hop_jump": ((("hop_jump", "hop_jump"),), None),
    **{f"helper_{b}": (((f"helper_{b}", f"helper_{b}"),), None) for b in BASES},
    **{f"lone_helper_{b}": (((f"helper_{b}", b), (b, f"helper_{b}")), (0, 1)) for b in BASES},
    **{f"frozen_partner_{b}": (((b, "always_jump"), ("always_jump", b)), (0, 1)) for b in BASES},
}
# Per-game counts of `evaluate` (leaves [games, 2] per player, but `episodes` [games]).
COUNTS = (
    "score", "decisions", "decisions_energy0", "helps", "partner_distressed", "helps_partner_distressed",
    "partner_energy0", "helps_partner_energy0", "opportunities", "helps_opportunity",
)  # fmt: skip


def agent_policy(policy: Policy, params, greedy: bool = False):
    """A trained actor-critic: samples from its logits (or takes the argmax when greedy)."""
    return agent(policy, params, greedy)


def behaviour_policy(probs=BEHAVIOUR_PROBS):
    """Spec §5.1: each player picks hop/jump/leap/help with fixed probabilities."""
    log_probs = jnp.log(jnp.asarray(probs, jnp.float32))

    def decide(states, obs, gumbel_u, env_params):
        action = sample_action(jnp.broadcast_to(log_probs, gumbel_u.shape), gumbel_u)
        return Decision(action, log_probs[action], jnp.zeros(action.shape, jnp.float32))

    return decide


def oracle_policy(env_params: EnvParams | None = None):
    """Spec §9 "Oracle policy" (`mirror.rl.scripted.oracle`); `env_params` is unused (kept
    for callers that pass it: the turn hands every policy the game's params)."""
    return scripted_decide(oracle)


def hop_jump_policy():
    return scripted_decide(hop_jump)


def oracle_action(state, params: EnvParams) -> jax.Array:
    """The oracle's action in one game (`mirror.rl.scripted.oracle`)."""
    return oracle(state, params)


def _ratio(count, total):
    return count / jnp.where(total > 0, total, jnp.nan)


def rates(counts: dict, player=None) -> dict:
    """Returns and help rates from `evaluate`'s counts (per game, [games, 2] / [games]),
    pooled over games and both players, or for one `player` (0 Frog, 1 Toad).
    NaN where there is nothing to divide by."""
    total = {k: jnp.sum(counts[k], axis=0) for k in COUNTS}  # [2] each
    episodes = jnp.sum(counts["episodes"])
    pick = (lambda x: jnp.sum(x)) if player is None else (lambda x: x[player])
    per_player = _ratio(total["score"], episodes)
    return {
        "return": jnp.mean(per_player) if player is None else per_player[player],
        "help_rate": _ratio(pick(total["helps"]), pick(total["decisions"])),
        "help_when_partner_distressed": _ratio(pick(total["helps_partner_distressed"]), pick(total["partner_distressed"])),
        "help_when_partner_energy0": _ratio(pick(total["helps_partner_energy0"]), pick(total["partner_energy0"])),
        "help_given_opportunity": _ratio(pick(total["helps_opportunity"]), pick(total["opportunities"])),
        "energy0_share": _ratio(pick(total["decisions_energy0"]), pick(total["decisions"])),
    }


def evaluate(decide, env_params: EnvParams, key: jax.Array, num_games: int, num_turns: int) -> dict:
    """Play and score a policy (jittable; `num_games`, `num_turns` static).

    `decide`: a policy, e.g. a trained member's
    `agent_policy(make_policy(config), jax.tree.map(lambda x: x[m], runner.params))`
    (`mirror.rl`), `behaviour_policy()` or a scripted one.

    The same key gives every policy the same start states and the same env noise on each
    turn (common random numbers: the turn's uniforms do not depend on the policy), so
    policies compare in the same games.

    Returns arrays: per_game {episodes int32[games] (complete episodes), score int32[games, 2]
    (each player's own score summed over them), and per player int32[games, 2]: decisions,
    decisions_energy0 (at own energy 0), helps, partner_distressed (decisions with the partner
    on rough ground), helps_partner_distressed, partner_energy0 (partner at energy 0),
    helps_partner_energy0, opportunities (partner at energy 0, own energy >= 1, partner
    within reach: spec §9 "help given opportunity"), helps_opportunity}; pooled over the
    games: episodes, decisions, helps, return_per_player f32[2] (mean own score per complete
    episode), return (their mean), help_rate, help_when_partner_distressed,
    help_when_partner_energy0, help_given_opportunity, energy0_share, and
    help_rate_per_player f32[2] (NaN where there is nothing to divide by).
    """
    start_key, turns_key = jax.random.split(key)
    states = fresh_games(start_key, env_params, num_games)
    seat = jnp.arange(2)

    def turn(carry, k):
        states, counts = carry
        states_after, t = play_turn(decide, env_params, states, turn_uniforms(k, num_games, env_params))
        mine = t.player[:, None] == seat  # [games, 2]: the acting player's column
        own_energy = jnp.take_along_axis(states.energy, t.player[:, None], axis=1)
        partner_energy = jnp.take_along_axis(states.energy, 1 - t.player[:, None], axis=1)
        helps = mine & (t.action == HELP)[:, None]
        distressed = mine & t.partner_distressed[:, None]
        stalled = mine & (partner_energy == 0)
        # spec §9 "help given opportunity": where the scripted helper (K = 0, M = 1) would help
        opportunity = mine & jax.vmap(lambda s: helper_rule_fires(s, env_params, 0, 1))(states)[:, None]
        add = {
            "episodes": t.done,
            "score": t.episode_score,  # 0 unless an episode ended
            "decisions": mine,
            "decisions_energy0": mine & (own_energy == 0),
            "helps": helps,
            "partner_distressed": distressed,
            "helps_partner_distressed": helps & distressed,
            "partner_energy0": stalled,
            "helps_partner_energy0": helps & stalled,
            "opportunities": opportunity,
            "helps_opportunity": helps & opportunity,
        }
        counts = {k: counts[k] + add[k].astype(jnp.int32) for k in counts}
        return (states_after, counts), None

    zeros = {k: jnp.zeros((num_games, 2), jnp.int32) for k in COUNTS}
    zeros["episodes"] = jnp.zeros((num_games,), jnp.int32)
    (_, counts), _ = jax.lax.scan(turn, (states, zeros), jax.random.split(turns_key, num_turns))
    episodes = jnp.sum(counts["episodes"])
    per_player = _ratio(jnp.sum(counts["score"], axis=0), episodes)
    return {
        "per_game": counts,
        "episodes": episodes,
        "decisions": jnp.sum(counts["decisions"]),
        "helps": jnp.sum(counts["helps"]),
        "return_per_player": per_player,
        **rates(counts),
        "help_rate_per_player": jnp.stack([rates(counts, p)["help_rate"] for p in (0, 1)]),
    }


def compare_policies(policies: dict, env_params: EnvParams, key: jax.Array, num_games: int, num_turns: int) -> dict:
    """{name: evaluate(...)} for several policies in the same games, e.g.
    {"agent": agent_policy(...), "behaviour": behaviour_policy(), "oracle": oracle_policy()}.
    A run's summary takes `return_<name>` = result[name]["return"]."""
    return {name: evaluate(decide, env_params, key, num_games, num_turns) for name, decide in policies.items()}


def scripted_baselines(
    env_params: EnvParams, key: jax.Array, num_games: int, num_turns: int, max_partner_energy: int, min_own_energy: int
) -> dict:
    """{name: numbers} of every entry of `SCRIPTED_BASELINES`, all in `evaluate`'s games of
    `key` (one program: the seatings are vmapped). Each entry: return_per_player f32[2]
    (seated baselines: the reported player's own return as Frog and as Toad), return,
    help_rate, help_when_partner_distressed, help_when_partner_energy0, energy0_share,
    episodes, and per_game (the seatings' counts, leaves [seatings, games, ...])."""
    seatings = sorted({pair for pairs, _ in SCRIPTED_BASELINES.values() for pair in pairs})
    codes = jnp.asarray([[CODES.index(name) for name in pair] for pair in seatings], jnp.int32)

    def play(frog_code, toad_code):
        act = by_code(frog_code, toad_code, max_partner_energy, min_own_energy)
        return evaluate(scripted_decide(act), env_params, key, num_games, num_turns)["per_game"]

    counts = jax.vmap(play)(codes[:, 0], codes[:, 1])  # leaves [seatings, games, ...]
    out = {}
    for name, (pairs, players) in SCRIPTED_BASELINES.items():
        index = np.asarray([seatings.index(pair) for pair in pairs])
        mine = jax.tree.map(lambda x: x[index], counts)
        if players is None:  # one seating, both players
            one = jax.tree.map(lambda x: x[0], mine)
            numbers = rates(one)
            per_player = _ratio(jnp.sum(one["score"], axis=0), jnp.sum(one["episodes"]))
        else:  # the reported player in each seating, pooled
            seated = [rates(jax.tree.map(lambda x: x[i], mine), p) for i, p in enumerate(players)]
            numbers = _pool_seats(mine, players)
            per_player = jnp.stack([s["return"] for s in seated])
        out[name] = {
            **numbers,
            "return_per_player": per_player,
            "episodes": jnp.sum(mine["episodes"]),
            "per_game": mine,
        }
    return out


def _pool_seats(counts: dict, players: tuple) -> dict:
    """`rates` of one player across seatings: player players[i] of seating i, its counts
    summed over the seatings (so each seat weighs by its decisions and episodes)."""
    pooled = {k: sum(counts[k][i][:, p] for i, p in enumerate(players)) for k in COUNTS}
    pooled = {k: jnp.stack([v, jnp.zeros_like(v)], axis=-1) for k, v in pooled.items()}  # as player 0
    pooled["episodes"] = sum(counts["episodes"][i] for i in range(len(players)))
    return rates(pooled, 0)
