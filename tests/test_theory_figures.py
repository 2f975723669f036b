"""scripts/theory_figures.py: the ablation curve's summary over trials (hand-worked values)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest


def load_script():
    path = Path(__file__).resolve().parents[1] / "scripts" / "theory_figures.py"
    spec = importlib.util.spec_from_file_location("theory_figures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_curve_summary_over_trials():
    rate = "help_when_partner_energy0"
    trial = lambda intact, top, rnd: {"intact": {rate: intact}, "top_mns": {rate: [top]}, "random_mean": {rate: [rnd]}}  # noqa: E731
    result = {"ks": [1], "per_trial": [trial(0.3, 0.1, 0.2), trial(0.5, 0.3, 0.4)]}
    s = load_script().curve_summary(result)
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
