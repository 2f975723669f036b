"""The replication's registered tests (`mirror.analysis.replication`) on planted designs."""

import numpy as np
import pytest

from mirror.analysis import replication as r


def design(rng, *, veil_effect=0.0, d_effect=0.3, within=0.0, shift_z=0.0):
    """3 D x 2 I x 3 w x 5 trials, each its own seed: help rises with D (and w); cmni_a
    carries a veil effect and a within-setting association."""
    d, i, w, k = (a.ravel() for a in np.meshgrid([0.0, 0.5, 1.0], [0.0, 1.0], [0.0, 0.5, 1.0], np.arange(5), indexing="ij"))
    help_go = np.clip(0.1 + d_effect * d + 0.3 * w + 0.05 * rng.standard_normal(d.size), 0, 1)
    cmni = 0.08 + veil_effect * i + within * help_go + 0.01 * rng.standard_normal(d.size)
    return {"dependency": d, "veil": i, "partner_reward_weight": w, "seed": 100 + np.arange(d.size, dtype=float), "help_go": help_go,
            "help_e0": help_go * 0.9, "cmni_a": cmni, "cmni_b": cmni, "z_init": shift_z + 0.1 * rng.standard_normal(d.size),
            "ablation_gap": np.where(help_go >= 0.1, 0.05 + 0.01 * rng.standard_normal(d.size), np.nan),
            "return_change_last_quarter": np.full(d.size, 0.01), "at_best_response": np.ones(d.size)}  # fmt: skip


def by(report):
    return {e["hypothesis"]: e for e in report["primary"]}


def test_planted_effects_are_found_and_absent_ones_are_not():
    rng = np.random.default_rng(0)
    report = r.replication_tests(design(rng, veil_effect=0.02, within=0.2), permutations=2000, power_draws=0)
    h = by(report)
    assert [e["hypothesis"] for e in report["primary"]] == list(r.PRIMARY)
    assert h["H1"]["supported"] and h["H2"]["supported"] and h["H4"]["supported"] and h["H6"]["supported"]
    assert h["H4"]["statistic"] == pytest.approx(0.02, abs=0.005)
    assert h["H5e"]["supported"] and not h["H5"]["supported"]  # z_init near 0: equivalent, not above
    assert report["convergence"] == {"rule": "|return_change_last_quarter| < 0.02 and at a best response", "converged": 90, "of": 90}
    assert set(report["h6_by_d"]) == {"0", "0.5", "1"}


def test_h3w_sees_only_the_association_within_settings():
    rng = np.random.default_rng(1)
    t = design(rng, within=0.0)
    t["cmni_a"] = 0.05 + 0.2 * np.unique(np.stack([t["dependency"], t["veil"], t["partner_reward_weight"]], 1), axis=0, return_inverse=True)[1].reshape(-1) / 18
    t["cmni_a"] = t["cmni_a"] + 0.001 * rng.standard_normal(90)
    h = by(r.replication_tests(t, permutations=2000, power_draws=0))
    assert h["H3w"]["p"] > 0.05  # whatever H3a finds between settings


def test_h4_is_unpaired_and_by_hand():
    cmni = np.asarray([1.0, 2.0, 4.0, 3.0])
    veil = np.asarray([0.0, 0.0, 1.0, 1.0])
    assert r.veil_difference(cmni, veil, np.zeros(4, int)) == pytest.approx(2.0)  # 3.5 - 1.5


def test_the_convergence_rule_drops_the_trials_that_miss_it():
    t = design(np.random.default_rng(2))
    t["return_change_last_quarter"][:10] = 0.05
    t["at_best_response"][10:15] = 0
    assert r.converged(t).sum() == 75
    report = r.replication_tests(t, permutations=500, power_draws=0)
    assert report["convergence"]["converged"] == 75
    assert any(e["hypothesis"] == "H1 (converged trials)" for e in report["secondary"])


def test_theory_command_runs_the_replication_plan_on_a_planted_sweep(tmp_path, capsys):
    from test_hypotheses import write_fake_sweep

    from mirror.cli import main

    def with_help_go(trial, values):  # the planted help_e0 as help given opportunity; every trial converged
        return {**values, "help_given_opportunity": values["help_when_partner_energy0"], "at_best_response": True}

    _, sweep_dir = write_fake_sweep(tmp_path, with_help_go)
    assert main(["theory", str(sweep_dir), "--plan", "replication", "--permutations", "500", "--power-designs", "0"]) == 0
    printed = capsys.readouterr().out
    report = __import__("json").loads((sweep_dir / "replication.json").read_text())
    h = by(report)
    assert h["H1"]["supported"] and h["H2"]["supported"] and h["H3a"]["supported"]
    assert not h["H4"]["supported"] and h["H4"]["statistic"] == pytest.approx(-0.02, abs=0.005)  # the planted veil lowers cmni_a
    assert not h["H5e"]["supported"]  # z_init is planted near 2: not within 0.5
    assert h["H6"]["testable"] is False and report["convergence"]["converged"] == 47  # trial 3 changed 5 % in its last quarter
    assert "H1: supported" in printed and (sweep_dir / "replication.md").read_text().startswith("# The theory replication")
    from mirror.sweep import replication as report_module

    for figure in (report_module.HELP_FIGURE, report_module.CMNI_FIGURE, report_module.GAINS_FIGURE):
        assert (sweep_dir / "figures" / figure).stat().st_size > 10_000
    settings = {(v["dependency"], v["veil"], v["partner_reward_weight"]) for v in report["trial_values"]}
    assert len(report["cells"]) == len(settings) and sum(c["trials"] for c in report["cells"]) == report["trials"]
    assert "## The cells" in (sweep_dir / "replication.md").read_text()


def test_veil_coefficients_give_the_veil_difference():
    rng = np.random.default_rng(3)
    veil = np.asarray([0, 1, 1, 0, 0, 1, 1, 0, 0], float)
    strata = np.asarray([0, 0, 0, 1, 1, 1, 2, 2, 2])
    values = rng.standard_normal(9)
    assert r._veil_coefficients(veil, strata) @ values == pytest.approx(r.veil_difference(values, veil, strata))


def test_null_power_is_reported_for_every_null_and_tracks_the_noise():
    t = design(np.random.default_rng(4))
    levels = dict.fromkeys(r.PRIMARY, 0.05)
    tight = r.null_power(t, levels, draws=100)
    assert {"H3a", "H3w", "H3b", "H4", "H5e", "H6"} <= set(tight)
    assert 0 < tight["H3a"]["smallest_rho"] < 0.5 and 0 < tight["H3w"]["smallest_rho"] < 1
    assert 0.2 < tight["H4"]["smallest_effect_sd"] < 2  # 15 trials per veil in each of 9 (D, w) strata
    assert tight["H5e"]["power_at_true_mean_0"] == 1.0  # z_init sd 0.1 against a margin of 0.5
    wide = r.null_power({**t, "z_init": 3.0 * t["z_init"] / t["z_init"].std()}, levels, draws=100)
    assert wide["H5e"]["power_at_true_mean_0"] < 0.2  # sd 3: the mean of 90 has sd 0.32, rarely within 0.5 both ways
    noisy_gaps = {**t, "ablation_gap": np.where(np.isfinite(t["ablation_gap"]), 10 * t["ablation_gap"], np.nan)}
    assert r.null_power(noisy_gaps, levels, draws=100)["H6"]["smallest_mean_gap"] > tight["H6"]["smallest_mean_gap"]
    assert r.null_power(t, levels, draws=0) == {"draws": 0, "target": 0.8}


def test_theory_command_defaults_to_each_plans_registered_power_designs(tmp_path, monkeypatch):
    from mirror.analysis.hypotheses import POWER_DESIGNS
    from mirror.cli import main
    from mirror.cli import sweep as cli_sweep

    seen = {}

    def fake(sweep_dir, **kwargs):
        seen[kwargs["power_designs"]] = True
        return {"primary": [], "files": []}

    monkeypatch.setattr(cli_sweep, "run_replication", fake)
    monkeypatch.setattr(cli_sweep, "run_theory", fake)
    assert main(["theory", str(tmp_path), "--plan", "replication"]) == 0
    assert main(["theory", str(tmp_path)]) == 0
    assert main(["theory", str(tmp_path), "--plan", "replication", "--power-designs", "7"]) == 0
    assert set(seen) == {r.POWER_DRAWS, POWER_DESIGNS, 7} and r.POWER_DRAWS == 400  # the replication registered 400 designs
