"""Labels the env never produces (help at D = 0): the supervised dataset refuses them naming
the setting; an RL run's probe set (a) drops their test share and renormalises the others."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import RL_DEFAULT_GAME, TINY_DATA, overrides, rl_values

from mirror.base.errors import DatasetError
from mirror.cli import main
from mirror.data.label_reach import help_dependency_threshold, impossible_labels, rightmost_cell
from mirror.data.pipeline import build_dataset, dataset_path
from mirror.data.split import TEST, assign_splits, holdout_label_counts, holdout_label_shares
from mirror.env.constants import HELP, LEAP
from mirror.env.params import EnvParams
from mirror.runs.config import load_config

BEHAVIOUR = (0.5, 0.25, 0.125, 0.125)

# 3,000 rows at D = 0.61: help is possible there (a player can reach cell 26) but so rare
# that these rows hold none, so only the rows, not the settings, say it is missing.
RARE_HELP = [
    "--data.rows", "3000", "--data.test_rows", "100", "--data.games", "64", "--data.rounds_per_chunk", "32",
    "--data.test_label_shares", "[0.4, 0.4, 0.15, 0.05]", "--env.dependency", "0.61",
]  # fmt: skip


# ----------------------------------------------------------------------------- the split rule


def test_a_label_without_rows_is_dropped_and_the_others_renormalised_exactly():
    labels = np.array([0] * 60 + [1] * 60 + [2] * 20, np.int8)  # no help rows
    shares, dropped = holdout_label_shares(labels, 100, (0.45, 0.45, 0.05, 0.05), drop_absent=True, reasons={HELP: "why"})
    np.testing.assert_allclose(shares, [0.45 / 0.95, 0.45 / 0.95, 0.05 / 0.95, 0.0])
    assert dropped == {"help": "why"}
    # 47.37, 47.37, 5.26 rows: floors 47 + 47 + 5 = 99, the leftover row to the first largest remainder.
    np.testing.assert_array_equal(holdout_label_counts(100, shares), [48, 47, 5, 0])
    np.testing.assert_array_equal(holdout_label_counts(4000, shares), [1895, 1895, 210, 0])  # rl_quickstart's test set
    splits = assign_splits(jax.random.key(0), labels, 100, shares, 0.2)
    np.testing.assert_array_equal(np.bincount(labels[splits == TEST], minlength=4), [48, 47, 5, 0])


def test_the_strict_rule_names_the_reason_or_asks_for_more_rows():
    labels = np.array([0] * 60 + [1] * 60 + [2] * 20, np.int8)
    with pytest.raises(DatasetError, match=r"^why; the test set needs 5 rows of it \(data.test_label_shares\[3\] = 0.05\)"):
        holdout_label_shares(labels, 100, (0.45, 0.45, 0.05, 0.05), drop_absent=False, reasons={HELP: "why"})
    with pytest.raises(DatasetError, match=r"no rows of label help \(3\) among the 140 rows, and the test set needs 5 .* generate more rows"):
        holdout_label_shares(labels, 100, (0.45, 0.45, 0.05, 0.05), drop_absent=False)


def test_shares_stay_when_every_needed_label_has_rows():
    labels = np.array([0] * 60 + [1] * 60 + [2] * 20, np.int8)
    # help's share gives it 0 of 10 test rows (4.8, 4.8, 0.2, 0.2 -> 5, 5, 0, 0): nothing to drop.
    for drop in (False, True):
        shares, dropped = holdout_label_shares(labels, 10, (0.48, 0.48, 0.02, 0.02), drop_absent=drop)
        np.testing.assert_array_equal(shares, [0.48, 0.48, 0.02, 0.02])
        assert dropped == {}
    with pytest.raises(DatasetError, match="no rows of any label with a test share"):
        holdout_label_shares(labels, 10, (0.0, 0.0, 0.0, 1.0), drop_absent=True)


# ----------------------------------------------------------------------------- what the env can produce


def test_rightmost_cell_by_hand():
    # D = 0: the scroll puts the leader back on W//2 after every move.
    assert [rightmost_cell(w, 5, 0) for w in (8, 12, 32)] == [4, 6, 16]
    # D = 0.5, W = 32: 16 -> 16 + ceil(0.5 * 21 / 2) = 22 -> 16 + ceil(0.5 * 27 / 2) = 23 -> 23.
    assert rightmost_cell(32, 5, 5000) == 23
    assert rightmost_cell(32, 5, 6000) == 25  # 16 + ceil(0.3 * 30) = 25: still short of cell 26
    assert rightmost_cell(32, 5, 6001) == 26
    assert rightmost_cell(32, 5, 10_000) == 31
    assert help_dependency_threshold(32, 5) == 0.6
    assert help_dependency_threshold(12, 5) is None  # W - 6 = 6 = W//2: reached at D = 0


def test_impossible_labels_name_the_setting():
    at_d0 = impossible_labels(EnvParams(dependency=0.0), BEHAVIOUR)
    assert list(at_d0) == [HELP]
    assert at_d0[HELP].startswith("label help never occurs at env.dependency = 0.0: ")
    assert "cell 16" in at_d0[HELP] and "help needs env.dependency > 0.6" in at_d0[HELP]
    assert impossible_labels(EnvParams(), BEHAVIOUR) == {}
    assert impossible_labels(EnvParams(dependency=0.7), BEHAVIOUR) == {}
    assert impossible_labels(EnvParams(dependency=0.0, world_width=12), BEHAVIOUR) == {}
    smooth = impossible_labels(EnvParams(obstacle_rate_max=0.0), BEHAVIOUR)
    assert list(smooth) == [LEAP] and "env.obstacle_rate_max = 0.0" in smooth[LEAP]  # D = 1 still reaches cell 31
    smooth_d = impossible_labels(EnvParams(obstacle_rate_step=0.0, dependency=0.9), BEHAVIOUR)  # reaches 30, not 31
    assert sorted(smooth_d) == [LEAP, HELP] and "env.obstacle_rate_step = 0.0 and env.dependency = 0.9" in smooth_d[HELP]
    short = impossible_labels(EnvParams(episode_turns=2), BEHAVIOUR)
    assert sorted(short) == [LEAP, HELP] and all("env.episode_turns = 2" in why for why in short.values())
    jumps = impossible_labels(EnvParams(), (0.0, 1.0, 0.0, 0.0))
    assert sorted(jumps) == [LEAP, HELP] and all("data.behaviour_probs" in why for why in jumps.values())


def test_a_narrow_world_at_d0_does_produce_help(tmp_path):
    """The bound claims nothing it cannot prove: at W = 12 the D = 0 leader stands on cell
    6 = W - 6, and the data does hold help rows (and never a player right of cell 6)."""
    config = load_config(None, [*RARE_HELP, "--env.dependency", "0", "--env.world_width", "12", "--data.cache_dir", str(tmp_path)])
    dataset, _ = build_dataset(config)
    assert np.count_nonzero(dataset.labels == HELP) > 0
    assert dataset.positions.max() == rightmost_cell(12, 5, 0) == 6


# ----------------------------------------------------------------------------- the two commands


def test_supervised_run_at_d0_fails_naming_env_dependency_before_any_work(tmp_path, capsys):
    cache = tmp_path / "cache"
    rc = main(["run", "--run-dir", str(tmp_path / "run"), *TINY_DATA, "--data.cache_dir", str(cache), "--env.dependency", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    line = next(x for x in err.splitlines() if "error" in x)
    assert line.startswith("mirror run: error: label help never occurs at env.dependency = 0.0: "), line
    assert "data.test_label_shares[3] = 0.05" in line and "generate more rows" not in line
    assert not cache.exists() or not any(cache.iterdir())  # refused before generating anything


def test_rare_label_is_dropped_for_rl_and_refused_for_the_supervised_cache(tmp_path):
    config = load_config(None, [*RARE_HELP, "--data.cache_dir", str(tmp_path)])
    assert impossible_labels(config.env_params, BEHAVIOUR) == {}  # possible in principle
    dataset, reused = build_dataset(config, drop_absent_labels=True)
    assert not reused and np.count_nonzero(dataset.labels == HELP) == 0
    assert dataset.manifest["test_labels_dropped"] == {"help": "no rows of label help among the 3,000 rows"}
    np.testing.assert_allclose(dataset.manifest["test_label_shares"], [0.4 / 0.95, 0.4 / 0.95, 0.15 / 0.95, 0.0])
    np.testing.assert_array_equal(np.bincount(dataset.labels[dataset.splits == TEST], minlength=4), [42, 42, 16, 0])
    # The strict build must not take the cached probe set for a supervised dataset.
    with pytest.raises(DatasetError, match=r"no rows of label help \(3\) among the 3,000 rows, and the test set needs 5 .*generate more rows"):
        build_dataset(config)
    assert dataset_path(config).is_dir()


@pytest.mark.slow  # `mirror rl` end to end (about 20 s)
def test_mirror_rl_at_d0_drops_help_from_probe_set_a_and_records_the_shares(dataset_cache, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["rl", "--config", RL_DEFAULT_GAME, "--run-dir", str(run_dir), *overrides(rl_values(dataset_cache, updates=2)), "--env.dependency", "0"]) == 0
    out = capsys.readouterr().out
    assert "probe set (a) has no help rows (label help never occurs at env.dependency = 0.0: " in out
    assert "hop 0.421, jump 0.421, leap 0.158, help 0.000" in out  # TINY_DATA's 0.4, 0.4, 0.15 over 0.95
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["probe_a_label_shares"] == {"hop": 0.421053, "jump": 0.421053, "leap": 0.157895, "help": 0.0}
    assert list(summary["probe_a_labels_dropped"]) == ["help"]
    assert "Label shares of probe set (a): hop 0.421, jump 0.421, leap 0.158, help 0.000. No help rows" in (run_dir / "report.md").read_text()
    manifest = json.loads((run_dir / "dataset.json").read_text())
    dataset = np.load(Path(manifest["path"]) / "labels.npy"), np.load(Path(manifest["path"]) / "splits.npy")
    # 500 test rows: 210.53, 210.53, 78.95 -> 210, 210, 78, and the two leftovers to the largest remainders.
    np.testing.assert_array_equal(np.bincount(dataset[0][dataset[1] == TEST], minlength=4), [211, 210, 79, 0])
    assert np.load(Path(manifest["path"]) / "positions.npy").max() == 16  # no player right of W//2 at D = 0
