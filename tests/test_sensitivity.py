"""The corrections' analyses (`mirror.analysis.sensitivity`) on planted designs."""

import numpy as np
import pytest

from mirror.analysis import sensitivity as s


def design(rng, seed_offset=0.0, within=0.0, between=1.0):
    """3 D x 2 I x 3 w x 5 seeds: help_e0 rises with w; cmni_a = between * (setting's
    help mean) + within * (the trial's help deviation) + seed offset + noise."""
    d, i, w, seed = (a.ravel() for a in np.meshgrid([0.0, 0.5, 1.0], [0.0, 1.0], [0.0, 0.5, 1.0], np.arange(5.0), indexing="ij"))
    help_e0 = 0.3 * w + 0.05 * rng.random(w.size)
    setting_mean = 0.3 * w + 0.025
    cmni = between * setting_mean + within * (help_e0 - setting_mean) + seed_offset * seed + 0.01 * rng.random(w.size)
    z = 0.1 * rng.standard_normal(w.size)
    gap = np.where(w > 0, 0.2 - 0.15 * d + 0.01 * rng.standard_normal(w.size), np.nan)
    return {"dependency": d, "veil": i, "partner_reward_weight": w, "seed": seed, "help_e0": help_e0, "cmni_a": cmni,
            "z_init": z, "ablation_gap": gap}  # fmt: skip


def test_h3a_within_settings_sees_only_a_trial_level_association():
    rng = np.random.default_rng(0)
    between_only = s.h3a_within(design(rng), permutations=2000)
    assert between_only["rho"] > 0.8 and between_only["p"] > 0.05  # the pooled rho is all between settings
    within = s.h3a_within(design(rng, within=5.0, between=0.0), permutations=2000)
    assert within["p"] < 0.01 and within["mean_within_setting_rho"] > 0.5 and within["settings"] == 18


def test_tost_by_hand():
    near = s.tost([0.1, -0.1, 0.05, 0.0, -0.05, 0.1, -0.1, 0.02], 0.5, permutations=1000)
    assert near["equivalent"] and near["p"] == pytest.approx(1 / 256)  # every sign vector enumerated: only all-plus reaches it
    far = s.tost([0.9, 0.7, 0.8, 0.6, 1.0, 0.75, 0.85, 0.65], 0.5, permutations=1000)
    assert not far["equivalent"] and far["p_high"] == 1.0


def test_a_seed_offset_is_found_within_settings_and_none_is_not():
    rng = np.random.default_rng(1)
    assert s.seed_effect(design(rng, seed_offset=0.02), "cmni_a", permutations=2000)["p"] < 0.01
    assert s.seed_effect(design(rng), "cmni_a", permutations=2000)["p"] > 0.01


def test_h5_blocks_average_the_trials_that_share_a_null():
    t = design(np.random.default_rng(2))
    out = s.h5_blocks(t, permutations=2000)
    assert out["blocks"] == 30 and out["mean"] == pytest.approx(t["z_init"].mean())


def test_h6_by_d_and_on_seed_means():
    t = design(np.random.default_rng(3))
    by_d = s.h6_by_d(t)
    assert [by_d[k]["trials"] for k in ("0", "0.5", "1")] == [20, 20, 20]
    assert [by_d[k]["mean_gap"] for k in ("0", "0.5", "1")] == pytest.approx([0.2, 0.125, 0.05], abs=0.01)
    seeds = s.h6_seed_means(t, permutations=1000)
    assert seeds["seeds"] == 5 and seeds["exact"] and seeds["p"] == pytest.approx(1 / 32)
    assert s.h6_by_d({**t, "ablation_gap": np.full(90, np.nan)}) is None


def test_h6_by_d_interval_is_students_t_by_hand():
    # two helping trials at D = 0 with gaps 0.1 and 0.3: mean 0.2, sd 0.1 * sqrt(2),
    # half width t(0.975, 1) * sd / sqrt(2) = 12.7062 * 0.1 (the normal 1.96 would give 0.196)
    t = {"dependency": np.zeros(3), "help_e0": np.array([0.5, 0.5, 0.0]), "ablation_gap": np.array([0.1, 0.3, 9.0])}
    entry = s.h6_by_d(t)["0"]
    assert entry["trials"] == 2 and entry["mean_gap"] == pytest.approx(0.2)
    assert entry["ci95"] == pytest.approx([0.2 - 1.270620, 0.2 + 1.270620], rel=1e-5)


def test_resampled_power_rises_with_the_effect():
    t = design(np.random.default_rng(4))
    power = s.power_resampled(t, {"H1": 0.05, "H5": 0.05}, draws=40)
    assert power["H5"]["0.5"] >= power["H5"]["0.1"] and power["H5"]["0.5"] > 0.9
    assert s.power_resampled(t, {"H1": 0.05, "H5": 0.05}, draws=0)["H1"] == {}


def test_theory_fills_the_summarys_ablation_gap_column(tmp_path):
    from mirror.sweep.theory import fill_ablation_gaps

    path = tmp_path / "summary.csv"
    path.write_bytes(b"trial,seed,help_when_partner_energy0,ablation_gap,dir\r\n0,0,0.25,,trials/a\r\n1,1,0.0125,,trials/b\r\n")
    fill_ablation_gaps(path, {0: 0.0891234567891, 1: None})
    assert path.read_bytes() == b"trial,seed,help_when_partner_energy0,ablation_gap,dir\r\n0,0,0.25,0.0891234568,trials/a\r\n1,1,0.0125,,trials/b\r\n"
