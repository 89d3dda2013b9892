"""Small built-in models: deterministic data, parameters and losses (the CLI's default job).

Every function returns ``(loss_fn, params, *args)`` so that ``loss_fn(params, *args)`` is a
scalar. Data come from NumPy's legacy ``RandomState`` with a fixed seed, whose streams
NumPy keeps stable across versions: the same numbers on every machine, built on the host
in milliseconds (no per-operation compilation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["mlp", "cnn", "digits", "softmax_cross_entropy", "mlp_loss", "cnn_loss"]


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy of integer ``labels`` under ``logits`` [batch, classes]."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def mlp_loss(params, x, y):
    """tanh MLP with softmax cross-entropy; params: list of {"w", "b"} layers."""
    h = x
    for layer in params[:-1]:
        h = jnp.tanh(h @ layer["w"] + layer["b"])
    return softmax_cross_entropy(h @ params[-1]["w"] + params[-1]["b"], y)


def mlp(sizes=(16, 32, 10), batch: int = 64, dtype=jnp.float64, seed: int = 0):
    """A tanh MLP on Gaussian inputs: ``(mlp_loss, params, x, y)``."""
    rng = np.random.RandomState(seed)
    params = [
        {"w": _array(rng.standard_normal((a, b)) / np.sqrt(a), dtype), "b": _array(np.full(b, 0.01), dtype)}
        for a, b in zip(sizes[:-1], sizes[1:])
    ]
    x = _array(rng.standard_normal((batch, sizes[0])), dtype)
    y = jnp.asarray(rng.randint(0, sizes[-1], batch), jnp.int32)
    return mlp_loss, params, x, y


def digits(batch: int = 16, size: int = 8, seed: int = 0, dtype=jnp.float64):
    """A deterministic digits-like batch: blurred strokes of 10 classes on a size×size grid."""
    labels = np.arange(batch) % 10
    i, j = np.meshgrid(np.arange(size, dtype=float), np.arange(size, dtype=float), indexing="ij")
    lab = labels.astype(float)[:, None, None]
    angle = lab * (np.pi / 10)
    c = (size - 1) / 2
    dist = np.abs((i - c) * np.cos(angle) - (j - c) * np.sin(angle))
    ring = np.abs(np.hypot(i - c, j - c) - (lab % 3 + 1.5))
    img = np.exp(-(dist**2)) + 0.5 * np.exp(-(ring**2)) * (lab >= 5)
    img = img + 0.1 * np.random.RandomState(seed).standard_normal(img.shape)
    return _array(img[:, None, :, :], dtype), jnp.asarray(labels, jnp.int32)


def cnn_loss(params, images, labels):
    """conv(3×3) → ReLU → 2×2 max-pool → dense → softmax cross-entropy."""
    h = jax.lax.conv_general_dilated(
        images, params["conv"]["w"], (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")
    )
    h = jax.nn.relu(h + params["conv"]["b"][None, :, None, None])
    h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    h = h.reshape(h.shape[0], -1)
    return softmax_cross_entropy(h @ params["dense"]["w"] + params["dense"]["b"], labels)


def cnn(channels: int = 4, size: int = 8, batch: int = 16, dtype=jnp.float64, seed: int = 0):
    """A small CNN on the digits batch: ``(cnn_loss, params, images, labels)``."""
    rng = np.random.RandomState(seed + 1)
    feat = channels * (size // 2) ** 2
    params = {
        "conv": {
            "w": _array(rng.standard_normal((channels, 1, 3, 3)) / 3.0, dtype),
            "b": _array(np.full(channels, 0.05), dtype),
        },
        "dense": {
            "w": _array(rng.standard_normal((feat, 10)) / np.sqrt(feat), dtype),
            "b": _array(np.zeros(10), dtype),
        },
    }
    images, labels = digits(batch, size, seed, dtype)
    return cnn_loss, params, images, labels


def _array(values: np.ndarray, dtype) -> jax.Array:
    return jnp.asarray(np.asarray(values, np.float64).astype(jnp.dtype(dtype)))
