"""Tests of mirror.data.processing: row processing (spec §5.3) and model inputs (spec §5.6)."""

import jax
import numpy as np
import pytest

from mirror.data.processing import (
    ENERGY_PROBS,
    ENERGY_VALUES,
    FLY_PATTERN_POSITIONS,
    FLY_PATTERNS,
    model_inputs,
    process_rows,
)

N = 400_000
# Tolerance for an observed frequency of an event of probability p in N independent draws:
# 5 binomial standard errors, 5 * sqrt(p (1 - p) / N). With a fixed seed the test is
# deterministic; for a correct sampler a 5-sigma miss has chance ~6e-7 per checked frequency.
SIGMAS = 5.0

KEPT = np.r_[0:64, 96, 99]
process_jit = jax.jit(process_rows)  # eager dispatch is slow; one eager call is kept below  # ground, players line, own code, position: never touched


def random_rows(rng, n):
    """int8[n, 100] arbitrary rows (processing must not care what is in them)."""
    return rng.integers(-128, 128, (n, 100)).astype(np.int8)


def tolerance(p, n=N):
    return SIGMAS * np.sqrt(p * (1 - p) / n)


def pattern_index(flies):
    """int[n]: which of the six patterns each flies slice equals (-1 if none)."""
    match = (flies[:, None, :] == FLY_PATTERNS[None]).all(axis=-1)  # [n, 6]
    assert (match.sum(axis=1) <= 1).all()  # the six patterns are distinct
    return np.where(match.any(axis=1), match.argmax(axis=1), -1)


@pytest.fixture(scope="module")
def processed():
    rows = random_rows(np.random.default_rng(0), N)
    out = np.asarray(process_jit(jax.random.key(1234), rows))
    return rows, out


# --------------------------------------------------------------------------- constants


def test_energy_distribution_constants():
    assert ENERGY_VALUES.tolist() == [0, 1, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    expected = [0.5] + [0.0625] * 4 + [0.05] * 3 + [1 / 30] * 3
    np.testing.assert_allclose(ENERGY_PROBS, expected, rtol=0, atol=1e-15)
    assert ENERGY_PROBS.sum() == pytest.approx(1.0, abs=1e-12)


def test_fly_pattern_constants():
    assert FLY_PATTERNS.shape == (6, 32) and FLY_PATTERNS.dtype == np.int8
    assert set(np.unique(FLY_PATTERNS).tolist()) == {0, 3}
    assert list(FLY_PATTERN_POSITIONS) == ["A", "B", "C", "D", "E", "F"]
    # Fly counts of A-F and spot checks of the 1-based -> 0-based conversion.
    assert (FLY_PATTERNS == 3).sum(axis=1).tolist() == [7, 9, 8, 5, 6, 8]
    assert np.flatnonzero(FLY_PATTERNS[0]).tolist() == [0, 1, 10, 15, 16, 21, 26]  # A
    assert np.flatnonzero(FLY_PATTERNS[2]).tolist() == [1, 3, 13, 19, 23, 27, 28, 31]  # C ends at 32
    assert len({p.tobytes() for p in FLY_PATTERNS}) == 6


# --------------------------------------------------------------------------- process_rows


def test_process_rows_dtype_shape_and_untouched_columns(processed):
    rows, out = processed
    assert out.shape == rows.shape and out.dtype == np.int8
    np.testing.assert_array_equal(out[:, KEPT], rows[:, KEPT])


def test_score_is_zero(processed):
    _, out = processed
    assert (out[:, 98] == 0).all()


def test_every_flies_slice_is_one_pattern(processed):
    _, out = processed
    assert (pattern_index(out[:, 64:96]) >= 0).all()


def test_energy_frequencies(processed):
    _, out = processed
    energy = out[:, 97]
    assert np.isin(energy, ENERGY_VALUES).all()
    for value, p in zip(ENERGY_VALUES.tolist(), ENERGY_PROBS):
        freq = (energy == value).mean()
        assert abs(freq - p) <= tolerance(p), (value, freq, p)


def test_fly_pattern_frequencies(processed):
    _, out = processed
    counts = np.bincount(pattern_index(out[:, 64:96]), minlength=6)
    for name, c in zip(FLY_PATTERN_POSITIONS, counts):
        assert abs(c / N - 1 / 6) <= tolerance(1 / 6), (name, c / N)


def test_energy_and_pattern_are_independent(processed):
    # Each (energy, pattern) cell has probability p_e / 6 if the two draws are independent.
    _, out = processed
    energy_idx = np.searchsorted(ENERGY_VALUES, out[:, 97])
    joint = np.zeros((len(ENERGY_VALUES), 6))
    np.add.at(joint, (energy_idx, pattern_index(out[:, 64:96])), 1)
    p = ENERGY_PROBS[:, None] / 6
    assert (np.abs(joint / N - p) <= tolerance(p)).all()


def test_determinism_and_key_dependence():
    rows = random_rows(np.random.default_rng(3), 1000)
    key = jax.random.key(7)
    a = np.asarray(process_rows(key, rows))
    b = np.asarray(process_jit(key, rows))
    np.testing.assert_array_equal(a, b)
    c = np.asarray(process_jit(jax.random.key(8), rows))
    assert (a[:, 97] != c[:, 97]).any() and (a[:, 64:96] != c[:, 64:96]).any()


def test_any_leading_shape_and_input_dtype():
    rows = random_rows(np.random.default_rng(4), 24)
    key = jax.random.key(0)
    flat = np.asarray(process_jit(key, rows))
    # A batch of [2, 3, 4] rows: same columns touched, same result from the same uniforms.
    shaped = np.asarray(process_jit(key, rows.reshape(2, 3, 4, 100)))
    assert shaped.shape == (2, 3, 4, 100) and shaped.dtype == np.int8
    np.testing.assert_array_equal(shaped.reshape(24, 100), flat)
    # Wider integer input of the same values: int8 out, identical result.
    np.testing.assert_array_equal(np.asarray(process_jit(key, rows.astype(np.int32))), flat)


# --------------------------------------------------------------------------- model_inputs


def test_model_inputs_zeros_own_code_score_position():
    rows = random_rows(np.random.default_rng(5), 500)
    rows[:, 96:100] = np.array([9, 12, 77, 31], np.int8)  # all non-zero
    out = np.asarray(jax.jit(model_inputs)(rows))
    assert out.shape == rows.shape and out.dtype == np.int8
    assert (out[:, [96, 98, 99]] == 0).all()
    np.testing.assert_array_equal(out[:, 97], rows[:, 97])  # energy stays
    np.testing.assert_array_equal(out[:, :96], rows[:, :96])
    # Any leading shape, and no batch at all.
    np.testing.assert_array_equal(np.asarray(model_inputs(rows.reshape(5, 100, 100))).reshape(500, 100), out)
    np.testing.assert_array_equal(np.asarray(model_inputs(rows[0])), out[0])


def test_model_inputs_after_processing_keep_processed_energy():
    rows = random_rows(np.random.default_rng(6), 200)
    proc = process_jit(jax.random.key(2), rows)
    inp = np.asarray(model_inputs(proc))
    np.testing.assert_array_equal(inp[:, 97], np.asarray(proc)[:, 97])
    assert (inp[:, [96, 98, 99]] == 0).all()
