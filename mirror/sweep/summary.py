"""The sweep's results: one table row per trial, the extreme checkpoints, the figures.

    SWEEP_DIR/summary.csv            one row per finished trial (see COLUMNS)
    SWEEP_DIR/top_checkpoints.csv    the five highest-CMNI checkpoints (paper Table 1)
    SWEEP_DIR/bottom_checkpoints.csv the five lowest-CMNI checkpoints (paper Table 2)
    SWEEP_DIR/figures/cmni_vs_capacity.png, cmni_vs_theory.png
    SWEEP_DIR/report.md              the tables and figures in one page
    SWEEP_DIR/comparison.md, figures/comparison.png
                                     with at most 6 settings (trials that differ only in
                                     their seed): the settings side by side (mirror.sweep.compare)

Every CMNI verdict here is the comparison with random initialisation (`p_init`, the
trial's rank among untrained networks of its architecture); the permutation p
(`p_value`) only says that the scenario groups' activations differ, which untrained
networks show too.

RL sweeps (`mode: rl`) write summary.csv with RL_COLUMNS (returns of the agents and of
the behaviour, oracle and hop_jump baselines, help rates, CMNI on both probe sets and
their random-init p, env turns, and the theory experiment's measures that `mirror theory`
tests: `mirror.sweep.theory`),
the checkpoint tables by update, figures/help_vs_theory.png (help rate against D and
w, CMNI against D) and a report table of help rate and CMNI by D, I and w.

Everything is rebuilt from the trials' result.json and cmni.csv files, so it can be
written by any process once the shards are done (`mirror sweep CONFIG --summary-only`).
"""

import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mirror.runs.outputs import write_csv
from mirror.runs.report import read_csv
from mirror.runs.rl_figures import help_by_dependency_figure
from mirror.sweep.compare import write_comparison
from mirror.sweep.spec import Sweep
from mirror.rl.deviation import DEVIATIONS
from mirror.sweep.trial import finished_result

COLUMNS = [
    "trial", "trial_id", "seed", "hidden_layers", "width", "capacity", "dropout", "lr", "l2", "batch_size",
    "dependency", "veil", "epochs", "diverged", "best_epoch", "best_val_loss", "accuracy",
    "peak_cmni", "peak_epoch", "final_cmni", "cmni_at_best", "p_value", "p_value_peak", "p_init", "p_init_peak", "dir",
]  # fmt: skip
CHECKPOINT_COLUMNS = ["trial", "lr", "hidden_layers", "width", "epoch", "val_loss", "mne", "cmni"]
RL_COLUMNS = [
    "trial", "trial_id", "seed", "dependency", "veil", "partner_reward_weight", "lr", "sharing", "hidden_layers", "width",
    "updates", "env_turns", "return_agent", "return_behaviour", "return_oracle", "return_hop_jump", "help_rate",
    "help_when_partner_distressed", "help_when_partner_energy0", "cmni", "cmni_onpolicy", "p_init", "p_init_onpolicy",
    "peak_cmni", "peak_update", "cmni_scaled", "cmni_scaled_onpolicy", "init_scaled_mean", "init_scaled_sd", "z_init",
    "p_init_scaled", "return_slope", "return_change_last_quarter", "ablation_gap",
    "help_given_opportunity", *(f"gain_{d}{s}" for d in DEVIATIONS for s in ("", "_low", "_high")), "at_best_response", "dir",
]  # fmt: skip
RL_CHECKPOINT_COLUMNS = ["trial", "dependency", "veil", "partner_reward_weight", "update", "network", "cmni"]
# The settings an RL theory table groups by, and the means it shows.
RL_SETTINGS = ["dependency", "veil", "partner_reward_weight"]
RL_MEANS = ["return_agent", "return_behaviour", "return_oracle", "return_hop_jump", "help_rate", "help_when_partner_distressed", "cmni", "cmni_onpolicy"]
# The theory table's verdict columns: trials whose final CMNI is above the random-init
# null (p_init <= ALPHA) out of those tested, on probe set (a) and on (b).
RL_VERDICTS = {"above_init": "p_init", "above_init_onpolicy": "p_init_onpolicy"}
ALPHA = 0.05
EXTREMES = 5


def collect(sweep: Sweep, sweep_dir: Path) -> list[dict]:
    """Result rows of the finished trials, in sweep order."""
    rows = [finished_result(sweep_dir, t) for t in sweep.trials]
    return [r for r in rows if r is not None]


def swept_columns(sweep: Sweep) -> list[str]:
    """Swept fields that are not already a standard column (e.g. env.death_cost)."""
    if sweep.mode == "rl":
        standard = {"seed", "model.hidden_layers", "model.width", "rl.lr", "rl.partner_reward_weight", "rl.sharing", "env.dependency", "env.veil"}
    else:
        standard = {"seed", "model.hidden_layers", "model.width", "model.dropout", "train.lr", "train.l2", "train.batch_size", "env.dependency", "env.veil"}
    return [f for f in sweep.swept if f not in standard]


def rl_checkpoint_rows(sweep_dir: Path, results: list[dict]) -> list[dict]:
    """Every checkpoint of every network of every finished RL trial (CMNI on probe set a)."""
    out = []
    for r in results:
        path = Path(sweep_dir) / r["dir"] / "cmni.csv"
        if not path.is_file():
            continue
        for row in read_csv(path):
            cmni = float(row["cmni"]) if row["cmni"] else math.nan
            if math.isfinite(cmni):
                settings = {k: r[k] for k in RL_SETTINGS}
                out.append({"trial": r["trial"], **settings, "update": int(row["epoch"]), "network": int(row["member"]), "cmni": cmni})
    return out


def above_init_count(results: list[dict], key: str = "p_init") -> str | None:
    """"k/n": of the n trials with a random-init p in `key`, the k at or below ALPHA."""
    tested = [r[key] for r in results if r.get(key) is not None]
    return f"{sum(p <= ALPHA for p in tested)}/{len(tested)}" if tested else None


def rl_theory_rows(results: list[dict]) -> list[dict]:
    """One row per (D, I, w) setting: the means over its trials (seeds) of RL_MEANS and,
    as `<key>_sd`, their sample standard deviations (None where no trial has a value; the
    sd also with a single value), with the trial count, and RL_VERDICTS' counts of trials
    above the random-init null."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault(tuple(r[k] for k in RL_SETTINGS), []).append(r)
    rows = []
    for setting in sorted(groups):
        members = groups[setting]
        row = dict(zip(RL_SETTINGS, setting), trials=len(members))
        for key in RL_MEANS:
            values = [m[key] for m in members if m.get(key) is not None and math.isfinite(m[key])]
            row[key] = sum(values) / len(values) if values else None
            row[f"{key}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        row.update({name: above_init_count(members, key) for name, key in RL_VERDICTS.items()})
        rows.append(row)
    return rows


def _mean_sd(row: dict, key: str) -> str:
    """"mean ± sd" of a theory row (just the mean without an sd)."""
    if row[key] is None:
        return "-"
    mean = f"{row[key]:.4g}"
    return mean if row[f"{key}_sd"] is None else f"{mean} ± {row[f'{key}_sd']:.2g}"


def checkpoint_rows(sweep_dir: Path, results: list[dict]) -> list[dict]:
    """Every checkpoint of every finished trial, with its trial's settings."""
    out = []
    for r in results:
        if not r["epochs"]:  # diverged before its first checkpoint
            continue
        for row in read_csv(Path(sweep_dir) / r["dir"] / "cmni.csv"):
            cmni = float(row["cmni"]) if row["cmni"] else math.nan
            if math.isfinite(cmni):
                out.append({
                    "trial": r["trial"], "lr": r["lr"], "hidden_layers": r["hidden_layers"], "width": r["width"],
                    "epoch": int(row["epoch"]), "val_loss": float(row["val_loss"]), "mne": float(row["mne"]), "cmni": cmni,
                })  # fmt: skip
    return out


def extremes(checkpoints: list[dict], n: int = EXTREMES) -> tuple[list[dict], list[dict]]:
    """(highest n, lowest n) checkpoints by CMNI."""
    ranked = sorted(checkpoints, key=lambda c: (-c["cmni"], c["trial"], c["epoch"]))
    return ranked[:n], ranked[::-1][:n]


def write_summary(sweep: Sweep, sweep_dir: str | Path) -> dict:
    """Write every summary file; returns {"finished": k, "trials": N, "files": [...]}."""
    sweep_dir = Path(sweep_dir)
    results = collect(sweep, sweep_dir)
    if sweep.mode == "rl":
        return write_rl_summary(sweep, sweep_dir, results)
    extra = swept_columns(sweep)
    header = COLUMNS[:-1] + extra + ["dir"]
    rows = [[r.get(c, r["fields"].get(c)) for c in header] for r in results]
    files = [write_csv(sweep_dir / "summary.csv", header, rows)]
    top, bottom = extremes(checkpoint_rows(sweep_dir, results))
    files.append(write_csv(sweep_dir / "top_checkpoints.csv", CHECKPOINT_COLUMNS, [[c[k] for k in CHECKPOINT_COLUMNS] for c in top]))
    files.append(write_csv(sweep_dir / "bottom_checkpoints.csv", CHECKPOINT_COLUMNS, [[c[k] for k in CHECKPOINT_COLUMNS] for c in bottom]))
    if results:
        files.append(plot_capacity(sweep_dir / "figures" / "cmni_vs_capacity.png", results))
        files.append(plot_theory(sweep_dir / "figures" / "cmni_vs_theory.png", results))
    compared = write_comparison(sweep, sweep_dir, results)
    files += compared
    files.append(write_markdown(sweep, sweep_dir, results, top, bottom, compared=bool(compared)))
    return {"finished": len(results), "trials": len(sweep.trials), "files": files, "results": results}


def write_rl_summary(sweep: Sweep, sweep_dir: Path, results: list[dict]) -> dict:
    """The summary files of an RL sweep (see the module docstring)."""
    extra = swept_columns(sweep)
    header = RL_COLUMNS[:-1] + extra + ["dir"]
    rows = [[r.get(c, r["fields"].get(c)) for c in header] for r in results]
    files = [write_csv(sweep_dir / "summary.csv", header, rows)]
    ranked = sorted(rl_checkpoint_rows(sweep_dir, results), key=lambda c: (-c["cmni"], c["trial"], c["update"], c["network"]))
    top, bottom = ranked[:EXTREMES], ranked[::-1][:EXTREMES]
    for name, table in (("top_checkpoints", top), ("bottom_checkpoints", bottom)):
        files.append(write_csv(sweep_dir / f"{name}.csv", RL_CHECKPOINT_COLUMNS, [[c[k] for k in RL_CHECKPOINT_COLUMNS] for c in table]))
    if results:
        figure = help_by_dependency_figure(
            results, metrics=("help_rate", "help_when_partner_distressed", "cmni", "cmni_onpolicy"),
            title=f"Self-play agents against the dependency D ({len(results)} trials)",
        )
        files.append(_save(figure, sweep_dir / "figures" / "help_vs_theory.png"))
    files.append(write_rl_markdown(sweep, sweep_dir, results, top))
    return {"finished": len(results), "trials": len(sweep.trials), "files": files, "results": results}


def write_rl_markdown(sweep: Sweep, sweep_dir: Path, results: list[dict], top: list[dict]) -> Path:
    out = [f"# RL sweep report: {sweep.name}", ""]
    out += [f"{len(results)} of {len(sweep.trials)} trials finished. Swept: {', '.join(sweep.swept) or 'nothing'}.", ""]
    if results:
        above, above_b = above_init_count(results, "p_init"), above_init_count(results, "p_init_onpolicy")
        out += [
            "CMNI against untrained networks (the verdict): trials whose CMNI at the final checkpoint is above the random-init "
            "null (p_init <= 0.05: rank among random actor-critic initialisations on the same rows): "
            f"{above or 'not tested'} on probe set (a), {above_b or 'not tested'} on the on-policy probe set (b).",
            "",
            "## Help rate and CMNI by D, I and w (mean ± sd over seeds)",
            "",
            *_table(
                [{**r, **{k: _mean_sd(r, k) for k in RL_MEANS}} for r in rl_theory_rows(results)],
                RL_SETTINGS + ["trials"] + RL_MEANS + list(RL_VERDICTS),
            ),
            "",
            "above_init, above_init_onpolicy: trials above the random-init null (final checkpoint, p <= 0.05) out of those tested.",
            "",
            "![help rates and CMNI against D, per w and I](figures/help_vs_theory.png)",
            "",
            "## Highest-CMNI checkpoints (probe set a)",
            "",
            *_table(top, RL_CHECKPOINT_COLUMNS),
            "",
            "## Trials",
            "",
            *_table(results, [c for c in RL_COLUMNS if c not in ("trial_id", "dir")]),
            "",
        ]
    path = Path(sweep_dir) / "report.md"
    path.write_text("\n".join(out) + "\n")
    return path


def _values(results: list[dict], key: str) -> np.ndarray:
    return np.asarray([np.nan if r.get(key) is None else r[key] for r in results], np.float64)


DPI = 130


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI)
    return path


def plot_capacity(path: Path, results: list[dict]) -> Path:
    return _save(capacity_figure(results), path)


def capacity_figure(results: list[dict]) -> Figure:
    """Peak CMNI and CMNI at the best-validation checkpoint against layers x width.
    One legend for both panels, outside them (constrained layout), so it hides no point."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    layers = _values(results, "hidden_layers")
    capacity = _values(results, "capacity")
    for ax, key, title in zip(fig.subplots(1, 2), ("peak_cmni", "cmni_at_best"), ("peak CMNI over epochs", "CMNI at the best-validation checkpoint")):
        y = _values(results, key)
        for depth in sorted(set(layers[np.isfinite(layers)].astype(int))):
            pick = layers == depth
            ax.scatter(capacity[pick], y[pick], s=28, alpha=0.8, label=f"{depth} hidden layer{'s' if depth > 1 else ''}")
        ax.set_xlabel("capacity: hidden layers x units per layer")
        ax.set_ylabel("CMNI")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()  # both panels draw the same depths
    fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    fig.suptitle(f"CMNI against model capacity ({len(results)} trials)")
    return fig


def plot_theory(path: Path, results: list[dict]) -> Path:
    return _save(theory_figure(results), path)


def theory_figure(results: list[dict]) -> Figure:
    """CMNI against agent dependency D and the veil of ignorance I: trials as points,
    the mean over trials at each setting as a line. One legend, outside the panels."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    y = _values(results, "peak_cmni")
    for ax, key, label in zip(fig.subplots(1, 2), ("dependency", "veil"), ("dependency D", "veil of ignorance I")):
        x = _values(results, key)
        ax.scatter(x, y, s=22, alpha=0.6, color="#2e7d32", label="one trial")
        settings = np.unique(x[np.isfinite(x)])
        means = [np.nanmean(y[x == s]) for s in settings]
        ax.plot(settings, means, "-o", color="black", lw=1.5, label="mean over trials")
        ax.set_xlabel(label)
        ax.set_ylabel("peak CMNI")
        ax.grid(alpha=0.3)
        if len(settings) == 1:
            ax.set_title(f"{label} fixed at {settings[0]:g} in this sweep", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    fig.suptitle("CMNI against the game's theory knobs")
    return fig


def _table(rows: list[dict], columns: list[str]) -> list[str]:
    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.5g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]


def model_shape(row: dict) -> str:
    """"2 x 17" for an MLP trial's row; a transformer's row has no layers x width."""
    return "transformer" if row["hidden_layers"] is None else f"{row['hidden_layers']} x {row['width']}"


def write_markdown(sweep: Sweep, sweep_dir: Path, results: list[dict], top: list[dict], bottom: list[dict], *, compared: bool = False) -> Path:
    out = [f"# Sweep report: {sweep.name}", ""]
    out += [f"{len(results)} of {len(sweep.trials)} trials finished. Swept: {', '.join(sweep.swept) or 'nothing'}.", ""]
    if compared:
        out += ["The settings side by side (accuracy, recall, every CMNI variant, verdicts over seeds): [comparison.md](comparison.md).", ""]
    scored = [r for r in results if r["peak_cmni"] is not None]
    diverged = sum(1 for r in results if r["diverged"])
    if diverged:
        out += [f"{diverged} trial(s) diverged (non-finite loss): their rows end at the last finite epoch.", ""]
    if scored:
        best = max(scored, key=lambda r: r["peak_cmni"])
        above = sum(1 for r in results if r.get("p_init") is not None and r["p_init"] <= 0.05)
        tested = sum(1 for r in results if r.get("p_init") is not None)
        differ = sum(1 for r in results if r["p_value"] is not None and r["p_value"] <= 0.05)
        verdict = (
            f"At the best-validation checkpoint {above} of {tested} tested trials have a CMNI above the random-init null (p_init <= 0.05: "
            f"rank among untrained networks of the same architecture); that is the verdict. {differ} of {len(results)} pass the "
            "permutation test (p_value <= 0.05), which shows only that the scenario groups' activations differ: untrained networks pass it too."
            if tested else
            f"No trial was compared with random initialisation (analysis.init_seeds = 0), so no verdict on the CMNI; {differ} of "
            f"{len(results)} pass the permutation test (p_value <= 0.05), which shows only that the groups' activations differ."
        )  # fmt: skip
        out += [
            f"Highest peak CMNI: {best['peak_cmni']:.5g} (trial {best['trial']}: {model_shape(best)}, "
            f"lr {best['lr']:g}, epoch {best['peak_epoch']}). {verdict}",
            "",
            "## Highest-CMNI checkpoints (paper Table 1)",
            "",
            *_table(top, CHECKPOINT_COLUMNS),
            "",
            "## Lowest-CMNI checkpoints (paper Table 2)",
            "",
            *_table(bottom, CHECKPOINT_COLUMNS),
            "",
            "## Figures",
            "",
            "![CMNI against capacity](figures/cmni_vs_capacity.png)",
            "",
            "![CMNI against D and I](figures/cmni_vs_theory.png)",
            "",
            "## Trials",
            "",
            *_table(
                [{**r, **{f: r["fields"].get(f) for f in swept_columns(sweep)}} for r in results],
                ["trial", "hidden_layers", "width", *swept_columns(sweep), "lr", "dependency", "veil", "seed", "best_val_loss", "accuracy", "peak_cmni", "peak_epoch", "cmni_at_best", "p_init", "p_value"],
            ),
            "",
        ]
    path = Path(sweep_dir) / "report.md"
    path.write_text("\n".join(out) + "\n")
    return path

