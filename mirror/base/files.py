"""Guards around the directories mirror writes: writability checked before any work,
an exclusive lock per run directory, and temporary directories that name their writer.

- `require_writable` fails fast, before a dataset is generated or a model trained, rather
  than after the work when the first file is written.
- `lock_run_dir` creates the run directory (mkdir is atomic) and takes an exclusive
  `fcntl.flock` on `RUN_DIR/.lock`, so two processes never train the same run at once.
  The kernel drops the lock when its process dies (even by SIGKILL), so a crash never
  leaves a stale lock behind. Re-entrant within one process (`mirror run` holds it for
  the whole experiment, and the training inside takes it again). A directory it created
  is removed again if the work failed before writing anything into it.
- `make_writer_dir` names a temporary directory after its writer (`.pid<PID>@<HOST>.`),
  and `remove_stale_writer_dirs` deletes only those whose writer, on this host, is dead.
"""

import contextlib
import errno
import fcntl
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

from mirror.base.errors import RunInUseError, TrainError

LOCK_FILE = ".lock"

_held: dict[Path, list] = {}  # lock path -> [open file, depth]: this process's locks


def require_writable(path: str | Path, what: str, error: type[Exception]) -> None:
    """Raise `error` naming `what` unless `path` (or, when it does not exist yet, the
    nearest existing directory above it, where it would be created) can be written."""
    path = Path(path).absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise error(f"{what} {path} cannot be created: {existing} is not a directory")
    # os.access honours a read-only mount even for root (who otherwise may write anywhere).
    if not os.access(existing, os.W_OK | os.X_OK):
        detail = "" if existing == path else f" ({existing}, where it would be created, is not writable)"
        raise error(f"{what} {path} is not writable{detail}; fix its permissions or choose another directory")


def has_content(run_dir: Path, ignore: frozenset[str] = frozenset()) -> bool:
    """True when `run_dir` holds anything besides its lock file (and the names in `ignore`)."""
    run_dir = Path(run_dir)
    return run_dir.is_dir() and any(p.name != LOCK_FILE and p.name not in ignore for p in run_dir.iterdir())


def _lock_holder(lock: Path) -> str:
    try:
        pid = lock.read_text().strip()
    except OSError:
        pid = ""
    return f" (pid {pid})" if pid else ""


@contextlib.contextmanager
def lock_run_dir(run_dir: str | Path):
    """Create `run_dir` if needed and hold its exclusive lock for the `with` block;
    raises RunInUseError at once (no waiting) when another process holds it."""
    run_dir = Path(run_dir).absolute()
    require_writable(run_dir, "run directory", TrainError)
    lock = run_dir / LOCK_FILE
    if lock in _held:
        _held[lock][1] += 1
        try:
            yield run_dir
        finally:
            _held[lock][1] -= 1
        return
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fh = open(lock, "a+")
    except OSError as err:
        raise TrainError(f"cannot create the lock file {lock}: {err.strerror}") from None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        fh.close()
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunInUseError(
                f"run {run_dir} is in use by another process{_lock_holder(lock)}; "
                "wait for it to finish (or stop it) before resuming"
            ) from None
        raise TrainError(f"cannot lock {lock}: {err.strerror}") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    _held[lock] = [fh, 1]
    try:
        yield run_dir
    finally:
        _held.pop(lock)
        if created and not has_content(run_dir):  # failed before writing anything: leave no trace
            # Still holding the lock, so no other process can be using this directory.
            lock.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # another process may have just recreated it
                run_dir.rmdir()
        fh.close()  # releases the flock


_WRITER = re.compile(r"\.pid(?P<pid>\d+)@(?P<host>.*)\.[^.]*$")


def make_writer_dir(parent: Path, prefix: str) -> Path:
    """A new temporary directory `parent/<prefix>.pid<PID>@<HOST>.<random>`."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}.pid{os.getpid()}@{socket.gethostname()}.", dir=parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def remove_stale_writer_dirs(parent: Path, pattern: str) -> list[Path]:
    """Delete the `parent/pattern` directories made by `make_writer_dir` whose writer
    process is dead; returns them. Directories written from another host, or without a
    writer in their name, are left alone: their writer may still be at work."""
    removed = []
    host = socket.gethostname()
    for path in Path(parent).glob(pattern):
        match = _WRITER.search(path.name)
        if not path.is_dir() or not match or match["host"] != host or _alive(int(match["pid"])):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
