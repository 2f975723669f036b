"""Live tracking: trackers open before any work, each epoch is logged as it ends (with a
cheap CMNI of the fresh checkpoint), online-mode problems fail fast, and `mirror cmni`
and `mirror run` share one analysis function."""

import csv
import json
import sys
import time
from pathlib import Path

import pytest

from mirror.cli import main
from mirror.runs.config import TrackingConfig
from mirror.runs.tracking import MemberTrackers, Tracker, TrackingError, open_member_trackers, resolve_mode

sys.path.insert(0, str(Path(__file__).parent))  # test_tracking.read_wandb_log

TINY = [
    "--data.rows", "12000", "--data.test_rows", "400", "--data.games", "128", "--data.rounds_per_chunk", "64",
    "--data.test_label_shares", "[0.4, 0.4, 0.15, 0.05]", "--train.epochs", "3", "--train.lr", "1e-3",
    "--train.population_seeds", "[]", "--analysis.permutations", "8", "--analysis.init_seeds", "2",
]  # fmt: skip  (one model: the quickstart trains a population of 5 seeds)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def history(log: Path) -> list[dict]:
    """The history records of a `.wandb` file (waiting for the W&B service to flush it)."""
    from test_tracking import read_wandb_log

    deadline = time.monotonic() + 60
    while True:
        records = read_wandb_log(log)
        if any(r.HasField("exit") for r in records) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return [
        {(i.key or ".".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
        for r in records
        if r.HasField("history")
    ]


# --------------------------------------------------------------------------- offline W&B, live


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One dataset cache for the runs of this file (same data settings: built once)."""
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory, cache):
    pytest.importorskip("wandb")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_SILENT", "true")
    run = tmp_path_factory.mktemp("live") / "run"
    try:
        code = main(["run", *TINY, "--tracking.mode", "offline", "--data.cache_dir", str(cache), "--run-dir", str(run)])
    finally:
        mp.undo()
    assert code == 0
    return run


@pytest.mark.slow
def test_offline_run_logs_each_epoch_while_training_runs(offline_run):
    (log,) = sorted(offline_run.glob("wandb/offline-run-*/run-*.wandb"))
    epochs = [h for h in history(log) if "train/val_loss" in h]
    assert [h["_step"] for h in epochs] == [1, 2, 3]
    # Order, not duration: epoch e's record was written before the next epoch's checkpoint
    # existed, and the last one before training ended (test metrics are written after the
    # last epoch) and before the analysis wrote cmni.csv.
    checkpoints = offline_run / "checkpoints"
    for h in epochs[:-1]:
        assert h["_timestamp"] < (checkpoints / str(h["_step"] + 1)).stat().st_mtime
    training_end = (offline_run / "test_metrics.json").stat().st_mtime
    assert epochs[-1]["_timestamp"] < training_end < (offline_run / "cmni.csv").stat().st_mtime
    # The live CMNI is the full analysis's value for the same checkpoint.
    final = {int(r["epoch"]): float(r["cmni"]) for r in read_csv(offline_run / "cmni.csv")}
    assert [h["cmni"] for h in epochs] == pytest.approx([final[e] for e in (1, 2, 3)], rel=1e-4, abs=1e-9)
    metrics = [json.loads(line) for line in (offline_run / "metrics.jsonl").read_text().splitlines()]
    assert [h["train/val_loss"] for h in epochs] == pytest.approx([m["val_loss"] for m in metrics])
    logged = {k.split(".")[0] for h in history(log) if h["_step"] > 3 for k in h}  # after the epochs
    assert {"cmni_table", "figures/training"} <= logged


@pytest.mark.slow
def test_analyse_run_writes_what_mirror_cmni_writes(offline_run, tmp_path, capsys):
    from mirror.runs.analysis import analyse_run

    result = analyse_run(offline_run, tmp_path / "lib", overrides=["--analysis.checkpoint", "last"])
    assert main(["cmni", str(offline_run), "--out", str(tmp_path / "cli"), "--analysis.checkpoint", "last"]) == 0
    assert "wrote" in capsys.readouterr().out
    lib = sorted(p.relative_to(tmp_path / "lib") for p in (tmp_path / "lib").rglob("*") if p.is_file())
    cli = sorted(p.relative_to(tmp_path / "cli") for p in (tmp_path / "cli").rglob("*") if p.is_file())
    assert lib == cli and sorted(p.relative_to(result.out_dir) for p in result.written) == lib
    for name in ("cmni.csv", "neurons.csv", "circuits.csv", "weights.csv"):
        assert (tmp_path / "lib" / name).read_text() == (tmp_path / "cli" / name).read_text(), name
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("lib", "cli")]
    for s in summaries:
        s.pop("timings_s", None)
    assert summaries[0] == summaries[1]
    assert int(result.analysis.selected[0]) == 2  # --analysis.checkpoint last of 3 epochs


# --------------------------------------------------------------------------- a recording tracker


class Recording(Tracker):
    """Notes, at every call, how far the run had got (what files existed)."""

    mode = "recording"
    opened: list = []

    def __init__(self, run_dir: Path, name: str):
        self.run_dir, self.name, self.calls = Path(run_dir), name, []
        Recording.opened.append(self)

    def _state(self) -> dict:
        metrics = self.run_dir / "metrics.jsonl"
        return {
            "epochs_written": len(metrics.read_text().splitlines()) if metrics.is_file() else 0,
            "dataset": (self.run_dir / "dataset.json").is_file(),
            "analysed": (self.run_dir / "cmni.csv").is_file(),
        }

    def log_metrics(self, metrics, step=None):
        self.calls.append(("metrics", step, dict(metrics), self._state()))

    def log_table(self, name, columns, rows):
        self.calls.append(("table", name, len(rows), self._state()))

    def log_images(self, images):
        self.calls.append(("images", sorted(images), None, self._state()))

    def summary(self, values):
        self.calls.append(("summary", None, dict(values), self._state()))

    def finish(self, exit_code=0):
        self.calls.append(("finish", exit_code, None, self._state()))


@pytest.mark.slow
def test_each_member_is_tracked_from_the_start_and_each_epoch_as_it_ends(tmp_path, monkeypatch, cache):
    import mirror.runs.tracking

    Recording.opened = []
    monkeypatch.setattr(mirror.runs.tracking, "open_tracker", lambda cfg, run_dir, name, config, group="", job_type="run": Recording(run_dir, name))
    run = tmp_path / "pop"
    args = [("2" if a == "3" and TINY[i - 1] == "--train.epochs" else a) for i, a in enumerate(TINY)]
    assert main(["run", *args, "--train.population_seeds", "[0, 1]", "--data.cache_dir", str(cache), "--run-dir", str(run)]) == 0
    assert [t.name for t in Recording.opened] == ["pop-m0", "pop-m1"]
    final = read_csv(run / "cmni.csv")
    for member, tracker in enumerate(Recording.opened):
        epochs = [c for c in tracker.calls if c[0] == "metrics" and c[1] is not None]
        assert [c[1] for c in epochs] == [1, 2]
        for _, epoch, metrics, state in epochs:
            # logged right after the epoch's metrics line, before the next one and the analysis
            assert state == {"epochs_written": epoch, "dataset": True, "analysed": False}
            expected = next(float(r["cmni"]) for r in final if int(r["member"]) == member and int(r["epoch"]) == epoch)
            assert metrics["cmni"] == pytest.approx(expected, rel=1e-4, abs=1e-9)
            assert {"train/val_loss", "train/train_loss", "train/val_accuracy"} <= set(metrics)
        (table,) = [c for c in tracker.calls if c[0] == "table"]
        assert table[1:3] == ("cmni_table", 2) and table[3]["analysed"]
        (images,) = [c[1] for c in tracker.calls if c[0] == "images"]
        assert "figures/training_m%d" % member in images and not any(k.endswith("_m%d" % (1 - member)) for k in images)
        # Figure 2 over seeds belongs to the population: logged once, with member 0's run
        assert ("figures/cmni_seeds" in images) == (member == 0)
        assert tracker.calls[-1][:2] == ("finish", 0)
    # the headline goes to member 0's run, once, after the analysis
    (summary,) = [c for c in Recording.opened[0].calls if c[0] == "summary"]
    assert summary[2]["peak_cmni"] == pytest.approx(max(float(r["cmni"]) for r in final if r["member"] == "0"))
    assert summary[3]["analysed"]
    assert not [c for c in Recording.opened[1].calls if c[0] == "summary"]


def test_trackers_open_before_the_dataset(tmp_path, monkeypatch, capsys):
    import mirror.runs.tracking

    seen = []

    def refuse(cfg, run_dir, name, config, group="", job_type="run"):
        seen.append((tmp_path / "cache").exists())
        raise TrackingError("no tracker today")

    monkeypatch.setattr(mirror.runs.tracking, "open_tracker", refuse)
    assert main(["run", *TINY, "--data.cache_dir", str(tmp_path / "cache"), "--run-dir", str(tmp_path / "run")]) == 2
    assert seen == [False]
    assert capsys.readouterr().err.strip() == "mirror run: error: no tracker today"
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- online mode fails fast


def test_online_without_an_api_key_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    code = main(["run", *TINY, "--tracking.mode", "online", "--data.cache_dir", str(tmp_path / "cache"), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        "mirror run: error: tracking.mode = 'online' needs a W&B API key: set WANDB_API_KEY or run `wandb login` "
        "(or use --tracking.mode offline, or disabled)"
    ]
    assert "Traceback" not in err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_online_without_a_network_fails_within_the_init_timeout(tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    code = main([
        "run", *TINY, "--tracking.mode", "online", "--tracking.init_timeout", "2",
        "--data.cache_dir", str(tmp_path / "cache"), "--run-dir", str(tmp_path / "run"),
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    (line,) = [x for x in err.strip().splitlines() if x.startswith("mirror run: error:")]
    assert "W&B run 'run' could not start in tracking.mode = 'online' within tracking.init_timeout = 2 s" in line
    assert "Traceback" not in err
    # nothing was built, and no half-made run directory blocks a retry
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


def test_sweep_online_without_an_api_key_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    spec = tmp_path / "s.yaml"
    spec.write_text(f"data: {{cache_dir: {tmp_path / 'cache'}}}\ntracking: {{mode: online}}\nsweep: {{grid: {{model.width: [5, 7]}}}}\n")
    assert main(["sweep", str(spec), "--sweep-dir", str(tmp_path / "out")]) == 2
    assert "tracking.mode = 'online' needs a W&B API key" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------- units


def test_resolve_mode_online_needs_a_key(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    with pytest.raises(TrackingError, match="needs a W&B API key"):
        resolve_mode("online")
    (tmp_path / ".netrc").write_text("machine api.wandb.ai login user password " + "k" * 40 + "\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert resolve_mode("online") == "online"


def test_epochs_are_logged_once_in_increasing_order():
    class Steps(Tracker):
        def __init__(self):
            self.steps = []

        def log_metrics(self, metrics, step=None):
            self.steps.append((step, metrics))

    a, b = Steps(), Steps()
    trackers = MemberTrackers([a, b])
    trackers.log_epoch(1, [{"x": 1.0}, {"x": 2.0}])
    trackers.log_epoch(1, [{"x": 9.0}, {"x": 9.0}])  # e.g. replayed after a resume: W&B would drop it
    trackers.log_epoch(2, [{"x": 3.0}, {}])  # a member with nothing to log this epoch
    assert a.steps == [(1, {"x": 1.0}), (2, {"x": 3.0})]
    assert b.steps == [(1, {"x": 2.0})]


def test_a_failed_open_finishes_the_runs_already_open_and_removes_their_directory(tmp_path, monkeypatch):
    import mirror.runs.tracking

    finished = []

    class Opened(Tracker):
        mode = "recording"

        def finish(self, exit_code=0):
            finished.append(exit_code)

    def open_one(cfg, run_dir, name, config, group="", job_type="run"):
        if name == "m1":
            raise TrackingError("m1 failed")
        Path(run_dir, "wandb").mkdir(parents=True)
        return Opened()

    monkeypatch.setattr(mirror.runs.tracking, "open_tracker", open_one)
    run = tmp_path / "new" / "run"
    with pytest.raises(TrackingError, match="m1 failed"):
        open_member_trackers(TrackingConfig(mode="offline"), [("m0", {}, run), ("m1", {}, run)], group="g")
    assert finished == [1]
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_an_interrupted_run_is_marked_failed_and_its_resume_replays_the_epochs_before(tmp_path, monkeypatch, cache):
    import mirror.runs.tracking

    class Interrupting(Recording):
        def log_metrics(self, metrics, step=None):
            super().log_metrics(metrics, step)
            if step == 2:
                raise KeyboardInterrupt  # as a Ctrl-C while epoch 2 is logged

    Recording.opened = []
    monkeypatch.setattr(mirror.runs.tracking, "open_tracker", lambda cfg, run_dir, name, config, group="", job_type="run": Interrupting(run_dir, name))
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        main(["run", *TINY, "--data.cache_dir", str(cache), "--run-dir", str(run)])
    (first,) = Recording.opened
    assert [c[1] for c in first.calls if c[0] == "metrics"] == [1, 2]
    assert first.calls[-1][:2] == ("finish", 1)

    Recording.opened = []
    monkeypatch.setattr(mirror.runs.tracking, "open_tracker", lambda cfg, run_dir, name, config, group="", job_type="run": Recording(run_dir, name))
    assert main(["run", "--resume", str(run)]) == 0
    (second,) = Recording.opened
    logged = [(c[1], c[2], c[3]) for c in second.calls if c[0] == "metrics" and c[1] is not None]
    done = logged[0][2]["epochs_written"]  # metrics lines when the first live epoch was logged
    assert [step for step, _, _ in logged] == [1, 2, 3]  # each epoch once, in order
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["train/val_loss"] for _, m, _ in logged] == pytest.approx([m["val_loss"] for m in metrics])
    # the epochs trained before the interruption are replayed first (without a live CMNI),
    # then the rest follow training live
    resumed_at = next(step for step, m, _ in logged if "cmni" in m)
    assert resumed_at >= 2 and done == resumed_at
    assert all("cmni" not in m for step, m, _ in logged if step < resumed_at)
    assert second.calls[-1][:2] == ("finish", 0)


@pytest.mark.slow
def test_sweep_trials_are_tracked_from_the_start_and_each_epoch_as_it_ends(tmp_path, monkeypatch, cache):
    import yaml

    import mirror.cli.sweep
    import mirror.runs.tracking

    class TrialRecording(Tracker):
        mode = "recording"
        opened: list = []

        def __init__(self, trial_dir, name):
            self.trial_dir, self.name, self.calls = Path(trial_dir), name, []
            TrialRecording.opened.append(self)

        def log_metrics(self, metrics, step=None):
            self.calls.append(("metrics", step, dict(metrics), (self.trial_dir / "result.json").exists()))

        def log_table(self, name, columns, rows):
            self.calls.append(("table", name, len(rows), (self.trial_dir / "result.json").exists()))

        def summary(self, values):
            self.calls.append(("summary", None, dict(values), (self.trial_dir / "result.json").exists()))

    def recording(cfg, run_dir, name, config, group="", job_type="run"):
        return TrialRecording(run_dir, name)

    monkeypatch.setattr(mirror.runs.tracking, "open_tracker", recording)  # the trials' trackers
    monkeypatch.setattr(mirror.cli.sweep, "open_tracker", recording)  # the sweep summary's
    spec = {
        "name": "s",
        "data": {"rows": 12000, "test_rows": 400, "games": 128, "rounds_per_chunk": 64, "test_label_shares": [0.4, 0.4, 0.15, 0.05], "cache_dir": str(cache)},
        "model": {"hidden_layers": 1},
        "train": {"epochs": 2, "max_train_rows": 3000, "batch_size": 25, "lr": 1.0e-3},
        "analysis": {"permutations": 4, "init_seeds": 0, "roles": "paper"},
        "sweep": {"grid": {"model.width": [5, 7]}, "trial_figures": False},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(path), "--sweep-dir", str(tmp_path / "out")]) == 0
    # the trials' runs open as their population starts; the sweep's own run at the summary
    assert [t.name for t in TrialRecording.opened] == ["s-t0000", "s-t0001", "s-summary"]
    for tracker in TrialRecording.opened[:2]:
        epochs = [c for c in tracker.calls if c[0] == "metrics" and c[1] is not None]
        assert [c[1] for c in epochs] == [1, 2]
        assert all("cmni" in c[2] and "train/val_loss" in c[2] and not c[3] for c in epochs)  # before the trial finished
        result = json.loads((tracker.trial_dir / "result.json").read_text())
        (summary,) = [c for c in tracker.calls if c[0] == "summary"]
        assert summary[3] and summary[2]["trial"] == result["trial"]
        rows = {int(r["epoch"]): float(r["cmni"]) for r in read_csv(tracker.trial_dir / "cmni.csv")}
        assert [c[2]["cmni"] for c in epochs] == pytest.approx([rows[1], rows[2]], rel=1e-4, abs=1e-9)
