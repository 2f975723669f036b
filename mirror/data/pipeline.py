"""The dataset pipeline of spec §5, end to end: rollout -> process -> label -> scenario ->
model input -> dedupe -> split -> disk, cached by a hash of the generating config.

Generation runs in chunks: each chunk is one jitted call (rollout of `games` games for
`rounds_per_chunk` Frog decisions plus processing and labelling); only the chunk's
arrays travel to the host, where new unique rows are kept. Chunks continue the same
games, and stop as soon as the requested number of unique rows is reached. Before the
first chunk the games' phases are staggered (`rollout.burn_in`), so every chunk, and
so any number of rows, covers every round of an episode evenly.

Next to each row the pipeline keeps metadata that is never a model input: its scenario,
idle codes, Frog's and Toad's true positions and its round within the episode.

The test split's label shares are `data.test_label_shares`; a label the settings never
produce (`label_reach.impossible_labels`) is an error before any work, naming the setting.
`drop_absent_labels=True` (an RL run's probe set (a)) drops the share of a label with no
rows instead (`split.holdout_label_shares`). The manifest records the shares used
(`test_label_shares`) and the labels dropped (`test_labels_dropped`: name -> why); the
bytes equal the strict build's whenever that one succeeds, so both share one cache entry.
"""

import dataclasses
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from mirror.base.files import require_writable
from mirror.base.hashing import config_hash
from mirror.data.config import DatasetSource
from mirror.data.dedupe import UniqueRows, key_bytes, row_inputs, row_keys
from mirror.data.label_reach import impossible_labels
from mirror.data.labels import frog_distress, idle_shown, oracle_label, scenario, toad_distress
from mirror.data.processing import model_inputs, process_rows
from mirror.data.rollout import episode_rounds, make_burn_in, make_collect, phase_offsets
from mirror.data.split import absent_label_error, assign_splits, holdout_label_counts, holdout_label_shares, require_possible_labels
from mirror.data.store import FORMAT_VERSION, Dataset, DatasetError, load_dataset, write_dataset
from mirror.data.tallies import coverage_of_counts
from mirror.env.constants import ACTION_NAMES, layout_of, obs_size
from mirror.env.rollout import start_games

Progress = Callable[[int, int], None]  # (unique rows so far, target)


def generating_config(config: DatasetSource) -> dict:
    """Everything that determines the dataset's bytes (and nothing that doesn't)."""
    data = dataclasses.asdict(config.data)
    data.pop("cache_dir")
    data.pop("seed")  # recorded as the effective seed below
    return {
        "format_version": FORMAT_VERSION,
        "seed": config.data_seed,
        "env": dataclasses.asdict(config.env_params),
        "data": data,
    }


def dataset_path(config: DatasetSource) -> Path:
    return Path(config.data.cache_dir).absolute() / f"frog-toad-{config_hash(generating_config(config))}"


def make_chunk_fn(config: DatasetSource):
    """`chunk(key, states) -> (states, inputs, labels, scenarios, idle_shown, positions,
    episode_rounds)` on device.

    Rollout and row processing are separate jitted programs: compiled as one, XLA fuses
    the observation building into several consumers and recomputes it (2-3x slower).
    """
    params, data = config.env_params, config.data
    collect = make_collect(params, data.games, data.rounds_per_chunk, data.behaviour_probs)
    width = params.world_width

    @jax.jit
    def label_rows(key, raw):
        rows = process_rows(key, raw.rows)
        toad_d = toad_distress(rows, raw.toad_position, width)
        labels = oracle_label(rows, toad_d, width)
        scenarios = scenario(frog_distress(rows, width), toad_d)
        # Frog's position is the row's last code (zeroed in the model input); Toad's is true state.
        positions = jnp.stack([rows[:, layout_of(rows).position], raw.toad_position], axis=-1).astype(jnp.int8)
        idle = idle_shown(rows, raw.toad_position, width)
        return model_inputs(rows), labels, scenarios, idle, positions, raw.episode_round

    def chunk(key, states):
        rollout_key, process_key = jax.random.split(key)
        states, raw = collect(rollout_key, states)
        return (states, *label_rows(process_key, raw))

    return chunk


def label_reasons(config: DatasetSource) -> dict[int, str]:
    """{label: why these settings never produce it} (`label_reach.impossible_labels`)."""
    return impossible_labels(config.env_params, config.data.behaviour_probs)


def generate_arrays(config: DatasetSource, progress: Progress | None = None, *, drop_absent_labels: bool = False) -> tuple[dict, dict]:
    """Run the pipeline in memory. Returns (arrays, stats); see the module docstring for
    `drop_absent_labels`."""
    data, params = config.data, config.env_params
    reasons = label_reasons(config)
    if not drop_absent_labels:
        require_possible_labels(data.test_rows, data.test_label_shares, reasons)
    start = time.perf_counter()
    games_key, chunks_key, split_key, phase_key = jax.random.split(jax.random.key(config.data_seed), 4)
    rounds = episode_rounds(params)
    offsets = phase_offsets(data.games, rounds)
    states = start_games(games_key, params, data.games)
    states = make_burn_in(params, data.games, data.behaviour_probs)(phase_key, states, offsets)
    chunk = make_chunk_fn(config)
    num_inputs = obs_size(params.world_width)  # 3W + 4 (100 at the spec's W = 32)
    unique = UniqueRows(key_bytes(num_inputs))
    metadata = ("labels", "scenarios", "idle_shown", "positions", "episode_rounds")
    kept = {name: [] for name in metadata}
    sampled = np.zeros(rounds, np.int64)  # raw rows per episode round, before deduplication
    raw_rows = 0
    pending = chunk(jax.random.fold_in(chunks_key, 0), states)
    for index in range(data.max_chunks):
        # Dispatch the next chunk before deduplicating this one: the device works on
        # it (asynchronously) while the host deduplicates, so the two overlap.
        upcoming = chunk(jax.random.fold_in(chunks_key, index + 1), pending[0])
        inputs, *rest = jax.device_get(pending[1:])
        columns = dict(zip(metadata, rest))
        pending = upcoming
        raw_rows += len(inputs)
        sampled += np.bincount(columns["episode_rounds"], minlength=rounds)
        before = unique.count
        new = unique.add(row_keys(inputs, columns["labels"]))[: max(data.rows - before, 0)]
        for name in metadata:
            kept[name].append(columns[name][new])
        if progress:
            progress(min(unique.count, data.rows), data.rows)
        if sum(len(x) for x in kept["labels"]) >= data.rows:
            break
    else:
        raise DatasetError(
            f"only {unique.count:,} unique rows after data.max_chunks={data.max_chunks} chunks "
            f"({raw_rows:,} raw rows); lower data.rows or raise data.max_chunks"
        )
    arrays = {name: np.concatenate(parts)[: data.rows] for name, parts in kept.items()}
    arrays["inputs"] = row_inputs(unique.kept_keys()[: data.rows], num_inputs)
    shares, dropped = holdout_label_shares(
        arrays["labels"], data.test_rows, data.test_label_shares, drop_absent=drop_absent_labels, reasons=reasons
    )
    arrays["splits"] = assign_splits(split_key, arrays["labels"], data.test_rows, shares, data.val_fraction)
    stats = {
        "test_label_shares": [float(x) for x in shares],
        "test_labels_dropped": dropped,
        "raw_rows": raw_rows,
        "chunks": index + 1,
        "turns_simulated": raw_rows * 2 + 2 * int(offsets.sum()),  # collected rounds + burn-in rounds
        "burn_in_rounds": int(offsets.sum()),
        # The rollout's rows before deduplication: even by construction. The kept rows'
        # coverage (phase_coverage, written with the arrays) is lower in the first rounds,
        # whose states repeat (the episode starts on all-solid ground).
        "sampled_share_per_tenth": coverage_of_counts(sampled)["share_per_tenth"],
        "wall_s": time.perf_counter() - start,
    }
    return arrays, stats


def build_dataset(
    config: DatasetSource, progress: Progress | None = None, force: bool = False, *, drop_absent_labels: bool = False
) -> tuple[Dataset, bool]:
    """Return the cached dataset for this config, generating it first if needed.

    Returns (dataset, reused). The directory name is a hash of the generating config.
    `drop_absent_labels`: see the module docstring (without it, a cached dataset whose
    test split dropped a label is refused like a new one would be).
    """
    path = dataset_path(config)
    if not drop_absent_labels:
        require_possible_labels(config.data.test_rows, config.data.test_label_shares, label_reasons(config))
    if path.exists() and not force:
        return _strict(load_dataset(path), config, drop_absent_labels), True
    require_writable(path.parent, "dataset cache directory (data.cache_dir)", DatasetError)  # before the work, not after
    arrays, stats = generate_arrays(config, progress, drop_absent_labels=drop_absent_labels)
    manifest = {
        "config": generating_config(config),
        "config_hash": config_hash(generating_config(config)),
        "seed": config.data_seed,
        "rows": int(len(arrays["labels"])),  # the counts and phase coverage are added by write_dataset
        "device": f"{jax.local_devices()[0].platform}: {jax.local_devices()[0].device_kind}",
        "jax_version": jax.__version__,
        **stats,
    }
    if path.exists() and not force:  # another process (a sweep shard) finished it meanwhile: same bytes
        return _strict(load_dataset(path), config, drop_absent_labels), False
    if path.exists():  # force: keep the old one until the new one is complete
        stale = path.with_name(path.name + f".old-{int(time.time())}")
        path.rename(stale)
    try:
        write_dataset(path, arrays, manifest)
    except OSError:
        if force or not path.exists():
            raise
        # Another process (a sweep shard) finished the same dataset first: same config, same bytes.
    return _strict(load_dataset(path), config, drop_absent_labels), False


def _strict(dataset: Dataset, config: DatasetSource, drop_absent_labels: bool) -> Dataset:
    """The dataset, unless its test split dropped a label that this build needs (a cached
    probe set (a) of an RL run with the same settings)."""
    dropped = dataset.manifest.get("test_labels_dropped") or {}
    if drop_absent_labels or not dropped:
        return dataset
    shares = config.data.test_label_shares
    label = ACTION_NAMES.index(next(iter(dropped)))
    count = int(holdout_label_counts(config.data.test_rows, shares)[label])
    raise absent_label_error(label, count, float(shares[label]), label_reasons(config).get(label), len(dataset.labels))
