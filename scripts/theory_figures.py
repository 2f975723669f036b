"""The theory experiment's figures that `mirror theory` does not draw (docs/theory_experiment.md):

1. `theory_learning_curves.png`: return per player per episode against trained env turns,
   one panel per (D, w), a thin line per trial (seed) coloured by the veil I, the mean over
   the seeds of each veil bold; dots: the held-out report games of each checkpoint (mean over
   the seeds of each veil); dashed: the scripted baselines in the same report games
   (baselines.json of the population, per member: they depend on the member's env), the
   hop_jump pair, the helper pair on hop_jump and the label oracle. Below it the same grid for
   help_e0 (help while the partner is at energy 0), which is measured at checkpoints only.
2. `theory_ablation_curve.png`: help_e0 against K when the K hidden units of highest MNS
   (probe set (a)) are mean-ablated, beside random units with the same count per layer
   (`mirror.rl.ablation.ablation_curve`, loaded as `mirror ablate` loads a trial:
   the last checkpoint, the run's held-out report games, mean activations over the on-policy
   probe rows (b), the same fixed keys), on the helping trials (help_e0 >= 0.1). The per-trial
   numbers go to a JSON file; `--replot` draws the figure from it without recomputing.

`--rate help_given_opportunity --prefix replication_ --by-d` draws the replication's
(docs/theory_replication.md): its helping measure, and the ablation gap one line per D.

    uv run python scripts/theory_figures.py sweeps/sweep-rl-stakes --out docs/ \
        --json docs/results/sweep_rl_stakes_ablation_curve.json
    uv run python scripts/theory_figures.py sweeps/sweep-rl-replication --out docs/ --rate help_given_opportunity \
        --prefix replication_ --by-d --json docs/results/sweep_rl_replication_ablation_curve.json
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator
from scipy import stats

HELPING = 0.1  # H6's helping trials: the helping rate >= 0.1 at the last checkpoint
# --rate: the helping measure (the first experiment's help_e0; the replication's help given
# opportunity, docs/theory_replication.md) -> its column in metrics.jsonl and baselines.json
RATES = {"help_e0": "help_when_partner_energy0", "help_given_opportunity": "help_given_opportunity"}
D_COLOURS = ("#1565c0", "#2e7d32", "#c62828", "#6a1b9a", "#ef6c00")
KS = (1, 2, 4, 8, 16)  # K = 0 is the intact agents
VEIL_COLOURS = {0.0: "#1565c0", 1.0: "#ef6c00"}
# (baselines.json key, label, colour, dash)
BASELINES = (
    ("hop_jump", "hop_jump pair", "#6d4c41", (0, (5, 2))),
    ("helper_hop_jump", "helper pair (hop_jump)", "#00897b", (0, (5, 2))),
    ("oracle", "label oracle pair", "#d81b60", (0, (1, 2))),
)
TOP_COLOUR, RANDOM_COLOUR = "#c62828", "#546e7a"


def read_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def trials(sweep_dir: Path) -> list[dict]:
    """Every trial: {"dir", "population" (its run dir under SWEEP_DIR/populations), "member",
    "D", "I", "w", "seed", and each of RATES (the held-out report games of the last checkpoint,
    as in the sweep's summary.csv)}."""
    out = []
    for trial in sorted((sweep_dir / "trials").iterdir()):
        if not (trial / "population.json").is_file():
            continue
        pop = json.loads((trial / "population.json").read_text())
        population = sweep_dir / "populations" / Path(pop["run_dir"]).name
        member = json.loads((population / "rl_run.json").read_text())["members"][pop["rl_member"]]
        last = read_lines(population / "metrics.jsonl")[-1]
        out.append({
            "dir": trial, "population": population, "member": int(pop["rl_member"]),
            "D": float(member["env"]["dependency"]), "I": float(member["env"]["veil"]),
            "w": float(member["partner_reward_weight"]), "seed": int(member["seed"]),
            **{rate: None if last.get(column) is None or last[column][pop["rl_member"]] is None
               else float(last[column][pop["rl_member"]]) for rate, column in RATES.items()},
        })  # fmt: skip
    if not out:
        sys.exit(f"{sweep_dir}/trials holds no sweep trials (population.json)")
    return out


# ----------------------------------------------------------------------------- figure 1


def population_curves(population: Path) -> dict:
    """{"turns": f[updates], "return": f[updates, members] (mean of the two players; NaN where
    no episode ended), "ck_turns": f[checkpoints], "ck_return", "ck_<rate>": f[checkpoints,
    members] for each of RATES, "baselines": {key: {"return" and each rate: f[members]}}}."""
    updates = read_lines(population / "rl_metrics.jsonl")
    turns = np.asarray([u["env_turns"] for u in updates], float)
    ret = np.asarray(
        [[np.nan if r is None or None in r else np.mean(r) for r in u["return_per_player"]] for u in updates], float
    )  # fmt: skip
    checkpoints = read_lines(population / "metrics.jsonl")
    base = json.loads((population / "baselines.json").read_text())

    def column(rows, key):
        return np.asarray([[np.nan if v is None else v for v in r[key]] for r in rows], float)

    return {
        "turns": turns,
        "return": ret,
        "ck_turns": np.asarray([c["env_turns"] for c in checkpoints], float),
        "ck_return": column(checkpoints, "return_agent"),
        **{f"ck_{rate}": column(checkpoints, c) for rate, c in RATES.items() if c in checkpoints[0]},
        "baselines": {k: {"return": np.asarray(base[k]["return"], float), **{rate: np.asarray(
            [np.nan if v is None else v for v in base[k][c]], float) for rate, c in RATES.items() if c in base[k]}}
            for k, _, _, _ in BASELINES},
    }  # fmt: skip


def learning_curves_figure(rows: list[dict], rate: str = "help_e0") -> Figure:
    """Two 3 x 3 grids (rows D, columns w): the return per update, then `rate` per checkpoint."""
    data = {p: population_curves(p) for p in sorted({r["population"] for r in rows})}
    ds, ws = sorted({r["D"] for r in rows}), sorted({r["w"] for r in rows})
    fig = Figure(figsize=(4.2 * len(ws), 3.0 * 2 * len(ds) + 1.2))
    axes = fig.subplots(2 * len(ds), len(ws), sharex=True, squeeze=False)
    for block, metric in enumerate(("return", rate)):
        for i, d in enumerate(ds):
            for j, w in enumerate(ws):
                ax = axes[block * len(ds) + i][j]
                cell = [r for r in rows if r["D"] == d and r["w"] == w]
                for veil in sorted({r["I"] for r in cell}):
                    colour = VEIL_COLOURS.get(veil, "black")
                    members = [(data[r["population"]], r["member"]) for r in cell if r["I"] == veil]
                    if metric == "return":
                        x = members[0][0]["turns"] / 1e6
                        ys = np.stack([c["return"][:, m] for c, m in members], axis=1)
                        ax.plot(x, ys, color=colour, lw=0.5, alpha=0.35)
                        ax.plot(x, np.nanmean(ys, axis=1), color=colour, lw=1.6)
                        ck = np.stack([c["ck_return"][:, m] for c, m in members], axis=1)
                        ax.plot(members[0][0]["ck_turns"] / 1e6, np.nanmean(ck, axis=1), "o", ms=4, color=colour, mec="black", mew=0.5)
                    else:
                        x = members[0][0]["ck_turns"] / 1e6
                        ys = np.stack([c[f"ck_{rate}"][:, m] for c, m in members], axis=1)
                        ax.plot(x, ys, color=colour, lw=0.5, alpha=0.35, marker=".", ms=3)
                        ax.plot(x, np.nanmean(ys, axis=1), color=colour, lw=1.6, marker="o", ms=4, mec="black", mew=0.5)
                key = metric
                for name, label, colour, dash in BASELINES:
                    values = [data[r["population"]]["baselines"][name][key][r["member"]] for r in cell]
                    values = [v for v in values if np.isfinite(v)]
                    if values:
                        ax.axhline(np.mean(values), color=colour, ls=dash, lw=1.1)
                        ax.annotate(f"{np.mean(values):.1f}" if key == "return" else f"{np.mean(values):.2f}",
                                    (1.0, np.mean(values)), xycoords=("axes fraction", "data"), fontsize=6,
                                    color=colour, ha="right", va="bottom")  # fmt: skip
                ax.set_title(f"D = {d:g}, w = {w:g}", fontsize=9)
                ax.grid(alpha=0.3)
                if j == 0:
                    ax.set_ylabel("return per player\nper episode" if metric == "return" else rate.replace("_", " "))
                if block == 1 and i == len(ds) - 1:
                    ax.set_xlabel("trained env turns per trial (millions)")
                if metric != "return":
                    ax.set_ylim(-0.05, 1.05)
        # one y-range for the return block
        if metric == "return":
            block_axes = [axes[i][j] for i in range(len(ds)) for j in range(len(ws))]
            low, high = min(a.get_ylim()[0] for a in block_axes), max(a.get_ylim()[1] for a in block_axes)
            for a in block_axes:
                a.set_ylim(low, high)
    handles = [Line2D([], [], color=c, lw=1.6, label=f"veil I = {v:g} (thin: each of 5 seeds; bold: mean)") for v, c in VEIL_COLOURS.items()]
    handles.append(Line2D([], [], color="grey", marker="o", ls="none", mec="black", label="held-out report games per checkpoint (mean over seeds)"))
    handles += [Line2D([], [], color=c, ls=dash, label=f"{label} (report games of that D)") for _, label, c, dash in BASELINES]
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 1.0 / fig.get_figheight()))
    return fig


# ----------------------------------------------------------------------------- figure 2


def ablation_of_trial(trial: Path, ks, draws: int) -> dict:
    """`ablation_curve` of member 0 of a trial, loaded as `mirror ablate TRIAL --mode mean` loads it."""
    from mirror.runs.ablation import DRAW_STREAM, load_subject, probe_a_mns
    from mirror.rl.ablation import ablation_curve, ablation_values
    from mirror.runs.checkpoints import read_probes, read_rl_run
    from mirror.runs.rl_run import fixed_key

    trial = trial.absolute()
    rl_run = read_rl_run(trial)
    subject = load_subject(trial, None, 0, rl_run, read_probes(trial))
    agents, evaluation = subject.agents, subject.evaluation
    mns, _ = probe_a_mns(agents)
    values = ablation_values(agents.params, subject.rows, "mean", agents.activation)
    seed = int(evaluation["seed"])
    out = ablation_curve(
        agents.params, mns, values, ks, agents.env_params, fixed_key(seed, int(evaluation["report_stream"])),
        fixed_key(seed, DRAW_STREAM), games=int(evaluation["games"]), turns=int(evaluation["turns"]), draws=draws,
        activation=agents.activation, greedy=bool(evaluation.get("greedy", False)), shared=agents.sharing == "shared",
    )  # fmt: skip
    out["checkpoint"] = agents.checkpoint
    return out


def compute_ablation(rows: list[dict], ks, draws: int, limit: int | None, rate: str = "help_e0") -> dict:
    from mirror.runs.ablation import json_value

    helping = [r for r in rows if r[rate] is not None and r[rate] >= HELPING]
    if limit:
        helping = helping[:: max(1, len(helping) // limit)][:limit]
    per_trial, start = [], time.perf_counter()
    for n, r in enumerate(helping):
        t0 = time.perf_counter()
        curve = ablation_of_trial(r["dir"], ks, draws)
        per_trial.append({
            "trial": r["dir"].name, "D": r["D"], "I": r["I"], "w": r["w"], "seed": r["seed"],
            "checkpoint": curve["checkpoint"], "intact": curve["intact"], "top_mns": curve["top_mns"],
            "random_mean": curve["random_mean"], "random_sd": curve["random_sd"], "gap": curve["gap"],
            "counts_per_layer": np.asarray(curve["counts"])[:, 0].tolist(), "seconds": round(time.perf_counter() - t0, 2),
        })  # fmt: skip
        print(f"[{n + 1}/{len(helping)}] {r['dir'].name}: {per_trial[-1]['seconds']} s", flush=True)
    return json_value({
        "what": f"{rate} (and the other rates) of each helping trial's agents with the K hidden units of highest MNS "
                "(probe set (a)) mean-ablated, and the mean and sd over `draws` random ablations with the same count "
                "per layer (mirror.rl.ablation.ablation_curve; the trial's last checkpoint, its held-out report "
                "games, mean activations over the on-policy probe rows (b), the keys of `mirror ablate`)",
        "rate": rate, "helping": f"{rate} >= {HELPING}", "ks": list(ks), "draws": draws, "trials": len(per_trial),
        "seconds": round(time.perf_counter() - start, 1), "per_trial": per_trial,
    })  # fmt: skip


def curve_summary(result: dict, rate: str | None = None, pick=None) -> dict:
    """Over trials (those `pick` keeps, default all), per K (0 = intact): mean, sd and the 95 %
    t interval's half width of top-MNS, random (each trial's mean over draws) and their gap
    (random - top), of `rate` (default the result's own: help_e0 in results written before
    the field)."""
    rate = rate or RATES[result.get("rate", "help_e0")]
    ks = [0] + list(result["ks"])
    trials_ = [t for t in result["per_trial"] if pick is None or pick(t)]
    intact = np.asarray([t["intact"][rate] for t in trials_], float)
    top = np.column_stack([intact] + [np.asarray([t["top_mns"][rate][i] for t in trials_], float) for i in range(len(ks) - 1)])
    rnd = np.column_stack([intact] + [np.asarray([t["random_mean"][rate][i] for t in trials_], float) for i in range(len(ks) - 1)])

    def describe(x):
        n = np.sum(np.isfinite(x), axis=0)
        mean, sd = np.nanmean(x, axis=0), np.nanstd(x, axis=0, ddof=1)
        half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
        return {"mean": mean.tolist(), "sd": sd.tolist(), "ci95_half": half.tolist(), "n": n.tolist()}

    return {"rate": rate, "k": ks, "trials": len(trials_), "top_mns": describe(top), "random": describe(rnd), "gap": describe(rnd - top)}


def ablation_figure(result: dict, by_d: bool = False) -> Figure:
    """Left: the rate with K top-MNS against K random units mean-ablated (all helping trials);
    right: the gap (random - top), over all trials or, with `by_d`, one line per D."""
    name = result.get("rate", "help_e0").replace("_", " ")
    s = curve_summary(result)
    k = np.asarray(s["k"], float)
    fig = Figure(figsize=(10.5, 4.2))
    left, right = fig.subplots(1, 2)
    for key, label, colour in (("top_mns", "top-MNS units", TOP_COLOUR), ("random", f"random units (mean of {result['draws']} draws)", RANDOM_COLOUR)):
        m, h = np.asarray(s[key]["mean"]), np.asarray(s[key]["ci95_half"])
        left.plot(k, m, "o-", color=colour, label=label)
        left.fill_between(k, m - h, m + h, color=colour, alpha=0.2)
    left.axhline(s["top_mns"]["mean"][0], color="black", ls=(0, (5, 2)), lw=1, label="intact agents")
    left.set_ylabel(name)
    left.set_title(f"{name} with K units mean-ablated ({result['trials']} helping trials)", fontsize=9)
    groups = [(None, "all helping trials", "black")]
    if by_d:
        ds = sorted({t["D"] for t in result["per_trial"]})
        groups = [(d, f"D = {d:g}", D_COLOURS[i % len(D_COLOURS)]) for i, d in enumerate(ds)]
    for d, label, colour in groups:
        g_s = s if d is None else curve_summary(result, pick=lambda t, d=d: t["D"] == d)
        g, h = np.asarray(g_s["gap"]["mean"]), np.asarray(g_s["gap"]["ci95_half"])
        right.plot(k, g, "o-", color=colour, label=f"{label} ({g_s['trials']} trials)")
        right.fill_between(k, g - h, g + h, color=colour, alpha=0.15)
    right.axhline(0, color="grey", lw=0.8)
    right.set_ylabel(f"random - top-MNS {name}")
    right.set_title("the ablation gap (extra drop under top-MNS units)" + (", by D" if by_d else ""), fontsize=9)
    if by_d:
        right.legend(fontsize=8, loc="upper left")
    for ax in (left, right):
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(k, [f"{int(x)}" for x in k])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("K (hidden units ablated, of 34)")
        ax.grid(alpha=0.3)
    left.legend(fontsize=8, loc="lower left")
    fig.text(0.5, 0.005, "mean over trials; bands: 95 % t interval over trials (trials as units)", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def write_result(path: Path, result: dict) -> None:
    """The JSON with one line per trial."""
    head = {k: v for k, v in result.items() if k != "per_trial"}
    text = json.dumps(head, indent=1)[:-2] + ',\n "per_trial": [\n'
    text += ",\n".join("  " + json.dumps(t) for t in result["per_trial"]) + "\n ]\n}\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder of the PNGs (default docs/)")
    parser.add_argument("--json", type=Path, default=Path("docs/results/sweep_rl_stakes_ablation_curve.json"))
    parser.add_argument("--only", choices=("curves", "ablation"), help="draw one figure only")
    parser.add_argument("--replot", action="store_true", help="draw the ablation curve from --json, computing nothing")
    parser.add_argument("--ks", type=int, nargs="+", default=list(KS), help=f"K > 0 (default {' '.join(map(str, KS))}; 0 is the intact agents)")
    parser.add_argument("--draws", type=int, default=20, help="random draws per K (default 20)")
    parser.add_argument("--trials", type=int, default=None, help="at most this many helping trials, spread over the list (default all)")
    parser.add_argument("--rate", choices=tuple(RATES), default="help_e0",
                        help="the helping measure of the curves and of the helping trials (default help_e0, the first experiment's; "
                             "the replication's: help_given_opportunity)")
    parser.add_argument("--prefix", default="theory_", help="the PNGs' name prefix (default theory_)")
    parser.add_argument("--by-d", action="store_true", help="the ablation gap one line per D")
    args = parser.parse_args()
    if not (args.sweep_dir / "trials").is_dir():
        sys.exit(f"{args.sweep_dir} is not a sweep directory (no trials/)")
    if any(k < 1 for k in args.ks) or args.draws < 1:
        sys.exit("--ks must be positive and --draws >= 1")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = trials(args.sweep_dir)
    if args.only != "ablation":
        path = args.out / f"{args.prefix}learning_curves.png"
        learning_curves_figure(rows, args.rate).savefig(path, dpi=90)
        print(f"wrote {path}")
    if args.only != "curves":
        if args.replot:
            result = json.loads(args.json.read_text())
        else:
            result = compute_ablation(rows, args.ks, args.draws, args.trials, args.rate)
            result["summary"] = curve_summary(result)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            write_result(args.json, result)
            print(f"wrote {args.json} ({result['trials']} trials, {result['seconds']} s)")
        path = args.out / f"{args.prefix}ablation_curve.png"
        ablation_figure(result, args.by_d).savefig(path, dpi=110)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
