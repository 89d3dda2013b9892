"""Counter-based random numbers for checks: a 32-bit hash of (seed, stream, coordinate).

A check needs random signs for directions, probes and cotangents, generated inside vmapped
batches and reproducible outside them. ``jax.random`` (threefry) would do, but every use
adds ~0.3 s of XLA compile time on CPU; a murmur3-finalizer hash is a handful of integer
ops with the same reproducibility: value(seed, stream, i) depends on nothing else.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


_GOLD = 0x9E3779B1
_C2 = 0x85EBCA77


def _u32(v):
    return jnp.asarray(v).astype(jnp.uint32)


def _fmix(z):
    z = z ^ (z >> 16)
    z = z * jnp.uint32(0x7FEB352D)
    z = z ^ (z >> 15)
    z = z * jnp.uint32(0x846CA68B)
    return z ^ (z >> 16)


def seed_of(key, stream: int = 0):
    """A uint32 seed from a jax.random key (typed or raw uint32[2]) and a stream number."""
    return seeds_of(key, (stream,))[0]


def seeds_of(key, streams: tuple[int, ...]):
    """``seed_of(key, s)`` for each stream s, as one uint32 vector (one hash, traced once)."""
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    data = _u32(jnp.ravel(data))
    z = jnp.asarray(np.asarray([s & 0xFFFFFFFF for s in streams], np.uint32))
    for j in range(data.shape[0]):
        z = _fmix(z ^ (data[j] + jnp.uint32(_GOLD) * jnp.uint32(j + 1)))
    return z


def bits(seed, stream, i):
    """uint32 hash of (seed, stream, i); ``stream`` and ``i`` broadcast."""
    z = _fmix(_u32(seed) ^ (_u32(stream) * jnp.uint32(_GOLD)))
    return _fmix(z ^ (_u32(i) * jnp.uint32(_C2) + jnp.uint32(0x6A09E667)))


def rademacher(seed, stream, n: int, dtype):
    """±1 vector of length n for one stream."""
    b = bits(seed, stream, jnp.arange(n, dtype=jnp.uint32))
    return jnp.where((b >> 31) > 0, jnp.ones((), dtype), -jnp.ones((), dtype))


def signed_uniform(seed, stream, shape, dtype):
    """Random sign times a uniform magnitude in [0.5, 1.5): no entry near zero, no ties."""
    size = 1
    for s in shape:
        size *= s
    b = bits(seed, stream, jnp.arange(size, dtype=jnp.uint32))
    mag = 0.5 + (b & jnp.uint32(0x7FFFFFFF)).astype(dtype) / float(2**31)
    sgn = jnp.where((b >> 31) > 0, jnp.ones((), dtype), -jnp.ones((), dtype))
    return (sgn * mag).reshape(shape)


def sample(seed, stream, size: int, k: int):
    """k distinct integers in [0, size), sorted (Floyd's algorithm: O(k²), no O(size) work)."""

    def body(j, sel):
        top = size - k + j
        t = (bits(seed, stream, j) % jnp.uint32(top + 1)).astype(jnp.int32)
        return sel.at[j].set(jnp.where(jnp.any(sel == t), top, t))

    sel = jax.lax.fori_loop(0, k, body, jnp.full((k,), -1, jnp.int32))
    return jnp.sort(sel)
