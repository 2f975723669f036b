"""Verdicts over seeds (mirror.analysis.seeds): the leave-one-seed-out rise-and-fall drop
with its exact sign-flip test and nominal bootstrap CI, the random-init comparison, their words in report.md and the
headline, Figure 2 over seeds, and summary.json from a real tiny population run."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from mirror.analysis.seeds import (
    bootstrap_mean_ci,
    expanded_alpha,
    init_baseline,
    init_baseline_words,
    leave_one_out_peaks,
    rise_and_fall,
    rise_and_fall_words,
    sign_flip_p,
    t975,
)  # fmt: skip
from mirror.runs import figures
from mirror.runs.analysis import members_are_seeds
from mirror.runs.report import figure2_shape, seeds_section

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY_DATA, TINY_TRAIN  # noqa: E402

EPOCHS = np.arange(1, 21)
# A planted rise and fall: up to 1.0 at epoch 6, then down to 0.6 (true drop 0.4).
PLANTED = np.r_[np.linspace(0, 0.5, 5), 1.0, np.linspace(0.7, 0.6, 14)]


def test_leave_one_out_peaks_and_drops_hand_worked():
    # checkpoints x seeds. Others' means: seed 0 -> [2, 1, 1] (peak 0), seed 1 -> [1.5, 3, 1.5]
    # (peak 1), seed 2 -> [1.5, 3, 2.5] (peak 1).
    values = np.array([[1.0, 2.0, 2.0], [5.0, 1.0, 1.0], [3.0, 2.0, 0.0]])
    np.testing.assert_array_equal(leave_one_out_peaks(values), [0, 1, 1])
    out = rise_and_fall([10, 20, 30], values, resamples=2000)
    # drop_s = value_s[peak_-s] - value_s[final]: 1 - 3, 1 - 2, 1 - 0
    assert out["per_seed_drop"] == [-2.0, -1.0, 1.0] and out["drop"] == pytest.approx(-2 / 3)
    assert out["peak_epoch"] == 20 and out["seeds"] == 3  # the all-seed mean curve [5/3, 7/3, 5/3]
    lo, hi = out["ci95"]
    assert -2.0 <= lo <= -2 / 3 <= hi <= 1.0  # bootstrap means of three drops stay within their range
    # Signed sums of (-2, -1, 1) for the signs +++, ++-, +-+, +--, -++, -+-, --+, ---:
    # -2, -4, 0, -2, 2, 0, 4, 2; all but ++- reach the observed -2: p = 7/8.
    assert out["p_sign_flip"] == 7 / 8 and out["reproduced"] is False and "leave-one-seed-out" in out["method"]


def test_the_seeds_own_noise_does_not_pick_its_peak():
    # Seed 0 alone has a spike at epoch 2; the others peak at epoch 3. Its own argmax would
    # give seed 0 a drop of 9; the others' peak (epoch 3) gives 1. Seeds 1 and 2 see the
    # spike in their others' mean (5.5 at epoch 2 against 2.5): drop 1 - 1 = 0 each.
    values = np.array([[0.0, 0.0, 0.0], [10.0, 1.0, 1.0], [2.0, 3.0, 3.0], [1.0, 1.0, 1.0]])
    out = rise_and_fall([1, 2, 3, 4], values, resamples=500)
    assert out["per_seed_drop"] == [1.0, 0.0, 0.0]


def test_bootstrap_ci_covers_a_known_drop():
    rng = np.random.default_rng(0)
    values = PLANTED[:, None] + rng.normal(0, 0.05, (20, 5))
    out = rise_and_fall(EPOCHS, values)
    lo, hi = out["ci95"]
    assert lo <= 0.4 <= hi and out["reproduced"] and out["peak_epoch"] == 6
    assert out["p_sign_flip"] == 1 / 32  # every seed drops
    assert rise_and_fall_words(out) == "drop reproduced (one-sided sign-flip test over 5 seeds, p = 0.0312)"


def test_sign_flip_p_hand_worked():
    assert sign_flip_p([0.1, 0.2, 0.3, 0.4, 0.5]) == 1 / 32  # only the observed signs reach the observed sum
    assert sign_flip_p([1.0, 2.0, 3.0]) == 1 / 8
    assert sign_flip_p([1.0, 1.0, -1.0]) == 4 / 8  # sums of +-1 +-1 +-1 >= 1: the 4 patterns with two or three +
    assert sign_flip_p([0.0, 1.0, 2.0, 3.0, 4.0]) == 2 / 32  # a zero drop flips to itself: both its signs tie
    assert sign_flip_p([-1.0, -2.0]) == 1.0
    # Sum 0: the 8 patterns with +3 all reach it (3 - 3 at worst), and -3 with all three 1s flipped (-3 + 3): 9/16.
    assert sign_flip_p([3.0, -1.0, -1.0, -1.0]) == 9 / 16
    # Exact past 20 seeds too (the two halves' sums counted pair by pair): 24 positive drops, one of 2^24.
    assert sign_flip_p(np.arange(1.0, 25.0)) == 2.0**-24


def test_reproduced_rests_on_the_sign_flip_test_not_the_bootstrap_ci():
    # Four seeds that all drop: every bootstrap mean is positive, so the CI excludes 0 (the
    # old verdict said "reproduced"), but the smallest sign-flip p at 4 seeds is 1/16 > 0.05.
    values = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 1.1, 0.9, 1.2], [0.5, 0.4, 0.6, 0.45]])
    out = rise_and_fall([1, 2, 3], values, resamples=2000)
    assert out["ci95"][0] > 0 and out["p_sign_flip"] == 1 / 16 and out["reproduced"] is False
    assert "at least 5 seeds" in rise_and_fall_words(out)
    # A fifth seed that drops too: p = 1/32.
    five = rise_and_fall([1, 2, 3], np.c_[values, [0.0, 1.0, 0.3]], resamples=2000)
    assert five["p_sign_flip"] == 1 / 32 and five["reproduced"] is True


@pytest.mark.parametrize("seeds, low, high", [(5, 0.85, 0.97), (20, 0.91, 0.99)])
def test_coverage_over_many_repetitions(seeds, low, high):
    """Measured: about 90 % at 5 seeds (a bootstrap cannot reach past the seeds' extreme
    drops), near 95 % at 20. The plain percentile interval covers about 85 % at 5."""
    rng = np.random.default_rng(1)
    covered = 0
    repetitions = 300
    for r in range(repetitions):
        values = PLANTED[:, None] + rng.normal(0, 0.05, (20, seeds))
        lo, hi = rise_and_fall(EPOCHS, values, seed=r, resamples=2000)["ci95"]
        covered += lo <= 0.4 <= hi
    assert low <= covered / repetitions <= high


def test_a_flat_noisy_curve_is_not_reproduced_in_most_repetitions():
    """The old one-model verdict (final below peak) said yes on flat noise almost always;
    the sign-flip test at 5 seeds says yes about as often as its level (measured 5-6 %)."""
    rng = np.random.default_rng(2)
    reproduced = old_yes = 0
    repetitions = 400
    for r in range(repetitions):
        values = 0.005 + rng.normal(0, 0.001, (20, 5))
        reproduced += rise_and_fall(EPOCHS, values, seed=r, resamples=10)["reproduced"]
        old_yes += values[-1, 0] < values[:, 0].max()
    assert reproduced / repetitions < 0.09
    assert old_yes / repetitions > 0.9


def test_one_seed_cannot_be_tested():
    values = PLANTED[:, None]
    out = rise_and_fall(EPOCHS, values)
    assert out["ci95"] == [None, None] and out["reproduced"] is False and out["seeds"] == 1
    assert out["drop"] == pytest.approx(0.4) and "1 seed" in out["method"]
    assert rise_and_fall_words(out) == "cannot be tested with 1 seed"


def test_non_finite_values_are_not_tested():
    out = rise_and_fall(EPOCHS, np.full((20, 5), np.nan))
    assert out["drop"] is None and out["reproduced"] is False and out["method"].startswith("not tested")
    assert rise_and_fall_words(out) == out["method"]
    json.dumps(out)  # JSON-ready


def test_words_never_stronger_than_the_test():
    base = {"seeds": 5, "drop": 0.1, "reproduced": False, "ci95": [0.01, 0.3]}  # a CI above 0 is no verdict
    assert rise_and_fall_words({**base, "p_sign_flip": 0.0938}) == "not shown (one-sided sign-flip test over 5 seeds, p = 0.0938)"
    below = rise_and_fall_words({**base, "drop": -0.2, "p_sign_flip": 1.0})
    assert below.startswith("not shown (one-sided sign-flip test over 5 seeds, p = 1;") and "above the peak" in below
    assert rise_and_fall_words({**base, "p_sign_flip": None, "method": "old"}) == "old"  # an older summary.json


def test_expanded_percentile_level():
    # t_{4, .975} = 2.776, sqrt(5/4) * 2.776 = 3.104 -> 2 Phi(-3.104) = 0.00191
    assert expanded_alpha(5) == pytest.approx(0.00191, abs=2e-5)
    assert expanded_alpha(1000) == pytest.approx(0.05, abs=1e-3)
    assert t975(30) == 2.042 and t975(31) == pytest.approx(2.040, abs=1e-3) and t975(120) == pytest.approx(1.980, abs=1e-3)
    lo, hi = bootstrap_mean_ci([1.0, 1.0, 1.0])
    assert lo == hi == 1.0


def test_init_baseline_on_synthetic_numbers():
    rng = np.random.default_rng(3)
    init = rng.normal(0.05, 0.01, (5, 32))
    below = init_baseline(init, np.full(5, 0.004), resamples=999)
    assert below["mean"] == pytest.approx(init.mean()) and below["sd"] == pytest.approx(init.std(ddof=1))
    assert below["trained_mean"] == pytest.approx(0.004) and below["p_mean_vs_init"] == 1.0 and below["beats_init"] is False
    assert init_baseline_words(below) == "not above the random-init null (p = 1, bootstrap of the 5 members' mean against random-init draws) (below the random-init mean)"
    above = init_baseline(init, np.full(5, 0.2), resamples=999)
    # Above every initialisation: p is floored at 1 / (32 + 1), the resolution of 32 inits, not 1 / (B + 1).
    assert above["p_mean_vs_init"] == 1 / 33 and above["beats_init"] is True
    assert init_baseline_words(above) == "above the random-init null (p = 0.0303, bootstrap of the 5 members' mean against random-init draws)"
    # With 9 initialisations no p can reach 0.05, however far above them the trained mean is.
    few = init_baseline(init[:, :9], np.full(5, 0.2), resamples=999)
    assert few["p_mean_vs_init"] == 0.1 and few["beats_init"] is False
    # The trained mean at the init mean: about half the bootstrap means lie above it.
    middle = init_baseline(init, np.full(5, init.mean()), resamples=4999)
    assert 0.3 < middle["p_mean_vs_init"] < 0.7 and not middle["beats_init"]
    none = init_baseline(np.zeros((5, 0)), np.ones(5))
    assert none["p_mean_vs_init"] is None and not none["beats_init"] and "init_seeds = 0" in init_baseline_words(none)


def test_members_are_seeds_only_when_nothing_else_differs():
    a = {"seed": 0, "lr": 1e-4, "dropout": 0.1, "l2": 0.01, "widths": [17, 17]}
    assert members_are_seeds([a, {**a, "seed": 1}, {**a, "seed": 2}]) and members_are_seeds([a])
    assert not members_are_seeds([a, {**a, "seed": 1, "lr": 1e-3}])


def test_seeds_figure_has_a_panel_per_variant_and_a_band(tmp_path):
    rng = np.random.default_rng(4)
    variants = {name: PLANTED[:, None] * scale + rng.normal(0, 0.05, (20, 5)) for name, scale in (("cmni", 1), ("cmni_scaled", 3), ("cmni_matched", 2))}
    loss = np.linspace(0.2, 0.05, 20)[:, None] + np.zeros((1, 5))
    fig = figures.cmni_seeds_figure(EPOCHS, variants, loss, init_null={"cmni": rng.normal(0.5, 0.1, (5, 8))})
    assert len(fig.axes) == 6  # a loss axis and a CMNI axis per variant
    for i, name in enumerate(variants):
        loss_ax, cmni_ax = fig.axes[2 * i], fig.axes[2 * i + 1]
        np.testing.assert_allclose(cmni_ax.lines[0].get_ydata(), variants[name].mean(axis=1))
        assert len(cmni_ax.collections) == 1  # the mean +/- sd band
        assert loss_ax.lines[1].get_xdata()[0] == 6  # the peak of the mean curve
        assert cmni_ax.get_title().endswith("peak at epoch 6") and cmni_ax.get_ylabel() == name
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "mean ± sd over 5 seeds" in labels and "random init (5-95 %, 40 draws)" in labels[1]
    one = figures.cmni_seeds_figure(EPOCHS, {"cmni": PLANTED[:, None]}, loss[:, :1])
    assert len(one.axes[1].collections) == 0 and "CMNI (1 seed: no band)" in [t.get_text() for t in one.legends[0].get_texts()]
    assert figures.plot_cmni_seeds(tmp_path / "s.png", EPOCHS, variants, loss).is_file()


def test_report_section_states_the_verdicts():
    summary = {
        "rise_and_fall": {"cmni": rise_and_fall(EPOCHS, PLANTED[:, None] + np.random.default_rng(5).normal(0, 0.05, (20, 5)))},
        "init_baseline": {"cmni": init_baseline(np.full((5, 4), 0.05) + np.arange(4) * 1e-3, np.full(5, 0.004))},
    }
    text = "\n".join(seeds_section(summary))
    assert "## CMNI across seeds" in text and "figures/cmni_seeds.png" in text
    assert "| cmni | 5 | 6 |" in text and "drop reproduced (one-sided sign-flip test over 5 seeds, p = 0.0312)" in text
    assert "not above the random-init null (p = 1, bootstrap of the 5 members' mean against random-init draws) (below the random-init mean)" in text
    assert text.index("Trained against untrained networks") < text.index("Rise and fall")  # the headline first
    assert "nominal 95 % CI" in text
    assert figure2_shape(summary).startswith("drop reproduced") and figure2_shape({}).startswith("not tested")
    assert "no verdicts over seeds" in "\n".join(seeds_section({}))


@pytest.mark.slow  # trains a 2-seed tiny population (3 epochs), then `mirror cmni`
def test_summary_json_of_a_real_tiny_population(tiny_dataset, dataset_cache, tmp_path):
    from mirror.cli import main
    from mirror.runs.report import write_report

    run = tmp_path / "pop"
    train = [*TINY_DATA, "--data.cache_dir", str(dataset_cache), *TINY_TRAIN, "--train.population_seeds", "[0, 1]", "--tracking.mode", "disabled"]
    assert main(["train", "--run-dir", str(run), *train]) == 0
    assert main(["cmni", str(run), "--out", str(run), "--analysis.permutations", "3", "--analysis.init_seeds", "3"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["rise_and_fall"]) == set(summary["init_baseline"]) == {"cmni", "cmni_scaled", "cmni_matched"}
    rise, init = summary["rise_and_fall"]["cmni"], summary["init_baseline"]["cmni"]
    assert set(rise) >= {"peak_epoch", "drop", "ci95", "seeds", "reproduced", "method", "per_seed_drop"}
    assert rise["seeds"] == 2 and len(rise["per_seed_drop"]) == 2 and rise["ci95"][0] is not None
    assert rise["peak_epoch"] in (1, 2, 3) and rise["reproduced"] is False  # 2 seeds: p >= 1/4
    assert rise["p_sign_flip"] == sign_flip_p(rise["per_seed_drop"])
    assert math.isclose(rise["drop"], np.mean(rise["per_seed_drop"]))
    assert set(init) >= {"mean", "sd", "trained_mean", "p_mean_vs_init", "beats_init"} and init["init_seeds"] == 3
    selected = {s["member"]: s["epoch"] for s in summary["selected"]}
    import csv

    with open(run / "cmni.csv") as fh:
        rows = list(csv.DictReader(fh))
    trained = [float(r["cmni"]) for r in rows if int(r["epoch"]) == selected[int(r["member"])]]
    assert init["trained_mean"] == pytest.approx(np.mean(trained))
    assert (run / "figures" / "cmni_seeds.png").is_file()
    (run / "test_metrics.json").unlink(missing_ok=True)  # the report is written from what is there
    report = write_report(run).read_text()
    assert "## CMNI across seeds" in report and "| cmni | 2 |" in report and "rise-and-fall pattern" not in report


def test_the_run_verdict_lines_name_the_member_count():
    """`mirror run`'s verdict lines format the headline's init_baseline entry, which keeps
    the member count (it printed "the ? members' mean" when the headline dropped it)."""
    from mirror.runs.experiment import HEADLINE_INIT_KEYS, verdict_lines

    init = init_baseline(np.full((3, 8), 0.01), [0.02, 0.03, 0.04], seed=0)
    headline = {
        "rise_and_fall": {"cmni": {"peak_epoch": 1, "drop": None, "p_sign_flip": None, "ci95": (None, None), "seeds": 3,
                                   "reproduced": False, "method": "not tested"}},  # fmt: skip
        "init_baseline": {"cmni": {k: init[k] for k in HEADLINE_INIT_KEYS}},
    }
    (line,) = verdict_lines(headline)
    assert "the 3 members' mean" in line and "?" not in line
