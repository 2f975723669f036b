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
import functools
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
from mirror.env.pairs import distress_mirror  # noqa: E402
from mirror.rl.overlap import overlap_distance  # noqa: E402

CHUNK = 25  # updates per compiled call
EVAL_GAMES, EVAL_TURNS = 512, 200
EVAL_KEY = jax.random.fold_in(jax.random.key(2026), 3)  # held out: no member trains on it
PROBE_ROWS = 4000
# The learner the study chose (docs/rl_learning.md): the study's base with ent_coef 0.03.
LEARNER = dict(num_envs=512, num_steps=64, update_epochs=4, num_minibatches=4, lr=2.5e-3, gamma=0.99, gae_lambda=0.95,
               ent_coef=0.03, critic="central", view="seat", hidden=(17, 17))  # fmt: skip
STUDY_BASE = {"ent_coef": 0.01}  # the study's base: LEARNER as it was before the study

# part 3: one change each from the study's base (the critic first: part 2's comparison)
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
    "chosen_lambda_0.99": {"ent_coef": 0.03, "gae_lambda": 0.99},  # for w = 1 (`study --weight 1`)
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


@functools.lru_cache(maxsize=None)
def programs(config: RLConfig, env: EnvParams, eval_games: int):
    """(init, chunk, deviations) of every member of one setting: seeds differ only in the
    key that `init` takes, so they share one compiled program each (one process can then
    hold many members: each compiled program keeps its own executable memory)."""
    trainer = make_trainer(config, env)
    policy = make_policy(config)
    w = config.partner_reward_weight
    deviations = jax.jit(lambda p: deviation_gains(agent_policy(policy, p), env, EVAL_KEY, eval_games, EVAL_TURNS, w))
    return jax.jit(trainer.init), jax.jit(lambda r: trainer.run(r, CHUNK)[0]), deviations


class Trainee:
    """One member: its compiled chunk and evaluation, its runner state, its saved file."""

    def __init__(self, member: Member, updates: int, state_dir: Path, probe=None):
        self.member, self.config, self.env = member, member.config(updates), member.env()
        init, self.chunk, self.deviations = programs(dataclasses.replace(self.config, seed=0), self.env, EVAL_GAMES)
        self.path = state_dir / f"{member.name}.npz"
        self.runner = init(jax.random.key(member.seed))
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
            point["soo_distance"] = probe_overlap(actor, inputs, self.config.activation)
        return point


def probe_overlap(actor, inputs, activation: str) -> float:
    """The self/other overlap distance (`mirror.rl.overlap`) of an actor over probe set (a)'s
    pairable rows and their distress mirrors: what `rl.soo_weight` trains down."""
    mirrored, pairable = distress_mirror(jnp.asarray(inputs))
    return float(overlap_distance(actor, jnp.asarray(inputs), mirrored, pairable.astype(jnp.float32), activation))


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
    for k, v in extra.items():  # merged: a rerun over fewer members keeps the others' entries
        results[k] = {**results[k], **v} if isinstance(v, dict) and isinstance(results.get(k), dict) else v
    results.setdefault("runs", {})
    results.setdefault("learner", {k: list(v) if isinstance(v, tuple) else v for k, v in LEARNER.items()})
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
    members = [Member(f"{arm}-s{s}", 1.0, args.weight, s, {**STUDY_BASE, **STUDY_ARMS[arm]}) for arm in arms for s in range(args.seeds)]
    # The same trained turns per arm (6.55M): 200 updates at 512 games, fewer at more games.
    by_games = {}
    for m in members:
        by_games.setdefault(m.ppo.get("num_envs", LEARNER["num_envs"]), []).append(m)
    out = Path(args.out)
    for games, group in sorted(by_games.items()):
        last = args.updates * 512 // games
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
    if args.cells:  # e.g. "1:1": D = 1, w = 1 alone (a longer run of one cell, resumed from its states)
        cells = [tuple(float(v) for v in cell.split(":")) for cell in args.cells.split(",")]
    members = [Member(f"D{d:g}-w{w:g}-s{s}", d, w, s, {}) for d, w in cells for s in range(args.seeds)]
    last = -(-(int(args.turns) // (512 * 64)) // CHUNK) * CHUNK
    points = sorted({last // 4 // CHUNK * CHUNK * k for k in (1, 2, 3)} | {last})
    run(members, points, Path(args.out), Path(args.state), {"references": {f"{d:g}": references(d) for d in (0.0, 1.0)}})


# ----------------------------------------------------------------------------- figures, tables


def _seed_values(runs: dict, prefix: str, key: str, update: int | None = None) -> list[float]:
    """The runs named `prefix`-s<k>: each one's `key` at `update` (default: its last point)."""
    out = []
    for name, run in sorted(runs.items()):
        if name.rsplit("-s", 1)[0] != prefix or not run["points"]:
            continue
        points = sorted(run["points"], key=lambda p: p["update"])
        point = points[-1] if update is None else next((p for p in points if p["update"] == update), None)
        if point is not None:
            out.append(point[key] if not isinstance(point[key], dict) else point[key]["mean"])
    return out


def _gain(run_points, name):
    return [p["gains"][name]["mean"] for p in run_points], [p["gains"][name]["low"] for p in run_points], [p["gains"][name]["high"] for p in run_points]


def study_table(results: dict) -> str:
    """Markdown: per arm, each seed's last return, help given opportunity and help_stalled
    gain, and how many seeds are at a best response to the family."""
    runs = results["runs"]
    arms = sorted({n.rsplit("-s", 1)[0] for n in runs}, key=lambda a: list(STUDY_ARMS).index(a) if a in STUDY_ARMS else 99)
    ref = results["references"]["1.0"]
    lines = [f"| arm | change | turns | return per seed | help given opportunity | help_stalled gain | at a best response |",
             "| --- | --- | ---: | --- | --- | --- | ---: |"]  # fmt: skip
    for arm in arms:
        mine = [r for n, r in sorted(runs.items()) if n.rsplit("-s", 1)[0] == arm and r["points"]]
        last = [max(r["points"], key=lambda p: p["update"]) for r in mine]
        change = ", ".join(f"{k}: {v}" for k, v in STUDY_ARMS.get(arm, {}).items()) or "the learner"
        lines.append(
            f"| {arm} | {change} | {last[0]['turns'] / 1e6:.2f}M | " + ", ".join(f"{p['return']:.1f}" for p in last)
            + " | " + ", ".join(f"{p['help_given_opportunity']:.2f}" for p in last)
            + " | " + ", ".join(f"{p['gains']['help_stalled']['mean']:+.2f}" for p in last)
            + f" | {sum(p['at_best_response'] for p in last)} of {len(last)} |"
        )  # fmt: skip
    lines.append("")
    lines.append(f"Scripted pairs in the same games (D = 1): oracle {ref['oracle']:.1f}, hop_jump {ref['hop_jump']:.1f}, "
                 f"helper pair on hop_jump {ref['helper_hop_jump']:.1f}, on the oracle {ref['helper_oracle']:.1f}.")  # fmt: skip
    return "\n".join(lines)


HELPER_PAIR_TARGET = 92.3  # the number for the helper pair on hop_jump at D = 1


def targets_table(results: dict) -> str:
    """Markdown: per cell and seed, the last point's return against its target, whether it
    is at a best response, and help; then how many seeds meet each target."""
    lines = ["| cell | target | seed | turns | return | meets the return target | at a best response | help given opportunity | help_stalled gain [95 % CI] |",
             "| --- | --- | ---: | ---: | ---: | --- | --- | ---: | --- |"]  # fmt: skip
    counts = []
    for (d, w) in ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)):
        ref = results["references"][f"{d:g}"]
        target, what = (max(ref["helper_hop_jump"], HELPER_PAIR_TARGET), "helper pair on hop_jump") if w else (ref["oracle"], "oracle pair")
        runs = [r for n, r in sorted(results["runs"].items()) if n.startswith(f"D{d:g}-w{w:g}-") and r["points"]]
        met = best = 0
        for r in runs:
            p = max(r["points"], key=lambda q: q["update"])
            g = p["gains"]["help_stalled"]
            ok = p["return"] >= target
            met, best = met + ok, best + p["at_best_response"]
            lines.append(f"| D = {d:g}, w = {w:g} | {what} {target:.1f} | {r['seed']} | {p['turns'] / 1e6:.1f}M | {p['return']:.1f} | {'yes' if ok else 'no'} | "
                         f"{'yes' if p['at_best_response'] else 'no'} | {p['help_given_opportunity']:.3f} | {g['mean']:+.2f} [{g['low']:+.2f}, {g['high']:+.2f}] |")  # fmt: skip
        counts.append(f"D = {d:g}, w = {w:g}: return target met by {met} of {len(runs)} seeds, at a best response {best} of {len(runs)}")
    return "\n".join(lines + [""] + counts)


def figures(args) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    study_path, emergence_path = Path(args.study), Path(args.emergence)
    if Path(args.targets).is_file():
        print(targets_table(json.loads(Path(args.targets).read_text())))
    if study_path.is_file():
        results = json.loads(study_path.read_text())
        print(study_table(results))
        fig = Figure(figsize=(8, 4.5), layout="constrained")
        ax = fig.add_subplot()
        arms = sorted({n.rsplit("-s", 1)[0] for n in results["runs"]}, key=lambda a: list(STUDY_ARMS).index(a) if a in STUDY_ARMS else 99)
        for i, arm in enumerate(arms):
            mine = [sorted(r["points"], key=lambda p: p["update"]) for n, r in results["runs"].items() if n.rsplit("-s", 1)[0] == arm and r["points"]]
            length = min(len(pts) for pts in mine)
            x = [p["turns"] for p in mine[0][:length]]
            y = np.asarray([[p["return"] for p in pts[:length]] for pts in mine])
            style = "--" if arm in ("separate_critic", "paper_view") else "-"
            ax.plot(x, y.mean(0), color=f"C{i}", ls=style, lw=1.5, marker=".", label=f"{arm} ({len(mine)} seeds)")
            ax.fill_between(x, y.min(0), y.max(0), color=f"C{i}", alpha=0.08)
        ref = results["references"]["1.0"]
        ax.axhline(ref["oracle"], color="k", ls="--", lw=1, label="oracle pair")
        ax.set(xlabel="trained turns per agent", ylabel="return (held-out games)", title="The learner's study: w = 0, D = 1, stakes regime (mean over seeds, band: min-max)")
        ax.legend(fontsize=7, ncols=2)
        FigureCanvasAgg(fig).print_png(args.study_png)
        print(f"wrote {args.study_png}")
    if emergence_path.is_file():
        results = json.loads(emergence_path.read_text())
        runs = results["runs"]
        deps = sorted({r["dependency"] for r in runs.values()})
        widths = sorted({r["ppo"]["hidden"][0] for r in runs.values()})
        rows = ("return", "help_given_opportunity", "help_stalled", "cmni_scaled")
        labels = ("return (own score / episode)", "help given opportunity", "help_stalled gain\n(own return, 95 % CI)", "actor cmni_scaled\n(probe set (a))")
        fig = Figure(figsize=(10, 11), layout="constrained")
        axes = fig.subplots(len(rows), len(deps), sharex=True, squeeze=False)
        for c, d in enumerate(deps):
            ref = results["references"][f"{d:g}"]
            for r, what in enumerate(rows):
                ax = axes[r, c]
                for k, w in enumerate(widths):
                    band = results["init_band"].get(f"D{d:g}-h{w}")
                    if what == "cmni_scaled" and band:
                        ax.axhspan(band["q05"], band["q95"], color=f"C{k}", alpha=0.12, label=f"untrained 2 x {w} (5-95 %)")
                    for name, run in sorted(runs.items()):
                        if run["dependency"] != d or run["ppo"]["hidden"][0] != w or not run["points"]:
                            continue
                        pts = sorted(run["points"], key=lambda p: p["update"])
                        x = [p["turns"] for p in pts]
                        first = name.endswith("-s0")
                        if what == "help_stalled":
                            mean, low, high = _gain(pts, "help_stalled")
                            ax.plot(x, mean, color=f"C{k}", lw=1, label=f"2 x {w}" if first else None)
                            ax.fill_between(x, low, high, color=f"C{k}", alpha=0.1)
                        elif what in pts[0]:
                            ax.plot(x, [p[what] for p in pts], color=f"C{k}", lw=1, marker=".", label=f"2 x {w}" if first else None)
                if what == "return":
                    for name, style in (("oracle", "--"), ("hop_jump", ":"), ("helper_hop_jump", "-.")):
                        ax.axhline(ref[name], color="k", ls=style, lw=0.8, label=f"{name} pair")
                if what == "help_stalled":
                    ax.axhline(0, color="k", lw=0.8)
                ax.set_xscale("log")
                ax.set_ylabel(labels[r])
                if r == 0:
                    ax.set_title(f"D = {d:g} (w = 0; one line per seed)")
                if r == len(rows) - 1:
                    ax.set_xlabel("trained turns per agent")
                ax.legend(fontsize=6)
        FigureCanvasAgg(fig).print_png(args.emergence_png)
        print(f"wrote {args.emergence_png}")
        for d in deps:
            for w in widths:
                last = _seed_values(runs, f"D{d:g}-h{w}", "return")
                hgo = _seed_values(runs, f"D{d:g}-h{w}", "help_given_opportunity")
                print(f"D {d:g} width {w}: last returns {[round(v, 1) for v in last]}, help given opportunity {[round(v, 3) for v in hgo]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("study")
    s.add_argument("--seeds", type=int, default=3)
    s.add_argument("--arms", help=f"comma-separated, from {', '.join(STUDY_ARMS)} (default: all)")
    s.add_argument("--weight", type=float, default=0.0, help="w of every member (default 0)")
    s.add_argument("--updates", type=int, default=200, help="updates at 512 games (default 200: 6.55M turns)")
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
    t.add_argument("--cells", help="D:w pairs, comma-separated (default: 0:0,1:0,1:1)")
    t.add_argument("--out", default="docs/results/rl_targets.json")
    t.add_argument("--state", default="runs/rl-targets-state")
    t.set_defaults(func=targets)
    f = sub.add_parser("figures")
    f.add_argument("--study", default="docs/results/rl_study.json")
    f.add_argument("--emergence", default="docs/results/emergence.json")
    f.add_argument("--targets", default="docs/results/rl_targets.json")
    f.add_argument("--study-png", default="docs/rl_study.png")
    f.add_argument("--emergence-png", default="docs/emergence.png")
    f.set_defaults(func=figures)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
