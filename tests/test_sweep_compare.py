"""Sweeps over `model.kind` and the settings comparison: populations by kind and
shape, unchanged MLP trial ids, bad axis values, comparison.md / figures/comparison.png."""

import numpy as np
import pytest
import yaml

from mirror.analysis import seeds
from mirror.base.errors import ConfigError
from mirror.cli import main
from mirror.sweep.compare import (
    COLOURS,
    MAX_SETTINGS,
    TrialNumbers,
    carried,
    comparison_figure,
    comparison_markdown,
    setting_row,
    settings_of,
    write_comparison,
)
from mirror.sweep.plan import populations
from mirror.sweep.spec import load_sweep


def write_sweep(path, sweep: dict, **sections):
    path.write_text(yaml.safe_dump({"name": "t", **sections, "sweep": sweep}))
    return path


SHAPE = {"transformer": {"depth": 1, "d_model": 8, "heads": 2, "mlp_ratio": 2}}


# --------------------------------------------------------------------------- plans


def test_a_kind_axis_plans_one_population_per_kind_and_keeps_mlp_trial_ids(tmp_path):
    with_kind = load_sweep(write_sweep(tmp_path / "k.yaml", {"grid": {"model.kind": ["mlp", "transformer"]}, "seeds": [0, 1]}, model=SHAPE))
    plain = load_sweep(write_sweep(tmp_path / "p.yaml", {"seeds": [0, 1]}, model=SHAPE))
    mlp = [t for t in with_kind.trials if t.config.model.kind == "mlp"]
    # An MLP trial's identity ignores the axis that named its kind: same ids, same population.
    assert [t.trial_id for t in mlp] == [t.trial_id for t in plain.trials]
    assert "kind" not in mlp[0].config.to_dict()["model"]
    pops = populations(with_kind.trials, max_population=64)
    assert [[t.index for t in p.trials] for p in pops] == [[0, 1], [2, 3]]
    assert pops[0].population_id == populations(plain.trials, 64)[0].population_id
    mlp_pop, transformer_pop = pops[0].config.model, pops[1].config.model
    assert mlp_pop.kind == "mlp" and mlp_pop.population_widths == ([17, 17], [17, 17])
    assert transformer_pop.kind == "transformer" and transformer_pop.population_widths == ()  # never padded
    assert transformer_pop.transformer.as_tuple() == (1, 8, 2, 2)
    assert [m.seed for m in pops[1].members] == [0, 1]


def test_transformers_group_by_shape_and_mlps_keep_their_padding(tmp_path):
    spec = {
        "trials": [
            {"model.kind": "transformer", "model.transformer.d_model": 8},
            {"model.kind": "transformer", "model.transformer.d_model": 16},
            {"model.kind": "transformer", "model.transformer.d_model": 8, "train.lr": 3.0e-3},
            {"model.kind": "mlp", "model.width": 5},
            {"model.kind": "mlp", "model.width": 8},
        ],
    }
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", spec, model=SHAPE))
    pops = populations(sweep.trials, max_population=64)
    assert [[t.index for t in p.trials] for p in pops] == [[0, 2], [1], [3, 4]]
    assert [p.config.model.transformer.d_model for p in pops[:2]] == [8, 16]
    assert pops[2].config.model.population_widths == ([5, 5], [8, 8])  # widths 5 and 8 share one padded program


def test_kind_as_a_random_choice_draws_both_kinds(tmp_path):
    spec = {"random": {"samples": 8, "seed": 3, "fields": {"model.kind": {"choice": ["mlp", "transformer"]}, "train.lr": {"log_uniform": [1e-4, 1e-2]}}}}
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", spec, model=SHAPE))
    kinds = [t.config.model.kind for t in sweep.trials]
    assert set(kinds) == {"mlp", "transformer"}
    for p in populations(sweep.trials, max_population=64):
        assert len({t.config.model.kind for t in p.trials}) == 1


@pytest.mark.parametrize(
    "sweep, message",
    [
        ({"grid": {"model.kind": ["mlp", "cnn"]}}, r"model.kind = 'cnn' is invalid: expected one of \['mlp', 'transformer'\]"),
        ({"random": {"samples": 4, "fields": {"model.kind": {"choice": ["rnn"]}}}}, r"model.kind = 'rnn' is invalid: expected one of \['mlp', 'transformer'\]"),
        ({"trials": [{"model.kind": "transformer", "model.transformer.heads": 3}]}, "model.transformer.heads = 3 is invalid: expected a divisor of model.transformer.d_model = 8"),
        ({"grid": {"model.kind": ["transformer"], "model.transformer.depth": [0]}}, "model.transformer.depth = 0 is invalid: expected a positive integer"),
        ({"grid": {"model.transformer.width": [4]}}, "'model.transformer.width' cannot be swept"),
        (
            {"grid": {"model.kind": ["mlp", "transformer"], "model.transformer.d_model": [8, 16]}},
            "model.transformer.d_model only shapes a model.kind = transformer model, but this trial's model.kind is 'mlp'; allowed for mlp: model.hidden_layers, model.width",
        ),
        ({"trials": [{"model.kind": "transformer", "model.width": 9}]}, "model.width only shapes a model.kind = mlp model.*allowed for transformer: model.transformer.depth"),
    ],
)
def test_bad_kind_axis_values_fail_naming_the_field_and_the_allowed_values(tmp_path, sweep, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write_sweep(tmp_path / "s.yaml", sweep, model=SHAPE))


def test_cli_rejects_a_bad_kind_before_any_work(tmp_path, capsys):
    path = write_sweep(tmp_path / "s.yaml", {"grid": {"model.kind": ["mlp", "cnn"]}})
    assert main(["sweep", str(path), "--sweep-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.kind = 'cnn' is invalid: expected one of ['mlp', 'transformer']" in err[0]
    assert not (tmp_path / "out").exists()


def test_the_shipped_comparison_config_pairs_models_of_similar_size_on_the_same_seeds():
    from pathlib import Path

    from mirror.sweep.compare import parameter_count

    sweep = load_sweep(Path(__file__).resolve().parents[1] / "configs" / "transformer.yaml")
    groups = settings_of(sweep.trials)
    assert [label for label, _ in groups] == ["mlp", "transformer"]
    assert [sorted(t.config.seed for t in trials) for _, trials in groups] == [[0, 1, 2], [0, 1, 2]]
    assert len({t.config.data_seed for t in sweep.trials}) == 1  # one dataset
    mlp, transformer = (parameter_count(trials[0]) for _, trials in groups)
    assert (mlp, transformer) == (2095, 2212)  # the counts its header states
    assert 1 / 1.5 <= transformer / mlp <= 1.5
    assert len(populations(sweep.trials, sweep.max_population)) == 2


# --------------------------------------------------------------------------- comparison


def numbers(trial, seed, epochs, cmni, *, accuracy, recall, selected, params=100, draws=None):
    """Hand-made numbers of one trial: the variants are cmni, 2 x cmni and NaN (matched)."""
    cmni = np.asarray(cmni, float)
    curves = {"cmni": cmni, "cmni_scaled": 2 * cmni, "cmni_matched": np.full_like(cmni, np.nan)}
    return TrialNumbers(
        trial=trial, seed=seed, params=params, accuracy=accuracy, recall=dict(zip(("hop", "jump", "leap", "help"), recall)),
        selected={k: float(v[selected]) for k, v in curves.items()}, epochs=np.asarray(epochs), curves=curves,
        val_accuracy=np.linspace(0.5, 0.9, len(epochs)), init_draws=draws,
    )  # fmt: skip


def test_carried_keeps_an_early_stopped_trials_last_value():
    np.testing.assert_array_equal(carried(np.array([1, 2, 3, 4]), np.array([1, 2]), np.array([0.5, 0.25])), [0.5, 0.25, 0.25, 0.25])
    assert np.isnan(carried(np.array([1, 2]), np.array([2]), np.array([7.0]))[0])


def test_setting_rows_are_the_mean_and_sd_of_the_trials_own_numbers():
    draws = {"cmni": [0.0, 0.01, 0.02], "cmni_scaled": [0.0, 0.02, 0.04], "cmni_matched": [0.0, 0.0, 0.0]}
    trials = [
        numbers(0, 0, [1, 2, 3], [0.1, 0.3, 0.2], accuracy=0.8, recall=(0.9, 0.8, 0.5, None), selected=1, draws=draws),
        numbers(1, 1, [1, 2, 3], [0.2, 0.5, 0.1], accuracy=0.7, recall=(0.7, 0.6, 0.3, 0.4), selected=2, draws=draws),
        numbers(2, 2, [1, 2], [0.3, 0.4], accuracy=0.6, recall=(0.5, 0.4, 0.1, 0.2), selected=0, draws=draws),  # stopped early
    ]
    row = setting_row("mlp", trials)
    assert row.accuracy == pytest.approx((0.7, 0.1))
    assert row.recall["hop"] == pytest.approx((0.7, 0.2))
    assert row.recall["help"] == pytest.approx((0.3, np.std([0.4, 0.2], ddof=1)))  # undefined recall left out
    assert row.selected["cmni"] == pytest.approx((np.mean([0.3, 0.1, 0.3]), np.std([0.3, 0.1, 0.3], ddof=1)))
    assert row.selected["cmni_scaled"] == pytest.approx((np.mean([0.6, 0.2, 0.6]), np.std([0.6, 0.2, 0.6], ddof=1)))
    assert row.selected["cmni_matched"] == (None, None)
    curves = np.array([[0.1, 0.2, 0.3], [0.3, 0.5, 0.4], [0.2, 0.1, 0.4]])  # [epochs, seeds], seed 2's 0.4 carried
    np.testing.assert_allclose(row.curves["cmni"], curves)
    assert row.rise_and_fall["cmni"] == seeds.rise_and_fall([1, 2, 3], curves)
    assert row.init_baseline["cmni"] == seeds.init_baseline(np.array([draws["cmni"]] * 3), [0.3, 0.1, 0.3])
    assert row.rise_and_fall["cmni_matched"]["drop"] is None  # NaN: not tested, said so

    other = setting_row("transformer", [numbers(3, 0, [1, 2], [0.0, 0.1], accuracy=0.9, recall=(1, 1, 0, 0), selected=1, params=250)])
    assert other.accuracy == (0.9, None) and other.init_baseline["cmni"]["p_mean_vs_init"] is None  # no draws recorded
    text = comparison_markdown([row, other], "t")
    assert "| mlp | 3 | 100 | 0.7000 ± 0.1 | 0.700 ± 0.2 |" in text
    assert "| transformer | 1 | 250 | 0.9000 | 1.000 | 1.000 | 0.000 | 0.000 | 0.1 | 0.2 | - |" in text
    assert "no significance test between settings" in text
    # The random-init verdict first, then the rise and fall with its sign-flip p.
    cells = next(line for line in text.splitlines() if line.startswith("| mlp | cmni |")).strip("| ").split(" | ")
    assert cells[3] == seeds.init_baseline_words(row.init_baseline["cmni"]) and "random-init" in cells[3]
    assert cells[4] == str(row.rise_and_fall["cmni"]["peak_epoch"]) and cells[6] == f"{row.rise_and_fall['cmni']['p_sign_flip']:.3g}"
    assert cells[7] == seeds.rise_and_fall_words(row.rise_and_fall["cmni"]) and "sign-flip" in cells[7]

    fig = comparison_figure([row, other])
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert len(axes) == 4  # cmni, cmni_scaled, cmni_matched, validation accuracy
    for ax in axes:  # one mean line per setting, the same colours in every panel
        assert [line.get_color() for line in ax.get_lines()] == list(COLOURS[:2])
    np.testing.assert_allclose(axes[0].get_lines()[0].get_ydata(), curves.mean(axis=1))


def test_settings_are_trials_that_differ_only_by_seed_and_many_settings_write_nothing(tmp_path):
    spec = {"grid": {"model.kind": ["mlp", "transformer"], "train.lr": [1e-3, 2e-3]}, "seeds": [0, 1, 2]}
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", spec, model={**SHAPE, "hidden_layers": 1}))
    groups = settings_of(sweep.trials)
    assert [label for label, _ in groups] == ["mlp, lr=0.001", "mlp, lr=0.002", "transformer, lr=0.001", "transformer, lr=0.002"]
    assert all(len(trials) == 3 and len({t.config.seed for t in trials}) == 3 for _, trials in groups)
    many = load_sweep(write_sweep(tmp_path / "m.yaml", {"grid": {"train.lr": [1e-3 * (i + 1) for i in range(MAX_SETTINGS + 1)]}}))
    assert write_comparison(many, tmp_path / "out", [{"trial": 0}]) == []
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow  # a transformer population trained and analysed (~45 CPU-s, most of it compiling)
def test_a_tiny_transformer_sweep_trains_analyses_and_compares(tmp_path, dataset_cache, tiny_dataset):
    """A transformer population of two seeds on conftest's tiny dataset (the MLP path is
    test_sweep.py's tiny sweep): its trials are analysed at their own, unpadded shape,
    keep their random-init draws, and comparison.md's row is the trials' own numbers."""
    import json

    import jax
    from conftest import TINY_DATA, yaml_value

    data = {TINY_DATA[i][len("--data.") :]: yaml_value(TINY_DATA[i + 1]) for i in range(0, len(TINY_DATA), 2)}
    path = write_sweep(
        tmp_path / "s.yaml",
        {"grid": {"model.kind": ["transformer"]}, "seeds": [0, 1], "trial_figures": False},
        seed=0,
        data={**data, "cache_dir": str(dataset_cache)},
        model={"transformer": {"depth": 1, "d_model": 4, "heads": 1, "mlp_ratio": 1}},
        train={"epochs": 2, "patience": 0, "max_train_rows": 300, "lr": 1.0e-3},
        analysis={"permutations": 0, "init_seeds": 2, "roles": "paper"},
        tracking={"mode": "disabled"},
    )
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--sweep-dir", str(out)]) == 0
    results = [json.loads(p.read_text()) for p in sorted((out / "trials").glob("t*/result.json"))]
    assert [r["trial"] for r in results] == [0, 1]
    trial = out / results[0]["dir"]
    cmni = (trial / "cmni.csv").read_text().splitlines()
    assert cmni[1].split(",")[cmni[0].split(",").index("neurons")] == "8"  # 1 block x 4 pooled hidden units + 4 outputs
    assert len(json.loads((trial / "summary.json").read_text())["variant_init_null"]["cmni"]) == 2
    # the trial reads as a single run: its member's checkpoints of the (unpadded) population
    from mirror.runs.checkpoints import load_run

    run, population = load_run(trial), load_run(json.loads((trial / "population.json").read_text())["run_dir"])
    assert "position" in run.params and run.epochs.tolist() == [1, 2]
    for mine, theirs in zip(jax.tree.leaves(run.params), jax.tree.leaves(population.params)):
        np.testing.assert_array_equal(mine, np.asarray(theirs)[:, :1])
    accuracy = [r["accuracy"] for r in results]
    text = (out / "comparison.md").read_text()
    assert f"| transformer | 2 | 372 | {np.mean(accuracy):.4f} ± {np.std(accuracy, ddof=1):.2g} |" in text
    assert (out / "figures" / "comparison.png").is_file() and "comparison.md" in (out / "report.md").read_text()
    # a transformer has no layers x width: its rows leave them empty, the report names its kind
    assert all(r["hidden_layers"] is None and r["width"] is None and r["capacity"] is None for r in results)
    report = (out / "report.md").read_text()
    assert "| trial | hidden_layers | width | model.kind | lr |" in report and "| 0 | - | - | transformer |" in report
    assert "(trial 0: transformer," in report or "(trial 1: transformer," in report
