"""Shared helpers for the benchmark scripts: host description, timing, JSON output."""

import json
import os
import platform
import time
from pathlib import Path


def set_host_devices(count: int) -> None:
    """Expose `count` XLA CPU devices (one per core) before JAX starts."""
    if count > 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def describe_device() -> dict:
    import jax

    devices = jax.devices()
    return {
        "device": f"{devices[0].platform}: {devices[0].device_kind}",
        "devices": len(devices),
        "host": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
    }


def time_call(fn, *args, repeats: int = 3):
    """(compile_s, best_run_s): first call compiles; later calls are timed with block_until_ready."""
    import jax

    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return compile_s, best


def write_json(result: dict, path: str | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
