"""`mirror rl` with tracking on: every update reaches the tracker as its interval ends
(its checkpoint line written) (before the analysis), with the values of rl_metrics.jsonl; the headline
goes to the run's summary once, at the end."""

import json
from pathlib import Path

import pytest
from conftest import RL_DEFAULT_GAME, TINY_RL, overrides, rl_values

from mirror.runs.tracking import Tracker


class Recording(Tracker):
    """Notes, at every call, how far the run had got on disk."""

    mode = "recording"

    def __init__(self, run_dir: Path):
        self.run_dir, self.calls = Path(run_dir), []

    def _state(self) -> dict:
        # metrics.jsonl gets a checkpoint's line just before the checkpoint is saved
        metrics = self.run_dir / "metrics.jsonl"
        lines = metrics.read_text().splitlines() if metrics.is_file() else []
        return {"checkpoints": [json.loads(x)["epoch"] for x in lines if x.strip()], "analysed": (self.run_dir / "cmni.csv").is_file()}

    def log_metrics(self, metrics, step=None):
        self.calls.append(("metrics", step, dict(metrics), self._state()))

    def summary(self, values):
        self.calls.append(("summary", None, dict(values), self._state()))

    def finish(self, exit_code=0):
        self.calls.append(("finish", exit_code, None, self._state()))


@pytest.mark.slow
def test_each_update_is_tracked_as_its_interval_ends(tmp_path, monkeypatch, dataset_cache, tiny_dataset):
    import mirror.runs.rl_experiment
    from mirror.cli import main

    opened = []

    def open_recording(cfg, run_dir, name, config, group="", job_type="run"):
        assert job_type == "rl" and config["rl"]["updates"] == TINY_RL["updates"]
        opened.append(Recording(run_dir))
        return opened[-1]

    monkeypatch.setattr(mirror.runs.rl_experiment, "open_tracker", open_recording)
    run_dir = tmp_path / "run"
    assert main(["rl", "--config", RL_DEFAULT_GAME, "--run-dir", str(run_dir), *overrides(rl_values(dataset_cache))]) == 0
    (tracker,) = opened
    lines = [json.loads(x) for x in (run_dir / "rl_metrics.jsonl").read_text().splitlines()]
    logged = [c for c in tracker.calls if c[0] == "metrics"]
    every = TINY_RL["checkpoint_every"]
    assert [c[1] for c in logged] == [line["update"] for line in lines] == list(range(1, TINY_RL["updates"] + 1))
    for (_, update, metrics, state), line in zip(logged, lines):
        # streamed while training: its interval has ended, the analysis has not run yet
        interval_end = -(-update // every) * every
        assert interval_end in state["checkpoints"] and not state["analysed"]
        assert metrics["rl/env_turns"] == line["env_turns"]
        assert metrics["rl/entropy"] == pytest.approx(line["entropy"])
        assert metrics["rl/approx_kl"] == pytest.approx(line["approx_kl"])
        assert "rl/update" not in metrics  # the step, not a value
    # the first interval's updates are logged before the second interval ends
    first = logged[0][3]["checkpoints"]
    assert first == [every]
    (summary,) = [c for c in tracker.calls if c[0] == "summary"]
    written = json.loads((run_dir / "summary.json").read_text())
    assert summary[2]["return_agent"] == pytest.approx(written["return_agent"]) and summary[3]["analysed"]
    assert tracker.calls[-1][:2] == ("finish", 0)
