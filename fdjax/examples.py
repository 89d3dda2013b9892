"""Small built-in models: deterministic data, parameters and losses (the CLI's default job).

Every function returns ``(loss_fn, params, *args)`` so that ``loss_fn(params, *args)`` is a
scalar. Data come from a fixed PRNG key: the same numbers on every machine.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

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
    keys = jax.random.split(jax.random.key(seed), len(sizes) + 1)
    params = [
        {
            "w": (jax.random.normal(k, (a, b)) / jnp.sqrt(a)).astype(dtype),
            "b": jnp.full((b,), 0.01, dtype),
        }
        for k, a, b in zip(keys[:-2], sizes[:-1], sizes[1:])
    ]
    x = jax.random.normal(keys[-2], (batch, sizes[0])).astype(dtype)
    y = jax.random.randint(keys[-1], (batch,), 0, sizes[-1])
    return mlp_loss, params, x, y


def digits(batch: int = 16, size: int = 8, seed: int = 0, dtype=jnp.float64):
    """A deterministic digits-like batch: blurred strokes of 10 classes on a size×size grid."""
    k1 = jax.random.key(seed)
    labels = jnp.arange(batch) % 10
    i, j = jnp.meshgrid(jnp.arange(size, dtype=dtype), jnp.arange(size, dtype=dtype), indexing="ij")
    lab = labels.astype(dtype)[:, None, None]
    angle = lab * (jnp.pi / 10)
    c = (size - 1) / 2
    dist = jnp.abs((i - c) * jnp.cos(angle) - (j - c) * jnp.sin(angle))
    ring = jnp.abs(jnp.hypot(i - c, j - c) - (lab % 3 + 1.5))
    img = jnp.exp(-(dist**2)) + 0.5 * jnp.exp(-(ring**2)) * (lab >= 5).astype(dtype)
    img = img + 0.1 * jax.random.normal(k1, img.shape, dtype)
    return img[:, None, :, :].astype(dtype), labels


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
    k1, k2 = jax.random.split(jax.random.key(seed + 1))
    feat = channels * (size // 2) ** 2
    params = {
        "conv": {
            "w": (jax.random.normal(k1, (channels, 1, 3, 3)) / 3.0).astype(dtype),
            "b": jnp.full((channels,), 0.05, dtype),
        },
        "dense": {
            "w": (jax.random.normal(k2, (feat, 10)) / jnp.sqrt(feat)).astype(dtype),
            "b": jnp.zeros((10,), dtype),
        },
    }
    images, labels = digits(batch, size, seed, dtype)
    return cnn_loss, params, images, labels
