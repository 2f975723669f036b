"""Dataset format 2: rows spread evenly over the episode's phases at any size,
Frog's and Toad's true positions as metadata, and manifest tallies checked on load."""

import json
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SMALL_DATA

from mirror.data import pipeline
from mirror.data.labels import frog_distress, idle_shown, oracle_label, scenario, toad_distress
from mirror.data.rollout import make_burn_in, phase_offsets
from mirror.data.store import ARRAYS, FORMAT_VERSION, DatasetError, load_dataset, write_dataset
from mirror.data.tallies import phase_coverage
from mirror.env.constants import layout_of
from mirror.env.rollout import start_games
from mirror.runs.config import load_config


def test_phase_offsets_spread_games_evenly_over_the_episode():
    np.testing.assert_array_equal(phase_offsets(8, 100), [0, 12, 25, 37, 50, 62, 75, 87])
    per_round = np.bincount(phase_offsets(4096, 100), minlength=100)
    assert per_round.min() == 40 and per_round.max() == 41 and per_round.sum() == 4096
    np.testing.assert_array_equal(phase_offsets(3, 1), [0, 0, 0])


def test_burn_in_plays_each_game_its_own_number_of_rounds():
    config = load_config(None, SMALL_DATA)  # its 128 games: the program the pipeline tests compile
    params, games = config.env_params, config.data.games
    offsets = np.zeros(games, np.int32)
    offsets[1:4] = [1, 7, 99]
    start = start_games(jax.random.key(3), params, games)
    burned = make_burn_in(params, games, config.data.behaviour_probs)(jax.random.key(4), start, offsets)
    # Frog and Toad each take a turn per round, and no game reaches the end of its episode.
    np.testing.assert_array_equal(burned.turn, 2 * offsets)
    same = jax.tree_util.tree_map(lambda a, b: bool(jnp.all(a[0] == b[0])), burned, start)
    assert all(jax.tree_util.tree_leaves(same))  # offset 0: untouched
    assert not bool(jnp.all(burned.rough[3] == start.rough[3]))  # 99 rounds: the ground has scrolled


@pytest.mark.slow
@pytest.mark.parametrize("staggered", [True, False])
def test_a_small_dataset_covers_every_phase_of_the_episode(tmp_path, monkeypatch, staggered):
    """3,000 rows take under half a chunk of 128 games x 64 rounds. Before the stagger
    (every game starting at round 0: offsets all 0) they came from the episode's first
    rounds only; with it, every round is there and the kept rows spread evenly, apart
    from the first rounds, whose states repeat (deduplicated)."""
    if not staggered:
        monkeypatch.setattr(pipeline, "phase_offsets", lambda games, rounds: np.zeros(games, np.int32))
    config = load_config(None, SMALL_DATA + ["--data.rows", "3000", "--data.test_rows", "0", "--data.cache_dir", str(tmp_path)])
    arrays, stats = pipeline.generate_arrays(config)
    rounds = arrays["episode_rounds"]
    coverage = phase_coverage(rounds, 100)
    if not staggered:
        assert rounds.max() < 50  # never sees the second half of an episode
        return
    assert min(coverage["rows_per_round"]) > 0  # every round of the episode
    shares = np.array(coverage["share_per_tenth"])
    assert shares[0] > 0.04
    later = shares[1:]
    assert later.min() > 0.8 * later.mean() and later.max() < 1.2 * later.mean(), shares
    # The rows the rollout produced, before deduplication, are even by construction.
    sampled = np.array(stats["sampled_share_per_tenth"])
    assert np.abs(sampled - 0.1).max() < 0.01, sampled


def test_labels_scenarios_and_idle_codes_recompute_from_inputs_and_positions(small_dataset):
    """positions.npy holds what the model input hides: Frog's position (the zeroed last
    code) and Toad's true position. With them every row's label, scenario and idle codes
    come back exactly."""
    ds = small_dataset
    assert ds.positions.dtype == np.int8 and ds.positions.shape == (len(ds.labels), 2)
    rows = ds.inputs.copy()
    rows[:, layout_of(rows).position] = ds.positions[:, 0]
    frog, toad = ds.positions[:, 0], ds.positions[:, 1]
    assert frog.min() >= 0 and max(frog.max(), toad.max()) < ds.world_width
    toad_d = toad_distress(rows, toad)
    np.testing.assert_array_equal(oracle_label(rows, toad_d), ds.labels)
    np.testing.assert_array_equal(scenario(frog_distress(rows), toad_d), ds.scenarios)
    np.testing.assert_array_equal(idle_shown(rows, toad), ds.idle_shown)
    # The positions vary (both players move), and positions are never a model input.
    assert len(np.unique(frog)) > 5 and len(np.unique(toad)) > 5
    assert not ds.inputs[:, layout_of(rows).position].any()


def test_manifest_records_the_phase_coverage_and_every_tally(small_dataset):
    manifest = small_dataset.manifest
    assert manifest["format_version"] == FORMAT_VERSION == 2
    coverage = manifest["phase_coverage"]
    assert coverage == phase_coverage(small_dataset.episode_rounds, 100)
    assert coverage["episode_rounds"] == 100 and sum(coverage["rows_per_round"]) == 12000
    assert abs(sum(coverage["share_per_tenth"]) - 1) < 1e-3
    assert manifest["position_counts"]["toad"] == np.bincount(small_dataset.positions[:, 1], minlength=32).tolist()
    assert manifest["idle_shown_counts"]["frog"] == int(small_dataset.idle_shown[:, 0].sum())
    assert manifest["turns_simulated"] == 2 * (manifest["raw_rows"] + manifest["burn_in_rounds"])


def _edited_copy(dataset, tmp_path, edit):
    copy = tmp_path / "dataset"
    shutil.copytree(dataset.path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    edit(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize(
    "field, edit",
    [
        ("phase_coverage.rows_per_round[40]", lambda m: m["phase_coverage"]["rows_per_round"].__setitem__(40, 0)),
        ("position_counts.frog[15]", lambda m: m["position_counts"]["frog"].__setitem__(15, 1)),
        ("idle_shown_counts.toad", lambda m: m["idle_shown_counts"].__setitem__("toad", 7)),
        ("counts.train.jump.frog", lambda m: m["counts"]["train"]["jump"].__setitem__("frog", -1)),
        ("phase_coverage.share_per_tenth[0]", lambda m: m["phase_coverage"]["share_per_tenth"].__setitem__(0, 0.1)),
    ],
)
def test_an_edited_tally_is_named_on_load(small_dataset, tmp_path, field, edit):
    copy = _edited_copy(small_dataset, tmp_path, edit)
    with pytest.raises(DatasetError, match=rf"manifest\.json: {re.escape(field)} = .* but the arrays hold"):
        load_dataset(copy)


def test_a_missing_tally_or_row_count_is_refused(small_dataset, tmp_path, capsys):
    copy = _edited_copy(small_dataset, tmp_path, lambda m: m.pop("position_counts"))
    with pytest.raises(DatasetError, match="the field position_counts is missing"):
        load_dataset(copy)
    shutil.rmtree(copy)
    copy = _edited_copy(small_dataset, tmp_path, lambda m: m.__setitem__("rows", 11999))
    with pytest.raises(DatasetError, match=r"inputs\.npy has dtype int8 and shape \(12000, 100\); .*says rows = 11999"):
        load_dataset(copy)
    # From the command line: one clear line, exit code 2.
    from mirror.cli import main

    assert main(["data", "inspect", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "rows = 11999" in err


def test_out_of_range_positions_and_rounds_are_refused(small_dataset, tmp_path):
    arrays = {name: getattr(small_dataset, name) for name in ARRAYS}
    bad = dict(arrays, positions=arrays["positions"].copy())
    bad["positions"][5, 1] = 32  # one past the last cell
    with pytest.raises(DatasetError, match=r"positions\.npy holds values in \[\d+, 32\]; expected \[0, 31\]"):
        write_dataset(tmp_path / "bad", bad, {"rows": 12000, "config": small_dataset.manifest["config"]})
    target = write_dataset(tmp_path / "ds", arrays, {"rows": 12000, "config": small_dataset.manifest["config"]})
    np.save(target / "episode_rounds.npy", np.full(12000, 100, np.int32))
    with pytest.raises(DatasetError, match=r"episode_rounds\.npy holds values in \[100, 100\]; expected \[0, 99\]"):
        load_dataset(target, verify=False)


def test_uneven_arrays_and_format_1_are_refused(small_dataset, tmp_path):
    arrays = {name: getattr(small_dataset, name) for name in ARRAYS}
    with pytest.raises(ValueError, match="every array needs 12000 rows .*positions 11999"):
        write_dataset(tmp_path / "ds", dict(arrays, positions=arrays["positions"][1:]), {})
    assert not (tmp_path / "ds").exists()
    copy = _edited_copy(small_dataset, tmp_path, lambda m: m.__setitem__("format_version", 1))
    with pytest.raises(DatasetError, match="format_version 1 != 2 .*written by an older mirror"):
        load_dataset(copy)
