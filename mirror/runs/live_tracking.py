"""Live W&B tracking of a training run (used by `mirror run` and `mirror sweep`).

A `LiveTracking` holds one tracker per member (one W&B run each), opened when the run
starts, before any dataset or training work. While training runs, `on_epoch` (train_run's
callback) logs each epoch as it ends: the member's training and validation scalars
(`train/...`) and a cheap CMNI of the fresh checkpoint (`cmni`, `mirror.runs.live`).
After the full analysis, `log_results` adds each member's CMNI table and figures.

After a resume, the epochs trained before it are replayed from metrics.jsonl (W&B steps
must increase, so they go first); epochs never logged live get their CMNI from cmni.csv.
"""

import re
from pathlib import Path

from mirror.runs.tracking import MemberTrackers
from mirror.runs.checkpoints import read_metrics
from mirror.runs.train_run import EpochReport, member_scalars
from mirror.runs.report import read_csv


class LiveTracking:
    def __init__(self, trackers: MemberTrackers, run_dir: Path, epoch_cmni=None):
        """`trackers[k]` follows member k of the run in `run_dir` (members beyond the
        trackers, e.g. a sweep's padding, are not logged); `epoch_cmni(params) ->
        [members]` is the per-epoch CMNI (`EpochCMNI`), None to log none."""
        self.trackers = trackers
        self.run_dir = Path(run_dir)
        self.epoch_cmni = epoch_cmni
        self.live_epochs: list[int] = []

    def on_epoch(self, report: EpochReport) -> None:
        """train_run's callback: log this epoch for every member, now."""
        if not self.trackers.enabled:
            return
        if not self.live_epochs:  # a resumed run: the epochs before it first
            self._replay(below=report.epoch)
        self.live_epochs.append(report.epoch)
        values = self.epoch_cmni(report.params) if self.epoch_cmni is not None else None
        per_member = []
        for m in range(len(self.trackers)):
            metrics = report.member_metrics(m)
            if values is not None:
                metrics["cmni"] = float(values[m])
            per_member.append(metrics)
        self.trackers.log_epoch(report.epoch, per_member)

    def _replay(self, below: int | None = None, cmni: list[dict] | None = None) -> None:
        """Epochs from metrics.jsonl not logged yet (and below `below`); `cmni[k]` maps
        an epoch to tracker k's CMNI values from the full analysis."""
        for epoch, entry in sorted(read_metrics(self.run_dir).items()):
            if below is not None and epoch >= below:
                break
            per_member = [{**member_scalars(entry, m), **(cmni[m].get(epoch, {}) if cmni else {})} for m in range(len(self.trackers))]
            self.trackers.log_epoch(epoch, per_member)

    def log_results(self, results: list[tuple[Path, int]], figures_suffix: bool = False) -> None:
        """After the full analysis: tracker k gets the rows of member `results[k][1]` in
        `results[k][0]`/cmni.csv as a table, the figures of that directory (only the
        `_m<member>` ones when `figures_suffix`), and any epoch not logged yet."""
        if not self.trackers.enabled:
            return
        tables = []
        for out, member in results:
            path = Path(out) / "cmni.csv"
            tables.append([r for r in read_csv(path) if int(r["member"]) == member] if path.is_file() else [])
        by_epoch = [{int(r["epoch"]): {"cmni": float(r["cmni"]), "cmni_leak": float(r["cmni_leak"])} for r in rows} for rows in tables]
        self._replay(cmni=by_epoch)
        for k, (tracker, (out, member), rows) in enumerate(zip(self.trackers.trackers, results, tables)):
            if rows:
                columns = list(rows[0])
                tracker.log_table("cmni_table", columns, [[r[c] for c in columns] for r in rows])
            figures = sorted((Path(out) / "figures").glob("*.png"))
            if figures_suffix:  # member figures carry a _m<member> suffix; the population's (cmni_seeds) go to the first run
                figures = [p for p in figures if p.stem.endswith(f"_m{member}") or (k == 0 and not re.search(r"_m\d+$", p.stem))]
            tracker.log_images({f"figures/{p.stem}": p for p in figures})

    def finish(self, exit_code: int = 0) -> None:
        self.trackers.finish(exit_code)
