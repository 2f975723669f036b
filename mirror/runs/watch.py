"""Trained agents from a run directory, playing one game decision by decision
(`mirror play --agent RUN_DIR[:CHECKPOINT]`).

Which network plays which player:
- an RL run (RUN_DIR/rl_run.json, see RL_CONTRACT): member M's networks; `sharing: shared`
  -> network M plays both Frog and Toad, each from its own view; `independent` -> network
  2M plays Frog, 2M+1 Toad. The game's env params are the config's `env` with the
  member's own `env` overrides (its D, I) laid over them.
- a supervised run (no rl_run.json): member M's MLP plays both players; its 4 outputs
  are read as logits (softmax for the shown probabilities). They were trained as MSE
  targets, not as a policy, so the probabilities are a view of its preference only.

Every network is read from the checkpoint's "params" item (the supervised model's
layout, MLP or transformer, no value head) and acts on `mirror.rl.ppo.policy_logits`: the same §5.6-masked input as the
policy that trained it.
"""

import dataclasses
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mirror.agents.models import unpad_model_params
from mirror.env import EnvParams, reset, step
from mirror.env.constants import ACTION_NAMES
from mirror.env.validate import env_params_from_dict
from mirror.base.errors import UsageError
from mirror.runs import checkpoints
from mirror.rl.ppo import policy_logits
from mirror.runs.rl_view import run_view
from mirror.env import observe_given_veil
from mirror.env.seat import seat_view
from mirror.runs.checkpoints import CHECKPOINT_DIR, CONFIG_FILE, DATASET_FILE, MEMBERS_FILE, POPULATION_FILE, load_run



@dataclasses.dataclass(frozen=True)
class Agents:
    """The two networks of one game: index 0 plays Frog, 1 Toad."""

    run_dir: Path
    kind: str  # "rl" or "supervised"
    checkpoint: int  # the update (RL) or epoch (supervised) of the checkpoint
    networks: tuple  # (Frog's, Toad's) network index in the run
    params: Any  # supervised-layout params (MLP or transformer), leaves [2, ...] (Frog's, Toad's)
    widths: tuple  # the MLP's hidden widths (a transformer's CMNI layer widths)
    activation: str
    env_params: EnvParams
    sharing: str  # "shared", "independent" or "supervised"
    dataset_path: str | None = None  # the run's dataset (probe set (a): its test split)
    view: str = "paper"  # what the networks read (`mirror.env.seat`): "seat" or the paper's §5.6 input

    def describe(self) -> str:
        frog, toad = self.networks
        who = f"network {frog} plays Frog and Toad" if frog == toad else f"network {frog} plays Frog, network {toad} Toad"
        what = "update" if self.kind == "rl" else "epoch"
        p = self.env_params
        return f"{self.kind} run {self.run_dir}, {what} {self.checkpoint} ({who}); D={p.dependency:g}, I={p.veil:g}"


def parse_agent(text: str) -> tuple[Path, str | None]:
    """"RUN_DIR[:CHECKPOINT]" -> (RUN_DIR, CHECKPOINT or None). The part after the last ':'
    is a checkpoint only when RUN_DIR alone names something on disk (paths may hold ':')."""
    if ":" in text:
        head, tail = text.rsplit(":", 1)
        if head and Path(head).exists():
            return Path(head), tail
    return Path(text), None


def read_rl_run(run_dir: Path) -> dict | None:
    """RUN_DIR/rl_run.json, or None for a supervised run."""
    return checkpoints.read_rl_run(run_dir) if checkpoints.is_rl_run(run_dir) else None


def _require_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise UsageError(f"--agent {run_dir}: no such directory; give a run directory (runs/<name>-<time>)")
    if (run_dir / POPULATION_FILE).is_file():
        needed = (CONFIG_FILE,)  # a sweep trial: its checkpoints live in its population's run
    else:
        needed = (CONFIG_FILE, MEMBERS_FILE, DATASET_FILE, CHECKPOINT_DIR)
    missing = [name for name in needed if not (run_dir / name).exists()]
    if missing:
        raise UsageError(f"--agent {run_dir} is not a run directory ({missing[0]} is missing)")


def _checkpoint_index(run, checkpoint: str | None, network: int) -> int:
    """Index into the run's checkpoints: None/"last", "best", or an update/epoch number."""
    available = ", ".join(str(int(e)) for e in run.epochs)
    if checkpoint in (None, "", "last"):
        return len(run.epochs) - 1
    if checkpoint == "best":
        return run.checkpoint_index("best", network)
    if not checkpoint.isdigit() or int(checkpoint) not in run.epochs:
        raise UsageError(f"--agent {run.run_dir}: no checkpoint {checkpoint!r}; available: {available}, last, best")
    return int(np.flatnonzero(run.epochs == int(checkpoint))[0])


def load_agents(run_dir: str | Path, checkpoint: str | None = None, member: int = 0) -> Agents:
    """The networks of member `member` at `checkpoint` (default: the last one)."""
    run_dir = Path(run_dir).absolute()
    _require_run_dir(run_dir)
    rl_run = read_rl_run(run_dir)
    run = load_run(run_dir)
    config = run.config
    if rl_run is None:
        members, sharing, member_env = len(run.members), "supervised", {}
    else:
        per = int(rl_run["networks_per_member"])
        members, sharing = len(rl_run["members"]), rl_run["sharing"]
    if not 0 <= member < members:
        raise UsageError(f"--member {member} is out of range: {run_dir} has {members} member(s) (0..{members - 1})")
    if rl_run is None:
        networks = (member, member)
    else:
        member_env = dict(rl_run["members"][member].get("env", {}))
        networks = (per * member, per * member + per - 1)
    index = _checkpoint_index(run, checkpoint, networks[0])
    widths = tuple(run.widths[networks[0]])
    params = jax.tree.map(lambda a: np.asarray(a)[index, list(networks)], unpad_model_params(run.params, widths))
    try:
        env_params = env_params_from_dict({**config.env, **member_env})
    except ValueError as err:
        raise UsageError(f"--agent {run_dir}: member {member}'s env: {err}") from None
    return Agents(
        run_dir=run_dir, kind="supervised" if rl_run is None else "rl", checkpoint=int(run.epochs[index]),
        networks=networks, params=params, widths=widths, activation=config.model.activation,
        env_params=env_params, sharing=sharing, dataset_path=run.dataset_path, view=run_view(rl_run),
    )  # fmt: skip


def action_probs(agents: Agents, obs: jax.Array, player) -> jax.Array:
    """f32[4]: the acting player's network's action probabilities (hop, jump, leap, help)
    for its own view obs int8[3W+4]."""
    mine = jax.tree.map(lambda a: jnp.asarray(a)[player], agents.params)
    return jax.nn.softmax(policy_logits(mine, obs, agents.widths, agents.activation, agents.view))


class Decision(NamedTuple):
    """One turn: the state shown, who acted, with what probabilities, what it chose, and
    the step's outcome (`done`: an episode ended and the game reset; its scores)."""

    state: Any  # EnvState before the action
    obs: np.ndarray  # int8[3W+4]: the acting player's own view
    player: int
    probs: np.ndarray  # f32[4]
    action: int
    done: bool
    episode_score: np.ndarray  # int[2]: the finished episode's scores when done
    next_state: Any  # EnvState after the step (a fresh game when done)


def play_agents(agents: Agents, key: jax.Array, turns: int, *, greedy: bool = False) -> Iterator[Decision]:
    """Play `turns` turns of one game (it resets itself after `episode_turns`); the acting
    player's network samples its action (or takes the most probable one when greedy)."""
    params = agents.env_params

    @jax.jit
    def decide(state, obs_both, key):
        player = state.current_player
        # The acting player's RL view (its seat shown unless veiled), as in training
        veil_key, key = jax.random.split(key)
        veiled = jax.random.uniform(veil_key) < params.veil
        obs = seat_view(observe_given_veil(state, player, params, veiled), player, veiled)
        probs = action_probs(agents, obs, player)
        sampled = jax.random.categorical(key, jnp.log(probs))
        action = jnp.where(greedy, jnp.argmax(probs), sampled).astype(jnp.int32)
        return obs, player, probs, action

    step_fn = jax.jit(step)
    key, reset_key = jax.random.split(key)
    obs_both, state = reset(reset_key, params)
    for _ in range(turns):
        key, action_key, step_key = jax.random.split(key, 3)
        obs, player, probs, action = decide(state, obs_both, action_key)
        shown = state
        obs_both, state, _, done, info = step_fn(step_key, state, action, params)
        yield Decision(shown, np.asarray(obs), int(player), np.asarray(probs), int(action), bool(done), np.asarray(info["episode_score"]), state)


def format_probs(probs: np.ndarray) -> str:
    """"hop 0.6123  jump 0.2010  leap 0.0867  help 0.1000"."""
    return "  ".join(f"{name} {float(p):.4f}" for name, p in zip(ACTION_NAMES, probs))
