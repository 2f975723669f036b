"""What each `mirror` subcommand does; printing and timing happen here, at the edge."""

import sys
import time
from pathlib import Path

import jax
import numpy as np

from mirror.base.errors import UsageError
from mirror.base.files import lock_run_dir
from mirror.cli.train import run_target
from mirror.env import EnvParams, render, reset, step
from mirror.env.constants import ACTION_NAMES
from mirror.env.policy import BEHAVIOUR_PROBS, oracle_action, sample_actions
from mirror.env.rollout import make_rollout
from mirror.runs.experiment import format_headline, run_experiment
from mirror.runs.watch import format_probs, load_agents, parse_agent, play_agents


def _check_unit_interval(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"--{name} must be in [0, 1], got {value}")


def _check_positive(name: str, value) -> None:
    if value <= 0:
        raise UsageError(f"--{name} must be positive, got {value}")


def run_demo(args, overrides=()) -> int:
    """Roll out many games in one jitted call, print a few of them and the throughput."""
    for name in ("games", "turns"):
        _check_positive(name, getattr(args, name))
    if not 0 <= args.show <= args.games:
        raise UsageError(f"--show must be in [0, --games={args.games}], got {args.show}")
    params = EnvParams()
    rollout = make_rollout(params, args.games, args.turns)
    key = jax.random.key(args.seed)
    start = time.perf_counter()
    jax.block_until_ready(rollout(key))
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    states, summary = jax.block_until_ready(rollout(key))
    wall = time.perf_counter() - start
    for game in range(args.show):
        print(f"game {game}")
        print(render(jax.tree_util.tree_map(lambda x: x[game], states)))
        print()
    turns = args.games * args.turns
    print(
        f"{args.games} games x {args.turns} turns on {jax.devices()[0].platform}: "
        f"{turns / wall:,.0f} turns/s ({wall:.3f} s, compile {compile_s:.1f} s), "
        f"{int(summary.hops):,} hops, {int(summary.episodes):,} episodes finished"
    )
    return 0


def play(args, overrides=()) -> int:
    """Watch games under the behaviour policy, the oracle or trained agents (`--agent
    RUN_DIR[:CHECKPOINT]`), frame by frame; agents show each decision's probabilities.

    A game truncates after `episode_turns` turns and resets itself; each finished
    episode's scores are printed when it ends, and the last line gives the scores and
    turn count of the game still running when `--turns` is used up."""
    if args.fps < 0:
        raise UsageError(f"--fps must be >= 0, got {args.fps}")
    if args.agent:
        for name in ("policy", "dependency", "veil"):
            if getattr(args, name) is not None:
                raise UsageError(f"--{name} cannot be used with --agent: the run fixes the players and the game")
        turns, decisions, params = _agent_decisions(args)
    else:
        if args.member is not None or args.greedy:
            raise UsageError("--member and --greedy only apply to --agent RUN_DIR")
        turns, decisions, params = _policy_decisions(args)
    _show(decisions, params, turns, args.fps)
    return 0


def _policy_decisions(args):
    """The behaviour policy (spec §5.1) or the label oracle: (turns, decisions, env params);
    a decision is (state shown, note, done, finished episode's scores, next state)."""
    turns = 60 if args.turns is None else args.turns
    _check_positive("turns", turns)
    dependency = 1.0 if args.dependency is None else args.dependency
    veil = 0.0 if args.veil is None else args.veil
    _check_unit_interval("dependency", dependency)
    _check_unit_interval("veil", veil)
    params = EnvParams(dependency=dependency, veil=veil)
    step_fn = jax.jit(step)
    choose = jax.jit(oracle_action) if args.policy == "oracle" else None

    def decisions():
        key, reset_key = jax.random.split(jax.random.key(args.seed))
        obs, state = reset(reset_key, params)
        for _ in range(turns):
            key, action_key, step_key = jax.random.split(key, 3)
            if choose is None:
                action = sample_actions(action_key, (), BEHAVIOUR_PROBS)
            else:
                action = choose(obs, state.current_player)
            obs, next_state, _, done, info = step_fn(step_key, state, action, params)
            yield state, None, bool(done), info["episode_score"], next_state
            state = next_state

    return turns, decisions(), params


def _agent_decisions(args):
    """Trained agents: one game of `episode_turns` turns unless --turns says otherwise."""
    run_dir, checkpoint = parse_agent(args.agent)
    agents = load_agents(run_dir, checkpoint, 0 if args.member is None else args.member)
    turns = agents.env_params.episode_turns if args.turns is None else args.turns
    _check_positive("turns", turns)
    print(f"agents: {agents.describe()}")
    if agents.kind == "supervised":
        print("(a supervised MLP: its 4 outputs are shown as softmax probabilities)")
    print()

    def decisions():
        for d in play_agents(agents, jax.random.key(args.seed), turns, greedy=args.greedy):
            name = ("Frog", "Toad")[d.player]
            note = f"{name} (network {agents.networks[d.player]}): {format_probs(d.probs)}  -> {ACTION_NAMES[d.action]}"
            yield d.state, note, d.done, d.episode_score, d.next_state

    return turns, decisions(), agents.env_params


def _show(decisions, params: EnvParams, turns: int, fps: float) -> None:
    """Print each frame (with its decision's note) and the episodes as they finish."""
    live = sys.stdout.isatty()
    episodes = []  # a line per finished episode; a live screen redraws them under each frame
    state = None
    for state, note, done, episode_score, next_state in decisions:
        frame = render(state) if note is None else render(state) + "\n" + note
        if live:
            print("\033[H\033[2J", end="")
            frame = "\n".join([frame, "", *episodes]) if episodes else frame
        print(frame + "\n")
        if done:
            # The game has already reset itself: the finished episode's scores come with the step.
            frog, toad = (int(s) for s in np.asarray(episode_score))
            episodes.append(f"episode {len(episodes) + 1} finished after {params.episode_turns} turns: Frog {frog}, Toad {toad}; new game")
            if not live:
                print(episodes[-1] + "\n")
        if fps > 0:
            time.sleep(1.0 / fps)
        state = next_state
    print(render(state))
    if live and episodes:
        print("\n".join(episodes))
    frog, toad = (int(s) for s in np.asarray(state.score))
    print(f"running game (episode {len(episodes) + 1}) after {int(np.asarray(state.turn))} turns: Frog {frog}, Toad {toad}")


QUICKSTART = "configs/quickstart.yaml"


def default_config_path() -> Path:
    """configs/quickstart.yaml from the working directory, else from the repository."""
    here = Path(QUICKSTART)
    return here if here.is_file() else Path(__file__).resolve().parents[2] / QUICKSTART


def run_experiment_command(args, overrides=()) -> int:
    config, run_dir, _ = run_target(args, overrides, default_config_path())
    with lock_run_dir(run_dir):  # checked writable, and one process per run, before any work
        print(f"run: {run_dir.absolute()}")
        headline = run_experiment(config, run_dir, resume=bool(args.resume))
    print(format_headline(headline))
    return 0
