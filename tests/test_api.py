"""The top-level API (`mirror.__all__`): every name exists and documents its shapes; the
in-memory entry points give what the run paths give (probe set (a), supervised training,
a PPO population)."""

import dataclasses

import jax
import numpy as np
import pytest
from conftest import TINY_DATA

import mirror
from mirror.analysis.groups import cmni_groups
from mirror.base.errors import ConfigError
from mirror.data.config import DataConfig
from mirror.data.memory import seed_of
from mirror.data.pipeline import build_dataset
from mirror.data.split import TEST, TRAIN
from mirror.env.constants import obs_size
from mirror.rl.population import network_params
from mirror.rl.ppo import make_train as ppo_make_train
from mirror.runs.checkpoints import load_run
from mirror.runs.config import load_config

# The tiny dataset's settings (conftest TINY_DATA), for a probe set from a key.
TINY_PROBE_DATA = DataConfig(rows=20_000, games=256, rounds_per_chunk=64, test_label_shares=(0.4, 0.4, 0.15, 0.05))
PROBE_KEY = jax.random.key(7)


def test_every_exported_name_exists_and_states_shapes():
    assert len(mirror.__all__) == len(set(mirror.__all__))
    for name in mirror.__all__:
        obj = getattr(mirror, name)
        doc = obj.__doc__ or ""
        assert "[" in doc, f"mirror.{name}'s docstring states no shapes"
    # The star import gives exactly these names.
    namespace = {}
    exec("from mirror import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(mirror.__all__)


@pytest.fixture(scope="module")
def probe():
    return mirror.probe_set(mirror.EnvParams(), 500, PROBE_KEY, data=TINY_PROBE_DATA)


@pytest.mark.slow
def test_probe_set_shapes_dtypes_and_groups(probe):
    inputs, groups = probe
    assert inputs.shape == (500, obs_size(32)) and inputs.dtype == np.int8
    assert groups.shape == (500,) and groups.dtype == np.int8
    assert set(np.unique(groups)) <= {-1, 0, 1, 2, 3}
    assert all((groups == g).sum() > 0 for g in (0, 1, 2))  # every CMNI group has rows


def test_probe_set_is_the_test_split_of_the_run_dataset(probe, tmp_path):
    """probe_set(key) == the test rows and CMNI groups of the dataset a run builds
    (`build_dataset` as `mirror rl` calls it, on disk) with data.seed = seed_of(key)."""
    config = load_config(None, [*TINY_DATA, "--data.cache_dir", str(tmp_path), "--data.seed", str(seed_of(PROBE_KEY))])
    dataset, _ = build_dataset(config, drop_absent_labels=True)
    test = dataset.splits == TEST
    inputs, groups = probe
    np.testing.assert_array_equal(inputs, dataset.inputs[test])
    np.testing.assert_array_equal(groups, cmni_groups(dataset.scenarios[test], dataset.idle_shown[test]))


@pytest.mark.slow
def test_probe_set_is_deterministic_in_its_key(probe):
    inputs, groups = mirror.probe_set(mirror.EnvParams(), 500, PROBE_KEY, data=TINY_PROBE_DATA)
    assert inputs.tobytes() == probe[0].tobytes() and groups.tobytes() == probe[1].tobytes()
    other, _ = mirror.probe_set(mirror.EnvParams(), 500, jax.random.key(8), data=TINY_PROBE_DATA)
    assert other.tobytes() != probe[0].tobytes()


@pytest.mark.parametrize("rows", [0, -3, 2.5])
def test_probe_set_names_a_bad_row_count(rows):
    with pytest.raises(ConfigError, match="rows"):
        mirror.probe_set(mirror.EnvParams(), rows, PROBE_KEY)


def test_make_supervised_train_equals_mirror_train(tiny_run, tiny_dataset):
    """The last checkpoint of `mirror train` (conftest `tiny_run`: 3 epochs) equals
    make_supervised_train's params from the same model and train settings and seed, bit for bit."""
    run = load_run(tiny_run)
    config = run.config
    train = tiny_dataset.splits == TRAIN  # the whole train split: max_train_rows cuts it in both paths
    out = mirror.make_supervised_train(
        config.model, config.train, (tiny_dataset.inputs[train], tiny_dataset.labels[train]), seed=config.seed
    )()
    assert run.epochs[-1] == config.train.epochs == out.loss.shape[0]
    last = jax.tree.map(lambda x: np.asarray(x[-1]), run.params)  # [members, ...] at the last checkpoint
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), b), out.params, last)
    # A different seed trains different params (the comparison above can fail).
    other = mirror.make_supervised_train(
        config.model, dataclasses.replace(config.train, epochs=1), (tiny_dataset.inputs[train], tiny_dataset.labels[train]),
        seed=config.seed + 1,
    )()
    assert not np.array_equal(np.asarray(other.params["hidden_0"]["kernel"]), last["hidden_0"]["kernel"])


@pytest.mark.slow
def test_make_train_is_a_population_of_ppo_runs():
    """Member m of make_train(config, env, members=4)(key) is PPO's own train(split(key)[m]),
    and its params are the analysed actors. The population is examples/rl_cmni.py's at its
    small size, so that the example's run (tests/test_examples.py) finds it compiled."""
    rl = mirror.RLConfig(num_envs=16, num_steps=16, updates=2, checkpoint_every=1)
    env = mirror.EnvParams(dependency=1.0)
    key, members = jax.random.key(0), 4
    out = jax.jit(mirror.make_train(rl, env, members=members))(key)
    assert out.metrics["loss"].shape == (members, rl.updates)
    assert out.params["hidden_0"]["kernel"].shape == (members, obs_size(32), rl.hidden[0])
    assert out.params["output"]["kernel"].shape == (members, rl.hidden[-1], 4)
    train_one = jax.jit(ppo_make_train(rl, env))
    for m, k in enumerate(jax.random.split(key, members)):
        runner, _ = train_one(k)
        alone = network_params(jax.tree.map(lambda x: x[None], runner.params), rl.sharing)
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[m], b[0]), out.params, alone)
    assert not np.allclose(out.params["hidden_0"]["kernel"][0], out.params["hidden_0"]["kernel"][1])


def test_make_train_names_a_bad_member_count():
    with pytest.raises(ConfigError, match="members"):
        mirror.make_train(mirror.RLConfig(), members=0)
