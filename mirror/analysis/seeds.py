"""Verdicts over seeds: does the CMNI rise and fall, and does training beat random init?

One trained model cannot tell a CMNI that rises and falls from a flat, noisy one: its
final value sits below its own peak in most runs of either kind. These tests treat the
members of a population trained on the same data (seeds) as replicates (pure NumPy):

- `rise_and_fall(epochs, values[checkpoints, seeds])`: the drop from the peak to the final
  checkpoint. To avoid selection bias (picking a seed's peak on its own noise inflates
  its drop), the peak of seed s is the argmax of the mean curve of the OTHER seeds
  (leave-one-seed-out); drop_s = value_s[peak_-s] - value_s[final] and `drop` is the mean
  of drop_s. The verdict `reproduced` rests on an EXACT one-sided sign-flip test of the
  per-seed drops (`sign_flip_p`): under "no drop" each seed's drop is as likely negative
  as positive, so every one of the 2^n sign patterns of the n drops is equally likely,
  and p = #{patterns whose mean >= the observed mean} / 2^n (all 2^n enumerated; 5
  positive drops give p = 1/32). `reproduced` is p <= 0.05, which needs at least 5 seeds
  (the smallest p at n seeds is 1/2^n: 1/16 at 4). On flat noisy curves the test says
  `reproduced` in 5-6 % of repetitions at 5 seeds (tests/test_seed_verdicts.py). The
  test takes the drops as independent; the leave-one-out peaks make them slightly
  dependent (seed s helps pick the others' peaks), which grows with the seeds: measured
  8-12 % on flat curves at 6-10 seeds.
  Beside it, a NOMINAL 95 % interval: a percentile bootstrap over seeds of the mean
  drop, expanded for small samples (Hesterberg 2015, "What teachers should know about the
  bootstrap", §5: percentiles at alpha' = 2 Phi(-sqrt(n / (n - 1)) t_{n-1, 0.975})). It
  is descriptive only: measured on planted curves with normal noise it covers the true
  drop in about 90 % of repetitions at 5 seeds and near 95 % at 20 (a bootstrap cannot
  reach beyond the seeds' extreme drops), so no verdict rests on it.
- `init_baseline(init[members, seeds_init], trained[members])`: the trained members' mean
  against the means of n_members random-initialisation draws (one per member, from its
  own architecture's draws); p = (1 + #{bootstrap means >= trained mean}) / (B + 1), but
  at least 1 / (S + 1) for S initialisations (the bootstrap cannot resolve more than its
  sample), and `beats_init` is p <= 0.05 (so it needs S >= 19).

Non-finite values (e.g. the matched CMNI without labels) give None fields and a
`method` that says why; the results are JSON-ready (summary.json).
"""

import math

import numpy as np

ALPHA = 0.05
BOOTSTRAP_SEED = 0  # the resampling is deterministic: a re-analysis writes the same CI
EXACT_SIGN_FLIP_SEEDS = 40  # up to this many seeds every sign pattern is counted (two halves of 2^20)
SIGN_FLIP_SAMPLES = 1 << 16  # beyond: this many random sign patterns (never met in practice)
# Student's t quantile t_{df, 0.975} for df = 1..30 (beyond: the Cornish-Fisher expansion).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def t975(df: int) -> float:
    """Student's t 97.5 % quantile with `df` degrees of freedom."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def expanded_alpha(n: int) -> float:
    """The two-sided level at which an n-sample percentile bootstrap of a mean gives a 95 %
    interval (Hesterberg's expanded percentile interval); 0.05 as n grows."""
    z = math.sqrt(n / (n - 1)) * t975(n - 1)
    return math.erfc(z / math.sqrt(2))  # 2 * Phi(-z)


def bootstrap_mean_ci(x, *, seed: int = BOOTSTRAP_SEED, resamples: int = 10000) -> tuple[float, float]:
    """Expanded percentile bootstrap nominal 95 % CI of the mean of x [n >= 2] (module docstring: it covers less at small n)."""
    x = np.asarray(x, float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (resamples, len(x)))].mean(axis=1)
    a = expanded_alpha(len(x))
    lo, hi = np.quantile(means, [a / 2, 1 - a / 2])
    return float(lo), float(hi)


def leave_one_out_peaks(values) -> np.ndarray:
    """int[seeds]: the checkpoint at which the mean curve of the other seeds peaks.
    values [checkpoints, seeds >= 2]."""
    values = np.asarray(values, float)
    seeds = values.shape[1]
    others = (values.sum(axis=1, keepdims=True) - values) / (seeds - 1)  # [checkpoints, seeds]
    return np.argmax(others, axis=0)


def _signed_sums(x: np.ndarray) -> np.ndarray:
    """float[2^k]: sum_i s_i x_i for every sign pattern s of x [k]."""
    bits = (np.arange(1 << x.size)[:, None] >> np.arange(x.size)) & 1
    return (1 - 2 * bits) @ x


def sign_flip_p(x, *, seed: int = BOOTSTRAP_SEED) -> float:
    """The one-sided sign-flip p-value of mean(x) > 0: the share of the 2^n sign patterns s
    with sum(s x) >= sum(x), exact for n <= EXACT_SIGN_FLIP_SEEDS (the two halves' signed
    sums, one sorted, counted pair by pair with a binary search); beyond, (1 + #) / (B + 1)
    over B random patterns. Sums within 1e-9 of the observed one count as ties (a zero
    drop flips to itself, so both of its patterns count)."""
    x = np.asarray(x, float)
    observed = x.sum()
    tol = 1e-9 * max(float(np.abs(x).sum()), 1e-300)
    if x.size <= EXACT_SIGN_FLIP_SEEDS:
        half = x.size // 2
        first, second = _signed_sums(x[:half]), np.sort(_signed_sums(x[half:]))
        count = (second.size - np.searchsorted(second, observed - tol - first, side="left")).sum()
        return float(count) / 2.0**x.size
    signs = 1 - 2 * np.random.default_rng(seed).integers(0, 2, (SIGN_FLIP_SAMPLES, x.size))
    return (1 + int((signs @ x >= observed - tol).sum())) / (SIGN_FLIP_SAMPLES + 1)


def rise_and_fall(epochs, values, *, seed: int = BOOTSTRAP_SEED, resamples: int = 10000) -> dict:
    """The rise-and-fall test over seeds. epochs [checkpoints]; values [checkpoints, seeds].
    Returns {peak_epoch, drop, p_sign_flip, ci95: [lo, hi] (nominal), seeds, reproduced,
    method, per_seed_drop} (see the module docstring); peak_epoch is the argmax of the
    all-seed mean curve; `reproduced` is p_sign_flip <= ALPHA."""
    epochs = np.asarray(epochs)
    values = np.asarray(values, float)
    seeds = values.shape[1]
    out = {"peak_epoch": None, "drop": None, "p_sign_flip": None, "ci95": [None, None], "seeds": int(seeds), "reproduced": False, "per_seed_drop": []}
    if not np.isfinite(values).all() or not values.size:
        return {**out, "method": "not tested: the values are not all finite"}
    out["peak_epoch"] = int(epochs[np.argmax(values.mean(axis=1))])
    if seeds < 2:
        drops = values.max(axis=0) - values[-1]
        method = "cannot be tested with 1 seed (a test over seeds needs at least 2; drop: the seed's own peak minus its final value, biased upward)"
        return {**out, "drop": float(drops.mean()), "per_seed_drop": drops.tolist(), "method": method}
    peaks = leave_one_out_peaks(values)
    drops = values[peaks, np.arange(seeds)] - values[-1]
    p = sign_flip_p(drops, seed=seed)
    lo, hi = bootstrap_mean_ci(drops, seed=seed, resamples=resamples)
    exact = "exact" if seeds <= EXACT_SIGN_FLIP_SEEDS else f"{SIGN_FLIP_SAMPLES} random sign patterns of the"
    method = (
        f"peak of each seed chosen on the mean curve of the other seeds (leave-one-seed-out); drop = value at that peak minus "
        f"the final value; reproduced: one-sided sign-flip test of the {seeds} drops ({exact} 2^{seeds} sign patterns), "
        f"p <= {ALPHA}; ci95: nominal 95 % expanded percentile bootstrap over seeds ({resamples} resamples), descriptive "
        f"(covers about 90 % at 5 seeds)"
    )
    return {**out, "drop": float(drops.mean()), "p_sign_flip": p, "ci95": [lo, hi], "reproduced": bool(p <= ALPHA), "per_seed_drop": drops.tolist(), "method": method}


def init_baseline(init, trained, *, seed: int = BOOTSTRAP_SEED, resamples: int = 10000) -> dict:
    """Trained members against random initialisation. init [members, seeds_init]: the CMNI
    of random initialisations of each member's architecture; trained [members]: each
    member's value at its selected checkpoint. Returns {mean, sd (over all init values),
    trained_mean, p_mean_vs_init, beats_init, init_seeds, members, method}."""
    init = np.asarray(init, float)
    trained = np.asarray(trained, float)
    members, draws = init.shape
    out = {"mean": None, "sd": None, "trained_mean": None, "p_mean_vs_init": None, "beats_init": False, "init_seeds": int(draws), "members": int(members)}
    if not draws:
        return {**out, "method": "not tested: no random initialisations (analysis.init_seeds = 0)"}
    if not (np.isfinite(init).all() and np.isfinite(trained).all()):
        return {**out, "method": "not tested: the values are not all finite"}
    rng = np.random.default_rng(seed)
    means = init[np.arange(members), rng.integers(0, draws, (resamples, members))].mean(axis=1)
    trained_mean = float(trained.mean())
    # The bootstrap resamples only `draws` values per member, so it cannot resolve a p below
    # 1 / (draws + 1): a trained mean above every initialisation gets that, not 1 / (B + 1).
    p = max((1 + int((means >= trained_mean).sum())) / (resamples + 1), 1 / (draws + 1))
    method = (
        f"p = share of {resamples} means of {members} random-init draws (one per member, from its architecture's "
        f"{draws} initialisations) at or above the trained members' mean, at least 1/{draws + 1} (the resolution of "
        f"{draws} initialisations); beats_init: p <= {ALPHA}"
    )
    return {**out, "mean": float(init.mean()), "sd": float(init.std(ddof=1)) if init.size > 1 else 0.0, "trained_mean": trained_mean,
            "p_mean_vs_init": p, "beats_init": bool(p <= ALPHA), "method": method}  # fmt: skip


def rise_and_fall_words(entry: dict) -> str:
    """The verdict of a `rise_and_fall` result in words, never stronger than the statistic:
    the sign-flip test's p (the nominal bootstrap CI is not a verdict)."""
    seeds = entry.get("seeds", 0)
    p = entry.get("p_sign_flip")
    if entry.get("drop") is None or (seeds >= 2 and p is None):
        return entry.get("method", "not tested")
    if seeds < 2:
        return "cannot be tested with 1 seed"
    test = f"one-sided sign-flip test over {seeds} seeds, p = {p:.3g}"
    if entry.get("reproduced"):
        return f"drop reproduced ({test})"
    if 0.5**seeds > ALPHA:
        return f"not shown ({test}; with {seeds} seeds p cannot go below 1/{2**seeds}: at least 5 seeds are needed)"
    if entry["drop"] < 0:
        return f"not shown ({test}; the mean final value is above the peak's)"
    return f"not shown ({test})"


def init_baseline_words(entry: dict) -> str:
    """The verdict of an `init_baseline` result in words."""
    p = entry.get("p_mean_vs_init")
    if p is None:
        return entry.get("method", "not tested")
    test = f"p = {p:.3g}, bootstrap of the {entry.get('members', '?')} members' mean against random-init draws"
    if entry.get("beats_init"):
        return f"above the random-init null ({test})"
    below = " (below the random-init mean)" if entry["trained_mean"] < entry["mean"] else ""
    return f"not above the random-init null ({test}){below}"
