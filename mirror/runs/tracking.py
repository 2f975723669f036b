"""Weights & Biases tracking at the edge of the program.

`open_tracker(config.tracking, ...)` returns a `Tracker`; with tracking disabled (or
`wandb` not installed under mode "auto") it is a no-op object, so the rest of the code
never checks. `wandb` is imported only inside `WandbTracker`.

Trackers are opened when a run starts, before any dataset or training work, so that a
problem with online mode (no API key, no network) is one clear error up front, and each
epoch's metrics can be streamed while training runs (`MemberTrackers.log_epoch`).
"""

import netrc
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mirror.base.errors import ConfigError
from mirror.runs.config import TrackingConfig


class TrackingError(ConfigError):
    """The tracker could not start (no API key, no network): reported before any work."""


class Tracker:
    """No-op tracker: the interface every stage logs through."""

    mode = "disabled"

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        pass

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        pass

    def log_images(self, images: dict[str, Path]) -> None:
        pass

    def log_file(self, name: str, path: Path) -> None:
        pass

    def summary(self, values: dict) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass


def _api_host() -> str:
    return urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"


def has_api_key() -> bool:
    """An API key in WANDB_API_KEY or in ~/.netrc for the W&B host (where `wandb login` puts it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(_api_host()) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_mode(mode: str) -> str:
    """auto -> online with an API key, offline without; disabled when wandb is missing.
    Explicit online without an API key is refused here, before any work."""
    if mode == "disabled":
        return mode
    try:
        import importlib.util

        installed = importlib.util.find_spec("wandb") is not None
    except ValueError:
        installed = False
    if not installed:
        if mode == "auto":
            return "disabled"
        raise ConfigError(f"tracking.mode = {mode!r} needs wandb: install it with `uv sync --extra tracking`")
    if mode == "auto":
        return "online" if has_api_key() else "offline"
    if mode == "online" and not has_api_key():
        raise TrackingError(
            "tracking.mode = 'online' needs a W&B API key: set WANDB_API_KEY or run `wandb login` "
            "(or use --tracking.mode offline, or disabled)"
        )
    return mode


def _first_missing(directory: Path) -> Path | None:
    """The outermost of `directory` and its parents that does not exist yet."""
    missing = None
    for path in [directory, *directory.parents]:
        if path.exists():
            break
        missing = path
    return missing


class WandbTracker(Tracker):
    def __init__(self, cfg: TrackingConfig, mode: str, run_dir: Path, name: str, config: dict, group: str, job_type: str):
        import wandb

        self._wandb = wandb
        self.mode = mode
        directory = Path(cfg.dir) if cfg.dir else Path(run_dir)
        created = _first_missing((directory / "wandb").absolute())  # wandb writes into DIR/wandb
        directory.mkdir(parents=True, exist_ok=True)
        try:
            self.run = wandb.init(
                project=cfg.project,
                entity=cfg.entity or None,
                group=group or cfg.group or None,
                tags=list(cfg.tags),
                name=name,
                config=config,
                dir=str(directory),
                mode=mode,
                job_type=job_type,
                reinit="create_new",  # one process holds one W&B run per population member
                # wandb waits 90 s by default; a short wait makes a missing network an early error.
                settings=wandb.Settings(init_timeout=cfg.init_timeout),
            )
        except wandb.errors.Error as err:
            if created is not None:  # leave no half-made run directory behind: a retry starts clean
                shutil.rmtree(created, ignore_errors=True)
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise TrackingError(
                f"W&B run {name!r} could not start in tracking.mode = {mode!r} within tracking.init_timeout = "
                f"{cfg.init_timeout:g} s: {reason} (check the network and API key, or use --tracking.mode offline)"
            ) from None

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        # commit: the step's row is written now (with its own _timestamp), not merged with
        # whatever is logged next at the same step.
        self.run.log(metrics, step=step, commit=True)

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        self.run.log({name: self._wandb.Table(columns=columns, data=rows)})

    def log_images(self, images: dict[str, Path]) -> None:
        self.run.log({name: self._wandb.Image(str(path)) for name, path in images.items()})

    def log_file(self, name: str, path: Path) -> None:
        artifact = self._wandb.Artifact(name, type="file")
        artifact.add_file(str(path))
        self.run.log_artifact(artifact)

    def summary(self, values: dict) -> None:
        self.run.summary.update(values)

    def finish(self, exit_code: int = 0) -> None:
        self.run.finish(exit_code=exit_code)


def open_tracker(
    cfg: TrackingConfig, run_dir: Path, name: str, config: dict, group: str = "", job_type: str = "run"
) -> Tracker:
    mode = resolve_mode(cfg.mode)
    if mode == "disabled":
        return Tracker()
    return WandbTracker(cfg, mode, run_dir, name, config, group, job_type)


class MemberTrackers:
    """One tracker per population member (one W&B run each, grouped), opened together at
    the start of a run. Epochs are logged as W&B steps, which must increase: an epoch at
    or below the last one logged (e.g. replayed after a resume) is skipped."""

    def __init__(self, trackers: list[Tracker]):
        self.trackers = trackers
        self.last_step = 0

    def __len__(self) -> int:
        return len(self.trackers)

    def __getitem__(self, member: int) -> Tracker:
        return self.trackers[member]

    @property
    def enabled(self) -> bool:
        return any(t.mode != "disabled" for t in self.trackers)

    def log_epoch(self, epoch: int, per_member: list[dict]) -> None:
        if epoch <= self.last_step:
            return
        for tracker, metrics in zip(self.trackers, per_member):
            if metrics:
                tracker.log_metrics(metrics, step=epoch)
        self.last_step = epoch

    def finish(self, exit_code: int = 0) -> None:
        for tracker in self.trackers:
            tracker.finish(exit_code)


def open_member_trackers(cfg: TrackingConfig, runs: list[tuple[str, dict, Path]], group: str, job_type: str = "run") -> MemberTrackers:
    """Open one tracker per (name, config, run directory) in `runs`. If one fails, those
    already open are finished and the directories made for them removed before the
    error goes on, so a retry starts clean."""
    directories = {(Path(cfg.dir) if cfg.dir else Path(run_dir)).absolute() / "wandb" for _, _, run_dir in runs}
    created = {path for path in map(_first_missing, directories) if path is not None}
    opened = []
    try:
        for name, config, run_dir in runs:
            opened.append(open_tracker(cfg, run_dir, name, config, group=group, job_type=job_type))
    except BaseException:
        MemberTrackers(opened).finish(exit_code=1)
        for path in created:
            shutil.rmtree(path, ignore_errors=True)
        raise
    return MemberTrackers(opened)
