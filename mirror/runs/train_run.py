"""A training run: the epoch loop around the jitted `Trainer`, with a checkpoint per epoch,
early stopping per member, resume and the final test metrics.

The loop is Python, one iteration per epoch (an epoch is one jitted call). Per epoch:
train every active member, evaluate on the validation set, update early stopping, save
the checkpoint (asynchronously) and append the metrics line. A member whose loss or
parameters become non-finite is frozen at its last good state and marked `diverged`;
when no member is left training the run stops. Resuming restores the last complete
checkpoint and continues with the same (seed, epoch) randomness, so the result equals an
uninterrupted run bit for bit. A newer checkpoint that no longer reads (truncated,
corrupted) is set aside with a warning and its epochs are trained again. One process at a
time holds the run directory (an flock, `mirror.base.files.lock_run_dir`); another is refused.
"""

import dataclasses
import functools
import json
import time
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mirror.base.errors import ConfigError
from mirror.base.hashing import config_hash
from mirror.runs.config import Config, load_config
from mirror.data.split import TEST, TRAIN, VALIDATION
from mirror.data.store import Dataset, DatasetError
from mirror.env.constants import ACTION_NAMES
from mirror.base.files import has_content, lock_run_dir
from mirror.train.class_metrics import NOTE as PER_CLASS_NOTE
from mirror.train.class_metrics import per_class_metrics
from mirror.runs.checkpoints import (
    CONFIG_FILE,
    DATASET_FILE,
    METRICS_FILE,
    TEST_METRICS_FILE,
    CheckpointError,
    TrainError,
    append_metrics,
    epoch_record,
    open_manager,
    read_members,
    read_metrics,
    restore_checkpoint,
    save_checkpoint,
    set_aside_checkpoint,
    split_epoch_record,
    trim_metrics,
    write_json_atomic,
    write_run_files,
)
from mirror.train.loop import EvalMetrics, Split, Trainer, TrainState, make_train, to_device
from mirror.train.population import Member, is_population, members_from_config

Log = Callable[[str], None]

# A single model's test_metrics.json repeats its best-checkpoint entry at the top level.
SINGLE_MODEL_KEYS = ("epoch", "accuracy", "loss", "loss_data", "confusion", "per_class", "macro_recall", "undefined")

# What other tools may keep in a run directory before training starts: W&B's files, as
# the tracker is opened at the start of `mirror run` (see `mirror.runs.tracking`).
FOREIGN_ENTRIES = frozenset({"wandb"})


class EpochReport(NamedTuple):
    """One finished epoch, handed to `train_run`'s `on_epoch` right after its checkpoint
    save has started and its metrics line is written."""

    epoch: int
    epochs: int  # the configured number of epochs
    metadata: dict  # the epoch's metrics.jsonl entry (per-member lists for populations)
    params: object  # the fresh checkpoint's parameters, [members, ...] (padded), on the device
    wall_s: float  # the epoch's wall time
    line: str  # the one-line text summary train_run also logs

    def member_metrics(self, member: int) -> dict[str, float]:
        return member_scalars(self.metadata, member)


def member_scalars(meta: dict, member: int) -> dict[str, float]:
    """One member's numeric scalars of a metrics entry, as "train/<name>" (null and boolean
    entries are left out): what a tracker logs per epoch."""
    out = {}
    for key, value in meta.items():
        if isinstance(value, list):  # populations store one value per member
            value = value[member] if member < len(value) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
            out[f"train/{key}"] = value
    return out


class RunResult(NamedTuple):
    run_dir: Path
    last_epoch: int  # last checkpointed epoch (0: none)
    metadata: dict | None  # that checkpoint's metadata
    test_metrics: dict | None
    diverged: list  # members whose loss became non-finite


def split_dataset(dataset: Dataset, max_train_rows: int = 0) -> dict[str, Split]:
    """Host arrays of each split, in dataset order; `max_train_rows` keeps the first rows."""
    out = {}
    for name, code in (("train", TRAIN), ("validation", VALIDATION), ("test", TEST)):
        rows = np.flatnonzero(dataset.splits == code)
        if name == "train" and max_train_rows:
            rows = rows[:max_train_rows]
        out[name] = Split(dataset.inputs[rows], dataset.labels[rows])
    return out


def inputs_sha256(manifest: dict) -> str:
    return manifest["sha256"]["inputs.npy"]


def training_config_hash(config: Config) -> str:
    """Hash of what determines training (seed, model, train); the dataset is checked by
    its sha256. Other sections (analysis, tracking) may change without blocking a resume.
    `train.class_weights` counts only when it is not the default "none", so runs trained
    before the field existed keep their hash (and resume)."""
    values = config.to_dict()
    if values["train"]["class_weights"] == "none":
        del values["train"]["class_weights"]
    return config_hash({key: values[key] for key in ("seed", "model", "train")})


@dataclasses.dataclass
class EarlyStopping:
    """Per-member early stopping on validation loss (Keras semantics, min_delta 0)."""

    patience: int  # 0: never stop
    best_loss: np.ndarray  # f32[members], inf before the first epoch
    best_epoch: np.ndarray  # int[members], 0 before the first epoch
    wait: np.ndarray  # int[members]: epochs since the last improvement
    stopped: np.ndarray  # bool[members]
    diverged: np.ndarray  # bool[members]

    @classmethod
    def start(cls, patience: int, members: int) -> "EarlyStopping":
        return cls(
            patience,
            np.full(members, np.inf, np.float32),
            np.zeros(members, np.int64),
            np.zeros(members, np.int64),
            np.zeros(members, bool),
            np.zeros(members, bool),
        )

    @classmethod
    def from_metadata(cls, patience: int, meta: dict) -> "EarlyStopping":
        def column(name, dtype, missing):
            return np.asarray([missing if v is None else v for v in _as_list(meta[name])], dtype)

        return cls(
            patience,
            column("best_val_loss", np.float32, np.inf),
            column("best_epoch", np.int64, 0),
            column("epochs_without_improvement", np.int64, 0),
            column("stopped", bool, False),
            column("diverged", bool, False),
        )

    @property
    def active(self) -> np.ndarray:
        return ~self.stopped & ~self.diverged

    def update(self, epoch: int, val_loss: np.ndarray, trained: np.ndarray) -> np.ndarray:
        """Record one epoch's validation loss for the members that trained; returns best_so_far."""
        improved = trained & (val_loss < self.best_loss)
        self.best_loss = np.where(improved, val_loss, self.best_loss).astype(np.float32)
        self.best_epoch = np.where(improved, epoch, self.best_epoch)
        self.wait = np.where(improved, 0, np.where(trained, self.wait + 1, self.wait))
        if self.patience > 0:
            self.stopped = self.stopped | (trained & (self.wait >= self.patience))
        return improved


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _json_values(values, population: bool, mask=None):
    """Per-member numbers as JSON: a list for populations, a scalar otherwise; non-finite
    values and masked-out members become null."""
    out = []
    for i, v in enumerate(np.asarray(values).tolist()):
        if (mask is not None and not mask[i]) or (isinstance(v, float) and not np.isfinite(v)):
            v = None
        out.append(v)
    return out if population else out[0]


def _select(mask: np.ndarray, new, old):
    mask = jnp.asarray(mask)
    return jax.tree.map(lambda n, o: jnp.where(mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, o), new, old)


def _holding_run_lock(train):
    """Hold the run directory's lock for the whole call: one process trains a run at a
    time, and a second (a concurrent --resume) is refused at once (mirror.base.files)."""

    @functools.wraps(train)
    def locked(config, run_dir, *args, **kwargs):
        with lock_run_dir(run_dir):
            return train(config, run_dir, *args, **kwargs)

    return locked


@_holding_run_lock
def train_run(
    config: Config,
    run_dir: str | Path,
    dataset: Dataset,
    *,
    resume: bool = False,
    members: list[Member] | None = None,
    mesh=None,
    log: Log = print,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> RunResult:
    """Train (or resume) the run in `run_dir` on `dataset`; see the module docstring.
    `members` overrides the config's population; `mesh` splits it over devices;
    `on_epoch(report)` is called as each epoch ends (live tracking, progress bars)."""
    run_dir = Path(run_dir).absolute()
    population = is_population(config) or (members is not None and len(members) > 1)
    members = members_from_config(config) if members is None else list(members)
    splits = split_dataset(dataset, config.train.max_train_rows)
    if len(splits["validation"].labels) == 0:
        raise ConfigError("the dataset has no validation rows: data.val_fraction must leave some")
    trainer = make_train(config, to_device(splits["train"]), members, mesh)  # checks batch size before any file is written
    context = {
        "members": len(members),
        "population": population,
        "config_hash": config_hash(config.to_dict()),
        "train_config_hash": training_config_hash(config),
        "dataset_sha256": inputs_sha256(dataset.manifest),
    }
    if resume:
        _check_resumable(run_dir, config, members, context["dataset_sha256"])
    else:
        if has_content(run_dir, ignore=FOREIGN_ENTRIES):
            raise TrainError(f"{run_dir} already exists and is not empty; use --resume to continue it")
        write_run_files(run_dir, config, dataset.manifest, dataset.path, members)

    manager = open_manager(run_dir)
    try:
        state, stopping, last, meta = _restore_or_start(trainer, manager, run_dir, config, context, log)
        validation = trainer.place(splits["validation"])
        for epoch in range(last + 1, config.train.epochs + 1):
            if not stopping.active.any():
                break
            start = time.perf_counter()
            state, epoch_meta, progressed = _train_epoch(trainer, state, stopping, epoch, validation, context)
            if not progressed:  # every member still training diverged: nothing to checkpoint
                break
            metrics_line, checkpoint_meta = split_epoch_record(epoch_meta)
            wall = round(time.perf_counter() - start, 4)
            # The line first: a checkpoint that completes always has its line (resume cuts a
            # line whose checkpoint did not complete).
            append_metrics(run_dir, {**metrics_line, "wall_s": wall})
            save_checkpoint(manager, epoch, state, checkpoint_meta)
            last, meta = epoch, epoch_meta
            line = _epoch_line(meta, config.train.epochs, wall)
            log(line)
            if on_epoch is not None:
                on_epoch(EpochReport(epoch, config.train.epochs, {**epoch_meta, "wall_s": wall}, state.params, wall, line))
        manager.wait_until_finished()
        test_metrics = None
        if last and len(splits["test"].labels):
            test_metrics = _test_metrics(trainer, manager, state, stopping, last, trainer.place(splits["test"]), population)
            write_json_atomic(run_dir / TEST_METRICS_FILE, test_metrics)
    finally:
        manager.close()
    return RunResult(run_dir, last, meta, test_metrics, [int(i) for i in np.flatnonzero(stopping.diverged)])


def _restore_or_start(trainer: Trainer, manager, run_dir: Path, config: Config, context: dict, log: Log):
    """(state, early stopping, last epoch, its metadata) from the last complete checkpoint,
    or a fresh start when there is none."""
    steps = sorted(manager.all_steps())
    if not steps:
        (run_dir / METRICS_FILE).write_text("")
        return trainer.init(), EarlyStopping.start(config.train.patience, len(trainer.members)), 0, None
    last, (params, opt_state, meta) = _restore_newest_readable(manager, run_dir, steps, jax.eval_shape(trainer.init), log)
    if meta["train_config_hash"] != context["train_config_hash"]:
        raise TrainError(f"checkpoint {last} in {run_dir} was trained with other seed/model/train settings")
    if meta["dataset_sha256"] != context["dataset_sha256"]:
        raise DatasetError(f"the dataset differs from the one checkpoint {last} in {run_dir} was trained on (sha256 of inputs.npy)")
    trim_metrics(run_dir, last)
    meta = epoch_record(read_metrics(run_dir)[last], meta)
    log(f"resuming {run_dir} after epoch {last}")
    return TrainState(params, opt_state), EarlyStopping.from_metadata(config.train.patience, meta), last, meta


def _restore_newest_readable(manager, run_dir: Path, steps: list[int], abstract, log: Log):
    """(epoch, restored) of the newest checkpoint that reads. Newer, unreadable ones are
    set aside (moved, not deleted) with a warning, and their epochs are trained again.
    If none reads, nothing is moved and the newest one's error is raised."""
    errors = []
    for epoch in reversed(steps):
        try:
            restored = restore_checkpoint(manager, epoch, abstract)
        except CheckpointError as err:
            errors.append((epoch, err))
            continue
        for bad, err in errors:
            moved = set_aside_checkpoint(run_dir, bad)
            log(f"warning: {err}; moved it to {moved} and resuming from checkpoint {epoch}")
        if errors:
            manager.reload()
        return epoch, restored
    raise CheckpointError(f"{errors[0][1]}, and no earlier checkpoint of {run_dir} can be read; start the run again")


def _train_epoch(trainer: Trainer, state: TrainState, stopping: EarlyStopping, epoch: int, validation: Split, context: dict):
    """One epoch for every active member; returns (state, metadata, any member progressed)."""
    active = stopping.active
    new_state, train = trainer.epoch(state, epoch, active)
    val = trainer.evaluate(new_state.params, validation)
    train, val = jax.device_get((train, val))
    bad = active & ~(train.finite & np.isfinite(val.loss))
    if bad.any():  # e.g. a learning rate too high: keep the last good state
        new_state = _select(~bad, new_state, state)
        val = jax.device_get(trainer.evaluate(new_state.params, validation))
        stopping.diverged = stopping.diverged | bad
    trained = active & ~bad
    best_so_far = stopping.update(epoch, np.asarray(val.loss), trained)
    population = context["population"]
    meta = {
        "epoch": epoch,
        "members": context["members"],
        "population": population,
        "train_loss": _json_values(train.loss, population, trained),
        "train_loss_data": _json_values(train.loss_data, population, trained),
        "val_loss": _json_values(val.loss, population),
        "val_loss_data": _json_values(val.loss_data, population),
        "val_accuracy": _json_values(val.accuracy, population),
        "best_so_far": _json_values(best_so_far, population),
        "best_epoch": _json_values(stopping.best_epoch, population),
        "best_val_loss": _json_values(stopping.best_loss, population),
        "epochs_without_improvement": _json_values(stopping.wait, population),
        "stopped": _json_values(stopping.stopped, population),
        "diverged": _json_values(stopping.diverged, population),
        "config_hash": context["config_hash"],
        "train_config_hash": context["train_config_hash"],
        "dataset_sha256": context["dataset_sha256"],
    }
    return new_state, meta, bool(trained.any())


def _epoch_line(meta: dict, epochs: int, wall: float) -> str:
    def fmt(name):
        values = [v for v in _as_list(meta[name]) if v is not None]
        if not values:
            return "-"
        if len(_as_list(meta[name])) == 1:
            return f"{values[0]:.5f}"
        return f"{min(values):.5f}..{max(values):.5f}"

    active = sum(not (s or d) for s, d in zip(_as_list(meta["stopped"]), _as_list(meta["diverged"])))
    line = (
        f"epoch {meta['epoch']}/{epochs}: train loss {fmt('train_loss')} (data {fmt('train_loss_data')}), "
        f"val loss {fmt('val_loss')} (data {fmt('val_loss_data')}), val acc {fmt('val_accuracy')} [{wall:.1f} s]"
    )
    if meta["members"] > 1:
        line += f", {active}/{meta['members']} members training"
    return line


def _confusion_entry(metrics: EvalMetrics, member: int, epoch: int) -> dict:
    confusion = np.asarray(metrics.confusion[member])
    return {
        "epoch": int(epoch),
        "accuracy": float(metrics.accuracy[member]),
        "loss": float(metrics.loss[member]),
        "loss_data": float(metrics.loss_data[member]),
        "confusion": confusion.tolist(),
        **per_class_metrics(confusion),
    }


def _test_metrics(trainer, manager, state, stopping, last, test: Split, population: bool) -> dict:
    """Test accuracy, confusion matrix and per-class recall and precision per member at its
    best and at its last epoch. The loss is weighted as in training (`train.class_weights`)."""
    abstract = jax.eval_shape(trainer.init)
    best_epochs = stopping.best_epoch
    best_params = jax.device_get(state.params)  # on the host: restored checkpoints and a sharded state live on different devices
    for epoch in sorted({int(e) for e in best_epochs if e > 0}):
        params, _, _ = restore_checkpoint(manager, epoch, abstract)
        best_params = _select(best_epochs == epoch, jax.device_get(params), best_params)
    best, final = jax.device_get((trainer.evaluate(best_params, test), trainer.evaluate(state.params, test)))
    entries = []
    for i in range(len(trainer.members)):
        entry = {"member": i}
        if best_epochs[i] > 0:
            entry.update(checkpoint="best", **_confusion_entry(best, i, best_epochs[i]))
        entry["last"] = _confusion_entry(final, i, last)
        entries.append(entry)
    out = {
        "split": "test",
        "rows": int(test.labels.shape[0]),
        "labels": list(ACTION_NAMES),
        "confusion_axes": ["predicted", "actual"],
        "per_class_note": PER_CLASS_NOTE,
        "members": entries,
    }
    if not population:
        out.update({k: v for k, v in entries[0].items() if k in SINGLE_MODEL_KEYS})
    return out


def _check_resumable(run_dir: Path, config: Config, members: list[Member], sha: str) -> None:
    for name in (CONFIG_FILE, DATASET_FILE):
        if not (run_dir / name).is_file():
            raise TrainError(f"cannot resume {run_dir}: {name} is missing (not a training run?)")
    saved = load_config(run_dir / CONFIG_FILE)
    if training_config_hash(saved) != training_config_hash(config):
        raise TrainError(f"cannot resume {run_dir}: the seed, model or train settings differ from its {CONFIG_FILE}")
    if read_members(run_dir) != members:
        raise TrainError(f"cannot resume {run_dir}: its members differ from the config's")
    recorded = json.loads((run_dir / DATASET_FILE).read_text())
    if inputs_sha256(recorded) != sha:
        raise DatasetError(f"cannot resume {run_dir}: the dataset differs from the one it was trained on (sha256 of inputs.npy)")


def resume_config(run_dir: str | Path) -> tuple[Config, Path]:
    """The config of an existing run and the dataset path it was trained on."""
    run_dir = Path(run_dir).absolute()
    if not (run_dir / CONFIG_FILE).is_file():
        raise TrainError(f"cannot resume {run_dir}: {CONFIG_FILE} is missing (not a training run?)")
    config = load_config(run_dir / CONFIG_FILE)
    if not (run_dir / DATASET_FILE).is_file():
        raise TrainError(f"cannot resume {run_dir}: {DATASET_FILE} is missing")
    return config, Path(json.loads((run_dir / DATASET_FILE).read_text())["path"])
