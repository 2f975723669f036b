"""`mirror run` end to end on a tiny config: every output, resume, early errors, the report."""

import json
import math
import sys
from pathlib import Path

import pytest

from mirror.cli import main
from mirror.runs.report import trajectory

sys.path.insert(0, str(Path(__file__).parent))  # test_tracking.finished_wandb_log
from conftest import SMALL_DATA  # noqa: E402

# One model (the quickstart trains a population of 5 seeds).
TINY = [
    *SMALL_DATA, "--train.epochs", "3", "--train.lr", "1e-3", "--train.population_seeds", "[]",
    "--analysis.permutations", "16", "--analysis.init_seeds", "4", "--tracking.mode", "disabled",
]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, small_dataset, dataset_cache):
    run = tmp_path_factory.mktemp("experiment") / "run"
    assert main(["run", *TINY, "--data.cache_dir", str(dataset_cache), "--run-dir", str(run)]) == 0
    return run


@pytest.mark.slow  # `mirror run` end to end
def test_run_writes_every_output(run_dir):
    for name in ("config.yaml", "dataset.json", "metrics.jsonl", "test_metrics.json", "cmni.csv", "neurons.csv", "report.md"):
        assert (run_dir / name).is_file(), name
    assert len(list((run_dir / "checkpoints").iterdir())) >= 3
    assert (run_dir / "figures" / "training.png").is_file() and (run_dir / "figures" / "cmni_seeds.png").is_file()


@pytest.mark.slow  # `mirror run` end to end
def test_report_has_the_papers_comparison_and_the_trajectory(run_dir):
    report = (run_dir / "report.md").read_text()
    for heading in ("## Test set", "## CMNI across epochs", "## CMNI across seeds", "## Null baselines and the published leak", "## Mirror candidates", "## Against the paper"):
        assert heading in report
    assert "rise-and-fall pattern" not in report and "cannot be tested with 1 seed" in report  # one member: no verdict
    assert "| test accuracy (Table 3) | 0.9210 |" in report
    accuracy = json.loads((run_dir / "test_metrics.json").read_text())["accuracy"]
    assert f"Accuracy **{accuracy:.4f}**" in report


def test_trajectory_reports_peak_and_final_but_no_verdict():
    rows = [
        {"member": "0", "epoch": str(e), "cmni": str(c), "val_loss": str(v)}
        for e, c, v in [(1, 0.001, 0.2), (2, 0.006, 0.07), (3, 0.004, 0.05), (4, 0.003, 0.04)]
    ]
    t = trajectory(rows)
    assert (t["peak_epoch"], t["peak_cmni"], t["final_cmni"]) == (2, 0.006, 0.003)
    assert math.isclose(t["peak_to_final"], 2.0) and (t["best_val_loss"], t["best_val_loss_epoch"]) == (0.04, 4)
    # One model's "final below peak" is no test (a flat noisy curve passes it too): the
    # rise-and-fall verdict is over seeds (tests/test_seed_verdicts.py).
    assert "rise_and_fall" not in t


@pytest.mark.slow  # `mirror run` end to end, then resumed
def test_resume_redoes_only_what_is_missing(run_dir, capsys):
    checkpoints = sorted((run_dir / "checkpoints").iterdir())
    stamps = [p.stat().st_mtime_ns for p in checkpoints]
    (run_dir / "report.md").unlink()
    (run_dir / "cmni.csv").unlink()
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert (run_dir / "report.md").is_file() and (run_dir / "cmni.csv").is_file()
    assert [p.stat().st_mtime_ns for p in sorted((run_dir / "checkpoints").iterdir())] == stamps


def test_bad_fields_fail_before_any_work(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", "--train.lr", "-1", "--run-dir", str(run), "--data.cache_dir", str(tmp_path / "c")]) == 2
    assert "train.lr = -1.0 is invalid: expected a positive number" in capsys.readouterr().err
    assert main(["run", "--model.widht", "3", "--run-dir", str(run)]) == 2
    assert "unknown config field(s) model.widht" in capsys.readouterr().err
    assert not run.exists() and not (tmp_path / "c").exists()


@pytest.mark.slow  # a tracked population run
def test_population_members_are_separate_grouped_wandb_runs(small_dataset, dataset_cache, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from test_tracking import finished_wandb_log

    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "pop"
    args = [a for a in TINY if a not in ("--tracking.mode", "disabled")]
    args = [("2" if a == "3" and args[i - 1] == "--train.epochs" else a) for i, a in enumerate(args)]
    assert main(["run", *args, "--train.population_seeds", "[0, 1]", "--tracking.mode", "offline",
                 "--data.cache_dir", str(dataset_cache), "--run-dir", str(run)]) == 0  # fmt: skip
    logs = sorted(run.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(logs) == 2
    for member, log in enumerate(logs):
        records = finished_wandb_log(log)
        (run_record,) = [r.run for r in records if r.HasField("run")]
        assert run_record.run_group == "pop"
        assert run_record.display_name in ("pop-m0", "pop-m1")
        epochs = [
            json.loads(i.value_json) for r in records if r.HasField("history") for i in r.history.item if (i.key or ".".join(i.nested_key)) == "cmni"
        ]
        assert len(epochs) == 2


@pytest.mark.slow  # `mirror run` end to end
def test_report_gives_every_variant_with_its_nulls_from_cmni_csv(run_dir):
    """The report's per-variant numbers are cmni.csv's (the selected checkpoint's row), and
    the matching diagnostics are summary.json's."""
    import csv

    from mirror.runs.report import VARIANT_MEANING

    report = (run_dir / "report.md").read_text()
    with open(run_dir / "cmni.csv", newline="") as fh:
        selected = next(r for r in csv.DictReader(fh) if r["selected"] == "1")
    for name, (value, p_perm, p_init) in {
        "cmni": ("cmni", "p_permutation", "p_init"),
        "cmni_scaled": ("cmni_scaled", "p_permutation_scaled", "p_init_scaled"),
        "cmni_matched": ("cmni_matched", "p_permutation_matched", "p_init_matched"),
    }.items():
        row = next(line for line in report.splitlines() if line.startswith(f"| {name} | {VARIANT_MEANING[name]} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2:] == [f"{float(selected[value]):.6f}", f"{float(selected[p_init]):.3f}", f"{float(selected[p_perm]):.3f}"], row  # random init first
    ess = json.loads((run_dir / "summary.json").read_text())["cmni_matching"]["ess"]
    assert f"none {ess[0]:,.0f} (" in report
    assert "| epoch | val loss | cmni | p init | p perm | cmni_scaled | p init | p perm | cmni_matched | p init | p perm |" in report
    assert "- **against untrained networks** at the selected checkpoint" in report and "random-init null (p = " in report
