"""The learner's study and its emergence curves (docs/rl_learning.md, docs/emergence.md).

    uv run python scripts/learner_curves.py study      # part 3: settings at w = 0, D = 1
    uv run python scripts/learner_curves.py emergence  # part 5: D x width x seeds to 50M turns
    uv run python scripts/learner_curves.py targets    # the targets: 3 cells x 5 seeds
    uv run python scripts/learner_curves.py figures    # docs/emergence.png, docs/rl_study.png

Every run is self-play PPO in the stakes regime (`env.preset: stakes`) with the library's
trainer (`mirror.rl.ppo.make_trainer`), 25 updates per compiled call. At each evaluation
point a member is scored in fixed-key held-out games (512 games x one 200-turn episode,
never trained on): its own return, help given opportunity, and its deviation gains
(`mirror.rl.deviation`); in `emergence` also its actor's `cmni_scaled` on probe set (a)
(4,000 test rows of the game, shown as Frog's seat view) beside 32 random initialisations.

Long runs span sittings: the runner state of every member is saved at each point
(STATE_DIR/<run>.npz, written atomically), and a rerun resumes each member from its
newest state, bit for bit (the same compiled call from the same arrays). Members advance
together point by point, so a stopped job leaves every cell's curve at the same length.
Results go to JSON after every point.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mirror.analysis.cmni import init_params_batch  # noqa: E402
from mirror.analysis.groups import cmni_groups  # noqa: E402
from mirror.analysis.variants import cmni_variants  # noqa: E402
from mirror.data.memory import dataset  # noqa: E402
from mirror.data.split import TEST  # noqa: E402
from mirror.env import EnvParams  # noqa: E402
from mirror.env.presets import PRESETS  # noqa: E402
from mirror.env.seat import frog_rows_view  # noqa: E402
from mirror.agents.actor_critic import cmni_params  # noqa: E402
from mirror.rl.baselines import agent_policy, scripted_baselines  # noqa: E402
from mirror.rl.config import RLConfig  # noqa: E402
from mirror.rl.deviation import deviation_gains, summarise  # noqa: E402
from mirror.rl.ppo import make_policy, make_trainer  # noqa: E402

CHUNK = 25  # updates per compiled call
EVAL_GAMES, EVAL_TURNS = 512, 200
EVAL_KEY = jax.random.fold_in(jax.random.key(2026), 3)  # held out: no member trains on it
PROBE_ROWS = 4000
LEARNER = dict(num_envs=512, num_steps=64, update_epochs=4, num_minibatches=4, lr=2.5e-3, gamma=0.99, gae_lambda=0.95,
               ent_coef=0.01, critic="central", view="seat", hidden=(17, 17))  # fmt: skip

# part 3: one change each from the learner above (the critic first: part 2's comparison)
STUDY_ARMS = {
    "base": {},
    "separate_critic": {"critic": "separate"},
    "lambda_0.99": {"gae_lambda": 0.99},
    "ent_0.003": {"ent_coef": 0.003},
    "ent_0.03": {"ent_coef": 0.03},
    "anneal_lr": {"anneal_lr": True},
    "width_64": {"hidden": (64, 64)},
    "games_2048": {"num_envs": 2048},
    "paper_view": {"view": "paper"},
}


@dataclasses.dataclass(frozen=True)
class Member:
    name: str
    dependency: float
    weight: float
    seed: int
    ppo: dict

    def config(self, updates: int) -> RLConfig:
        return RLConfig(**{**LEARNER, **self.ppo}, updates=updates, checkpoint_every=CHUNK, partner_reward_weight=self.weight, seed=self.seed)

    def env(self) -> EnvParams:
        return EnvParams(**PRESETS["stakes"], dependency=self.dependency)


def write_json(path: Path, value) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n")
    os.replace(tmp, path)


def save_state(path: Path, runner) -> None:
    leaves = [np.asarray(jax.random.key_data(x)) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else np.asarray(x) for x in jax.tree.leaves(runner)]
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, *leaves)
    os.replace(tmp, path)


def load_state(path: Path, like):
    data = np.load(path)
    leaves, tree = jax.tree.flatten(like)
    restored = [
        jax.random.wrap_key_data(jnp.asarray(data[f"arr_{i}"])) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else jnp.asarray(data[f"arr_{i}"])
        for i, x in enumerate(leaves)
    ]  # fmt: skip
    return jax.tree.unflatten(tree, restored)


class Trainee:
    """One member: its compiled chunk and evaluation, its runner state, its saved file."""

    def __init__(self, member: Member, updates: int, state_dir: Path, probe=None):
        self.member, self.config, self.env = member, member.config(updates), member.env()
        trainer = make_trainer(self.config, self.env)
        self.chunk = jax.jit(lambda r: trainer.run(r, CHUNK)[0])
        policy = make_policy(self.config)
        w = member.weight
        self.deviations = jax.jit(lambda p: deviation_gains(agent_policy(policy, p), self.env, EVAL_KEY, EVAL_GAMES, EVAL_TURNS, w))
        self.path = state_dir / f"{member.name}.npz"
        self.runner = jax.jit(trainer.init)(jax.random.key(member.seed))
        if self.path.is_file():
            self.runner = load_state(self.path, self.runner)
        self.probe = probe

    @property
    def update(self) -> int:
        return int(self.runner.update)

    def advance(self, to_update: int) -> float:
        start = time.perf_counter()
        while self.update < to_update:
            self.runner = self.chunk(self.runner)
        jax.block_until_ready(self.runner.params)
        return time.perf_counter() - start

    def evaluate(self) -> dict:
        out = summarise(self.deviations(self.runner.params), self.member.weight)
        point = {"update": self.update, "turns": self.update * self.config.batch_size, "return": out["return"],
                 "help_given_opportunity": out["help_given_opportunity"], "at_best_response": out["at_best_response"],
                 "gains": {k: {q: v[q] for q in ("mean", "low", "high")} for k, v in out["gains"].items()}}  # fmt: skip
        if self.probe is not None:
            inputs, groups = self.probe
            actor = cmni_params(self.runner.params)
            point["cmni_scaled"] = float(cmni_variants(actor, inputs, groups, None).values["cmni_scaled"])
        return point


def probe_a(dependency: float):
    """Probe set (a) of the stakes game at D: test rows as Frog's seat view (I = 0)."""
    env = EnvParams(**PRESETS["stakes"], dependency=dependency)
    from mirror.analysis.probe import probe_data

    arrays = dataset(env, 40000, jax.random.key(11), test_rows=PROBE_ROWS, data=probe_data(PROBE_ROWS), drop_absent_labels=True)
    test = arrays["splits"] == TEST
    inputs = np.asarray(frog_rows_view(arrays["inputs"][test], arrays["positions"][test][:, 0], False))
    return inputs, cmni_groups(arrays["scenarios"][test], arrays["idle_shown"][test])


def init_band(inputs, groups, widths) -> dict:
    params = init_params_batch(jax.random.key(7), 32, widths, num_inputs=inputs.shape[1], kernel_init="actor_critic")
    values = np.asarray(cmni_variants(params, inputs, groups, None).values["cmni_scaled"], np.float64)
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)), "q05": float(np.quantile(values, 0.05)), "q95": float(np.quantile(values, 0.95))}


def references(dependency: float) -> dict:
    """The scripted pairs' returns in the same held-out games."""
    env = EnvParams(**PRESETS["stakes"], dependency=dependency)
    out = jax.jit(lambda k: scripted_baselines(env, k, EVAL_GAMES, EVAL_TURNS, 0, 1))(EVAL_KEY)
    return {name: float(out[name]["return"]) for name in ("oracle", "hop_jump", "helper_hop_jump", "helper_oracle", "lone_helper_oracle")}


def run(members: list[Member], points: list[int], out: Path, state_dir: Path, extra: dict, probes: dict | None = None, log=print) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.is_file() else {}
    results.update(extra)
    results.setdefault("runs", {})
    results["learner"] = {k: list(v) if isinstance(v, tuple) else v for k, v in LEARNER.items()}
    results["eval"] = {"games": EVAL_GAMES, "turns": EVAL_TURNS, "key": "fold_in(key(2026), 3)"}
    trainees = [Trainee(m, points[-1], state_dir, None if probes is None else probes[(m.dependency, m.ppo.get("hidden", LEARNER["hidden"]))]) for m in members]
    for point in points:
        for t in trainees:
            entry = results["runs"].setdefault(t.member.name, {**dataclasses.asdict(t.member), "points": []})
            entry["ppo"] = {k: list(v) if isinstance(v, tuple) else v for k, v in t.member.ppo.items()}
            if t.update >= point and any(p["update"] == point for p in entry["points"]):
                continue
            if t.update > point:  # resumed past this point without its result: cannot go back
                continue
            seconds = t.advance(point)
            result = t.evaluate()
            result["train_s"] = round(seconds, 2)
            entry["points"] = [p for p in entry["points"] if p["update"] != point] + [result]
            save_state(t.path, t.runner)
            write_json(out, results)
            g = result["gains"]
            log(f"{t.member.name} update {point} ({result['turns'] / 1e6:.1f}M turns, {seconds:.0f} s): return {result['return']:.1f}, "
                f"help|opportunity {result['help_given_opportunity']:.3f}, gains " + ", ".join(f"{k} {v['mean']:+.2f} [{v['low']:+.2f}, {v['high']:+.2f}]" for k, v in g.items())
                + (f", cmni_scaled {result['cmni_scaled']:.4f}" if "cmni_scaled" in result else ""))  # fmt: skip


def study(args) -> None:
    arms = args.arms.split(",") if args.arms else list(STUDY_ARMS)
    members = [Member(f"{arm}-s{s}", 1.0, 0.0, s, STUDY_ARMS[arm]) for arm in arms for s in range(args.seeds)]
    # The same trained turns per arm (6.55M): 200 updates at 512 games, fewer at more games.
    by_games = {}
    for m in members:
        by_games.setdefault(m.ppo.get("num_envs", LEARNER["num_envs"]), []).append(m)
    out = Path(args.out)
    for games, group in sorted(by_games.items()):
        last = 200 * 512 // games
        points = sorted({max(CHUNK, (last // 4) // CHUNK * CHUNK * k) for k in (1, 2, 3)} | {last})
        run(group, points, out, Path(args.state), {"references": {"1.0": references(1.0)}, "arms": {k: {a: list(b) if isinstance(b, tuple) else b for a, b in v.items()} for k, v in STUDY_ARMS.items()}})


def emergence(args) -> None:
    widths = [int(w) for w in args.widths.split(",")]
    deps = [float(d) for d in args.dependencies.split(",")]
    members = [Member(f"D{d:g}-h{w}-s{s}", d, 0.0, s, {"hidden": (w, w)}) for d in deps for w in widths for s in range(args.seeds)]
    last = int(args.turns) // (512 * 64)
    last = -(-last // CHUNK) * CHUNK
    points = sorted({CHUNK * 2**k for k in range(20) if CHUNK * 2**k < last} | {last})
    probes, bands = {}, {}
    for d in deps:
        inputs, groups = probe_a(d)
        for w in widths:
            probes[(d, (w, w))] = (inputs, groups)
            bands[f"D{d:g}-h{w}"] = init_band(inputs, groups, (w, w))
    extra = {"references": {f"{d:g}": references(d) for d in deps}, "init_band": bands, "points": points}
    run(members, points, Path(args.out), Path(args.state), extra, probes)


def targets(args) -> None:
    cells = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]
    members = [Member(f"D{d:g}-w{w:g}-s{s}", d, w, s, {}) for d, w in cells for s in range(args.seeds)]
    last = -(-(int(args.turns) // (512 * 64)) // CHUNK) * CHUNK
    points = sorted({last // 4 // CHUNK * CHUNK * k for k in (1, 2, 3)} | {last})
    run(members, points, Path(args.out), Path(args.state), {"references": {f"{d:g}": references(d) for d in (0.0, 1.0)}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("study")
    s.add_argument("--seeds", type=int, default=3)
    s.add_argument("--arms", help=f"comma-separated, from {', '.join(STUDY_ARMS)} (default: all)")
    s.add_argument("--out", default="docs/results/rl_study.json")
    s.add_argument("--state", default="runs/rl-study-state")
    s.set_defaults(func=study)
    e = sub.add_parser("emergence")
    e.add_argument("--seeds", type=int, default=3)
    e.add_argument("--widths", default="17,64")
    e.add_argument("--dependencies", default="0,1")
    e.add_argument("--turns", type=float, default=50e6)
    e.add_argument("--out", default="docs/results/emergence.json")
    e.add_argument("--state", default="runs/emergence-state")
    e.set_defaults(func=emergence)
    t = sub.add_parser("targets")
    t.add_argument("--seeds", type=int, default=5)
    t.add_argument("--turns", type=float, default=13.1e6)
    t.add_argument("--out", default="docs/results/rl_targets.json")
    t.add_argument("--state", default="runs/rl-targets-state")
    t.set_defaults(func=targets)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
