"""The pre-registered theory tests (`mirror.analysis.hypotheses`, docs/theory_experiment.md)
and `mirror theory SWEEP_DIR` (`mirror.sweep.theory`): hand-worked exact p-values, Holm,
the stratified permutations, the power search, and the command on hand-written sweeps."""

import json
import math

import numpy as np
import pytest
import yaml

from mirror.analysis import hypotheses as h
from mirror.base.errors import UsageError
from mirror.cli import main

# ----------------------------------------------------------------------------- statistics


def test_average_ranks_share_ties_and_spearman_by_hand():
    np.testing.assert_array_equal(h.average_ranks([3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0])
    # rho = 1 - 6 sum d^2 / (n (n^2 - 1)) without ties: d = (0, 1, 1, 0) -> 1 - 12 / 60.
    assert h.spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(h.spearman_rho([1, 1, 1], [1, 2, 3]))


def test_sign_flip_of_five_positive_values_is_exactly_one_in_32():
    """Every flip of a positive value lowers the mean: only the observed signs reach it."""
    got = h.sign_flip_test([0.1, 0.5, 0.2, 0.3, 0.9])
    assert got.exact and got.draws == 32 and got.p == 1 / 32 and got.statistic == pytest.approx(0.4)


def test_sign_flip_exact_p_with_a_negative_value_by_hand():
    """Values 1, 2, -0.5 (sum 2.5): of the 8 signed sums only 1 + 2 + 0.5 = 3.5 and the
    observed 2.5 reach 2.5 -> p = 2 / 8."""
    assert h.sign_flip_test([1.0, 2.0, -0.5]).p == 0.25


def test_spearman_exact_p_of_a_perfectly_monotone_stratified_design():
    """Two veil strata, each with D = 0, 0, 1, 1 and help rising with D: 4! / (2! 2!) = 6
    orderings per stratum, 36 in all, and only the observed one reaches its rho -> p = 1/36.
    Without strata the same data have 8! / (4! 4!) = 70 orderings -> p = 1/70."""
    d = np.array([0, 0, 1, 1, 0, 0, 1, 1], float)
    veil = np.array([0, 0, 0, 0, 1, 1, 1, 1], float)
    help_e0 = np.array([0.1, 0.2, 0.5, 0.6, 0.05, 0.15, 0.3, 0.7])
    assert h.arrangement_count(d, veil) == 36
    got = h.spearman_test(d, help_e0, veil)
    assert got.exact and got.draws == 36 and got.p == pytest.approx(1 / 36) and got.statistic == pytest.approx(h.spearman_rho(d, help_e0))
    assert h.spearman_test(d, help_e0).p == pytest.approx(1 / 70)
    # Falling help: every ordering reaches rho <= the observed (most negative) one -> p = 1.
    assert h.spearman_test(d, -help_e0, veil).p == 1.0


def test_stratified_permutations_keep_every_value_in_its_stratum():
    values = np.arange(12, dtype=float)
    strata = np.repeat([2.0, 7.0, 9.0], 4)
    rng = np.random.default_rng(5)
    drawn, exact = h.within_strata_arrangements(values, strata, permutations=50, rng=rng)  # 4!^3 = 13824 > 50: drawn
    assert not exact and drawn.shape == (50, 12)
    for s in np.unique(strata):
        cols = strata == s
        np.testing.assert_array_equal(np.sort(drawn[:, cols], axis=1), np.broadcast_to(values[cols], (50, 4)))
    assert len({tuple(r) for r in drawn}) > 40  # they are shuffled, not copies
    again, _ = h.within_strata_arrangements(values, strata, permutations=50, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(drawn, again)  # same seed, same draws
    every, exact = h.within_strata_arrangements(values[:6], strata[:6], permutations=100)  # 4! x 2! = 48: enumerated
    assert exact and len(every) == 48 and len({tuple(r) for r in every}) == 48
    assert (np.sort(every[:, :4], axis=1) == values[:4]).all() and (np.sort(every[:, 4:], axis=1) == values[4:6]).all()


def test_monte_carlo_p_is_reproducible_and_never_below_one_over_k_plus_one():
    values = np.linspace(1.0, 2.0, 20)  # 2^20 sign vectors > 1000: drawn
    got = h.sign_flip_test(values, permutations=1000, seed=3)
    assert not got.exact and got.draws == 1000 and got.p == pytest.approx(1 / 1001)
    assert h.sign_flip_test(values - 1.5, permutations=1000, seed=3) == h.sign_flip_test(values - 1.5, permutations=1000, seed=3)


def test_holm_on_a_hand_worked_vector():
    """Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> made
    monotone: 0.02, 0.03, 0.06, 0.06; returned in the input order."""
    np.testing.assert_allclose(h.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(h.holm([0.5, 0.6]), [1.0, 1.0])
    np.testing.assert_allclose(h.holm_levels([0.01, 0.04, 0.03, 0.005]), [0.05 / 3, 0.05, 0.05 / 2, 0.05 / 4])


def test_pooled_setting_sd_by_hand():
    # Setting a: 1, 3 (squares 2, 1 dof); b: 2, 2, 5 (squares 6, 2 dof) -> sqrt(8 / 3).
    assert h.pooled_setting_sd([1, 3, 2, 2, 5], ["a", "a", "b", "b", "b"]) == pytest.approx(math.sqrt(8 / 3))
    assert h.pooled_setting_sd([1, 2], ["a", "b"]) is None


def test_setting_sds_by_hand():
    """Each unit gets its own setting's sd; a setting with one value gets the pooled sd."""
    sd, pooled = h.setting_sds([1, 3, 2, 2, 5, 7], ["a", "a", "b", "b", "b", "c"])
    assert pooled == pytest.approx(math.sqrt(8 / 3))
    np.testing.assert_allclose(sd, [math.sqrt(2), math.sqrt(2), math.sqrt(3), math.sqrt(3), math.sqrt(3), math.sqrt(8 / 3)])


def test_power_simulation_uses_each_units_noise_scale():
    """Units with no noise (scale 0) carry a planted mean alone: any positive effect is found
    in every design; a noisier design needs a larger effect."""
    quiet, _ = h.sign_flip_power(12, 0.05, scale=np.zeros(12), designs=20, permutations=500)
    assert quiet(0.01) == 1.0
    loud, _ = h.sign_flip_power(12, 0.05, scale=np.full(12, 3.0), designs=100, permutations=500)
    plain, _ = h.sign_flip_power(12, 0.05, designs=100, permutations=500)
    assert h.smallest_effect(loud) == pytest.approx(3 * h.smallest_effect(plain), rel=2e-3)  # same draws, 3 x the noise (to the bisection's resolution)


def test_sign_flip_power_agrees_with_the_normal_approximation():
    """45 pairs at level 0.025: 80 % power needs a mean of about (z_0.975 + z_0.8) / sqrt(45)
    = 0.42 noise sd; with 200 simulated designs the search lands near it."""
    power_of, smallest = h.sign_flip_power(45, 0.025, designs=200, permutations=2000, seed=1)
    effect = h.smallest_effect(power_of)
    assert smallest == pytest.approx(1 / 2001) and 0.3 < effect < 0.55
    assert power_of(0.0) < 0.1 and power_of(2 * effect) > 0.95
    # Five units: the smallest exact p, 1/32, is above a Holm level of 0.05 / 7: never detected.
    _, smallest = h.sign_flip_power(5, 0.05 / 7)
    assert smallest == 1 / 32


def test_spearman_power_grows_with_the_effect():
    d = np.repeat([0.0, 0.5, 1.0], 10)
    veil = np.tile([0.0, 1.0], 15)
    power_of, smallest, rho_of = h.spearman_power(d, veil, 0.01, designs=100, permutations=1000, seed=2)
    assert power_of(0.0) < 0.1 and power_of(1.0) < power_of(3.0) and power_of(6.0) > 0.95
    assert smallest == pytest.approx(1 / 1001) and abs(rho_of(0.0)) < 0.05 and rho_of(1.0) < rho_of(6.0) < 1


def _grid_trials(**measures):
    d, i, w, seed = (a.ravel().astype(float) for a in np.meshgrid([0, 0.5, 1], [0, 1], [0, 1], range(3), indexing="ij"))
    base = {"dependency": d, "veil": i, "partner_reward_weight": w, "seed": seed}
    rest = {m: np.full(d.size, np.nan) for m in h.MEASURES if m not in base}
    return {**base, **rest, **{k: v(d, i, w, seed) if callable(v) else v for k, v in measures.items()}}


def test_untestable_tests_say_why_and_enter_holm_with_p_one():
    """No help_e0 anywhere (no decision with the partner at energy 0): H1-H3 cannot run;
    a constant help_e0 (nobody helps) neither. They enter Holm with p = 1, so H5's
    adjusted p is its p times the 7 registered tests."""
    t = _grid_trials(z_init=lambda d, i, w, s: 1.0 + 0.1 * s, cmni_a=lambda d, i, w, s: 0.1 + 0.01 * i)
    out = h.theory_tests(t, permutations=200, power_designs=0)
    by = {e["hypothesis"]: e for e in out["primary"]}
    assert by["H1"]["verdict"] == "not testable: 0 of the 18 trials with w = 0 have a value of both D and help_e0; the test needs at least 3"
    assert by["H5"]["p"] == pytest.approx(1 / 201) and by["H5"]["p_holm"] == pytest.approx(7 / 201) and by["H5"]["supported"]
    assert by["H4"]["p"] == pytest.approx(1 / 201) and by["H4"]["p_holm"] == pytest.approx(7 / 201)  # ties with H5: both times 7, then made monotone
    t["help_e0"] = np.zeros(36)
    by = {e["hypothesis"]: e for e in h.theory_tests(t, permutations=200, power_designs=0)["primary"]}
    assert by["H1"]["verdict"] == "not testable: help_e0 takes the single value 0 in all 18 trials"
    assert by["H6"]["status"] == "not computed" and not by["H6"]["testable"]


# ----------------------------------------------------------------------------- the command on a hand-written sweep

GRID = {"env.dependency": [0.0, 0.5, 1.0], "env.veil": [0.0, 1.0], "rl.partner_reward_weight": [0.0, 1.0]}
SEEDS = [0, 1, 2, 3]
CHEAP = ["--permutations", "2000", "--power-designs", "30"]


def _sweep(tmp_path):
    from mirror.sweep.spec import load_sweep

    values = {
        "name": "theory-test",
        "model": {"hidden_layers": 2, "width": 6},
        "rl": {"num_envs": 8, "num_steps": 4, "updates": 4, "checkpoint_every": 2, "num_minibatches": 2},
        "sweep": {"mode": "rl", "grid": GRID, "seeds": SEEDS},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return load_sweep(path)


def _planted(trial, jitter):
    """help_e0 rises with D and w (help_e0 >= 0.1 exactly when D > 0); cmni_a rises with help_e0 and falls slightly with the veil;
    cmni_b falls with help_e0; z_init is well above 0."""
    d, i, w = (float(trial.fields[k]) for k in GRID)
    help_e0 = 0.02 + 0.2 * d + 0.05 * w + 0.005 * jitter[0]
    return {
        "help_when_partner_energy0": help_e0,
        "help_when_partner_distressed": 0.3 + 0.01 * jitter[1],
        "cmni_scaled": 0.1 + help_e0 - 0.02 * i + 0.005 * jitter[2],
        "cmni_scaled_onpolicy": 0.5 - help_e0 + 0.005 * jitter[3],
        "z_init": 2.0 + 0.3 * jitter[4],
        "p_init_scaled": 0.03 if d > 0 else 0.2,
        "return_change_last_quarter": 0.05 if trial.index == 3 else 0.001,
        "updates": 200,
    }


def write_fake_sweep(tmp_path, change=lambda trial, values: values):
    """A sweep directory of finished RL trials (plan.json and result.json rows written by
    `rl_result_row`, as a sweep writes them) with planted measures."""
    from mirror.sweep.rl_trial import rl_result_row
    from mirror.sweep.run import write_plan
    from mirror.sweep.trial import RESULT_FILE, trial_dir

    sweep = _sweep(tmp_path)
    sweep_dir = tmp_path / "out"
    sweep_dir.mkdir()
    write_plan(sweep, sweep_dir)
    jitter = np.random.default_rng(0).standard_normal((len(sweep.trials), 5))
    for trial, noise in zip(sweep.trials, jitter):
        out = trial_dir(sweep_dir, trial)
        out.mkdir(parents=True)
        row = rl_result_row(trial, out, change(trial, _planted(trial, noise)), {})
        (out / RESULT_FILE).write_text(json.dumps(row))
    return sweep, sweep_dir


def _verdicts(report):
    return {e["hypothesis"]: e["verdict"].split(" (")[0].split(":")[0] for e in report["primary"]}


def test_theory_command_on_a_planted_sweep(tmp_path, capsys):
    sweep, sweep_dir = write_fake_sweep(tmp_path)
    assert main(["theory", str(sweep_dir), *CHEAP, "--json", str(tmp_path / "copy.json")]) == 0
    printed = capsys.readouterr().out
    report = json.loads((sweep_dir / "hypotheses.json").read_text())
    assert json.loads((tmp_path / "copy.json").read_text()) == report
    assert report["trials"] == 48 and report["permutations"] == 2000
    assert _verdicts(report) == {"H1": "supported", "H2": "supported", "H3a": "supported", "H3b": "not supported", "H4": "not supported",
                                 "H5": "supported", "H6": "not computed"}  # fmt: skip
    by = {e["hypothesis"]: e for e in report["primary"]}
    # Units: H1 the 24 trials at w = 0, H2 the 16 at D = 0, H4 24 (D, w, seed) pairs, H5 every trial.
    assert [by[k]["units"] for k in ("H1", "H2", "H3a", "H3b", "H4", "H5")] == [24, 16, 48, 48, 24, 48]
    assert by["H4"]["statistic"] == pytest.approx(-0.02, abs=0.005) and by["H3b"]["statistic"] < 0
    p = [by[k]["p"] if by[k]["testable"] else 1.0 for k in h.PRIMARY]
    np.testing.assert_allclose([by[k]["p_holm"] for k in h.PRIMARY if by[k]["testable"]], [q for q, k in zip(h.holm(p), h.PRIMARY) if by[k]["testable"]])
    assert by["H4"]["power"]["effect"] > 0 and "mean I = 1 minus I = 0 difference in cmni_a" in by["H4"]["verdict"]
    assert "the design detects effects of at least" in by["H4"]["verdict"]
    assert by["H6"]["p_holm"] is None and by["H6"]["power"] is None
    # Secondary: exploratory, uncorrected; per-trial init ranks (p 0.03 in the 32 trials with D > 0).
    assert [e["hypothesis"] for e in report["secondary"]] == ["H1 (help_distressed)", "H2 (help_distressed)", "H4 (cmni_b)"]
    assert all(e["verdict"].startswith("exploratory") for e in report["secondary"])
    assert (report["init_ranks"]["at_or_below_alpha"], report["init_ranks"]["tested"]) == (32, 48)
    assert report["training"]["still_climbing"] == [3]
    md = (sweep_dir / "hypotheses.md").read_text()
    assert "| hypothesis | trials | statistic | p | Holm-adjusted p | verdict | power (80 %) |" in md
    assert "| H1: at w = 0, help_e0 rises with D | 24 trials | Spearman rho(D, help_e0) = " in md
    assert "Departure from the registered plan" in md and "1 of 48 trials changed by more than 2% (fitted, relative: return_change_last_quarter): trial 3." in md
    assert f"- **H1** supported (Holm-adjusted p = {by['H1']['p_holm']:.3g})." in md and f"- **H4** {by['H4']['verdict']}." in md
    assert "| 24 pairs | mean of cmni_a(I = 1) - cmni_a(I = 0) = " in md and "| not supported | " in md and "mean rho" in by["H3b"]["power"]["words"]
    assert "H6: not computed: no trial has an ablation_gap" in printed
    sens = report["sensitivity"]  # the corrections' analyses, beside the registered tests
    assert sens["h3a_within"]["settings"] > 1 and sens["h5_equivalence"]["units"] == 48 and sens["h6_by_d"] is None
    assert "## Sensitivity analyses (added after the registered tests; not registered)" in md and "**H3a within settings**" in md
    for name in ("theory_help_e0.png", "theory_cmni_vs_help.png"):
        assert (sweep_dir / "figures" / name).stat().st_size > 10_000


def test_h6_reads_the_ablation_gaps_and_needs_five_helping_trials(tmp_path):
    """ablation_gap in the result rows (the ablation step's hook): tested over the trials with
    help_e0 >= 0.1 (those with D > 0: 32 here), untestable with fewer than 5."""
    from mirror.sweep.theory import run_theory

    def with_gap(trial, values):
        return {**values, "ablation_gap": 0.05 + 0.01 * (trial.index % 3)}

    _, sweep_dir = write_fake_sweep(tmp_path, with_gap)
    report = run_theory(sweep_dir, permutations=500, power_designs=0)
    h6 = report["primary"][-1]
    assert h6["testable"] and h6["units"] == h6["helping_trials"] == 32 and h6["verdict"].startswith("supported")
    assert h6["power"]["reason"] == "not estimated (power_designs = 0)"

    few = tmp_path / "few"
    few.mkdir()
    _, sweep_dir = write_fake_sweep(few, lambda trial, values: {**with_gap(trial, values), "help_when_partner_energy0": 0.5 if trial.index < 4 else 0.0})
    h6 = run_theory(sweep_dir, permutations=500, power_designs=0)["primary"][-1]
    assert not h6["testable"] and h6["verdict"] == "not testable: 4 helping trials (help_e0 >= 0.1) have an ablation_gap; H6 needs at least 5"


def _ablation_json(gap, *, draws=100, checkpoint=200, units="top-mns:4"):
    """What `mirror ablate TRIAL_DIR --units top-mns:4 --mode mean --seeds 100 --json ...`
    writes (docs/ablation.md), cut to the keys the hook reads."""
    member = {"member": 0, "checkpoint": checkpoint, "units": units, "mode": "mean", "random": {"draws": draws}, "ablation_gap": gap}
    return json.dumps({"run_dir": "TRIAL_DIR", "checkpoint": "last", "members": [member]})


def test_h6_reads_each_trials_ablation_json_and_flags_departures(tmp_path):
    """Without the column, TRIAL_DIR/ablation.json (`mirror ablate`'s --json) gives the gap;
    a result row's ablation_gap wins over the file; a file from another design than the
    registered one (draws, checkpoint) is named as a departure."""
    from mirror.sweep.theory import run_theory

    sweep, sweep_dir = write_fake_sweep(tmp_path, lambda trial, values: {**values, "ablation_gap": 0.3} if trial.index == 20 else values)
    for trial in sweep.trials:
        if float(trial.fields["env.dependency"]) > 0:  # the 32 helping trials
            out = next((sweep_dir / "trials").glob(f"*-{trial.trial_id}"))
            odd = {"draws": 20} if trial.index == 21 else {"checkpoint": 100} if trial.index == 22 else {}
            (out / "ablation.json").write_text(_ablation_json(0.04 + 0.001 * trial.index, **odd))
    report = run_theory(sweep_dir, permutations=500, power_designs=0)
    h6 = report["primary"][-1]
    assert h6["testable"] and h6["units"] == 32 and h6["verdict"].startswith("supported")
    gaps = [0.3 if t.index == 20 else 0.04 + 0.001 * t.index for t in sweep.trials if float(t.fields["env.dependency"]) > 0]
    assert h6["statistic"] == pytest.approx(np.mean(gaps))
    assert report["ablation"]["gaps_from"] == {"result.json": 1, "ablation.json": 31}
    assert report["ablation"]["departures"] == {"21": ["draws 20"], "22": ["checkpoint 100 (the trial's last: 200)"]}
    md = (sweep_dir / "hypotheses.md").read_text()
    assert "**Departure from the registered ablation** (top-mns:4, mean, 100 random draws, the last checkpoint): trial 21: draws 20; trial 22: checkpoint 100" in md
    (out / "ablation.json").write_text("{}")
    with pytest.raises(UsageError, match="is not `mirror ablate`'s --json output"):
        run_theory(sweep_dir, permutations=500, power_designs=0)


def test_theory_tests_match_the_library_on_the_rows(tmp_path):
    """The command's numbers are `theory_tests` on the rows' columns (one number per trial)."""
    from mirror.sweep.theory import read_results, trial_measures

    _, sweep_dir = write_fake_sweep(tmp_path)
    rows = read_results(sweep_dir)
    measures = trial_measures(rows)
    np.testing.assert_array_equal(measures["help_e0"], [r["help_when_partner_energy0"] for r in rows])
    assert measures["ablation_gap"] is None
    d, i, w = measures["dependency"], measures["veil"], measures["partner_reward_weight"]
    pick = w == 0
    want = h.spearman_test(d[pick], measures["help_e0"][pick], i[pick], permutations=300, seed=0, stream="H1")
    got = h.theory_tests(measures, permutations=300, power_designs=0)["primary"][0]
    assert (got["statistic"], got["p"]) == (want.statistic, want.p)


@pytest.mark.parametrize("column", ["cmni_scaled", "z_init", "help_when_partner_energy0"])
def test_a_sweep_without_a_needed_column_is_refused_naming_it(tmp_path, capsys, column):
    _, sweep_dir = write_fake_sweep(tmp_path)
    first = next((sweep_dir / "trials").iterdir()) / "result.json"
    row = json.loads(first.read_text())
    del row[column]
    first.write_text(json.dumps(row))
    assert main(["theory", str(sweep_dir), *CHEAP]) == 2
    err = capsys.readouterr().err
    assert f"lack the column(s) {column}" in err and "rerun `mirror sweep CONFIG`" in err
    assert not (sweep_dir / "hypotheses.md").exists()


def test_trials_sharing_a_setting_and_seed_are_refused(tmp_path, capsys):
    """Seeds are the units: two trials with the same D, I, w and seed (a sweep over another
    field too, e.g. rl.lr) cannot be paired or counted once each."""
    sweep, sweep_dir = write_fake_sweep(tmp_path)
    path = sweep_dir / "trials" / f"t0001-{sweep.trials[1].trial_id}" / "result.json"
    row = json.loads(path.read_text())
    path.write_text(json.dumps({**row, "seed": 0}))  # trial 1 becomes a second seed 0 of trial 0's setting
    assert main(["theory", str(sweep_dir), *CHEAP]) == 2
    assert "the trials must differ in (D, I, w, seed)" in capsys.readouterr().err


def test_theory_refuses_an_empty_or_supervised_sweep(tmp_path, capsys):
    assert main(["theory", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["theory", str(tmp_path / "empty")]) == 2
    assert "has no finished trial" in capsys.readouterr().err
    trial = tmp_path / "supervised" / "trials" / "t0000-abc"
    trial.mkdir(parents=True)
    (trial / "result.json").write_text(json.dumps({"trial": 0, "dependency": 1.0, "veil": 0.0, "peak_cmni": 0.1}))
    assert main(["theory", str(tmp_path / "supervised")]) == 2
    assert "is not an RL sweep" in capsys.readouterr().err
    assert main(["theory", str(tmp_path / "empty"), "--permutations", "0"]) == 2
    assert "--permutations must be at least 1" in capsys.readouterr().err
