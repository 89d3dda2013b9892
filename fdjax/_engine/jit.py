"""Calling a traced body under one cached ``jax.jit``, and host-side checks after it.

Array leaves of the arguments are traced; every other leaf (Python numbers, strings,
callables) is static and part of the cache key, as in ``equinox.filter_jit``. The body,
the user's function and the configuration are static too, so calling ``fdjax.grad(f)(x)``
twice with same-shaped x compiles once.
"""

from __future__ import annotations

import collections
import functools
from typing import Any
from collections.abc import Callable

import jax
import numpy as np

from . import batch as _engine
from .devices import replicate, uncommit
from .plan import jaxpr_flops
from .._cache import env_switch
from .._pytree import is_array, is_traced


class _Static:
    """Hashable wrapper for the static leaves (compared by value, or identity if unhashable)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def _key(self):
        try:
            hash(self.value)
            return ("v", self.value)
        except TypeError:
            return ("id", id(self.value))

    def __hash__(self):
        return hash(self._key())

    def __eq__(self, other):
        return isinstance(other, _Static) and self._key() == other._key()


def _call(dynamic, *, body, statics, treedef):
    leaves, it = [], iter(dynamic)
    for s in statics:
        leaves.append(next(it) if s is None else s.value)
    payload = jax.tree_util.tree_unflatten(treedef, leaves)
    with jax.default_matmul_precision("highest"):
        return body(*payload)


#: Bodies whose compiled programs are kept (least recently used first out). Each body (a
#: check of one function, a transform of one function) gets its own entry, so that
#: dropping it frees its executables: a process that checks thousands of functions (a test
#: suite) keeps at most this many bodies' programs in memory, not every one it ever compiled
#: (each holds XLA's code pages; thousands of them exhaust the process's memory maps).
MAX_BODIES = 32

#: On CPU, a program whose work is at most this many FLOPs (``plan.jaxpr_flops``: its
#: jaxpr's equations, loops times their trip counts) is compiled with ``QUICK_CPU_OPTIONS``.
#: Such a program runs in a fraction of a second even unoptimized, while XLA's full
#: optimization costs most of a small check's time. Measured on full checks of MLPs (one
#: process, 2 cores): 200 parameters, both programs quick: first call 0.5 s instead of 0.9 s;
#: 6.8k parameters (2.9e9 FLOPs): 1.2 s instead of 1.4-1.7 s, but each later call 0.58 s
#: instead of 0.39 s; 22k parameters (1.9e10 FLOPs): first call 4.2 s instead of 3.6 s. So
#: the threshold sits below where the slower run costs more than the compile saves.
QUICK_COMPILE_FLOPS = 2e9
#: LLVM without optimization passes, and XLA:CPU's elemental IR emitters instead of the
#: MLIR fusion emitters: the same operations and the same IEEE arithmetic (no fast-math
#: either way), emitted and compiled about 3x faster, run up to 2x slower.
QUICK_CPU_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


class _Programs:
    """One body's ``jax.jit`` (called as is inside the user's trace) and its compiled
    executables, one per (statics, tree, argument signature)."""

    __slots__ = ("jitted", "compiled")

    def __init__(self, body):
        self.jitted = jax.jit(functools.partial(_call, body=body), static_argnames=("statics", "treedef"))
        self.compiled: dict[Any, Any] = {}


_JITTED: collections.OrderedDict[Any, _Programs] = collections.OrderedDict()


def _programs(body) -> _Programs:
    programs = _JITTED.get(body)
    if programs is None:
        programs = _JITTED[body] = _Programs(body)
        while len(_JITTED) > MAX_BODIES:
            _JITTED.popitem(last=False)
    else:
        _JITTED.move_to_end(body)
    return programs


def _signature(leaf) -> tuple:
    """What a compiled executable is specialized to: shape, dtype, weak type, placement."""
    if isinstance(leaf, jax.Array):
        sharding = leaf.sharding if getattr(leaf, "_committed", True) else None
        aval = jax.typeof(leaf)
        return (aval.shape, aval.dtype, getattr(aval, "weak_type", False), sharding)
    return (np.shape(leaf), np.result_type(leaf), False, None)


def _platform(dynamic) -> str:
    for leaf in dynamic:
        if isinstance(leaf, jax.Array):
            return str(getattr(next(iter(leaf.sharding.device_set)), "platform", jax.default_backend()))
    return jax.default_backend()


#: ``FDJAX_QUICK_COMPILE=0`` compiles every program with XLA's defaults.
ENV_QUICK = "FDJAX_QUICK_COMPILE"


def compile_options(jaxpr, platform: str) -> dict | None:
    """XLA options for a program: ``QUICK_CPU_OPTIONS`` for a small one on CPU, else None."""
    if platform == "cpu" and env_switch(ENV_QUICK, "quick compilation"):
        if jaxpr_flops(jaxpr) <= QUICK_COMPILE_FLOPS:
            return dict(QUICK_CPU_OPTIONS)
    return None


def _run(dynamic, *, body, statics, treedef):
    programs = _programs(body)
    if is_traced(dynamic):  # inside the user's jit: the body is part of the user's program
        return programs.jitted(dynamic, statics=statics, treedef=treedef)
    key = (statics, treedef, tuple(_signature(leaf) for leaf in dynamic))
    compiled = programs.compiled.get(key)
    if compiled is None:
        traced = programs.jitted.trace(dynamic, statics=statics, treedef=treedef)
        options = compile_options(traced.jaxpr, _platform(dynamic))
        compiled = programs.compiled[key] = traced.lower().compile(compiler_options=options)
    return compiled(dynamic)


def call_jitted(body: Callable, *payload: Any) -> Any:
    """``body(*payload)`` under jit; ``body`` must be hashable (a function or a partial of statics).

    Matmul precision is "highest" inside (no TF32 on GPUs: FD differences need every bit).
    When the body's engine options shard the rows over several devices, concrete array
    arguments are first replicated onto those devices (see ``_devices.replicate``).
    """
    leaves, treedef = jax.tree_util.tree_flatten(payload)
    dynamic = [leaf for leaf in leaves if is_array(leaf)]
    opts = getattr(body, "opts", None)
    cfg_opts = getattr(getattr(body, "cfg", None), "opts", None)  # the check bodies
    if opts is not None and hasattr(opts, "devices") and not is_traced(dynamic):
        dynamic = replicate(dynamic, opts.devices)
    elif cfg_opts is not None and hasattr(cfg_opts, "devices") and not is_traced(dynamic):
        dynamic = uncommit(dynamic, cfg_opts.devices)
    statics = tuple(None if is_array(leaf) else _Static(leaf) for leaf in leaves)
    if not _engine._listeners or is_traced(dynamic):
        return _run(dynamic, body=body, statics=statics, treedef=treedef)
    # Someone is listening for plan sizes (a progress display): a compiled call traces no
    # plan, so replay the sizes its first trace announced before running it.
    key = (body, statics, treedef, tuple((jax.numpy.shape(a), jax.numpy.result_type(a)) for a in dynamic))
    if key in _PLAN_ROWS:
        for rows in _PLAN_ROWS[key]:
            for callback in tuple(_engine._listeners):
                callback(rows)
        return _run(dynamic, body=body, statics=statics, treedef=treedef)
    seen: list[int] = []
    with _engine.listen(seen.append):
        out = _run(dynamic, body=body, statics=statics, treedef=treedef)
    if len(_PLAN_ROWS) > 256:
        _PLAN_ROWS.clear()
    _PLAN_ROWS[key] = tuple(seen)
    return out


#: Plan sizes announced by the first trace of each (body, statics, shapes) call.
_PLAN_ROWS: dict[tuple, tuple[int, ...]] = {}
