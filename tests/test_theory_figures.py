"""scripts/theory_figures.py: the ablation curve's summary over trials (hand-worked values)."""

import numpy as np
import pytest


def test_curve_summary_over_trials(load_script):
    rate = "help_when_partner_energy0"
    trial = lambda intact, top, rnd: {"intact": {rate: intact}, "top_mns": {rate: [top]}, "random_mean": {rate: [rnd]}}  # noqa: E731
    result = {"ks": [1], "per_trial": [trial(0.3, 0.1, 0.2), trial(0.5, 0.3, 0.4)]}
    s = load_script("theory_figures").curve_summary(result)
    assert s["k"] == [0, 1]
    # K = 0 is the intact agents for both curves
    np.testing.assert_allclose(s["top_mns"]["mean"], [0.4, 0.2])
    np.testing.assert_allclose(s["random"]["mean"], [0.4, 0.3])
    # the gap is random - top per trial: 0.1 in both trials, so its sd and interval are 0
    np.testing.assert_allclose(s["gap"]["mean"], [0.0, 0.1])
    np.testing.assert_allclose(s["gap"]["sd"], [0.0, 0.0], atol=1e-12)
    # two trials: sd 0.1 * sqrt(2), half width t(0.975, 1) * sd / sqrt(2) = 12.706 * 0.1
    assert s["top_mns"]["sd"][1] == pytest.approx(0.1 * np.sqrt(2))
    assert s["top_mns"]["ci95_half"][1] == pytest.approx(1.27062, rel=1e-4)
    assert s["top_mns"]["n"] == [2, 2]


def test_curve_summary_reads_the_results_rate_and_picks_trials_by_d(load_script):
    go, e0 = "help_given_opportunity", "help_when_partner_energy0"

    def trial(d, intact, top, rnd):
        return {"D": d, **{key: {go: value, e0: -1.0} if key == "intact" else {go: [value], e0: [-1.0]}
                           for key, value in (("intact", intact), ("top_mns", top), ("random_mean", rnd))}}  # fmt: skip

    result = {"rate": "help_given_opportunity", "ks": [1], "per_trial": [trial(0.0, 0.3, 0.1, 0.2), trial(1.0, 0.5, 0.45, 0.4)]}
    script = load_script("theory_figures")
    both = script.curve_summary(result)
    assert both["rate"] == go and both["trials"] == 2
    np.testing.assert_allclose(both["gap"]["mean"], [0.0, 0.025])  # (0.1 + -0.05) / 2, not the -1 of help_e0
    d1 = script.curve_summary(result, pick=lambda t: t["D"] == 1.0)
    assert d1["trials"] == 1
    np.testing.assert_allclose(d1["gap"]["mean"], [0.0, -0.05])
    # a result written before the field is help_e0's
    assert script.curve_summary({k: v for k, v in result.items() if k != "rate"})["rate"] == e0
