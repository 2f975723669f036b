"""Shared test fixtures, and a JAX compilation cache on disk for the whole session.

Datasets, the trained tiny run and the tiny RL run are built once per session
(session-scoped fixtures), by whichever pytest-xdist worker asks first, in a directory all
the workers share (`built_once`); tests that change them work on a copy. The RL tests use the one
tiny RL config (`TINY_RL`) wherever they can, so each of its programs compiles once (a
new shape or population size is a new compile). A test that takes more than 2 s on a warm 2-core CPU, or starts a process, is marked `slow`:

    uv run pytest                 # everything (CI, the README's command)
    uv run pytest -m "not slow"   # the developer loop

The compilation cache lives in pytest's cache directory (`.pytest_cache/`), so a second
session, and the subprocesses a test starts (they inherit `JAX_COMPILATION_CACHE_DIR`),
load compiled programs instead of compiling them again. Set `MIRROR_TEST_JAX_CACHE=0` to
turn it off, or to a directory to put it there; `pytest --cache-clear` empties it.

The suite compiles with XLA's backend optimisation off and XLA:CPU's classic emitters in
place of its fusion emitters (`TEST_XLA_FLAGS`): its programs are small and run for moments,
so a cold session is bound by single-threaded XLA compilation; level 0 compiles about a
third faster, and the classic emitters another third (`test_rl.py` cold: 101 -> 63 CPU-s).
Every comparison a test makes is between programs compiled the same way (a subprocess gets
the flags through `XLA_FLAGS`, see `xla_env`). `MIRROR_TEST_XLA_FLAGS` replaces them (set
it empty for XLA's defaults).
"""

import faulthandler
import json
import os
import shutil
from pathlib import Path

import pytest

# The tiny dataset of the training, analysis and sweep tests: 20,000 rows, test shares
# chosen so that every scenario group gets a few hundred rows.
TINY_DATA = [
    "--data.rows", "20000", "--data.test_rows", "500", "--data.games", "256",
    "--data.rounds_per_chunk", "64", "--data.test_label_shares", "[0.4,0.4,0.15,0.05]",
]  # fmt: skip
# The small dataset of the pipeline and `mirror run` tests: 12,000 rows.
SMALL_DATA = [
    "--data.rows", "12000", "--data.test_rows", "400", "--data.games", "128",
    "--data.rounds_per_chunk", "64", "--data.test_label_shares", "[0.4, 0.4, 0.15, 0.05]",
]  # fmt: skip
# The tiny run: 3 epochs on 4,000 training rows, lr high enough to learn in a few epochs.
TINY_TRAIN = ["--train.max_train_rows", "4000", "--train.lr", "1.0e-3", "--train.epochs", "3"]
# The tiny RL run: 16 games x 8 turns per update, 6 updates, a checkpoint every 2 (three
# checkpoints, so a run stopped after one still has two intervals to go); the agents are
# scored on 8 games x one 200-turn episode, probe set (b) is 4 games x 16 turns.
# The tiny RL runs start from the default game's config, not `mirror rl`'s default (the
# stakes quickstart, a population of four): each test sets the members it needs.
RL_DEFAULT_GAME = str(Path(__file__).resolve().parents[1] / "configs" / "rl_default_game.yaml")
TINY_RL = {
    "num_envs": 16, "num_steps": 8, "updates": 6, "checkpoint_every": 2, "num_minibatches": 2, "update_epochs": 2,
    "eval_games": 8, "eval_turns": 200, "probe_games": 4, "probe_turns": 16,
}  # fmt: skip


CLASSIC_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
TEST_XLA_FLAGS = f"--xla_backend_optimization_level=0 {CLASSIC_EMITTERS}"


def xla_env(devices: int | None = None, **extra: str) -> dict:
    """The environment for a subprocess that runs JAX: this session's XLA flags, plus
    `devices` simulated CPU devices, plus `extra` variables."""
    flags = os.environ.get("XLA_FLAGS", "")
    if devices is not None:
        flags = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    return {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu", **extra}


def _jax_cache_dir(config: pytest.Config) -> Path | None:
    setting = os.environ.get("MIRROR_TEST_JAX_CACHE", "")
    if setting == "0":
        return None
    if setting:
        return Path(setting).absolute()
    if getattr(config, "cache", None) is None:  # pytest -p no:cacheprovider
        return None
    # One cache for all pytest-xdist workers: a program one worker compiled, the other
    # loads. JAX writes a cache file in place, so every read and write holds the cache's
    # file lock (`JAX_COMPILATION_CACHE_MAX_SIZE`, see pytest_configure).
    return Path(config.cache.mkdir("jax-compilation-cache"))


_CRASH_STREAM: list = []  # the file the crash dump goes to, kept open for the session


@pytest.hookimpl(trylast=True)  # after pytest's faulthandler plugin has enabled its dump
def pytest_configure(config: pytest.Config) -> None:
    # A crash in native code (a segmentation fault) prints the Python stack of the thread
    # that crashed, alone: pytest dumps every thread, and with W&B's and Orbax's idle
    # threads listed first, CI's log extract ended before the one that crashed.
    if faulthandler.is_enabled():
        _CRASH_STREAM.append(os.fdopen(os.dup(2), "w"))  # stderr (output capture is off here)
        faulthandler.enable(file=_CRASH_STREAM[-1], all_threads=False)

    # No test may fail for taking long on a loaded machine: hypothesis' per-example deadline
    # and its "too slow" health check are off for every test (a test's own @settings adds to this).
    from hypothesis import HealthCheck, settings

    settings.register_profile("mirror", deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("mirror")

    # Before JAX is imported (test modules import it later): XLA reads XLA_FLAGS once.
    flags = os.environ.get("MIRROR_TEST_XLA_FLAGS", TEST_XLA_FLAGS)
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()

    cache = _jax_cache_dir(config)
    if cache is None:
        return
    # Before JAX is imported (test modules import it later): the environment reaches
    # subprocesses too. Programs that compile in under 0.1 s are not worth a file.
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
    # A size limit turns on the cache's file lock (the `filelock` package) around every read
    # and write, so that the workers and their subprocesses can share it: 64 GiB is never reached.
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(64 << 30))
    import jax

    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_compilation_cache_max_size", int(os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"]))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


# ----------------------------------------------------------------------------- scheduling

# Seconds each test file takes (tests/test_<name>.py): its developer loop (-m "not slow",
# warm compilation cache), and all of it in a cold two-worker session, setup included.
# pytest-xdist's `--dist loadfile` hands out whole files in collection order, so the longest
# go first and the short ones fill the gaps at the end (`--no-loadscope-reorder` keeps this
# order; xdist's own puts the files with the most tests first, which left the few long ones
# to run alone at the end). An estimate, not a measurement: a file not listed counts as 5 s.
FILE_SECONDS = {
    "rl_run": (1, 240), "sweep": (1, 206), "rl": (12, 149), "train": (6, 147), "errors": (1, 136),
    "rl_hosts": (0, 96), "transformer": (5, 118), "rl_critic": (3, 88), "rl_analysis": (8, 85),
    "obs_width": (1, 77), "rl_transformer": (1, 77), "live_tracking": (0, 73), "ablate": (7, 70),
    "probe_labels": (5, 55), "sweep_rl": (1, 54), "stakes": (2, 44), "significance": (5, 43),
    "reference_diff": (2, 42), "cmni": (9, 38), "cli_and_rollout": (2, 35), "rl_speed_paths": (4, 31),
    "data_pipeline": (2, 29), "sweep_compare": (0, 25), "experiment": (0, 22), "house": (3, 21),
    "play_agent": (3, 20), "seed_verdicts": (1, 19), "play_and_figures": (5, 19), "properties": (4, 17),
    "rl_scripted": (3, 15), "class_weights": (3, 15), "processing": (4, 12), "analysis": (1, 12),
    "cmni_variants": (3, 12), "dataset_phases": (3, 11), "hypotheses": (2, 9), "rl_tracking": (0, 8),
    "labels": (6, 6), "scroll_anchor": (4, 5), "rules": (3, 5), "api": (2, 80), "tracking": (2, 5),
    "soo": (8, 29), "seat_view": (10, 18), "learner_curves": (1, 12), "central_critic": (10, 11), "soo_pairs": (10, 10),
    "deviation": (8, 8), "sensitivity": (1, 1),
    # test_api (33 s) goes out early, so that the RL example finds its population compiled
    "examples": (0, 36),
}  # fmt: skip


@pytest.hookimpl(trylast=True)  # after `-m` and `-k` have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first (see FILE_SECONDS); the tests of a file keep their order."""
    with_slow = {item.path.stem for item in items if item.get_closest_marker("slow")}

    def seconds(stem: str) -> float:
        fast, everything = FILE_SECONDS.get(stem.removeprefix("test_"), (5, 5))
        return everything if stem in with_slow else fast

    items.sort(key=lambda item: -seconds(item.path.stem))


# ----------------------------------------------------------------------------- datasets


def shared_dir(tmp_path_factory) -> Path:
    """A directory of this pytest session shared by all its pytest-xdist workers (each
    worker's basetemp is a folder of the session's)."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared"
    shared.mkdir(exist_ok=True)
    return shared


def built_once(tmp_path_factory, name: str, make) -> Path:
    """`shared_dir / name`, made by `make(path)` once for the whole session: the first
    worker to ask makes it while holding a file lock, the others wait for the lock and
    find it done (a worker that failed half way leaves no "done" mark: the next one starts over)."""
    from filelock import FileLock

    shared = shared_dir(tmp_path_factory)
    path, done = shared / name, shared / f"{name}.done"
    with FileLock(shared / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)
            make(path)
            done.touch()
    return path


@pytest.fixture(scope="session")
def dataset_cache(tmp_path_factory) -> Path:
    """One dataset cache directory for the session, shared by the workers: a config built
    once is reused (the dataset cache is safe for concurrent writers)."""
    path = shared_dir(tmp_path_factory) / "datasets"
    path.mkdir(exist_ok=True)
    return path


def build(data_args, cache: Path):
    from mirror.data.pipeline import build_dataset
    from mirror.runs.config import load_config

    return build_dataset(load_config(None, [*data_args, "--data.cache_dir", str(cache)]))[0]


def build_shared(data_args, cache: Path, name: str):
    """`build`, one worker at a time: the first builds the dataset, the others load it."""
    from filelock import FileLock

    with FileLock(cache.parent / f"{name}.lock"):
        return build(data_args, cache)


@pytest.fixture(scope="session")
def tiny_dataset(dataset_cache):
    """The 20,000-row dataset (spec §5), in `dataset_cache`."""
    return build_shared(TINY_DATA, dataset_cache, "tiny_dataset")


@pytest.fixture(scope="session")
def small_dataset(dataset_cache):
    """The 12,000-row dataset, in `dataset_cache`."""
    return build_shared(SMALL_DATA, dataset_cache, "small_dataset")


# ----------------------------------------------------------------------------- runs


def run_epochs(config, train, val, epochs, members=None):
    """`epochs` epochs of `mirror.train.loop.make_train(config, train, members)`, evaluated
    on `val` after each: (trainer, final state, [(epoch metrics, val metrics)])."""
    from mirror.train.loop import make_train

    trainer = make_train(config, train, members)
    state, history = trainer.init(), []
    for epoch in range(1, epochs + 1):
        state, metrics = trainer.epoch(state, epoch)
        history.append((metrics, trainer.evaluate(state.params, val)))
    return trainer, state, history


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_dataset, dataset_cache) -> Path:
    """`mirror train` for 3 epochs on the tiny dataset. Shared: read it, or copy it
    (`copy_run`) before changing anything in it."""
    from mirror.cli import main

    def make(path):
        assert main(["train", "--run-dir", str(path / "run"), *TINY_DATA, "--data.cache_dir", str(dataset_cache), *TINY_TRAIN]) == 0

    return built_once(tmp_path_factory, "tiny_run", make) / "run"


def copy_run(run_dir: Path, target: Path) -> Path:
    """A private copy of a run directory (its dataset stays shared, read-only)."""
    shutil.copytree(run_dir, target)
    return target


# ----------------------------------------------------------------------------- RL runs


def rl_values(cache: Path, **rl) -> dict:
    """The tiny RL config as a dict (`load_config(None, values)`), `rl` fields overriding
    TINY_RL; its probe set (a) is the tiny dataset (TINY_DATA), in `cache`."""
    data = dict(zip((a[len("--data.") :] for a in TINY_DATA[::2]), (yaml_value(v) for v in TINY_DATA[1::2])))
    return {
        "data": {**data, "cache_dir": str(cache)},
        "rl": {**TINY_RL, **rl},
        "analysis": {"permutations": 4, "init_seeds": 2},
        "tracking": {"mode": "disabled"},
    }


def yaml_value(text: str):
    import yaml

    return yaml.safe_load(text)


def overrides(values: dict, prefix: str = "") -> list[str]:
    """{"rl": {"updates": 4}} -> ["--rl.updates", "4"] (values as YAML/JSON)."""
    out = []
    for key, value in values.items():
        if isinstance(value, dict):
            out += overrides(value, f"{prefix}{key}.")
        else:
            out += [f"--{prefix}{key}", json.dumps(value)]
    return out


@pytest.fixture(scope="session")
def tiny_rl_run(tmp_path_factory, tiny_dataset, dataset_cache) -> Path:
    """`mirror rl` end to end (dataset, training, analysis, report) on the tiny RL config.
    Shared: read it, or copy it (`copy_run`) before changing anything in it."""
    from mirror.cli import main

    def make(path):
        assert main(["rl", "--config", RL_DEFAULT_GAME, "--run-dir", str(path / "run"), *overrides(rl_values(dataset_cache))]) == 0

    return built_once(tmp_path_factory, "tiny_rl_run", make) / "run"


# ----------------------------------------------------------------------------- transformer runs

# The tiny transformer run: one block, d = 8 (16 pooled hidden units), a
# population of two on 1,000 training rows of the tiny dataset, 5 epochs of batch 2 (long
# enough for the resume test to kill a copy of it in the middle).
TINY_TRANSFORMER = [
    "--model.kind", "transformer", "--model.transformer.depth", "1", "--model.transformer.d_model", "8",
    "--train.population_seeds", "[0, 1]", "--train.max_train_rows", "1000", "--train.batch_size", "2",
    "--train.epochs", "5", "--train.lr", "3.0e-3",
]  # fmt: skip


def tiny_transformer_args(run_dir: Path, cache: Path) -> list[str]:
    """`mirror train` arguments of the tiny transformer run into `run_dir`."""
    return ["train", "--run-dir", str(run_dir), *TINY_DATA, "--data.cache_dir", str(cache), *TINY_TRANSFORMER]


@pytest.fixture(scope="session")
def tiny_transformer_run(tmp_path_factory, tiny_dataset, dataset_cache) -> Path:
    """`mirror train` of the tiny transformer run. Shared: read it, or copy it (`copy_run`)
    before changing anything in it."""
    from mirror.cli import main

    def make(path):
        assert main(tiny_transformer_args(path / "run", dataset_cache)) == 0

    return built_once(tmp_path_factory, "tiny_transformer_run", make) / "run"


@pytest.fixture
def load_script():
    """A loader of scripts/NAME.py as a module (the scripts are not a package)."""
    import importlib.util

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
