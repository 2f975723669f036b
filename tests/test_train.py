"""Training (spec §8): losses, the jitted epoch, populations with padding,
checkpoints, early stopping, resume after SIGKILL and the error paths."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import yaml
from conftest import TINY_DATA, TINY_TRAIN, copy_run, run_epochs

from mirror.agents.mlp import unit_dropout
from mirror.base.errors import ConfigError
from mirror.base.hashing import config_hash
from mirror.cli import main
from mirror.data.store import load_dataset
from mirror.runs import train_run as run_module
from mirror.runs.checkpoints import (
    TrainError,
    load_run,
    open_manager,
    restore_checkpoint,
    restore_stacked,
    save_checkpoint,
)
from mirror.runs.config import load_config
from mirror.runs.train_run import EarlyStopping, split_dataset, train_run
from mirror.train.loop import Split, TrainState, make_train
from mirror.train.losses import l2_penalty, row_loss
from mirror.train.population import Member, members_from_config
from mirror.train.randomness import HASH_PRNG, feistel_permutation, hash_key


def tiny_config(dataset_cache, *extra):
    """The shared tiny run's config (conftest), with `extra` overrides."""
    return load_config(None, [*TINY_DATA, "--data.cache_dir", str(dataset_cache), *TINY_TRAIN, *extra])


def synthetic_split(key, rows: int) -> Split:
    """A learnable problem: the label is the group (of four) with the largest input sum."""
    inputs = jax.random.randint(key, (rows, 100), 0, 3).astype(jnp.int8)
    labels = jnp.argmax(inputs[:, :96].astype(jnp.int32).reshape(rows, 4, 24).sum(-1), axis=-1).astype(jnp.int8)
    return Split(inputs, labels)


def synthetic_config(*extra):
    return load_config(None, ["--train.lr", "3.0e-3", "--train.batch_size", "16", "--model.width", "12"] + list(extra))


# One synthetic problem for the in-memory tests: equal shapes share compiled programs.
SYNTH_TRAIN = synthetic_split(jax.random.key(0), 2000)
SYNTH_VAL = synthetic_split(jax.random.key(1), 500)
POPULATION = (
    "--train.population_seeds", "[0, 1, 2]",
    "--train.population_lrs", "[1.0e-3, 3.0e-3, 1.0e-2]",
    "--model.population_dropouts", "[0.0, 0.12, 0.3]",
    "--train.population_l2s", "[0.0, 0.01, 0.1]",
)  # fmt: skip


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol), a, b)


def assert_trees_equal(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def member_slice(params, member: int, widths):
    """A member's unpadded parameters out of a padded population."""
    out, fan_in = {}, 100
    for i, w in enumerate(widths):
        layer = params[f"hidden_{i}"]
        out[f"hidden_{i}"] = {"kernel": layer["kernel"][member, :fan_in, :w], "bias": layer["bias"][member, :w]}
        fan_in = w
    out["output"] = {"kernel": params["output"]["kernel"][member, :fan_in], "bias": params["output"]["bias"][member]}
    return out


# -- randomness ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 2, 3, 25, 1000, 65_537])
def test_feistel_permutation_is_a_permutation_and_keyed(n):
    perm = np.asarray(feistel_permutation(jax.random.key(0), n))
    assert perm.dtype == np.int32 and sorted(perm.tolist()) == list(range(n))
    if n >= 1000:
        other = np.asarray(feistel_permutation(jax.random.key(1), n))
        assert (perm != other).mean() > 0.99
        assert abs(np.corrcoef(np.arange(n), perm)[0, 1]) < 0.05  # no visible order left


def test_hash_prng_dropout_keeps_the_right_share_and_is_width_independent():
    key = hash_key(jax.random.key(3))
    h = jnp.ones((20_000, 17))
    kept = np.asarray(unit_dropout(key, h, 0.12) > 0)
    assert abs(kept.mean() - 0.88) < 0.005
    assert abs(np.corrcoef(kept[:, 0], kept[:, 1])[0, 1]) < 0.03  # units independent
    narrow = np.asarray(unit_dropout(key, h[:, :5], 0.12))
    np.testing.assert_array_equal(narrow, np.asarray(unit_dropout(key, h, 0.12))[:, :5])
    u = np.asarray(jax.random.uniform(jax.random.fold_in(key, 1), (200_000,)))
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    assert jax.random.key_impl(key) == jax.random.key_impl(jax.random.key(0, impl=HASH_PRNG))


# -- losses -------------------------------------------------------------------------


def test_losses_match_their_definitions():
    outputs = jax.random.normal(jax.random.key(0), (6, 4))
    labels = jnp.array([0, 1, 2, 3, 0, 1], jnp.int8)
    mse = np.mean((np.asarray(outputs) - np.eye(4)[np.asarray(labels)]) ** 2, axis=1)
    np.testing.assert_allclose(row_loss(outputs, labels, "mse"), mse, rtol=1e-6)
    ce = optax.softmax_cross_entropy_with_integer_labels(outputs, labels.astype(jnp.int32))
    np.testing.assert_allclose(row_loss(outputs, labels, "cross_entropy"), ce, rtol=1e-6)
    keys = jax.random.split(jax.random.key(1), 4)
    params = {
        "hidden_0": {"kernel": jax.random.normal(keys[0], (100, 5)), "bias": jnp.ones(5)},
        "hidden_1": {"kernel": jax.random.normal(keys[1], (5, 3)), "bias": jnp.ones(3)},
        "output": {"kernel": jax.random.normal(keys[2], (3, 4)), "bias": jnp.ones(4)},
    }
    expected = 0.01 * sum(float(np.sum(np.asarray(params[f"hidden_{i}"]["kernel"]) ** 2)) for i in range(2))
    np.testing.assert_allclose(l2_penalty(params, 0.01), expected, rtol=1e-6)  # output kernel excluded


# -- the jitted epoch ------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_loss_decreases_on_a_learnable_problem(loss):
    _, state, history = run_epochs(synthetic_config("--train.loss", loss), SYNTH_TRAIN, SYNTH_VAL, 5)
    val_losses = [float(v.loss[0]) for _, v in history]
    assert all(b < a for a, b in zip(val_losses, val_losses[1:])), val_losses
    accuracies = [float(v.accuracy[0]) for _, v in history]
    assert accuracies[-1] > 0.55 and accuracies[-1] > accuracies[0] + 0.15, accuracies  # majority class: 0.31
    train_metrics, val_metrics = history[-1]
    assert float(train_metrics.loss[0]) > float(train_metrics.loss_data[0])  # the penalty is included
    assert float(val_metrics.loss[0]) > float(val_metrics.loss_data[0])
    assert int(val_metrics.confusion[0].sum()) == 500
    np.testing.assert_allclose(np.trace(val_metrics.confusion[0]) / 500, val_metrics.accuracy[0], rtol=1e-6)
    # training uses a masked sum over the flat parameter vector: the same penalty
    penalty = l2_penalty(jax.tree.map(lambda a: a[0], state.params), 0.01)
    np.testing.assert_allclose(val_metrics.loss[0] - val_metrics.loss_data[0], penalty, rtol=1e-4)


@pytest.mark.slow  # three populations trained (~30 s)
def test_padded_member_matches_the_same_model_trained_alone():
    # sigmoid(0) = 0.5: padded units would leak into the next layer without the mask
    train, val = SYNTH_TRAIN, SYNTH_VAL
    config = synthetic_config("--model.activation", "sigmoid", "--model.dropout", "0.2")
    narrow = Member(seed=5, lr=3e-3, dropout=0.2, l2=0.01, widths=(5, 7))
    wide = Member(seed=6, lr=1e-3, dropout=0.1, l2=0.0, widths=(12, 9))
    _, together, hist_together = run_epochs(config, train, val, 2, [wide, narrow])
    _, alone, hist_alone = run_epochs(config, train, val, 2, [narrow])
    assert_trees_close(member_slice(together.params, 1, (5, 7)), member_slice(alone.params, 0, (5, 7)))
    # the padding stays exactly zero: no gradient, no L2 gradient, no Adam moment
    assert not np.any(np.asarray(together.params["hidden_0"]["kernel"][1, :, 5:]))
    assert not np.any(np.asarray(together.params["hidden_1"]["kernel"][1, 5:, :]))
    assert not np.any(np.asarray(together.params["hidden_1"]["kernel"][1, :, 7:]))
    assert not np.any(np.asarray(together.params["output"]["kernel"][1, 7:, :]))
    for (tm, tv), (am, av) in zip(hist_together, hist_alone):
        np.testing.assert_allclose(tm.loss[1], am.loss[0], rtol=1e-5)
        np.testing.assert_allclose(tv.loss[1], av.loss[0], rtol=1e-5)
        np.testing.assert_array_equal(tv.confusion[1], av.confusion[0])


@pytest.mark.slow  # two populations trained
def test_population_member_matches_a_solo_run_with_its_settings():
    train, val = SYNTH_TRAIN, SYNTH_VAL
    population = synthetic_config(*POPULATION)
    solo = synthetic_config("--seed", "1", "--train.lr", "3.0e-3", "--model.dropout", "0.12", "--train.l2", "0.01")
    assert members_from_config(population)[1] == members_from_config(solo)[0]
    _, together, _ = run_epochs(population, train, val, 2)
    _, alone, _ = run_epochs(solo, train, val, 2)
    assert_trees_close(jax.tree.map(lambda a: a[1], together.params), jax.tree.map(lambda a: a[0], alone.params))
    # the members really differ
    assert not np.allclose(together.params["output"]["kernel"][0], together.params["output"]["kernel"][1])


def scan_unrolls(jaxpr) -> list[int]:
    """The `unroll` of every scan in a jaxpr, nested programs included."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scan":
            found.append(eqn.params["unroll"])
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found += scan_unrolls(inner)
    return found


def test_scan_unroll_reaches_the_step_scan_and_leaves_the_results_alone():
    """train.scan_unroll is a speed setting (benchmarks/bench_train.py --unroll measures
    it): here, that it reaches the minibatch scan, and that the parameters stay the same."""
    rolled_trainer, rolled, _ = run_epochs(synthetic_config(), SYNTH_TRAIN, SYNTH_VAL, 1)
    unrolled_trainer, unrolled, _ = run_epochs(synthetic_config("--train.scan_unroll", "4"), SYNTH_TRAIN, SYNTH_VAL, 1)
    assert_trees_close(rolled.params, unrolled.params, rtol=1e-5, atol=1e-7)  # float rounding only
    for trainer, unroll in ((rolled_trainer, 1), (unrolled_trainer, 4)):
        state = trainer.init()
        unrolls = scan_unrolls(jax.make_jaxpr(lambda s: trainer.epoch(s, 1))(state).jaxpr)
        assert unroll in unrolls and set(unrolls) <= {1, unroll}, unrolls


def test_stopped_members_are_frozen():
    trainer = make_train(synthetic_config(*POPULATION), SYNTH_TRAIN)
    state = trainer.init()
    after, _ = trainer.epoch(state, 1, np.array([True, False, True]))
    assert_trees_equal(jax.tree.map(lambda a: a[1], after), jax.tree.map(lambda a: a[1], state))
    assert not np.allclose(after.params["output"]["kernel"][0], state.params["output"]["kernel"][0])


def test_early_stopping_per_member_with_patience():
    stopping = EarlyStopping.start(patience=2, members=2)
    losses = [[1.0, 1.0], [0.9, 1.1], [0.95, 1.2], [0.8, 1.3], [0.85, 0.5]]
    for epoch, loss in enumerate(losses, start=1):
        best = stopping.update(epoch, np.asarray(loss, np.float32), stopping.active)
        if epoch == 3:
            assert stopping.stopped.tolist() == [False, True] and best.tolist() == [False, False]
    assert stopping.best_epoch.tolist() == [4, 1]  # member 1 stopped before its epoch-5 improvement
    assert stopping.stopped.tolist() == [False, True] and stopping.wait.tolist() == [1, 2]
    never = EarlyStopping.start(patience=0, members=1)
    for epoch in range(1, 20):
        never.update(epoch, np.asarray([1.0 + epoch], np.float32), never.active)
    assert not never.stopped.any()


# -- config and errors before any work -----------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["--train.bogus", "1"], r"unknown config field\(s\) train.bogus"),
        (["--model.width", "0"], r"model.width = 0 is invalid"),
        (["--train.lr", "0"], r"train.lr = 0.0 is invalid"),
        (["--model.population_widths", "[[17, 0]]"], r"model.population_widths"),
        (["--model.population_widths", "[[17, 17], [8]]"], r"same depth"),
        (["--train.population_lrs", "[1.0e-3, -1]"], r"train.population_lrs"),
    ],
)
def test_bad_config_fails_naming_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        members_from_config(load_config(None, overrides))


def test_population_lists_of_different_lengths_fail():
    config = load_config(None, ["--train.population_seeds", "[0, 1, 2]", "--train.population_lrs", "[1.0e-3, 2.0e-3]"])
    with pytest.raises(ConfigError, match="train.population_lrs.*2|train.population_seeds.*3"):
        members_from_config(config)


def test_batch_larger_than_the_training_data_fails():
    with pytest.raises(ConfigError, match=r"train.batch_size = 64 is larger than the 50 training rows"):
        make_train(synthetic_config("--train.batch_size", "64"), synthetic_split(jax.random.key(0), 50))


def test_cli_errors_before_work(tiny_dataset, dataset_cache, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["train", "--run-dir", str(run_dir), *TINY_DATA, "--data.cache_dir", str(dataset_cache)]
    assert main(args + ["--train.batch_size", "100000"]) == 2
    assert "train.batch_size = 100000 is larger than" in capsys.readouterr().err
    assert not run_dir.exists()
    assert main(args + ["--model.width", "-3"]) == 2
    assert "model.width = -3 is invalid" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "config.yaml is missing" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path), "--train.lr", "1.0"]) == 2
    assert "--resume continues a run with its own config.yaml" in capsys.readouterr().err


def test_corrupted_dataset_fails_its_checksum(tiny_dataset, tmp_path, capsys):
    cache = tmp_path / "cache"
    copy = cache / tiny_dataset.path.name
    shutil.copytree(tiny_dataset.path, copy)
    inputs = np.load(copy / "inputs.npy")
    inputs[0, 0] += 1
    np.save(copy / "inputs.npy", inputs)
    run_dir = tmp_path / "run"
    assert main(["train", "--run-dir", str(run_dir), *TINY_DATA, "--data.cache_dir", str(cache)]) == 2
    assert "inputs.npy fails its sha256 check" in capsys.readouterr().err
    assert not run_dir.exists()


# -- runs on disk ------------------------------------------------------------------------


@pytest.mark.slow  # trains the tiny run
def test_run_directory_checkpoints_and_restore(tiny_run, tiny_dataset, dataset_cache, tmp_path):
    config = tiny_config(dataset_cache)
    run_dir = copy_run(tiny_run, tmp_path / "run")  # changed below

    assert load_config(run_dir / "config.yaml") == config
    assert yaml.safe_load((run_dir / "config.yaml").read_text()) == yaml.safe_load(yaml.safe_dump(config.to_dict()))
    dataset_json = json.loads((run_dir / "dataset.json").read_text())
    assert dataset_json["path"] == str(tiny_dataset.path) and dataset_json["sha256"] == tiny_dataset.manifest["sha256"]
    assert json.loads((run_dir / "members.json").read_text()) == [
        {"seed": 0, "lr": 1e-3, "dropout": 0.12, "l2": 0.01, "widths": [17, 17]}
    ]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]

    run = load_run(run_dir)
    assert run.epochs.tolist() == [1, 2, 3] and run.padded_widths == (17, 17) and run.widths == [[17, 17]]
    assert run.params["hidden_0"]["kernel"].shape == (3, 1, 100, 17)
    assert run.dataset_path == str(tiny_dataset.path)
    meta = run.metadata[-1]
    for key in ("train_loss", "train_loss_data", "val_loss", "val_loss_data", "val_accuracy", "best_so_far", "stopped"):
        assert isinstance(meta[key], (float, bool)), key  # scalars for a single run
    assert meta["config_hash"] == config_hash(config.to_dict())
    assert meta["dataset_sha256"] == tiny_dataset.manifest["sha256"]["inputs.npy"]
    assert meta["val_loss"] > meta["val_loss_data"] and meta["train_loss"] > meta["train_loss_data"]
    assert [m["diverged"] for m in run.metadata] == [False] * 3 and not meta["stopped"]
    assert [m["val_loss"] for m in metrics] == run.metric("val_loss")[:, 0].tolist()
    assert {k: v for k, v in metrics[-1].items() if k != "wall_s"}.items() <= meta.items()  # the record joins line and checkpoint
    best = run.checkpoint_index("best")
    assert run.metadata[best]["best_so_far"] and run.metric("val_loss")[best, 0] == run.metric("val_loss").min()

    stacked = restore_stacked(run_dir)
    assert stacked["output"]["kernel"].shape == (3, 17, 4)
    np.testing.assert_array_equal(stacked["output"]["kernel"], run.params["output"]["kernel"][:, 0])

    test = json.loads((run_dir / "test_metrics.json").read_text())
    confusion = np.asarray(test["confusion"])
    assert confusion.sum() == 500 and test["confusion_axes"] == ["predicted", "actual"]
    np.testing.assert_array_equal(confusion.sum(axis=0), np.bincount(tiny_dataset.labels[tiny_dataset.splits == 2], minlength=4))
    np.testing.assert_allclose(np.trace(confusion) / 500, test["accuracy"], rtol=1e-6)
    assert test["epoch"] == run.epochs[best] and test["members"][0]["last"]["epoch"] == 3

    # a checkpoint is never overwritten, and a half-written one is invisible
    manager = open_manager(run_dir)
    state = TrainState(run.params, {})
    with pytest.raises(TrainError, match="checkpoint 2 already exists"):
        save_checkpoint(manager, 2, state, {})
    manager.close()
    (run_dir / "checkpoints" / "4.orbax-checkpoint-tmp-123").mkdir()
    assert load_run(run_dir).epochs.tolist() == [1, 2, 3]
    # a second run into the same directory is refused
    with pytest.raises(TrainError, match="already exists and is not empty"):
        train_run(config, run_dir, tiny_dataset, log=lambda line: None)


@pytest.mark.slow  # a population run on disk
def test_population_run_with_widths_stores_per_member_lists(tiny_dataset, dataset_cache, tmp_path):
    config = tiny_config(
        dataset_cache, "--train.epochs", "2", "--train.population_seeds", "[0, 1]",
        "--model.population_widths", "[[17, 17], [6, 9]]",
    )  # fmt: skip
    run_dir = tmp_path / "population"
    train_run(config, run_dir, tiny_dataset, log=lambda line: None)
    run = load_run(run_dir)
    assert run.widths == [[17, 17], [6, 9]] and run.padded_widths == (17, 17)
    assert run.params["hidden_1"]["kernel"].shape == (2, 2, 17, 17)
    assert not np.any(run.params["hidden_1"]["kernel"][:, 1, 6:, :]) and not np.any(run.params["hidden_1"]["kernel"][:, 1, :, 9:])
    assert len(run.metadata[0]["val_loss"]) == 2 and run.metric("val_accuracy").shape == (2, 2)
    assert restore_stacked(run_dir)["output"]["kernel"].shape == (2, 2, 17, 4)  # members kept
    test = json.loads((run_dir / "test_metrics.json").read_text())
    assert [m["member"] for m in test["members"]] == [0, 1] and "confusion" not in test
    assert [m["widths"] for m in json.loads((run_dir / "members.json").read_text())] == [[17, 17], [6, 9]]


@pytest.mark.slow  # a population run on disk
def test_nan_loss_freezes_the_member_and_reports_it(tiny_dataset, dataset_cache, tmp_path, capsys):
    run_dir = tmp_path / "nan"
    args = ["train", "--run-dir", str(run_dir), *TINY_DATA, "--data.cache_dir", str(dataset_cache)]
    args += ["--train.max_train_rows", "4000", "--train.epochs", "2", "--train.population_lrs", "[1.0e-3, 1.0e+30]"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "member(s) [1] became NaN or infinite" in err and "Last complete checkpoint: epoch 2" in err
    run = load_run(run_dir)
    assert run.metadata[-1]["diverged"] == [False, True] and run.metadata[0]["train_loss"][1] is None
    assert np.isfinite(run.metric("val_loss")).all()
    # member 1 kept its last good state: its initial parameters
    config = load_config(run_dir / "config.yaml")
    from mirror.train.loop import init_member_params

    initial = init_member_params(config, run.members[1], (17, 17), tiny_dataset.input_width)
    assert_trees_equal(jax.tree.map(lambda a: a[-1, 1], run.params), initial)


@pytest.mark.slow  # a run on disk
def test_nan_in_a_single_run_keeps_the_last_good_checkpoint(tiny_dataset, dataset_cache, tmp_path, monkeypatch):
    real_make_train = run_module.make_train

    def poisoned_make_train(*args, **kwargs):
        trainer = real_make_train(*args, **kwargs)

        def epoch(state, epoch, active=None):
            if epoch == 2:  # as if the weights blew up during epoch 2
                state = TrainState(jax.tree.map(lambda a: a * jnp.nan, state.params), state.opt_state)
            return trainer.epoch(state, epoch, active)

        return trainer._replace(epoch=epoch)

    monkeypatch.setattr(run_module, "make_train", poisoned_make_train)
    run_dir = tmp_path / "nan1"
    result = train_run(tiny_config(dataset_cache), run_dir, tiny_dataset, log=lambda line: None)
    assert result.diverged == [0] and result.last_epoch == 1
    run = load_run(run_dir)
    assert run.epochs.tolist() == [1] and np.isfinite(run.params["hidden_0"]["kernel"]).all()
    assert json.loads((run_dir / "test_metrics.json").read_text())["epoch"] == 1


def interrupt_during_epoch(monkeypatch, stop: int):
    """Make `mirror train` raise KeyboardInterrupt as epoch `stop` begins (a kill mid-run,
    in this process); returns the real `make_train` to put back."""
    real_make_train = run_module.make_train

    def interrupted_make_train(*args, **kwargs):
        trainer = real_make_train(*args, **kwargs)

        def epoch(state, epoch, active=None):
            if epoch == stop:
                raise KeyboardInterrupt(f"simulated kill during epoch {stop}")
            return trainer.epoch(state, epoch, active)

        return trainer._replace(epoch=epoch)

    monkeypatch.setattr(run_module, "make_train", interrupted_make_train)
    return real_make_train


@pytest.mark.slow  # the tiny run, then an interrupted one
def test_interrupted_run_resumes_to_the_same_result(tiny_run, tiny_dataset, dataset_cache, tmp_path, monkeypatch):
    config = tiny_config(dataset_cache)  # the shared tiny run's: it is the uninterrupted reference
    real_make_train = interrupt_during_epoch(monkeypatch, 3)
    interrupted = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        train_run(config, interrupted, tiny_dataset, log=lambda line: None)
    assert load_run(interrupted).epochs.tolist() == [1, 2]
    monkeypatch.setattr(run_module, "make_train", real_make_train)
    train_run(config, interrupted, tiny_dataset, resume=True, log=lambda line: None)
    assert_same_run(tiny_run, interrupted)


def optimizer_states(run_dir: Path) -> list:
    """The optimizer state of every checkpoint, restored as a resume restores it."""
    run = load_run(run_dir)
    train = split_dataset(load_dataset(Path(run.dataset_path)), run.config.train.max_train_rows)["train"]
    abstract = jax.eval_shape(make_train(run.config, train, run.members).init)
    manager = open_manager(run_dir, read_only=True)
    try:
        return [jax.device_get(restore_checkpoint(manager, epoch, abstract)[1]) for epoch in sorted(manager.all_steps())]
    finally:
        manager.close()


def assert_same_run(a: Path, b: Path) -> None:
    """Checkpoints (parameters, optimizer state, metadata), metrics and test results equal."""
    run_a, run_b = load_run(a), load_run(b)
    assert run_a.epochs.tolist() == run_b.epochs.tolist()
    assert_trees_equal(run_a.params, run_b.params)
    assert run_a.metadata == run_b.metadata
    opt_a, opt_b = optimizer_states(a), optimizer_states(b)
    assert len(opt_a) == len(opt_b) == len(run_a.epochs)
    assert jax.tree.structure(opt_a) == jax.tree.structure(opt_b)
    assert_trees_equal(opt_a, opt_b)
    # Adam's moments have moved: the comparison above is not one of empty or zero states
    assert any(np.any(np.asarray(leaf) != 0) for leaf in jax.tree.leaves(opt_a[-1]) if np.asarray(leaf).size > 1)

    def metrics(path):
        lines = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in line.items() if k != "wall_s"} for line in lines]

    assert metrics(a) == metrics(b)
    assert json.loads((a / "test_metrics.json").read_text()) == json.loads((b / "test_metrics.json").read_text())


def _train_args(run_dir: Path, dataset_cache: Path, extra=()) -> list[str]:
    """`mirror train` arguments of a run whose epochs are long enough to be killed in the
    middle of one (batch 1 over 15,600 rows)."""
    args = ["train", "--run-dir", str(run_dir), *TINY_DATA, "--data.cache_dir", str(dataset_cache)]
    return args + ["--train.batch_size", "1", "--train.epochs", "5", "--train.lr", "1.0e-4", *extra]


def complete_checkpoints(run_dir: Path) -> list[int]:
    """Epochs whose checkpoint is finalised, as the library sees them (Orbax renames a
    checkpoint's temporary directory into place once it is complete)."""
    if not (run_dir / "checkpoints").is_dir():
        return []
    manager = open_manager(run_dir, read_only=True)
    try:
        return sorted(manager.all_steps())
    finally:
        manager.close()


def wait_for_checkpoint(run_dir: Path, epoch: int, process: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    """Wait until checkpoint `epoch` of `process`'s run is finalised (not a fixed delay:
    the save is asynchronous, and a loaded machine may take long to finish it)."""
    deadline = time.monotonic() + timeout
    while epoch not in complete_checkpoints(run_dir):
        assert process.poll() is None, f"the run ended before checkpoint {epoch}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no checkpoint {epoch} after {timeout} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


@pytest.mark.slow  # a process to kill; test_interrupted_run_resumes_to_the_same_result is the fast version
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tiny_dataset, dataset_cache, tmp_path, capsys):
    """`mirror train` killed with SIGKILL during epoch 3, once checkpoint 2 is complete on
    disk, then `mirror train --resume` of what the kill left (in this process): the run
    equals the same config trained without a kill (in this process too)."""
    # A private compilation cache for the victim: JAX writes cache files in place, and a
    # SIGKILL may cut one short.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-cache")}
    reference, killed, log = tmp_path / "reference", tmp_path / "killed", tmp_path / "killed.log"
    with open(log, "w") as fh:
        victim = subprocess.Popen([sys.executable, "-m", "mirror.cli", *_train_args(killed, dataset_cache)], env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_for_checkpoint(killed, 2, victim, log)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    partial = load_run(killed)
    assert 2 <= partial.epochs.max() < 5  # killed mid-run, every visible checkpoint complete
    assert main(_train_args(reference, dataset_cache)) == 0
    assert main(["train", "--resume", str(killed)]) == 0
    assert f"resuming {killed}" in capsys.readouterr().out
    assert_same_run(reference, killed)
