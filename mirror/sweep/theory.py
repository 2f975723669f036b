"""`mirror theory SWEEP_DIR`: the pre-registered tests of `docs/theory_experiment.md` on an
RL sweep's finished trials (`mirror.analysis.hypotheses`), written next to its summary.

    SWEEP_DIR/hypotheses.md     the primary tests (hypothesis, trials, statistic, p,
                                Holm-adjusted p, verdict, power), the exploratory ones, the
                                per-trial random-init ranks, the trials still climbing
    SWEEP_DIR/hypotheses.json   the same, every number, and each trial's measures
    SWEEP_DIR/figures/theory_help_e0.png        help_e0 as a D x w heatmap per veil (mean over seeds)
    SWEEP_DIR/figures/theory_cmni_vs_help.png   cmni_a against help_e0, one point per trial,
                                                coloured by its (D, I, w) setting

Only the trials' result.json files are read (every finished trial of the sweep directory,
in plan order), so the tests can be rerun on any RL sweep directory, whole or partial,
without its config. A result row maps to the registered measures by `MEASURE_COLUMNS`;
a sweep whose rows lack one (trials finished before the column existed) is refused with
the column named. H6's ablation gaps come in through one hook, `ablation_gaps`: a trial's
`ablation_gap` column, else its `ablation.json` as `mirror ablate` writes it:

    uv run mirror ablate TRIAL_DIR --units top-mns:4 --mode mean --seeds 100 --json TRIAL_DIR/ablation.json
"""

import json
import math
from pathlib import Path

import numpy as np

from mirror.analysis import hypotheses, sensitivity
from mirror.base.errors import UsageError
from mirror.base.files import require_writable
from mirror.runs.checkpoints import write_json_atomic, write_text_atomic
from mirror.sweep.trial import RESULT_FILE

# The registered measures (docs/theory_experiment.md) -> the result-row column holding them.
MEASURE_COLUMNS = {
    "dependency": "dependency",
    "veil": "veil",
    "partner_reward_weight": "partner_reward_weight",
    "seed": "seed",
    "help_e0": "help_when_partner_energy0",
    "help_distressed": "help_when_partner_distressed",
    "cmni_a": "cmni_scaled",
    "cmni_b": "cmni_scaled_onpolicy",
    "z_init": "z_init",
    "p_init_scaled": "p_init_scaled",
}
ABLATION_COLUMN = "ablation_gap"
ABLATION_FILE = "ablation.json"  # `mirror ablate TRIAL_DIR ... --json TRIAL_DIR/ablation.json`
# H6's registered ablation (docs/theory_experiment.md): the K = 4 top-MNS units mean-ablated
# against 100 random draws, at the measured (last) checkpoint.
REGISTERED_ABLATION = {"units": "top-mns:4", "mode": "mean", "draws": 100}
TREND_COLUMNS = ("return_slope", "return_change_last_quarter")
STILL_CLIMBING = 0.02  # a trial whose fitted return changed by more than 2 % over its last quarter
HELP_FIGURE, CMNI_FIGURE = "theory_help_e0.png", "theory_cmni_vs_help.png"


def read_results(sweep_dir: Path) -> list[dict]:
    """Every finished trial's result row: plan.json's trials in order (else every
    trials/*/result.json by name). Refuses a directory without finished trials and a
    supervised sweep."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UsageError(f"{sweep_dir} is not a directory (give the sweep directory, e.g. sweeps/<name>)")
    plan = sweep_dir / "plan.json"
    if plan.is_file():
        paths = [sweep_dir / entry["dir"] / RESULT_FILE for entry in json.loads(plan.read_text())["entries"]]
    else:
        paths = sorted((sweep_dir / "trials").glob(f"*/{RESULT_FILE}"))
    rows = [json.loads(p.read_text()) for p in paths if p.is_file()]
    if not rows:
        raise UsageError(f"{sweep_dir} has no finished trial (no trials/*/{RESULT_FILE}): run `mirror sweep CONFIG --sweep-dir {sweep_dir}` first")
    if any("partner_reward_weight" not in r for r in rows):
        raise UsageError(f"{sweep_dir} is not an RL sweep (its trials have no partner_reward_weight): `mirror theory` tests `mode: rl` sweeps")
    return rows


def trial_measures(rows: list[dict], sweep_dir: Path | str = "the sweep") -> dict:
    """measure -> float64[trials] (None -> NaN) for `hypotheses.theory_tests`, plus
    ablation_gap (`ablation_gaps`: None when no trial has one). Refuses rows that lack a
    needed column, naming it."""
    missing = sorted({c for r in rows for c in MEASURE_COLUMNS.values() if c not in r}, key=list(MEASURE_COLUMNS.values()).index)
    if missing:
        raise UsageError(
            f"{sweep_dir}: the trials' result rows lack the column(s) {', '.join(missing)} that `mirror theory` needs "
            f"({', '.join(m for m, c in MEASURE_COLUMNS.items() if c in missing)} of docs/theory_experiment.md). Trials finished "
            "before these columns existed: delete their result.json and rerun `mirror sweep CONFIG` (the trained populations are reused)"
        )  # fmt: skip
    out = {m: _column(rows, c) for m, c in MEASURE_COLUMNS.items()}
    gaps = [entry["ablation_gap"] for entry in ablation_gaps(rows, Path(sweep_dir))]
    out["ablation_gap"] = np.asarray([np.nan if g is None else g for g in gaps], np.float64) if any(g is not None for g in gaps) else None
    return out


def ablation_gaps(rows: list[dict], sweep_dir: Path) -> list[dict]:
    """H6's hook, one entry per trial: {"ablation_gap", "source", "departures"}. The gap (the
    drop in help_e0 when the trial's K top-MNS hidden units are mean-ablated, minus the mean
    drop for random units; docs/theory_experiment.md) comes from the result row's
    `ablation_gap` column when it holds one, else from TRIAL_DIR/ablation.json (`mirror
    ablate`'s --json: its first member, the trial's), else None. `departures` names what of
    an ablation.json differs from REGISTERED_ABLATION (units, mode, draws) or was not taken
    at the trial's last checkpoint."""
    out = []
    for row in rows:
        if row.get(ABLATION_COLUMN) is not None:
            out.append({"ablation_gap": float(row[ABLATION_COLUMN]), "source": "result.json", "departures": []})
            continue
        path = sweep_dir / str(row.get("dir", "")) / ABLATION_FILE
        if not row.get("dir") or not path.is_file():
            out.append({"ablation_gap": None, "source": None, "departures": []})
            continue
        try:
            member = json.loads(path.read_text())["members"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise UsageError(f"{path} is not `mirror ablate`'s --json output (no members[0]); rerun mirror ablate TRIAL_DIR --json {path}") from None
        found = {"units": member.get("units"), "mode": member.get("mode"), "draws": (member.get("random") or {}).get("draws")}
        departures = [f"{k} {found[k]}" for k, v in REGISTERED_ABLATION.items() if k in found and found[k] != v]
        if member.get("checkpoint") != row.get("updates"):  # the measured checkpoint is the trial's last
            departures.append(f"checkpoint {member.get('checkpoint')} (the trial's last: {row.get('updates')})")
        gap = member.get("ablation_gap")
        out.append({"ablation_gap": None if gap is None else float(gap), "source": ABLATION_FILE, "departures": departures})
    return out


def _column(rows: list[dict], column: str) -> np.ndarray:
    return np.asarray([np.nan if r.get(column) is None else float(r[column]) for r in rows], np.float64)


def run_theory(
    sweep_dir, *, json_path=None, permutations: int = hypotheses.PERMUTATIONS, seed: int = hypotheses.SEED,
    power_designs: int = hypotheses.POWER_DESIGNS,
) -> dict:  # fmt: skip
    """Run the tests on SWEEP_DIR's finished trials and write hypotheses.md, hypotheses.json
    (and a copy at `json_path`) and the two figures; returns the tests' dict with `files`."""
    sweep_dir = Path(sweep_dir)
    rows = read_results(sweep_dir)
    measures = trial_measures(rows, sweep_dir)
    require_writable(sweep_dir, "sweep directory", UsageError)  # before the tests, not after
    if json_path:
        require_writable(Path(json_path).parent, "--json directory", UsageError)
    try:
        tests = hypotheses.theory_tests(measures, permutations=permutations, seed=seed, power_designs=power_designs)
    except ValueError as err:
        raise UsageError(f"{sweep_dir}: {err}") from None
    levels = {e["hypothesis"]: e["holm_level"] for e in tests["primary"]}
    tests["sensitivity"] = sensitivity.sensitivity_tests(measures, levels, permutations=permutations, seed=seed, power_draws=power_designs)
    training = training_trend(rows)
    ablation = ablation_gaps(rows, sweep_dir)
    values = [{"trial": r.get("trial"), "dir": r.get("dir"), **{m: _json_float(measures[m][i]) for m in MEASURE_COLUMNS},
               "ablation_gap": a["ablation_gap"], "ablation_source": a["source"], **{c: r.get(c) for c in TREND_COLUMNS}}
              for i, (r, a) in enumerate(zip(rows, ablation))]  # fmt: skip
    sources = {"result.json": 0, ABLATION_FILE: 0}
    for a in ablation:
        if a["ablation_gap"] is not None:
            sources[a["source"]] += 1
    ablation_report = {"registered": REGISTERED_ABLATION, "gaps_from": sources,
                       "departures": {str(r.get("trial")): a["departures"] for r, a in zip(rows, ablation) if a["departures"]}}  # fmt: skip
    report = finite_json({"sweep_dir": str(sweep_dir), "measures": {**MEASURE_COLUMNS, "ablation_gap": f"{ABLATION_COLUMN} or TRIAL_DIR/{ABLATION_FILE}"},
                           **tests, "ablation": ablation_report, "training": training, "trial_values": values})  # fmt: skip
    files = [save_figure(help_figure(measures), sweep_dir / "figures" / HELP_FIGURE), save_figure(cmni_figure(measures, tests), sweep_dir / "figures" / CMNI_FIGURE)]
    write_json_atomic(sweep_dir / "hypotheses.json", report)
    files.append(sweep_dir / "hypotheses.json")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(json_path), report)
        files.append(Path(json_path))
    write_text_atomic(sweep_dir / "hypotheses.md", markdown(sweep_dir, report))
    files.append(sweep_dir / "hypotheses.md")
    if (sweep_dir / "summary.csv").is_file():  # the trials' rows are written before their ablations run
        fill_ablation_gaps(sweep_dir / "summary.csv", {v["trial"]: v["ablation_gap"] for v in values})
        files.append(sweep_dir / "summary.csv")
    return {**report, "files": files}


def fill_ablation_gaps(path: Path, gaps: dict) -> None:
    """summary.csv's ablation_gap column from each trial's H6 gap (`ablation_gaps`; empty
    where none), every other cell as written (the row's trial number picks its gap)."""
    import csv
    import io

    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or ABLATION_COLUMN not in rows[0]:
        return
    for row in rows:
        gap = gaps.get(int(row["trial"]))
        row[ABLATION_COLUMN] = "" if gap is None else f"{float(gap):.9g}"  # as the summary writes floats
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))  # the csv module's \r\n line ends, as the summary
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(Path(path), text.getvalue())


def _json_float(value) -> float | None:
    return float(value) if np.isfinite(value) else None


def finite_json(value):
    """A JSON-ready copy: NaN and infinities -> None (strict JSON), numpy scalars -> Python."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def training_trend(rows: list[dict]) -> dict:
    """The trials still climbing: those whose fitted return changed by more than
    STILL_CLIMBING (relative) over their last quarter of training."""
    changes = [(r.get("trial"), r.get("return_change_last_quarter")) for r in rows]
    known = [(t, c) for t, c in changes if c is not None and math.isfinite(c)]
    climbing = [t for t, c in known if c > STILL_CLIMBING]
    return {"threshold": STILL_CLIMBING, "trials_with_trend": len(known), "still_climbing": climbing,
            "max_change": max((c for _, c in known), default=None)}  # fmt: skip


# ----------------------------------------------------------------------------- hypotheses.md


def format_p(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def _statistic(entry: dict) -> str:
    return entry["statistic_name"] if entry.get("statistic") is None else f"{entry['statistic_name']} = {entry['statistic']:.3g}"


def _power_cell(entry: dict) -> str:
    power = entry.get("power")
    if power is None:
        return "-"
    return power["words"] if power.get("effect") is not None else "not estimated: " + power["reason"]


def markdown(sweep_dir: Path, report: dict) -> str:
    """hypotheses.md: the plan in one paragraph, then each section."""
    lines = _plan_lines(sweep_dir, report) + _primary_lines(report) + _secondary_lines(report) + _training_lines(report["training"])
    lines += sensitivity_lines(report.get("sensitivity"))
    lines += ["## Figures", "", f"![help_e0 by D and w, per veil](figures/{HELP_FIGURE})", "",
              f"![cmni_a against help_e0, one point per trial](figures/{CMNI_FIGURE})", ""]  # fmt: skip
    return "\n".join(lines)


def _plan_lines(sweep_dir: Path, report: dict) -> list[str]:
    out = [
        "# The theory experiment: the pre-registered tests",
        "",
        f"Sweep `{Path(sweep_dir).name}`: {report['trials']} finished trials. The hypotheses, measures and tests are those of "
        "`docs/theory_experiment.md` (pre-registered): one-sided, the seed (trial) as the unit, "
        f"{report['permutations']:,} permutations or sign flips from seed {report['seed']} (every arrangement enumerated where "
        f"there are fewer), {report['correction']} at alpha = {report['alpha']:g}. Power: the smallest effect each test detects "
        f"with {report['power_target']:.0%} power at its Holm level, by simulation ({report['power_designs']} designs, normal "
        "seed noise with each (D, I, w) setting's observed sd, the same test).",
        "",
    ]
    settings = (report["permutations"], report["seed"], report["power_designs"])
    if settings != (hypotheses.PERMUTATIONS, hypotheses.SEED, hypotheses.POWER_DESIGNS):
        out += [f"**Departure from the registered plan:** {settings[0]:,} permutations, seed {settings[1]}, {settings[2]} power designs "
                f"(registered: {hypotheses.PERMUTATIONS:,}, {hypotheses.SEED}, {hypotheses.POWER_DESIGNS}).", ""]  # fmt: skip
    return out


def _primary_lines(report: dict) -> list[str]:
    out = ["## Primary tests", "", "| hypothesis | trials | statistic | p | Holm-adjusted p | verdict | power (80 %) |", "|---|---|---|---|---|---|---|"]
    for e in report["primary"]:
        short = ("supported" if e["supported"] else "not supported") if e["testable"] else e["status"]
        out.append(f"| {e['hypothesis']}: {e['claim']} | {e['units']} {e['unit_name']} | {_statistic(e)} | {format_p(e['p'])} | {format_p(e['p_holm'])} | {short} | {_power_cell(e)} |")
    out += ["", "Verdicts:", ""] + [f"- **{e['hypothesis']}** {e['verdict']}." for e in report["primary"]]
    ablation = report["ablation"]
    if sum(ablation["gaps_from"].values()):
        registered = ablation["registered"]
        out += ["", f"H6's ablation gaps: {ablation['gaps_from']['result.json']} from the result rows' ablation_gap, "
                    f"{ablation['gaps_from'][ABLATION_FILE]} from the trials' {ABLATION_FILE} (`mirror ablate`)."]  # fmt: skip
        if ablation["departures"]:
            listed = "; ".join(f"trial {t}: {', '.join(d)}" for t, d in ablation["departures"].items())
            out += ["", f"**Departure from the registered ablation** ({registered['units']}, {registered['mode']}, {registered['draws']} random draws, "
                        f"the last checkpoint): {listed}."]  # fmt: skip
    return out + [
        "",
        "p: exact where every arrangement was enumerated, else (1 + #{draws >= observed}) / (draws + 1). Power: the effect in the "
        "measure's units (and in units of the pooled within-setting sd of the seeds) detected with 80 % power at the test's Holm "
        'level; a verdict of "not supported" is not evidence of no effect below it.',
        "",
    ]


def _secondary_lines(report: dict) -> list[str]:
    out = ["## Exploratory (secondary measures, not corrected)", "", "| test | trials | statistic | p (uncorrected) |", "|---|---|---|---|"]
    for e in report["secondary"]:
        p = format_p(e["p"]) if e["testable"] else f"{e['status']}: {e['reason']}"
        out.append(f"| {e['hypothesis']}: {e['claim']} | {e['units']} {e['unit_name']} | {_statistic(e)} | {p} |")
    return out + ["", f"Per-trial random-initialisation ranks (p_init_scaled, cmni_a on probe set a): {report['init_ranks']['verdict']}.", ""]


def sensitivity_lines(sens: dict | None) -> list[str]:
    """hypotheses.md's corrections section (`mirror.analysis.sensitivity`): beside the
    registered tests, never in place of them."""
    if not sens:
        return []
    h3, tost, blocks = sens["h3a_within"], sens["h5_equivalence"], sens["h5_blocks"]
    out = ["## Sensitivity analyses (added after the registered tests; not registered)", "",
           f"- **H3a within settings**: cmni_a permuted within each (D, I, w) setting: p = {format_p(h3['p'])} (the registered test permutes "
           f"across all trials); mean within-setting Spearman rho = {format_p(h3['mean_within_setting_rho'])} over {h3['settings']} settings.",
           f"- **H5 as equivalence** (two one-sided sign-flip tests, margin ±{tost['margin']:g} in z_init): mean z_init {tost['mean']:.3g}, "
           f"p = {format_p(tost['p'])} over {tost['units']} trials; over the {blocks['blocks']} (D, I, seed) blocks that share a random-init null: "
           f"p = {format_p(blocks['equivalence']['p'])} (and H5 itself on the blocks: p = {format_p(blocks['p'])})."]  # fmt: skip
    for e in sens["seed_effect"]:
        out.append(f"- **The seed index** after setting means are removed ({e['measure']}, seed labels permuted within settings): p = {format_p(e['p'])}.")
    if sens.get("h6_seed_means"):
        h6 = sens["h6_seed_means"]
        out.append(f"- **H6 on seed means** ({h6['seeds']} seed indices' mean gap, exact sign flips): mean {h6['mean']:.3g}, p = {format_p(h6['p'])}.")
    if sens.get("h6_by_d"):
        by_d = "; ".join(f"D = {d}: {e['mean_gap']:.3f} [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}] ({e['trials']} trials)" for d, e in sens["h6_by_d"].items())
        out.append(f"- **H6's gap by D** (mean, 95 % t interval over helping trials): {by_d}.")
    power = sens["power_resampled"]
    if power["draws"]:
        out.append("- **Power by resampling** (" + power["design"]["H1"] + "): H1 " + ", ".join(f"r = {r}: {v:.2f}" for r, v in power["H1"].items())
                   + "; H5 (" + power["design"]["H5"] + "): " + ", ".join(f"mean {m}: {v:.2f}" for m, v in power["H5"].items()) + ".")  # fmt: skip
    return out + [""]


def _training_lines(training: dict) -> list[str]:
    if not training["trials_with_trend"]:
        return ["## Training length", "", "No trial has a return trend (return_change_last_quarter): too few updates in the last quarter, or none recorded.", ""]
    climbing = training["still_climbing"]
    listed = f": trial{'s' if len(climbing) > 1 else ''} {', '.join(map(str, climbing))}." if climbing else "."
    return ["## Training length", "", f"Return over each trial's last quarter of training: {len(climbing)} of {training['trials_with_trend']} trials changed "
            f"by more than {training['threshold']:.0%} (fitted, relative: return_change_last_quarter){listed}", ""]  # fmt: skip


# ----------------------------------------------------------------------------- figures


def save_figure(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=130)
    return path


def help_figure(m: dict, measure: str = "help_e0", title: str = "help_e0: the share of help while the partner is at energy 0", label: str | None = None):
    """`measure` (help_e0, or the replication's help_go) as a D (columns) x w (rows) heatmap of
    the mean over seeds, one panel per veil, each cell annotated with its mean and trial count."""
    from matplotlib.figure import Figure

    veils = np.unique(m["veil"][np.isfinite(m["veil"])])
    ds, ws = np.unique(m["dependency"]), np.unique(m["partner_reward_weight"])
    fig = Figure(figsize=(4.2 * len(veils) + 1, 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(veils), squeeze=False)[0])
    finite = m[measure][np.isfinite(m[measure])]
    top = max(float(finite.max()), 1e-9) if finite.size else 1.0
    image = None
    for ax, veil in zip(axes, veils):
        grid = np.full((len(ws), len(ds)), np.nan)
        for i, w in enumerate(ws):
            for j, d in enumerate(ds):
                pick = (m["veil"] == veil) & (m["partner_reward_weight"] == w) & (m["dependency"] == d) & np.isfinite(m[measure])
                if pick.any():
                    grid[i, j] = m[measure][pick].mean()
                    ax.text(j, i, f"{grid[i, j]:.3g}\n({int(pick.sum())})", ha="center", va="center", fontsize=8,
                            color="white" if grid[i, j] < 0.5 * top else "black")  # readable on viridis's dark and light ends
        image = ax.imshow(grid, origin="lower", cmap="viridis", vmin=0.0, vmax=top, aspect="auto")
        ax.set_xticks(range(len(ds)), [f"{d:g}" for d in ds])
        ax.set_yticks(range(len(ws)), [f"{w:g}" for w in ws])
        ax.set_xlabel("dependency D")
        ax.set_ylabel("prosocial weight w")
        ax.set_title(f"veil I = {veil:g}")
    if image is not None:
        fig.colorbar(image, ax=list(axes), label=label or f"{measure} (mean over seeds)")
    fig.suptitle(f"{title} (cell: mean, trials)")
    return fig


def cmni_figure(m: dict, tests: dict):
    """cmni_a against help_e0: one point per trial, coloured by its (D, I, w) setting
    (marker: the veil), with H3a's statistic in the title."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.5, 5), layout="constrained")
    ax = fig.subplots()
    keep = np.isfinite(m["help_e0"]) & np.isfinite(m["cmni_a"])
    settings = sorted({(d, i, w) for d, i, w in zip(m["dependency"][keep], m["veil"][keep], m["partner_reward_weight"][keep])})
    colours = colormaps["tab20"].resampled(max(len(settings), 1))
    for k, (d, i, w) in enumerate(settings):
        pick = keep & (m["dependency"] == d) & (m["veil"] == i) & (m["partner_reward_weight"] == w)
        ax.scatter(m["help_e0"][pick], m["cmni_a"][pick], s=30, alpha=0.85, color=colours(k), marker="o" if i == 0 else "^",
                   label=f"D={d:g}, I={i:g}, w={w:g}")  # fmt: skip
    h3a = next(e for e in tests["primary"] if e["hypothesis"] == "H3a")
    stat = f"Spearman rho = {h3a['statistic']:.3g}, p = {h3a['p']:.3g}" if h3a.get("statistic") is not None else h3a["verdict"]
    ax.set_title(f"cmni_a against help_e0, one point per trial ({int(keep.sum())} trials; H3a: {stat})", fontsize=9)
    ax.set_xlabel("help_e0 (share of help while the partner is at energy 0)")
    ax.set_ylabel("cmni_a (cmni_scaled on probe set a, last checkpoint)")
    ax.grid(alpha=0.3)
    if settings:
        fig.legend(loc="outside right upper", fontsize=7, title="setting", title_fontsize=8)
    return fig
