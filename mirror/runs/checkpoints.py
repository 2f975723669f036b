"""A run on disk, supervised or RL, and restoring every checkpoint of it at once for analysis.

A run's kind is "rl" when its directory holds rl_run.json (`run_kind`), else "supervised".
Both kinds share the files below and Orbax's checkpoints; `load_run` reads either
(`LoadedRun.kind`), and `mirror cmni RUN_DIR` analyses either.

Supervised run directory layout (other stages read it):

    RUN_DIR/config.yaml        the resolved config (`yaml.safe_dump(config.to_dict())`)
    RUN_DIR/dataset.json       the dataset's manifest plus its absolute "path"
    RUN_DIR/members.json       per member: seed, lr, dropout, l2, widths (true hidden widths)
    RUN_DIR/checkpoints/<E>/   Orbax checkpoint of epoch E (1, 2, ...), all kept, items
                               "params" and "opt_state" (leaves [members, ...], padded to
                               the population's widest widths) and "metadata" (JSON: the
                               training state that resume needs, `CHECKPOINT_KEYS`)
    RUN_DIR/metrics.jsonl      one line per epoch: what was measured (the rest, and wall_s)
    RUN_DIR/test_metrics.json  test accuracy, confusion matrix (rows predicted, columns
                               actual) and per-class recall and precision per member,
                               at its best and last epoch

RL run directory layout (`mirror rl`, `mirror.runs.rl_run`; the JSON files beside the
checkpoints: `mirror.runs.rl_files`):

    RUN_DIR/config.yaml        the resolved config, `rl:` section included
    RUN_DIR/dataset.json       probe set (a): the supervised dataset of this config's data
                               and env sections (its test split is analysed)
    RUN_DIR/members.json       one entry PER NETWORK, {seed, lr, widths} (`Network`; a
                               transformer torso's widths: its blocks' MLP hidden units, the
                               CMNI layers); older RL runs hold the supervised Member
                               format here (dropout 0, l2 0) and load alike
    RUN_DIR/rl_run.json        marks an RL run: sharing, networks_per_member, num_inputs,
                               members (RLMember.to_dict()), probe {games, turns, seed,
                               stream}, eval {games, turns, seed, greedy, select_stream
                               (the games that choose the best checkpoint), report_stream
                               (the held-out games of every reported number)}, helper
                               {max_partner_energy, min_own_energy}
    RUN_DIR/checkpoints/<U>/   Orbax checkpoint after update U (every rl.checkpoint_every), items
                               "params"   the actor alone: torso and logits, no critic or
                                          value head (the supervised MLP's or transformer's
                                          layout, `cmni_params`), leaves [networks, ...]
                               "rl_state" the runner state of every member (params incl. the
                                          critic, optimizer, games, key as key data,
                                          update, value-target statistics), a flat dict
                                          of leaves [members, ...]
                               "probe"    probe set (b) at this checkpoint: inputs
                                          int8[networks, rows, 3W+4] (the model input, spec
                                          §5.6 mask applied, as the dataset's `inputs`),
                                          scenarios int8[networks, rows], idle_shown
                                          bool[networks, rows, 2] (as the dataset's)
                               "metadata" JSON: epoch (= U), best_epoch (highest return in
                                          the selection games so far), best_return_agent
                                          (that return), config_hash, rl_config_hash
    RUN_DIR/metrics.jsonl      one line per checkpoint (written and fsynced before it): epoch,
                               env_turns, return_agent, return_per_player, help_rate,
                               help_when_partner_distressed, help_when_partner_energy0 (all
                               in the held-out report games), return_agent_selection (in the
                               selection games), selected_update (best_epoch so far), wall_s
                               (per-network lists when there is more than one network, else
                               scalars)
    RUN_DIR/rl_metrics.jsonl   one line per update: update, env_turns, episodes (that ended in
                               the update), return_per_player ([2], or [members][2]: pooled
                               over those episodes; null when none ended, which staggered
                               games avoid when num_envs * num_steps >= episode_turns and
                               num_steps is even), entropy, policy_loss,
                               value_loss in the critic's units (normalised with rl.value_norm),
                               explained_variance (1 - Var(target - value) / Var(target) over
                               the update's decisions, reward units), approx_kl, help_rate,
                               help_when_partner_distressed, wall_s (training seconds so far);
                               per-member lists for populations; NaN -> null
    RUN_DIR/baselines.json     {policy: {...}} for the behaviour policy and every scripted
                               baseline (`mirror.rl.baselines.SCRIPTED_BASELINES`: oracle,
                               hop_jump, helper_<base>, lone_helper_<base>,
                               frozen_partner_<base>, base in hop_jump, oracle), each value a
                               per-member list: return_per_player, return, help_rate,
                               help_when_partner_distressed, help_when_partner_energy0,
                               energy0_share, episodes (the agents' report games)

A sweep trial's directory has no checkpoints/ of its own: its population.json names the
population run, its member index (RL trials: "networks", its network indices) and how
many of that run's checkpoints are the trial's, and `load_run` reads it as a run of its
own (parameters cut to the trial's true widths; the trial's own dataset.json wins).

Every per-epoch value is stored once. The checkpoint's metadata holds the state resume
needs: epoch, best_epoch, best_val_loss, epochs_without_improvement, stopped, diverged,
config_hash (whole config), train_config_hash (seed, model and train sections: what resume
checks), dataset_sha256 (of inputs.npy). metrics.jsonl holds the measurements: epoch,
members, population, train_loss, train_loss_data, val_loss, val_loss_data, val_accuracy,
best_so_far, wall_s. `load_run` joins the two per checkpoint (`LoadedRun.metadata`).
Per-member values are lists when the run is a population (any population_* field set) and
scalars otherwise; `LoadedRun.metric` reads both as [checkpoints, members]. Losses include
the L2 penalty; the `_data` variants are the data term alone. A value is null when it does
not exist (the train loss of a member that did not train that epoch).

An epoch's metrics line is written (and fsynced) before its checkpoint is saved, so every
complete checkpoint has its line; a line without a complete checkpoint (a kill during the
save, or a torn last line) is ignored by `load_run` and cut off by `trim_metrics` on resume.

Orbax writes each checkpoint to a temporary directory and renames it into place once
complete, so a checkpoint is either whole or invisible (`all_steps` ignores leftovers,
which the next writer deletes); saving an existing epoch is refused. A complete
checkpoint whose files were damaged later (a truncated copy, a bad disk) raises
CheckpointError naming it, its damaged item and the run kind's fix (`restore_items`); a
resume sets it aside in RUN_DIR/corrupt-checkpoints/ and continues from the newest
checkpoint that reads.
"""

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
import yaml

from mirror.agents.models import arch_of, init_model_params, unpad_model_params
from mirror.base.errors import CheckpointError, TrainError
from mirror.env.constants import obs_size
from mirror.runs.config import Config, load_config
from mirror.train.population import Member, padded_widths

CONFIG_FILE = "config.yaml"
DATASET_FILE = "dataset.json"
MEMBERS_FILE = "members.json"
METRICS_FILE = "metrics.jsonl"
TEST_METRICS_FILE = "test_metrics.json"
POPULATION_FILE = "population.json"  # a sweep trial: its checkpoints are a member of this run's
CHECKPOINT_DIR = "checkpoints"
CORRUPT_DIR = "corrupt-checkpoints"  # unreadable checkpoints set aside by a resume
RL_RUN_FILE = "rl_run.json"  # marks an RL run
ITEMS = ("params", "opt_state", "metadata")
RL_ITEMS = ("params", "rl_state", "probe", "metadata")  # an RL run's checkpoint items
PROBE_FIELDS = ("inputs", "scenarios", "idle_shown")
KINDS = ("supervised", "rl")
# What an epoch's checkpoint metadata holds (the state resume needs); the rest of an
# epoch's record goes to metrics.jsonl. Each value is stored in exactly one of the two.
CHECKPOINT_KEYS = (
    "epoch", "best_epoch", "best_val_loss", "epochs_without_improvement", "stopped", "diverged",
    "config_hash", "train_config_hash", "dataset_sha256",
)  # fmt: skip


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=2) + "\n")


def write_run_files(run_dir: Path, config: Config, dataset_manifest: dict, dataset_path: Path, members: list[Member]) -> None:
    """The files that describe a run, written once when it starts."""
    write_text_atomic(run_dir / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=True))
    write_json_atomic(run_dir / DATASET_FILE, {**dataset_manifest, "path": str(Path(dataset_path).absolute())})
    write_json_atomic(run_dir / MEMBERS_FILE, [member.to_dict() for member in members])


@dataclasses.dataclass(frozen=True)
class Network:
    """One network of an RL run, as its members.json records it: the seed and learning
    rate of its population member and its true hidden widths (what the analysis reads)."""

    seed: int
    lr: float
    widths: tuple

    def to_dict(self) -> dict:
        return {"seed": self.seed, "lr": self.lr, "widths": list(self.widths)}


def run_kind(run_dir: Path) -> str:
    """"rl" when the run directory holds rl_run.json, else "supervised" (`KINDS`)."""
    return "rl" if is_rl_run(run_dir) else "supervised"


def read_members(run_dir: Path) -> list[Member] | list[Network]:
    """members.json: a Member per member of a supervised run, a Network per network of an
    RL run (older RL runs' entries carry dropout 0 and l2 0 as well, which are dropped)."""
    entries = json.loads((Path(run_dir) / MEMBERS_FILE).read_text())
    if run_kind(run_dir) == "rl":
        return [Network(seed=entry["seed"], lr=entry["lr"], widths=tuple(entry["widths"])) for entry in entries]
    return [Member(**{**entry, "widths": tuple(entry["widths"])}) for entry in entries]


def split_epoch_record(record: dict) -> tuple[dict, dict]:
    """An epoch's record -> (its metrics line, its checkpoint metadata); "epoch" is in both
    (it is the key that joins them)."""
    line = {k: v for k, v in record.items() if k == "epoch" or k not in CHECKPOINT_KEYS}
    return line, {k: record[k] for k in CHECKPOINT_KEYS}


def append_json_lines(path: Path, lines: list[dict]) -> None:
    """Append JSON lines and fsync them (before the checkpoint they belong to is saved)."""
    with open(path, "a") as fh:
        fh.write("".join(json.dumps(line) + "\n" for line in lines))
        fh.flush()
        os.fsync(fh.fileno())


def append_metrics(run_dir: Path, line: dict) -> None:
    """Append one epoch's metrics line and fsync it (before that epoch's checkpoint is saved)."""
    append_json_lines(Path(run_dir) / METRICS_FILE, [line])


def json_lines(path: Path, key: str | None = None) -> list[tuple[int | None, str]]:
    """(line[key], raw line) of every complete JSON-object line of `path` that has an
    integer `key` (any object when `key` is None; the value is then None). A torn last
    line (no newline, or not JSON) is skipped; [] when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for raw in path.read_text().splitlines(keepends=True):
        try:
            entry = json.loads(raw) if raw.endswith("\n") else None
        except json.JSONDecodeError:
            entry = None
        if isinstance(entry, dict) and (key is None or isinstance(entry.get(key), int)):
            out.append((None if key is None else entry[key], raw))
    return out


def read_metrics(run_dir: Path) -> dict[int, dict]:
    """epoch -> its metrics line, for every complete line of metrics.jsonl."""
    return {epoch: json.loads(raw) for epoch, raw in json_lines(Path(run_dir) / METRICS_FILE, "epoch")}


def trim_json_lines(path: Path, key: str, last: int, every: int = 1) -> None:
    """Cut a per-step JSON-lines file back to the steps (`line[key]`) up to `last`, the last
    complete checkpoint, on resume: a kill during a save leaves lines of steps whose
    checkpoint never finished, and those steps run again. Kept lines stay byte for byte.
    Every step `every`, 2·`every`, ... up to `last` must have its line."""
    lines = json_lines(path, key)
    missing = sorted(set(range(every, last + 1, every)) - {step for step, _ in lines})
    if missing:
        raise TrainError(f"{path} has no line for the checkpointed {key}(s) {missing[:5]}")
    write_text_atomic(Path(path), "".join(raw for step, raw in lines if step <= last))


def trim_metrics(run_dir: Path, last: int, every: int = 1) -> None:
    """metrics.jsonl back to the epochs up to `last` (`trim_json_lines`); `every`: checkpoints
    (and lines) come every `every` epochs (RL runs: every checkpoint_every updates)."""
    trim_json_lines(Path(run_dir) / METRICS_FILE, "epoch", last, every)


class HostArraysHandler(ocp.CheckpointHandler):
    """A pytree of arrays as one .npz, written by whichever process calls it.

    Used only by a process that checkpoints alone on a multi-host run (jax.process_count()
    > 1): in a multi-host sweep every process trains its own populations on its own
    devices and checkpoints them alone, and Orbax (0.12) cannot save such per-process
    arrays in its format, even with a per-process manager (`MultiprocessingOptions(
    primary_host=None, active_processes={me})`, which we do use for the directories and
    the JSON item): `ArrayHandler.serialize` refuses a fully addressable jax.Array whenever
    process_count() > 1 ("Cannot serialize host local jax.Array ... in multi-host
    setting"), and `NumpyHandler` writes only on process 0, whatever `primary_host` says
    (host copies saved by process 1 give a finalised checkpoint with no array data).
    Making the arrays global would turn every save into a collective over all processes,
    which run different populations at different times. So these items stay .npz.
    Single-process runs, and a run split over every process's devices (`mirror rl
    --distributed`: its arrays are global, and all processes save them together), write
    Orbax's standard format; readers take either (`array_restore` looks for arrays.npz)."""

    def save(self, directory, args: "HostArraysSave") -> None:
        leaves = jax.tree.leaves(jax.device_get(args.item))
        with open(Path(directory) / "arrays.npz", "wb") as fh:
            np.savez(fh, *[np.asarray(leaf) for leaf in leaves])

    def restore(self, directory, args: "HostArraysRestore"):
        with np.load(Path(directory) / "arrays.npz") as data:
            leaves = [data[f"arr_{i}"] for i in range(len(data.files))]
        return leaves if args.item is None else jax.tree.unflatten(jax.tree.structure(args.item), leaves)


@ocp.args.register_with_handler(HostArraysHandler, for_save=True)
@dataclasses.dataclass
class HostArraysSave(ocp.args.CheckpointArgs):
    item: Any


@ocp.args.register_with_handler(HostArraysHandler, for_restore=True)
@dataclasses.dataclass
class HostArraysRestore(ocp.args.CheckpointArgs):
    item: Any  # the structure to restore into (leaves may be abstract); None: the flat list of arrays


def _multi_host() -> bool:
    return jax.process_count() > 1


def array_save(tree):
    """Save args of an array item: one .npz (`HostArraysSave`) from a process that
    checkpoints alone on a multi-host run (it holds every array whole), else Orbax's
    standard format, which also saves arrays split over the processes of a run on a
    global mesh (every process writes its own shards)."""
    alone = _multi_host() and all(getattr(leaf, "is_fully_addressable", True) for leaf in jax.tree.leaves(tree))
    return HostArraysSave(tree) if alone else ocp.args.StandardSave(tree)


def array_restore(checkpoint_dir: Path, item: str, like=None, sharding=None):
    """Restore args of array item `item` of the checkpoint in `checkpoint_dir`, in the
    format it was written in (.npz or Orbax's). `like`: the structure to read into; its
    leaves, when ShapeDtypeStructs, give the shapes, else (or with `like` None) the
    checkpoint's own shapes are read (a .npz item without `like` gives its flat list of
    arrays). The arrays land on `sharding` (default: this process's first device)."""
    path = Path(checkpoint_dir) / item
    if (path / "arrays.npz").is_file():
        return HostArraysRestore(like)
    leaves = jax.tree.leaves(like)
    if like is None or not leaves or not all(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in leaves):
        like = ocp.StandardCheckpointHandler().metadata(path).tree
    return ocp.args.StandardRestore(_restore_target(like, sharding))


def _quiet_read_only(record: logging.LogRecord) -> bool:
    return "is read only" not in record.getMessage()


def open_manager(run_dir: Path, read_only: bool = False, items: tuple = ITEMS, collective: bool = False) -> ocp.CheckpointManager:
    """The run's Orbax CheckpointManager (absolute path; keeps every checkpoint). `items`:
    the checkpoint's item names (RL runs: `RL_ITEMS`); "metadata" is JSON.

    On a multi-host run (jax.process_count() > 1) a process checkpoints its runs alone
    (a sweep: every process its own populations), unless `collective`: every process
    opens the run's manager and saves each checkpoint with the others (a run on a mesh
    over all processes' devices; Orbax's multi-host protocol, process 0 writes the
    shared files)."""
    directory = Path(run_dir).absolute() / CHECKPOINT_DIR
    if read_only and not directory.is_dir():
        raise TrainError(f"{run_dir} is not a training run: {CHECKPOINT_DIR}/ is missing")
    options = ocp.CheckpointManagerOptions(
        read_only=read_only,
        save_interval_steps=0 if read_only else 1,  # read-only managers save nothing (and Orbax warns otherwise)
        create=not read_only,
        cleanup_tmp_directories=not read_only,
        enable_async_checkpointing=not read_only,
    )
    if read_only:  # Orbax warns that a read-only directory is read-only
        logging.getLogger("absl").addFilter(_quiet_read_only)
    if not _multi_host() or collective:
        return ocp.CheckpointManager(directory, options=options, item_names=items)
    # Multi-host sweeps: every process checkpoints its own runs alone, as its own primary host
    # (the JSON item's handler too: it would otherwise leave the writing to process 0). The
    # array items take their handler from their args: .npz, or Orbax's format when reading
    # a checkpoint written so (`array_save`, `array_restore`).
    me = jax.process_index()
    alone = ocp.options.MultiprocessingOptions(primary_host=None, active_processes={me})
    options.multiprocessing_options = alone
    options.create = False  # Orbax leaves creating the root to us when processes act alone
    # The .npz items' handler is synchronous, and Orbax (0.12) starts it without waiting
    # for the item directories it creates in the background: create them first.
    options.async_options = ocp.options.AsyncOptions(create_directories_asynchronously=False)
    if not read_only:
        directory.mkdir(parents=True, exist_ok=True)
    handlers = {"metadata": ocp.JsonCheckpointHandler(multiprocessing_options=alone)}
    return ocp.CheckpointManager(directory, options=options, item_names=items, item_handlers=handlers)


def save_checkpoint(manager: ocp.CheckpointManager, epoch: int, state, metadata: dict) -> None:
    """Save epoch `epoch` (asynchronously); refuses to replace an existing checkpoint."""
    if epoch in manager.all_steps():
        raise TrainError(f"checkpoint {epoch} already exists in {manager.directory}; checkpoints are never overwritten")
    saved = manager.save(
        epoch,
        args=ocp.args.Composite(
            params=array_save(state.params),
            opt_state=array_save(state.opt_state),
            metadata=ocp.args.JsonSave(metadata),
        ),
    )
    if not saved:
        raise TrainError(f"Orbax declined to save checkpoint {epoch} in {manager.directory}")


def _restore_target(abstract, sharding=None):
    sharding = sharding if sharding is not None else jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), abstract)


def restore_checkpoint(manager: ocp.CheckpointManager, epoch: int, abstract_state):
    """(params, opt_state, metadata) of one epoch; `abstract_state` gives the structure."""
    restored = restore_items(manager, epoch, {"params": abstract_state.params, "opt_state": abstract_state.opt_state, "metadata": None})
    return restored["params"], restored["opt_state"], restored["metadata"]


def read_metadata(manager: ocp.CheckpointManager, epoch: int) -> dict:
    return restore_items(manager, epoch, {"metadata": None})["metadata"]


def restore_items(manager: ocp.CheckpointManager, epoch: int, like: dict, sharding=None) -> dict:
    """{item: value} of checkpoint `epoch`: the "metadata" item (JSON, `like` None) and
    array items read into `like[item]` on `sharding` (`array_restore`). Any failure to read
    a complete checkpoint is a CheckpointError naming it and its first unreadable item:
    Orbax and TensorStore raise bare Exceptions with pages of detail."""
    where = Path(manager.directory) / str(epoch)

    def args(names):
        return ocp.args.Composite(
            **{name: ocp.args.JsonRestore() if name == "metadata" else array_restore(where, name, like[name], sharding) for name in names}
        )

    with tidy_event_loops():
        try:
            restored = manager.restore(epoch, args=args(like))
            return {name: restored[name] if sharding is not None else uncommitted(restored[name]) for name in like}
        except Exception as err:  # noqa: BLE001  (whatever TensorStore raises)
            cause = err
        for name in like:  # which item: read each alone
            try:
                manager.restore(epoch, args=args([name]))
            except Exception as err:  # noqa: BLE001
                raise CheckpointError(f"checkpoint {where} cannot be read: its {name} item is truncated or corrupted ({_root_cause(err)})") from err
    raise CheckpointError(f"checkpoint {where} cannot be read, it is truncated or corrupted ({_root_cause(cause)})") from cause


def uncommitted(tree):
    """`tree` with its device arrays placed on the default device without committing them,
    as a fresh program's outputs are. jit compiles a program per argument placement, and
    Orbax restores arrays committed to a device: a resumed run, or best params evaluated
    after training, would otherwise compile a second copy of every program it calls. The
    values are copied: a new array never shares memory with a buffer Orbax made."""
    return jax.tree.map(lambda x: jax.device_put(np.array(x, copy=True)) if isinstance(x, jax.Array) else x, tree)


class _TidyEventLoop(asyncio.SelectorEventLoop):
    """An event loop that cancels and awaits its pending tasks before it closes, as
    `asyncio.run` does, drops what other threads still hand it once it is closed (the
    callback of a read that was finishing while it was cancelled: nothing waits for it),
    and does not log the exceptions of reads whose failure the restore already raised."""

    def call_soon_threadsafe(self, callback, *args, context=None):
        try:
            return super().call_soon_threadsafe(callback, *args, context=context)
        except RuntimeError:
            if self.is_closed():
                return None
            raise

    def call_exception_handler(self, context) -> None:
        # A read that failed after `gather` had already raised: the restore reports the
        # checkpoint as unreadable, and the task's own traceback (logged when it is
        # collected) would only repeat it.
        if context.get("message") == "Task exception was never retrieved":
            return
        super().call_exception_handler(context)

    def close(self) -> None:
        if not self.is_closed() and not self.is_running():
            pending = [task for task in asyncio.all_tasks(self) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                self.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        super().close()


class _TidyEventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return _TidyEventLoop()


@contextlib.contextmanager
def tidy_event_loops():
    """Every event loop made inside cancels its pending tasks before it closes.

    Orbax (0.12) runs each restore in a fresh event loop that it closes without cancelling
    what is still pending: when one array of an item cannot be read, `asyncio.gather`
    raises at once and the other TensorStore reads stay in flight. Each of them, once done,
    calls back into the closed loop, and "RuntimeError: Event loop is closed" tracebacks
    follow the one-line error (at exit, when the reads are slow). Here the reads are
    cancelled before the loop closes, and a callback that was already on its way when the
    loop closed is dropped."""
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(_TidyEventLoopPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)


def _root_cause(err: BaseException) -> str:
    while err.__cause__ is not None:
        err = err.__cause__
    text = str(err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def resume_command(run_dir: Path) -> str:
    """The command that continues the run in `run_dir`: `mirror rl --resume` for an RL run."""
    kind = "rl" if (Path(run_dir) / RL_RUN_FILE).is_file() else "train"
    return f"mirror {kind} --resume {run_dir}"


def with_fix(err: CheckpointError, run_dir: Path, epochs: list[int], epoch: int) -> CheckpointError:
    """`err`, an unreadable checkpoint `epoch` of the run's `epochs` (sorted), with the fix:
    the last one is set aside and retrained by the run kind's resume, an earlier one has to
    be moved out of the way."""
    if epoch == epochs[-1] and len(epochs) > 1:
        fix = f"`{resume_command(run_dir)}` sets it aside and retrains it from checkpoint {epochs[-2]}"
    else:
        fix = f"move it out of {Path(run_dir).absolute() / CHECKPOINT_DIR} to analyse the other checkpoints"
    return CheckpointError(f"{err}; {fix}")


def set_aside_checkpoint(run_dir: Path, epoch: int) -> Path:
    """Move an unreadable checkpoint out of checkpoints/ (kept, never deleted) to
    RUN_DIR/corrupt-checkpoints/<epoch>[.n]; returns where it went."""
    source = Path(run_dir) / CHECKPOINT_DIR / str(epoch)
    target = Path(run_dir) / CORRUPT_DIR / str(epoch)
    n = 0
    while target.exists():
        n += 1
        target = target.with_name(f"{epoch}.{n}")
    target.parent.mkdir(exist_ok=True)
    os.rename(source, target)
    return target


def abstract_params(config: Config, widths: tuple, members: int):
    """ShapeDtypeStructs of stacked params [members, ...] of the config's model (an MLP at `widths`)."""
    m = config.model
    # The run's dataset was generated from this config: its inputs are 3W + 4 wide.
    num_inputs = obs_size(config.env_params.world_width)
    arch = arch_of(m, widths)
    single = jax.eval_shape(lambda key: init_model_params(key, arch, num_inputs=num_inputs), jax.random.key(0))
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct((members,) + a.shape, a.dtype), single)


@dataclasses.dataclass
class LoadedRun:
    """Every checkpoint of a run, stacked for vectorised analysis.

    params: MLP params pytree of numpy arrays [checkpoints, members, ...], padded to
    `padded_widths` (members = 1 for a single run); padded units have zero weights. An RL
    run's "members" are its networks (the actors alone, the supervised MLP's or
    transformer's layout), `members` its Networks.
    """

    config: Config
    params: Any
    epochs: np.ndarray  # int[checkpoints]
    metadata: list  # one dict per checkpoint
    widths: list  # per member: its true hidden widths
    padded_widths: tuple
    dataset_path: str
    members: list  # Member per member (supervised), Network per network (RL)
    run_dir: Path
    kind: str  # "supervised" or "rl" (`run_kind`)

    def metric(self, name: str) -> np.ndarray:
        """f64[checkpoints, members] of a per-member metadata entry (null -> nan)."""
        rows = []
        for meta in self.metadata:
            value = meta[name]
            values = value if isinstance(value, list) else [value]
            rows.append([np.nan if v is None else float(v) for v in values])
        return np.asarray(rows, np.float64)

    def checkpoint_index(self, which: str | int = "best", member: int = 0) -> int:
        """Index into the checkpoint axis: "best" (lowest validation loss), "last" or an epoch."""
        if which == "last":
            return len(self.epochs) - 1
        if which == "best":
            best = self.metric("best_epoch")[-1, member]
            if np.isnan(best) or best < 1:
                raise TrainError(f"member {member} of {self.run_dir} has no checkpoint with a finite validation loss")
            which = int(best)
        epoch = int(which)
        hits = np.flatnonzero(self.epochs == epoch)
        if not hits.size:
            raise TrainError(f"{self.run_dir} has no checkpoint for epoch {epoch} (epochs {self.epochs.min()}..{self.epochs.max()})")
        return int(hits[0])


def load_run(run_dir: str | Path, *, need_dataset: bool = True) -> LoadedRun:
    """Read a run directory: config, members and all complete checkpoints, stacked.
    `need_dataset=False` reads a run without dataset.json (an RL sweep's population run,
    whose trials each have their own probe dataset); its `dataset_path` is then None."""
    run_dir = Path(run_dir).absolute()
    if (run_dir / POPULATION_FILE).is_file():
        return _load_trial(run_dir)
    for name in (CONFIG_FILE, MEMBERS_FILE) + ((DATASET_FILE,) if need_dataset else ()):
        if not (run_dir / name).is_file():
            raise TrainError(f"{run_dir} is not a training run: {name} is missing")
    config = load_config(run_dir / CONFIG_FILE)
    members = read_members(run_dir)
    widths = padded_widths(members)
    manager = open_manager(run_dir, read_only=True)
    try:
        epochs = sorted(manager.all_steps())
        if not epochs:
            raise TrainError(f"{run_dir} has no complete checkpoint yet")
        target = abstract_params(config, widths, len(members))
        lines = read_metrics(run_dir)
        params, metadata = [], []
        for epoch in epochs:
            try:
                restored = restore_items(manager, epoch, {"params": target, "metadata": None})
            except CheckpointError as err:
                raise with_fix(err, run_dir, epochs, epoch) from None
            params.append(jax.tree.map(np.asarray, restored["params"]))
            if epoch not in lines and "val_loss" not in restored["metadata"]:  # older runs kept the metrics in the checkpoint too
                raise TrainError(f"{run_dir / METRICS_FILE} has no line for checkpoint {epoch}")
            metadata.append(epoch_record(lines.get(epoch, {}), restored["metadata"]))
    finally:
        manager.close()
    return LoadedRun(
        config=config,
        params=jax.tree.map(lambda *leaves: np.stack(leaves), *params),
        epochs=np.asarray(epochs, np.int64),
        metadata=metadata,
        widths=[list(member.widths) for member in members],
        padded_widths=widths,
        dataset_path=json.loads((run_dir / DATASET_FILE).read_text())["path"] if (run_dir / DATASET_FILE).is_file() else None,
        members=members,
        run_dir=run_dir,
        kind=run_kind(run_dir),
    )


def epoch_record(line: dict, checkpoint_meta: dict) -> dict:
    """An epoch's metrics line joined with its checkpoint's metadata. wall_s is left out: it
    is the one value a resumed run does not reproduce, and no analysis reads it."""
    return {**{k: v for k, v in line.items() if k != "wall_s"}, **checkpoint_meta}


def restore_stacked(run_dir: str | Path, squeeze_members: bool = True):
    """Params of every checkpoint: [checkpoints, ...] for a single model (with
    `squeeze_members`), else [checkpoints, members, ...]."""
    run = load_run(run_dir)
    if squeeze_members and len(run.members) == 1:
        return jax.tree.map(lambda a: a[:, 0], run.params)
    return run.params


def _load_trial(trial_dir: Path) -> LoadedRun:
    """A sweep trial as a run of its own: its network(s) of the population run (one, or
    an RL trial's Frog and Toad networks: population.json "networks"), its checkpoints,
    and its own dataset.json when it has one (RL trials with their own D and I)."""
    pointer = json.loads((trial_dir / POPULATION_FILE).read_text())
    own = trial_dir / DATASET_FILE
    population = load_run(pointer["run_dir"], need_dataset=not own.is_file())
    networks = [int(i) for i in pointer.get("networks", [pointer["member"]])]
    n = int(pointer["checkpoints"])
    widths = tuple(population.members[networks[0]].widths)

    def single(value):
        if not isinstance(value, list):
            return value
        return value[networks[0]] if len(networks) == 1 else [value[i] for i in networks]

    return LoadedRun(
        config=load_config(trial_dir / CONFIG_FILE),
        params=jax.tree.map(lambda a: np.asarray(a)[:n][:, networks], unpad_model_params(population.params, widths)),
        epochs=population.epochs[:n],
        metadata=[{k: single(v) for k, v in meta.items()} for meta in population.metadata[:n]],
        widths=[list(widths)] * len(networks),
        padded_widths=widths,
        dataset_path=json.loads(own.read_text())["path"] if own.is_file() else population.dataset_path,
        members=[population.members[i] for i in networks],
        run_dir=trial_dir,
        kind=population.kind,
    )


# ----------------------------------------------------------------------------- RL runs


def is_rl_run(run_dir) -> bool:
    return (Path(run_dir) / RL_RUN_FILE).is_file()


def read_rl_run(run_dir) -> dict:
    path = Path(run_dir) / RL_RUN_FILE
    if not path.is_file():
        raise TrainError(f"{run_dir} is not an RL run: {RL_RUN_FILE} is missing")
    return json.loads(path.read_text())


def open_rl_manager(run_dir, read_only: bool = False, collective: bool = False) -> ocp.CheckpointManager:
    """The run's checkpoint manager (`open_manager`); `collective`:
    every process of a run split over all processes' devices opens it and saves together."""
    return open_manager(run_dir, read_only=read_only, items=RL_ITEMS, collective=collective)



# --- the runner state as a flat dict of arrays ----------------------------------------


def _leaf_name(i: int, path) -> str:
    return f"{i:03d}_" + re.sub(r"[^A-Za-z0-9_]+", "_", jax.tree_util.keystr(path)).strip("_")


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def flatten_state(runner) -> dict:
    """The runner state as {name: array}; typed PRNG keys become their key data (Orbax
    saves plain arrays only)."""
    leaves = jax.tree_util.tree_flatten_with_path(runner)[0]
    return {_leaf_name(i, path): jax.random.key_data(x) if _is_key(x) else x for i, (path, x) in enumerate(leaves)}


def unflatten_state(flat: dict, abstract_runner):
    """Inverse of `flatten_state` onto the structure of `abstract_runner`."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract_runner)
    out = []
    for i, (path, a) in enumerate(leaves):
        value = flat[_leaf_name(i, path)]
        out.append(jax.random.wrap_key_data(value) if _is_key(a) else value)
    return jax.tree_util.tree_unflatten(treedef, out)


def abstract_flat_state(abstract_runner) -> dict:
    """`flatten_state` of an abstract runner state (ShapeDtypeStructs)."""
    return jax.eval_shape(flatten_state, abstract_runner)


# --- checkpoints ------------------------------------------------------------------------


def save_rl_checkpoint(manager, update: int, *, params, rl_state: dict, probe: dict, metadata: dict) -> None:
    """Save update `update` (asynchronously); an existing checkpoint is never replaced.
    Every process of a run split over several saves it together (global arrays)."""
    if update in manager.all_steps():
        raise TrainError(f"checkpoint {update} already exists in {manager.directory}; checkpoints are never overwritten")
    saved = manager.save(
        update,
        args=ocp.args.Composite(
            params=array_save(params),
            rl_state=array_save(rl_state),
            probe=array_save(probe),
            metadata=ocp.args.JsonSave(metadata),
        ),
    )
    if not saved:
        raise TrainError(f"Orbax declined to save checkpoint {update} in {manager.directory}")


def restore_rl_state(manager, update: int, abstract_runner, sharding=None):
    """(runner state, metadata) of checkpoint `update`, its arrays on `sharding` (default:
    this process's first device). Every item is read, params and probe too (resume needs
    neither, but a checkpoint it continues from must be whole): CheckpointError names the
    first item that cannot be read."""
    like = {"rl_state": abstract_flat_state(abstract_runner), "params": None, "probe": None, "metadata": None}
    restored = restore_items(manager, update, like, sharding)
    return unflatten_state(restored["rl_state"], abstract_runner), restored["metadata"]


def read_rl_metadata(manager, update: int) -> dict | None:
    """The metadata item of checkpoint `update`, or None when it cannot be read."""
    try:
        with tidy_event_loops():
            restored = manager.restore(update, args=ocp.args.Composite(metadata=ocp.args.JsonRestore()))
    except Exception:  # noqa: BLE001  (whatever Orbax raises; the full restore reports it)
        return None
    return restored.metadata if isinstance(restored.metadata, dict) else None


def read_probes(run_dir) -> dict:
    """Probe set (b) of every checkpoint: inputs int8[checkpoints, networks, rows, 3W+4],
    scenarios int8[checkpoints, networks, rows], idle_shown bool[checkpoints, networks, rows, 2],
    updates int[checkpoints]."""
    run_dir = Path(run_dir).absolute()
    read_rl_run(run_dir)
    if (run_dir / POPULATION_FILE).is_file():  # a sweep trial: its networks of the population's run
        pointer = json.loads((run_dir / POPULATION_FILE).read_text())
        population = read_probes(pointer["run_dir"])
        networks = pointer.get("networks", [pointer["member"]])
        n = int(pointer["checkpoints"])
        out = {k: population[k][:n, networks] for k in PROBE_FIELDS}
        return {**out, "updates": population["updates"][:n]}
    if not (run_dir / CHECKPOINT_DIR).is_dir():
        raise TrainError(f"{run_dir} has no {CHECKPOINT_DIR}/ yet")
    manager = open_rl_manager(run_dir, read_only=True)
    try:
        updates = sorted(manager.all_steps())
        if not updates:
            raise TrainError(f"{run_dir} has no complete checkpoint yet")
        probes = []
        for update in updates:
            try:
                probe = restore_items(manager, update, {"probe": dict.fromkeys(PROBE_FIELDS, 0)})["probe"]
            except CheckpointError as err:
                raise with_fix(err, run_dir, updates, update) from None
            probes.append({k: np.asarray(probe[k]) for k in PROBE_FIELDS})
    finally:
        manager.close()
    out = {k: np.stack([p[k] for p in probes]) for k in PROBE_FIELDS}
    out["updates"] = np.asarray(updates, np.int64)
    return out


