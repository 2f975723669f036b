"""The self/other overlap experiment (docs/soo_experiment.md, registered before its runs).

    uv run python scripts/soo_experiment.py run       # 39 runs, resumable (see learner_curves.py)
    uv run python scripts/soo_experiment.py analyse   # the registered tests, table and figure

Each run is the learner of docs/emergence.md (`scripts/learner_curves.py`: self-play PPO in
the stakes regime, 2 x 17, central critic, seat view, ent_coef 0.03, 512 games) with
`rl.soo_weight` in {0, 0.3, 3}, evaluated at 3.3M and 6.55M trained turns in the same
fixed-key held-out games: return, help given opportunity, deviation gains, the actor's
`cmni_scaled` on probe set (a) beside 32 random initialisations, and its self/other
distance on probe set (a)'s pairs. Every run has its own seed (its own initialisation and
games): no seed is shared between two runs.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learner_curves as lc  # noqa: E402

WEIGHTS = (0.0, 0.3, 3.0)  # rl.soo_weight
SEEDS = 5  # per cell at w = 0
W1_SEEDS = 3  # per weight at w = 1, D = 1 (the cost to return where helping is learned)
UPDATES = 200  # 6.55M trained turns at 512 games x 64 turns
POINTS = [100, UPDATES]


def cells() -> list[tuple[float, float, float, int]]:
    """(D, w, soo_weight, seeds) of every cell, in the order their seeds are numbered."""
    out = [(d, 0.0, sw, SEEDS) for d in (0.0, 1.0) for sw in WEIGHTS]
    return out + [(1.0, 1.0, sw, W1_SEEDS) for sw in WEIGHTS]


def members() -> list:
    """One member per run; seeds 0, 1, 2, ... through the cells (never shared)."""
    out, seed = [], 0
    for d, w, sw, n in cells():
        for _ in range(n):
            out.append(lc.Member(f"D{d:g}-w{w:g}-soo{sw:g}-s{seed}", d, w, seed, {"soo_weight": sw}))
            seed += 1
    return out


def run(args) -> None:
    chosen = members()
    if args.only:
        chosen = [m for m in chosen if any(m.name.startswith(p) for p in args.only.split(","))]
    probes, bands = {}, {}
    for d in sorted({m.dependency for m in chosen}):
        inputs, groups = lc.probe_a(d)
        probes[(d, lc.LEARNER["hidden"])] = (inputs, groups)
        bands[f"D{d:g}-h17"] = lc.init_band(inputs, groups, lc.LEARNER["hidden"])
    extra = {"references": {f"{d:g}": lc.references(d) for d in (0.0, 1.0)}, "init_band": bands, "points": POINTS,
             "weights": list(WEIGHTS)}  # fmt: skip
    lc.run(chosen, POINTS, Path(args.out), Path(args.state), extra, probes)


# ----------------------------------------------------------------------------- the registered analysis

PERMUTATIONS = 20000
ALPHA = 0.05
TEST_SEED = 2412  # the permutation draws (arXiv 2412.16325)


def ranks(x) -> np.ndarray:
    """Ranks 1..n with the average rank for ties."""
    x = np.asarray(x, float)
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tied = x == value
        r[tied] = r[tied].mean()
    return r


def trend_test(weights, values, rng, permutations: int = PERMUTATIONS) -> tuple[float, float]:
    """(rho, one-sided p) of H7: Spearman's rho (average ranks for ties) of soo_weight
    against the measure over runs, p = (1 + #{permuted rho >= rho}) / (1 + permutations),
    the weights permuted over the runs."""
    rw, rv = ranks(weights), ranks(values)
    rw, rv = (rw - rw.mean()) / rw.std(), (rv - rv.mean()) / rv.std()
    rho = float(np.mean(rw * rv))
    perms = np.argsort(rng.random((permutations, len(rw))), axis=1)
    null = np.mean(rw[perms] * rv, axis=1)
    return rho, float((1 + np.sum(null >= rho - 1e-12)) / (1 + permutations))


def greater_test(a, b, rng, permutations: int = PERMUTATIONS) -> tuple[float, float]:
    """(mean(a) - mean(b), one-sided permutation p that a's mean exceeds b's)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    both, n = np.concatenate([a, b]), len(a)
    observed = a.mean() - b.mean()
    null = np.asarray([(lambda p: p[:n].mean() - p[n:].mean())(rng.permutation(both)) for _ in range(permutations)])
    return float(observed), float((1 + np.sum(null >= observed - 1e-12)) / (1 + permutations))


def holm(pvalues: dict) -> dict:
    """Holm-adjusted p-values of a family {name: p}."""
    names = sorted(pvalues, key=pvalues.get)
    out, running = {}, 0.0
    for i, name in enumerate(names):
        running = max(running, min(1.0, (len(names) - i) * pvalues[name]))
        out[name] = running
    return out


def power(base, deltas, rng, sims: int = 2000, permutations: int = 1000, alpha: float = ALPHA / 2) -> dict:
    """The power of the trend test at 5 runs per weight: each simulated experiment resamples
    the observed soo-0 values (with replacement) and adds 0, delta, 2 delta for the three
    weights (clipped to [0, 1]); power = share with p <= alpha (Holm's first step over two D)."""
    levels = np.repeat(np.arange(len(WEIGHTS)), SEEDS)
    weights = np.repeat(np.asarray(WEIGHTS), SEEDS)
    out = {}
    for delta in deltas:
        hits = 0
        for _ in range(sims):
            values = np.clip(rng.choice(base, size=levels.size) + delta * levels, 0, 1)
            hits += trend_test(weights, values, rng, permutations)[1] <= alpha
        out[f"{delta:g}"] = hits / sims
    return out


def last_points(results: dict) -> dict:
    """{name: (run, its last point)} of the runs that reached the last point."""
    out = {}
    for name, run in results["runs"].items():
        pts = [p for p in run["points"] if p["update"] == UPDATES]
        if pts:
            out[name] = (run, pts[0])
    return out


def analyse(args) -> None:
    rng = np.random.default_rng(TEST_SEED)
    if args.power:
        base = json.loads(Path("docs/results/rl_targets.json").read_text())["runs"]
        for d in (0.0, 1.0):
            values = [next(p["help_given_opportunity"] for p in r["points"] if p["turns"] == 6553600)
                      for n, r in sorted(base.items()) if n.startswith(f"D{d:g}-w0-")]  # fmt: skip
            print(f"D = {d:g}: soo-0 values resampled {np.round(values, 3).tolist()}; power of H7 at delta per weight step:",
                  power(np.asarray(values), (0.05, 0.1, 0.15, 0.2), rng))  # fmt: skip
        return
    results = json.loads(Path(args.out).read_text())
    done = last_points(results)
    report = {"cells": {}, "h7": {}, "manipulation": {}, "cost": {}}
    for d, w, sw, n in cells():
        key = f"D{d:g}-w{w:g}-soo{sw:g}"
        mine = [pt for name, (run, pt) in sorted(done.items()) if name.startswith(key + "-s")]
        band = results["init_band"][f"D{d:g}-h17"]
        report["cells"][key] = {
            "runs": len(mine), "of": n,
            **{m: [round(p[m], 4) for p in mine] for m in ("return", "help_given_opportunity", "cmni_scaled", "soo_distance")},
            "help_stalled": [round(p["gains"]["help_stalled"]["mean"], 3) for p in mine],
            "at_best_response": sum(p["at_best_response"] for p in mine),
            "above_init_band": sum(p["cmni_scaled"] > band["q95"] for p in mine),
        }  # fmt: skip
    # H7 (and H7b at D = 0): the trend of help given opportunity with soo_weight at w = 0
    raw = {}
    for d in (0.0, 1.0):
        pts = [(float(run["ppo"]["soo_weight"]), p) for name, (run, p) in done.items() if run["dependency"] == d and run["weight"] == 0]
        rho, p = trend_test([x for x, _ in pts], [q["help_given_opportunity"] for _, q in pts], rng)
        raw[f"D{d:g}"] = p
        report["h7"][f"D{d:g}"] = {"runs": len(pts), "rho": rho, "p": p}
    for name, p_adj in holm(raw).items():
        report["h7"][name]["p_holm"] = p_adj
        report["h7"][name]["supported"] = bool(p_adj <= ALPHA and report["h7"][name]["rho"] > 0)
    # The manipulation check: per non-zero weight, over both D at w = 0
    for sw in WEIGHTS[1:]:
        treated = [p for name, (run, p) in done.items() if run["weight"] == 0 and run["ppo"]["soo_weight"] == sw]
        control = [p for name, (run, p) in done.items() if run["weight"] == 0 and run["ppo"]["soo_weight"] == 0]
        above = sum(p["cmni_scaled"] > results["init_band"][f"D{r['dependency']:g}-h17"]["q95"]
                    for name, (r, p) in done.items() if r["weight"] == 0 and r["ppo"]["soo_weight"] == sw)  # fmt: skip
        diff, p_cmni = greater_test([q["cmni_scaled"] for q in treated], [q["cmni_scaled"] for q in control], rng)
        dist, p_dist = greater_test([q["soo_distance"] for q in control], [q["soo_distance"] for q in treated], rng)
        passed = p_cmni <= ALPHA and above >= 0.8 * len(treated)
        report["manipulation"][f"{sw:g}"] = {"runs": len(treated), "cmni_scaled_diff": diff, "p": p_cmni, "above_band": above,
                                             "distance_drop": dist, "p_distance": p_dist, "passed": bool(passed)}  # fmt: skip
    # The cost: own return and the help_stalled gain beside the soo-0 runs of the same cell (descriptive)
    for d, w in ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)):
        base = [p for name, (r, p) in done.items() if r["dependency"] == d and r["weight"] == w and r["ppo"]["soo_weight"] == 0]
        for sw in WEIGHTS[1:]:
            mine = [p for name, (r, p) in done.items() if r["dependency"] == d and r["weight"] == w and r["ppo"]["soo_weight"] == sw]
            if base and mine:
                report["cost"][f"D{d:g}-w{w:g}-soo{sw:g}"] = {
                    "return_diff": float(np.mean([p["return"] for p in mine]) - np.mean([p["return"] for p in base])),
                    "help_stalled_gain": [round(p["gains"]["help_stalled"]["mean"], 3) for p in mine],
                    "never_help_gain": [round(p["gains"]["never_help"]["mean"], 3) for p in mine],
                }
    print(cell_table(report["cells"], results))
    report["why"] = why(done)
    for d in (0.0, 1.0):
        for sw in WEIGHTS:
            rows = [v for v in report["why"].values() if v["dependency"] == d and v["soo_weight"] == sw]
            if rows:
                print(f"why D={d:g} soo={sw:g}: " + ", ".join(f"{k} {np.mean([r[k] for r in rows]):.3f}" for k in
                      ("mean_abs_frog_minus_toad", "mean_distress_response", "both_positive", "dead")))  # fmt: skip
    if args.ablation:
        report["ablation"] = ablation(results, {n: v for n, v in done.items() if any(n.startswith(p) for p in args.ablation.split(","))})
    Path(args.report).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


def cell_table(cells_report: dict, results: dict) -> str:
    """Markdown: one row per cell at the last point."""
    lines = ["| D | w | soo_weight | runs | return (mean; per run) | help given opportunity | actor cmni_scaled (above the untrained 95th pct.) | self/other distance (probe a) | help_stalled gain | at a best response |",
             "| ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- | ---: |"]  # fmt: skip
    for key, c in cells_report.items():
        d, w, sw = (float(part[len(tag):]) for part, tag in zip(key.split("-"), ("D", "w", "soo")))
        if not c["runs"]:
            continue
        band = results["init_band"][f"D{d:g}-h17"]
        lines.append(
            f"| {d:g} | {w:g} | {sw:g} | {c['runs']} | {np.mean(c['return']):.1f}; " + ", ".join(f"{v:.1f}" for v in c["return"])
            + " | " + ", ".join(f"{v:.2f}" for v in c["help_given_opportunity"])
            + " | " + ", ".join(f"{v:.3f}" for v in c["cmni_scaled"]) + f" ({c['above_init_band']} of {c['runs']}; band {band['q05']:.3f}–{band['q95']:.3f})"
            + " | " + ", ".join(f"{v:.2f}" for v in c["soo_distance"])
            + " | " + ", ".join(f"{v:+.2f}" for v in c["help_stalled"]) + f" | {c['at_best_response']} of {c['runs']} |"
        )  # fmt: skip
    return "\n".join(lines)


def why(done: dict) -> dict:
    """Descriptive (not registered): what the loss did to the units the CMNI reads. Per w = 0
    run at its last point, over the actor's hidden units on probe set (a): each unit's
    responses to the observer's distress (dFrog) and to the partner's (dToad) against no
    distress, in units of its pooled sd (as cmni_scaled reads them); the mean |dFrog - dToad|
    (what the loss pulls together), the mean of (dFrog + dToad) / 2 (what the MNS also
    needs: both above 0), the share of units with both above 0, and the share of dead
    units (no variance)."""
    from mirror.agents.actor_critic import cmni_params
    from mirror.rl.overlap import hidden_activations

    out, probes = {}, {}
    for name, (run, _) in sorted(done.items()):
        if run["weight"] != 0:
            continue
        member = next(m for m in members() if m.name == name)
        if member.dependency not in probes:
            probes[member.dependency] = lc.probe_a(member.dependency)
        inputs, groups = probes[member.dependency]
        trainee = lc.Trainee(member, UPDATES, Path("docs/results/learner-state/soo"))
        acts = np.concatenate([np.asarray(a, np.float64) for a in hidden_activations(cmni_params(trainee.runner.params), inputs, "relu")], axis=1)
        mu = np.stack([acts[groups == g].mean(0) for g in (0, 1, 2)])
        pooled = acts[np.isin(groups, (0, 1, 2))].std(0)
        alive = pooled > 1e-6
        s = np.where(alive, pooled, 1.0)
        d_frog, d_toad = (mu[1] - mu[0]) / s, (mu[2] - mu[0]) / s
        out[name] = {"soo_weight": run["ppo"]["soo_weight"], "dependency": run["dependency"],
                     "mean_abs_frog_minus_toad": float(np.abs(d_frog - d_toad)[alive].mean()) if alive.any() else 0.0,
                     "mean_distress_response": float(((d_frog + d_toad) / 2)[alive].mean()) if alive.any() else 0.0,
                     "both_positive": float(((d_frog > 0) & (d_toad > 0) & alive).mean()), "dead": float((~alive).mean())}  # fmt: skip
    return out


ABLATION_KS = (1, 2, 4)
ABLATION_DRAWS = 8


def ablation(results: dict, done: dict) -> dict:
    """Descriptive (not registered): per w = 0 run at its last point, help given opportunity
    with its top-K MNS units (raw MNS on probe set (a)) fixed at their mean activation over
    probe set (a), beside K random units of the same layers (8 draws), in the held-out games."""
    import jax

    from mirror.agents.actor_critic import cmni_params
    from mirror.analysis.variants import cmni_variants
    from mirror.rl.ablation import ablation_curve, ablation_values

    out = {}
    by_d = {}
    for name, (run, _) in sorted(done.items()):
        if run["weight"] != 0:
            continue
        member = next(m for m in members() if m.name == name)
        d = member.dependency
        if d not in by_d:
            by_d[d] = lc.probe_a(d)
        inputs, groups = by_d[d]
        trainee = lc.Trainee(member, UPDATES, Path("docs/results/learner-state/soo"))
        actor = cmni_params(trainee.runner.params)
        mns = np.asarray(cmni_variants(actor, inputs, groups, None).terms["cmni"], np.float64)
        both = jax.tree.map(lambda x: np.stack([x, x]), actor)
        values = ablation_values(both, np.stack([inputs, inputs]), "mean")
        curve = ablation_curve(both, np.stack([mns, mns]), values, ABLATION_KS, trainee.env, lc.EVAL_KEY, jax.random.key(5),
                               games=256, turns=lc.EVAL_TURNS, draws=ABLATION_DRAWS, shared=True)  # fmt: skip
        rate = "help_given_opportunity"
        out[name] = {"intact": float(curve["intact"][rate]), "top_mns": curve["top_mns"][rate].tolist(),
                     "random_mean": curve["random_mean"][rate].tolist(), "gap": curve["gap"][rate].tolist()}  # fmt: skip
        print(name, out[name], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("--only", help="run only the members whose names start with one of these (comma-separated)")
    r.add_argument("--out", default="docs/results/soo_experiment.json")
    r.add_argument("--state", default="docs/results/learner-state/soo")
    r.set_defaults(func=run)
    a = sub.add_parser("analyse")
    a.add_argument("--power", action="store_true", help="the registered power of H7 (from the targets' soo-0 values)")
    a.add_argument("--ablation", help="also the (descriptive) top-MNS ablation curves of the w = 0 runs whose names start with one of these (comma-separated)")
    a.add_argument("--out", default="docs/results/soo_experiment.json")
    a.add_argument("--report", default="docs/results/soo_tests.json")
    a.set_defaults(func=analyse)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
