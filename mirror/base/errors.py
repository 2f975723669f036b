"""The error types of every stage, at the bottom of the import graph.

Library code raises a subclass of `MirrorError` whose message names the bad field, file
or directory and, where there is one, the fix. The command line (`mirror.cli`) catches
`MirrorError` and prints it as one line, `mirror CMD: error: ...`, with exit code 2.
Anything else that escapes is a bug and keeps its traceback.
"""

from typing import Any


class MirrorError(Exception):
    """Base class: an error the user can fix, reported as one line (exit code 2)."""


class UsageError(MirrorError, ValueError):
    """Bad command-line input, reported before any work starts."""


class ConfigError(MirrorError, ValueError):
    """A config file or field is unreadable, unknown or has a bad value."""


class DatasetError(MirrorError, RuntimeError):
    """A dataset directory is missing, incomplete, corrupted or cannot be written."""


class TrainError(MirrorError, RuntimeError):
    """A run cannot start, continue or be read; the message names the cause."""


class CheckpointError(TrainError):
    """A checkpoint exists but cannot be read (truncated or corrupted files)."""


class RunInUseError(TrainError):
    """Another live process holds the run directory's lock."""


def require(ok: bool, field: str, value: Any, allowed: str) -> None:
    """Raise `ConfigError` naming `field`, its `value` and what is `allowed`, unless `ok`."""
    if not ok:
        raise ConfigError(f"{field} = {value!r} is invalid: expected {allowed}")
