"""Shared pieces of the ecosystem tests: an activation with a correct and a wrong custom_vjp.

Every scenario checks the same model twice: with ``GOOD`` (tanh with its true derivative as a
custom VJP rule) the check must PASS; with ``BAD`` (the rule's derivative 30 % too large, a
planted bug that only the AD side sees) it must FAIL. The activations are module-level
objects so that models built from them share compiled programs across tests.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import fdjax


def scaled_tanh(bug: float):
    """tanh whose custom VJP multiplies the true derivative by ``1 + bug``."""

    @jax.custom_vjp
    def act(x):
        return jnp.tanh(x)

    def fwd(x):
        y = jnp.tanh(x)
        return y, y

    def bwd(y, g):
        return (g * (1 - y * y) * (1 + bug),)

    act.defvjp(fwd, bwd)
    return act


GOOD = scaled_tanh(0.0)
BAD = scaled_tanh(0.3)
ACTIVATIONS = {"correct": GOOD, "planted bug": BAD}
EXPECTED = {"correct": fdjax.CheckStatus.PASS, "planted bug": fdjax.CheckStatus.FAIL}


def status(result) -> fdjax.CheckStatus:
    return fdjax.CheckStatus(int(result.status))
