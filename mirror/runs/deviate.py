"""`mirror deviate`: an RL run's agents against the deviation family (spec §9), in the run's
held-out report games (the games its returns are reported in, `rl_run.json` "eval").

The agents act from their actors alone (the checkpoint's networks, each reading its own
view as in training: `mirror.runs.watch.load_agents`); one network plays both seats of a
shared run, Frog's and Toad's networks their own seats otherwise."""

from pathlib import Path

import jax
import jax.numpy as jnp

from mirror.base.errors import UsageError
from mirror.rl.deviation import deviation_gains, summarise
from mirror.rl.ppo import policy_logits
from mirror.rl.turns import agent, per_player
from mirror.runs.ablation import check_rl_run
from mirror.runs.rl_run import fixed_key
from mirror.runs.watch import load_agents


def actor_decide(agents, greedy: bool = False):
    """The `Decide` of both seats from `Agents` (leaves [2, ...]: Frog's, Toad's network)."""

    def network(i):
        params = jax.tree.map(lambda a: jnp.asarray(a)[i], agents.params)

        def policy(p, obs, player, central=None):
            logits = policy_logits(p, obs, agents.widths, agents.activation, agents.view)
            return logits, jnp.zeros(logits.shape[:-1], jnp.float32)

        return agent(policy, params, greedy)

    return network(0) if agents.networks[0] == agents.networks[1] else per_player(network(0), network(1))


def deviate_member(run_dir: Path, checkpoint: str | None, member: int) -> dict:
    """The JSON-ready deviation gains of member `member` at `checkpoint` (default: last)."""
    rl_run = check_rl_run(run_dir)
    try:
        agents = load_agents(run_dir, checkpoint, member)
    except UsageError as err:
        raise UsageError(str(err).removeprefix("--agent ")) from None
    e = rl_run["eval"]
    w = float(rl_run["members"][member].get("partner_reward_weight", 0.0))
    key = fixed_key(int(e["seed"]), int(e["report_stream"]))
    games, turns = int(e["games"]), int(e["turns"])
    run = jax.jit(lambda k: deviation_gains(actor_decide(agents, bool(e.get("greedy", False))), agents.env_params, k, games, turns, w))
    out = summarise(run(key), w)
    p = agents.env_params
    return {
        "member": member, "checkpoint": agents.checkpoint, "networks": list(agents.networks), "sharing": agents.sharing,
        "view": agents.view, "dependency": float(p.dependency), "veil": float(p.veil),
        "eval": {k: e.get(k) for k in ("games", "turns", "seed", "report_stream", "greedy")}, **out,
    }  # fmt: skip
