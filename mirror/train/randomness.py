"""Cheap counter-based randomness for the training hot loop.

Two things are drawn millions of times per epoch and dominate a small MLP's step on a
CPU when done with `jax.random`'s threefry:
- the minibatch order: `jax.random.permutation` of 3.8M rows sorts, about 7 s per epoch
  on the 2-core CPU; `feistel_permutation` is a keyed bijection evaluated elementwise
  (about 0.1 s);
- dropout masks: the MLP draws each unit's mask from `fold_in(key, unit)` (so padded
  population members see their true-width masks); threefry costs ~30 us per step for
  the 2 x 17 model, the step's whole budget. `HASH_PRNG` is a `jax.random` key
  implementation built from the murmur3 finaliser (~1 us), used only for dropout keys.

Neither is cryptographic; both are pure functions of their key, so a run is a pure
function of (seed, epoch) and resumes exactly.
"""

import math

import jax
import jax.numpy as jnp
from jax.extend.random import define_prng_impl

_GOLDEN = 0x9E3779B9


def _u32(x) -> jax.Array:
    return jnp.asarray(x, jnp.uint32)


def fmix32(x: jax.Array) -> jax.Array:
    """murmur3's 32-bit finaliser: a bijective avalanche mix of uint32 values."""
    x = x ^ (x >> 16)
    x = x * _u32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * _u32(0xC2B2AE35)
    return x ^ (x >> 16)


def _hash_seed(seed: jax.Array) -> jax.Array:
    seed = jnp.asarray(seed).astype(jnp.uint32)
    return jnp.stack([fmix32(seed ^ _u32(0x243F6A88)), fmix32((seed + _u32(1)) ^ _u32(0x85A308D3))])


def _hash_fold_in(key: jax.Array, data: jax.Array) -> jax.Array:
    data = jnp.asarray(data).astype(jnp.uint32)
    a = fmix32(key[0] ^ fmix32(data * _u32(_GOLDEN) + key[1]))
    b = fmix32(key[1] ^ fmix32(a + data * _u32(0x7F4A7C15) + _u32(0x6A09E667)))
    return jnp.stack([a, b])


def _hash_split(key: jax.Array, shape) -> jax.Array:
    count = math.prod(shape)
    keys = jax.vmap(lambda i: _hash_fold_in(key, i))(jnp.arange(count, dtype=jnp.uint32))
    return keys.reshape(*shape, 2)


def _hash_bits32(key: jax.Array, count: int, offset: int = 0) -> jax.Array:
    counter = jnp.arange(offset, offset + count, dtype=jnp.uint32)
    return fmix32(fmix32(counter * _u32(_GOLDEN) ^ key[0]) + key[1])


def _hash_random_bits(key: jax.Array, bit_width: int, shape) -> jax.Array:
    count = math.prod(shape)
    if bit_width == 64:
        hi = _hash_bits32(key, count).astype(jnp.uint64)
        lo = _hash_bits32(key, count, offset=count).astype(jnp.uint64)
        return ((hi << 32) | lo).reshape(shape)
    if bit_width not in (8, 16, 32):
        raise TypeError(f"HASH_PRNG draws 8, 16, 32 or 64 bits, not {bit_width}")
    bits = _hash_bits32(key, count)
    return bits.astype(jnp.dtype(f"uint{bit_width}")).reshape(shape)


HASH_PRNG = define_prng_impl(
    key_shape=(2,),
    seed=_hash_seed,
    split=_hash_split,
    random_bits=_hash_random_bits,
    fold_in=_hash_fold_in,
    name="mirror_hash32",
    tag="mh32",
)


def hash_key(key: jax.Array) -> jax.Array:
    """A `HASH_PRNG` key derived from any `jax.random` key (for dropout)."""
    return jax.random.wrap_key_data(jax.random.bits(key, (2,), jnp.uint32), impl=HASH_PRNG)


def feistel_permutation(key: jax.Array, n: int, rounds: int = 6) -> jax.Array:
    """int32[n]: a pseudo-random permutation of range(n) keyed by `key`.

    A balanced Feistel network on the smallest even number of bits covering n is a
    bijection of [0, 2^bits); values >= n are re-encrypted until they land in [0, n)
    ("cycle walking"), which keeps it a bijection of [0, n). Fewer than two walks per
    element on average, all elementwise: no sort.
    """
    bits = max(2, math.ceil(math.log2(max(n, 2))))
    bits += bits % 2
    half = bits // 2
    mask = _u32((1 << half) - 1)
    round_keys = jax.random.bits(key, (rounds,), jnp.uint32)

    def encrypt(i):
        left, right = i >> half, i & mask
        for r in range(rounds):
            left, right = right, left ^ (fmix32(right ^ round_keys[r]) & mask)
        return (left << half) | right

    def walk(v):
        return jnp.where(v >= n, encrypt(v), v)

    out = jax.lax.while_loop(lambda v: jnp.any(v >= n), walk, encrypt(jnp.arange(n, dtype=jnp.uint32)))
    return out.astype(jnp.int32)
