"""The observation size 3W+4 carried through the pipeline at every world width.

Before the fix, a dataset with `env.world_width` < 32 had its label in input column 3W+4
(the dedupe keys were laid out for 100 inputs) and zeros after it. These tests build tiny
datasets at several widths and check the model inputs, the dedupe, the store, a model
trained on them and the oracle policy against the data labels.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mirror.data.pipeline import build_dataset
from mirror.runs.config import load_config

# Each width compiles its own rollout (~10-20 s on a loaded CPU): the developer loop
# (`-m "not slow"`) checks three, the full suite five.
WIDTHS = (8, pytest.param(12, marks=pytest.mark.slow), 16, 24, pytest.param(32, marks=pytest.mark.slow))
TINY = ["--data.rows", "3000", "--data.test_rows", "0", "--data.games", "64", "--data.rounds_per_chunk", "32"]


def tiny_config(cache_dir, width: int, *extra):
    return load_config(None, TINY + ["--data.cache_dir", str(cache_dir), "--env.world_width", str(width), *extra])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("obs_width")


def dataset_at(data_dir, width: int):
    """The tiny dataset of world width `width` (built once, then reused from its cache)."""
    return build_dataset(tiny_config(data_dir, width))[0]


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_no_input_column_predicts_the_label_beyond_chance(data_dir, width):
    dataset = dataset_at(data_dir, width)
    inputs, labels = dataset.inputs, dataset.labels
    # A column that carries no label information equals the label in at most the largest
    # label share of rows (equality needs the column to hit the label's value).
    chance = np.bincount(labels, minlength=4).max() / len(labels)
    agreement = (inputs == labels[:, None]).mean(axis=0)
    assert agreement.max() <= chance + 0.05, (int(agreement.argmax()), float(agreement.max()), chance)
    assert inputs.shape == (3000, 3 * width + 4)


@pytest.mark.parametrize("width", WIDTHS)
def test_inputs_hide_own_code_score_and_position_and_keep_the_drawn_energy(data_dir, width):
    from mirror.data.processing import ENERGY_VALUES
    from mirror.env.constants import obs_layout

    dataset = dataset_at(data_dir, width)
    inputs, labels = dataset.inputs, dataset.labels
    assert dataset.manifest["input_width"] == 3 * width + 4
    layout = obs_layout(width)
    assert not inputs[:, [layout.own_code, layout.score, layout.position]].any()  # spec §5.6
    energy = inputs[:, layout.energy]
    assert set(np.unique(energy)) <= set(ENERGY_VALUES.tolist())
    assert np.mean(energy == 0) > 0.25  # drawn 0 with probability 0.5 (fewer after dedupe at small W)
    assert np.array_equal(labels == 1, energy == 0)  # label rule 1: jump exactly at energy 0
    assert set(np.unique(inputs[:, layout.ground])) <= {1, 2}
    assert set(np.unique(inputs[:, layout.flies])) <= {0, 3}


# --------------------------------------------------------------------------- dedupe


@pytest.mark.parametrize("num_inputs", [28, 40, 52, 76, 100])
def test_dedupe_is_exact_at_every_input_width(num_inputs):
    from mirror.data.dedupe import UniqueRows, key_bytes, row_inputs, row_keys

    rng = np.random.default_rng(num_inputs)
    inputs = np.zeros((3000, num_inputs), np.int8)
    inputs[:, :3] = rng.integers(0, 3, (3000, 3))  # 27 distinct inputs ...
    inputs[:, -1] = rng.integers(-128, 128, 3000) // 120  # ... the last column counts too
    labels = rng.integers(0, 4, 3000).astype(np.int8)
    keys = row_keys(inputs, labels)
    assert keys.shape[1] == key_bytes(num_inputs) and keys.shape[1] % 8 == 0 and num_inputs < keys.shape[1] <= num_inputs + 8
    unique = UniqueRows(key_bytes(num_inputs))
    kept = np.concatenate([unique.add(keys[i : i + 700]) + i for i in range(0, 3000, 700)])
    # Differential: the first occurrence of each distinct (input bytes, label) in a plain set.
    seen, expected = set(), []
    for i in range(3000):
        row = inputs[i].tobytes() + labels[i].tobytes()
        if row not in seen:
            seen.add(row)
            expected.append(i)
    np.testing.assert_array_equal(kept, expected)
    np.testing.assert_array_equal(row_inputs(unique.kept_keys(), num_inputs), inputs[expected])


def test_dedupe_compares_bytes_at_a_narrow_width_when_hashes_collide(monkeypatch):
    import mirror.data.dedupe as dedupe

    monkeypatch.setattr(dedupe, "hash_rows", lambda keys: np.zeros(len(keys), np.uint64))
    inputs = np.zeros((4, 52), np.int8)
    inputs[1, 51] = 1  # differs from row 0 only in the last input byte
    inputs[2, 0] = 1
    inputs[3] = inputs[0]  # a duplicate of the row that owns the (shared) hash
    unique = dedupe.UniqueRows()
    np.testing.assert_array_equal(unique.add(dedupe.row_keys(inputs, np.array([0, 0, 1, 0], np.int8))), [0, 1, 2])
    np.testing.assert_array_equal(unique.add(dedupe.row_keys(inputs[:2], np.array([0, 3], np.int8))), [1])
    with pytest.raises(ValueError, match="56 bytes"):  # another width cannot join these keys
        unique.add(dedupe.row_keys(np.zeros((1, 100), np.int8), np.zeros(1, np.int8)))


# --------------------------------------------------------------------------- store


def test_store_records_the_input_width_and_checks_it_on_load(tmp_path):
    import json

    from mirror.data.store import DatasetError, load_dataset, write_dataset

    rows = 6
    arrays = {
        "inputs": np.arange(rows * 52, dtype=np.int64).reshape(rows, 52).astype(np.int8),
        "labels": np.zeros(rows, np.int8), "scenarios": np.zeros(rows, np.int8),
        "idle_shown": np.zeros((rows, 2), bool), "splits": np.zeros(rows, np.int8),
        "positions": np.zeros((rows, 2), np.int8), "episode_rounds": np.zeros(rows, np.int32),
    }  # fmt: skip
    manifest = {"rows": rows, "config": {"env": {"world_width": 16}}}
    loaded = load_dataset(write_dataset(tmp_path / "w16", arrays, manifest))
    assert loaded.manifest["input_width"] == 52 and loaded.input_width == 52 and loaded.world_width == 16
    np.testing.assert_array_equal(loaded.inputs, arrays["inputs"])
    with pytest.raises(ValueError, match="world_width 32"):  # inputs that do not fit the config's width
        write_dataset(tmp_path / "bad", arrays, {"rows": rows, "config": {"env": {"world_width": 32}}})
    assert not (tmp_path / "bad").exists()

    # An edited manifest whose width disagrees with the config is named.
    file = tmp_path / "w16" / "manifest.json"
    edited = json.loads(file.read_text())
    file.write_text(json.dumps(dict(edited, input_width=100)))
    with pytest.raises(DatasetError, match="input_width 100 does not fit config.env.world_width 16"):
        load_dataset(tmp_path / "w16")

    # A dataset written before the fix: no recorded width, 100 columns at world width 16.
    old = dict(arrays, inputs=np.zeros((rows, 100), np.int8))
    path = write_dataset(tmp_path / "old", old, {"rows": rows})
    file = path / "manifest.json"
    pre_fix = {k: v for k, v in json.loads(file.read_text()).items() if k != "input_width"}
    file.write_text(json.dumps(dict(pre_fix, config={"env": {"world_width": 16}})))
    with pytest.raises(DatasetError, match=r"expected int8 and \(6, 52\).*label leaked.*build it again"):
        load_dataset(path)
    # ... while a width-32 one of that era still loads (format unchanged).
    file.write_text(json.dumps(dict(pre_fix, config={"env": {"world_width": 32}})))
    assert load_dataset(path).input_width == 100


# --------------------------------------------------------------------------- models


@pytest.mark.slow  # a training run and its analysis (~40 s on a loaded CPU, mostly compilation)
def test_a_model_trains_and_is_analysed_on_a_width_16_dataset(data_dir, tmp_path):
    import csv

    from mirror.cli import main
    from mirror.runs.checkpoints import load_run
    from mirror.runs.train_run import train_run

    test_set = ["--data.test_rows", "300", "--data.test_label_shares", "[0.4,0.4,0.15,0.05]"]
    config = tiny_config(data_dir, 16, *test_set, "--train.epochs", "2", "--train.lr", "1.0e-3", "--model.width", "6")
    dataset, _ = build_dataset(config)
    assert dataset.inputs.shape == (3000, 52)
    result = train_run(config, tmp_path / "run", dataset, log=lambda line: None)
    assert result.last_epoch == 2 and result.diverged == []
    run = load_run(tmp_path / "run")
    assert run.params["hidden_0"]["kernel"].shape == (2, 1, 52, 6)
    assert np.isfinite(run.metric("val_loss")).all() and run.metric("val_accuracy")[-1, 0] > 0.3
    out = tmp_path / "analysis"
    assert main(["cmni", str(tmp_path / "run"), "--out", str(out), "--analysis.permutations", "0", "--analysis.init_seeds", "2", "--analysis.roles", "paper"]) == 0
    with open(out / "weights.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 52 * 6 + 6 * 6 + 6 * 4


@pytest.mark.slow
def test_init_and_cmni_activations_follow_the_input_width():
    from mirror.agents.mlp import MLP, init_params, pad_params, unpad_params
    from mirror.analysis.cmni import all_activations_t

    params = init_params(jax.random.key(0), (6, 5), num_inputs=28)  # world width 8
    assert params["hidden_0"]["kernel"].shape == (28, 6)
    padded = pad_params(params, (6, 5), (9, 7))
    assert padded["hidden_0"]["kernel"].shape == (28, 9)
    jax.tree.map(np.testing.assert_array_equal, unpad_params(padded, (6, 5)), params)
    x = np.random.default_rng(0).integers(0, 10, (40, 28)).astype(np.int8)
    _, activations = MLP((6, 5)).apply({"params": params}, x)
    ours = all_activations_t(params, [jnp.ones(6, bool), jnp.ones(5, bool)], jnp.asarray(x, jnp.float32).T, "relu")
    expected = np.concatenate([np.asarray(a).T for a in activations])
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-5, atol=1e-5)


def test_leak_scenario_writes_the_score_input_of_the_rows_width():
    from mirror.analysis.groups import leak_scenario
    from mirror.env.constants import obs_layout

    inputs = np.zeros((4, 52), np.int8)
    leaked = leak_scenario(inputs, np.array([0, 1, 2, 3], np.int8))
    expected = inputs.copy()
    expected[:, obs_layout(16).score] = [0, 1, 2, 3]  # column 50, not the 98 of width 32
    np.testing.assert_array_equal(leaked, expected)


# --------------------------------------------------------------------------- oracle


@pytest.mark.slow
@pytest.mark.parametrize("width", [pytest.param(12, marks=pytest.mark.slow), 16])
def test_oracle_policy_acts_as_the_data_labels(width):
    from mirror.data.labels import oracle_label, toad_distress
    from mirror.data.processing import process_rows
    from mirror.data.rollout import make_collect
    from mirror.env.constants import obs_layout
    from mirror.env.params import EnvParams
    from mirror.env.policy import BEHAVIOUR_PROBS, oracle_action
    from mirror.env.rollout import start_games

    params = EnvParams(world_width=width)
    states = start_games(jax.random.key(0), params, 64)
    collect = make_collect(params, 64, 32, BEHAVIOUR_PROBS)
    _, raw = collect(jax.random.key(1), collect(jax.random.key(2), states)[0])
    rows = process_rows(jax.random.key(3), raw.rows)  # energies 0..18: every rule gets used
    labels = oracle_label(rows, toad_distress(rows, raw.toad_position, width), width)  # as the pipeline labels
    # Toad's own observation: same ground, its own true position last.
    toad_rows = rows.at[:, obs_layout(width).position].set(raw.toad_position)
    frog_acts = jax.vmap(lambda f, t: oracle_action(jnp.stack([f, t]), 0))(rows, toad_rows)
    as_player_1 = jax.vmap(lambda f, t: oracle_action(jnp.stack([t, f]), 1))(rows, toad_rows)
    np.testing.assert_array_equal(frog_acts, labels)
    np.testing.assert_array_equal(as_player_1, labels)
    assert set(np.unique(np.asarray(labels))) == {0, 1, 2, 3}


def test_oracle_action_reads_the_partner_at_a_narrow_width():
    """W = 16: Frog at W-3 on solid ground, Toad in distress at cell 5 -> help (rule 3).
    The old policy read the ground as obs[:32] and the position as obs[99]."""
    from mirror.env.constants import HELP, HOP, ROUGH, SOLID, obs_layout
    from mirror.env.policy import oracle_action

    layout = obs_layout(16)
    frog = np.zeros(layout.size, np.int8)
    frog[layout.ground] = SOLID
    frog[5] = ROUGH
    frog[layout.energy], frog[layout.position] = 10, 13
    toad = frog.copy()
    toad[layout.position] = 5
    obs = jnp.asarray(np.stack([frog, toad]))
    assert int(oracle_action(obs, 0)) == HELP
    toad[layout.position] = 6  # Toad on solid ground: Frog hops (rule 4)
    assert int(oracle_action(jnp.asarray(np.stack([frog, toad])), 0)) == HOP
