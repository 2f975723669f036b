"""`mirror theory SWEEP_DIR --plan replication`: the registered tests of
`docs/theory_replication.md` (`mirror.analysis.replication`) on the replication sweep's
finished trials, and their report.

    SWEEP_DIR/replication.md      the tests (statistic, p, Holm p, verdict, power), the
                                  secondary tests, H6 by D, the convergence rule per cell
    SWEEP_DIR/replication.json    the same, every number, and each trial's values
    SWEEP_DIR/figures/replication_help.png              help given opportunity, D x w per veil
    SWEEP_DIR/figures/replication_cmni_vs_help.png      cmni_a against help: across trials, and
                                                        within settings (each centred on its setting)
    SWEEP_DIR/figures/replication_deviation_gains.png   each trial's three deviation gains, by cell

The trials' rows are read as the first plan reads them (`mirror.sweep.theory`); H6's gap is
the drop of help given opportunity in each trial's ablation.json (`mirror ablate`), which
also fills summary.csv's ablation_gap.
"""

import json
from pathlib import Path

import numpy as np

from mirror.analysis import hypotheses
from mirror.analysis.replication import POWER_DRAWS, converged, replication_tests
from mirror.analysis.sensitivity import setting_labels
from mirror.base.errors import UsageError
from mirror.base.files import require_writable
from mirror.rl.deviation import DEVIATIONS
from mirror.runs.checkpoints import write_json_atomic, write_text_atomic
from mirror.sweep.theory import (
    ABLATION_FILE,
    fill_ablation_gaps,
    finite_json,
    format_p,
    help_figure,
    read_results,
    save_figure,
    trial_measures,
)

# The replication's measures (docs/theory_replication.md) beyond MEASURE_COLUMNS.
REPLICATION_COLUMNS = {
    "help_go": "help_given_opportunity",
    "return_change_last_quarter": "return_change_last_quarter",
    "at_best_response": "at_best_response",
}
REPLICATION_RATE = "help_given_opportunity"  # H6's gap in the replication: ablation.json's gap of this rate
HELP_FIGURE = "replication_help.png"
CMNI_FIGURE = "replication_cmni_vs_help.png"
GAINS_FIGURE = "replication_deviation_gains.png"
SETTING = ("dependency", "veil", "partner_reward_weight")


def run_replication(sweep_dir, *, json_path=None, permutations: int = hypotheses.PERMUTATIONS, seed: int = hypotheses.SEED,
                    power_designs: int = POWER_DRAWS) -> dict:  # fmt: skip
    """The registered tests on SWEEP_DIR's finished trials; writes replication.json (and a
    copy at `json_path`), replication.md, the three figures and summary.csv's ablation_gap."""
    sweep_dir = Path(sweep_dir)
    rows = read_results(sweep_dir)
    measures = trial_measures(rows, sweep_dir)
    missing = sorted({c for r in rows for c in REPLICATION_COLUMNS.values() if c not in r})
    if missing:
        raise UsageError(f"{sweep_dir}: the trials' result rows lack the column(s) {', '.join(missing)} that the replication's tests need")
    for m, c in REPLICATION_COLUMNS.items():
        measures[m] = np.asarray([np.nan if r.get(c) is None else float(r[c]) for r in rows], np.float64)
    gaps = [rate_gap(sweep_dir, r) for r in rows]
    measures["ablation_gap"] = np.asarray([np.nan if g is None else g for g in gaps], np.float64) if any(g is not None for g in gaps) else None
    require_writable(sweep_dir, "sweep directory", UsageError)
    if json_path:
        require_writable(Path(json_path).parent, "--json directory", UsageError)
    tests = replication_tests(measures, permutations=permutations, seed=seed, power_draws=power_designs)
    report = finite_json({"sweep_dir": str(sweep_dir), "plan": "docs/theory_replication.md", **tests,
                          "cells": cell_table(rows, measures), "trial_values": trial_values(rows, measures)})  # fmt: skip
    figures = sweep_dir / "figures"
    files = [
        save_figure(help_figure(measures, "help_go", "help given opportunity (spec §9)", "help given opportunity (mean over trials)"), figures / HELP_FIGURE),
        save_figure(cmni_figure(measures, report), figures / CMNI_FIGURE),
        save_figure(gains_figure(rows), figures / GAINS_FIGURE),
        sweep_dir / "replication.json",
        sweep_dir / "replication.md",
    ]
    write_json_atomic(files[3], report)
    write_text_atomic(files[4], replication_markdown(report))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(json_path), report)
        files.append(Path(json_path))
    if (sweep_dir / "summary.csv").is_file():
        fill_ablation_gaps(sweep_dir / "summary.csv", {r.get("trial"): g for r, g in zip(rows, gaps)})
        files.append(sweep_dir / "summary.csv")
    return {**report, "files": files}


def rate_gap(sweep_dir: Path, row: dict) -> float | None:
    """The trial's H6 gap: its ablation.json's gap of help given opportunity (None: no file)."""
    path = sweep_dir / str(row.get("dir", "")) / ABLATION_FILE
    if not row.get("dir") or not path.is_file():
        return None
    gap = ((json.loads(path.read_text()).get("members") or [{}])[0].get("gap") or {}).get(REPLICATION_RATE)
    return None if gap is None else float(gap)


def _value(row: dict, key: str):
    value = row.get(key)
    return None if value is None else float(value)


def trial_values(rows: list[dict], m: dict) -> list[dict]:
    """One entry per trial: its setting, seed and every measure the tests and figures use."""
    keys = ("dependency", "veil", "partner_reward_weight", "seed", "help_go", "help_e0", "cmni_a", "cmni_b", "z_init",
            "ablation_gap", "return_change_last_quarter", "at_best_response")  # fmt: skip
    gains = [f"gain_{d}{s}" for d in DEVIATIONS for s in ("", "_low", "_high")]
    return [{"trial": r.get("trial"), "dir": r.get("dir"), **{k: None if m.get(k) is None else m[k][i] for k in keys},
             "return_agent": _value(r, "return_agent"), **{g: _value(r, g) for g in gains}} for i, r in enumerate(rows)]  # fmt: skip


def _summary(values) -> tuple:
    """(mean, [min, max]) of the finite values, (None, None) when there is none."""
    values = np.asarray([np.nan if v is None else v for v in values], np.float64)
    values = values[np.isfinite(values)]
    return (float(values.mean()), [float(values.min()), float(values.max())]) if values.size else (None, None)


def cell_table(rows: list[dict], m: dict) -> list[dict]:
    """Per (D, I, w) cell: trials, return (mean, range), the scripted oracle pair's return in the
    same report games (mean), help given opportunity (mean, range),
    trials at a best response, trials under the convergence rule, each deviation's mean gain."""
    good = converged(m)
    keys = np.stack([m[k] for k in SETTING], axis=1)
    out = []
    for cell in np.unique(keys, axis=0):
        pick = np.all(keys == cell, axis=1)
        members = [r for r, p in zip(rows, pick) if p]
        (ret, ret_range), (helping, help_range) = _summary([r.get("return_agent") for r in members]), _summary(m["help_go"][pick])
        out.append({
            **{k: float(v) for k, v in zip(SETTING, cell)}, "trials": int(pick.sum()), "return_mean": ret, "return_range": ret_range,
            "return_oracle": _summary([r.get("return_oracle") for r in members])[0],
            "help_go_mean": helping, "help_go_range": help_range,
            "at_best_response": int(np.sum(m["at_best_response"][pick] == 1)), "converged": int(good[pick].sum()),
            **{f"gain_{d}": _summary([r.get(f"gain_{d}") for r in members])[0] for d in DEVIATIONS},
        })  # fmt: skip
    return out


# ----------------------------------------------------------------------------- replication.md


def _number(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _span(values, spec: str) -> str:
    return "-" if values is None else f"{format(values[0], spec)}–{format(values[1], spec)}"


def _verdict(e: dict) -> str:
    if not e["testable"]:
        return "not testable: " + e.get("reason", "")
    return "supported" if e["supported"] else "not supported"


def power_words(report: dict, name: str) -> str:
    """The power of one primary test, in words (docs/theory_replication.md: by resampling)."""
    power, null = report.get("power") or {}, report.get("null_power") or {}
    if not power.get("draws"):
        return "-"
    if name in ("H1", "H2"):
        axis = "D" if name == "H1" else "w"
        return ", ".join(f"help x (1 + {r} {axis}): {v:.2f}" for r, v in power[name].items())
    if name == "H5":
        return ", ".join(f"mean z {k}: {v:.2f}" for k, v in power["H5"].items())
    entry = null.get(name)
    if entry is None:
        return "-"
    if name.startswith("H3"):
        rho = entry["smallest_rho"]
        return "no rho reaches 80 %" if rho is None else f"80 % at rho = {rho:.2f} ({entry['rho']})"
    if name == "H4":
        e = entry["smallest_effect"]
        return "no effect reaches 80 %" if e is None else f"80 % at {e:.3g} ({entry['smallest_effect_sd']:.2f} sd within (D, w))"
    if name == "H5e":
        return f"{entry['power_at_true_mean_0']:.2f} when the true mean is 0"
    e = entry["smallest_mean_gap"]
    return "no gap below 1 reaches 80 %" if e is None else f"80 % at a mean gap of {e:.3g}"


def replication_markdown(report: dict) -> str:
    conv = report["convergence"]
    out = ["# The theory replication: the registered tests", "",
           f"Sweep `{Path(report['sweep_dir']).name}`: {report['trials']} trials. Plan: docs/theory_replication.md (registered before any "
           f"trial). {report['correction']} at alpha = {report['alpha']:g}; {report['permutations']:,} permutations or sign flips from seed "
           f"{report['seed']}. Power by resampling the observed per-trial values ({(report.get('power') or {}).get('draws', 0)} designs), "
           f"each test at its Holm level. Convergence rule ({conv['rule']}): {conv['converged']} of {conv['of']} trials.", "",
           "## Primary tests", "",
           "| hypothesis | trials | statistic | p | Holm-adjusted p | verdict | power |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for e in report["primary"]:
        stat = "-" if e["statistic"] is None else f"{e['statistic']:.3g}"
        out.append(f"| {e['hypothesis']}: {e['claim']} | {e['units']} | {stat} ({e['test']}) | {format_p(e['p'])} | "
                   f"{format_p(e.get('p_holm'))} | {_verdict(e)} | {power_words(report, e['hypothesis'])} |")  # fmt: skip
    out += ["", "## Secondary tests (uncorrected)", "", "| test | trials | statistic | p |", "|---|---|---|---|"]
    for e in report["secondary"]:
        stat = "-" if e["statistic"] is None else f"{e['statistic']:.3g}"
        out.append(f"| {e['hypothesis']}: {e['claim']} | {e['units']} | {stat} | {format_p(e['p']) if e['testable'] else e.get('reason', '')} |")
    by_d = report.get("h6_by_d") or {}
    out += ["", "## H6's gap by D (helping trials; mean, 95 % t interval)", ""]
    out += [f"- D = {d}: {e['mean_gap']:.3f} [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}] ({e['trials']} trials)" for d, e in by_d.items()] or ["- no helping trial has an ablation gap"]
    out += ["", "## The cells: return, helping, convergence", "",
            "| D | I | w | trials | return (range) | oracle pair | help given opportunity (range) | at a best response | converged | "
            + " | ".join(f"gain {d}" for d in DEVIATIONS) + " |", "|---" * (9 + len(DEVIATIONS)) + "|"]  # fmt: skip
    for c in report["cells"]:
        out.append(f"| {c['dependency']:g} | {c['veil']:g} | {c['partner_reward_weight']:g} | {c['trials']} | "
                   f"{_number(c['return_mean'], '.1f')} ({_span(c['return_range'], '.1f')}) | {_number(c.get('return_oracle'), '.1f')} | "
                   f"{_number(c['help_go_mean'], '.2f')} "
                   f"({_span(c['help_go_range'], '.2f')}) | {c['at_best_response']} | {c['converged']} | "
                   + " | ".join(_number(c[f"gain_{d}"], "+.2f") for d in DEVIATIONS) + " |")  # fmt: skip
    out += ["", "## Figures", "", f"![help given opportunity by D and w, per veil](figures/{HELP_FIGURE})", "",
            f"![cmni_a against help, across and within settings](figures/{CMNI_FIGURE})", "",
            f"![deviation gains per trial, by cell](figures/{GAINS_FIGURE})", ""]  # fmt: skip
    return "\n".join(out)


# ----------------------------------------------------------------------------- figures


def cmni_figure(m: dict, report: dict):
    """cmni_a against help given opportunity: left across trials (H3a), right within settings
    (each trial minus its (D, I, w) setting's means: what H3w tests), coloured by D, marker by veil."""
    from matplotlib.figure import Figure

    keep = np.isfinite(m["help_go"]) & np.isfinite(m["cmni_a"])
    settings = setting_labels(m)
    centred = {k: m[k] - np.asarray([np.nanmean(m[k][keep & (settings == s)]) if (keep & (settings == s)).any() else np.nan for s in settings])
               for k in ("help_go", "cmni_a")}  # fmt: skip
    tests = {e["hypothesis"]: e for e in report["primary"]}
    colours = {0.0: "#1565c0", 0.5: "#2e7d32", 1.0: "#c62828"}
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (x, y), name, label in ((axes[0], (m["help_go"], m["cmni_a"]), "H3a", "across trials"),
                                    (axes[1], (centred["help_go"], centred["cmni_a"]), "H3w", "within settings (minus the setting's means)")):  # fmt: skip
        for d in np.unique(m["dependency"][keep]):
            for veil, marker in ((0.0, "o"), (1.0, "^")):
                pick = keep & (m["dependency"] == d) & (m["veil"] == veil)
                ax.scatter(x[pick], y[pick], s=22, alpha=0.8, marker=marker, color=colours.get(float(d), "black"), label=f"D = {d:g}, I = {veil:g}")
        e = tests.get(name, {})
        stat = f"rho = {e['statistic']:.3f}, p = {format_p(e['p'])}" if e.get("statistic") is not None else "not testable"
        ax.set_title(f"{label}: {name} {stat}", fontsize=9)
        ax.set_xlabel("help given opportunity" + (" (centred)" if name == "H3w" else ""))
        ax.set_ylabel("cmni_a" + (" (centred)" if name == "H3w" else ""))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"cmni_a (probe set a, last checkpoint) against help given opportunity, one point per trial ({int(keep.sum())} trials)", fontsize=10)
    return fig


def gains_figure(rows: list[dict]):
    """One panel per deviation: each trial's gain (pooled over seats) with its 95 % interval,
    the trials grouped by cell (D, I, w); above 0 means the deviation would pay the agent."""
    from matplotlib.figure import Figure

    cells = sorted({tuple(float(r[k]) for k in SETTING) for r in rows})
    fig = Figure(figsize=(12, 2.6 * len(DEVIATIONS) + 0.8), layout="constrained")
    axes = fig.subplots(len(DEVIATIONS), 1, sharex=True, squeeze=False)[:, 0]
    colours = {0.0: "#1565c0", 0.5: "#2e7d32", 1.0: "#c62828"}
    for ax, deviation in zip(axes, DEVIATIONS):
        for c, cell in enumerate(cells):
            members = [r for r in rows if tuple(float(r[k]) for k in SETTING) == cell and r.get(f"gain_{deviation}") is not None]
            for j, r in enumerate(members):
                x = c + (j - (len(members) - 1) / 2) * 0.12
                low, high = r.get(f"gain_{deviation}_low"), r.get(f"gain_{deviation}_high")
                above = low is not None and low > 0
                colour = colours.get(cell[2], "black")
                ax.plot(x, r[f"gain_{deviation}"], "o", ms=3.5, color=colour, mfc=colour if above else "white")
                if low is not None and high is not None:
                    ax.plot([x, x], [low, high], color=colour, lw=0.8)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_ylabel(f"gain of\n{deviation}")
        ax.grid(alpha=0.3, axis="y")
    axes[-1].set_xticks(range(len(cells)), [f"D={d:g}\nI={i:g}\nw={w:g}" for d, i, w in cells], fontsize=7)
    fig.suptitle("deviation gains per trial (return per episode; 95 % interval; filled: interval above 0, the deviation pays). "
                 "Colour: w = 0 blue, 0.5 green, 1 red", fontsize=9)  # fmt: skip
    return fig
