"""Writing a run's analysis: CSV tables, summary.json and the figures (the I/O edge).

    OUT/cmni.csv      one row per checkpoint and member (every CMNI variant and its p-values)
    OUT/neurons.csv   selected checkpoint(s): one row per neuron and scenario
    OUT/circuits.csv  selected checkpoint(s): one row per second-layer hub
    OUT/weights.csv   selected checkpoint(s): every weight and its z-score in its matrix
    OUT/summary.json  group sizes, null baselines, selected checkpoints, the verdicts over
                      seeds per CMNI variant (rise_and_fall, init_baseline), timings
    OUT/figures/      training[_mM].png, layer{L}[_mM].png, circuits[_mM].png, cmni_seeds.png
"""

import csv
import json
from pathlib import Path

import numpy as np

from mirror.analysis import seeds
from mirror.runs import figures
from mirror.analysis.analyse import CheckpointAnalysis
from mirror.analysis.circuits import kernel_names
from mirror.analysis.groups import GROUP_NAMES
from mirror.agents.units import neuron_name
from mirror.analysis.neurons import ROLE_NAMES
from mirror.env.constants import ACTION_NAMES


def _fmt(value):
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{float(value):.9g}"
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_csv(path: Path, header: list[str], rows) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_fmt(v) for v in row])
    return path


def layer_names(layers: int) -> list[str]:
    """Per-layer column suffixes: L1 .. L{hidden}, then the output layer L{hidden + 1}."""
    return [f"L{i + 1}" for i in range(layers)]


SUPERVISED_METRICS = ("val_loss", "val_loss_data", "val_accuracy")
# An RL run's per-checkpoint measurements (metrics.jsonl, `evaluate` on fixed-key games);
# its "epoch" column is the update count.
RL_METRICS = ("env_turns", "return_agent", "help_rate", "help_when_partner_distressed")


def cmni_rows(a: CheckpointAnalysis, epochs, metrics: dict, metric_names=SUPERVISED_METRICS, extra_columns: dict | None = None):
    """Rows of cmni.csv; metrics: name -> [checkpoints, members] for each of `metric_names`
    (after the member column); extra_columns: name -> [checkpoints, members], appended last
    (an RL run's on-policy CMNI)."""
    r = a.result
    checkpoints, members = np.asarray(r.cmni).shape
    layers = np.asarray(r.layer_cmni).shape[-1]
    extra = extra_columns or {}
    header = ["checkpoint", "epoch", "member", *metric_names, "cmni", "mne", "neurons"]
    header += [f"cmni_{name}" for name in layer_names(layers)]
    header += ["p_permutation", "p_init", "cmni_clean", "cmni_leak", "selected"]
    variant_columns = _variant_columns(a, (checkpoints, members))
    header += [*variant_columns, *extra]
    rows = []
    for c in range(checkpoints):
        for m in range(members):
            row = [c, int(epochs[c]), m] + [metrics[k][c, m] for k in metric_names]
            row += [float(r.cmni[c, m]), float(r.mne[c, m]), int(r.neurons[c, m])]
            row += [float(v) for v in np.asarray(r.layer_cmni[c, m])]
            row += [a.p_permutation[c, m], a.p_init[c, m], a.cmni_clean[c, m], a.cmni_leak[c, m], a.selected[m] == c]
            row += [np.float64(values[c, m]) for values in variant_columns.values()]
            row += [np.float64(values[c, m]) for values in extra.values()]
            rows.append(row)
    return header, rows


SIGNIFICANCE_TESTS = (("mns", "significant_mirror"), ("frog", "significant_frog"), ("toad", "significant_toad"), ("diff", "significant_diff"))


def significant_tests(neuron_p: dict, m: int, n: int) -> str:
    """neurons.csv's `significant`: the BH-significant per-neuron tests of neuron n of member m,
    "+"-joined from mns, frog, toad, diff; "none" when none is; "" when untested (no permutations)."""
    if np.isnan(neuron_p["p_mirror"][m, n]):
        return ""
    return "+".join(name for name, key in SIGNIFICANCE_TESTS if key in neuron_p and neuron_p[key][m, n]) or "none"


# cmni.csv's columns per variant beyond the paper's: (value, permutation p, random-init p)
VARIANT_COLUMNS = {
    "cmni_scaled": ("cmni_scaled", "p_permutation_scaled", "p_init_scaled"),
    "cmni_matched": ("cmni_matched", "p_permutation_matched", "p_init_matched"),
}


def _variant_columns(a: CheckpointAnalysis, shape) -> dict:
    """column -> [checkpoints, members] for every VARIANT_COLUMNS entry (NaN if not computed)."""
    missing = np.full(shape, np.nan)
    columns = {}
    for variant, (value, p_perm, p_init) in VARIANT_COLUMNS.items():
        columns[value] = a.variants.get(variant, missing)
        columns[p_perm] = a.variant_p_permutation.get(variant, missing)
        columns[p_init] = a.variant_p_init.get(variant, missing)
    return columns


def neuron_rows(a: CheckpointAnalysis, epochs):
    """Rows of neurons.csv: p_mns, p_frog, p_toad (label permutations, one-sided) and p_diff
    (Frog-Toad shuffle, two-sided) are the per-neuron p-values (`mirror.analysis.significance`),
    `significant` their BH decisions (`significant_tests`); mns_scaled and p_init_mns the
    random-init calibration of the mirror role, `above_init` its BH decision."""
    header = ["member", "checkpoint", "epoch", "neuron", "layer", "unit", "action", "role", "mirror_rank", "d_frog", "d_toad", "mns",
              "p_mns", "p_frog", "p_toad", "significant", "p_diff", "mns_scaled", "p_init_mns", "above_init",
              "scenario", "rows", "mean", "variance", "skewness", "kurtosis"]  # fmt: skip
    r, mo, p = a.result, a.moments, a.neuron_p
    missing = np.full(np.shape(p["p_mirror"]), np.nan)
    output_layer = int(a.layer_of.max())
    rows = []
    for m, c in enumerate(a.selected):
        real = np.asarray(r.neuron_mask[c, m])
        for n in np.flatnonzero(real):
            layer, unit = int(a.layer_of[n]), int(a.unit_of[n])
            action = ACTION_NAMES[unit] if layer == output_layer else ""
            head = [m, int(c), int(epochs[c]), neuron_name(layer, unit), layer + 1, unit, action, ROLE_NAMES[a.roles[m, n]], a.mirror_rank[m, n]]
            head += [float(r.d_frog[c, m, n]), float(r.d_toad[c, m, n]), float(r.mns[c, m, n])]
            head += [float(p["p_mirror"][m, n]), float(p["p_frog"][m, n]), float(p["p_toad"][m, n]), significant_tests(p, m, n)]
            head += [float(p.get(k, missing)[m, n]) for k in ("p_diff", "mns_scaled", "p_init_mns")]
            head += [bool(p["above_init"][m, n]) if np.isfinite(p.get("p_init_mns", missing)[m, n]) else ""]
            for g, group in enumerate(GROUP_NAMES):
                stats = [float(s[m, n, g]) for s in (mo.mean, mo.variance, mo.skewness, mo.kurtosis)]
                rows.append(head + [group, int(mo.counts[g])] + stats)
    return header, rows


def _edges(edges) -> str:
    return " ".join(f"{neuron_name(0, u)}:{w:.4g}(z={z:.2f})" for u, w, z in edges)


def circuit_rows(a: CheckpointAnalysis, epochs):
    header = ["member", "epoch", "hub", "action", "action_weight", "action_z", "other_actions_mean", "mirror_in", "differentiating_in",
              "distress_share", "mirror_sources", "differentiating_sources", "circuit"]  # fmt: skip
    rows = []
    for m, hubs in enumerate(a.circuits):
        for h in hubs:
            rows.append([m, int(epochs[a.selected[m]]), h["hub"], h["action"], h["action_weight"], h["action_z"], h["other_actions_mean"],
                         h["mirror_in"], h["differentiating_in"], h["distress_share"], _edges(h["mirror_sources"]), _edges(h["differentiating_sources"]), h["circuit"]])  # fmt: skip
    return header, rows


def weight_rows(a: CheckpointAnalysis, params_selected, epochs):
    """Every real weight of the selected checkpoint(s) with its z-score (NaN z = padded)."""
    header = ["member", "epoch", "kernel", "from", "to", "weight", "z"]
    rows = []
    for m, z in enumerate(a.zscores):
        names = kernel_names(params_selected)
        for i, name in enumerate(names):
            if name not in z:  # a transformer has no dense-layer z-scores
                continue
            w = np.asarray(params_selected[name]["kernel"])[m]
            for s, t in zip(*np.nonzero(np.isfinite(z[name]))):
                source = f"x{s}" if i == 0 else neuron_name(i - 1, int(s))
                target = neuron_name(i, int(t)) + (f" ({ACTION_NAMES[t]})" if name == "output" else "")
                rows.append([m, int(epochs[a.selected[m]]), name, source, target, float(w[s, t]), float(z[name][s, t])])
    return header, rows


def seed_verdicts(a: CheckpointAnalysis, epochs, *, replicates: bool = True) -> dict:
    """summary.json's `rise_and_fall` and `init_baseline`, per CMNI variant in `a.variants`
    (mirror.analysis.seeds). `replicates`: the members are seeds of one configuration (a
    population whose members differ in more than their seed is not tested for a drop)."""
    members = np.arange(len(a.selected))
    rise, init = {}, {}
    for name, values in a.variants.items():
        values = np.asarray(values, float)
        if replicates:
            rise[name] = seeds.rise_and_fall(epochs, values)
        else:
            rise[name] = {"peak_epoch": None, "drop": None, "p_sign_flip": None, "ci95": [None, None], "seeds": int(values.shape[1]), "reproduced": False,
                          "per_seed_drop": [], "method": "not tested: the members differ in more than their seed"}  # fmt: skip
        null = np.asarray(a.variant_init_null.get(name, np.zeros((len(members), 0))), float)
        init[name] = seeds.init_baseline(null, values[np.asarray(a.selected), members])
    return {"rise_and_fall": rise, "init_baseline": init}


def _json_number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def summary(a: CheckpointAnalysis, epochs, config_analysis: dict, *, replicates: bool = True) -> dict:
    init = a.init_null
    return {
        "analysis_config": config_analysis,
        "test_rows_per_group": dict(zip(GROUP_NAMES, map(int, a.group_counts))),
        "selected": [{"member": m, "checkpoint": int(c), "epoch": int(epochs[c])} for m, c in enumerate(a.selected)],
        "init_null": [
            {"member": m, "seeds": int(init.shape[1]), "mean": float(init[m].mean()), "std": float(init[m].std()),
             "p95": float(np.percentile(init[m], 95)), "max": float(init[m].max())} if init.shape[1] else {"member": m, "seeds": 0}
            for m in range(init.shape[0])
        ],  # fmt: skip
        **seed_verdicts(a, epochs, replicates=replicates),
        # every random-initialisation draw of each variant, per member: the bands and tests over epochs need the values
        "init_draws": {name: [[_json_number(v) for v in row] for row in np.asarray(null, float)] for name, null in a.variant_init_null.items()},
        "timings_s": {k: round(v, 3) for k, v in a.timings.items()},
    }


def write_analysis_outputs(
    out_dir, a: CheckpointAnalysis, *, epochs, metrics: dict, params_selected, config_analysis: dict, figures: bool = True,
    metric_names=SUPERVISED_METRICS, extra_columns: dict | None = None, summary_extra: dict | None = None, training_figure: bool = True,
    replicates: bool = True,
) -> list[Path]:  # fmt: skip
    """Write every table and (unless `figures` is off) figure; returns the paths written.
    metric_names / extra_columns: cmni.csv's per-checkpoint columns (`cmni_rows`);
    summary_extra: more summary.json keys; training_figure: Figure 2 (validation loss
    and CMNI), which an RL run replaces with `mirror.runs.rl_figures`; replicates:
    the members are seeds of one configuration (`seed_verdicts`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [
        write_csv(out / "cmni.csv", *cmni_rows(a, epochs, metrics, metric_names, extra_columns)),
        write_csv(out / "neurons.csv", *neuron_rows(a, epochs)),
        write_csv(out / "circuits.csv", *circuit_rows(a, epochs)),
        write_csv(out / "weights.csv", *weight_rows(a, params_selected, epochs)),
    ]
    path = out / "summary.json"
    matching = {"cmni_matching": a.matching} if a.matching else {}  # cmni_matched's cells, ESS and coverage per group
    path.write_text(json.dumps({**summary(a, epochs, config_analysis, replicates=replicates), **matching, **(summary_extra or {})}, indent=2) + "\n")
    written.append(path)
    if figures:
        (out / "figures").mkdir(exist_ok=True)
        written += write_figures(out / "figures", a, epochs, metrics, training=training_figure)
    return written


def write_figures(fig_dir: Path, a: CheckpointAnalysis, epochs, metrics: dict, training: bool = True) -> list[Path]:
    r = a.result
    members = np.asarray(r.cmni).shape[1]
    suffix = (lambda m: f"_m{m}") if members > 1 else (lambda m: "")
    written = []
    for m in range(members):
        c = int(a.selected[m])
        label = f"member {m}, " if members > 1 else ""
        if training:
            written.append(
                figures.plot_training(
                    fig_dir / f"training{suffix(m)}.png", epochs, metrics["val_loss"][:, m], np.asarray(r.cmni[:, m]),
                    cmni_leak=a.cmni_leak[:, m], p_values=a.p_init[:, m], init_null=a.init_null[m] if a.init_null.shape[1] else None,
                    selected_epoch=int(epochs[c]), title=f"Validation loss and CMNI across epochs ({label}paper Figure 2)",
                )
            )  # fmt: skip
        real = np.asarray(r.neuron_mask[c, m])
        for layer in np.unique(a.layer_of):
            idx = np.flatnonzero((a.layer_of == layer) & real)
            names = [neuron_name(int(layer), int(a.unit_of[n])) for n in idx]
            output = layer == a.layer_of.max()
            if output:
                names = [f"{n}\n{ACTION_NAMES[int(a.unit_of[i])]}" for n, i in zip(names, idx)]
            kind = "outputs" if output else f"hidden layer {layer + 1}"
            written.append(
                figures.plot_layer_means(
                    fig_dir / f"layer{layer + 1}{suffix(m)}.png", np.asarray(a.moments.mean[m])[idx], a.roles[m, idx], names,
                    title=f"Mean activation per scenario, {kind} ({label}epoch {int(epochs[c])}, CMNI {float(r.cmni[c, m]):.5f})",
                )
            )  # fmt: skip
        written.append(
            figures.plot_circuits(
                fig_dir / f"circuits{suffix(m)}.png", a.circuits[m],
                title=f"Distress-activated circuits ({label}epoch {int(epochs[c])})",
            )
        )  # fmt: skip
    if training and a.variants:  # Figure 2 over seeds: every variant, every member
        written.append(figures.plot_cmni_seeds(fig_dir / "cmni_seeds.png", epochs, a.variants, metrics["val_loss"], init_null=a.variant_init_null))
    return written
