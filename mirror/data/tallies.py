"""The manifest's tallies: counts computed from a dataset's arrays, written beside them and
recomputed on every load, so an edited manifest can never describe a dataset that is not
there.

Every array is covered: the row count of each by its shape (`store.load_dataset`), and
- `counts`: rows per split x label x scenario (splits, labels, scenarios);
- `idle_shown_counts`: rows where Frog / Toad shows an idle code (idle_shown);
- `position_counts`: rows per true position of Frog and of Toad (positions);
- `phase_coverage`: rows per round of the episode (episode_rounds), and the share of rows
  in each tenth of the episode: how evenly the dataset covers an episode's phases.
The inputs are covered by the row count and their sha256.
"""

import numpy as np

from mirror.base.errors import DatasetError
from mirror.data.labels import SCENARIO_NAMES
from mirror.data.split import SPLIT_NAMES
from mirror.env.constants import ACTION_NAMES

PLAYERS = ("frog", "toad")
TENTHS = 10


def counts_table(arrays: dict) -> dict:
    """{split: {label: {scenario: count}}} with names from the spec."""
    table = {}
    key = (arrays["splits"].astype(np.int64) * 4 + arrays["labels"]) * 4 + arrays["scenarios"]
    counts = np.bincount(key, minlength=len(SPLIT_NAMES) * 16).reshape(len(SPLIT_NAMES), 4, 4)
    for s, split in enumerate(SPLIT_NAMES):
        table[split] = {
            ACTION_NAMES[a]: {SCENARIO_NAMES[c]: int(counts[s, a, c]) for c in range(4)} for a in range(4)
        }
    return table


def phase_coverage(rounds: np.ndarray, episode_rounds: int) -> dict:
    """Rows per round of the episode (rounds int[rows] in [0, episode_rounds)) and the share
    of rows in each tenth of the episode (round * 10 // episode_rounds), to 4 decimals."""
    return coverage_of_counts(np.bincount(np.asarray(rounds, np.int64), minlength=episode_rounds))


def coverage_of_counts(per_round: np.ndarray) -> dict:
    """`phase_coverage` from the rows per round int[episode_rounds]."""
    per_round = np.asarray(per_round, np.int64)
    episode_rounds = len(per_round)
    tenth = np.arange(episode_rounds) * TENTHS // episode_rounds
    per_tenth = np.bincount(tenth, weights=per_round, minlength=TENTHS)
    total = max(int(per_round.sum()), 1)
    return {
        "episode_rounds": int(episode_rounds),
        "rows_per_round": [int(n) for n in per_round],
        "share_per_tenth": [round(float(n) / total, 4) for n in per_tenth],
    }


def tallies(arrays: dict, world_width: int, episode_rounds: int) -> dict:
    """Every tally of the manifest, from the arrays (see the module docstring)."""
    positions = np.asarray(arrays["positions"], np.int64)
    idle = np.asarray(arrays["idle_shown"], bool)
    return {
        "counts": counts_table(arrays),
        "idle_shown_counts": {p: int(idle[:, i].sum()) for i, p in enumerate(PLAYERS)},
        "position_counts": {
            p: [int(n) for n in np.bincount(positions[:, i], minlength=world_width)] for i, p in enumerate(PLAYERS)
        },
        "phase_coverage": phase_coverage(arrays["episode_rounds"], episode_rounds),
    }


def check_ranges(path, arrays: dict, world_width: int, episode_rounds: int) -> None:
    """Positions in [0, W) and episode rounds in [0, episode_rounds), else a DatasetError
    naming the file (before the tallies, which could not count them)."""
    for name, top in (("positions", world_width), ("episode_rounds", episode_rounds)):
        values = arrays[name]
        if values.size and (values.min() < 0 or values.max() >= top):
            raise DatasetError(
                f"{path / (name + '.npy')} holds values in [{values.min()}, {values.max()}]; expected [0, {top - 1}]"
            )


def check_tallies(manifest_file, recorded: dict, actual: dict) -> None:
    """Every tally of `actual` must be in the manifest and equal; names the field that is not."""
    for field, value in actual.items():
        if field not in recorded:
            raise DatasetError(f"{manifest_file}: the field {field} is missing; regenerate the dataset (mirror generate --force)")
        _check(manifest_file, recorded[field], value, field)


def _check(manifest_file, recorded, actual, field: str) -> None:
    fix = "the manifest was edited: restore it or regenerate the dataset (mirror generate --force)"
    if isinstance(actual, dict):
        if not isinstance(recorded, dict) or set(recorded) != set(actual):
            raise DatasetError(f"{manifest_file}: {field} should have the keys {sorted(actual)}; {fix}")
        for key in actual:
            _check(manifest_file, recorded[key], actual[key], f"{field}.{key}")
    elif isinstance(actual, list) and isinstance(recorded, list) and len(recorded) == len(actual):
        for i, (r, a) in enumerate(zip(recorded, actual)):  # name the entry, not the whole list
            _check(manifest_file, r, a, f"{field}[{i}]")
    elif recorded != actual or type(recorded) is bool:
        shown = f"a list of {len(actual)}" if isinstance(actual, list) else actual
        raise DatasetError(f"{manifest_file}: {field} = {recorded!r} but the arrays hold {shown}; {fix}")
