"""Neuron roles, weight z-scores, circuits, figures and `mirror cmni` end to end."""

import csv
import json

import numpy as np
import pytest

from mirror.analysis.circuits import circuit_label, circuits, source_summary, weight_zscores
from mirror.analysis.neurons import DIFFERENTIATING, MIRROR, OTHER, mirror_candidates, mirror_rank, neuron_roles
from mirror.env.constants import HELP, LEAP
from mirror.runs.figures import plot_circuits, plot_layer_means, plot_training

# Paper Table 4: mean activation of the 17 first-layer neurons (none, frog, toad, both).
TABLE_4 = np.array([
    [0.04241, 0.04540, 0.03790, 0.03471], [0.04103, 0.04391, 0.03649, 0.03345], [0.02176, 0.01813, 0.01120, 0.02862],
    [0.00471, 0.04827, 0.03987, 0.10065], [0.04203, 0.04507, 0.03736, 0.03446], [0.04147, 0.04441, 0.03698, 0.03409],
    [0.04151, 0.04446, 0.03696, 0.03392], [0.00270, 0.05432, 0.03930, 0.12933], [0.02266, 0.02641, 0.01465, 0.01535],
    [0.02035, 0.01283, 0.07424, 0.01121], [0.04099, 0.04384, 0.03644, 0.03335], [0.03000, 0.03451, 0.09562, 0.03632],
    [0.02022, 0.06299, 0.03550, 0.10880], [0.01653, 0.05898, 0.03298, 0.10155], [0.04242, 0.04546, 0.03784, 0.03477],
    [0.02233, 0.01585, 0.01294, 0.00847], [0.04096, 0.04375, 0.03639, 0.03344],
])  # fmt: skip


def table_4_differences():
    d_frog, d_toad = TABLE_4[:, 1] - TABLE_4[:, 0], TABLE_4[:, 2] - TABLE_4[:, 0]
    mns = np.where((d_frog > 0) & (d_toad > 0), np.minimum(d_frog, d_toad), 0.0)
    return d_frog, d_toad, mns, np.zeros(17, int), np.ones(17, bool)


def test_roles_reproduce_the_papers_table_4_classification():
    d_frog, d_toad, mns, layer_of, real = table_4_differences()
    roles = neuron_roles(d_frog, d_toad, mns, layer_of, real, fraction=0.15)
    assert set(np.flatnonzero(roles == MIRROR)) == {3, 7, 12, 13}
    assert set(np.flatnonzero(roles == DIFFERENTIATING)) == {9, 11}
    # L1N11 has MNS > 0 (a small dFrog) yet is differentiating, as in the paper
    assert mns[11] > 0 and roles[11] == DIFFERENTIATING
    # candidates (MNS > 0) ranked by MNS; L1N11's tiny MNS ranks last
    assert list(mirror_candidates(mns, layer_of, real, 0)) == [7, 3, 13, 12, 11]
    rank = mirror_rank(mns, layer_of, real)
    assert rank[7] == 1 and rank[11] == 5 and rank[0] == 0


def test_roles_are_per_layer_and_skip_padded_neurons():
    # layer 0: a strong mirror neuron sets the scale; layer 1: weak responses are judged on their own scale
    d_frog = np.array([1.0, 0.01, 0.02, 0.0, 5.0])
    d_toad = np.array([1.0, -0.01, 0.02, 0.001, 5.0])
    mns = np.where((d_frog > 0) & (d_toad > 0), np.minimum(d_frog, d_toad), 0)
    layer_of = np.array([0, 0, 1, 1, 1])
    real = np.array([True, True, True, True, False])
    roles = neuron_roles(d_frog, d_toad, mns, layer_of, real, fraction=0.15)
    np.testing.assert_array_equal(roles, [MIRROR, OTHER, MIRROR, OTHER, OTHER])
    # leading model axes broadcast
    assert neuron_roles(d_frog[None].repeat(3, 0), d_toad[None].repeat(3, 0), mns[None].repeat(3, 0), layer_of, real[None].repeat(3, 0)).shape == (3, 5)


def circuit_model():
    """6 first-layer units (mirror 0, 1; differentiating 2, 3; other 4, 5) -> 4 hubs -> actions.

    hub 0: mirror only -> leap (self-preservation); hub 1: differentiating only -> help
    (tactical help); hub 2: mirror + differentiating -> help (empathy help); hub 3: mostly
    input from an "other" unit -> no circuit. Every other weight is a small negative number.
    """
    rng = np.random.default_rng(0)
    w1 = -0.03 - 0.01 * rng.random((6, 4))
    w1[0, 0], w1[1, 0] = 0.035, 0.034
    w1[2, 1], w1[3, 1] = 0.07, 0.02
    w1[0, 2], w1[2, 2] = 0.055, 0.087
    w1[4, 3], w1[0, 3] = 0.09, 0.02
    out = -3.8 - 0.3 * rng.random((4, 4))
    out[0, LEAP] = 9.6
    out[1, HELP] = 7.0
    out[2, HELP] = 5.0
    out[3, LEAP] = 4.0
    params = {
        "hidden_0": {"kernel": rng.normal(0, 0.1, (100, 6)), "bias": np.zeros(6)},
        "hidden_1": {"kernel": w1, "bias": np.zeros(4)},
        "output": {"kernel": out, "bias": np.zeros(4)},
    }
    roles = np.array([MIRROR, MIRROR, DIFFERENTIATING, DIFFERENTIATING, OTHER, OTHER] + [OTHER] * 8)
    return params, roles


def test_weight_zscores_are_relative_to_their_own_matrix_and_ignore_padding():
    params, _ = circuit_model()
    z = weight_zscores(params)
    w1 = params["hidden_1"]["kernel"]
    np.testing.assert_allclose(z["hidden_1"], (w1 - w1.mean()) / w1.std())
    assert abs(z["output"].mean()) < 1e-12 and z["output"].std() == pytest.approx(1.0)
    # hub 3 padded away: its column is NaN and the statistics use the other 18 weights only
    masks = [np.ones(6, bool), np.array([True, True, True, False])]
    zp = weight_zscores(params, masks)
    assert np.all(np.isnan(zp["hidden_1"][:, 3])) and np.all(np.isnan(zp["output"][3]))
    np.testing.assert_allclose(zp["hidden_1"][:, :3], (w1[:, :3] - w1[:, :3].mean()) / w1[:, :3].std())


def test_circuits_find_the_papers_three_pathways():
    params, roles = circuit_model()
    rows = {r["unit"]: r for r in circuits(params, roles, z_min=0.5)}
    assert rows[0]["circuit"] == "self-preservation" and rows[0]["action"] == "leap"
    assert rows[0]["mirror_in"] == pytest.approx(0.069) and rows[0]["differentiating_in"] == 0
    assert [s for s, _, _ in rows[0]["mirror_sources"]] == [0, 1]
    assert rows[1]["circuit"] == "tactical help" and rows[1]["differentiating_in"] == pytest.approx(0.09)
    assert rows[2]["circuit"] == "empathy help" and rows[2]["action"] == "help"
    assert rows[2]["mirror_in"] == pytest.approx(0.055) and rows[2]["differentiating_in"] == pytest.approx(0.087)
    assert rows[3]["circuit"] == "" and rows[3]["distress_share"] < 0.5  # driven by an "other" unit
    assert rows[0]["action_weight"] == 9.6 and rows[0]["action_z"] > 1.5
    table = source_summary(params, roles, hub=0)
    assert [t["source"] for t in table[:2]] == ["L1N0", "L1N1"] and table[0]["z"] > 0.5 and table[1]["other_hubs_weight"] < 0


def test_circuit_label_rules():
    assert circuit_label(0.1, 0.0, LEAP) == "self-preservation"
    assert circuit_label(0.1, 0.2, LEAP) == ""  # differentiating-dominated, not help
    assert circuit_label(0.0, 0.2, HELP) == "tactical help"
    assert circuit_label(0.1, 0.2, HELP) == "empathy help"
    assert circuit_label(0.1, 0.0, LEAP, action_weight=-1.0) == ""  # no positive projection
    assert circuit_label(0.1, 0.0, LEAP, share=0.2, min_share=0.5) == ""


def test_figures_are_written(tmp_path):
    params, roles = circuit_model()
    epochs = np.arange(1, 11)
    paths = [
        plot_training(tmp_path / "t.png", epochs, np.linspace(0.1, 0.04, 10), np.linspace(0.01, 0.004, 10),
                      cmni_leak=np.linspace(0.012, 0.005, 10), p_values=np.linspace(0.001, 0.2, 10),
                      init_null=np.random.default_rng(0).normal(0.002, 0.001, 32), selected_epoch=7),
        plot_layer_means(tmp_path / "l.png", TABLE_4, neuron_roles(*table_4_differences()), [f"L1N{i}" for i in range(17)]),
        plot_circuits(tmp_path / "c.png", circuits(params, roles)),
        plot_circuits(tmp_path / "empty.png", []),
    ]  # fmt: skip
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


# ----------------------------------------------------------------------------- the command


@pytest.fixture
def trained_run(tiny_run):
    """conftest's 3-epoch `mirror train` run on the tiny dataset (shared: read only)."""
    return tiny_run


def read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow  # trains the tiny run, then `mirror cmni` twice
def test_mirror_cmni_end_to_end(trained_run, tmp_path, capsys):
    from mirror.cli import main
    from mirror.runs.checkpoints import load_run

    out = tmp_path / "analysis"
    argv = ["cmni", str(trained_run), "--out", str(out), "--analysis.permutations", "19", "--analysis.init_seeds", "4"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "selected epoch" in printed and "wrote" in printed
    run = load_run(trained_run)
    table = read_csv(out / "cmni.csv")
    assert [int(r["epoch"]) for r in table] == [1, 2, 3]
    best = run.checkpoint_index("best")
    assert [int(r["selected"]) for r in table] == [int(c == best) for c in range(3)]
    for r in table:
        assert int(r["neurons"]) == 38 and float(r["cmni"]) == float(r["cmni_clean"])
        assert 1 / 20 <= float(r["p_permutation"]) <= 1 and 1 / 5 <= float(r["p_init"]) <= 1
        assert float(r["cmni"]) == pytest.approx(float(r["mne"]) / 38, rel=1e-6)
        layer = [float(r[f"cmni_L{i}"]) for i in (1, 2, 3)]
        assert float(r["mne"]) == pytest.approx(17 * layer[0] + 17 * layer[1] + 4 * layer[2], rel=1e-5)
    assert float(table[0]["val_loss"]) == pytest.approx(run.metric("val_loss")[0, 0])
    neurons = read_csv(out / "neurons.csv")
    assert len(neurons) == 38 * 4 and {r["scenario"] for r in neurons} == {"none", "frog", "toad", "both"}
    assert {r["role"] for r in neurons} <= {"mirror", "differentiating", "other"}
    # the default roles come from per-neuron permutation tests (19 permutations: p >= 1/20)
    assert all(1 / 20 <= float(r["p_mns"]) <= 1 and r["significant"] for r in neurons)
    mirror = {r["neuron"] for r in neurons if r["role"] == "mirror"}
    # mirror: both rises and the MNS significant, and above the random-init units of its layer
    assert mirror == {r["neuron"] for r in neurons if r["significant"].startswith("mns+frog+toad") and float(r["mns"]) > 0 and r["above_init"] == "1"}
    mns = sum(float(r["mns"]) for r in neurons if r["scenario"] == "none")
    assert mns / 38 == pytest.approx(float(table[best]["cmni"]), rel=1e-5)
    assert len(read_csv(out / "circuits.csv")) == 17
    assert len(read_csv(out / "weights.csv")) == 100 * 17 + 17 * 17 + 17 * 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["selected"][0]["checkpoint"] == best and summary["init_null"][0]["seeds"] == 4
    # every init draw of every variant is kept; the raw variant's agree with the init_null summary
    assert set(summary["init_draws"]) >= {"cmni", "cmni_scaled"} and len(summary["init_draws"]["cmni"][0]) == 4
    assert np.mean(summary["init_draws"]["cmni"][0]) == pytest.approx(summary["init_null"][0]["mean"], rel=1e-6)
    assert sum(summary["test_rows_per_group"].values()) <= 500
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == ["circuits.png", "cmni_seeds.png", "layer1.png", "layer2.png", "layer3.png", "training.png"]
    assert summary["rise_and_fall"]["cmni"]["seeds"] == 1 and summary["rise_and_fall"]["cmni"]["reproduced"] is False
    # the leak switch: the CMNI column becomes the leaky one (overrides may precede RUN_DIR; --config gives the rest)
    config = tmp_path / "analysis.yaml"
    config.write_text("analysis:\n  permutations: 0\n  init_seeds: 0\n  roles: paper\n")  # roles by significance need permutations
    leak_argv = ["cmni", "--analysis.leak_scenario", "true", str(trained_run), "--analysis.checkpoint", "last", "--config", str(config)]
    assert main(leak_argv + ["--out", str(out)]) == 0
    leaky = read_csv(out / "cmni.csv")
    assert all(r["cmni"] == r["cmni_leak"] and r["p_permutation"] == "" and r["p_init"] == "" for r in leaky)
    assert [int(r["selected"]) for r in leaky] == [0, 0, 1]
    assert {r["p_mns"] for r in read_csv(out / "neurons.csv")} == {""}  # roles: paper without permutations: untested


@pytest.mark.slow  # trains the tiny run
def test_mirror_cmni_rejects_bad_input(trained_run, tmp_path, capsys):
    from mirror.cli import main

    assert main(["cmni", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["cmni", str(tmp_path)]) == 2
    assert "not a training run" in capsys.readouterr().err
    assert main(["cmni", str(trained_run), "--train.lr", "0.1"]) == 2
    assert "only takes analysis.* overrides" in capsys.readouterr().err
    assert main(["cmni", str(trained_run), "--analysis.checkpoint", "99"]) == 2
    assert "no checkpoint for epoch 99" in capsys.readouterr().err
    assert main(["cmni", str(trained_run), "--analysis.permutations", "-1"]) == 2
    assert "analysis.permutations" in capsys.readouterr().err
