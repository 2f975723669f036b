"""RL across processes: jax.distributed on this machine (CPU, one simulated device per
process, a simulated two-task Slurm job as in test_sweep's multi-host test).

`mirror rl --distributed` splits one population over every process's devices: each
process trains its own members, process 0 writes the run's files, and all processes save
each checkpoint together; the run is bit-identical to the same population trained in one
process. `mirror sweep --distributed` with `mode: rl` gives every process its own RL
populations, checkpointed alone (.npz items), with the same results as one process."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import yaml
from conftest import RL_DEFAULT_GAME, TINY_RL, overrides, rl_values, xla_env

from mirror.runs.checkpoints import RL_ITEMS, open_rl_manager, restore_items
from mirror.runs.config import load_config
from mirror.runs.rl_files import read_baselines
from mirror.runs.rl_run import rl_run
from mirror.sweep.spec import load_sweep
from mirror.sweep.trial import trial_dir

REPO = Path(__file__).resolve().parents[1]
SLURM_PORTS = 61440  # Slurm's coordinator port: 61440 + job id % 4096 (jax's SlurmCluster)


def free_slurm_job_id() -> str:
    """A job id whose coordinator port nothing on this machine listens on now."""
    for k in range(4096):
        offset = (os.getpid() + k) % 4096
        with socket.socket() as probe:
            try:
                probe.bind(("localhost", SLURM_PORTS + offset))
            except OSError:
                continue
        return str(4096 + offset)
    raise AssertionError("no free port for the coordinator")


def two_processes(args: list[str], cwd: Path, script: str | None = None) -> list[str]:
    """`mirror ARGS` (or `python -c SCRIPT ARGS`) as the two tasks of a Slurm job on this
    machine, one CPU device each; their logs once both have exited (both must succeed)."""
    job = free_slurm_job_id()
    procs = []
    for rank in (0, 1):
        env = xla_env(devices=1, SLURM_JOB_ID=job, SLURM_NTASKS="2", SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank),
                      SLURM_STEP_NODELIST="localhost", PYTHONUNBUFFERED="1")  # fmt: skip
        cmd = [sys.executable, *(["-m", "mirror.cli"] if script is None else ["-c", script]), *args]
        procs.append(subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        logs = [p.communicate(timeout=900)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], "\n=====\n".join(log[-3000:] for log in logs)
    return logs


def checkpoints(run_dir: Path) -> dict:
    """update -> every item of its checkpoint, read in this (single) process."""
    manager = open_rl_manager(run_dir, read_only=True)
    try:
        return {u: restore_items(manager, u, dict.fromkeys(RL_ITEMS)) for u in manager.all_steps()}
    finally:
        manager.close()


def set_aside_items(run_dir: Path, update: int, items: tuple) -> dict:
    """Items of checkpoint `update` that a resume set aside (corrupt-checkpoints/), read in this process."""
    options = ocp.CheckpointManagerOptions(read_only=True, create=False, enable_async_checkpointing=False)
    manager = ocp.CheckpointManager(run_dir / "corrupt-checkpoints", options=options)
    try:
        return restore_items(manager, update, dict.fromkeys(items))
    finally:
        manager.close()


def lines_without_wall(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k != "wall_s"} for x in path.read_text().splitlines()]


def _close(x, y) -> bool:
    """x == y, floats to rounding (rtol 1e-4), through lists and dicts."""
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(_close(x[k], y[k]) for k in x)
    if isinstance(x, list):
        return isinstance(y, list) and len(x) == len(y) and all(map(_close, x, y))
    if isinstance(x, float) and isinstance(y, float):
        return x == pytest.approx(y, rel=1e-4, abs=1e-6, nan_ok=True)
    return x == y


def assert_same_training(a: Path, b: Path, updates: list[int], same_config: bool = True, exact: bool = True) -> None:
    """Run `b` holds run `a`'s checkpoints `updates` bit for bit (every array of every item,
    in either format; the metadata, whose config hashes differ unless `same_config`), its
    metrics lines up to the last of them and its baselines. `exact=False`: integers bit for
    bit, floats to rounding (two processes compile other programs than one, and the suite's
    XLA flags, optimisation level 0, let them round differently)."""
    ca, cb = checkpoints(a), checkpoints(b)
    assert sorted(cb) == updates
    hashes = () if same_config else ("config_hash", "rl_config_hash")
    same = (lambda x, y: x == y) if exact else _close
    for u in updates:
        for item in ("params", "rl_state", "probe"):  # a .npz item reads as its flat list of arrays
            x, y = jax.tree.leaves(ca[u][item]), jax.tree.leaves(cb[u][item])
            assert len(x) == len(y), item
            for xi, yi in zip(x, y):
                if exact or not np.issubdtype(np.asarray(xi).dtype, np.floating):
                    np.testing.assert_array_equal(xi, yi)
                else:
                    np.testing.assert_allclose(xi, yi, rtol=1e-4, atol=1e-6)
        assert same({k: v for k, v in ca[u]["metadata"].items() if k not in hashes}, {k: v for k, v in cb[u]["metadata"].items() if k not in hashes})
    assert same(lines_without_wall(b / "metrics.jsonl"), [x for x in lines_without_wall(a / "metrics.jsonl") if x["epoch"] <= updates[-1]])
    assert same(lines_without_wall(b / "rl_metrics.jsonl"), [x for x in lines_without_wall(a / "rl_metrics.jsonl") if x["update"] <= updates[-1]])
    assert same(read_baselines(a), read_baselines(b))


ALL_UPDATES = list(range(TINY_RL["checkpoint_every"], TINY_RL["updates"] + 1, TINY_RL["checkpoint_every"]))


# `mirror rl --distributed` in each of the two processes, then process 0 damages the last
# checkpoint's probe and both run `mirror rl --distributed --resume`. A process joins
# jax.distributed once, so the resume reuses the first run's mesh (and its compiled
# programs), and the first run's closing shutdown is a barrier instead.
FRESH_THEN_RESUME = """
import sys
from pathlib import Path

import jax
from jax.experimental import multihost_utils

import mirror.cli.rl as cli_rl
from mirror.cli import main

sys.path.insert(0, "tests")
from test_errors import truncate_item

run_dir, args = Path(sys.argv[1]), sys.argv[2:]
meshes, real_mesh, real_shutdown = [], cli_rl.distributed_mesh, jax.distributed.shutdown
cli_rl.distributed_mesh = lambda: meshes[0] if meshes else meshes.append(real_mesh()) or meshes[0]
jax.distributed.shutdown = lambda: multihost_utils.sync_global_devices("first run done")
assert main(["rl", "--distributed", "--run-dir", str(run_dir), *args]) == 0
if jax.process_index() == 0:
    truncate_item(run_dir / "checkpoints" / "6", "probe")
multihost_utils.sync_global_devices("damaged")
print("=== resume ===", flush=True)
jax.distributed.shutdown = real_shutdown
assert main(["rl", "--distributed", "--resume", str(run_dir)]) == 0
"""


@pytest.mark.slow  # two processes, and the population trained once more in this one
def test_an_rl_population_split_over_two_processes_equals_one_process(tiny_dataset, dataset_cache, tmp_path):
    """Two members, one on each process's device: the run, and its resume after a damaged
    checkpoint, equal the same population trained in this process."""
    values = rl_values(dataset_cache, population_seeds=[0, 1])  # one member on each process's device
    one = tmp_path / "one"
    rl_run(load_config(RL_DEFAULT_GAME, overrides(values)), one, log=lambda line: None)  # the config `mirror rl --config` composes
    two = tmp_path / "two"
    logs = two_processes([str(two), "--config", RL_DEFAULT_GAME, *overrides(values)], REPO, script=FRESH_THEN_RESUME)
    (fresh, resumed) = zip(*(log.split("=== resume ===\n") for log in logs))
    for log in fresh:
        assert "2 member(s) over 2 devices of 2 processes" in log, log[-3000:]
    assert "report: " in fresh[0] and "report: " not in fresh[1]  # process 0 analyses
    for item in ("params", "rl_state", "probe"):  # saved by both processes together, each its own shards
        assert {"ocdbt.process_0", "ocdbt.process_1"} <= {p.name for p in (two / "checkpoints" / "6" / item).iterdir()}, item

    # Resumed by both processes after the last checkpoint's probe was damaged: process 0 sets
    # it aside, both restore checkpoint 4 and train updates 5 and 6 again, bit for bit.
    assert f"checkpoint {two / 'checkpoints' / '6'} cannot be read: its probe item" in resumed[0]
    assert "warning:" not in resumed[1]
    for log in resumed:
        assert f"resuming {two} after update 4" in log, log[-3000:]
    assert "report: " in resumed[0] and "report: " not in resumed[1]
    assert_same_training(one, two, ALL_UPDATES, exact=False)  # the games and actions bit for bit, floats to rounding
    # and the first run's checkpoint 6, set aside, held the same arrays but for its damaged probe
    reference, set_aside = checkpoints(one)[6], set_aside_items(two, 6, ("params", "rl_state"))
    for item, arrays in set_aside.items():
        for x, y in zip(jax.tree.leaves(reference[item]), jax.tree.leaves(arrays), strict=True):
            if np.issubdtype(np.asarray(x).dtype, np.floating):
                np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
            else:
                np.testing.assert_array_equal(x, y)
    assert (two / "report.md").is_file() and len((two / "cmni.csv").read_text().splitlines()) == 1 + 3 * 2


@pytest.mark.slow  # two processes
def test_an_rl_sweep_over_two_processes_trains_each_population_alone(tiny_rl_run, dataset_cache, tmp_path):
    """Two RL populations (rl.updates 2 and 6: no member setting differs, so they cannot share
    a program), one per process: each process checkpoints its own alone (.npz items), and
    each equals the tiny RL run (`tiny_rl_run`, the same config trained in this process)
    for as many updates as it has."""
    spec = {**rl_values(dataset_cache), "name": "rl-hosts", "sweep": {"mode": "rl", "grid": {"rl.updates": [2, 6]}, "seeds": [0], "trial_figures": False}}
    path = tmp_path / "rl-hosts.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    logs = two_processes(["sweep", str(path), "--sweep-dir", str(out), "--distributed"], REPO)
    assert [int(log.split("ran ")[1].split(" trial")[0]) for log in logs] == [1, 1]
    assert "summary: 2 of 2 trials finished" in logs[0]
    sweep = load_sweep(path)
    for trial in sweep.trials:
        pointer = json.loads((trial_dir(out, trial) / "population.json").read_text())
        run_dir = Path(pointer["run_dir"])
        updates = ALL_UPDATES[: trial.config.rl["updates"] // TINY_RL["checkpoint_every"]]
        assert all((run_dir / "checkpoints" / str(u) / item / "arrays.npz").is_file() for u in updates for item in ("params", "rl_state", "probe"))
        assert_same_training(tiny_rl_run, run_dir, updates, same_config=False)
