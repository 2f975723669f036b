"""Datasets on disk: a directory of `.npy` arrays plus `manifest.json` (spec §5, issue 3).

Written to a temporary directory and renamed into place, so an interrupted write never
leaves a directory that looks complete. Loading checks shapes, dtypes and sha256
checksums, and names the file that fails. Arrays load with `allow_pickle=False` only.
"""

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mirror.errors import DatasetError  # noqa: F401  (re-exported)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"

# name -> (dtype, trailing shape)
ARRAYS = {
    "inputs": (np.int8, (100,)),
    "labels": (np.int8, ()),
    "scenarios": (np.int8, ()),
    "idle_shown": (np.bool_, (2,)),
    "splits": (np.int8, ()),
}


class Dataset(NamedTuple):
    """inputs int8[rows, 100]; labels, scenarios, splits int8[rows]; idle_shown bool[rows, 2]."""

    inputs: np.ndarray
    labels: np.ndarray
    scenarios: np.ndarray
    idle_shown: np.ndarray
    splits: np.ndarray
    manifest: dict
    path: Path


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
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
        full = dict(manifest, format_version=FORMAT_VERSION, sha256=checksums)
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
    for name, (dtype, tail) in ARRAYS.items():
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
            raise DatasetError(
                f"{file} has dtype {array.dtype} and shape {array.shape}; expected {np.dtype(dtype)} and {(rows,) + tail}"
            )
        arrays[name] = array
    return Dataset(**arrays, manifest=manifest, path=path)
