"""Test / train / validation split (spec §5.8).

The test set's label shares are `data.test_label_shares`. A label with a share but no
rows at all cannot be met by generating more rows when the env never produces it (help at
D = 0: `mirror.data.label_reach`). The supervised dataset is the experiment, so there it
stays an error naming the setting; an RL run's probe set (a) is only a set of states to
measure the CMNI on, so `holdout_label_shares(..., drop_absent=True)` sets such a label's
share to 0 and scales the others up to sum to 1 (the test set keeps `test_rows` rows,
in the proportions the config asked for among the labels the env can produce).
"""

import jax
import jax.numpy as jnp
import numpy as np

from mirror.base.errors import DatasetError
from mirror.env.constants import ACTION_NAMES

TRAIN, VALIDATION, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "validation", "test")


def holdout_label_counts(test_rows: int, shares) -> np.ndarray:
    """Rows of each label in the test set; rounding leftovers go to the largest shares."""
    exact = np.asarray(shares, np.float64) * test_rows
    counts = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - counts), kind="stable")[: test_rows - counts.sum()]:
        counts[i] += 1
    return counts


def absent_label_error(label: int, count: int, share: float, reason: str | None, rows: int | None = None) -> DatasetError:
    """The error for a label the test set needs `count` rows of but that has none: the
    setting that forbids it (`reason`, see `mirror.data.label_reach`) when known."""
    field = f"data.test_label_shares[{label}] = {share:g}"
    if reason is not None:
        return DatasetError(f"{reason}; the test set needs {count} rows of it ({field}): set that share to 0, or change the setting")
    among = "" if rows is None else f" among the {rows:,} rows"
    return DatasetError(
        f"no rows of label {ACTION_NAMES[label]} ({label}){among}, and the test set needs {count} ({field}): "
        "generate more rows (data.rows), or set that share to 0"
    )


def require_possible_labels(test_rows: int, shares, reasons: dict[int, str]) -> None:
    """Raise before any work when the test set needs rows of a label the settings never
    produce (`reasons`: label -> why, `mirror.data.label_reach.impossible_labels`)."""
    counts = holdout_label_counts(test_rows, shares)
    for label in sorted(reasons):
        if counts[label] > 0:
            raise absent_label_error(label, int(counts[label]), float(shares[label]), reasons[label])


def holdout_label_shares(
    labels: np.ndarray, test_rows: int, shares, *, drop_absent: bool, reasons=None
) -> tuple[np.ndarray, dict[str, str]]:
    """(float64[4] shares the test set uses, {label name: why it was dropped}).

    A label the test set needs rows of but that has no rows at all: with `drop_absent`,
    its share is set to 0 and the others are divided by their sum; without, a DatasetError.
    `reasons` (label -> why) explains labels the settings never produce. Whenever the
    strict rule succeeds, both return `shares` unchanged.
    """
    reasons = reasons or {}
    shares = np.asarray(shares, np.float64)
    counts = holdout_label_counts(test_rows, shares)
    absent = np.flatnonzero((np.bincount(labels, minlength=len(shares)) == 0) & (counts > 0))
    if absent.size == 0:
        return shares, {}
    if not drop_absent:
        label = int(absent[0])
        raise absent_label_error(label, int(counts[label]), float(shares[label]), reasons.get(label), len(labels))
    kept = shares.copy()
    kept[absent] = 0.0
    if kept.sum() == 0:
        names = [ACTION_NAMES[i] for i in np.flatnonzero(shares > 0)]
        raise DatasetError(f"no rows of any label with a test share (data.test_label_shares gives shares only to {names})")
    dropped = {
        ACTION_NAMES[i]: reasons.get(int(i), f"no rows of label {ACTION_NAMES[i]} among the {len(labels):,} rows") for i in absent
    }
    return kept / kept.sum(), dropped


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
