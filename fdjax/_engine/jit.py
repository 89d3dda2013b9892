"""Calling a traced body under one cached ``WorkJit`` (``jax.jit`` compiled for its work).

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

from . import batch as _engine
from .devices import replicate, uncommit
from . import plan as _plan
from .compile import WorkJit, clear_programs
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


_JITTED: collections.OrderedDict[Any, WorkJit] = collections.OrderedDict()


def _run(dynamic, *, body, statics, treedef):
    programs = _JITTED.get(body)
    if programs is None:
        programs = _JITTED[body] = WorkJit(functools.partial(_call, body=body), ("statics", "treedef"))
        while len(_JITTED) > MAX_BODIES:
            _JITTED.popitem(last=False)
    else:
        _JITTED.move_to_end(body)
    return programs(dynamic, statics=statics, treedef=treedef)


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


def clear_caches() -> None:
    """Drop every compiled program and cached plan that fdjax holds.

    fdjax keeps the programs it compiled (check bodies, transforms, sweeps: at most
    ``MAX_BODIES`` functions' worth) so that calling it again on the same function and
    shapes runs at once. This frees them: a long process that checks many functions (a test
    suite, a notebook) gets their memory back, and the next call traces and compiles again.
    JAX's own caches (the user's jitted functions) are ``jax.clear_caches()``'s.
    """
    _JITTED.clear()
    _PLAN_ROWS.clear()
    _plan.clear_costs()
    clear_programs()
