"""Test / train / validation split (spec §5.8)."""

import jax
import jax.numpy as jnp
import numpy as np

TRAIN, VALIDATION, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "validation", "test")


def test_label_counts(test_rows: int, shares) -> np.ndarray:
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
    counts = test_label_counts(test_rows, shares)
    available = np.bincount(labels, minlength=len(counts))
    short = np.flatnonzero(available < counts)
    if short.size:
        lab = int(short[0])
        raise ValueError(
            f"not enough rows of label {lab} for the test set: need {counts[lab]}, have {available[lab]}; "
            "generate more rows (data.rows) or lower data.test_rows"
        )
    test_key, val_key = jax.random.split(key)
    # A random priority per row: the lowest priorities of each label form the test set.
    priority = np.asarray(jax.random.uniform(test_key, (labels.shape[0],)))
    order = np.lexsort((priority, labels))
    starts = np.concatenate([[0], np.cumsum(available)[:-1]])
    splits = np.full(labels.shape[0], TRAIN, np.int8)
    for lab, count in enumerate(counts):  # four labels: a loop over labels, not rows
        splits[order[starts[lab] : starts[lab] + count]] = TEST
    rest = np.flatnonzero(splits != TEST)
    shuffled = rest[np.asarray(jax.random.permutation(val_key, rest.shape[0]))]
    splits[shuffled[int(round(len(rest) * (1 - val_fraction))) :]] = VALIDATION
    return splits
