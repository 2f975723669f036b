"""The dataset pipeline end to end: dedupe, split, determinism, cache, atomic writes, checks."""

import json

import jax
import numpy as np
import pytest
from conftest import SMALL_DATA as SMALL

from mirror.data.dedupe import UniqueRows, hash_rows, row_keys
from mirror.data.pipeline import build_dataset, dataset_path, generate_arrays
from mirror.data.split import TEST, TRAIN, VALIDATION, assign_splits, holdout_label_counts
from mirror.data.store import ARRAYS, DatasetError, load_dataset, write_dataset
from mirror.runs.config import load_config


def small_config(cache_dir, *extra):
    return load_config(None, SMALL + ["--data.cache_dir", str(cache_dir), *extra])


@pytest.fixture
def dataset(small_dataset):
    """conftest's 12,000-row dataset (shared: read only)."""
    return small_dataset


def test_rows_are_unique_and_complete(dataset):
    assert len(dataset.labels) == 12000
    pairs = np.concatenate([dataset.inputs.view(np.uint8), dataset.labels.view(np.uint8)[:, None]], axis=1)
    assert len(np.unique(pairs, axis=0)) == len(pairs)
    # Model inputs hide own code, score and position (spec §5.6) but keep the energy.
    assert not dataset.inputs[:, [96, 98, 99]].any()
    assert dataset.inputs[:, 97].any()


def test_split_is_disjoint_with_exact_holdout_label_counts(dataset):
    splits, labels = dataset.splits, dataset.labels
    np.testing.assert_array_equal(np.bincount(labels[splits == TEST], minlength=4), [160, 160, 60, 20])
    # Each row has exactly one split, so test and train/validation are disjoint by index;
    # since rows are unique, they are disjoint by content too.
    rest = np.count_nonzero(splits != TEST)
    assert np.count_nonzero(splits == VALIDATION) == rest - round(rest * 0.8)
    assert np.count_nonzero(splits == TRAIN) == round(rest * 0.8)


def test_manifest_counts_match_arrays(dataset):
    counts = dataset.manifest["counts"]
    assert counts["test"]["leap"]["none"] == int(np.sum((dataset.splits == TEST) & (dataset.labels == 2) & (dataset.scenarios == 0)))
    assert sum(v for split in counts.values() for row in split.values() for v in row.values()) == 12000
    # Turns: two per collected round, plus the burn-in's that stagger the games' phases.
    manifest = dataset.manifest
    assert manifest["rows"] == 12000
    assert manifest["turns_simulated"] == 2 * (manifest["raw_rows"] + manifest["burn_in_rounds"])


@pytest.mark.slow  # builds the dataset twice more
def test_same_config_same_bytes_and_cache_reuse(tmp_path, dataset):
    again, reused = build_dataset(small_config(tmp_path))
    assert not reused
    assert again.manifest["sha256"] == dataset.manifest["sha256"]
    cached, reused = build_dataset(small_config(tmp_path))
    assert reused and cached.path == again.path
    other = build_dataset(small_config(tmp_path, "--seed", "1"))[0]
    assert other.path != again.path and other.manifest["sha256"]["inputs.npy"] != again.manifest["sha256"]["inputs.npy"]


def test_cache_key_covers_env_and_data_but_not_cache_dir(tmp_path):
    base = dataset_path(small_config(tmp_path))
    assert dataset_path(small_config(tmp_path, "--env.dependency", "0.5")) != base
    assert dataset_path(small_config(tmp_path, "--data.rows", "13000")) != base
    assert dataset_path(small_config(tmp_path / "elsewhere")).name == base.name


def test_crash_mid_write_leaves_no_dataset(tmp_path, dataset):
    arrays = {name: getattr(dataset, name) for name in ARRAYS}
    target = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        write_dataset(target, arrays, {"rows": 12000}, _crash_after="labels")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone too
    write_dataset(target, arrays, {"rows": 12000})
    with pytest.raises(FileExistsError):
        write_dataset(target, arrays, {"rows": 12000})
    assert len(load_dataset(target).labels) == 12000


def test_load_names_the_file_that_fails(tmp_path, dataset):
    arrays = {name: getattr(dataset, name) for name in ARRAYS}
    target = write_dataset(tmp_path / "ds", arrays, {"rows": 12000})
    labels = np.load(target / "labels.npy")
    labels[0] = (labels[0] + 1) % 4
    np.save(target / "labels.npy", labels)
    with pytest.raises(DatasetError, match=r"labels\.npy fails its sha256 check"):
        load_dataset(target)
    (target / "manifest.json").unlink()
    with pytest.raises(DatasetError, match="manifest.json is missing"):
        load_dataset(target)


def test_load_checks_shapes_and_dtypes(tmp_path, dataset):
    arrays = {name: getattr(dataset, name) for name in ARRAYS}
    arrays["scenarios"] = arrays["scenarios"].astype(np.int32)
    target = write_dataset(tmp_path / "ds", arrays, {"rows": 12000})
    with pytest.raises(DatasetError, match=r"scenarios\.npy has dtype int32"):
        load_dataset(target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["rows"] = 5
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"inputs\.npy has dtype int8 and shape \(12000, 100\)"):
        load_dataset(target, verify=False)


def test_pickled_arrays_are_refused(tmp_path, dataset):
    arrays = {name: getattr(dataset, name) for name in ARRAYS}
    target = write_dataset(tmp_path / "ds", arrays, {"rows": 12000})
    np.save(target / "splits.npy", np.array([{"evil": 1}] * 12000, dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match=r"splits\.npy"):
        load_dataset(target, verify=False)


def test_unique_rows_keeps_first_occurrences_across_chunks():
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 3, (3000, 100)).astype(np.int8)
    inputs[:, 4:] = 0  # 81 distinct inputs
    labels = rng.integers(0, 2, 3000).astype(np.int8)
    unique = UniqueRows()
    kept = [unique.add(row_keys(inputs[i : i + 1000], labels[i : i + 1000])) + i for i in (0, 1000, 2000)]
    kept = np.concatenate(kept)
    keys = row_keys(inputs, labels)
    _, first = np.unique(keys, axis=0, return_index=True)
    np.testing.assert_array_equal(kept, np.sort(first))
    np.testing.assert_array_equal(unique.kept_keys(), keys[np.sort(first)])


def test_hash_collisions_never_drop_a_distinct_row(monkeypatch):
    """Force every row to one hash: the byte comparison must still keep distinct rows."""
    import mirror.data.dedupe as dedupe

    monkeypatch.setattr(dedupe, "hash_rows", lambda keys: np.zeros(len(keys), np.uint64))
    inputs = np.array([[1] * 100, [2] * 100, [1] * 100], np.int8)
    unique = dedupe.UniqueRows()
    np.testing.assert_array_equal(unique.add(row_keys(inputs, np.zeros(3, np.int8))), [0, 1])
    np.testing.assert_array_equal(unique.add(row_keys(inputs[:1], np.ones(1, np.int8))), [0])


def test_hash_is_sensitive_to_every_byte():
    keys = np.zeros((105, 104), np.uint8)
    for i in range(104):
        keys[i + 1, i] = 1
    assert len(np.unique(hash_rows(keys))) == 105


def test_split_needs_enough_rows_per_label():
    labels = np.array([0] * 50 + [1] * 50 + [2] * 5 + [3] * 5, np.int8)
    with pytest.raises(DatasetError, match="not enough rows of label 2 for the test set: need 10, have 5"):
        assign_splits(jax.random.key(0), labels, 100, (0.4, 0.4, 0.1, 0.1), 0.2)
    np.testing.assert_array_equal(holdout_label_counts(7, (0.4, 0.4, 0.1, 0.1)), [3, 3, 1, 0])


def test_generation_stops_with_a_clear_error_when_rows_run_out(tmp_path):
    config = small_config(tmp_path, "--data.max_chunks", "1", "--data.rows", "9000")
    with pytest.raises(DatasetError, match=r"only [\d,]+ unique rows after data.max_chunks=1 chunks \(8,192 raw rows\)"):
        generate_arrays(config)


def test_odd_episode_length_is_rejected_before_work(tmp_path):
    from mirror.base.errors import ConfigError

    with pytest.raises(ConfigError, match="env.episode_turns = 201 is invalid: expected an even integer"):
        small_config(tmp_path, "--env.episode_turns", "201")


@pytest.mark.slow  # `mirror generate` end to end
def test_generate_and_inspect_commands(tmp_path, capsys):
    from mirror.cli import main

    assert main(["generate", *SMALL, "--data.cache_dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "12,000 unique rows" in out and "test (400 rows)" in out
    assert main(["generate", *SMALL, "--data.cache_dir", str(tmp_path)]) == 0
    assert "reused cached dataset" in capsys.readouterr().out
    (path,) = [p for p in tmp_path.iterdir() if p.name.startswith("frog-toad-")]
    assert main(["data", "inspect", str(path), "--rows", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("\nrow ") == 2 and "energy " in out and "label " in out


def test_generate_rejects_bad_fields_before_work(tmp_path, capsys):
    from mirror.cli import main

    assert main(["generate", "--data.rowz", "5", "--data.cache_dir", str(tmp_path)]) == 2
    assert "unknown config field(s) data.rowz" in capsys.readouterr().err
    assert main(["generate", "--env.veil", "1.5", "--data.cache_dir", str(tmp_path)]) == 2
    assert "env.veil = 1.5 is outside the allowed range [0.0, 1.0]" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
