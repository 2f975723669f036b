"""Test / train / validation split (spec §5.8)."""

import jax
import jax.numpy as jnp
import numpy as np

from mirror.errors import DatasetError

TRAIN, VALIDATION, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "validation", "test")


def holdout_label_counts(test_rows: int, shares) -> np.ndarray:
    """Rows of each label in the test set; rounding leftovers go to the largest shares."""
    exact = np.asarray(shares, np.float64) * test_rows
    counts = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - counts), kind="stable")[: test_rows - counts.sum()]:
        counts[i] += 1
    return counts


def assign_splits(key: jax.Array, labels: np.ndarray, test_rows: int, shares, val_fraction: float) -> np.ndarray:
    """int8[rows] split id per row: TEST rows drawn without replacement with exact label
    counts, the rest shuffled and cut into train and validation (disjoint by construction).
    """
    counts = holdout_label_counts(test_rows, shares)
    available = np.bincount(labels, minlength=len(counts))
    short = np.flatnonzero(available < counts)
    if short.size:
        lab = int(short[0])
        raise DatasetError(
            f"not enough rows of label {lab} for the test set: need {counts[lab]}, have {available[lab]}; "
            "generate more rows (data.rows) or lower data.test_rows"
        )
    # numpy's PCG64, seeded from the jax key: as deterministic, and far faster than
    # jax.random.permutation for millions of rows on a CPU.
    rng = np.random.Generator(np.random.PCG64(np.asarray(jax.random.bits(key, (4,), jnp.uint32)).tolist()))
    splits = np.full(labels.shape[0], TRAIN, np.int8)
    for lab, count in enumerate(counts):  # four labels: a loop over labels, not rows
        candidates = np.flatnonzero(labels == lab)
        splits[rng.choice(candidates, size=int(count), replace=False)] = TEST
    rest = np.flatnonzero(splits != TEST)
    shuffled = rest[rng.permutation(rest.shape[0])]
    splits[shuffled[int(round(len(rest) * (1 - val_fraction))) :]] = VALIDATION
    return splits
