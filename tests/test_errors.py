"""Every failure named: the error paths that used to end in a traceback, and the
bad states that went unnoticed. Each gives one line `mirror CMD: error: ...` naming the
file, field or directory, exit code 2 and no traceback; nothing written is lost."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from mirror.base.files import lock_run_dir, make_writer_dir
from mirror.cli import main
from mirror.data.store import ARRAYS, write_dataset
from mirror.runs.checkpoints import load_run

ROOT = Path(__file__).resolve().parents[1]

TINY_YAML = """\
name: tiny
data:
  rows: 6000
  test_rows: 200
  games: 128
  rounds_per_chunk: 64
  test_label_shares: [0.45, 0.45, 0.1, 0.0]
  cache_dir: {cache}
train:
  epochs: 2
  lr: 1.0e-3
analysis:
  permutations: 8
  init_seeds: 2
tracking:
  mode: disabled
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(config file, a finished 2-epoch run made by `mirror train`, its dataset directory)."""
    base = tmp_path_factory.mktemp("errors")
    config = base / "tiny.yaml"
    config.write_text(TINY_YAML.format(cache=base / "cache"))
    run = base / "run"
    assert main(["train", "--config", str(config), "--run-dir", str(run)]) == 0
    dataset = Path(json.loads((run / "dataset.json").read_text())["path"])
    return config, run, dataset


@pytest.fixture
def run_copy(tiny, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny[1], copy)
    return copy


def one_error_line(capsys, rc: int, command: str, *fragments: str) -> str:
    """Exit code 2, exactly one error line naming `fragments`, no traceback."""
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"mirror {command}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def truncate_arrays(checkpoint: Path) -> None:
    """Cut every array data file of a checkpoint's params to 10 bytes (a torn copy)."""
    files = [p for p in (checkpoint / "params").rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files
    for path in files:
        with open(path, "r+b") as fh:
            fh.truncate(10)


def read_only(monkeypatch, path: Path) -> None:
    """Make `path` read-only. Root may write anywhere whatever the mode, so for root the
    kernel's answer for a read-only mount is simulated at os.access."""
    path.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == path and mode & os.W_OK else real(p, mode, **kw))


# --- the seven error paths -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, where",
    [("data: [rows: 5\n", "line 2"), ("train:\n  lr: 1e-3\n epochs: 2\n", "line 3")],
)
def test_malformed_config_yaml(tmp_path, capsys, text, where):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    rc = main(["train", "--config", str(config), "--run-dir", str(tmp_path / "run")])
    one_error_line(capsys, rc, "train", str(config), "is not valid YAML", where)
    assert not (tmp_path / "run").exists()


def test_malformed_sweep_yaml(tmp_path, capsys):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("sweep:\n  grid: {train.lr: [1e-3, 1e-4}\n")
    one_error_line(capsys, main(["sweep", str(sweep)]), "sweep", str(sweep), "is not valid YAML", "line 2")


def test_malformed_override_value(tmp_path, capsys):
    rc = main(["generate", "--data.test_label_shares", "[0.4, 0.4"])
    one_error_line(capsys, rc, "generate", "--data.test_label_shares", "is not valid YAML")


@pytest.mark.slow
def test_data_inspect_negative_rows(tiny, capsys):
    rc = main(["data", "inspect", str(tiny[2]), "--rows", "-1"])
    one_error_line(capsys, rc, "data", "--rows", "-1")


@pytest.mark.parametrize("command", ["run", "train"])
def test_resume_of_a_directory_that_is_not_a_run(tmp_path, capsys, command):
    (tmp_path / "notes.txt").write_text("not a run")
    rc = main([command, "--resume", str(tmp_path)])
    one_error_line(capsys, rc, command, str(tmp_path), "config.yaml is missing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_cmni_names_a_truncated_checkpoint_and_the_fix(run_copy, capsys):
    truncate_arrays(run_copy / "checkpoints" / "2")
    rc = main(["cmni", str(run_copy), "--out", str(run_copy / "out")])
    line = one_error_line(capsys, rc, "cmni", str(run_copy / "checkpoints" / "2"), "truncated or corrupted")
    assert f"mirror train --resume {run_copy}" in line and "from checkpoint 1" in line
    assert not (run_copy / "out").exists()


def test_cmni_names_a_corrupt_middle_checkpoint(run_copy, capsys):
    truncate_arrays(run_copy / "checkpoints" / "1")
    rc = main(["cmni", str(run_copy), "--out", str(run_copy / "out")])
    line = one_error_line(capsys, rc, "cmni", str(run_copy / "checkpoints" / "1"), "truncated or corrupted")
    assert "move it out of" in line


def test_resume_sets_a_truncated_checkpoint_aside_and_retrains_it(tiny, run_copy, capsys):
    truncate_arrays(run_copy / "checkpoints" / "2")
    assert main(["train", "--resume", str(run_copy)]) == 0
    out = capsys.readouterr().out
    moved = run_copy / "corrupt-checkpoints" / "2"
    assert f"warning: checkpoint {run_copy / 'checkpoints' / '2'} cannot be read" in out
    assert f"moved it to {moved} and resuming from checkpoint 1" in out
    assert moved.is_dir()  # kept, not deleted
    # Epoch 2 trained again from checkpoint 1 equals the original bit for bit.
    again, original = load_run(run_copy), load_run(tiny[1])
    np.testing.assert_array_equal(again.epochs, [1, 2])
    for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(original.params), strict=True):
        np.testing.assert_array_equal(a, b)
    lines = [json.loads(x)["epoch"] for x in (run_copy / "metrics.jsonl").read_text().splitlines()]
    assert lines == [1, 2]


@pytest.mark.parametrize("command", ["train", "run"])
def test_resume_with_no_readable_checkpoint_moves_nothing(run_copy, capsys, command):
    for epoch in ("1", "2"):
        truncate_arrays(run_copy / "checkpoints" / epoch)
    rc = main([command, "--resume", str(run_copy)])
    one_error_line(capsys, rc, command, str(run_copy / "checkpoints" / "2"), "no earlier checkpoint")
    assert sorted(p.name for p in (run_copy / "checkpoints").iterdir()) == ["1", "2"]
    assert not (run_copy / "corrupt-checkpoints").exists()


def test_read_only_run_directory_is_refused_before_training(run_copy, capsys, monkeypatch):
    before = (run_copy / "metrics.jsonl").read_text()
    read_only(monkeypatch, run_copy)
    try:
        rc = main(["train", "--resume", str(run_copy)])
    finally:
        run_copy.chmod(0o755)
    one_error_line(capsys, rc, "train", f"run directory {run_copy} is not writable")
    assert (run_copy / "metrics.jsonl").read_text() == before


def test_read_only_parent_of_a_new_run_is_refused_before_the_dataset(tiny, tmp_path, capsys, monkeypatch):
    parent = tmp_path / "runs"
    parent.mkdir()
    cache = tmp_path / "cache"
    read_only(monkeypatch, parent)
    try:
        rc = main(["run", "--config", str(tiny[0]), "--data.cache_dir", str(cache), "--run-dir", str(parent / "r")])
    finally:
        parent.chmod(0o755)
    one_error_line(capsys, rc, "run", str(parent / "r"), "not writable")
    assert not cache.exists()  # no dataset generated


def test_read_only_analysis_directory_is_refused_before_the_analysis(run_copy, tmp_path, capsys, monkeypatch):
    out = tmp_path / "analysis"
    out.mkdir()
    read_only(monkeypatch, out)
    try:
        rc = main(["cmni", str(run_copy), "--out", str(out)])
    finally:
        out.chmod(0o755)
    one_error_line(capsys, rc, "cmni", f"output directory {out} is not writable")
    assert list(out.iterdir()) == []


def test_read_only_cache_directory_is_refused_before_generating(tiny, tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    read_only(monkeypatch, cache)
    try:
        rc = main(["generate", "--config", str(tiny[0]), "--data.cache_dir", str(cache), "--data.rows", "7000"])
    finally:
        cache.chmod(0o755)
    one_error_line(capsys, rc, "generate", f"dataset cache directory (data.cache_dir) {cache}", "not writable")
    assert list(cache.iterdir()) == []


# --- bad states that went unnoticed ----------------------------------------------------


def test_empty_config_file_is_refused(tmp_path, capsys):
    config = tmp_path / "empty.yaml"
    config.write_text("# nothing yet\n")
    rc = main(["train", "--config", str(config), "--run-dir", str(tmp_path / "run")])
    one_error_line(capsys, rc, "train", f"config file {config} is empty")


def test_edited_manifest_counts_are_noticed(tiny, tmp_path, capsys):
    copy = tmp_path / "dataset"
    shutil.copytree(tiny[2], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    real = manifest["counts"]["test"]["hop"]["none"]
    manifest["counts"]["test"]["hop"]["none"] = real + 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    rc = main(["data", "inspect", str(copy)])
    one_error_line(capsys, rc, "data", str(copy / "manifest.json"), f"counts.test.hop.none = {real + 1} but the arrays hold {real}")


HOLD_LOCK = """\
import sys
from mirror.base.files import lock_run_dir
with lock_run_dir(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()  # until the test closes stdin (or kills this process)
"""


def hold_lock(run_dir: Path) -> subprocess.Popen:
    """Another process holding the run's lock, as a running `mirror train --resume` does;
    returns once it holds it (it says so), not after some guessed delay."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "run"])
def test_second_resume_of_a_running_run_is_refused(run_copy, capsys, command):
    before = (run_copy / "metrics.jsonl").read_text()
    holder = hold_lock(run_copy)
    try:
        rc = main([command, "--resume", str(run_copy)])
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    one_error_line(capsys, rc, command, f"run {run_copy} is in use by another process (pid {holder.pid})")
    assert (run_copy / "metrics.jsonl").read_text() == before


@pytest.mark.slow
def test_new_run_into_a_directory_being_created_is_refused(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    holder = hold_lock(run)  # the first process created the directory and holds it
    try:
        rc = main(["train", "--config", str(tiny[0]), "--run-dir", str(run)])
        assert [p.name for p in run.iterdir()] == [".lock"]  # the refused process wrote nothing
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    one_error_line(capsys, rc, "train", f"run {run} is in use by another process")
    assert not run.exists()  # the first process wrote nothing either: it leaves no trace


@pytest.mark.slow
def test_lock_of_a_killed_process_is_released(tmp_path):
    holder = hold_lock(tmp_path / "run")
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=60) == -signal.SIGKILL
    with lock_run_dir(tmp_path / "run"):  # the kernel dropped the dead process's lock
        pass


KILLED_WRITER = """\
import os, signal, sys
import numpy as np
from mirror.data.store import ARRAYS, write_dataset
saved = []
real_save = np.save
def save_then_die(*args, **kwargs):
    real_save(*args, **kwargs)
    saved.append(1)
    if len(saved) == 2:  # killed mid-write, after two of the arrays
        os.kill(os.getpid(), signal.SIGKILL)
np.save = save_then_die
arrays = {name: np.zeros((4,) + tuple(100 if isinstance(d, str) else d for d in tail), dtype) for name, (dtype, tail) in ARRAYS.items()}  # inputs 100 wide
write_dataset(sys.argv[1], arrays, {"rows": 4})
"""


@pytest.mark.slow
def test_stale_tmp_dirs_of_killed_writers_are_removed(tmp_path):
    cache = tmp_path / "cache"
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(cache / "first")], cwd=ROOT, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    (stale,) = cache.glob(".tmp-first*")
    assert (stale / "inputs.npy").is_file()
    live = make_writer_dir(cache, ".tmp-other")  # a writer of this process, still at work
    arrays = {name: np.zeros((4,) + tuple(100 if isinstance(d, str) else d for d in tail), dtype) for name, (dtype, tail) in ARRAYS.items()}  # inputs 100 wide
    write_dataset(cache / "second", arrays, {"rows": 4})
    assert sorted(p.name for p in cache.iterdir()) == sorted([live.name, "second"])
    assert not stale.exists()


def test_config_helpers_are_public():
    from mirror.runs.config import merge, set_dotted

    tree = {"data": {"rows": 1, "games": 2}}
    set_dotted(tree, "train.lr", 0.5)
    assert merge(tree, {"data": {"rows": 3}}) == {"data": {"rows": 3, "games": 2}, "train": {"lr": 0.5}}
    assert tree["data"]["rows"] == 1  # merge copies


# --- damaged RL checkpoint items ---------------------------------------------------------
# Every item of an RL checkpoint (params, rl_state, probe, metadata) is read through the
# same guard as a training run's: a damaged one is named in one line with the RL run's
# own fix, and `mirror rl --resume` sets its checkpoint aside and retrains it.


def truncate_item(checkpoint: Path, item: str) -> None:
    """Cut the data files of one item of a checkpoint (an array item's, or the JSON
    metadata) to 10 bytes (a torn copy)."""
    files = [p for p in (checkpoint / item).rglob("*") if p.is_file() and (p.parent.name == "d" or p.name == item == "metadata")]
    assert files
    for path in files:
        with open(path, "r+b") as fh:
            fh.truncate(10)


@pytest.fixture
def rl_copy(tiny_rl_run, tmp_path) -> Path:
    """A private copy of the tiny RL run (updates 6, checkpoints 2, 4, 6)."""
    from conftest import copy_run

    return copy_run(tiny_rl_run, tmp_path / "rl")


@pytest.mark.slow
@pytest.mark.parametrize("item", ["params", "probe", "metadata"])
def test_cmni_names_a_damaged_rl_checkpoint_item_and_the_rl_fix(rl_copy, capsys, item):
    truncate_item(rl_copy / "checkpoints" / "6", item)
    rc = main(["cmni", str(rl_copy), "--out", str(rl_copy / "out")])
    line = one_error_line(capsys, rc, "cmni", str(rl_copy / "checkpoints" / "6"), f"its {item} item is truncated or corrupted")
    assert f"`mirror rl --resume {rl_copy}` sets it aside and retrains it from checkpoint 4" in line


@pytest.mark.parametrize("item", ["params", "probe", "metadata"])
def test_a_damaged_middle_rl_checkpoint_is_named_by_the_analysis_loaders(rl_copy, item):
    from mirror.base.errors import CheckpointError
    from mirror.runs.checkpoints import read_probes

    truncate_item(rl_copy / "checkpoints" / "4", item)
    with pytest.raises(CheckpointError) as err:
        load_run(rl_copy)
        read_probes(rl_copy)
    assert f"checkpoint {rl_copy / 'checkpoints' / '4'} cannot be read: its {item} item is truncated or corrupted" in str(err.value)
    assert f"move it out of {rl_copy / 'checkpoints'}" in str(err.value)


def test_the_analysis_does_not_need_the_rl_state(tiny_rl_run, rl_copy):
    """The runner state is resume's alone: the analysis loaders read a run whose last
    rl_state is damaged as they read the whole run (`--resume` repairs it, below)."""
    from mirror.runs.checkpoints import read_probes

    truncate_item(rl_copy / "checkpoints" / "6", "rl_state")
    damaged, whole = load_run(rl_copy), load_run(tiny_rl_run)
    jax.tree.map(np.testing.assert_array_equal, damaged.params, whole.params)
    assert damaged.metadata == whole.metadata
    jax.tree.map(np.testing.assert_array_equal, read_probes(rl_copy), read_probes(tiny_rl_run))


@pytest.mark.slow
@pytest.mark.parametrize("item", ["params", "rl_state", "probe", "metadata"])
def test_rl_resume_sets_a_damaged_checkpoint_aside_and_retrains_it(tiny_rl_run, rl_copy, item):
    from mirror.runs.checkpoints import read_probes
    from mirror.runs.rl_run import resume_rl_config, rl_run

    truncate_item(rl_copy / "checkpoints" / "6", item)
    logs = []
    rl_run(resume_rl_config(rl_copy), rl_copy, resume=True, log=logs.append)
    moved = rl_copy / "corrupt-checkpoints" / "6"
    (warning,) = [line for line in logs if line.startswith("warning:")]
    assert f"checkpoint {rl_copy / 'checkpoints' / '6'} cannot be read: its {item} item is truncated or corrupted" in warning
    assert f"moved it to {moved} and resuming from checkpoint 4" in warning
    assert moved.is_dir()  # kept, not deleted
    # Updates 5 and 6 trained again from checkpoint 4 equal the original bit for bit.
    again, original = load_run(rl_copy), load_run(tiny_rl_run)
    np.testing.assert_array_equal(again.epochs, [2, 4, 6])
    jax.tree.map(np.testing.assert_array_equal, again.params, original.params)
    assert again.metadata == original.metadata
    jax.tree.map(np.testing.assert_array_equal, read_probes(rl_copy), read_probes(tiny_rl_run))


# --- nothing but the one line: reads a failed restore left in flight ----------------------
# Orbax runs each restore in an event loop of its own and closes it when the restore fails,
# with the other TensorStore reads of the damaged item still in flight; each of them used to
# call back into the closed loop when done ("RuntimeError: Event loop is closed" tracebacks
# after the one-line error, or at exit). `tidy_event_loops` cancels them before the loop
# closes and drops a callback already on its way.

ERROR_COMMANDS = """\
import json, sys
from mirror.cli import main
for argv in json.loads(sys.argv[1]):
    print(main(argv), flush=True)
"""


@pytest.mark.slow
def test_damaged_checkpoints_give_the_one_line_and_nothing_else(tiny_run, tiny_rl_run, tmp_path):
    from conftest import copy_run, xla_env

    run, rl = copy_run(tiny_run, tmp_path / "run"), copy_run(tiny_rl_run, tmp_path / "rl")
    truncate_arrays(run / "checkpoints" / "3")
    truncate_item(rl / "checkpoints" / "6", "params")
    commands = [
        ["cmni", str(run), "--out", str(tmp_path / "out")],
        ["cmni", str(rl), "--out", str(tmp_path / "rl_out")],
        ["play", "--agent", str(rl), "--fps", "0"],
        ["ablate", str(rl), "--units", "L1N1"],
    ]
    done = subprocess.run(
        [sys.executable, "-c", ERROR_COMMANDS, json.dumps(commands)],
        cwd=ROOT, env=xla_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.stdout.split() == ["2"] * len(commands), done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == len(commands), done.stderr  # no traceback, no warning: the errors alone
    expected = [("cmni", run / "checkpoints" / "3", "params"), ("cmni", rl / "checkpoints" / "6", "params")]
    expected += [("play", rl / "checkpoints" / "6", "params"), ("ablate", rl / "checkpoints" / "6", "params")]
    for line, (command, checkpoint, item) in zip(lines, expected):
        assert line.startswith(f"mirror {command}: error: checkpoint {checkpoint} cannot be read: its {item} item is truncated"), line


def test_reads_left_in_flight_never_call_back_into_a_closed_loop(monkeypatch):
    import asyncio

    import tensorstore as ts

    from mirror.runs.checkpoints import tidy_event_loops

    def failed_restore():
        """A restore whose first read fails while a second is still in flight, in a fresh
        loop closed afterwards (as Orbax runs it)."""
        promise, read = ts.Promise.new()
        loop = asyncio.new_event_loop()

        async def second():
            return await read

        async def restore():
            asyncio.ensure_future(second())
            await asyncio.sleep(0)
            raise OSError("the first read failed")

        with pytest.raises(OSError):
            loop.run_until_complete(restore())
        loop.close()
        return promise, read, loop

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", lambda hook_args: unraisable.append(str(hook_args.exc_value)))
    promise, read, _ = failed_restore()
    promise.set_result(1)  # the late read: into the closed loop
    assert unraisable == ["Event loop is closed"]
    unraisable.clear()
    with tidy_event_loops():
        promise, read, loop = failed_restore()
    assert read.cancelled()  # cancelled before the loop closed
    promise.set_result(1)
    assert loop.call_soon_threadsafe(print) is None  # a callback on its way as the loop closed: dropped
    assert unraisable == []
    plain = asyncio.new_event_loop()
    plain.close()
    assert not isinstance(plain, type(loop))  # only restores get such loops


def test_reads_that_fail_after_the_restore_failed_log_nothing(caplog):
    """A second read failing once `gather` has already raised leaves a task whose exception
    nobody retrieves; asyncio logs its traceback when it is collected. The restore has
    raised the CheckpointError already: in a restore's loop the log is dropped."""
    import asyncio
    import gc

    from mirror.runs.checkpoints import tidy_event_loops

    def failed_restore():
        loop = asyncio.new_event_loop()

        async def second():
            raise OSError("the second read failed too")

        async def restore():
            asyncio.ensure_future(second())
            await asyncio.sleep(0)
            await asyncio.sleep(0)  # the second read has failed, unawaited
            raise OSError("the first read failed")

        with pytest.raises(OSError, match="first"):
            loop.run_until_complete(restore())
        loop.close()
        gc.collect()

    def logged():  # this test's own task only: earlier tests' leftovers may be collected here
        return [r.getMessage().splitlines()[0] for r in caplog.records if "second read failed too" in r.getMessage()]

    with caplog.at_level("ERROR", logger="asyncio"):
        failed_restore()
        assert logged() == ["Task exception was never retrieved"]
        caplog.clear()
        with tidy_event_loops():
            failed_restore()
        assert logged() == []
