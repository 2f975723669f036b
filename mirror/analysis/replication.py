"""The registered tests of the theory replication (`docs/theory_replication.md`), on one
number per trial (the trial is the unit; every trial has its own seed).

    replication_tests(trials) -> {"primary": [H1, H2, H3a, H3w, H3b, H4, H5, H5e, H6], "secondary": [...],
                                  "h6_by_d": {...}, "convergence": {...}, "power": {...}}

`trials` maps each measure to a float array, one entry per trial (NaN: no value):
dependency, veil, partner_reward_weight, help_go (help given opportunity, the primary
helping measure), help_e0, cmni_a, cmni_b, z_init, ablation_gap (H6; the drop of help given
opportunity), return_change_last_quarter and at_best_response (the convergence rule).

What differs from the first experiment's tests (`mirror.analysis.hypotheses`, whose
permutation and sign-flip primitives these reuse): help given opportunity is the primary
helping measure; H3w permutes cmni_a within each (D, I, w) setting; H4 is unpaired (no seed
is shared: I = 1 minus I = 0 means within each (D, w), averaged, I permuted within (D, w));
H5e is an equivalence test (two one-sided sign-flip tests, margin 0.5 in z); H6's gap is
reported by D. Holm's step-down runs over the nine primary tests (an untestable one enters
with p = 1). Secondary, uncorrected: H1, H2, H3a with help_e0, H4 with cmni_b, and every
primary test without the trials that miss the convergence rule. Power by resampling the
observed per-trial values (`mirror.analysis.sensitivity.resampled_power`).
"""

import numpy as np

from mirror.analysis.hypotheses import (
    ALPHA,
    HELPING,
    MIN_HELPING,
    PERMUTATIONS,
    POWER,
    SEED,
    average_ranks,
    holm,
    holm_levels,
    random_stream,
    sign_flip_test,
    sign_vectors,
    smallest_effect,
    spearman_rho,
    spearman_test,
    upper_p,
    within_strata_arrangements,
)
from mirror.analysis.sensitivity import EQUIVALENCE_MARGIN, group_labels, h6_by_d, helping_gaps, resampled_power, setting_labels, tost

PRIMARY = ("H1", "H2", "H3a", "H3w", "H3b", "H4", "H5", "H5e", "H6")
CONVERGED_CHANGE = 0.02  # the convergence rule: |fitted last-quarter return change| below this ...
POWER_DRAWS = 400
POWER_ARRANGEMENTS = 2000  # permutations or sign vectors of each simulated test (the observed tests use PERMUTATIONS)


def _result(name, claim, test, units, statistic, p, **extra) -> dict:
    return {"hypothesis": name, "claim": claim, "test": test, "units": int(units), "statistic": statistic, "p": p,
            "testable": p is not None, **extra}  # fmt: skip


def _spearman(name, claim, x, y, keep, strata=None, how="", *, permutations, seed) -> dict:
    keep = keep & np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3:
        return _result(name, claim, how, keep.sum(), None, None, reason="fewer than 3 trials with both values")
    test = spearman_test(x[keep], y[keep], None if strata is None else strata[keep], permutations=permutations, seed=seed, stream=name)
    return _result(name, claim, how, test.units, test.statistic, test.p)


def veil_difference(cmni, veil, strata) -> float:
    """Mean over the (D, w) strata that have both veils of mean(I = 1) - mean(I = 0)."""
    diffs = [cmni[(strata == s) & (veil == 1)].mean() - cmni[(strata == s) & (veil == 0)].mean()
             for s in np.unique(strata) if ((strata == s) & (veil == 1)).any() and ((strata == s) & (veil == 0)).any()]  # fmt: skip
    return float(np.mean(diffs)) if diffs else float("nan")


def h4_unpaired(name, t, measure, keep, *, permutations, seed) -> dict:
    claim = f"the veil I = 1 raises {measure}"
    how = "mean over (D, w) of mean(I = 1) - mean(I = 0); I permuted within (D, w)"
    keep = keep & np.isfinite(t[measure])
    strata = group_labels(t["dependency"], t["partner_reward_weight"])[keep]
    veil, values = t["veil"][keep], t[measure][keep]
    observed = veil_difference(values, veil, strata)
    if not np.isfinite(observed):
        return _result(name, claim, how, keep.sum(), None, None, reason="no (D, w) has trials at both veils")
    arrangements, exact = within_strata_arrangements(veil, strata, permutations=permutations, rng=random_stream(seed, name))
    null = np.asarray([veil_difference(values, a, strata) for a in arrangements])
    return _result(name, claim, how, keep.sum(), observed, float(upper_p(observed, null, exact)))


def _primary(t: dict, keep: np.ndarray, *, permutations: int, seed: int) -> list[dict]:
    n = len(t["dependency"])
    settings = setting_labels(t)
    w0, d0 = keep & (t["partner_reward_weight"] == 0), keep & (t["dependency"] == 0)
    kw = {"permutations": permutations, "seed": seed}
    out = [
        _spearman("H1", "at w = 0, help given opportunity rises with D", t["dependency"], t["help_go"], w0, t["veil"], "Spearman rho(D, help); D permuted within veil", **kw),
        _spearman("H2", "at D = 0, help given opportunity rises with w", t["partner_reward_weight"], t["help_go"], d0, t["veil"], "Spearman rho(w, help); w permuted within veil", **kw),
        _spearman("H3a", "across trials, cmni_a rises with help", t["cmni_a"], t["help_go"], keep, None, "Spearman rho(help, cmni_a); cmni_a permuted across trials", **kw),
        _spearman("H3w", "within settings, cmni_a rises with help", t["cmni_a"], t["help_go"], keep, settings, "Spearman rho(help, cmni_a); cmni_a permuted within (D, I, w)", **kw),
        _spearman("H3b", "across trials, cmni_b rises with help", t["cmni_b"], t["help_go"], keep, None, "Spearman rho(help, cmni_b); cmni_b permuted across trials", **kw),
        h4_unpaired("H4", t, "cmni_a", keep, **kw),
    ]  # fmt: skip
    z = t["z_init"][keep & np.isfinite(t["z_init"])]
    if len(z):
        above = sign_flip_test(z, permutations=permutations, seed=seed, stream="H5")
        out.append(_result("H5", "trained actors' cmni_a is above their random-initialisation null", "mean z_init; sign flips over trials", len(z), above.statistic, above.p))
        eq = tost(z, EQUIVALENCE_MARGIN, permutations=permutations, seed=seed, stream="H5e")
        out.append(_result("H5e", f"trained actors' cmni_a is within +-{EQUIVALENCE_MARGIN:g} (z) of their null", "two one-sided sign-flip tests (TOST)", len(z), eq["mean"], eq["p"]))
    else:
        out += [_result(h, "", "", 0, None, None, reason="no trial has a z_init") for h in ("H5", "H5e")]
    helping = helping_gaps(t, "help_go")
    helping = np.zeros(n, bool) if helping is None else helping & keep
    claim = f"in helping trials (help >= {HELPING:g}), ablating the top-MNS units lowers help more than random units"
    if helping.sum() < MIN_HELPING:
        out.append(_result("H6", claim, "mean ablation_gap; sign flips over trials", helping.sum(), None, None,
                           reason=f"H6 needs at least {MIN_HELPING} helping trials with an ablation_gap"))  # fmt: skip
    else:
        test = sign_flip_test(t["ablation_gap"][helping], permutations=permutations, seed=seed, stream="H6")
        out.append(_result("H6", claim, "mean ablation_gap; sign flips over trials", test.units, test.statistic, test.p))
    return out


def _holm(entries: list[dict], alpha: float) -> None:
    p = np.asarray([e["p"] if e["testable"] else 1.0 for e in entries])
    for e, adjusted, level in zip(entries, holm(p), holm_levels(p, alpha)):
        e.update(p_holm=float(adjusted) if e["testable"] else None, holm_level=float(level))
        e["supported"] = bool(e["testable"] and adjusted <= alpha and (e["statistic"] > 0 or e["hypothesis"] == "H5e"))


def converged(t: dict) -> np.ndarray:
    """bool[trials]: the convergence rule (docs/theory_replication.md): the fitted last-quarter
    return change below 2 % in size and at a best response to the deviation family."""
    change = t.get("return_change_last_quarter")
    best = t.get("at_best_response")
    n = len(t["dependency"])
    ok = np.ones(n, bool) if change is None else np.isfinite(change) & (np.abs(change) < CONVERGED_CHANGE)
    return ok & (np.ones(n, bool) if best is None else best == 1)


def _veil_coefficients(veil, strata) -> np.ndarray:
    """c[n] with c @ values = `veil_difference(values, veil, strata)`: each (D, w) stratum
    that has both veils weighs its I = 1 trials +1/n1 and its I = 0 trials -1/n0, over the
    number of such strata."""
    c = np.zeros(len(veil))
    both = [s for s in np.unique(strata) if ((strata == s) & (veil == 1)).any() and ((strata == s) & (veil == 0)).any()]
    for s in both:
        one, zero = (strata == s) & (veil == 1), (strata == s) & (veil == 0)
        c[one], c[zero] = 1.0 / one.sum(), -1.0 / zero.sum()
    return c / max(len(both), 1)


def _rank_power(x, driver, noise, strata, level, rng) -> tuple:
    """(power_of(e), rho_of(e)) of the one-sided Spearman test of rho(x, e x' + noise), x's
    ranks permuted within strata (as the registered test), over the simulated designs' rows
    of `noise`; x' is `driver` standardised (the part of x that carries the effect)."""
    x = np.asarray(x, np.float64)
    rx = average_ranks(x)
    arrangements, exact = within_strata_arrangements(rx, strata, permutations=POWER_ARRANGEMENTS, rng=rng)
    centred_x = rx - rx.mean()
    null_x = (arrangements - rx.mean()).T
    xs = _standardised(driver)

    def ranks(effect):
        ry = np.stack([average_ranks(row) for row in effect * xs + noise])
        return ry - ry.mean(axis=1, keepdims=True)

    def power_of(effect):
        ry = ranks(effect)
        return float((upper_p(ry @ centred_x, ry @ null_x, exact) <= level).mean())

    def rho_of(effect):  # the designs' mean Spearman rho: across trials, or the mean within strata where given
        y = effect * xs + noise
        groups = [np.ones(len(x), bool)] if strata is None else [strata == s for s in np.unique(strata) if (strata == s).sum() > 2]
        return float(np.mean([[spearman_rho(x[g], row[g]) for g in groups] for row in y]))

    return power_of, rho_of


def _standardised(values) -> np.ndarray:
    values = np.asarray(values, np.float64)
    return (values - values.mean()) / (values.std() or 1.0)


def null_power(t: dict, levels: dict, *, draws: int = POWER_DRAWS, seed: int = SEED) -> dict:
    """The power of each registered test beside H1 and H2 (those: `resampled_power`), by
    resampling the observed per-trial values (docs/theory_replication.md), each test at its
    Holm level `levels[h]`, `draws` simulated designs of the same trials:

    - H3a, H3b, H3w: the smallest Spearman rho the test detects with 80 % power: the
      measure's observed values, standardised and resampled, plus e times the help values
      (standardised within settings for H3w);
    - H4: the smallest veil effect (mean I = 1 minus I = 0 of cmni_a, also in units of
      cmni_a's sd within (D, w)) detected with 80 % power: cmni_a resampled within each (D, w)
      stratum, plus the effect on the I = 1 trials;
    - H5e: the chance that the TOST shows equivalence when the true mean z_init is 0: the
      centred z_init values resampled;
    - H6: the smallest mean gap detected with 80 % power: the helping trials' centred gaps
      resampled, plus the mean.
    """
    rng = random_stream(seed, "null_power")
    out = {"draws": draws, "target": POWER}
    if not draws:
        return out
    keep = np.isfinite(t["help_go"]) & np.isfinite(t["cmni_a"])
    settings = setting_labels(t)
    for name, measure, within in (("H3a", "cmni_a", False), ("H3w", "cmni_a", True), ("H3b", "cmni_b", False)):
        pick = keep & np.isfinite(t[measure])
        if pick.sum() < 3:
            continue
        strata = settings[pick] if within else None
        x = t["help_go"][pick]
        driver = x - np.asarray([x[strata == s].mean() for s in strata]) if within else x  # H3w: help's within-setting part
        noise = rng.choice(_standardised(t[measure][pick]), size=(draws, int(pick.sum())))
        power_of, rho_of = _rank_power(x, driver, noise, strata, levels[name], rng)
        effect = smallest_effect(power_of, start=0.25)
        out[name] = {"smallest_rho": None if effect is None else rho_of(effect), "rho": "mean within settings" if within else "across trials",
                     "design": "the measure's standardised values resampled, plus e x the help values" + (" centred within settings" if within else "")}  # fmt: skip
    pick = np.isfinite(t["cmni_a"])
    strata = group_labels(t["dependency"], t["partner_reward_weight"])[pick]
    veil, values = t["veil"][pick], t["cmni_a"][pick]
    arrangements, exact = within_strata_arrangements(veil, strata, permutations=POWER_ARRANGEMENTS, rng=rng)
    null_c = np.stack([_veil_coefficients(a, strata) for a in arrangements], axis=1)  # [n, K]
    c = _veil_coefficients(veil, strata)
    sample = np.empty((draws, len(values)))
    for s in np.unique(strata):
        m = strata == s
        sample[:, m] = rng.choice(values[m], size=(draws, int(m.sum())))
    sd = float(np.sqrt(np.mean([values[strata == s].var(ddof=1) for s in np.unique(strata) if (strata == s).sum() > 1])))

    def h4_power(effect):
        y = sample + effect * sd * veil
        return float((upper_p(y @ c, y @ null_c, exact) <= levels["H4"]).mean())

    effect = smallest_effect(h4_power, start=0.25)
    out["H4"] = {"smallest_effect": None if effect is None else effect * sd, "smallest_effect_sd": effect, "sd_within_dw": sd,
                 "design": "cmni_a resampled within each (D, w), plus the effect on the I = 1 trials"}  # fmt: skip
    z = t["z_init"][np.isfinite(t["z_init"])]
    if len(z):
        margin = EQUIVALENCE_MARGIN
        signs, exact = sign_vectors(len(z), permutations=POWER_ARRANGEMENTS, rng=rng)
        y = rng.choice(z - z.mean(), size=(draws, len(z)))

        def one_sided(values):
            return upper_p(values.mean(axis=1), values @ signs.T / len(z), exact)

        p = np.maximum(one_sided(y + margin), one_sided(margin - y))
        out["H5e"] = {"power_at_true_mean_0": float((p <= levels["H5e"]).mean()), "margin": margin,
                      "design": "the centred z_init values resampled (a true mean of 0)"}  # fmt: skip
    helping = helping_gaps(t, "help_go")
    if helping is not None and helping.sum() >= MIN_HELPING:
        gaps = t["ablation_gap"][helping]
        signs, exact = sign_vectors(len(gaps), permutations=POWER_ARRANGEMENTS, rng=rng)
        y = rng.choice(gaps - gaps.mean(), size=(draws, len(gaps)))

        def h6_power(effect):
            d = y + effect
            return float((upper_p(d.mean(axis=1), d @ signs.T / len(gaps), exact) <= levels["H6"]).mean())

        effect = smallest_effect(h6_power, start=0.01, max_effect=1.0)
        out["H6"] = {"smallest_mean_gap": effect, "design": "the helping trials' centred gaps resampled, plus the mean"}
    return out


def replication_tests(trials: dict, *, alpha: float = ALPHA, permutations: int = PERMUTATIONS, seed: int = SEED, power_draws: int = POWER_DRAWS) -> dict:
    """Every registered test of docs/theory_replication.md, JSON-ready (module docstring)."""
    t = {k: (None if v is None else np.asarray(v, np.float64)) for k, v in trials.items()}
    n = len(t["dependency"])
    every = np.ones(n, bool)
    primary = _primary(t, every, permutations=permutations, seed=seed)
    _holm(primary, alpha)
    levels = {e["hypothesis"]: e["holm_level"] for e in primary}
    alt = {**t, "help_go": t["help_e0"]}
    secondary = [dict(e, hypothesis=e["hypothesis"] + " (help_e0)", claim=e["claim"].replace("help given opportunity", "help_e0").replace("with help", "with help_e0"))
                 for e in _primary(alt, every, permutations=permutations, seed=seed)[:3]]  # fmt: skip
    secondary.append(h4_unpaired("H4 (cmni_b)", t, "cmni_b", every, permutations=permutations, seed=seed))
    good = converged(t)
    secondary += [dict(e, hypothesis=e["hypothesis"] + " (converged trials)") for e in _primary(t, good, permutations=permutations, seed=seed)]
    return {
        "trials": n,
        "alpha": alpha,
        "permutations": permutations,
        "seed": seed,
        "correction": f"Holm step-down over the {len(PRIMARY)} primary tests (an untestable test enters with p = 1)",
        "primary": primary,
        "secondary": secondary,
        "h6_by_d": h6_by_d(t, "help_go"),
        "convergence": {"rule": f"|return_change_last_quarter| < {CONVERGED_CHANGE:g} and at a best response", "converged": int(good.sum()), "of": n},
        "power": {"draws": power_draws, **resampled_power(t, levels, "help_go", ("H1", "H2"), rises=(0.5, 1.0, 2.0), means=(0.1, 0.2, 0.3),
                                                          draws=power_draws, seed=seed, stream="replication_power")},
        "null_power": null_power(t, levels, draws=power_draws, seed=seed),
    }
