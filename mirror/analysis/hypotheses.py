"""The pre-registered tests of the theory experiment (`docs/theory_experiment.md`), on one
number per trial (the seed is the unit: nothing here sees games, rows or neurons).

    theory_tests(trials) -> {"primary": [H1, H2, H3a, H3b, H4, H5, H6], "secondary": [...], ...}

`trials` maps each measure to a float array with one entry per trial (NaN: no value):
dependency, veil, partner_reward_weight, seed, help_e0, help_distressed, cmni_a, cmni_b,
z_init, and optionally ablation_gap (H6) and p_init_scaled (the per-trial random-init rank).

The tests, all one-sided in the registered direction:

- **Spearman permutation test** (`spearman_test`, H1, H2, H3a, H3b): rho is Pearson's r of
  the average ranks (ties share their mean rank). The null permutes one variable's values
  within each stratum (H1, H2: the veil; H3: one stratum, every trial), which keeps every
  value's pooled rank, so the null statistics are the observed rank vector rearranged.
- **Sign-flip test** (`sign_flip_test`, H4, H5, H6): the mean of per-unit values against
  the means with every sign flipped at random (symmetric about 0 under the null).

Each uses `permutations` (10,000) draws from `np.random.default_rng((seed, crc32(test
name), 0))` (an integer seed, as the analysis' other permutation nulls take), a stream per
test, so the same trials give the same p-values. When the test has at most
that many distinct arrangements (sign vectors, or orderings of the values within the
strata), every one is enumerated instead and p is exact: the share of arrangements,
the observed one included, whose statistic reaches the observed. Otherwise p =
(1 + #{draws >= observed}) / (permutations + 1).

**Holm's step-down** (`holm`) runs over all seven primary tests: a test that cannot be run
(H6 without ablation gaps or with fewer than 5 helping trials, a measure constant over
the trials, ...) enters with p = 1, so the family keeps its registered size and no verdict
gains from a missing test.

**Power** (`smallest_effect`): for each testable primary test, the smallest effect it
detects with 80 % power at its Holm level (alpha / (m - rank + 1), rank its place among
the sorted p-values), by simulation: `power_designs` designs with the trials' own
settings, each trial's value drawn with normal noise of its (D, I, w) setting's observed
standard deviation (the pooled within-setting sd for a setting with one trial), the same
test with the same draws. Effects: a slope of the measure per unit of D or w (H1, H2) or
of cmni per unit of help_e0 (H3), a mean difference (H4: a pair's noise is its two
settings' sds combined), a mean (H5, H6); reported in the measure's units and in units of
the pooled within-setting sd (sqrt(2) x it for H4's pairs). The noise draws are shared
across effect sizes (common random numbers), and the effect is found by doubling, then
bisection.
"""

import itertools
import math
import zlib
from typing import Callable, NamedTuple

import numpy as np

ALPHA = 0.05
PERMUTATIONS = 10_000
SEED = 0
POWER = 0.8
POWER_DESIGNS = 200
HELPING = 0.1  # H6: a trial helps when its help_e0 is at least this
MIN_HELPING = 5  # H6 is tested only with at least this many helping trials
PRIMARY = ("H1", "H2", "H3a", "H3b", "H4", "H5", "H6")
MEASURES = ("dependency", "veil", "partner_reward_weight", "seed", "help_e0", "help_distressed", "cmni_a", "cmni_b", "z_init")
_POWER_STREAM = 0x9077  # the power simulations' streams, apart from the tests'
_MAX_EFFECT = 64.0  # in noise sd: beyond this a test is called powerless
_BISECTIONS = 10


class PermutationTest(NamedTuple):
    statistic: float  # rho or the mean
    p: float
    units: int  # trials or pairs
    draws: int  # arrangements enumerated (exact) or drawn
    exact: bool


# ----------------------------------------------------------------------------- statistics


def average_ranks(values) -> np.ndarray:
    """float64[n]: 1-based ranks of values[n], tied values sharing their mean rank."""
    values = np.asarray(values, np.float64)
    n = len(values)
    order = np.argsort(values, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(values[order]) != 0) + 1]
    ends = np.r_[starts[1:], n]
    ranks = np.empty(n)
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def spearman_rho(x, y) -> float:
    """Spearman's rho (Pearson's r of the average ranks); NaN when x or y is constant."""
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    norm = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / norm if norm > 0 else math.nan


def _strata(strata, n: int) -> np.ndarray:
    """int[n] stratum index of each unit (one stratum when strata is None)."""
    if strata is None:
        return np.zeros(n, np.int64)
    return np.unique(np.asarray(strata), return_inverse=True)[1].reshape(n)


def arrangement_count(values, strata=None) -> int:
    """How many distinct orderings of values[n] keep each value in its stratum: the product
    over strata of the multinomial n_s! / prod(ties!)."""
    values = np.asarray(values)
    index = _strata(strata, len(values))
    count = 1
    for s in np.unique(index):
        _, ties = np.unique(values[index == s], return_counts=True)
        count *= math.factorial(int(ties.sum())) // math.prod(math.factorial(int(t)) for t in ties)
    return count


def distinct_orderings(values) -> np.ndarray:
    """float64[count, n]: every distinct ordering of the multiset values[n], each once, in
    lexicographic order (the next-permutation algorithm)."""
    a = sorted(np.asarray(values, np.float64).tolist())
    out = [list(a)]
    while True:
        i = len(a) - 2
        while i >= 0 and a[i] >= a[i + 1]:
            i -= 1
        if i < 0:
            return np.asarray(out, np.float64).reshape(len(out), len(a))
        j = len(a) - 1
        while a[j] <= a[i]:
            j -= 1
        a[i], a[j] = a[j], a[i]
        a[i + 1 :] = reversed(a[i + 1 :])
        out.append(list(a))


def within_strata_arrangements(values, strata=None, *, permutations: int = PERMUTATIONS, rng=None) -> tuple[np.ndarray, bool]:
    """(float64[K, n], exact): orderings of values[n] that keep every value in its stratum.
    Every distinct one (the observed included) when there are at most `permutations`
    (exact = True), else `permutations` independent uniform shuffles within each stratum
    drawn from `rng`."""
    values = np.asarray(values, np.float64)
    index = _strata(strata, len(values))
    members = [np.flatnonzero(index == s) for s in np.unique(index)]
    if arrangement_count(values, index) <= permutations:
        per_stratum = [distinct_orderings(values[m]) for m in members]
        combos = np.asarray(list(itertools.product(*[range(len(o)) for o in per_stratum])), np.int64).reshape(-1, len(members))
        out = np.empty((len(combos), len(values)))
        for s, (m, orderings) in enumerate(zip(members, per_stratum)):
            out[:, m] = orderings[combos[:, s]]
        return out, True
    out = np.empty((permutations, len(values)))
    for m in members:
        out[:, m] = rng.permuted(np.broadcast_to(values[m], (permutations, len(m))), axis=1)
    return out, False


def sign_vectors(n: int, *, permutations: int = PERMUTATIONS, rng=None) -> tuple[np.ndarray, bool]:
    """(float64[K, n] of +-1, exact): all 2^n sign vectors when 2^n <= permutations, else
    `permutations` uniform random ones from `rng`."""
    if 2**n <= permutations:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        return 1.0 - 2.0 * bits, True
    return rng.choice(np.array([-1.0, 1.0]), size=(permutations, n)), False


def upper_p(observed, null, exact: bool) -> np.ndarray:
    """One-sided p of observed[...] against null[..., K]: exact, the share of the (enumerated)
    null at or above it; else (1 + #{null >= observed}) / (K + 1). A relative 1e-9 absorbs
    rounding, so an arrangement equal to the observed one counts."""
    observed = np.asarray(observed, np.float64)
    tol = 1e-9 * np.maximum(1.0, np.abs(observed))
    hits = (null >= (observed - tol)[..., None]).sum(-1)
    k = null.shape[-1]
    return hits / k if exact else (1 + hits) / (k + 1)


def random_stream(rng_seed: int, name: str, extra: int = 0) -> np.random.Generator:
    return np.random.default_rng((rng_seed, zlib.crc32(name.encode()), extra))


def spearman_test(x, y, strata=None, *, permutations: int = PERMUTATIONS, seed: int = SEED, stream: str = "spearman") -> PermutationTest:
    """One-sided (rho > 0) permutation test of Spearman's rho(x, y), x's values permuted
    within each stratum. x, y float[n] (finite); strata: None (one stratum) or labels[n]."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman_test: x {x.shape} and y {y.shape} must be float[n]")
    rho = spearman_rho(x, y)
    rx, ry = average_ranks(x), average_ranks(y)
    arrangements, exact = within_strata_arrangements(rx, strata, permutations=permutations, rng=random_stream(seed, stream))
    if not math.isfinite(rho):  # a constant variable: every arrangement ties, no evidence
        return PermutationTest(rho, 1.0, len(x), len(arrangements), exact)
    centred = ry - ry.mean()
    observed = (rx - rx.mean()) @ centred  # rho's numerator; the denominator is the same for every arrangement
    null = (arrangements - rx.mean()) @ centred
    return PermutationTest(rho, float(upper_p(observed, null, exact)), len(x), len(arrangements), exact)


def sign_flip_test(values, *, permutations: int = PERMUTATIONS, seed: int = SEED, stream: str = "sign_flip") -> PermutationTest:
    """One-sided (mean > 0) sign-flip test of values[n] (finite): the mean against the means
    of the values with random signs."""
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or not len(values):
        raise ValueError(f"sign_flip_test needs float[n] with n >= 1, got shape {values.shape}")
    signs, exact = sign_vectors(len(values), permutations=permutations, rng=random_stream(seed, stream))
    observed = values.mean()
    null = signs @ values / len(values)
    return PermutationTest(float(observed), float(upper_p(observed, null, exact)), len(values), len(signs), exact)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values: sorted ascending, p_(j) x (m - j + 1), made
    monotone, capped at 1, returned in the input order."""
    p = np.asarray(p_values, np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def holm_levels(p_values, alpha: float = ALPHA) -> np.ndarray:
    """Each test's level in Holm's procedure: alpha / (m - rank + 1), rank its 1-based place
    among the sorted p-values (ties in input order)."""
    p = np.asarray(p_values, np.float64)
    levels = np.empty(len(p))
    levels[np.argsort(p, kind="stable")] = alpha / (len(p) - np.arange(len(p)))
    return levels


def pooled_setting_sd(values, settings) -> float | None:
    """The pooled within-setting standard deviation sqrt(sum_s sum_i (v_i - mean_s)^2 /
    sum_s (n_s - 1)) of values[n] grouped by settings[n] (labels, e.g. "D,I,w" strings);
    None when no setting has two values."""
    values = np.asarray(values, np.float64)
    index = np.unique(np.asarray(settings), return_inverse=True)[1].reshape(len(values))
    squares, dof = 0.0, 0
    for s in np.unique(index):
        v = values[index == s]
        squares += float(((v - v.mean()) ** 2).sum())
        dof += len(v) - 1
    return math.sqrt(squares / dof) if dof > 0 else None


def setting_sds(values, settings) -> tuple[np.ndarray, float | None]:
    """(sd[n], pooled): each unit's setting's sample standard deviation (ddof 1) of values[n]
    grouped by settings[n], the pooled within-setting sd (`pooled_setting_sd`) standing in
    for a setting with one value; and that pooled sd (None when no setting has two values,
    and then sd is all NaN)."""
    values = np.asarray(values, np.float64)
    index = np.unique(np.asarray(settings), return_inverse=True)[1].reshape(len(values))
    pooled = pooled_setting_sd(values, settings)
    sd = np.full(len(values), np.nan if pooled is None else pooled)
    for s in np.unique(index):
        pick = index == s
        if pick.sum() > 1:
            sd[pick] = values[pick].std(ddof=1)
    return sd, pooled


# ----------------------------------------------------------------------------- power


def smallest_effect(power_of: Callable[[float], float], *, target: float = POWER, start: float = 0.5, max_effect: float = _MAX_EFFECT) -> float | None:
    """The smallest effect e >= 0 (within 1/2^10 of its bracket) with power_of(e) >= target:
    doubling from `start`, then bisection. None when even max_effect falls short."""
    lo, hi = 0.0, start
    while power_of(hi) < target:
        lo, hi = hi, 2 * hi
        if hi > max_effect:
            return None
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if power_of(mid) >= target else (mid, hi)
    return hi


def spearman_power(
    x, strata, level: float, *, scale=None, designs: int = POWER_DESIGNS, permutations: int = PERMUTATIONS, seed: int = SEED, stream: str = "spearman"
):  # fmt: skip
    """(power_of, smallest_p, rho_of): power_of(e), the share of `designs` simulated designs
    y = e x + scale N(0, 1) (x fixed, the trials' own values; scale[n] each trial's noise
    sd in units of the reference sd, default 1) in which `spearman_test`'s p (same
    arrangements for all) is at most `level`; the arrangements' smallest attainable p; and
    rho_of(e), the designs' mean Spearman rho (the effect in rho's terms)."""
    x = np.asarray(x, np.float64)
    rx = average_ranks(x)
    arrangements, exact = within_strata_arrangements(rx, strata, permutations=permutations, rng=random_stream(seed, stream, _POWER_STREAM))
    null_x = (arrangements - rx.mean()).T  # [n, K]
    noise = random_stream(seed, stream, _POWER_STREAM + 1).standard_normal((designs, len(x))) * (1.0 if scale is None else np.asarray(scale, np.float64))

    def centred_ranks(effect: float) -> np.ndarray:
        ry = np.stack([average_ranks(row) for row in effect * x + noise])
        return ry - ry.mean(axis=1, keepdims=True)

    def power_of(effect: float) -> float:
        centred = centred_ranks(effect)
        p = upper_p(centred @ (rx - rx.mean()), centred @ null_x, exact)
        return float((p <= level).mean())

    def rho_of(effect: float) -> float:
        centred, cx = centred_ranks(effect), rx - rx.mean()
        return float(np.mean(centred @ cx / np.sqrt((centred**2).sum(axis=1) * (cx @ cx))))

    return power_of, _smallest_p(len(arrangements), exact), rho_of


def sign_flip_power(
    n: int, level: float, *, scale=None, designs: int = POWER_DESIGNS, permutations: int = PERMUTATIONS, seed: int = SEED, stream: str = "sign_flip"
):  # fmt: skip
    """(power_of, smallest_p): power_of(e), the share of `designs` simulated samples
    e + scale N(0, 1) of n units (scale[n] each unit's noise sd in units of the reference
    sd, default 1) in which `sign_flip_test`'s p is at most `level`; the smallest attainable p."""
    signs, exact = sign_vectors(n, permutations=permutations, rng=random_stream(seed, stream, _POWER_STREAM))
    noise = random_stream(seed, stream, _POWER_STREAM + 1).standard_normal((designs, n)) * (1.0 if scale is None else np.asarray(scale, np.float64))

    def power_of(effect: float) -> float:
        d = effect + noise
        p = upper_p(d.mean(axis=1), d @ signs.T / n, exact)
        return float((p <= level).mean())

    return power_of, _smallest_p(len(signs), exact)


def _smallest_p(draws: int, exact: bool) -> float:
    return 1 / draws if exact else 1 / (draws + 1)


# ----------------------------------------------------------------------------- the registered tests


class _Spec(NamedTuple):
    """One test, ready to run: its entry (JSON-ready) and, when testable, how to test and
    how to simulate it."""

    entry: dict
    run: Callable[[], PermutationTest] | None = None
    power: Callable[[float], tuple] | None = None  # level -> (power_of, smallest p[, rho_of])
    sigma: float | None = None  # the reference noise sd in the measure's units (None or 0: power not defined)
    effect_words: str = ""  # what the effect is, e.g. "rise in help_e0 per unit of D"


def _settings(t: dict, keep: np.ndarray) -> np.ndarray:
    """The (D, I, w) setting of each trial picked by `keep` (a mask or indices), as a label."""
    return np.asarray([f"{d:g},{i:g},{w:g}" for d, i, w in zip(t["dependency"][keep], t["veil"][keep], t["partner_reward_weight"][keep])])


def _entry(name: str, claim: str, statistic: str, units: int, unit_name: str = "trials", **extra) -> dict:
    return {"hypothesis": name, "claim": claim, "statistic_name": statistic, "units": units, "unit_name": unit_name, **extra}


def _untestable(entry: dict, reason: str, status: str = "not testable") -> _Spec:
    """A test that cannot be run: `status` ("not testable", "not computed") and why."""
    return _Spec({**entry, "testable": False, "status": status, "reason": reason})


def _spearman_spec(name, claim, t, keep, x_name, y_name, *, strata_name, permuted: str, config, selection: str = "") -> _Spec:
    """Spearman rho(x, y) over the kept trials (`selection` says which, e.g. "w = 0") with
    finite values; `permuted` names the permuted variable (x: within strata_name strata; y:
    across all trials)."""
    selected = int(keep.sum())
    keep = keep & np.isfinite(t[x_name]) & np.isfinite(t[y_name])
    x, y = t[x_name][keep], t[y_name][keep]
    entry = _entry(name, claim, f"Spearman rho({_label(x_name)}, {_label(y_name)})", int(keep.sum()),
                   test=f"permutation of {_label(permuted)} " + (f"within each {strata_name} stratum" if strata_name else "across trials"))  # fmt: skip
    if keep.sum() < 3:
        where = f"the {selected} trials with {selection}" if selection else f"the {selected} trials"
        return _untestable(entry, f"{int(keep.sum())} of {where} have a value of both {_label(x_name)} and {_label(y_name)}; the test needs at least 3")
    for var, v in ((x_name, x), (y_name, y)):
        if np.unique(v).size < 2:
            return _untestable(entry, f"{_label(var)} takes the single value {v[0]:g} in all {len(v)} trials")
    strata = t[strata_name][keep] if strata_name else None
    # The permuted variable goes first (spearman_test permutes its x); rho is symmetric.
    a, b = (x, y) if permuted == x_name else (y, x)
    sd, sigma = setting_sds(y, _settings(t, keep))
    scale = sd / sigma if sigma else None
    return _Spec(
        {**entry, "testable": True},
        run=lambda: spearman_test(a, b, strata, permutations=config["permutations"], seed=config["seed"], stream=name),
        # Simulated: y = slope x + noise with x the trials' own values; only y's ranks matter,
        # and with one stratum permuting either variable gives the same null.
        power=lambda level: spearman_power(x, strata, level, scale=scale, designs=config["power_designs"], permutations=config["permutations"],
                                           seed=config["seed"], stream=name),  # fmt: skip
        sigma=sigma,
        effect_words=f"rise in {_label(y_name)} per unit of {_label(x_name)}",
    )


def _sign_flip_spec(name, claim, values, settings, statistic: str, *, unit_name: str, effect_words: str, config, extra=None) -> _Spec:
    """A sign-flip test of the mean of values[units] (one per trial, its setting in
    settings[units]); the per-setting sd of the values is the simulated noise."""
    entry = _entry(name, claim, statistic, len(values), unit_name, test=f"sign-flip over {unit_name}", **(extra or {}))
    if not len(values):
        return _untestable(entry, f"no {unit_name} have a value")
    sd, sigma = setting_sds(values, settings)
    scale = sd / sigma if sigma else None
    return _Spec(
        {**entry, "testable": True},
        run=lambda: sign_flip_test(values, permutations=config["permutations"], seed=config["seed"], stream=name),
        power=lambda level: sign_flip_power(len(values), level, scale=scale, designs=config["power_designs"], permutations=config["permutations"],
                                            seed=config["seed"], stream=name),  # fmt: skip
        sigma=sigma,
        effect_words=effect_words,
    )


LABELS = {"dependency": "D", "veil": "I", "partner_reward_weight": "w"}


def _label(name: str) -> str:
    return LABELS.get(name, name)


def veil_pairs(t: dict, measure: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """H4's pairs: for every (D, w, seed) with a trial at I = 0 and one at I = 1, both with a
    finite `measure`: (differences I=1 minus I=0 [pairs], the I=0 trials' indices, the I=1
    trials'). The seed value identifies the seed index (a grid sweep gives every setting the
    same seeds)."""

    def where(veil):
        keep = (t["veil"] == veil) & np.isfinite(t[measure])
        return {(d, w, s): i for i, (d, w, s) in enumerate(zip(t["dependency"], t["partner_reward_weight"], t["seed"])) if keep[i]}

    off, on = where(0.0), where(1.0)
    keys = sorted(set(off) & set(on))
    i0, i1 = np.asarray([off[k] for k in keys], np.int64), np.asarray([on[k] for k in keys], np.int64)
    return t[measure][i1] - t[measure][i0], i0, i1


def _h4_spec(name, t, measure, config) -> _Spec:
    diff, i0, i1 = veil_pairs(t, measure)
    entry = _entry(name, f"the veil I = 1 raises {measure}", f"mean of {measure}(I = 1) - {measure}(I = 0)", len(diff), "pairs",
                   test="sign-flip over pairs (same D, w and seed)")  # fmt: skip
    if not len(diff):
        return _untestable(entry, f"no (D, w, seed) has a trial with a {measure} at both I = 0 and I = 1")
    # A pair's noise: two independent seeds, each with its setting's sd of the measure.
    index = np.concatenate([i0, i1])
    sd, pooled = setting_sds(t[measure][index], _settings(t, index))
    sigma = math.sqrt(2) * pooled if pooled else None
    scale = np.sqrt(sd[: len(i0)] ** 2 + sd[len(i0) :] ** 2) / sigma if sigma else None
    return _Spec(
        {**entry, "testable": True},
        run=lambda: sign_flip_test(diff, permutations=config["permutations"], seed=config["seed"], stream=name),
        power=lambda level: sign_flip_power(len(diff), level, scale=scale, designs=config["power_designs"], permutations=config["permutations"],
                                            seed=config["seed"], stream=name),  # fmt: skip
        sigma=sigma,
        effect_words=f"mean I = 1 minus I = 0 difference in {measure}",
    )


def _h6_spec(t, config) -> _Spec:
    entry = _entry("H6", f"in trials whose agents help (help_e0 >= {HELPING:g}), ablating the top-MNS units lowers help_e0 more than random units",
                   "mean ablation_gap", 0, test="sign-flip over trials")  # fmt: skip
    gap = t.get("ablation_gap")
    if gap is None or not np.isfinite(gap).any():
        return _untestable(entry, "no trial has an ablation_gap (the ablation step has not run on this sweep, or gave no finite gap)", "not computed")
    helping = np.isfinite(t["help_e0"]) & (t["help_e0"] >= HELPING)
    keep = helping & np.isfinite(gap)
    extra = {"helping_trials": int(helping.sum()), "helping_without_gap": int((helping & ~np.isfinite(gap)).sum())}
    if keep.sum() < MIN_HELPING:
        return _untestable({**entry, **extra, "units": int(keep.sum())},
                           f"{int(keep.sum())} helping trials (help_e0 >= {HELPING:g}) have an ablation_gap; H6 needs at least {MIN_HELPING}")  # fmt: skip
    return _sign_flip_spec(
        "H6", entry["claim"], gap[keep], _settings(t, keep), "mean ablation_gap", unit_name="trials",
        effect_words="mean ablation_gap", config=config, extra=extra,
    )  # fmt: skip


def primary_specs(t: dict, config: dict) -> list[_Spec]:
    n = len(t["seed"])
    every = np.ones(n, bool)
    z = t["z_init"]
    z_keep = np.isfinite(z)
    return [
        _spearman_spec("H1", "at w = 0, help_e0 rises with D", t, t["partner_reward_weight"] == 0, "dependency", "help_e0",
                       strata_name="veil", permuted="dependency", config=config, selection="w = 0"),
        _spearman_spec("H2", "at D = 0, help_e0 rises with w", t, t["dependency"] == 0, "partner_reward_weight", "help_e0",
                       strata_name="veil", permuted="partner_reward_weight", config=config, selection="D = 0"),
        _spearman_spec("H3a", "across trials, cmni_a rises with help_e0", t, every, "help_e0", "cmni_a", strata_name=None, permuted="cmni_a", config=config),
        _spearman_spec("H3b", "across trials, cmni_b rises with help_e0", t, every, "help_e0", "cmni_b", strata_name=None, permuted="cmni_b", config=config),
        _h4_spec("H4", t, "cmni_a", config),
        _sign_flip_spec("H5", "trained actors' CMNI is above their random-initialisation null", z[z_keep], _settings(t, z_keep), "mean z_init",
                        unit_name="trials", effect_words="mean z_init", config=config),
        _h6_spec(t, config),
    ]  # fmt: skip


def secondary_specs(t: dict, config: dict) -> list[_Spec]:
    """The registered exploratory tests (uncorrected): H1 and H2 with help_distressed, H4
    with cmni_b."""
    return [
        _spearman_spec("H1 (help_distressed)", "at w = 0, help_distressed rises with D", t, t["partner_reward_weight"] == 0, "dependency",
                       "help_distressed", strata_name="veil", permuted="dependency", config=config, selection="w = 0"),
        _spearman_spec("H2 (help_distressed)", "at D = 0, help_distressed rises with w", t, t["dependency"] == 0, "partner_reward_weight",
                       "help_distressed", strata_name="veil", permuted="partner_reward_weight", config=config, selection="D = 0"),
        _h4_spec("H4 (cmni_b)", t, "cmni_b", config),
    ]  # fmt: skip


def _run(spec: _Spec) -> dict:
    if spec.run is None:
        return {**spec.entry, "statistic": None, "p": None, "draws": None, "exact": None}
    result = spec.run()
    return {**spec.entry, "statistic": result.statistic, "p": result.p, "draws": result.draws, "exact": result.exact}


def _power(spec: _Spec, level: float, target: float, designs: int) -> dict:
    """The smallest effect detected with `target` power at `level`, in the measure's units
    and in noise sd, or why there is none."""
    out = {"level": level, "target": target}
    if designs < 1:
        return {**out, "effect": None, "reason": "not estimated (power_designs = 0)"}
    if not spec.sigma:
        return {**out, "effect": None, "reason": "the observed per-setting standard deviation is 0 or undefined (no setting has two trials)"}
    power_of, smallest_p, *rho_of = spec.power(level)
    if smallest_p > level:
        return {**out, "effect": None, "reason": f"the smallest p this design can give ({smallest_p:.3g}) is above its Holm level ({level:.3g})"}
    effect = smallest_effect(power_of, target=target)
    if effect is None:
        return {**out, "effect": None, "reason": f"not reached below {_MAX_EFFECT:g} noise sd"}
    value = effect * spec.sigma
    rho = {"mean_rho": rho_of[0](effect)} if rho_of else {}
    words = f"{value:.3g} ({spec.effect_words}; {effect:.2g} x the pooled seed sd" + (f"; mean rho {rho['mean_rho']:.2g})" if rho else ")")
    return {**out, "effect": value, "effect_sd": effect, "sigma": spec.sigma, **rho, "words": words}


def verdict(entry: dict) -> str:
    """A primary test's verdict in words, never stronger than the test."""
    if not entry["testable"]:
        return f"{entry['status']}: {entry['reason']}"
    if entry["supported"]:
        return f"supported (Holm-adjusted p = {entry['p_holm']:.3g})"
    power = entry["power"]
    detect = (f"the design detects effects of at least {power['words']} with {power['target']:.0%} power"
              if power.get("effect") is not None else f"its power was not estimated: {power['reason']}")  # fmt: skip
    return f"not supported (Holm-adjusted p = {entry['p_holm']:.3g}); {detect}"


def theory_tests(
    trials: dict, *, alpha: float = ALPHA, permutations: int = PERMUTATIONS, seed: int = SEED, power_designs: int = POWER_DESIGNS, power: float = POWER
) -> dict:  # fmt: skip
    """Every registered test on one number per trial. trials: MEASURES (and optionally
    ablation_gap, p_init_scaled) -> float[n] (NaN: no value). Returns a JSON-ready dict:
    primary (H1..H6 with p, Holm-adjusted p, supported, verdict, power), secondary (the
    exploratory tests, uncorrected), init_ranks (per-trial random-init ranks), and the
    settings used."""
    missing = [m for m in MEASURES if m not in trials]
    if missing:
        raise ValueError(f"theory_tests: missing measure(s) {', '.join(missing)}")
    t = {k: (None if v is None else np.asarray(v, np.float64)) for k, v in trials.items()}
    n = len(t["seed"])
    bad = [k for k, v in t.items() if v is not None and v.shape != (n,)]
    if bad:
        raise ValueError(f"theory_tests: {', '.join(bad)} must have one value per trial ({n})")
    settings = list(zip(t["dependency"], t["veil"], t["partner_reward_weight"], t["seed"]))
    if len(set(settings)) < n:
        raise ValueError("theory_tests: the trials must differ in (D, I, w, seed); some share all four (one trial per seed and setting)")
    config = {"permutations": int(permutations), "seed": int(seed), "power_designs": int(power_designs)}
    specs = primary_specs(t, config)
    primary = [_run(s) for s in specs]
    p = np.asarray([e["p"] if e["testable"] else 1.0 for e in primary])
    adjusted, levels = holm(p), holm_levels(p, alpha)
    for entry, spec, p_holm, level in zip(primary, specs, adjusted, levels):
        entry.update(p_holm=float(p_holm) if entry["testable"] else None, holm_level=float(level), supported=bool(entry["testable"] and p_holm <= alpha))
        entry["power"] = _power(spec, float(level), power, config["power_designs"]) if entry["testable"] else None
        entry["verdict"] = verdict(entry)
    secondary = [_run(s) for s in secondary_specs(t, config)]
    for entry in secondary:
        entry["verdict"] = "exploratory: " + (f"p = {entry['p']:.3g} (uncorrected)" if entry["testable"] else f"{entry['status']}: {entry['reason']}")
    return {
        "trials": n,
        "alpha": alpha,
        "permutations": config["permutations"],
        "seed": config["seed"],
        "power_designs": config["power_designs"],
        "power_target": power,
        "correction": f"Holm step-down over the {len(PRIMARY)} primary tests (an untestable test enters with p = 1)",
        "primary": primary,
        "secondary": secondary,
        "init_ranks": init_ranks(t.get("p_init_scaled"), alpha),
    }


def init_ranks(p_init, alpha: float = ALPHA) -> dict:
    """The per-trial random-initialisation ranks (exploratory, uncorrected): how many trials'
    cmni_a rank at or below alpha among their architecture's random initialisations."""
    if p_init is None or not np.isfinite(p_init).any():
        return {"tested": 0, "at_or_below_alpha": 0, "verdict": "exploratory: not computed (no trial has p_init_scaled)"}
    finite = p_init[np.isfinite(p_init)]
    k = int((finite <= alpha).sum())
    return {"tested": int(finite.size), "at_or_below_alpha": k,
            "verdict": f"exploratory: {k} of {finite.size} trials have cmni_a above their random-initialisation draws at p <= {alpha:g} (uncorrected)"}  # fmt: skip
