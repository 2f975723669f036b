"""Class balance: `train.class_weights` (none | balanced) and per-class recall
and precision in test_metrics.json and report.md."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_DATA, TINY_TRAIN

from mirror.base.errors import ConfigError
from mirror.base.hashing import config_hash
from mirror.cli import main
from mirror.runs.checkpoints import TrainError
from mirror.runs.config import load_config
from mirror.runs.report import PAPER, per_class_section
from mirror.runs.train_run import train_run, training_config_hash
from mirror.train.class_metrics import per_class_metrics
from mirror.train.loop import Split, make_train
from mirror.train.losses import class_weights, row_loss, weighted_row_loss


def synthetic_split(key, rows: int, balanced: bool = False) -> Split:
    """The label is the group (of four) with the largest input sum; `balanced`: exactly
    rows / 4 rows of each label (rows a multiple of 4)."""
    inputs = jax.random.randint(key, (rows, 100), 0, 3).astype(jnp.int8)
    labels = jnp.argmax(inputs[:, :96].astype(jnp.int32).reshape(rows, 4, 24).sum(-1), axis=-1).astype(jnp.int8)
    if balanced:
        labels = jnp.tile(jnp.arange(4, dtype=jnp.int8), rows // 4)
    return Split(inputs, labels)


def config(*extra):
    return load_config(None, ["--train.lr", "3.0e-3", "--train.batch_size", "16", "--model.width", "12", *extra])


def train_params(cfg, split: Split, epochs: int = 1):
    trainer = make_train(cfg, split)
    state = trainer.init()
    for epoch in range(1, epochs + 1):
        state, _ = trainer.epoch(state, epoch)
    return trainer, state


# -- the weights and the weighted loss --------------------------------------------------


def test_balanced_weights_on_a_hand_made_label_set():
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 3])  # counts 6, 2, 1, 1 of n = 10
    weights = class_weights(labels, "balanced")
    np.testing.assert_allclose(weights, [10 / 24, 10 / 8, 10 / 4, 10 / 4], rtol=1e-6)
    assert weights.dtype == np.float32
    assert math.isclose(float(weights[labels].sum()), 10.0, rel_tol=1e-6)  # each class a quarter, mean weight 1
    np.testing.assert_allclose([weights[labels][labels == c].sum() for c in range(4)], [2.5] * 4, rtol=1e-6)
    # a class absent from the training split weighs 0, not inf
    np.testing.assert_allclose(class_weights(np.array([0, 0, 1, 3]), "balanced"), [0.5, 1.0, 0.0, 1.0])
    assert class_weights(labels, "none") is None
    with pytest.raises(ValueError, match="balanced"):
        class_weights(labels, "inverse")


def test_weighted_loss_equals_the_hand_computed_value():
    outputs = jnp.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    labels = jnp.array([0, 3, 1], jnp.int8)
    weights = jnp.array([0.5, 4.0, 1.0, 2.0])
    # mse per row: 0, 1/4, 1/4; weighted: 0.5*0, 2*1/4, 4*1/4
    np.testing.assert_allclose(weighted_row_loss(outputs, labels, "mse", weights), [0.0, 0.5, 1.0], rtol=1e-6)
    # cross-entropy per row: log(1 + 3/e) for the confident row, log 4 for the others
    expected = [0.5 * math.log(1 + 3 / math.e), 2 * math.log(4), 4 * math.log(4)]
    np.testing.assert_allclose(weighted_row_loss(outputs, labels, "cross_entropy", weights), expected, rtol=1e-6)
    unweighted = weighted_row_loss(outputs, labels, "mse", None)
    np.testing.assert_array_equal(unweighted, row_loss(outputs, labels, "mse"))


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_evaluate_weights_the_loss_with_the_training_split_counts(loss):
    train = synthetic_split(jax.random.key(0), 800)
    val = synthetic_split(jax.random.key(1), 200)
    trainer = make_train(config("--train.loss", loss, "--train.class_weights", "balanced"), train)
    state = trainer.init()  # evaluation needs no training (and compiles less)
    got = jax.device_get(trainer.evaluate(state.params, trainer.place(val)))
    params = jax.tree.map(lambda a: a[0], state.params)
    outputs = trainer.model.apply({"params": params}, jnp.asarray(val.inputs))[0]  # no dropout at evaluation
    weights = class_weights(np.asarray(train.labels), "balanced")
    per_row = np.asarray(row_loss(outputs, val.labels, loss)) * weights[np.asarray(val.labels)]
    np.testing.assert_allclose(got.loss_data[0], per_row.mean(), rtol=1e-5)
    # accuracy and the confusion matrix stay unweighted counts
    assert int(got.confusion[0].sum()) == 200
    np.testing.assert_allclose(got.accuracy[0], np.trace(got.confusion[0]) / 200, rtol=1e-6)


# -- training ---------------------------------------------------------------------------


def test_balanced_changes_training_and_none_is_the_unweighted_loss():
    train = synthetic_split(jax.random.key(0), 800)
    _, none = train_params(config(), train)
    _, explicit = train_params(config("--train.class_weights", "none"), train)
    _, balanced = train_params(config("--train.class_weights", "balanced"), train)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), none.params, explicit.params)
    differences = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))), none.params, balanced.params)
    assert max(jax.tree.leaves(differences)) > 1e-4
    # on a training split with equal class counts every weight is exactly 1: balanced is none
    even = synthetic_split(jax.random.key(2), 800, balanced=True)
    np.testing.assert_array_equal(class_weights(np.asarray(even.labels), "balanced"), np.ones(4, np.float32))
    _, none = train_params(config(), even)
    _, balanced = train_params(config("--train.class_weights", "balanced"), even)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7), none.params, balanced.params)


def test_training_hash_counts_class_weights_and_keeps_old_runs_resumable():
    default = load_config(None, [])
    values = default.to_dict()
    del values["train"]["class_weights"]  # a config written before the field existed
    assert training_config_hash(default) == config_hash({k: values[k] for k in ("seed", "model", "train")})
    assert training_config_hash(load_config(None, ["--train.class_weights", "balanced"])) != training_config_hash(default)


# -- bad values -------------------------------------------------------------------------


def test_bad_class_weights_fail_naming_the_field(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"train.class_weights = 'inverse' is invalid: expected 'none' or 'balanced'"):
        load_config(None, ["--train.class_weights", "inverse"])
    run_dir = tmp_path / "run"
    assert main(["train", "--run-dir", str(run_dir), "--train.class_weights", "weighted"]) == 2
    err = capsys.readouterr().err
    assert "train.class_weights = 'weighted' is invalid" in err and "Traceback" not in err
    assert not run_dir.exists()


# -- per-class metrics ---------------------------------------------------------------------


def test_per_class_metrics_of_the_papers_table_3():
    metrics = per_class_metrics(PAPER["confusion"])  # rows predicted, columns actual
    hop, jump, leap, help_ = (metrics["per_class"][name] for name in ("hop", "jump", "leap", "help"))
    assert help_["recall"] == 9628 / (301 + 226 + 9628) and help_["precision"] == 9628 / 10000
    assert leap["recall"] == 5695 / (2920 + 5695 + 3) and leap["precision"] == 5695 / 10000
    assert hop["recall"] == 36778 / (36778 + 4079 + 369) and hop["precision"] == 36778 / (36778 + 2920 + 301)
    assert jump["recall"] == 1.0 and jump["precision"] == 1.0
    assert (help_["actual"], help_["predicted"]) == (10155, 10000)
    assert metrics["undefined"] == []
    assert math.isclose(metrics["macro_recall"], np.mean([m["recall"] for m in metrics["per_class"].values()]))


def test_a_class_never_predicted_has_no_precision_and_says_so():
    confusion = [[5, 1, 0, 2], [0, 3, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]  # never predicts leap or help; no leap rows
    metrics = per_class_metrics(confusion)
    per_class = metrics["per_class"]
    assert per_class["help"] == {"recall": 0.0, "precision": None, "actual": 3, "predicted": 0}
    assert per_class["leap"] == {"recall": None, "precision": None, "actual": 0, "predicted": 0}
    assert per_class["hop"]["precision"] == 5 / 8 and per_class["jump"]["recall"] == 3 / 4
    assert metrics["undefined"] == ["precision of leap: never predicted", "recall of leap: no leap rows", "precision of help: never predicted"]
    assert math.isclose(metrics["macro_recall"], (1.0 + 0.75 + 0.0) / 3)
    json.dumps(metrics, allow_nan=False)  # valid JSON: null, never NaN
    test = {"members": [{"member": 0, "epoch": 3, "confusion": confusion, "accuracy": 8 / 12, "last": {}}]}
    lines = per_class_section(test, 0, "train:\n  class_weights: balanced\n")
    assert "loss class weights: **balanced**" in lines[2]
    assert any(line.startswith("| help | 0.0000 | – | 3 | 0 | 0.9481 | 0.9628 |") for line in lines)
    assert "Undefined (shown as –): precision of leap: never predicted" in "\n".join(lines)


def test_a_run_stores_per_class_metrics_and_refuses_to_resume_with_other_weights(tiny_dataset, dataset_cache, tmp_path):
    # The shared tiny run's settings (conftest), one epoch: its compiled programs are reused.
    args = [*TINY_DATA, "--data.cache_dir", str(dataset_cache), *TINY_TRAIN, "--train.epochs", "1"]
    run_dir = tmp_path / "run"
    train_run(load_config(None, args), run_dir, tiny_dataset, log=lambda _: None)
    test = json.loads((run_dir / "test_metrics.json").read_text())
    confusion = np.asarray(test["confusion"])
    for c, name in enumerate(test["labels"]):
        entry = test["per_class"][name]
        assert entry["actual"] == confusion[:, c].sum() and entry["predicted"] == confusion[c].sum()
        if entry["actual"]:
            assert math.isclose(entry["recall"], confusion[c, c] / confusion[:, c].sum())
        if entry["predicted"]:
            assert math.isclose(entry["precision"], confusion[c, c] / confusion[c].sum())
        else:
            assert entry["precision"] is None and f"precision of {name}: never predicted" in test["undefined"]
    assert test["members"][0]["last"]["per_class"] and "null where undefined" in test["per_class_note"]
    with pytest.raises(TrainError, match="differ"):
        balanced = load_config(None, [*args, "--train.epochs", "2", "--train.class_weights", "balanced"])
        train_run(balanced, run_dir, tiny_dataset, resume=True, log=lambda _: None)
