"""`report.md` of a run, written from the files the stages left in the run directory
(`test_metrics.json`, `cmni.csv`, `neurons.csv`, `summary.json`), so it can be
re-written at any time (e.g. after `mirror run --resume`).
"""

import csv
import json
import math
from pathlib import Path

import yaml

from mirror.runs.outputs import VARIANT_COLUMNS
from mirror.analysis.seeds import init_baseline_words, rise_and_fall_words
from mirror.env.constants import ACTION_NAMES
from mirror.train.class_metrics import per_class_metrics

# The paper's published numbers (Wyrick 2024, §5): Tables 1-3 and Figure 2.
PAPER = {
    "high_cmni_range": (0.01119, 0.01228),  # Table 1, five highest-CMNI checkpoints (val loss 0.054-0.059)
    "low_cmni_range": (0.00026, 0.00049),  # Table 2, five lowest-CMNI checkpoints (val loss 0.077-0.081)
    "case_cmni": 0.005372,  # §5.2: 2 x 17, lr 4e-6, epoch 70, val loss 0.0440
    "case_val_loss": 0.0440,
    "accuracy": 0.9210,  # Table 3
    # Table 3's confusion matrix (rows predicted, columns actual: hop, jump, leap, help).
    "confusion": ((36778, 0, 2920, 301), (0, 40000, 0, 0), (4079, 0, 5695, 226), (369, 0, 3, 9628)),
}


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _f(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def trajectory(rows: list[dict], member: int = 0) -> dict:
    """Peak / final CMNI and the Figure 2 shape for one member, from cmni.csv rows."""
    rows = sorted((r for r in rows if int(r["member"]) == member), key=lambda r: int(r["epoch"]))
    epochs = [int(r["epoch"]) for r in rows]
    cmni = [_f(r["cmni"]) for r in rows]
    loss = [_f(r["val_loss"]) for r in rows]
    peak = max(range(len(cmni)), key=lambda i: cmni[i])
    final = len(cmni) - 1
    best_loss = min(range(len(loss)), key=lambda i: loss[i])
    # No verdict here: one model's final value sits below its own peak on a flat, noisy
    # curve too. The rise-and-fall test is over seeds (`seeds_section`).
    return {
        "epochs": epochs,
        "cmni": cmni,
        "val_loss": loss,
        "peak_epoch": epochs[peak],
        "peak_cmni": cmni[peak],
        "peak_val_loss": loss[peak],
        "final_epoch": epochs[final],
        "final_cmni": cmni[final],
        "best_val_loss": loss[best_loss],
        "best_val_loss_epoch": epochs[best_loss],
        "peak_to_final": cmni[peak] / cmni[final] if cmni[final] > 0 else math.inf,
    }


def _number(value, digits: int = 6) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def seeds_section(summary: dict) -> list[str]:
    """The "CMNI across seeds" section: per CMNI variant the comparison with the
    random-init null (the headline: did training build more than an untrained network
    has?) and the rise-and-fall test over seeds (summary.json's `init_baseline` and
    `rise_and_fall`, mirror.analysis.seeds), in words no stronger than the statistics."""
    rise, init = summary.get("rise_and_fall", {}), summary.get("init_baseline", {})
    out = ["## CMNI across seeds", ""]
    if not rise:
        return out + ["summary.json has no verdicts over seeds (written by an older analysis: run `mirror cmni RUN_DIR`).", ""]
    seeds = max(entry["seeds"] for entry in rise.values())
    out += ["![CMNI across epochs and seeds](figures/cmni_seeds.png)", ""]
    if init:
        out += [
            "**Trained against untrained networks** (the headline verdict): the members' mean at their selected checkpoints"
            " against the means of as many random-initialisation draws of the same architecture (one per member, bootstrap;"
            " one-sided, p <= 0.05).",
            "",
            "| variant | random init mean ± sd | trained mean | verdict |",
            "| --- | ---: | ---: | --- |",
        ]
        for name, entry in init.items():
            spread = "-" if entry["mean"] is None else f"{entry['mean']:.6f} ± {entry['sd']:.6f} ({entry['init_seeds']} draws per member)"
            out.append(f"| {name} | {spread} | {_number(entry['trained_mean'])} | {init_baseline_words(entry)} |")
        out.append("")
    out += [
        f"**Rise and fall** over {seeds} seed{'s' * (seeds != 1)} trained on the same data. Each seed's peak is the epoch at which the"
        " mean curve of the other seeds peaks (leave-one-seed-out, so a seed's own noise does not pick its peak); its drop is"
        " its value there minus its final value. The verdict rests on an exact one-sided sign-flip test of the seeds' drops"
        " (all 2^n sign patterns; reproduced when p <= 0.05, which needs at least 5 seeds). The interval beside it is a"
        " nominal 95 % percentile bootstrap over seeds (expanded for small samples), descriptive only: it covers about 90 %"
        " at 5 seeds.",
        "",
        "| variant | seeds | peak epoch (mean curve) | drop (peak - final) | sign-flip p | nominal 95 % CI | verdict |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for name, entry in rise.items():
        lo, hi = entry["ci95"]
        ci = "-" if lo is None else f"[{lo:.6f}, {hi:.6f}]"
        peak = "-" if entry["peak_epoch"] is None else entry["peak_epoch"]
        p = entry.get("p_sign_flip")
        p = "-" if p is None else f"{p:.3g}"
        out.append(f"| {name} | {entry['seeds']} | {peak} | {_number(entry['drop'])} | {p} | {ci} | {rise_and_fall_words(entry)} |")
    return out + [""]

# cmni.csv's columns per variant: (value, permutation p, random-init p); the paper's first.
VARIANT_CSV = {"cmni": ("cmni", "p_permutation", "p_init"), **VARIANT_COLUMNS}
VARIANT_MEANING = {
    "cmni": "the paper's raw CMNI (units of activation)",
    "cmni_scaled": "each neuron's deltas over its pooled activation sd (scale-free)",
    "cmni_matched": "group means matched to the baseline's label x energy mix",
}


def _present(rows: list[dict]) -> list[str]:
    """The variants cmni.csv has (files from older analyses: the raw CMNI only)."""
    return [name for name, (column, _, _) in VARIANT_CSV.items() if rows and column in rows[0]]


def epoch_table(cmni_rows: list[dict], epochs: list[int], member: int) -> list[str]:
    """Every checkpoint of `member`: validation loss and each variant with its random-init p
    (the headline) and its permutation p (the groups' activations differ)."""
    names = _present(cmni_rows)
    head = " | ".join(f"{n} | p init | p perm" for n in names)
    out = [f"| epoch | val loss | {head} |", "| ---: | ---: |" + " ---: | ---: | ---: |" * len(names)]
    by_epoch = {int(r["epoch"]): r for r in cmni_rows if int(r["member"]) == member}
    for epoch in epochs:
        r = by_epoch[epoch]
        cells = " | ".join(f"{_f(r[VARIANT_CSV[n][0]]):.6f} | {_p(r.get(VARIANT_CSV[n][2]))} | {_p(r.get(VARIANT_CSV[n][1]))}" for n in names)
        out.append(f"| {epoch} | {_f(r['val_loss']):.4f} | {cells} |")
    return out + [
        "",
        "p init: the checkpoint's rank among random initialisations of the same architecture (does it score above"
        " untrained networks?); p perm: the scenario-label permutation test, which shows only that the groups'"
        " activations differ (untrained networks pass it too: a row's group is written in its input).",
        "",
    ]


def _p(value) -> str:
    value = _f(value)
    return "-" if math.isnan(value) else f"{value:.3f}"


def init_verdict(p_init: float, seeds: int | None = None) -> str:
    """The random-initialisation verdict (the headline) in words, with its p and test."""
    test = "rank among random initialisations of the same architecture" if not seeds else f"rank among {seeds} random initialisations of the same architecture"
    if math.isnan(p_init):
        return "not compared with random initialisation (analysis.init_seeds = 0)"
    if p_init <= 0.05:
        return f"**above** the random-init null (p = {p_init:.3g}, {test})"
    return f"not above the random-init null (p = {p_init:.3g}, {test})"


def groups_differ(p_perm: float, permutations: int | None = None) -> str:
    """What the label-permutation test shows, in words: the groups' activations differ (or not)."""
    test = "scenario-label permutation test" + (f", {permutations} permutations" if permutations else "")
    if math.isnan(p_perm):
        return "the permutation test was not run (analysis.permutations = 0)"
    if p_perm <= 0.05:
        return f"the groups' activations differ (p = {p_perm:.3g}, {test}; untrained networks pass this too)"
    return f"no difference between the groups' activations shown (p = {p_perm:.3g}, {test})"


def variant_nulls_table(selected: dict) -> list[str]:
    """The selected checkpoint's value and both null p-values for every variant."""
    names = _present([selected])
    out = ["| variant | what it measures | value | random-init p | permutation p |", "| --- | --- | ---: | ---: | ---: |"]
    for n in names:
        value, p_perm, p_init = (_f(selected[c]) for c in VARIANT_CSV[n])
        out.append(f"| {n} | {VARIANT_MEANING[n]} | {value:.6f} | {_p(p_init)} | {_p(p_perm)} |")
    return out + [
        "",
        "The random-init p asks whether training raised the index above untrained networks of the same architecture: it is"
        " the verdict. The permutation p asks only whether the scenario groups' activations differ at all (label shuffles;"
        " within label x energy cells for cmni_matched): a row's group is written in its input (the distress code), so any"
        " network that reads its input passes it, untrained ones included. A small permutation p with a large random-init p"
        " means the structure was there before training.",
        "",
    ]


def matching_lines(matching: dict | None) -> list[str]:
    """cmni_matched's diagnostics: effective sample size and coverage per group."""
    if not matching or not matching.get("ess"):
        return []
    groups = ("none", "frog", "toad")
    parts = [f"{g} {ess:,.0f} ({cov:.0%} of its rows in the support)" for g, ess, cov in zip(groups, matching["ess"], matching["coverage"])]
    return ["cmni_matched, effective sample size per group: " + "; ".join(parts) + f" ({matching.get('energy_bins')} energy bins).", ""]


def figure2_shape(summary: dict) -> str:
    """The "Figure 2 shape" cell of the comparison with the paper (the paper's CMNI)."""
    entry = summary.get("rise_and_fall", {}).get("cmni")
    return "not tested (no verdicts over seeds in summary.json)" if entry is None else rise_and_fall_words(entry)


def _confusion_table(confusion: list[list[int]]) -> list[str]:
    lines = ["| predicted \\ actual | " + " | ".join(ACTION_NAMES) + " |", "| --- |" + " ---: |" * len(ACTION_NAMES)]
    for name, row in zip(ACTION_NAMES, confusion):
        lines.append(f"| {name} | " + " | ".join(f"{v:,}" for v in row) + " |")
    return lines


def _p4(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


def _metric(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def per_class_section(test: dict | None, member: int, config_text: str = "") -> list[str]:
    """Per-class recall and precision of `member` at its best checkpoint (test_metrics.json;
    computed from the confusion matrix for files written before they were stored)."""
    if not test:
        return []
    entry = test["members"][member]
    best = entry if "accuracy" in entry else entry["last"]
    metrics = best if "per_class" in best else per_class_metrics(best["confusion"])
    weights = (yaml.safe_load(config_text) or {}).get("train", {}).get("class_weights", "none") if config_text else "none"
    out = [
        "## Per-class recall and precision",
        "",
        f"Test set, epoch {best['epoch']}; loss class weights: **{weights}**"
        + (" (the paper's)." if weights == "none" else " (each class a quarter of the training loss)."),
        "",
        "| class | recall | precision | test rows | predicted | paper recall | paper precision |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    paper = per_class_metrics(PAPER["confusion"])["per_class"]  # from Table 3
    for name in ACTION_NAMES:
        m, p = metrics["per_class"][name], paper[name]
        out.append(
            f"| {name} | {_metric(m['recall'])} | {_metric(m['precision'])} | {m['actual']:,} | {m['predicted']:,} "
            f"| {_metric(p['recall'])} | {_metric(p['precision'])} |"
        )
    out += ["", f"Mean recall over the classes (balanced accuracy): {_metric(metrics['macro_recall'])}."]
    if metrics["undefined"]:
        out.append("Undefined (shown as –): " + "; ".join(metrics["undefined"]) + ".")
    return out + [""]


def role_method(analysis_config: dict, neurons: int | None = None) -> str:
    """The report line naming how the neuron roles were assigned (`analysis.roles`), with
    the per-neuron tests' resolution when the number of tested neurons is given."""
    if not analysis_config:
        return ""
    # Analyses written before analysis.roles existed used the paper's thresholds.
    if analysis_config.get("roles", "paper") == "paper":
        return (
            f"Roles: the paper-fitted thresholds (analysis.roles: paper): a neuron responds to a distress above "
            f"{analysis_config.get('response_fraction', 0.15)} of its layer's largest distress response. These thresholds were "
            "fitted to reproduce the paper's Table 4; they are not a statistical test, and they do not compare with untrained networks."
        )
    alpha, permutations = analysis_config.get("alpha", 0.05), analysis_config.get("permutations", 0)
    seeds = analysis_config.get("init_seeds", 0)
    line = (
        f"Roles: per-neuron permutation tests, BH at alpha {alpha} ({permutations} label permutations): mirror = MNS > 0 with the MNS, "
        f"dFrog > 0 and dToad > 0 tests all significant AND a scale-free MNS (MNS / the neuron's pooled sd) above the random-init "
        f"units of its layer (its rank among the units of {seeds} random initialisations, BH within the layer); differentiating = "
        "dFrog - dToad significant (the Frog and Toad labels shuffled between those rows only, two-sided) with at least one of "
        "dFrog > 0, dToad > 0 significant. The label permutation tests alone show only that a neuron responds to distress, "
        f"which units of untrained networks do too. Against random init the smallest p in a layer of w units is 1/({seeds} w + 1), "
        "so BH within the layer can call a single neuron only when that is at most alpha / w (raise analysis.init_seeds if not)."
    )
    if neurons:
        # The smallest p is 1 / (K + 1): BH rejects only if k neurons reach it with 1 / (K + 1) <= alpha k / N.
        needed = math.ceil(neurons / (alpha * (permutations + 1)) - 1e-9)
        if needed > neurons:
            line += (f" The smallest p-value is 1/{permutations + 1}: BH over {neurons} neurons would need {needed} neurons at it, "
                     "so with this few permutations no neuron can be significant (raise analysis.permutations).")  # fmt: skip
        else:
            line += f" The smallest p-value is 1/{permutations + 1}, so a test can only reject when at least {needed} of the {neurons} neurons reach it."
    return line


def build_report(run_dir: Path, member: int = 0, timings: dict | None = None) -> str:
    run_dir = Path(run_dir)
    cmni_rows = read_csv(run_dir / "cmni.csv")
    traj = trajectory(cmni_rows, member)
    selected = next(r for r in cmni_rows if int(r["member"]) == member and r["selected"] in ("1", "True"))
    peak_row = next(r for r in cmni_rows if int(r["member"]) == member and int(r["epoch"]) == traj["peak_epoch"])
    test = json.loads((run_dir / "test_metrics.json").read_text()) if (run_dir / "test_metrics.json").exists() else None
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    neurons = read_csv(run_dir / "neurons.csv") if (run_dir / "neurons.csv").exists() else []
    config = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").exists() else ""

    out = [f"# Run report: {run_dir.name}", ""]
    if timings:
        out += ["Wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()), ""]

    out += ["## Test set", ""]
    if test:
        entry = test["members"][member]
        best = entry if "accuracy" in entry else entry["last"]
        out += [
            f"Accuracy **{best['accuracy']:.4f}** at epoch {best['epoch']} (best validation loss) on "
            f"{test['rows']:,} test rows; at the last epoch {entry['last']['epoch']}: {entry['last']['accuracy']:.4f}.",
            "",
            "Confusion matrix (rows predicted, columns actual, as the paper's Table 3):",
            "",
            *_confusion_table(best["confusion"]),
            "",
        ]
    else:
        out += ["No test metrics (training produced no checkpoint).", ""]
    out += per_class_section(test, member, config)

    init = next((i for i in summary.get("init_null", []) if i.get("member") == member and i.get("seeds")), None)
    permutations = (summary.get("analysis_config") or {}).get("permutations")
    seeds = init["seeds"] if init else None
    out += [
        "## CMNI across epochs (the paper's Figure 2)",
        "",
        "![validation loss and CMNI](figures/training.png)",
        "",
        f"- **against untrained networks** at the selected checkpoint (epoch {selected['epoch']}): {init_verdict(_f(selected.get('p_init')), seeds)}",
        f"- peak CMNI **{traj['peak_cmni']:.6f}** at epoch {traj['peak_epoch']} (validation loss {traj['peak_val_loss']:.4f})",
        f"- final CMNI {traj['final_cmni']:.6f} at epoch {traj['final_epoch']}; peak / final = {traj['peak_to_final']:.2f}",
        f"- best validation loss {traj['best_val_loss']:.4f} at epoch {traj['best_val_loss_epoch']}",
        "- one model's peak and final values are no test of the rise and fall: see CMNI across seeds",
        "",
    ]
    out += epoch_table(cmni_rows, traj["epochs"], member)
    out += seeds_section(summary)

    out += [
        "## Null baselines and the published leak",
        "",
        f"At the selected checkpoint (epoch {selected['epoch']}): CMNI {_f(selected['cmni']):.6f}, "
        f"{init_verdict(_f(selected.get('p_init')), seeds)}; {groups_differ(_f(selected.get('p_permutation')), permutations)}.",
        f"At the peak (epoch {peak_row['epoch']}): {init_verdict(_f(peak_row.get('p_init')), seeds)}; "
        f"{groups_differ(_f(peak_row.get('p_permutation')), permutations)}.",
    ]
    if init:
        out.append(f"Untrained networks of the same architecture ({init['seeds']} seeds): CMNI {init['mean']:.6f} ± {init['std']:.6f} (max {init['max']:.6f}).")
    out += ["", *variant_nulls_table(selected), *matching_lines(summary.get("cmni_matching"))]
    out += [
        "",
        "The published computation fed the scenario id into input 98 (spec §7). Same checkpoints with that leak:",
        "",
        "| checkpoint | CMNI (clean) | CMNI (leak) |",
        "| --- | ---: | ---: |",
        f"| selected, epoch {selected['epoch']} | {_f(selected['cmni_clean']):.6f} | {_f(selected['cmni_leak']):.6f} |",
        f"| peak, epoch {peak_row['epoch']} | {_f(peak_row['cmni_clean']):.6f} | {_f(peak_row['cmni_leak']):.6f} |",
        "",
    ]

    mirror, responsive = {}, 0
    for r in neurons:
        if int(r["member"]) != member or r["scenario"] != "none":
            continue
        if r["role"] == "mirror":
            mirror[r["neuron"]] = (_f(r["mns"]), _f(r["d_frog"]), _f(r["d_toad"]), _f(r.get("p_mns")), _f(r.get("mns_scaled")), _f(r.get("p_init_mns")))
        elif r.get("significant", "").startswith("mns+frog+toad"):
            responsive += 1  # both rises significant, but not above the random-init units
    out += ["## Mirror candidates", "", f"At epoch {selected['epoch']}, neurons that respond to both Frog's and Toad's distress:", ""]
    tested = sum(1 for r in neurons if int(r["member"]) == member and r["scenario"] == "none")
    method = role_method(summary.get("analysis_config", {}), tested)
    out += [method, ""] if method else []
    if mirror:
        out += ["| neuron | MNS | dFrog | dToad | p (MNS) | MNS / sd | p (vs random-init units) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, (mns, d_frog, d_toad, p_mns, scaled, p_init) in sorted(mirror.items(), key=lambda kv: -kv[1][0]):
            cells = [f"{mns:.4f}", f"{d_frog:.4f}", f"{d_toad:.4f}", _p4(p_mns), _p4(scaled), _p4(p_init)]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
    else:
        out.append("none")
    if responsive:
        out += ["", f"{responsive} more neuron(s) rise significantly in both distress groups but not above the random-init units of their"
                " layer: role other (`neurons.csv`: significant `mns+frog+toad`, above_init 0)."]  # fmt: skip
    out += ["", "Per-neuron means per scenario: `neurons.csv`, `figures/`; circuits: `circuits.csv`.", ""]

    accuracy = None
    if test:
        entry = test["members"][member]
        accuracy = (entry if "accuracy" in entry else entry["last"])["accuracy"]
    p = PAPER
    out += [
        "## Against the paper",
        "",
        "| quantity | paper | this run |",
        "| --- | --- | --- |",
        f"| test accuracy (Table 3) | {p['accuracy']:.4f} | {'-' if accuracy is None else f'{accuracy:.4f}'} |",
        f"| high-CMNI checkpoints (Table 1) | {p['high_cmni_range'][0]:.5f} – {p['high_cmni_range'][1]:.5f} | peak {traj['peak_cmni']:.5f} |",
        f"| low-CMNI checkpoints (Table 2) | {p['low_cmni_range'][0]:.5f} – {p['low_cmni_range'][1]:.5f} | final {traj['final_cmni']:.5f} |",
        f"| case example, 2 × 17 (§5.2) | CMNI {p['case_cmni']:.6f} at val loss {p['case_val_loss']:.4f} | CMNI {_f(selected['cmni']):.6f} at val loss {_f(selected['val_loss']):.4f} |",
        f"| Figure 2 shape | CMNI peaks once the model is competent, then declines as loss falls | {figure2_shape(summary)} |",
        f"| CMNI against untrained networks (selected checkpoint) | not tested | {init_verdict(_f(selected.get('p_init')), seeds)} |",
        "",
        "The paper's CMNI was measured with the scenario leak (spec §7) and on a dataset whose train and test sets overlapped;"
        " compare the leak column above with its numbers.",
        "",
    ]
    if config:
        out += ["## Resolved config", "", "```yaml", config.rstrip(), "```", ""]
    return "\n".join(out)


def write_report(run_dir: Path, member: int = 0, timings: dict | None = None) -> Path:
    path = Path(run_dir) / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(build_report(run_dir, member, timings))
    tmp.replace(path)
    return path
