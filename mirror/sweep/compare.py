"""A sweep's settings side by side: e.g. an MLP against a transformer.

A *setting* is the trials that differ only in their seed. When a sweep has at most
MAX_SETTINGS of them, `write_comparison` writes

    SWEEP_DIR/comparison.md          one row per setting: parameters, test accuracy and
                                     per-class recall, every CMNI variant at the selected
                                     checkpoint (mean ± sd over seeds), then the verdicts
                                     over seeds per variant (rise and fall, random init)
    SWEEP_DIR/figures/comparison.png one panel per CMNI variant (and one of validation
                                     accuracy): the mean over seeds per epoch with a
                                     ± sd band, one colour per setting in every panel

Everything is read from the trials' own files (result.json, cmni.csv, test_metrics.json,
summary.json). The verdicts treat a setting's trials as seeds (`mirror.analysis.seeds`):
a trial that stopped early keeps its last value at later epochs (its parameters froze
there, as in a population's own analysis). The table is descriptive: no test between
settings is run.
"""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from mirror.analysis import seeds
from mirror.analysis.variants import VARIANTS
from mirror.env.constants import ACTION_NAMES
from mirror.runs.checkpoints import abstract_params
from mirror.runs.figures import VARIANT_TITLES, save_figure
from mirror.runs.report import read_csv
from mirror.sweep.spec import Sweep, Trial

MAX_SETTINGS = 6
# One colour per setting, the same in every panel (matplotlib's tab10, in order).
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


@dataclasses.dataclass
class TrialNumbers:
    """What one finished trial contributes to its setting's row."""

    trial: int
    seed: int
    params: int  # trainable parameters at the model's true shape
    accuracy: float | None  # test accuracy (best-validation checkpoint when there is one)
    recall: dict  # class name -> test recall (None where undefined)
    selected: dict  # variant -> value at the selected checkpoint (analysis.checkpoint)
    epochs: np.ndarray  # int[checkpoints]
    curves: dict  # variant -> float[checkpoints]
    val_accuracy: np.ndarray  # float[checkpoints]
    init_draws: dict | None = None  # variant -> random-init values (None: not recorded)


@dataclasses.dataclass
class SettingRow:
    """One setting over its seeds."""

    label: str
    trials: list  # trial indices
    params: int
    accuracy: tuple  # (mean, sd); sd None with one value, mean None with none
    recall: dict  # class -> (mean, sd)
    selected: dict  # variant -> (mean, sd)
    epochs: np.ndarray  # int[checkpoints]: the longest trial's
    curves: dict  # variant -> float[checkpoints, seeds] (carried forward past a trial's end)
    val_accuracy: np.ndarray  # float[checkpoints, seeds]
    rise_and_fall: dict  # variant -> mirror.analysis.seeds.rise_and_fall result
    init_baseline: dict  # variant -> mirror.analysis.seeds.init_baseline result


def setting_fields(trial: Trial) -> dict:
    """The trial's swept fields except the seed: what makes its setting."""
    return {k: v for k, v in trial.fields.items() if k != "seed"}


def setting_label(fields: dict) -> str:
    """A short name: the values of the swept fields ("transformer", "mlp, width=24")."""
    if not fields:
        return "base"
    parts = []
    for field, value in fields.items():
        name = field.rsplit(".", 1)[-1]
        parts.append(str(value) if name == "kind" else f"{name}={value}")
    return ", ".join(parts)


def settings_of(trials: list[Trial]) -> list[tuple[str, list[Trial]]]:
    """(label, trials) per setting, in order of first appearance."""
    groups: dict[str, tuple[str, list]] = {}
    for trial in trials:
        fields = setting_fields(trial)
        key = json.dumps(fields, sort_keys=True, default=str)
        groups.setdefault(key, (setting_label(fields), []))[1].append(trial)
    return list(groups.values())


def parameter_count(trial: Trial) -> int:
    """Trainable parameters of the trial's model at its true shape (no padding)."""
    import jax

    shapes = abstract_params(trial.config, trial.config.model.widths, 1)
    return int(sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes)))


def _float(text) -> float:
    return float(text) if text not in ("", None) else math.nan


def reported_entry(test_metrics: dict) -> dict:
    """The trial's test numbers at the checkpoint its accuracy is reported for (the
    best-validation one, else the last): {accuracy, per_class, ...}."""
    entry = test_metrics["members"][0]
    return entry if "accuracy" in entry else entry["last"]


def trial_numbers(sweep_dir: Path, trial: Trial, result: dict) -> TrialNumbers | None:
    """A finished trial's numbers from its files; None when it has no checkpoint."""
    out = Path(sweep_dir) / result["dir"]
    if not result.get("epochs") or not (out / "cmni.csv").is_file():
        return None
    rows = read_csv(out / "cmni.csv")
    curves = {v: np.asarray([_float(r.get(v)) for r in rows]) for v in VARIANTS}
    chosen = [i for i, r in enumerate(rows) if r["selected"] in ("1", "True", "true")]
    pick = chosen[0] if chosen else len(rows) - 1
    recall, accuracy = {name: None for name in ACTION_NAMES}, result.get("accuracy")
    if (out / "test_metrics.json").is_file():
        entry = reported_entry(json.loads((out / "test_metrics.json").read_text()))
        accuracy = entry["accuracy"]
        recall = {name: entry.get("per_class", {}).get(name, {}).get("recall") for name in ACTION_NAMES}
    draws = None
    if (out / "summary.json").is_file():
        draws = json.loads((out / "summary.json").read_text()).get("variant_init_null")
    return TrialNumbers(
        trial=trial.index, seed=trial.config.seed, params=parameter_count(trial), accuracy=accuracy, recall=recall,
        selected={v: float(curves[v][pick]) for v in VARIANTS}, epochs=np.asarray([int(r["epoch"]) for r in rows]),
        curves=curves, val_accuracy=np.asarray([_float(r.get("val_accuracy")) for r in rows]), init_draws=draws,
    )  # fmt: skip


def mean_sd(values) -> tuple:
    """(mean, sample sd) of the finite values; sd None with one value, both None with none."""
    x = np.asarray([np.nan if v is None else v for v in values], float)
    x = x[np.isfinite(x)]
    if not x.size:
        return (None, None)
    return (float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else None)


def carried(epochs: np.ndarray, trial_epochs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values at `epochs`: each epoch takes the trial's value at its last epoch at or before
    it (a trial that stopped early keeps its frozen value); NaN before its first."""
    at = np.searchsorted(trial_epochs, epochs, side="right") - 1
    return np.where(at >= 0, np.asarray(values, float)[np.clip(at, 0, None)], np.nan)


def setting_row(label: str, numbers: list[TrialNumbers]) -> SettingRow:
    """One setting's row from its trials' numbers (at least one trial)."""
    epochs = max((n.epochs for n in numbers), key=len)
    curves = {v: np.stack([carried(epochs, n.epochs, n.curves[v]) for n in numbers], axis=1) for v in VARIANTS}
    rise, init = {}, {}
    for v in VARIANTS:
        rise[v] = seeds.rise_and_fall(epochs, curves[v])
        draws = [None if n.init_draws is None else n.init_draws.get(v) for n in numbers]
        if any(d is None for d in draws) or len({len(d) for d in draws}) != 1:
            init[v] = {"p_mean_vs_init": None, "beats_init": False, "method": "not tested: a trial has no random-init draws recorded"}
        else:
            init[v] = seeds.init_baseline(np.asarray(draws, float), [n.selected[v] for n in numbers])
    return SettingRow(
        label=label,
        trials=[n.trial for n in numbers],
        params=numbers[0].params,
        accuracy=mean_sd([n.accuracy for n in numbers]),
        recall={c: mean_sd([n.recall.get(c) for n in numbers]) for c in ACTION_NAMES},
        selected={v: mean_sd([n.selected[v] for n in numbers]) for v in VARIANTS},
        epochs=epochs,
        curves=curves,
        val_accuracy=np.stack([carried(epochs, n.epochs, n.val_accuracy) for n in numbers], axis=1),
        rise_and_fall=rise,
        init_baseline=init,
    )


def comparison_rows(sweep: Sweep, sweep_dir: Path, results: list[dict]) -> list[SettingRow]:
    """One row per setting with at least one finished trial that has a checkpoint."""
    by_index = {r["trial"]: r for r in results}
    rows = []
    for label, trials in settings_of(sweep.trials):
        numbers = [trial_numbers(sweep_dir, t, by_index[t.index]) for t in trials if t.index in by_index]
        numbers = [n for n in numbers if n is not None]
        if numbers:
            rows.append(setting_row(label, numbers))
    return rows


def format_mean_sd(pair: tuple, digits: str = ".4g") -> str:
    mean, sd = pair
    if mean is None:
        return "-"
    return f"{mean:{digits}}" + ("" if sd is None else f" ± {sd:.2g}")


def comparison_markdown(rows: list[SettingRow], title: str = "") -> str:
    """comparison.md: the settings table, then the verdicts per setting and variant."""
    classes = list(ACTION_NAMES)
    head = ["setting", "seeds", "parameters", "test accuracy", *[f"recall {c}" for c in classes], *VARIANTS]
    lines = [
        f"# {title or 'Settings compared'}",
        "",
        "Mean ± sample sd over each setting's seeds (trials that differ only in their seed). Test accuracy and "
        "recall on the test split at the best-validation checkpoint (the last one where there is none); each "
        "CMNI variant at the checkpoint the analysis selects (`analysis.checkpoint`). The table is descriptive: "
        "no significance test between settings was run.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        cells = [r.label, str(len(r.trials)), f"{r.params:,}", format_mean_sd(r.accuracy, ".4f")]
        cells += [format_mean_sd(r.recall[c], ".3f") for c in classes]
        cells += [format_mean_sd(r.selected[v]) for v in VARIANTS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Verdicts over seeds, per setting and CMNI variant",
        "",
        "Trained vs random init (the headline verdict): the trained seeds' mean at the selected checkpoint against "
        "random initialisations of the same architecture (bootstrap of as many draws, one-sided). Rise and fall: the "
        "drop from the peak (chosen on the other seeds' mean curve) to the final epoch, tested by an exact one-sided "
        "sign-flip test over seeds (needs at least 5 seeds to reach p <= 0.05); the interval is a nominal 95 % "
        "bootstrap CI, descriptive only (`mirror.analysis.seeds`).",
        "",
        "| setting | variant | random init (mean ± sd) | trained vs random init | peak epoch | drop (nominal 95 % CI) | sign-flip p | rise and fall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for v in VARIANTS:
            rise, init = r.rise_and_fall[v], r.init_baseline[v]
            lo, hi = rise["ci95"]
            drop = "-" if rise["drop"] is None else f"{rise['drop']:.4g}" + ("" if lo is None else f" ({lo:.4g} .. {hi:.4g})")
            peak = "-" if rise["peak_epoch"] is None else str(rise["peak_epoch"])
            p = "-" if rise.get("p_sign_flip") is None else f"{rise['p_sign_flip']:.3g}"
            null = format_mean_sd((init.get("mean"), init.get("sd")))
            lines.append(f"| {r.label} | {v} | {null} | {seeds.init_baseline_words(init)} | {peak} | {drop} | {p} | {seeds.rise_and_fall_words(rise)} |")
    lines += ["", "![CMNI per epoch, mean ± sd over seeds, one colour per setting](figures/comparison.png)", ""]
    return "\n".join(lines)


def comparison_figure(rows: list[SettingRow], title: str = "") -> Figure:
    """One panel per CMNI variant and one of validation accuracy: per setting, the mean
    over its seeds per epoch and a mean ± sd band (2 or more seeds)."""
    panels = [(v, VARIANT_TITLES.get(v, v)) for v in VARIANTS] + [("val_accuracy", "validation accuracy")]
    fig = Figure(figsize=(12, 7.5), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    for ax, (key, name) in zip(axes, panels):
        for r, colour in zip(rows, COLOURS):
            values = r.val_accuracy if key == "val_accuracy" else r.curves[key]
            finite = np.isfinite(values)
            counts = finite.sum(axis=1)
            mean = np.where(counts > 0, np.nansum(np.where(finite, values, 0.0), axis=1) / np.maximum(counts, 1), np.nan)
            ax.plot(r.epochs, mean, color=colour, lw=2)
            if values.shape[1] > 1:  # the sample sd where 2 or more seeds have a value, else no band
                squares = np.where(finite, values - mean[:, None], 0.0) ** 2
                sd = np.where(counts > 1, np.sqrt(squares.sum(axis=1) / np.maximum(counts - 1, 1)), np.nan)
                ax.fill_between(r.epochs, mean - sd, mean + sd, color=colour, alpha=0.2, lw=0)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=c, lw=2, label=f"{r.label} ({r.params:,} params, {len(r.trials)} seeds)") for r, c in zip(rows, COLOURS)]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="mean ± sd over seeds", title_fontsize=8)
    fig.suptitle(title or "CMNI variants and validation accuracy per epoch, per setting")
    return fig


def write_comparison(sweep: Sweep, sweep_dir: str | Path, results: list[dict]) -> list[Path]:
    """comparison.md and figures/comparison.png when the sweep has 1..MAX_SETTINGS
    settings with a finished trial; [] otherwise."""
    if len(settings_of(sweep.trials)) > MAX_SETTINGS:
        return []
    sweep_dir = Path(sweep_dir)
    rows = comparison_rows(sweep, sweep_dir, results)
    if not rows:
        return []
    title = f"{sweep.name}: settings compared"
    md = sweep_dir / "comparison.md"
    md.write_text(comparison_markdown(rows, title) + "\n")
    return [md, save_figure(comparison_figure(rows, title), sweep_dir / "figures" / "comparison.png")]
