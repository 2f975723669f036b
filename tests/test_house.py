"""One name, one job ("the house"): unit masks from one function, padding from
one function, each per-epoch value stored once (metrics.jsonl or the checkpoint, never
both), and resume cutting a metrics line whose checkpoint never completed."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror.agents.mlp import MLP, init_params, pad_params, unit_masks, unpad_params
from mirror.analysis.cmni import init_params_batch, param_widths
from mirror.data.pipeline import build_dataset
from mirror.runs import train_run as run_module
from mirror.runs.checkpoints import (
    CHECKPOINT_KEYS,
    METRICS_FILE,
    TrainError,
    load_run,
    open_manager,
    read_metadata,
    trim_metrics,
)
from mirror.runs.config import load_config
from mirror.runs.train_run import train_run
from mirror.train.loop import make_hyper
from mirror.train.population import Member

SMALL_DATA = [
    "--data.rows", "6000", "--data.test_rows", "150", "--data.games", "128",
    "--data.rounds_per_chunk", "64", "--data.test_label_shares", "[0.4,0.4,0.15,0.05]",
]  # fmt: skip


# -- unit masks --------------------------------------------------------------------------


def test_unit_masks_by_hand():
    first, second = unit_masks([(2, 3), (3, 1)], (3, 3))
    np.testing.assert_array_equal(first, [[True, True, False], [True, True, True]])
    np.testing.assert_array_equal(second, [[True, True, True], [True, False, False]])
    assert first.dtype == bool and unit_masks([], (4,))[0].shape == (0, 4)


def test_training_masks_are_unit_masks():
    members = [Member(seed=0, lr=1e-3, dropout=0.0, l2=0.0, widths=(5, 2)), Member(seed=1, lr=1e-3, dropout=0.1, l2=0.0, widths=(3, 4))]
    hyper = make_hyper(members, (5, 4))
    for got, want in zip(hyper.masks, unit_masks([m.widths for m in members], (5, 4)), strict=True):
        np.testing.assert_array_equal(np.asarray(got), want)


# -- padding -----------------------------------------------------------------------------


@st.composite
def padded_models(draw):
    depth = draw(st.integers(1, 3))
    widths = tuple(draw(st.integers(1, 6)) for _ in range(depth))
    padded = tuple(w + draw(st.integers(0, 3)) for w in widths)
    lead = draw(st.sampled_from([(), (2,), (2, 3)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    params, fan_in = {}, 100
    for i, w in enumerate(widths):
        params[f"hidden_{i}"] = {"kernel": rng.normal(size=lead + (fan_in, w)).astype(np.float32), "bias": rng.normal(size=lead + (w,)).astype(np.float32)}
        fan_in = w
    params["output"] = {"kernel": rng.normal(size=lead + (fan_in, 4)).astype(np.float32), "bias": rng.normal(size=lead + (4,)).astype(np.float32)}
    return params, widths, padded


@pytest.mark.slow
@settings(max_examples=12, deadline=None)  # eager padding compiles per shape: keep the loop fast
@given(padded_models())
def test_pad_then_unpad_is_the_identity_and_the_padding_is_zero(model):
    params, widths, padded = model
    wide = pad_params(params, widths, padded)
    assert param_widths(wide) == list(padded)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), b), unpad_params(wide, widths), params)
    fan_in, padded_in = 100, 100
    for i, (w, pw) in enumerate(zip(widths, padded)):
        kernel, bias = np.array(wide[f"hidden_{i}"]["kernel"]), np.array(wide[f"hidden_{i}"]["bias"])
        assert kernel.shape[-2:] == (padded_in, pw)
        kernel[..., :fan_in, :w], bias[..., :w] = 0, 0
        assert not kernel.any() and not bias.any()  # everything outside the true block is exactly zero
        fan_in, padded_in = w, pw
    assert np.abs(np.asarray(wide["output"]["kernel"])[..., fan_in:, :]).sum() == 0


@pytest.mark.slow
@settings(max_examples=5, deadline=None)
@given(padded_models())
def test_a_padded_masked_model_computes_what_the_true_one_does(model):
    params, widths, padded = model
    lead = params["output"]["bias"].shape[:-1]
    first = jax.tree.map(lambda a: a[(0,) * len(lead)], params)  # one model
    x = jnp.asarray(np.random.default_rng(0).integers(0, 3, (7, 100)), jnp.float32)
    out, acts = MLP(widths).apply({"params": first}, x)
    masks = [m[0] for m in unit_masks([widths], padded)]
    wide_out, wide_acts = MLP(padded).apply({"params": pad_params(first, widths, padded)}, x, unit_mask=masks)
    np.testing.assert_allclose(np.asarray(wide_out), np.asarray(out), rtol=1e-5, atol=1e-5)
    for a, b, w in zip(wide_acts, acts, widths):
        np.testing.assert_allclose(np.asarray(a)[:, :w], np.asarray(b), rtol=1e-5, atol=1e-5)
        assert not np.asarray(a)[:, w:].any()


def test_random_init_batch_pads_with_pad_params():
    key = jax.random.key(3)
    batch = init_params_batch(key, 3, (4, 2), num_inputs=100, padded_to=(6, 5))
    for i, k in enumerate(jax.random.split(key, 3)):
        one = pad_params(init_params(k, (4, 2), num_inputs=100), (4, 2), (6, 5))
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[i], np.asarray(b)), batch, one)
    assert all(isinstance(leaf, np.ndarray) for leaf in jax.tree.leaves(batch))


# -- metrics stored once -----------------------------------------------------------------


def test_trim_metrics_keeps_checkpointed_lines_byte_for_byte(tmp_path):
    lines = [json.dumps({"epoch": e, "val_loss": 1.0 / e, "wall_s": 0.5}) + "\n" for e in (1, 2, 3)]
    path = tmp_path / METRICS_FILE
    path.write_text("".join(lines) + '{"epoch": 4, "val_lo')  # epoch 3 never checkpointed, epoch 4 torn
    trim_metrics(tmp_path, 2)
    assert path.read_text() == "".join(lines[:2])
    with pytest.raises(TrainError, match=r"no line for the checkpointed epoch\(s\) \[3\]"):
        trim_metrics(tmp_path, 3)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    cache = tmp_path_factory.mktemp("datasets")
    dataset, _ = build_dataset(load_config(None, SMALL_DATA + ["--data.cache_dir", str(cache)]))
    return dataset, cache


def small_config(cache: Path):
    extra = ["--data.cache_dir", str(cache), "--train.max_train_rows", "1500", "--train.epochs", "3", "--train.lr", "1.0e-3"]
    return load_config(None, SMALL_DATA + extra)


def metrics_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]


def checkpoint_metadata(run_dir: Path) -> list[dict]:
    manager = open_manager(run_dir, read_only=True)
    try:
        return [read_metadata(manager, e) for e in sorted(manager.all_steps())]
    finally:
        manager.close()


@pytest.mark.slow
def test_each_epoch_value_is_stored_once_and_a_killed_save_is_trimmed_on_resume(small_dataset, tmp_path, monkeypatch):
    dataset, cache = small_dataset
    config = small_config(cache)
    reference = tmp_path / "reference"
    train_run(config, reference, dataset, log=lambda line: None)

    lines, stored = metrics_lines(reference), checkpoint_metadata(reference)
    assert [line["epoch"] for line in lines] == [m["epoch"] for m in stored] == [1, 2, 3]
    for line, meta in zip(lines, stored):
        assert set(meta) == set(CHECKPOINT_KEYS) and set(line) & set(meta) == {"epoch"}  # no value in both places
        assert {"train_loss", "val_loss", "val_accuracy", "wall_s"} <= set(line)
    run = load_run(reference)
    assert run.metadata == [{**{k: v for k, v in line.items() if k != "wall_s"}, **meta} for line, meta in zip(lines, stored)]
    assert run.metric("val_loss")[:, 0].tolist() == [line["val_loss"] for line in lines]
    assert run.metric("best_epoch")[-1, 0] == stored[-1]["best_epoch"]

    # killed while epoch 3's checkpoint was being saved: its line is written, its checkpoint is not
    real_save = run_module.save_checkpoint

    def killed_save(manager, epoch, state, metadata):
        if epoch == 3:
            raise KeyboardInterrupt("simulated kill during the save of epoch 3")
        real_save(manager, epoch, state, metadata)

    monkeypatch.setattr(run_module, "save_checkpoint", killed_save)
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train_run(config, killed, dataset, log=lambda line: None)
    with open(killed / METRICS_FILE, "a") as fh:
        fh.write('{"epoch": 4, "train_lo')  # and a torn line after it
    before = (killed / METRICS_FILE).read_text().splitlines(keepends=True)
    assert [json.loads(line)["epoch"] for line in before[:3]] == [1, 2, 3]
    partial = load_run(killed)  # the line without a checkpoint is not part of the run
    assert partial.epochs.tolist() == [1, 2] and len(partial.metadata) == 2

    monkeypatch.setattr(run_module, "save_checkpoint", real_save)
    result = train_run(config, killed, dataset, resume=True, log=lambda line: None)
    assert result.last_epoch == 3
    after = (killed / METRICS_FILE).read_text().splitlines(keepends=True)
    assert after[:2] == before[:2]  # the checkpointed epochs' lines are kept byte for byte
    resumed = load_run(killed)
    assert resumed.epochs.tolist() == [1, 2, 3] and resumed.metadata == run.metadata
    jax.tree.map(np.testing.assert_array_equal, resumed.params, run.params)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]  # noqa: E731
    assert strip(metrics_lines(killed)) == strip(lines)
    assert checkpoint_metadata(killed) == stored


# -- checkpoint formats ------------------------------------------------------------------


def _save_run(run_dir: Path, cache: Path, dataset, npz: bool, monkeypatch) -> dict:
    """A one-checkpoint run written directly (no training), as a single process or, with
    `npz`, as a process of a multi-host sweep would write it."""
    from mirror.runs import checkpoints
    from mirror.runs.checkpoints import append_metrics, save_checkpoint, split_epoch_record, write_run_files
    from mirror.train.loop import TrainState
    from mirror.train.population import members_from_config

    config = small_config(cache)
    members = members_from_config(config)
    params = jax.tree.map(lambda a: a[None], init_params(jax.random.key(7), config.model.widths, num_inputs=100))
    record = {"epoch": 1, "members": 1, "population": False, "val_loss": 0.5, "best_epoch": 1, "best_val_loss": 0.5,
              "epochs_without_improvement": 0, "stopped": False, "diverged": False, "config_hash": "c",
              "train_config_hash": "t", "dataset_sha256": "d"}  # fmt: skip
    run_dir.mkdir()
    write_run_files(run_dir, config, dataset.manifest, dataset.path, members)
    monkeypatch.setattr(checkpoints, "_multi_host", lambda: npz)
    manager = open_manager(run_dir)
    line, meta = split_epoch_record(record)
    append_metrics(run_dir, line)
    save_checkpoint(manager, 1, TrainState(params, {"count": jnp.zeros((1,), jnp.int32)}), meta)
    manager.wait_until_finished()
    manager.close()
    monkeypatch.undo()
    return params


def test_a_process_checkpointing_alone_has_the_item_directories_made_before_it_writes(small_dataset, tmp_path, monkeypatch):
    """A process of a multi-host sweep checkpoints alone, its arrays as .npz by a synchronous
    handler, which Orbax (0.12) starts without waiting for the item directories it makes in
    the background (a two-process sweep failed so: "No such file or directory: ...
    opt_state.orbax-checkpoint-tmp/arrays.npz"). Its manager makes them before the save."""
    from orbax.checkpoint._src.path import atomicity

    def in_the_background(*args, **kwargs):
        raise AssertionError("item directories made in the background")

    monkeypatch.setattr(atomicity, "create_all_async", in_the_background)
    dataset, cache = small_dataset
    run_dir = tmp_path / "alone"
    params = _save_run(run_dir, cache, dataset, True, monkeypatch)  # _multi_host: the manager of a process alone
    assert (run_dir / "checkpoints" / "1" / "params" / "arrays.npz").is_file()
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[0], np.asarray(b)), load_run(run_dir).params, params)


def test_single_process_runs_use_orbax_format_and_load_run_reads_both(small_dataset, tmp_path, monkeypatch):
    dataset, cache = small_dataset
    runs = {}
    for npz in (False, True):
        run_dir = tmp_path / ("npz" if npz else "orbax")
        params = _save_run(run_dir, cache, dataset, npz, monkeypatch)
        assert (run_dir / "checkpoints" / "1" / "params" / "arrays.npz").is_file() == npz
        runs[npz] = load_run(run_dir)
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[0], np.asarray(b)), runs[npz].params, params)
        assert runs[npz].metric("val_loss").tolist() == [[0.5]] and runs[npz].metric("best_epoch").tolist() == [[1.0]]
    assert runs[False].metadata == runs[True].metadata
