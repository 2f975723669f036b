"""The transformer agent: shapes, permutation invariance without position
embeddings, config errors, populations, run directories, CMNI and resume after an interruption."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_epochs

from mirror.agents.models import l2_leaf
from mirror.agents.transformer import Transformer, init_transformer_params
from mirror.base.errors import ConfigError
from mirror.env.constants import layout_of
from mirror.runs.config import load_config
from mirror.train.loop import Split, make_train
from mirror.train.population import members_from_config

W = 8  # a small world: 3W + 4 = 28 inputs, 9 tokens
INPUTS = 3 * W + 4


def random_inputs(seed: int, rows: int) -> jax.Array:
    """Valid-looking model inputs: ground 0..2, players 0..9, flies 0 or 3, energy 0..20;
    own code, score and position zero (as `model_inputs` leaves them). Drawn with NumPy:
    each new shape of a `jax.random` draw would be a new compiled program."""
    rng = np.random.default_rng(seed)
    ground, players = rng.integers(0, 3, (rows, W)), rng.integers(0, 10, (rows, W))
    flies, energy = 3 * rng.integers(0, 2, (rows, W)), rng.integers(0, 21, (rows, 1))
    zero = np.zeros((rows, 1), np.int64)
    return jnp.asarray(np.concatenate([ground, players, flies, zero, energy, zero, zero], axis=1).astype(np.int8))


def random_params(seed: int, **arch):
    """Random parameters of `init_transformer_params`' tree (its shapes by `jax.eval_shape`,
    the values drawn with NumPy): initialising for real compiles a program per shape, and
    these tests need generic weights, not the initialiser's."""
    shapes = jax.eval_shape(lambda: init_transformer_params(jax.random.key(0), num_inputs=INPUTS, **arch))
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        if "scale" in name:  # LayerNorm
            return jnp.asarray(1.0 + 0.1 * rng.standard_normal(leaf.shape), leaf.dtype)
        return jnp.asarray((0.1 if "bias" in name else 0.5) * rng.standard_normal(leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def synthetic_split(seed: int, rows: int) -> Split:
    """A learnable problem: the label is the quarter of the world with the most players-line code."""
    x = np.asarray(random_inputs(seed, rows))
    labels = np.argmax(x[:, W : 2 * W].astype(np.int32).reshape(rows, 4, W // 4).sum(-1), axis=-1).astype(np.int8)
    return Split(jnp.asarray(x), jnp.asarray(labels))


def transformer_config(*extra):
    return load_config(
        None,
        ["--model.kind", "transformer", "--model.transformer.depth", "1", "--model.transformer.d_model", "8", "--train.lr", "3.0e-3", "--train.batch_size", "16", *extra],
    )


SYNTH_TRAIN = synthetic_split(0, 320)
SYNTH_VAL = synthetic_split(1, 64)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol), a, b)


# -- the module ---------------------------------------------------------------------


@pytest.mark.slow
def test_shapes_and_activations_follow_the_mlp_convention():
    params = random_params(0, depth=3, d_model=16, heads=4, mlp_ratio=3)
    assert params["position"].shape == (W + 1, 16)  # W cell tokens + energy
    assert [k for k in params if k.startswith("block_")] == ["block_0", "block_1", "block_2"]
    x = random_inputs(1, 5)
    model = Transformer(depth=3, d_model=16, heads=4, mlp_ratio=3)
    out, activations = model.apply({"params": params}, x)
    assert out.shape == (5, 4)
    assert [a.shape for a in activations] == [(5, 48)] * 3 + [(5, 4)]
    np.testing.assert_array_equal(activations[-1], out)
    # evaluation is deterministic; dropout changes the output, rate 0 does not
    np.testing.assert_array_equal(model.apply({"params": params}, x)[0], out)
    dropped, _ = model.apply({"params": params}, x, dropout_rate=0.5, dropout_key=jax.random.key(2))
    assert not np.allclose(dropped, out)
    kept, _ = model.apply({"params": params}, x, dropout_rate=0.0, dropout_key=jax.random.key(2))
    np.testing.assert_allclose(kept, out, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="unit_mask"):
        model.apply({"params": params}, x, unit_mask=[np.ones(48, bool)] * 3)


def test_hidden_units_are_pooled_over_cell_tokens_only():
    params = random_params(0, d_model=16)
    x = random_inputs(1, 3)
    _, activations = Transformer(d_model=16).apply({"params": params}, x)
    _, state = Transformer(d_model=16).apply({"params": params}, x, capture_intermediates=True, mutable=["intermediates"])
    hidden = state["intermediates"]["block_0"]["mlp_in"]["__call__"][0]  # pre-activation [batch, tokens, units]
    np.testing.assert_allclose(activations[0], jnp.mean(jax.nn.relu(hidden[:, :W]), axis=1), rtol=1e-6)


def test_output_ignores_token_order_without_position_embeddings():
    params = random_params(3, d_model=16)
    model = Transformer(d_model=16)
    x = random_inputs(4, 6)
    perm = np.random.default_rng(0).permutation(W)
    layout = layout_of(INPUTS)
    columns = np.arange(INPUTS)
    for part in (layout.ground, layout.players, layout.flies):  # the same cell order in all three rows
        columns[part] = columns[part][perm]
    permuted = x[:, columns]
    unpositioned = {**params, "position": jnp.zeros_like(params["position"])}
    out, acts = model.apply({"params": unpositioned}, x)
    out_p, acts_p = model.apply({"params": unpositioned}, permuted)
    np.testing.assert_allclose(out_p, out, rtol=1e-5, atol=1e-6)
    assert_trees_close(acts_p, acts, rtol=1e-5, atol=1e-6)
    # with the learned position embeddings the order matters
    assert not np.allclose(model.apply({"params": params}, permuted)[0], model.apply({"params": params}, x)[0], atol=1e-6)
    # permuting one row alone changes the cells: not a symmetry
    one_row = np.arange(INPUTS)
    one_row[layout.ground] = one_row[layout.ground][perm]
    assert not np.allclose(model.apply({"params": unpositioned}, x[:, one_row])[0], out, atol=1e-6)


# -- config -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["--model.kind", "cnn"], "model.kind = 'cnn' is invalid: expected one of ['mlp', 'transformer']"),
        (["--model.kind", "transformer", "--model.transformer.heads", "3"], "model.transformer.heads = 3 is invalid: expected a divisor of model.transformer.d_model = 32"),
        (["--model.transformer.depth", "0"], "model.transformer.depth = 0 is invalid"),
        (["--model.transformer.mlp_ratio", "1.5"], "model.transformer.mlp_ratio must be of type int"),
        (["--model.kind", "transformer", "--model.population_widths", "[[4, 4], [8, 8]]"], "population widths are MLP-only"),
        (["--model.transformer.width", "3"], "unknown config field(s) model.transformer.width"),
    ],
)  # fmt: skip
def test_bad_transformer_config_fails_naming_the_field(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert message in str(err.value)


def test_cli_rejects_a_bad_transformer_config_before_work(tmp_path, capsys):
    from mirror.cli import main

    code = main(["train", "--run-dir", str(tmp_path / "run"), "--model.kind", "transformer", "--model.transformer.heads", "5"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.transformer.heads = 5" in err[0]
    assert not (tmp_path / "run").exists()


def test_l2_covers_every_kernel_but_embeddings_and_layernorm():
    params = random_params(0, d_model=16)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    penalised = sorted(p for p in paths if l2_leaf("transformer", p))
    assert all("kernel" in p and "embed" not in p for p in penalised)
    assert any("attention" in p for p in penalised) and any("mlp_in" in p for p in penalised) and any("output" in p for p in penalised)
    assert not any("position" in p or "ln_" in p or "embed" in p for p in penalised)
    # the trained objective's penalty is l2 * the sum of squares over exactly those leaves
    trainer = make_train(transformer_config("--train.l2", "0.5"), SYNTH_TRAIN)
    state = trainer.init()
    metrics = trainer.evaluate(state.params, trainer.place(SYNTH_VAL))
    leaves = jax.tree_util.tree_flatten_with_path(jax.tree.map(lambda a: np.asarray(a[0], np.float64), state.params))[0]
    expected = 0.5 * sum(np.sum(leaf**2) for p, leaf in leaves if l2_leaf("transformer", jax.tree_util.keystr(p)))
    np.testing.assert_allclose(float(metrics.loss[0] - metrics.loss_data[0]), expected, rtol=1e-4)


# -- training -----------------------------------------------------------------------


@pytest.mark.slow
def test_transformer_learns_and_a_population_member_equals_it_trained_alone():
    population = transformer_config(
        "--train.population_seeds", "[0, 1]", "--train.population_lrs", "[1.0e-3, 3.0e-3]",
        "--model.population_dropouts", "[0.0, 0.1]", "--train.population_l2s", "[0.0, 0.001]",
    )  # fmt: skip
    solo = transformer_config("--seed", "1", "--train.lr", "3.0e-3", "--model.dropout", "0.1", "--train.l2", "0.001")
    assert members_from_config(population)[1] == members_from_config(solo)[0]
    trainer, together, hist_together = run_epochs(population, SYNTH_TRAIN, SYNTH_VAL, 2)
    _, alone, hist_alone = run_epochs(solo, SYNTH_TRAIN, SYNTH_VAL, 2)
    assert isinstance(trainer.model, Transformer)
    assert_trees_close(jax.tree.map(lambda a: a[1], together.params), jax.tree.map(lambda a: a[0], alone.params))
    for (tm, tv), (am, av) in zip(hist_together, hist_alone):
        np.testing.assert_allclose(tm.loss[1], am.loss[0], rtol=1e-5)
        np.testing.assert_array_equal(tv.confusion[1], av.confusion[0])
    # the members really differ, and training moves the training loss down
    assert not np.allclose(together.params["output"]["kernel"][0], together.params["output"]["kernel"][1])
    train_losses = np.asarray([m.loss_data for m, _ in hist_together])  # [epochs, members]
    assert np.all(train_losses[-1] < train_losses[0]), train_losses


# -- run directories ----------------------------------------------------------------

@pytest.mark.slow
def test_transformer_run_resumes_bit_exactly_after_an_interruption(tiny_transformer_run, tiny_dataset, dataset_cache, tmp_path, monkeypatch, capsys):
    """The tiny transformer run again (`mirror train`), stopped during epoch 2 once
    checkpoint 1 is complete (4 epochs of its 5 to go), then `mirror train --resume`: it
    equals the uninterrupted shared run. In this process, so that it reuses the shared run's
    compiled programs; a kill of a real process (SIGKILL) and its resume in another is
    test_train's test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run, the same
    resume path."""
    from conftest import tiny_transformer_args
    from test_train import assert_same_run, interrupt_during_epoch

    from mirror.cli import main
    from mirror.runs import train_run as run_module
    from mirror.runs.checkpoints import load_run

    real_make_train = interrupt_during_epoch(monkeypatch, 2)
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        main(tiny_transformer_args(killed, dataset_cache))
    monkeypatch.setattr(run_module, "make_train", real_make_train)
    partial = load_run(killed)
    assert partial.epochs.tolist() == [1]  # stopped mid-run, the finished checkpoint on disk
    # the checkpoints hold the transformer's parameter tree, [checkpoints, members, ...]
    single = jax.eval_shape(lambda: init_transformer_params(jax.random.key(0), num_inputs=tiny_dataset.input_width, depth=1, d_model=8))
    assert jax.tree.structure(partial.params) == jax.tree.structure(single)
    jax.tree.map(lambda a, b: np.testing.assert_equal(a.shape, (len(partial.epochs), 2) + b.shape), partial.params, single)
    capsys.readouterr()
    assert main(["train", "--resume", str(killed)]) == 0
    assert f"resuming {killed}" in capsys.readouterr().out
    assert_same_run(tiny_transformer_run, killed)
    assert load_run(killed).epochs.tolist() == [1, 2, 3, 4, 5]


# -- CMNI ---------------------------------------------------------------------------


def reference_cmni(params, x, groups, activation="relu"):
    """CMNI of one transformer by hand: means of `Transformer.apply`'s activations per group."""
    from mirror.agents.transformer import transformer_of_params

    _, activations = transformer_of_params(params, activation).apply({"params": params}, x)
    acts = np.concatenate([np.asarray(a, np.float64) for a in activations], axis=1)  # [rows, neurons]
    mu = np.stack([acts[groups == g].mean(0) for g in range(3)], axis=1)
    d_frog, d_toad = mu[:, 1] - mu[:, 0], mu[:, 2] - mu[:, 0]
    mns = np.where((d_frog > 0) & (d_toad > 0), np.minimum(d_frog, d_toad), 0.0)
    return mu, mns, mns.sum() / len(mns)


@pytest.mark.slow
def test_cmni_of_stacked_transformers_matches_a_hand_computation():
    from mirror.analysis.cmni import cmni, neuron_layout

    single = [random_params(5 + i, d_model=16) for i in range(3)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a).reshape((3, 1) + a[0].shape), *single)  # [checkpoints, members]
    x = random_inputs(6, 300)
    groups = np.random.default_rng(1).integers(-1, 4, 300).astype(np.int8)  # -1 and 3: not CMNI rows
    result = cmni(stacked, x, groups, chunk_rows=64)  # 300 rows: 5 chunks, the last one padded
    layer, unit = neuron_layout(stacked)
    assert layer.tolist() == [0] * 32 + [1] * 32 + [2] * 4 and unit[:32].tolist() == list(range(32))
    assert result.cmni.shape == (3, 1) and result.mu.shape == (3, 1, 68, 3)
    assert np.all(np.asarray(result.neurons) == 68)
    for c, params in enumerate(single):
        mu, mns, value = reference_cmni(params, x, groups)
        np.testing.assert_allclose(result.mu[c, 0], mu, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(result.mns[c, 0], mns, rtol=2e-4, atol=2e-6)
        np.testing.assert_allclose(result.cmni[c, 0], value, rtol=2e-4, atol=1e-7)
    assert np.any(np.asarray(result.mns) > 0)  # some neurons do mirror: the test can fail
    np.testing.assert_array_equal(result.counts, [np.sum(groups == g) for g in range(3)])


@pytest.mark.slow
def test_variants_nulls_and_moments_run_unchanged_over_transformers():
    from mirror.analysis.cmni import cmni, permutation_null
    from mirror.analysis.moments import scenario_moments
    from mirror.analysis.variants import cmni_variants, variant_permutation_null

    single = [random_params(7 + i, d_model=16) for i in range(2)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a)[:, None], *single)  # [checkpoints, members]
    x = random_inputs(8, 240)
    groups = np.random.default_rng(2).integers(-1, 4, 240).astype(np.int8)
    result = cmni(stacked, x, groups, chunk_rows=64)
    variants = cmni_variants(stacked, x, groups, None, chunk_rows=64)
    np.testing.assert_allclose(variants.values["cmni"], result.cmni, rtol=1e-6)
    assert np.all(np.isfinite(np.asarray(variants.values["cmni_scaled"])))
    assert np.all(np.isnan(np.asarray(variants.values["cmni_matched"])))  # no cells given
    null = permutation_null(3, stacked, x, groups, permutations=8, chunk_rows=64)
    assert null.shape == (2, 1, 8)
    np.testing.assert_array_equal(variant_permutation_null(3, stacked, x, groups, None, permutations=8, chunk_rows=64)["cmni"], null)
    # a permutation null by hand: the CMNI of the same models on shuffled groups
    from mirror.analysis.cmni import permuted_groups

    cmni_rows = (groups >= 0) & (groups < 3)
    shuffled = permuted_groups(3, groups[cmni_rows], 8)
    for k in (0, 5):
        by_hand = cmni(stacked, x[cmni_rows], shuffled[k], chunk_rows=64).cmni
        np.testing.assert_allclose(null[..., k], by_hand, rtol=1e-4, atol=1e-7)
    moments = scenario_moments(stacked, x, groups, chunk_rows=64)
    assert moments.mean.shape == (2, 1, 68, 4)  # 2 blocks x 32 units + 4 outputs
    np.testing.assert_allclose(moments.mean[..., :3], result.mu, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_cmni_on_a_transformer_run_directory(tiny_transformer_run, tiny_dataset, tmp_path):
    import csv
    import json

    from conftest import copy_run

    from mirror.analysis.cmni import cmni
    from mirror.analysis.groups import cmni_groups
    from mirror.cli import main
    from mirror.data.split import TEST
    from mirror.runs.checkpoints import load_run

    run_dir = copy_run(tiny_transformer_run, tmp_path / "run")
    assert main(["cmni", str(run_dir), "--analysis.permutations", "4", "--analysis.init_seeds", "2"]) == 0
    with open(run_dir / "analysis" / "cmni.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["epoch"], r["member"]) for r in rows] == [(str(e), str(m)) for e in range(1, 6) for m in range(2)]
    assert all(r["neurons"] == "20" for r in rows)  # 1 block x 16 pooled hidden units + 4 outputs
    assert {"cmni_L1", "cmni_L2"} <= set(rows[0]) and "cmni_L3" not in rows[0]
    # the file's CMNI is the library's on the run's checkpoints and test rows
    run = load_run(run_dir)
    test = tiny_dataset.splits == TEST
    expected = np.asarray(cmni(run.params, tiny_dataset.inputs[test], cmni_groups(tiny_dataset.scenarios[test], tiny_dataset.idle_shown[test])).cmni)
    np.testing.assert_allclose([float(r["cmni"]) for r in rows], expected.ravel(), rtol=1e-6)
    # the live per-epoch CMNI (W&B) agrees with the file (one checkpoint rather than all
    # of them batched: float32 sums may differ in the last bits)
    from mirror.runs.live import EpochCMNI

    live = EpochCMNI(run.config, tiny_dataset, [m.widths for m in run.members])
    np.testing.assert_allclose(live(jax.tree.map(lambda a: a[-1], run.params)), expected[-1], rtol=1e-5)
    for name in ("cmni_scaled", "cmni_matched", "p_permutation", "p_init"):
        assert all(np.isfinite(float(r[name])) for r in rows), name
    summary = json.loads((run_dir / "analysis" / "summary.json").read_text())
    assert summary  # written


def test_mlp_config_dicts_and_hashes_are_unchanged_by_the_model_kind():
    from mirror.runs.train_run import training_config_hash

    default = load_config(None, [])
    assert "kind" not in default.to_dict()["model"] and "transformer" not in default.to_dict()["model"]
    assert load_config(None, default.to_dict()) == default
    transformer = load_config(None, ["--model.kind", "transformer", "--model.transformer.depth", "3"])
    values = transformer.to_dict()
    assert values["model"]["kind"] == "transformer" and values["model"]["transformer"]["depth"] == 3
    assert load_config(None, values) == transformer
    assert training_config_hash(transformer) != training_config_hash(load_config(None, ["--model.kind", "transformer"]))
    assert training_config_hash(transformer) != training_config_hash(default)


# -- residual-stream neurons (model.transformer.residual_neurons) ------------------------


@pytest.mark.slow
def test_residual_neurons_read_out_each_blocks_stream_and_change_nothing_else(tmp_path):
    from conftest import rl_values

    from mirror.agents.transformer import neuron_widths, transformer_of_params
    from mirror.analysis.cmni import neuron_activations_t, neuron_layout
    from mirror.rl.config import RLConfigError

    arch = dict(depth=2, d_model=8, heads=2, mlp_ratio=2)
    plain = random_params(0, **arch)
    readout = {f"residual_ln_{i}": {"scale": jnp.ones(8), "bias": jnp.zeros(8)} for i in range(2)}  # as initialised
    params = {**plain, **readout}
    x = random_inputs(3, 6)
    (out, acts), state = Transformer(**arch).apply({"params": plain}, x, capture_intermediates=True, mutable=["intermediates"])
    out_r, acts_r = transformer_of_params(params).apply({"params": params}, x)
    np.testing.assert_array_equal(out_r, out)  # the read-out feeds nothing
    assert [a.shape[1] for a in acts_r] == [16, 8, 16, 8, 4] and neuron_widths(params) == [16, 8, 16, 8]
    for i in range(2):
        np.testing.assert_array_equal(acts_r[2 * i], acts[i])  # the block's MLP units, as without the read-out
        h = np.asarray(state["intermediates"][f"block_{i}"]["__call__"][0][0], np.float64)  # the stream after block i
        norm = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-6)  # flax LayerNorm, eps 1e-6
        np.testing.assert_allclose(acts_r[2 * i + 1], norm[:, :W].mean(axis=1), rtol=1e-4, atol=1e-5)
    layer, _ = neuron_layout(params)
    assert np.bincount(layer).tolist() == [16, 8, 16, 8, 4]
    assert neuron_activations_t(params, None, x.T, "relu").shape == (52, 6)

    # config: off by default and then absent from the dict (hashes as before); checked; RL refuses it
    assert "residual_neurons" not in transformer_config().to_dict()["model"]["transformer"]
    on = transformer_config("--model.transformer.residual_neurons", "true")
    assert on.to_dict()["model"]["transformer"]["residual_neurons"] is True
    with pytest.raises(ConfigError, match="model.transformer.residual_neurons"):
        transformer_config("--model.transformer.residual_neurons", "2")
    with pytest.raises(RLConfigError, match="model.transformer.residual_neurons"):
        load_config(None, {**rl_values(tmp_path), "model": {"kind": "transformer", "transformer": {"residual_neurons": True}}})

    # training: the read-out's LayerNorm gets zero gradients, every other parameter trains as without it
    _, trained, _ = run_epochs(on, SYNTH_TRAIN, SYNTH_VAL, 1)
    _, reference, _ = run_epochs(transformer_config(), SYNTH_TRAIN, SYNTH_VAL, 1)
    for i in range(1):  # depth 1 in transformer_config
        np.testing.assert_array_equal(trained.params[f"residual_ln_{i}"]["scale"], 1.0)
        np.testing.assert_array_equal(trained.params[f"residual_ln_{i}"]["bias"], 0.0)
    shared = {k: v for k, v in trained.params.items() if not k.startswith("residual_ln")}
    assert_trees_close(shared, reference.params)
