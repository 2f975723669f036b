"""Corrections to the first theory experiment's reading (issue of 2026-12-07): analyses
that respect how its trials share seeds and settings, added beside the registered tests
(`mirror.analysis.hypotheses`), never in place of them.

    sensitivity_tests(trials) -> {"h3a_within", "h5_equivalence", "h5_blocks",
                                  "seed_effect", "h6_seed_means", "h6_by_d", "power_resampled"}

On the same per-trial numbers as `theory_tests` (one number per trial):

- **H3a within settings**: the registered H3a permutes cmni_a across all trials, so a
  difference *between* settings (w > 0 trials help and differ in CMNI) carries it. Here
  cmni_a is permuted within each (D, I, w) setting only, and the mean within-setting
  Spearman rho is reported: is there a trial-level association?
- **H5 as equivalence**: "not above random init" is what H5 tested; "what an untrained
  network shows" is an equivalence claim, tested here with two one-sided sign-flip tests
  (TOST) of mean z_init inside (-margin, +margin), margin 0.5 (half the random-init sd).
- **Shared seeds**: the seed index repeats in every setting, and a trial's random-init null
  depends on its architecture's draws for its seed and on its probe set (D, I), not on w:
  the 90 z_init values rest on the (D, I, seed) blocks. `h5_blocks` repeats H5 on the block
  means; `seed_effect` tests whether the seed index matters once setting means are removed
  (the between-seed sum of squares of the residuals against seed labels permuted within
  settings); `h6_seed_means` repeats H6 on the helping trials' mean gap per seed index.
- **H6 by D**: the mean ablation gap at each D, with a 95 % t interval over trials.
- **Power by resampling**: the registered power assumed additive normal noise; help_e0 is
  zero-bounded and skewed. Here H1's power is simulated by resampling the observed w = 0
  values within their veil stratum and multiplying each by (1 + r D) (a proportional
  rise), and H5's by resampling the centred z_init values and adding a mean effect, each
  tested as registered at its Holm level.
"""

import math

import numpy as np
from scipy import stats

from mirror.analysis.hypotheses import (
    ALPHA,
    HELPING,
    PERMUTATIONS,
    SEED,
    random_stream,
    sign_flip_test,
    spearman_rho,
    spearman_test,
    upper_p,
    within_strata_arrangements,
)

EQUIVALENCE_MARGIN = 0.5  # |mean z_init| below this: "what an untrained network shows"
POWER_DRAWS = 400  # simulated designs per effect size
H1_RISES = (0.5, 1.0, 2.0, 4.0)  # help_e0 x (1 + r D)
H5_MEANS = (0.1, 0.2, 0.3, 0.5)  # mean z_init


def group_labels(*columns) -> np.ndarray:
    """int[trials]: one label per distinct combination of the columns' values."""
    return np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)[1].reshape(-1)


def setting_labels(t: dict) -> np.ndarray:
    """int[trials]: each trial's (D, I, w) setting."""
    return group_labels(t["dependency"], t["veil"], t["partner_reward_weight"])


def _blocks(t: dict) -> np.ndarray:
    return group_labels(t["dependency"], t["veil"], t["seed"])


def h3a_within(t: dict, *, permutations: int = PERMUTATIONS, seed: int = SEED) -> dict:
    settings = setting_labels(t)
    keep = np.isfinite(t["help_e0"]) & np.isfinite(t["cmni_a"])
    test = spearman_test(t["cmni_a"][keep], t["help_e0"][keep], settings[keep], permutations=permutations, seed=seed, stream="h3a_within")
    rhos = [spearman_rho(t["help_e0"][keep & (settings == s)], t["cmni_a"][keep & (settings == s)]) for s in np.unique(settings[keep])]
    rhos = [r for r in rhos if math.isfinite(r)]
    return {"test": "Spearman rho(help_e0, cmni_a), cmni_a permuted within each (D, I, w) setting, one-sided",
            "rho": test.statistic, "p": test.p, "settings": len(rhos), "mean_within_setting_rho": float(np.mean(rhos)) if rhos else None}  # fmt: skip


def tost(values, margin: float, *, permutations: int = PERMUTATIONS, seed: int = SEED, stream: str = "tost") -> dict:
    """Two one-sided sign-flip tests that the mean lies in (-margin, margin): p = the larger."""
    values = np.asarray(values, np.float64)
    above = sign_flip_test(values + margin, permutations=permutations, seed=seed, stream=stream + "_low")  # mean > -margin
    below = sign_flip_test(margin - values, permutations=permutations, seed=seed, stream=stream + "_high")  # mean < margin
    p = max(above.p, below.p)
    return {"mean": float(values.mean()), "margin": margin, "units": len(values), "p_low": above.p, "p_high": below.p, "p": p,
            "equivalent": bool(p <= ALPHA)}  # fmt: skip


def h5_blocks(t: dict, *, permutations: int = PERMUTATIONS, seed: int = SEED) -> dict:
    blocks = _blocks(t)
    means = np.asarray([np.nanmean(t["z_init"][blocks == b]) for b in np.unique(blocks)])
    test = sign_flip_test(means, permutations=permutations, seed=seed, stream="h5_blocks")
    return {"test": "sign-flip over the (D, I, seed) blocks' mean z_init (the trials that share a random-init null)",
            "blocks": len(means), "mean": test.statistic, "p": test.p,
            "equivalence": tost(means, EQUIVALENCE_MARGIN, permutations=permutations, seed=seed, stream="tost_blocks")}  # fmt: skip


def seed_effect(t: dict, measure: str, *, permutations: int = PERMUTATIONS, seed: int = SEED) -> dict:
    """Does the seed index matter once setting means are removed? The residuals' between-seed
    sum of squares against seed labels permuted within settings (one-sided)."""
    settings, seeds, values = setting_labels(t), t["seed"], np.asarray(t[measure], np.float64)
    keep = np.isfinite(values)
    residual = values.copy()
    for s in np.unique(settings):
        m = keep & (settings == s)
        residual[m] -= values[m].mean()

    seeds, residual = seeds[keep], residual[keep]
    levels = np.unique(seeds)

    def statistic(labels):  # labels [K, n] -> [K]: sum over seed indices of (residual sum)^2 / count
        hit = labels[..., None] == levels  # [K, n, seeds]
        sums = np.einsum("kns,n->ks", hit, residual)
        return np.sum(sums**2 / np.maximum(hit.sum(1), 1), axis=-1)

    observed = float(statistic(seeds[None])[0])
    arrangements, exact = within_strata_arrangements(seeds, settings[keep], permutations=permutations, rng=random_stream(seed, "seed_effect_" + measure))
    return {"measure": measure, "between_seed_ss": observed, "p": float(upper_p(observed, statistic(arrangements), exact))}


def helping_gaps(t: dict, help_measure: str = "help_e0") -> np.ndarray | None:
    """bool[trials]: H6's trials (helping, help_measure >= HELPING, with a finite
    ablation_gap), or None when there is none."""
    gap = t.get("ablation_gap")
    if gap is None:
        return None
    keep = np.isfinite(gap) & (t[help_measure] >= HELPING)
    return keep if keep.any() else None


def h6_seed_means(t: dict, *, permutations: int = PERMUTATIONS, seed: int = SEED) -> dict | None:
    keep = helping_gaps(t)
    if keep is None:
        return None
    gap = t["ablation_gap"]
    means = np.asarray([gap[keep & (t["seed"] == k)].mean() for k in np.unique(t["seed"][keep])])
    test = sign_flip_test(means, permutations=permutations, seed=seed, stream="h6_seed_means")
    return {"test": "sign-flip over the seed indices' mean ablation gap (helping trials)", "seeds": len(means),
            "mean": test.statistic, "p": test.p, "exact": test.exact}  # fmt: skip


def h6_by_d(t: dict, help_measure: str = "help_e0") -> dict | None:
    keep = helping_gaps(t, help_measure)
    if keep is None:
        return None
    gap, out = t["ablation_gap"], {}
    for d in np.unique(t["dependency"][keep]):
        g = gap[keep & (t["dependency"] == d)]
        half = stats.t.ppf(0.975, len(g) - 1) * g.std(ddof=1) / np.sqrt(len(g)) if len(g) > 1 else float("nan")
        out[f"{d:g}"] = {"trials": len(g), "mean_gap": float(g.mean()), "ci95": [float(g.mean() - half), float(g.mean() + half)]}
    return out


def resampled_power(
    t: dict, levels: dict, help_measure: str, trends=("H1",), *, rises, means, draws: int, seed: int, stream: str,
) -> dict:  # fmt: skip
    """The power of the trend tests `trends` (H1: help rising with D at w = 0; H2: with w at
    D = 0) and of H5 at their Holm levels `levels`, by resampling the observed per-trial
    values: the trials' help_measure resampled within veil and multiplied by (1 + r x) (a
    proportional rise; x is D or w), the centred z_init resampled plus a mean. Returns
    {"H1": {r: power}, ..., "H5": {mean: power}}."""
    rng = random_stream(seed, stream)
    out = {}
    for name in trends:
        axis, other = ("dependency", "partner_reward_weight") if name == "H1" else ("partner_reward_weight", "dependency")
        pick = (t[other] == 0) & np.isfinite(t[help_measure])
        x, veil, y = t[axis][pick], t["veil"][pick], t[help_measure][pick]
        out[name] = {}
        for r in rises:
            hits = 0
            for i in range(draws):
                sample = np.empty_like(y)
                for v in np.unique(veil):
                    m = veil == v
                    sample[m] = rng.choice(y[m], size=int(m.sum()))
                hits += spearman_test(x, sample * (1 + r * x), veil, permutations=400, seed=seed, stream=f"{name.lower()}_power_{i}").p <= levels[name]
            out[name][f"{r:g}"] = hits / draws if draws else None
    z = t["z_init"][np.isfinite(t["z_init"])]
    centred = z - z.mean() if len(z) else z
    out["H5"] = {}
    for effect in means:
        hits = sum(
            sign_flip_test(rng.choice(centred, size=len(centred)) + effect, permutations=400, seed=seed, stream=f"h5_power_{i}").p <= levels["H5"]
            for i in range(draws if len(z) else 0)
        )  # fmt: skip
        out["H5"][f"{effect:g}"] = hits / draws if draws and len(z) else None
    return out


def power_resampled(t: dict, levels: dict, *, draws: int = POWER_DRAWS, seed: int = SEED) -> dict:
    """H1 and H5's power by resampling the observed per-trial values (module docstring), at
    the Holm levels `levels` {"H1": a, "H5": a} of the registered run."""
    out = {"draws": draws, "H1": {}, "H5": {}}
    out["design"] = {"H1": "the w = 0 trials' help_e0 resampled within veil, times (1 + r D); registered test at its Holm level",
                     "H5": "the trials' z_init, centred and resampled, plus a mean effect; sign-flip at its Holm level"}  # fmt: skip
    if not draws:
        return out
    return {**out, **resampled_power(t, levels, "help_e0", ("H1",), rises=H1_RISES, means=H5_MEANS, draws=draws, seed=seed, stream="power_resampled")}


def sensitivity_tests(t: dict, levels: dict, *, permutations: int = PERMUTATIONS, seed: int = SEED, power_draws: int = POWER_DRAWS) -> dict:
    """Every analysis of the module docstring, JSON-ready. t: measure -> float[trials] (as
    `theory_tests` takes); levels: the registered run's Holm levels of H1 and H5."""
    t = {k: (None if v is None else np.asarray(v, np.float64)) for k, v in t.items()}
    return {
        "h3a_within": h3a_within(t, permutations=permutations, seed=seed),
        "h5_equivalence": tost(t["z_init"][np.isfinite(t["z_init"])], EQUIVALENCE_MARGIN, permutations=permutations, seed=seed),
        "h5_blocks": h5_blocks(t, permutations=permutations, seed=seed),
        "seed_effect": [seed_effect(t, m, permutations=permutations, seed=seed) for m in ("cmni_a", "z_init")],
        "h6_seed_means": h6_seed_means(t, permutations=permutations, seed=seed),
        "h6_by_d": h6_by_d(t),
        "power_resampled": power_resampled(t, levels, draws=power_draws, seed=seed),
    }
