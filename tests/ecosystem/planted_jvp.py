"""The planted bug of ``planted.py`` as a custom JVP rule, for ``fdjax.check_jvp``: JAX cannot
apply forward mode to a custom_vjp function, so the forward-mode checks need their own."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def scaled_tanh_jvp(bug: float):
    """tanh whose custom JVP rule multiplies the true derivative by ``1 + bug``."""

    @jax.custom_jvp
    def act(x):
        return jnp.tanh(x)

    @act.defjvp
    def act_jvp(primals, tangents):
        y = jnp.tanh(primals[0])
        return y, tangents[0] * (1 - y * y) * (1 + bug)

    return act


#: the same keys as ``planted.ACTIVATIONS`` (and the same ``EXPECTED`` verdicts)
ACTIVATIONS_JVP = {"correct": scaled_tanh_jvp(0.0), "planted bug": scaled_tanh_jvp(0.3)}
