"""W&B tracking: modes, lazy import, and an offline run's files."""

import json
import subprocess
import sys
import time

import pytest

from mirror.base.errors import ConfigError
from mirror.runs.config import TrackingConfig, load_config
from mirror.runs.tracking import Tracker, open_tracker, resolve_mode


@pytest.mark.slow
def test_disabled_is_a_no_op_and_imports_nothing(tmp_path):
    code = (
        "import sys; from mirror.runs.tracking import open_tracker; from mirror.runs.config import TrackingConfig;"
        f"t = open_tracker(TrackingConfig(mode='disabled'), {str(tmp_path)!r}, 'x', {{}});"
        "t.log_metrics({'a': 1}); t.finish(); print('wandb' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert list(tmp_path.iterdir()) == []


def test_auto_without_wandb_falls_back_to_disabled(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert resolve_mode("auto") == "disabled"
    with pytest.raises(ConfigError, match="tracking.mode = 'offline' needs wandb"):
        resolve_mode("offline")


def test_auto_chooses_online_only_with_an_api_key(monkeypatch, tmp_path):
    pytest.importorskip("wandb")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert resolve_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"


def test_bad_mode_names_the_allowed_values():
    with pytest.raises(ConfigError, match=r"tracking.mode = 'loud' is invalid: expected one of \['auto', 'online', 'offline', 'disabled'\]"):
        load_config(None, ["--tracking.mode", "loud"])


def test_offline_run_records_config_and_metrics(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracker = open_tracker(TrackingConfig(mode="offline"), tmp_path, "unit", {"train": {"lr": 5e-5}}, group="g")
    assert tracker.mode == "offline" and type(tracker) is not Tracker
    for epoch in range(3):
        tracker.log_metrics({"val_loss": 1.0 / (epoch + 1), "cmni": 0.01 * epoch}, step=epoch)
    tracker.summary({"peak_cmni": 0.02})
    tracker.finish()
    (log,) = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    records = finished_wandb_log(log)
    config = {
        item.key: json.loads(item.value_json)
        for r in records
        for updates in ([r.run.config.update] if r.HasField("run") else [r.config.update] if r.HasField("config") else [])
        for item in updates
    }
    assert config["train"] == {"lr": 5e-05}
    history = [
        {(item.key or ".".join(item.nested_key)): json.loads(item.value_json) for item in r.history.item}
        for r in records
        if r.HasField("history")
    ]
    assert [h["val_loss"] for h in history] == pytest.approx([1.0, 0.5, 1 / 3])
    assert [h["_step"] for h in history] == [0, 1, 2]
    summary = {
        (item.key or ".".join(item.nested_key)): json.loads(item.value_json)
        for r in records
        if r.HasField("summary")
        for item in r.summary.update
    }
    assert summary["peak_cmni"] == 0.02


def finished_wandb_log(path, timeout: float = 300):
    """The records of an offline run's log once it is complete. The W&B service may still
    be writing it after `finish()` returns (seconds, on a busy machine): wait for its exit
    record, the last one it writes, however long that takes."""
    deadline = time.monotonic() + timeout
    records = read_wandb_log(path)
    while not any(r.HasField("exit") for r in records):
        assert time.monotonic() < deadline, f"{path} has no exit record after {timeout} s"
        time.sleep(0.2)
        records = read_wandb_log(path)
    return records


def read_wandb_log(path):
    """Records of a W&B `.wandb` file: a LevelDB-style log (7-byte file header, 32 KiB
    blocks, each record chunk = crc32 (4) + length (2) + type (1) + data)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        kind = data[pos + 6]
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0:
            break
        pending += chunk
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records
