"""Verdicts over seeds: does the CMNI rise and fall, and does training beat random init?

One trained model cannot tell a CMNI that rises and falls from a flat, noisy one: its
final value sits below its own peak in most runs of either kind. These tests treat the
members of a population trained on the same data (seeds) as replicates (pure NumPy):

- `rise_and_fall(epochs, values[checkpoints, seeds])`: the drop from the peak to the final
  checkpoint. To avoid selection bias (picking a seed's peak on its own noise inflates
  its drop), the peak of seed s is the argmax of the mean curve of the OTHER seeds
  (leave-one-seed-out); drop_s = value_s[peak_-s] - value_s[final] and `drop` is the mean
  of drop_s. Its 95 % CI is a percentile bootstrap over seeds of that mean, expanded for
  small samples (Hesterberg 2015, "What teachers should know about the bootstrap", §5):
  the percentiles are taken at alpha' = 2 Phi(-sqrt(n / (n - 1)) t_{n-1, 0.975}) instead
  of 0.05, because the plain percentile interval of a mean of 5 values covers about 88 %,
  not 95 % (it uses the biased sd and z in place of t). `reproduced` is true only when
  the CI's lower end is above 0. Measured on planted curves with normal noise
  (tests/test_seed_verdicts.py): the interval covers the true drop in about 90 % of
  repetitions at 5 seeds and near 95 % at 20; a bootstrap cannot reach beyond the seeds'
  extreme drops, which a t interval at n = 5 often would. On flat noisy curves the test
  says `reproduced` in about 6 % of repetitions (nominal 2.5 %: the leave-one-out peaks
  make the seeds' drops slightly correlated), against about 95 % for the old one-model
  "final below peak" verdict.
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
    """Expanded percentile bootstrap 95 % CI of the mean of x [n >= 2]."""
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


def rise_and_fall(epochs, values, *, seed: int = BOOTSTRAP_SEED, resamples: int = 10000) -> dict:
    """The rise-and-fall test over seeds. epochs [checkpoints]; values [checkpoints, seeds].
    Returns {peak_epoch, drop, ci95: [lo, hi], seeds, reproduced, method, per_seed_drop}
    (see the module docstring); peak_epoch is the argmax of the all-seed mean curve."""
    epochs = np.asarray(epochs)
    values = np.asarray(values, float)
    seeds = values.shape[1]
    out = {"peak_epoch": None, "drop": None, "ci95": [None, None], "seeds": int(seeds), "reproduced": False, "per_seed_drop": []}
    if not np.isfinite(values).all() or not values.size:
        return {**out, "method": "not tested: the values are not all finite"}
    out["peak_epoch"] = int(epochs[np.argmax(values.mean(axis=1))])
    if seeds < 2:
        drops = values.max(axis=0) - values[-1]
        method = "cannot be tested with 1 seed (a bootstrap over seeds needs at least 2; drop: the seed's own peak minus its final value, biased upward)"
        return {**out, "drop": float(drops.mean()), "per_seed_drop": drops.tolist(), "method": method}
    peaks = leave_one_out_peaks(values)
    drops = values[peaks, np.arange(seeds)] - values[-1]
    lo, hi = bootstrap_mean_ci(drops, seed=seed, resamples=resamples)
    method = (
        f"peak of each seed chosen on the mean curve of the other seeds (leave-one-seed-out); drop = value at that peak minus "
        f"the final value; 95 % CI: expanded percentile bootstrap over {seeds} seeds ({resamples} resamples)"
    )
    return {**out, "drop": float(drops.mean()), "ci95": [lo, hi], "reproduced": bool(lo > 0), "per_seed_drop": drops.tolist(), "method": method}


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
    """The verdict of a `rise_and_fall` result in words, never stronger than the statistic."""
    seeds = entry.get("seeds", 0)
    lo, hi = entry.get("ci95", [None, None])
    if entry.get("drop") is None or (seeds >= 2 and lo is None):
        return entry.get("method", "not tested")
    if seeds < 2:
        return "cannot be tested with 1 seed"
    if entry.get("reproduced"):
        return f"drop reproduced: the 95 % bootstrap CI over {seeds} seeds excludes 0"
    if hi < 0:
        return f"not shown: the 95 % CI over {seeds} seeds lies below 0 (the final value is higher than at the peak)"
    return f"not shown: the 95 % CI over {seeds} seeds includes 0"


def init_baseline_words(entry: dict) -> str:
    """The verdict of an `init_baseline` result in words."""
    p = entry.get("p_mean_vs_init")
    if p is None:
        return entry.get("method", "not tested")
    if entry.get("beats_init"):
        return f"above the random-init null (p = {p:.3g})"
    below = " (below the random-init mean)" if entry["trained_mean"] < entry["mean"] else ""
    return f"not above the random-init null (p = {p:.3g}){below}"
