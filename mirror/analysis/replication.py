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
    SEED,
    holm,
    holm_levels,
    random_stream,
    sign_flip_test,
    spearman_test,
    upper_p,
    within_strata_arrangements,
)
from mirror.analysis.sensitivity import EQUIVALENCE_MARGIN, h6_by_d, helping_gaps, resampled_power, tost

PRIMARY = ("H1", "H2", "H3a", "H3w", "H3b", "H4", "H5", "H5e", "H6")
CONVERGED_CHANGE = 0.02  # the convergence rule: |fitted last-quarter return change| below this ...
POWER_DRAWS = 400


def _labels(*columns) -> np.ndarray:
    return np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)[1].reshape(-1)


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
    strata = _labels(t["dependency"], t["partner_reward_weight"])[keep]
    veil, values = t["veil"][keep], t[measure][keep]
    observed = veil_difference(values, veil, strata)
    if not np.isfinite(observed):
        return _result(name, claim, how, keep.sum(), None, None, reason="no (D, w) has trials at both veils")
    arrangements, exact = within_strata_arrangements(veil, strata, permutations=permutations, rng=random_stream(seed, name))
    null = np.asarray([veil_difference(values, a, strata) for a in arrangements])
    return _result(name, claim, how, keep.sum(), observed, float(upper_p(observed, null, exact)))


def _primary(t: dict, keep: np.ndarray, *, permutations: int, seed: int) -> list[dict]:
    n = len(t["dependency"])
    settings = _labels(t["dependency"], t["veil"], t["partner_reward_weight"])
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


def replication_tests(trials: dict, *, alpha: float = ALPHA, permutations: int = PERMUTATIONS, seed: int = SEED, power_draws: int = POWER_DRAWS) -> dict:
    """Every registered test of docs/theory_replication.md, JSON-ready (module docstring)."""
    t = {k: (None if v is None else np.asarray(v, np.float64)) for k, v in trials.items()}
    n = len(t["dependency"])
    every = np.ones(n, bool)
    primary = _primary(t, every, permutations=permutations, seed=seed)
    _holm(primary, alpha)
    levels = {e["hypothesis"]: e["holm_level"] for e in primary}
    alt = {**t, "help_go": t["help_e0"]}
    secondary = [dict(e, hypothesis=e["hypothesis"] + " (help_e0)") for e in _primary(alt, every, permutations=permutations, seed=seed)[:3]]
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
    }
