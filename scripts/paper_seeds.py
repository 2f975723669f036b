"""The paper's run at full scale over seeds (configs/paper_seeds.yaml): Figure 2 with seed
bands, the rise-and-fall and above-untrained tests per CMNI variant, and Table 3 per seed.

    uv run mirror run --config configs/paper_seeds.yaml --run-dir runs/paper-seeds
    uv run python scripts/paper_seeds.py runs/paper-seeds

Reads the run's cmni.csv, summary.json and test_metrics.json (nothing is recomputed) and
writes docs/results/paper_seeds.json and docs/paper_cmni_seeds.png:

- **rise and fall** (the run's own test, `mirror.analysis.seeds.rise_and_fall`): each seed's
  peak is the peak epoch of the OTHER seeds' mean curve; its drop is its value there minus
  its final value; exact one-sided sign-flip test over the seeds' drops;
- **above untrained networks at any epoch**: one test per variant, free of the choice of
  epoch: each seed's z against its own random-initialisation draws (the run's
  `analysis.init_seeds`) at the epoch where the OTHER seeds' mean z peaks, then the exact
  one-sided sign-flip test over seeds; beside it, descriptively, the epochs at which every
  seed lies above the 95th percentile of its own draws;
- **Table 3**: test accuracy and the recall of help and leap per seed at its best (early-
  stopping) checkpoint, against the paper's 0.921, 0.95 and 0.66.
"""

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mirror.analysis.seeds import ALPHA, leave_one_out_peaks, sign_flip_p

VARIANTS = (("cmni", "raw CMNI (the paper's)"), ("cmni_scaled", "scale-free CMNI (cmni_scaled)"), ("cmni_matched", "composition-matched CMNI"))
PAPER_RAW = {"peak_epoch": 7, "peak": 0.0082, "final_epoch": 303, "final": 0.0035}  # Figure 2 (section 5.2)
PAPER_TABLE3 = {"accuracy": 0.921, "help_recall": 0.948, "leap_recall": 0.661}
SEED_COLOUR, INIT_COLOUR, PAPER_COLOUR = "#1565c0", "#9e9e9e", "#d81b60"


def read_curves(run_dir: Path) -> tuple[np.ndarray, dict]:
    """(epochs[checkpoints], variant -> float[checkpoints, members]) from cmni.csv."""
    rows = list(csv.DictReader((run_dir / "cmni.csv").open()))
    checkpoints = sorted({int(r["checkpoint"]) for r in rows})
    members = sorted({int(r["member"]) for r in rows})
    epochs = np.zeros(len(checkpoints), int)
    values = {name: np.full((len(checkpoints), len(members)), np.nan) for name, _ in VARIANTS}
    for r in rows:
        c, m = checkpoints.index(int(r["checkpoint"])), members.index(int(r["member"]))
        epochs[c] = int(r["epoch"])
        for name, _ in VARIANTS:
            if r.get(name) not in (None, "", "nan"):
                values[name][c, m] = float(r[name])
    return epochs, values


def above_init(epochs, values: np.ndarray, draws: np.ndarray) -> dict:
    """The above-untrained test of the module docstring. values [checkpoints, seeds]; draws
    [seeds, init draws] (each seed's own random initialisations)."""
    mean, sd = draws.mean(axis=1), draws.std(axis=1, ddof=1)
    z = (values - mean) / sd  # [checkpoints, seeds]
    peaks = leave_one_out_peaks(z)
    per_seed = z[peaks, np.arange(z.shape[1])]
    above_p95 = values > np.percentile(draws, 95, axis=1)
    every = [int(e) for e, row in zip(epochs, above_p95) if row.all()]
    p = float(sign_flip_p(per_seed))
    return {
        "test": "each seed's z against its own random-init draws at the epoch where the other seeds' mean z peaks "
                "(leave-one-seed-out); exact one-sided sign-flip test over seeds",
        "per_seed_epoch": [int(epochs[p]) for p in peaks], "per_seed_z": per_seed.tolist(),
        "mean_z": float(per_seed.mean()), "p_sign_flip": p, "above": p <= ALPHA,
        "mean_z_by_epoch_max": float(np.max(z.mean(axis=1))), "mean_z_at_last": float(z[-1].mean()),
        "epochs_every_seed_above_p95": every,
    }  # fmt: skip


def table3(test: dict) -> list[dict]:
    out = []
    for entry in test["members"]:
        best = entry if "accuracy" in entry else entry["last"]
        per_class = best.get("per_class", {})
        out.append({"member": entry["member"], "epoch": best.get("epoch"), "accuracy": best["accuracy"],
                    **{f"{c}_recall": (per_class.get(c) or {}).get("recall") for c in ("hop", "jump", "leap", "help")}})  # fmt: skip
    return out


def figure(epochs, curves: dict, init_draws: dict, tests: dict) -> Figure:
    fig = Figure(figsize=(15, 4.4), layout="constrained")
    axes = fig.subplots(1, len(VARIANTS))
    for ax, (name, title) in zip(axes, VARIANTS):
        values = curves[name]
        ax.plot(epochs, values, color=SEED_COLOUR, lw=0.6, alpha=0.45)
        ax.fill_between(epochs, np.nanmin(values, axis=1), np.nanmax(values, axis=1), color=SEED_COLOUR, alpha=0.15)
        ax.plot(epochs, np.nanmean(values, axis=1), color=SEED_COLOUR, lw=1.8, label=f"trained: mean of {values.shape[1]} seeds (band: min-max, thin: each)")
        draws = np.asarray(init_draws[name], float)
        low, high = np.percentile(draws, [5, 95])
        ax.axhspan(low, high, color=INIT_COLOUR, alpha=0.25, label=f"random init: 5-95 % of {draws.size} draws")
        rise = tests[name]["rise_and_fall"]
        if rise.get("peak_epoch") is not None:
            ax.axvline(rise["peak_epoch"], color="black", ls=(0, (4, 3)), lw=0.8, label=f"peak of the mean curve (epoch {rise['peak_epoch']})")
        if name == "cmni":
            ax.plot([PAPER_RAW["peak_epoch"], PAPER_RAW["final_epoch"]], [PAPER_RAW["peak"], PAPER_RAW["final"]], "D", color=PAPER_COLOUR,
                    label="the paper, one model: 0.0082 (epoch 7), 0.0035 (epoch 303)")  # fmt: skip
        p_drop, p_above = rise.get("p_sign_flip"), tests[name]["above_init"]["p_sign_flip"]
        ax.set_title(f"{title}\ndrop p = {p_drop if p_drop is None else f'{p_drop:.3g}'}, above untrained p = {p_above:.3g} (sign flips over seeds)", fontsize=9)
        ax.set_xscale("log")
        ax.set_xlabel("epoch (log scale)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("The paper's configuration, five seeds on the same 6M-row dataset: three CMNIs on the test rows against epoch", fontsize=10)
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--json", type=Path, default=Path("docs/results/paper_seeds.json"))
    parser.add_argument("--figure", type=Path, default=Path("docs/paper_cmni_seeds.png"))
    args = parser.parse_args()
    summary = json.loads((args.run_dir / "summary.json").read_text())
    if "init_draws" not in summary:
        raise SystemExit(f"{args.run_dir}/summary.json has no init_draws (analysed before the field): `mirror run --resume {args.run_dir}` redoes the analysis")
    epochs, curves = read_curves(args.run_dir)
    tests = {}
    for name, _ in VARIANTS:
        draws = np.asarray(summary["init_draws"][name], float)
        values = curves[name]
        tests[name] = {
            "rise_and_fall": summary["rise_and_fall"][name], "init_baseline_selected": summary["init_baseline"][name],
            "mean_curve_peak": {"epoch": int(epochs[np.argmax(values.mean(axis=1))]), "value": float(values.mean(axis=1).max())},
            "mean_last": float(values[-1].mean()), "above_init": above_init(epochs, values, draws),
        }  # fmt: skip
    result = {
        "run_dir": str(args.run_dir), "epochs": len(epochs), "seeds": int(curves["cmni"].shape[1]),
        "selected": summary["selected"], "paper_raw": PAPER_RAW, "paper_table3": PAPER_TABLE3, "variants": tests,
        "table3": table3(json.loads((args.run_dir / "test_metrics.json").read_text())),
    }  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    fig = figure(epochs, curves, summary["init_draws"], tests)
    fig.savefig(args.figure, dpi=110)
    for name, _ in VARIANTS:
        t = tests[name]
        rise, above = t["rise_and_fall"], t["above_init"]
        print(f"{name}: mean curve peak {t['mean_curve_peak']['value']:.4g} at epoch {t['mean_curve_peak']['epoch']}, last {t['mean_last']:.4g}; "
              f"drop {rise.get('drop')} (p = {rise.get('p_sign_flip')}); above untrained: mean z {above['mean_z']:.3g}, p = {above['p_sign_flip']:.3g}; "
              f"every seed above its p95 at {len(above['epochs_every_seed_above_p95'])} epochs")  # fmt: skip
    for row in result["table3"]:
        print(row)
    print(f"wrote {args.json}, {args.figure}")


if __name__ == "__main__":
    main()
