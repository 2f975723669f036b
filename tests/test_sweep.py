"""Sweeps: trial expansion, populations, shards, 1 vs 8 devices, resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml
from conftest import xla_env
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror.base.errors import ConfigError
from mirror.cli import main
from mirror.runs.checkpoints import load_run
from mirror.sweep import run as sweep_run
from mirror.sweep.plan import member_of, parse_shard, populations, shard_trials, width_bucket
from mirror.sweep.spec import load_sweep
from mirror.sweep.summary import write_summary
from mirror.sweep.trial import RESULT_FILE, finished_result, trial_dir

REPO = Path(__file__).resolve().parents[1]


def write_sweep(path: Path, sweep: dict, **sections) -> Path:
    path.write_text(yaml.safe_dump({"name": "t", **sections, "sweep": sweep}))
    return path


# --------------------------------------------------------------------------- trial lists


def test_grid_random_explicit_and_seeds_expand_in_order(tmp_path):
    sweep = load_sweep(
        write_sweep(
            tmp_path / "s.yaml",
            {
                "grid": {"model.width": [5, 9], "train.lr": [1.0e-4, 1.0e-3]},
                "random": {"samples": 3, "seed": 7, "fields": {"env.dependency": {"uniform": [0.0, 1.0]}, "model.hidden_layers": {"choice": [1, 3]}}},
                "trials": [{"model.width": 17, "model.hidden_layers": 2}],
                "seeds": [0, 1],
            },
            seed=5,
        )
    )
    assert len(sweep.trials) == (4 + 3 + 1) * 2
    assert [t.fields for t in sweep.trials[:4]] == [
        {"model.width": 5, "train.lr": 1e-4, "seed": 0}, {"model.width": 5, "train.lr": 1e-4, "seed": 1},
        {"model.width": 5, "train.lr": 1e-3, "seed": 0}, {"model.width": 5, "train.lr": 1e-3, "seed": 1},
    ]  # fmt: skip
    for t in sweep.trials:
        assert t.config.seed == t.fields["seed"]
        assert t.config.data_seed == 5  # model seeds share the base's dataset
        assert t.config.model.width == t.fields.get("model.width", 17)
    drawn = [t.fields for t in sweep.trials[8:14:2]]
    assert all(0.0 <= f["env.dependency"] <= 1.0 and f["model.hidden_layers"] in (1, 3) for f in drawn)
    assert len({f["env.dependency"] for f in drawn}) == 3
    again = load_sweep(tmp_path / "s.yaml")  # the random draws are keyed: same file, same trials
    assert [t.trial_id for t in again.trials] == [t.trial_id for t in sweep.trials]
    assert len({t.trial_id for t in sweep.trials}) == len(sweep.trials)


@pytest.mark.parametrize(
    "sweep, message",
    [
        ({"grid": {"model.population_widths": [[1]]}}, "'model.population_widths' cannot be swept"),
        ({"grid": {"model.width": []}}, "sweep.grid.model.width must be a non-empty list"),
        ({"grid": {"model.width": [0]}}, "sweep trial 0 .*model.width = 0 is invalid"),
        ({"grid": {"env.dependency": [2.0]}}, "dependency"),
        ({"random": {"samples": 2, "fields": {"train.lr": {"normal": [0, 1]}}}}, "sweep.random.fields.train.lr must be one of"),
        ({"random": {"samples": 0, "fields": {}}}, "sweep.random.samples = 0"),
        ({"grid": {"model.width": [5, 5]}}, r"trials \[0, 1\] are the same configuration"),
        ({"grid": {"seed": [1]}, "seeds": [0]}, "use one of them"),
        ({"gird": {}}, "unknown field.*sweep.gird"),
        ({"seeds": [0], "max_population": 0}, "sweep.max_population = 0"),
        ({}, "the sweep has no trials"),
    ],
)
def test_bad_sweeps_fail_naming_the_field(tmp_path, sweep, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write_sweep(tmp_path / "s.yaml", sweep))


def test_cli_rejects_a_bad_sweep_before_any_work(tmp_path, capsys):
    path = write_sweep(tmp_path / "s.yaml", {"grid": {"train.lr": [-1.0]}})
    assert main(["sweep", str(path), "--sweep-dir", str(tmp_path / "out")]) == 2
    assert "train.lr = -1.0 is invalid" in capsys.readouterr().err
    assert main(["sweep", str(path), "--shard", "3/2"]) == 2
    assert "--shard 3/2" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- populations


def test_trials_share_a_population_only_when_their_programs_match(tmp_path):
    sweep = load_sweep(
        write_sweep(tmp_path / "s.yaml", {"grid": {"model.width": [5, 8, 9], "train.lr": [1e-4, 1e-3], "train.batch_size": [20, 25]}, "seeds": [0, 1]})
    )
    pops = populations(sweep.trials, max_population=64)
    # width buckets 8 (5, 8) and 16 (9) x batch sizes 20, 25
    assert sorted(len(p.trials) for p in pops) == [4, 4, 8, 8]
    for p in pops:
        assert len({(t.config.train.batch_size, width_bucket(t.config.model.width)) for t in p.trials}) == 1
        assert list(p.members) == [member_of(t) for t in p.trials]
        assert p.config.model.population_widths == tuple([t.config.model.width] * 2 for t in p.trials)


def test_padding_to_the_device_count_keeps_trials_in_order(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", {"grid": {"train.lr": [1e-4, 2e-4, 3e-4, 4e-4, 5e-4]}, "max_population": 3}))
    pops = populations(sweep.trials, max_population=3, devices=8)
    assert [len(p.trials) for p in pops] == [3, 2] and [len(p.members) for p in pops] == [8, 8]
    assert [t.index for p in pops for t in p.trials] == [0, 1, 2, 3, 4]
    assert [m.lr for m in pops[1].members] == [4e-4] + [5e-4] * 7  # padding copies the last member


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 7), max_population=st.integers(1, 5), widths=st.lists(st.sampled_from([3, 5, 9, 17, 33]), min_size=1, max_size=4, unique=True))
def test_shards_cover_every_trial_exactly_once(tmp_path_factory, n, max_population, widths):
    path = write_sweep(tmp_path_factory.mktemp("s") / "s.yaml", {"grid": {"model.width": widths, "train.lr": [1e-4, 1e-3]}, "seeds": [0, 1, 2]})
    sweep = load_sweep(path)
    parts = [shard_trials(sweep.trials, max_population, (i, n)) for i in range(n)]
    indices = sorted(t.index for part in parts for t in part)
    assert indices == list(range(len(sweep.trials)))
    owner = {t.index: i for i, part in enumerate(parts) for t in part}
    for p in populations(sweep.trials, max_population):  # a shard owns whole populations
        assert len({owner[t.index] for t in p.trials}) == 1


def test_parse_shard():
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


# --------------------------------------------------------------------------- running


TINY = {
    "seed": 0,
    "data": {"rows": 20000, "test_rows": 500, "games": 256, "rounds_per_chunk": 64, "test_label_shares": [0.4, 0.4, 0.15, 0.05]},
    "model": {"hidden_layers": 1},
    "train": {"epochs": 2, "patience": 1, "max_train_rows": 3000, "batch_size": 25},
    "analysis": {"permutations": 10, "init_seeds": 2},
    "tracking": {"mode": "disabled"},
}
TINY_GRID = {"grid": {"model.width": [5, 7], "train.lr": [1.0e-3, 3.0e-3]}, "seeds": [0, 1], "max_population": 3, "trial_figures": False}


@pytest.fixture(scope="module")
def tiny_sweep_spec(tmp_path_factory, dataset_cache) -> Path:
    """The tiny sweep's YAML; its dataset is conftest's tiny one (the trials pin data.seed
    to the base's)."""
    root = tmp_path_factory.mktemp("sweep")
    return write_sweep(root / "tiny.yaml", TINY_GRID, **{**TINY, "data": {**TINY["data"], "cache_dir": str(dataset_cache)}})


@pytest.fixture(scope="module")
def tiny_sweep(tiny_sweep_spec, tiny_dataset):
    """The tiny sweep run once in this process (one device), shared by the tests below."""
    root = tiny_sweep_spec.parent
    assert main(["sweep", str(tiny_sweep_spec), "--sweep-dir", str(root / "one")]) == 0
    return tiny_sweep_spec, root


def trial_arrays(sweep_dir: Path, trial) -> dict:
    """What a trial produced: its parameters at every checkpoint, val losses and CMNI."""
    out = trial_dir(sweep_dir, trial)
    run = load_run(out)
    cmni = [row.split(",") for row in (out / "cmni.csv").read_text().splitlines()]
    column = cmni[0].index("cmni")
    return {
        "params": [np.asarray(a) for a in jax.tree.leaves(run.params)],
        "val_loss": run.metric("val_loss")[:, 0],
        "cmni": np.asarray([float(r[column]) for r in cmni[1:]]),
    }


@pytest.mark.slow  # the tiny sweep end to end (~45 s)
def test_tiny_sweep_writes_trials_summary_and_figures(tiny_sweep):
    path, root = tiny_sweep
    sweep, sweep_dir = load_sweep(path), root / "one"
    summary = (sweep_dir / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + len(sweep.trials) == 9
    header = summary[0].split(",")
    for column in ("best_val_loss", "accuracy", "peak_cmni", "peak_epoch", "final_cmni", "cmni_at_best", "p_value", "p_init", "p_init_peak"):
        assert column in header
    assert "above the random-init null (p_init <= 0.05" in (sweep_dir / "report.md").read_text()
    for name in ("top_checkpoints.csv", "bottom_checkpoints.csv", "report.md", "figures/cmni_vs_capacity.png", "figures/cmni_vs_theory.png"):
        assert (sweep_dir / name).is_file(), name
    for line, trial in zip(summary[1:], sweep.trials):
        row = dict(zip(header, line.split(",")))
        assert int(row["trial"]) == trial.index
        assert (int(row["width"]), float(row["lr"]), int(row["seed"])) == (trial.config.model.width, trial.config.train.lr, trial.config.seed)
        run = load_run(trial_dir(sweep_dir, trial))  # a trial reads as a single run at its true width
        assert run.members[0] == member_of(trial) and run.params["hidden_0"]["kernel"].shape[1:] == (1, 100, trial.config.model.width)
        best = run.metric("best_val_loss")[-1, 0]
        assert float(row["best_val_loss"]) == pytest.approx(best, rel=1e-6)
    top = (sweep_dir / "top_checkpoints.csv").read_text().splitlines()
    assert len(top) == 1 + 5 and top[0] == "trial,lr,hidden_layers,width,epoch,val_loss,mne,cmni"
    values = [float(r.split(",")[-1]) for r in top[1:]]
    assert values == sorted(values, reverse=True)


@pytest.mark.slow  # the tiny sweep, then a training run
def test_a_trial_matches_the_same_model_trained_alone(tiny_sweep, tmp_path):
    """Grouping, padding and cutting hand each trial its own member's results."""
    import jax

    from mirror.data.pipeline import build_dataset
    from mirror.runs.train_run import train_run

    path, root = tiny_sweep
    sweep = load_sweep(path)
    trial = sweep.trials[5]  # width 7 in a population padded to 7, lr 3e-3, seed 1
    dataset, reused = build_dataset(trial.config)
    assert reused
    train_run(trial.config, tmp_path / "solo", dataset, log=lambda line: None)
    solo, mine = load_run(tmp_path / "solo"), load_run(trial_dir(root / "one", trial))
    np.testing.assert_allclose(solo.metric("val_loss"), mine.metric("val_loss"), rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), solo.params, mine.params)


@pytest.mark.slow  # two sweeps in a subprocess (~50 s)
def test_eight_devices_give_identical_trials_and_regrouping_maps_them_right(tiny_sweep, tmp_path):
    """The same sweep on 8 simulated CPU devices (populations padded to 8): every trial
    bit-identical to the one-device run. The trials listed in reverse order (other
    populations, other padded widths): the same parameters bit for bit, and losses and
    CMNI equal up to the rounding of sums over differently padded vectors."""
    path, root = tiny_sweep
    spec = yaml.safe_load(path.read_text())
    spec["sweep"]["trials"] = [dict(t.fields) for t in reversed(load_sweep(path).trials)]
    del spec["sweep"]["grid"], spec["sweep"]["seeds"]
    reversed_path = tmp_path / "reversed.yaml"
    reversed_path.write_text(yaml.safe_dump(spec))
    env = xla_env(devices=8)
    code = (
        "import jax, sys; from mirror.cli import main; assert jax.device_count() == 8\n"
        "for config, out in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        "    assert main(['sweep', config, '--sweep-dir', out]) == 0"
    )
    args = [str(path), str(tmp_path / "eight"), str(reversed_path), str(tmp_path / "eight-reversed")]
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "on 8 device(s)" in out.stdout and "+ 5 padding" in out.stdout
    one = load_sweep(path)
    regrouped = {t.trial_id: t for t in load_sweep(reversed_path).trials}
    for trial in one.trials:
        a, b = trial_arrays(root / "one", trial), trial_arrays(tmp_path / "eight", trial)
        for x, y in zip(a["params"], b["params"]):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(a["val_loss"], b["val_loss"])
        np.testing.assert_array_equal(a["cmni"], b["cmni"])
        c = trial_arrays(tmp_path / "eight-reversed", regrouped[trial.trial_id])
        for x, y in zip(a["params"], c["params"]):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_allclose(a["val_loss"], c["val_loss"], rtol=1e-6)
        np.testing.assert_allclose(a["cmni"], c["cmni"], rtol=1e-5)


@pytest.mark.slow  # a sweep, killed and rerun
def test_rerun_skips_finished_trials_and_resumes_a_killed_population(tiny_sweep, tmp_path, monkeypatch, capsys):
    path, root = tiny_sweep
    sweep = load_sweep(path)
    sweep_dir = tmp_path / "resume"
    calls = []
    real = sweep_run.analyse_population

    def killed_after_training(population, *args, **kwargs):
        calls.append(population)
        if len(calls) == 2:  # the second population: trained and checkpointed, then killed
            raise KeyboardInterrupt
        return real(population, *args, **kwargs)

    monkeypatch.setattr(sweep_run, "analyse_population", killed_after_training)
    with pytest.raises(KeyboardInterrupt):
        main(["sweep", str(path), "--sweep-dir", str(sweep_dir)])
    first = [t for t in sweep.trials if finished_result(sweep_dir, t)]
    assert [t.index for t in first] == [t.index for t in calls[0].trials]
    stamps = {t.index: (trial_dir(sweep_dir, t) / RESULT_FILE).stat().st_mtime_ns for t in first}
    killed_dir = sweep_dir / "populations" / calls[1].population_id
    killed_metrics = (killed_dir / "metrics.jsonl").read_text()

    monkeypatch.setattr(sweep_run, "analyse_population", real)
    capsys.readouterr()
    assert main(["sweep", str(path), "--sweep-dir", str(sweep_dir)]) == 0
    log = capsys.readouterr().out
    assert f"{len(first)} already finished; {len(sweep.trials) - len(first)} to run" in log
    assert f"resuming {killed_dir} after epoch 2" in log
    assert (killed_dir / "metrics.jsonl").read_text() == killed_metrics  # not retrained
    assert all((trial_dir(sweep_dir, t) / RESULT_FILE).stat().st_mtime_ns == stamps[t.index] for t in first)
    assert all(finished_result(sweep_dir, t) for t in sweep.trials)
    for trial in sweep.trials:  # the interrupted sweep ends where the uninterrupted one did
        a, b = trial_arrays(root / "one", trial), trial_arrays(sweep_dir, trial)
        np.testing.assert_array_equal(a["val_loss"], b["val_loss"])
        np.testing.assert_array_equal(a["cmni"], b["cmni"])

    assert main(["sweep", str(path), "--sweep-dir", str(sweep_dir)]) == 0
    assert f"{len(sweep.trials)} already finished; 0 to run" in capsys.readouterr().out
    assert write_summary(sweep, sweep_dir)["finished"] == len(sweep.trials)


@pytest.mark.slow  # the sweep in two shards
def test_shards_run_separately_then_summarise_together(tiny_sweep, tmp_path, capsys):
    path, root = tiny_sweep
    sweep = load_sweep(path)
    out = tmp_path / "shards"
    assert main(["sweep", str(path), "--sweep-dir", str(out), "--shard", "0/2"]) == 0
    owned = shard_trials(sweep.trials, sweep.max_population, (0, 2))
    assert {t.index for t in sweep.trials if finished_result(out, t)} == {t.index for t in owned}
    assert f"summary: {len(owned)} of {len(sweep.trials)} trials finished" in capsys.readouterr().out
    assert main(["sweep", str(path), "--sweep-dir", str(out), "--shard", "1/2"]) == 0
    assert f"summary: {len(sweep.trials)} of {len(sweep.trials)} trials finished" in capsys.readouterr().out
    assert main(["sweep", str(path), "--sweep-dir", str(out), "--summary-only"]) == 0
    rows = (out / "summary.csv").read_text().splitlines()
    assert rows == (root / "one" / "summary.csv").read_text().splitlines()  # same numbers as one job


def test_sweep_report_verdict_is_the_random_init_comparison(tmp_path):
    """The sweep report counts trials above the random-init null as its verdict and reads
    the permutation test as "the groups' activations differ" only."""
    from mirror.sweep.summary import write_markdown

    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", {"grid": {"model.width": [5, 7, 9]}}, **TINY))
    base = {"diverged": False, "hidden_layers": 1, "lr": 1e-3, "peak_epoch": 1, "fields": {}, "dependency": 1.0, "veil": 0.0, "seed": 0,
            "best_val_loss": 0.1, "accuracy": 0.9, "cmni_at_best": 0.01}  # fmt: skip
    results = [{**base, "trial": i, "width": w, "peak_cmni": 0.01 * (i + 1), "p_value": 1 / 11, "p_init": p}
               for i, (w, p) in enumerate(zip((5, 7, 9), (0.02, 0.4, 1 / 3)))]  # fmt: skip
    results[1]["p_value"] = 0.01
    text = write_markdown(sweep, tmp_path, results, [], []).read_text()
    assert "1 of 3 tested trials have a CMNI above the random-init null (p_init <= 0.05" in text
    assert "1 of 3 pass the permutation test (p_value <= 0.05), which shows only that the scenario groups' activations differ" in text
    assert "above the permutation null" not in text and "| cmni_at_best | p_init | p_value |" in text
    untested = write_markdown(sweep, tmp_path, [{**r, "p_init": None} for r in results], [], []).read_text()
    assert "No trial was compared with random initialisation" in untested


def test_dry_run_lists_populations(tiny_sweep_spec, capsys):
    path = tiny_sweep_spec
    assert main(["sweep", str(path), "--dry-run", "--shard", "1/2"]) == 0
    out = capsys.readouterr().out
    assert "population of" in out and "shard 1/2 owns" in out


def test_shipped_sweep_configs_load():
    counts = {name: len(load_sweep(REPO / "configs" / f"{name}.yaml").trials) for name in ("sweep_smoke", "sweep_paper", "sweep_theory")}
    assert counts["sweep_paper"] == 50
    assert counts["sweep_smoke"] <= 16
    theory = load_sweep(REPO / "configs" / "sweep_theory.yaml")
    assert {"env.dependency", "env.veil", "seed"} <= set(theory.swept)
    assert json.dumps([t.fields for t in theory.trials])  # plain values


@pytest.mark.slow  # two processes (~70 s)
def test_two_processes_under_a_slurm_environment_split_the_sweep(tiny_sweep, dataset_cache, tmp_path):
    """`--distributed` on a (simulated) two-task Slurm job: jax.distributed finds the
    coordinator and process ids in the Slurm environment, each process trains its own
    populations and checkpoints them alone, and the first writes the whole summary."""
    spec = {**TINY, "data": {**TINY["data"], "cache_dir": str(dataset_cache)}, "name": "mh", "sweep": TINY_GRID}
    path = tmp_path / "mh.yaml"
    path.write_text(yaml.safe_dump(spec))
    job = str(1000 + os.getpid() % 3000)  # Slurm's coordinator port derives from the job id
    procs = []
    for rank in (0, 1):
        env = xla_env(SLURM_JOB_ID=job, SLURM_NTASKS="2", SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank),
                      SLURM_STEP_NODELIST="localhost")  # fmt: skip
        cmd = [sys.executable, "-m", "mirror.cli", "sweep", str(path), "--sweep-dir", str(tmp_path / "out"), "--distributed"]
        procs.append(subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-2000:] for log in logs)
    sweep = load_sweep(path)
    ran = [int(log.split("ran ")[1].split(" trial")[0]) for log in logs]
    assert sorted(ran) != [0, len(sweep.trials)] and sum(ran) == len(sweep.trials)  # both worked
    assert f"summary: {len(sweep.trials)} of {len(sweep.trials)} trials finished" in logs[0]
    for trial in sweep.trials:  # readable here, in a single process: the same results as one job
        run = load_run(trial_dir(tmp_path / "out", trial))
        assert run.members[0] == member_of(trial)
    two = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    assert two == (tiny_sweep[1] / "one" / "summary.csv").read_text().splitlines()  # the same numbers as one process


@pytest.mark.slow  # builds the tiny dataset twice
def test_a_dataset_finished_first_by_another_shard_is_reused(tmp_path, monkeypatch):
    from mirror.data import pipeline
    from mirror.runs.config import load_config

    config = load_config(None, {"data": {**TINY["data"], "cache_dir": str(tmp_path)}})
    real = pipeline.generate_arrays

    def racing(config, progress=None, **kwargs):
        out = real(config, progress, **kwargs)
        monkeypatch.setattr(pipeline, "generate_arrays", real)
        pipeline.build_dataset(config)  # another shard writes the same dataset meanwhile
        return out

    monkeypatch.setattr(pipeline, "generate_arrays", racing)
    dataset, reused = pipeline.build_dataset(config)
    assert not reused and dataset.path == pipeline.dataset_path(config)
    assert [p.name for p in tmp_path.iterdir()] == [dataset.path.name]  # no temporary left behind


@pytest.mark.slow  # a tracked sweep
def test_trials_are_wandb_runs_in_the_sweep_group_plus_a_sweep_run(tiny_sweep, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    sys.path.insert(0, str(Path(__file__).parent))
    from test_tracking import finished_wandb_log

    monkeypatch.setenv("WANDB_SILENT", "true")
    path, root = tiny_sweep
    spec = yaml.safe_load(path.read_text())
    spec["tracking"] = {"mode": "offline"}
    spec["sweep"]["seeds"] = [0]
    spec["sweep"]["grid"] = {"model.width": [5], "train.lr": [1.0e-3, 3.0e-3]}
    tracked = tmp_path / "tracked.yaml"
    tracked.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    assert main(["sweep", str(tracked), "--sweep-dir", str(out)]) == 0

    def run_record(log):
        (record,) = [r.run for r in finished_wandb_log(log) if r.HasField("run")]
        return record

    trials = sorted(out.glob("trials/*/wandb/offline-run-*/run-*.wandb"))
    assert len(trials) == 2
    for log in trials:
        record = run_record(log)
        assert (record.run_group, record.job_type) == ("t", "trial")
        history = [i.key or ".".join(i.nested_key) for r in finished_wandb_log(log) if r.HasField("history") for i in r.history.item]
        assert "cmni" in history and "train/val_loss" in history
    (sweep_log,) = sorted(out.glob("wandb/offline-run-*/run-*.wandb"))
    record = run_record(sweep_log)
    assert (record.run_group, record.job_type, record.display_name) == ("t", "sweep", "t-summary")
    # a re-run logs nothing twice
    assert main(["sweep", str(tracked), "--sweep-dir", str(out), "--dry-run"]) == 0
    assert main(["sweep", str(tracked), "--sweep-dir", str(out)]) == 0
    assert len(sorted(out.glob("trials/*/wandb/offline-run-*/run-*.wandb"))) == 2


@pytest.mark.slow  # the tiny sweep, then its analysis again
def test_analysis_in_member_chunks_matches_one_call(tiny_sweep, tmp_path, monkeypatch):
    """Large populations are analysed a few members at a time (bounded memory): the
    trials' CMNI, permutation and random-init p-values are those of one call."""
    from mirror.data.pipeline import build_dataset
    from mirror.runs.report import read_csv

    path, root = tiny_sweep
    sweep = load_sweep(path)
    monkeypatch.setattr(sweep_run, "ANALYSIS_MODELS", 2)  # 2 checkpoints: one member per call
    population = next(p for p in populations(sweep.trials, sweep.max_population) if len(p.trials) == 3)
    dataset, _ = build_dataset(population.config)
    run_dir = root / "one" / "populations" / population.population_id
    sweep_run.analyse_population(population, sweep, tmp_path, run_dir, dataset, None, log=lambda line: None)
    for trial in population.trials:
        one, chunked = (read_csv(trial_dir(d, trial) / "cmni.csv") for d in (root / "one", tmp_path))
        for column in ("cmni", "p_permutation", "p_init", "val_loss"):
            np.testing.assert_allclose([float(r[column]) for r in chunked], [float(r[column]) for r in one], rtol=1e-5, err_msg=column)


@pytest.mark.slow  # a sweep of three trials
def test_diverging_trials_are_recorded_and_the_sweep_goes_on(tiny_sweep, tmp_path):
    path, _ = tiny_sweep
    spec = yaml.safe_load(path.read_text())
    spec["sweep"] = {"trials": [
        {"train.lr": 1.0e30, "train.batch_size": 20},  # a population that diverges entirely in epoch 1
        {"train.lr": 1.0e-3}, {"train.lr": 1.0e30},    # one member of two diverges
    ], "trial_figures": False}  # fmt: skip
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(bad), "--sweep-dir", str(tmp_path / "out")]) == 0
    rows = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    header = rows[0].split(",")
    table = [dict(zip(header, r.split(","))) for r in rows[1:]]
    assert [(r["epochs"], r["diverged"]) for r in table] == [("0", "1"), ("2", "0"), ("1", "1")]
    assert table[0]["peak_cmni"] == "" and float(table[1]["peak_cmni"]) > 0
    assert "2 trial(s) diverged" in (tmp_path / "out" / "report.md").read_text()
