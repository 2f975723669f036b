"""`mirror run`: the whole experiment in one command.

dataset (built or reused from the cache) -> training with a checkpoint every epoch ->
CMNI and the neuron analyses over every checkpoint -> `report.md`. The W&B runs (one per
member) open first, so tracking problems fail before any work, and follow training
live: each epoch's metrics and a cheap CMNI are logged as the epoch ends. Each stage leaves
complete files behind before the next starts (datasets and checkpoints are written
atomically), so an interrupted run loses nothing already written and
`mirror run --resume RUN_DIR` continues where it stopped.
"""

import json
import time
from pathlib import Path

from mirror.runs.config import Config
from mirror.runs.live_tracking import LiveTracking
from mirror.runs.tracking import open_member_trackers
from mirror.analysis.analyse import ANALYSIS_STEPS
from mirror.analysis.seeds import init_baseline_words, rise_and_fall_words
from mirror.data.pipeline import build_dataset
from mirror.data.split import TRAIN
from mirror.runs.analysis import analyse_run
from mirror.runs.live import EpochCMNI
from mirror.runs.progress import progress_bar, step_bar
from mirror.runs.report import read_csv, trajectory, write_report
from mirror.runs.train_run import train_run
from mirror.train.population import members_from_config


def _train_samples_per_s(run_dir: Path, train_rows: int) -> float:
    """Training rows seen per second of epoch wall time, over all members (metrics.jsonl)."""
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    wall = sum(line.get("wall_s", 0.0) for line in lines)
    if not wall:
        return float("nan")
    return train_rows * lines[0]["members"] * len(lines) / wall


def open_run_tracking(config: Config, run_dir: Path) -> LiveTracking:
    """One tracker per member (one W&B run each, grouped), opened before any work: a
    tracking problem (online without an API key or a network) is an error here."""
    members = members_from_config(config)
    runs = [
        (run_dir.name if len(members) == 1 else f"{run_dir.name}-m{m}", {**config.to_dict(), "member": member.to_dict()}, run_dir)
        for m, member in enumerate(members)
    ]
    trackers = open_member_trackers(config.tracking, runs, group=config.tracking.group or run_dir.name)
    return LiveTracking(trackers, run_dir)


def run_experiment(config: Config, run_dir: Path, *, resume: bool = False, log=print) -> dict:
    """Run (or resume) every stage in `run_dir`; returns the report's headline numbers.
    The W&B runs open first and follow training live (see `mirror.runs.live_tracking`)."""
    run_dir = Path(run_dir).absolute()
    live = open_run_tracking(config, run_dir)
    try:
        headline = _run_stages(config, run_dir, resume, log, live)
    except BaseException:
        live.finish(exit_code=1)
        raise
    live.finish()
    return headline


def _run_stages(config: Config, run_dir: Path, resume: bool, log, live: LiveTracking) -> dict:
    timings = {}
    start = time.perf_counter()
    with progress_bar("dataset: unique rows", total=config.data.rows) as advance:
        dataset, reused = build_dataset(config, progress=lambda done, total: advance(done))
    timings["dataset"] = time.perf_counter() - start
    log(f"dataset: {dataset.path} ({'cached' if reused else 'generated'}, {len(dataset.labels):,} rows, {timings['dataset']:.1f} s)")
    live.trackers[0].log_file("dataset_manifest", Path(dataset.path) / "manifest.json")
    if live.trackers.enabled:  # the per-epoch CMNI costs one small jitted call per epoch
        live.epoch_cmni = EpochCMNI(config, dataset, [m.widths for m in members_from_config(config)])

    start = time.perf_counter()
    with progress_bar("training: epochs", total=config.train.epochs, unit=" epochs") as advance:

        def on_epoch(report) -> None:
            live.on_epoch(report)
            advance(report.epoch)

        result = train_run(config, run_dir, dataset, resume=resume, log=log, on_epoch=on_epoch)
    timings["training"] = time.perf_counter() - start
    if not result.last_epoch:
        raise RuntimeError(f"training wrote no checkpoint in {run_dir}")

    start = time.perf_counter()
    with step_bar("cmni", total=ANALYSIS_STEPS) as step:
        analysis = analyse_run(run_dir, run_dir, progress=step, log=log)
    timings["cmni"] = time.perf_counter() - start
    log(f"analysed {len(analysis.run.epochs)} checkpoint(s) x {len(analysis.run.members)} member(s): {len(analysis.written)} files in {timings['cmni']:.1f} s")

    report = write_report(run_dir, timings=timings)
    train_rows = int((dataset.splits == TRAIN).sum())
    if config.train.max_train_rows:
        train_rows = min(train_rows, config.train.max_train_rows)
    traj = trajectory(read_csv(run_dir / "cmni.csv"))
    test = json.loads((run_dir / "test_metrics.json").read_text())
    summary = json.loads((analysis.out_dir / "summary.json").read_text())
    entry = test["members"][0]
    headline = {
        "run_dir": str(run_dir),
        "accuracy": (entry if "accuracy" in entry else entry["last"])["accuracy"],
        "peak_cmni": traj["peak_cmni"],
        "peak_epoch": traj["peak_epoch"],
        "final_cmni": traj["final_cmni"],
        "final_epoch": traj["final_epoch"],
        # The verdicts over seeds, per CMNI variant (mirror.analysis.seeds).
        "rise_and_fall": {v: {k: e[k] for k in ("peak_epoch", "drop", "p_sign_flip", "ci95", "seeds", "reproduced", "method")} for v, e in summary["rise_and_fall"].items()},
        "init_baseline": {v: {k: e[k] for k in HEADLINE_INIT_KEYS} for v, e in summary["init_baseline"].items()},
        "timings_s": timings,
        "dataset_turns_per_s": dataset.manifest["turns_simulated"] / dataset.manifest["wall_s"],
        "train_samples_per_s": _train_samples_per_s(run_dir, train_rows),
        "report": str(report),
        "diverged": result.diverged,
    }
    members = len(analysis.run.members)
    live.log_results([(run_dir, m) for m in range(members)], figures_suffix=members > 1)
    flat = {k: v for k, v in headline.items() if isinstance(v, (int, float, bool))}
    flat.update({f"rise_and_fall_reproduced/{v}": e["reproduced"] for v, e in headline["rise_and_fall"].items()})
    flat.update({f"beats_init/{v}": e["beats_init"] for v, e in headline["init_baseline"].items()})
    live.trackers[0].summary(flat)
    return headline


# What the headline keeps of each variant's comparison with random initialisation
# (`mirror.analysis.seeds.init_baseline`): what `verdict_lines` words, the member count included.
HEADLINE_INIT_KEYS = ("mean", "trained_mean", "p_mean_vs_init", "beats_init", "members")


def verdict_lines(h: dict) -> list[str]:
    """One line per CMNI variant: the comparison with random initialisation (the headline
    verdict), then the rise-and-fall drop over seeds and its sign-flip test."""
    lines = []
    for name, rise in h["rise_and_fall"].items():
        lo, hi = rise["ci95"]
        drop = "" if rise["drop"] is None else f"drop {rise['drop']:.6f}" + ("" if lo is None else f" (nominal 95 % CI {lo:.6f} .. {hi:.6f})") + " -> "
        init = h["init_baseline"].get(name)
        head = "" if init is None else f"trained vs random init: {init_baseline_words(init)}; "
        lines.append(f"{name}: {head}rise and fall: {drop}{rise_and_fall_words(rise)}")
    return lines


def format_headline(h: dict) -> str:
    t = h["timings_s"]
    return "\n".join(
        [
            f"test accuracy {h['accuracy']:.4f}",
            f"CMNI of member 0: peak {h['peak_cmni']:.6f} at epoch {h['peak_epoch']}, final {h['final_cmni']:.6f} at epoch {h['final_epoch']}",
            *verdict_lines(h),
            f"time: dataset {t['dataset']:.1f} s, training {t['training']:.1f} s, CMNI {t['cmni']:.1f} s; "
            f"dataset {h['dataset_turns_per_s']:,.0f} turns/s, training {h['train_samples_per_s']:,.0f} samples/s",
            f"report: {h['report']}",
        ]
    )
