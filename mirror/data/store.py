"""Datasets on disk: a directory of `.npy` arrays plus `manifest.json` (spec §5).

Written to a temporary directory and renamed into place, so an interrupted write never
leaves a directory that looks complete. The temporary directory's name records its
writer's pid and host; a later write deletes the ones whose writer died (a kill mid-write).
Loading checks shapes, dtypes and sha256 checksums, the value ranges of the metadata, and
the manifest's tallies (`tallies.py`: counts per split x label x scenario, idle codes,
positions, episode phases) against the arrays, and names the file or field that fails.
`write_dataset` computes those tallies itself, so every dataset on disk has them. Arrays
load with `allow_pickle=False` only.

Format 2 adds `positions.npy` (Frog's and Toad's true positions) and
`episode_rounds.npy` (each row's round within its episode), both metadata, never model
inputs, and rows spread evenly over the episode (`rollout.burn_in`). Format-1 datasets
are refused with a message saying to regenerate them.

The model inputs are int8[rows, 3W+4] (100 at the spec's world width 32): the manifest
records the dataset's `input_width`, which loading checks against the inputs array and
against the world width of the generating config. Manifests written before the width was
recorded get 3W+4 from their config.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mirror.base.errors import DatasetError
from mirror.base.files import make_writer_dir, remove_stale_writer_dirs, require_writable
from mirror.data.tallies import check_ranges, check_tallies, tallies
from mirror.env.constants import OBS_SIZE, obs_size, world_width_of

FORMAT_VERSION = 2  # 2: positions.npy, episode_rounds.npy, staggered phases, tallies
MANIFEST = "manifest.json"
INPUT_WIDTH = "input_width"  # a trailing dimension that is the dataset's own (see `input_width`)

# name -> (dtype, trailing shape)
ARRAYS = {
    "inputs": (np.int8, (INPUT_WIDTH,)),
    "labels": (np.int8, ()),
    "scenarios": (np.int8, ()),
    "idle_shown": (np.bool_, (2,)),
    "splits": (np.int8, ()),
    "positions": (np.int8, (2,)),
    "episode_rounds": (np.int32, ()),
}


class Dataset(NamedTuple):
    """inputs int8[rows, 3W+4]; labels, scenarios, splits int8[rows]; idle_shown bool[rows, 2];
    positions int8[rows, 2] (Frog's, Toad's true position: metadata, never a model input);
    episode_rounds int32[rows] (the row's round, Frog's decision, within its episode)."""

    inputs: np.ndarray
    labels: np.ndarray
    scenarios: np.ndarray
    idle_shown: np.ndarray
    splits: np.ndarray
    positions: np.ndarray
    episode_rounds: np.ndarray
    manifest: dict
    path: Path

    @property
    def input_width(self) -> int:
        """3W + 4: the number of model inputs."""
        return int(self.inputs.shape[1])

    @property
    def world_width(self) -> int:
        return world_width_of(self.input_width)


def episode_rounds_of(manifest: dict, rounds: np.ndarray | None = None, where="the manifest") -> int:
    """Rounds per episode: episode_turns / 2 of the generating config; without a config,
    the recorded phase coverage's, else (when writing) one more than the largest round."""
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    env = config.get("env") if isinstance(config.get("env"), dict) else {}
    turns = env.get("episode_turns")
    if turns is not None:
        if type(turns) is not int or turns < 2 or turns % 2:
            raise DatasetError(f"{where}: config.env.episode_turns must be an even integer >= 2, got {turns!r}")
        return turns // 2
    coverage = manifest.get("phase_coverage")
    recorded = coverage.get("episode_rounds") if isinstance(coverage, dict) else None
    if recorded is not None:
        if type(recorded) is not int or recorded < 1:
            raise DatasetError(f"{where}: phase_coverage.episode_rounds must be a positive integer, got {recorded!r}")
        return recorded
    if rounds is None:
        raise DatasetError(f"{where}: the field phase_coverage is missing; regenerate the dataset (mirror generate --force)")
    return int(rounds.max()) + 1 if rounds.size else 1


def _config_world_width(manifest: dict):
    env = manifest.get("config", {}).get("env", {}) if isinstance(manifest.get("config"), dict) else {}
    return env.get("world_width") if isinstance(env, dict) else None


def input_width(manifest: dict, where="the manifest") -> int:
    """The dataset's model-input width 3W+4: the recorded `input_width`, else 3W+4 of the
    generating config's `env.world_width`, else the spec's 100. Both, when present, agree."""
    world_width = _config_world_width(manifest)
    expected = None
    if world_width is not None:
        if type(world_width) is not int or world_width < 1:
            raise DatasetError(f"{where}: config.env.world_width must be a positive integer, got {world_width!r}")
        expected = obs_size(world_width)
    recorded = manifest.get(INPUT_WIDTH)
    if recorded is None:
        return OBS_SIZE if expected is None else expected
    try:
        if type(recorded) is not int:
            raise ValueError
        world_width_of(recorded)
    except ValueError:
        raise DatasetError(f"{where}: {INPUT_WIDTH} must be an integer 3W + 4, got {recorded!r}") from None
    if expected is not None and recorded != expected:
        raise DatasetError(
            f"{where}: {INPUT_WIDTH} {recorded} does not fit config.env.world_width {world_width} (3W + 4 = {expected})"
        )
    return recorded


def _trailing_shape(tail: tuple, width: int) -> tuple:
    return tuple(width if dim == INPUT_WIDTH else dim for dim in tail)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def write_dataset(path: Path, arrays: dict, manifest: dict, *, _crash_after: str | None = None) -> Path:
    """Atomically write `arrays` and `manifest` as directory `path` (which must not exist).

    `_crash_after` (tests only) raises after writing that array, simulating a crash.
    """
    path = Path(path).absolute()
    if path.exists():
        raise FileExistsError(f"{path} already exists; datasets are never overwritten")
    missing = sorted(set(ARRAYS) - set(arrays))
    if missing:
        raise ValueError(f"missing arrays: {missing}")
    width = int(np.shape(arrays["inputs"])[-1])
    try:
        input_width(dict(manifest, **{INPUT_WIDTH: width}))
    except DatasetError as err:
        raise ValueError(f"inputs of width {width} do not match the manifest: {err}") from None
    rows = int(np.shape(arrays["labels"])[0])
    uneven = [f"{name} {np.shape(arrays[name])[0]}" for name in ARRAYS if np.shape(arrays[name])[:1] != (rows,)]
    if uneven:
        raise ValueError(f"every array needs {rows} rows (as labels), got: {', '.join(uneven)}")
    if manifest.get("rows", rows) != rows:
        raise ValueError(f"the manifest says rows = {manifest['rows']!r} but the arrays hold {rows}")
    world_width = world_width_of(width)
    rounds = np.asarray(arrays["episode_rounds"])
    check_ranges(path, arrays, world_width, episode_rounds_of(manifest, rounds))
    counted = tallies(arrays, world_width, episode_rounds_of(manifest, rounds))
    require_writable(path.parent, "dataset cache directory", DatasetError)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_writer_dirs(path.parent, ".tmp-*")  # left by writers killed mid-write
    tmp = make_writer_dir(path.parent, f".tmp-{path.name}")
    try:
        checksums = {}
        for name in ARRAYS:
            file = tmp / f"{name}.npy"
            with open(file, "wb") as fh:
                np.save(fh, np.ascontiguousarray(arrays[name]), allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            checksums[f"{name}.npy"] = _sha256(file)
            if _crash_after == name:
                raise KeyboardInterrupt(f"simulated crash after {name}")
        full = dict(manifest, **counted, rows=rows, format_version=FORMAT_VERSION, sha256=checksums, **{INPUT_WIDTH: width})
        (tmp / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
        os.rename(tmp, path)  # atomic on one filesystem; fails if `path` appeared meanwhile
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_manifest(path: Path) -> dict:
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise DatasetError(f"{path} is not a complete dataset: {MANIFEST} is missing")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{file} is not valid JSON: {err}") from None


def load_dataset(path: str | Path, verify: bool = True) -> Dataset:
    """Load and check a dataset directory; `verify` also checks every sha256."""
    path = Path(path).absolute()
    manifest = read_manifest(path)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        older = isinstance(version, int) and version < FORMAT_VERSION
        older = " (written by an older mirror: delete it or run mirror generate --force)" if older else ""
        raise DatasetError(f"{path}: format_version {version!r} != {FORMAT_VERSION}{older}")
    arrays = {}
    rows = manifest.get("rows")
    if type(rows) is not int or rows < 0:
        raise DatasetError(f"{path / MANIFEST}: rows must be a non-negative integer, got {rows!r}")
    width = input_width(manifest, path / MANIFEST)
    for name, (dtype, tail) in ARRAYS.items():
        tail = _trailing_shape(tail, width)
        file = path / f"{name}.npy"
        if not file.is_file():
            raise DatasetError(f"{file} is missing")
        if verify and _sha256(file) != manifest["sha256"].get(f"{name}.npy"):
            raise DatasetError(f"{file} fails its sha256 check: the file is corrupted or was modified")
        try:
            array = np.load(file, allow_pickle=False)
        except ValueError as err:
            raise DatasetError(f"{file} cannot be read as a plain .npy array: {err}") from None
        if array.dtype != dtype or array.shape != (rows,) + tail:
            edited = array.dtype == dtype and array.shape[1:] == tail  # only the row count differs
            hint = f" ({MANIFEST} says rows = {rows!r}: was it edited?)" if edited else ""
            if name == "inputs" and array.ndim == 2 and array.shape[1] == OBS_SIZE != width:
                # Older datasets stored narrow worlds as 100 columns with the label among them.
                hint = f" (written before the world-width fix, with the label leaked into the inputs: delete {path} and build it again)"
            raise DatasetError(
                f"{file} has dtype {array.dtype} and shape {array.shape}; expected {np.dtype(dtype)} and {(rows,) + tail}{hint}"
            )
        arrays[name] = array
    # The manifest's tallies are recomputed from the arrays on every load: an edited
    # manifest must not report a dataset that is not there.
    world_width, rounds = world_width_of(width), episode_rounds_of(manifest, where=path / MANIFEST)
    check_ranges(path, arrays, world_width, rounds)
    check_tallies(path / MANIFEST, manifest, tallies(arrays, world_width, rounds))
    return Dataset(**arrays, manifest=manifest, path=path)
