"""Weights & Biases tracking at the edge of the program.

`open_tracker(config.tracking, ...)` returns a `Tracker`; with tracking disabled (or
`wandb` not installed under mode "auto") it is a no-op object, so the rest of the code
never checks. `wandb` is imported only inside `WandbTracker`.
"""

import netrc
import os
from pathlib import Path
from typing import Any

from mirror.config import ConfigError, TrackingConfig


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

    def finish(self) -> None:
        pass


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str:
    """auto -> online with an API key, offline without; disabled when wandb is missing."""
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
        return "online" if _has_api_key() else "offline"
    return mode


class WandbTracker(Tracker):
    def __init__(self, cfg: TrackingConfig, mode: str, run_dir: Path, name: str, config: dict, group: str, job_type: str):
        import wandb

        self._wandb = wandb
        self.mode = mode
        directory = Path(cfg.dir) if cfg.dir else Path(run_dir)
        directory.mkdir(parents=True, exist_ok=True)
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
            reinit="create_new",
        )

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        self.run.log(metrics, step=step)

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

    def finish(self) -> None:
        self.run.finish()


def open_tracker(
    cfg: TrackingConfig, run_dir: Path, name: str, config: dict, group: str = "", job_type: str = "run"
) -> Tracker:
    mode = resolve_mode(cfg.mode)
    if mode == "disabled":
        return Tracker()
    return WandbTracker(cfg, mode, run_dir, name, config, group, job_type)
