"""Exact deduplication of (input, label) rows across generation chunks (spec §5.7).

Rows are hashed to uint64 with a multiply-xorshift mix over their bytes; rows are
only ever dropped after a byte-for-byte comparison with the row they collide with,
so a hash collision between different rows can never lose a row silently.
The first occurrence of each row is kept, so the result is deterministic.

A row's key is its n input bytes, then its label byte, then zero padding up to a
multiple of 8 bytes (the hash reads 64-bit words): 104 bytes for the spec's 100 inputs,
56 for the 52 inputs of world width 16. `row_inputs` takes the inputs back out.
"""

import numpy as np

_MIX = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xBF58476D1CE4E5B9)


def key_bytes(num_inputs: int) -> int:
    """Bytes of a row key: the inputs and the label, padded to a multiple of 8."""
    return -(-(num_inputs + 1) // 8) * 8


def row_keys(inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """uint8[n, key_bytes(inputs)]: the bytes that define a row (inputs int8[n, inputs],
    label, zero padding)."""
    n, num_inputs = inputs.shape
    keys = np.zeros((n, key_bytes(num_inputs)), np.uint8)
    keys[:, :num_inputs] = inputs.view(np.uint8)
    keys[:, num_inputs] = labels.view(np.uint8)
    return keys


def row_inputs(keys: np.ndarray, num_inputs: int) -> np.ndarray:
    """int8[n, num_inputs]: the inputs of row keys uint8[n, key_bytes(num_inputs)]."""
    if keys.shape[1] != key_bytes(num_inputs):
        raise ValueError(f"row keys of {keys.shape[1]} bytes do not hold {num_inputs} inputs")
    return keys[:, :num_inputs].view(np.int8)


def hash_rows(keys: np.ndarray) -> np.ndarray:
    """uint64[n] hash of uint8[n, 8k] row keys."""
    words = np.ascontiguousarray(keys).view(np.uint64)
    h = np.full(words.shape[0], 0x243F6A8885A308D3, np.uint64)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1]):  # 13 words at W = 32: a loop over columns, vectorised over rows
            h = (h ^ words[:, j]) * _MIX
            h ^= h >> np.uint64(31)
            h *= _MIX2
            h ^= h >> np.uint64(29)
    return h


class UniqueRows:
    """Accumulates rows chunk by chunk, keeping only rows not seen before.

    Exact unless two *different* rows share a 64-bit hash and one of them also has a
    duplicate (probability ~ n^2 / 2^64, about 1e-6 at paper scale); even then no row
    is lost, at worst one duplicate survives.
    """

    def __init__(self, key_width: int | None = None):
        """key_width: bytes of every key added, `key_bytes(inputs)` (None: the first chunk's)."""
        self._hashes = np.zeros(0, np.uint64)  # sorted hashes of kept rows
        self._owner = np.zeros(0, np.int64)  # kept-row index of each sorted hash
        self._kept = None if key_width is None else np.zeros((0, key_width), np.uint8)  # kept keys; grows by doubling
        self.count = 0

    def _append(self, keys: np.ndarray) -> None:
        need = self.count + len(keys)
        if need > len(self._kept):
            grown = np.zeros((max(need, 2 * len(self._kept)), self._kept.shape[1]), np.uint8)
            grown[: self.count] = self._kept[: self.count]
            self._kept = grown
        self._kept[self.count : need] = keys
        self.count = need

    def kept_keys(self) -> np.ndarray:
        """uint8[count, key bytes]: every kept row's key, in the order rows were kept."""
        if self._kept is None:
            raise ValueError("no rows were added yet, so the key width is unknown")
        return self._kept[: self.count]

    def add(self, keys: np.ndarray) -> np.ndarray:
        """Add uint8[n, key bytes] keys (`row_keys`); returns the indices (into this chunk)
        of the new rows, in order."""
        if keys.ndim != 2 or keys.dtype != np.uint8 or keys.shape[1] % 8:
            raise ValueError(f"row keys must be uint8[n, 8k], got {keys.dtype}{list(keys.shape)}")
        if self._kept is None:
            self._kept = np.zeros((0, keys.shape[1]), np.uint8)
        if keys.shape[1] != self._kept.shape[1]:
            raise ValueError(f"row keys of {keys.shape[1]} bytes added to keys of {self._kept.shape[1]} bytes")
        h = hash_rows(keys)
        # First occurrence of each hash within the chunk; a different row that merely
        # shares a hash with it is new too.
        _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
        fresh = np.zeros(len(h), bool)
        fresh[first] = True
        dup = np.flatnonzero(~fresh)
        fresh[dup] = ~np.all(keys[dup] == keys[first[inverse[dup]]], axis=1)
        # Rows already kept from earlier chunks.
        if len(self._hashes):
            pos = np.minimum(np.searchsorted(self._hashes, h), len(self._hashes) - 1)
            idx = np.flatnonzero(fresh & (self._hashes[pos] == h))
            equal = np.all(self._kept[self._owner[pos[idx]]] == keys[idx], axis=1)
            fresh[idx[equal]] = False
        new = np.flatnonzero(fresh)
        # Two sorted runs: the stable sort (timsort) merges them in linear time.
        new_order = np.argsort(h[new], kind="stable")
        owners = np.concatenate([self._owner, self.count + new_order])
        hashes = np.concatenate([self._hashes, h[new][new_order]])
        order = np.argsort(hashes, kind="stable")
        self._hashes, self._owner = hashes[order], owners[order]
        self._append(keys[new])
        return new
