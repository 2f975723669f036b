"""`mirror run`: the whole experiment in one command.

dataset (built or reused from the cache) -> training with a checkpoint every epoch ->
CMNI and the neuron analyses over every checkpoint -> `report.md`. Each stage leaves
complete files behind before the next starts (datasets and checkpoints are written
atomically), so an interrupted run loses nothing already written and
`mirror run --resume RUN_DIR` continues where it stopped.
"""

import argparse
import json
import time
from pathlib import Path

from mirror.config import Config
from mirror.tracking import open_tracker


def _training_metrics(run_dir: Path, member: int) -> dict[int, dict]:
    """epoch -> one member's training and validation scalars, from metrics.jsonl."""
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        meta = json.loads(line)
        scalars = {}
        for key, value in meta.items():
            if isinstance(value, list):  # populations store one value per member
                value = value[member] if member < len(value) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                scalars[f"train/{key}"] = value
        out[int(meta["epoch"])] = scalars
    return out


def _train_samples_per_s(run_dir: Path, train_rows: int) -> float:
    """Training rows seen per second of epoch wall time, over all members (metrics.jsonl)."""
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    wall = sum(line.get("wall_s", 0.0) for line in lines)
    if not wall:
        return float("nan")
    return train_rows * lines[0]["members"] * len(lines) / wall


def _log_member(tracker, run_dir: Path, member: int, members: int) -> None:
    """Per-epoch metrics and CMNI in one log call per epoch (W&B steps must increase),
    then the CMNI table and the member's figures."""
    from mirror.report import read_csv

    per_epoch = _training_metrics(run_dir, member)
    rows = [r for r in read_csv(run_dir / "cmni.csv") if int(r["member"]) == member]
    for r in rows:
        per_epoch.setdefault(int(r["epoch"]), {}).update(cmni=float(r["cmni"]), cmni_leak=float(r["cmni_leak"]))
    for epoch in sorted(per_epoch):
        tracker.log_metrics(per_epoch[epoch], step=epoch)
    if rows:
        columns = list(rows[0])
        tracker.log_table("cmni_table", columns, [[r[c] for c in columns] for r in rows])
    figures = sorted((run_dir / "figures").glob("*.png"))
    if members > 1:  # population figures carry a _m<member> suffix
        figures = [p for p in figures if p.stem.endswith(f"_m{member}")]
    tracker.log_images({f"figures/{p.stem}": p for p in figures})


def run_experiment(config: Config, run_dir: Path, *, resume: bool = False, log=print) -> dict:
    """Run (or resume) every stage in `run_dir`; returns the report's headline numbers."""
    from mirror.analysis.command import cmni_command
    from mirror.data.pipeline import build_dataset
    from mirror.data.split import TRAIN
    from mirror.progress import progress_bar
    from mirror.report import read_csv, trajectory, write_report
    from mirror.train.run import train_run

    run_dir = Path(run_dir).absolute()
    timings = {}
    start = time.perf_counter()
    with progress_bar("dataset: unique rows", total=config.data.rows) as advance:
        dataset, reused = build_dataset(config, progress=lambda done, total: advance(done))
    timings["dataset"] = time.perf_counter() - start
    log(f"dataset: {dataset.path} ({'cached' if reused else 'generated'}, {len(dataset.labels):,} rows, {timings['dataset']:.1f} s)")

    start = time.perf_counter()
    with progress_bar("training: epochs", total=config.train.epochs, unit=" epochs") as advance:

        def log_epoch(line: str) -> None:
            # train_run reports each finished epoch as "epoch N/M: ..."; the bar follows it.
            log(line)
            if line.startswith("epoch ") and "/" in line:
                advance(int(line.split()[1].split("/")[0]))

        result = train_run(config, run_dir, dataset, resume=resume, log=log_epoch)
    timings["training"] = time.perf_counter() - start
    if not result.last_epoch:
        raise RuntimeError(f"training wrote no checkpoint in {run_dir}")

    start = time.perf_counter()
    # The same code path as `mirror cmni RUN_DIR --out RUN_DIR`.
    cmni_command(argparse.Namespace(run_dir=str(run_dir), config=None, out=str(run_dir)), [])
    timings["cmni"] = time.perf_counter() - start

    report = write_report(run_dir, timings=timings)
    train_rows = int((dataset.splits == TRAIN).sum())
    if config.train.max_train_rows:
        train_rows = min(train_rows, config.train.max_train_rows)
    traj = trajectory(read_csv(run_dir / "cmni.csv"))
    test = json.loads((run_dir / "test_metrics.json").read_text())
    entry = test["members"][0]
    headline = {
        "run_dir": str(run_dir),
        "accuracy": (entry if "accuracy" in entry else entry["last"])["accuracy"],
        "peak_cmni": traj["peak_cmni"],
        "peak_epoch": traj["peak_epoch"],
        "final_cmni": traj["final_cmni"],
        "final_epoch": traj["final_epoch"],
        "rise_and_fall": traj["rise_and_fall"],
        "timings_s": timings,
        "dataset_turns_per_s": dataset.manifest["turns_simulated"] / dataset.manifest["wall_s"],
        "train_samples_per_s": _train_samples_per_s(run_dir, train_rows),
        "report": str(report),
        "diverged": result.diverged,
    }

    # One W&B run per member, grouped: a population's members are separate runs.
    members = json.loads((run_dir / "members.json").read_text())
    for m, member in enumerate(members):
        name = run_dir.name if len(members) == 1 else f"{run_dir.name}-m{m}"
        run_config = {**config.to_dict(), "member": member}
        tracker = open_tracker(config.tracking, run_dir, name, run_config, group=config.tracking.group or run_dir.name)
        try:
            if m == 0:
                tracker.log_file("dataset_manifest", Path(dataset.path) / "manifest.json")
                tracker.summary({k: v for k, v in headline.items() if isinstance(v, (int, float, bool))})
            _log_member(tracker, run_dir, m, len(members))
        finally:
            tracker.finish()
    return headline


def format_headline(h: dict) -> str:
    t = h["timings_s"]
    return "\n".join(
        [
            f"test accuracy {h['accuracy']:.4f}",
            f"CMNI: peak {h['peak_cmni']:.6f} at epoch {h['peak_epoch']}, final {h['final_cmni']:.6f} at epoch {h['final_epoch']}"
            f" -> rise-and-fall {'yes' if h['rise_and_fall'] else 'no'}",
            f"time: dataset {t['dataset']:.1f} s, training {t['training']:.1f} s, CMNI {t['cmni']:.1f} s; "
            f"dataset {h['dataset_turns_per_s']:,.0f} turns/s, training {h['train_samples_per_s']:,.0f} samples/s",
            f"report: {h['report']}",
        ]
    )
