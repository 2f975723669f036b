"""Datasets on disk: a directory of `.npy` arrays plus `manifest.json` (spec §5, issue 3).

Written to a temporary directory and renamed into place, so an interrupted write never
leaves a directory that looks complete. The temporary directory's name records its
writer's pid and host; a later write deletes the ones whose writer died (a kill mid-write).
Loading checks shapes, dtypes and sha256 checksums, and the manifest's counts against the
arrays, and names the file or field that fails. Arrays load with `allow_pickle=False` only.

The model inputs are int8[rows, 3W+4] (100 at the spec's world width 32): the manifest
records the dataset's `input_width`, which loading checks against the inputs array and
against the world width of the generating config. Manifests written before the width was
recorded get 3W+4 from their config, so width-32 datasets keep their format (version 1).
"""

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mirror.env.constants import OBS_SIZE, obs_size, world_width_of
from mirror.errors import DatasetError
from mirror.files import make_writer_dir, remove_stale_writer_dirs, require_writable

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
INPUT_WIDTH = "input_width"  # a trailing dimension that is the dataset's own (see `input_width`)

# name -> (dtype, trailing shape)
ARRAYS = {
    "inputs": (np.int8, (INPUT_WIDTH,)),
    "labels": (np.int8, ()),
    "scenarios": (np.int8, ()),
    "idle_shown": (np.bool_, (2,)),
    "splits": (np.int8, ()),
}


class Dataset(NamedTuple):
    """inputs int8[rows, 3W+4]; labels, scenarios, splits int8[rows]; idle_shown bool[rows, 2]."""

    inputs: np.ndarray
    labels: np.ndarray
    scenarios: np.ndarray
    idle_shown: np.ndarray
    splits: np.ndarray
    manifest: dict
    path: Path

    @property
    def input_width(self) -> int:
        """3W + 4: the number of model inputs."""
        return int(self.inputs.shape[1])

    @property
    def world_width(self) -> int:
        return world_width_of(self.input_width)


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
        full = dict(manifest, format_version=FORMAT_VERSION, sha256=checksums, **{INPUT_WIDTH: width})
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
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{path}: format_version {manifest.get('format_version')} != {FORMAT_VERSION}")
    arrays = {}
    rows = manifest.get("rows")
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
                # Before issue 11, narrow worlds were stored as 100 columns with the label among them.
                hint = f" (written before the world-width fix, with the label leaked into the inputs: delete {path} and build it again)"
            raise DatasetError(
                f"{file} has dtype {array.dtype} and shape {array.shape}; expected {np.dtype(dtype)} and {(rows,) + tail}{hint}"
            )
        arrays[name] = array
    if "counts" in manifest:
        _check_counts(path, manifest["counts"], counts_table(arrays))
    return Dataset(**arrays, manifest=manifest, path=path)


def counts_table(arrays: dict) -> dict:
    """{split: {label: {scenario: count}}} with names from the spec."""
    from mirror.data.labels import SCENARIO_NAMES
    from mirror.data.split import SPLIT_NAMES
    from mirror.env.constants import ACTION_NAMES

    table = {}
    key = (arrays["splits"].astype(np.int64) * 4 + arrays["labels"]) * 4 + arrays["scenarios"]
    counts = np.bincount(key, minlength=len(SPLIT_NAMES) * 16).reshape(len(SPLIT_NAMES), 4, 4)
    for s, split in enumerate(SPLIT_NAMES):
        table[split] = {
            ACTION_NAMES[a]: {SCENARIO_NAMES[c]: int(counts[s, a, c]) for c in range(4)} for a in range(4)
        }
    return table


def _check_counts(path: Path, recorded, actual: dict, field: str = "counts") -> None:
    """The manifest's counts are recomputed from the arrays on every load: an edited
    manifest must not report a dataset that is not there."""
    fix = "the manifest was edited: restore it or regenerate the dataset (mirror generate --force)"
    if isinstance(actual, dict):
        if not isinstance(recorded, dict) or set(recorded) != set(actual):
            raise DatasetError(f"{path / MANIFEST}: {field} should have the keys {sorted(actual)}; {fix}")
        for key in actual:
            _check_counts(path, recorded[key], actual[key], f"{field}.{key}")
    elif recorded != actual:
        raise DatasetError(f"{path / MANIFEST}: {field} = {recorded!r} but the arrays hold {actual}; {fix}")
