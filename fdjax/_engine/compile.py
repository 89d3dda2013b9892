"""How fdjax compiles its programs: XLA's options chosen by the work of the program.

At the sizes people check most, XLA:CPU's optimization is most of a first call's time. A
program's work is counted from its jaxpr (``jaxpr_flops``); on CPU a small one is compiled
with ``QUICK_CPU_OPTIONS``, a large one with XLA's defaults (``compile_options``).
``WorkJit`` is ``jax.jit`` with that choice made per compiled program.
"""

from __future__ import annotations

import collections
import math
from typing import Any
from collections.abc import Callable

import jax
import numpy as np

from .._cache import env_switch
from .._pytree import is_traced

#: On CPU, a program whose work is at most this many FLOPs (``jaxpr_flops``: its jaxpr's
#: equations, loops times their trip counts) is compiled with ``QUICK_CPU_OPTIONS``. Such a
#: program runs in a fraction of a second even unoptimized, while XLA's full optimization
#: costs most of a small check's time. Measured on full checks of MLPs (one process, 2
#: cores): 200 parameters, both programs quick: first call 0.5 s instead of 0.9 s; 6.8k
#: parameters (2.9e9 FLOPs): 1.2 s instead of 1.4-1.7 s, but each later call 0.58 s instead
#: of 0.39 s; 22k parameters (1.9e10 FLOPs): first call 4.2 s instead of 3.6 s. So the
#: threshold sits below where the slower run costs more than the compile saves.
QUICK_COMPILE_FLOPS = 2e9
#: LLVM without optimization passes, and XLA:CPU's elemental IR emitters instead of the
#: MLIR fusion emitters: the same operations in IEEE arithmetic (no fast-math either way),
#: compiled about 3x faster, run up to 2x slower. Without optimization LLVM forms no fused
#: multiply-adds, so values can differ from the optimized program's in the last few ulps.
QUICK_CPU_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
#: ``FDJAX_QUICK_COMPILE=0`` compiles every program with XLA's defaults.
ENV_QUICK = "FDJAX_QUICK_COMPILE"
#: Compiled programs one ``WorkJit`` keeps (least recently used first out).
MAX_PROGRAMS = 64


def _size(v) -> int:
    aval = getattr(v, "aval", None)
    shape = getattr(aval, "shape", None)
    return math.prod(shape) if shape is not None else 0


def _sub_jaxprs(params) -> list:
    """The sub-jaxprs among an equation's parameters (a ``cond``'s branches are one tuple)."""
    found = []
    for p in params.values():
        items = p if isinstance(p, (tuple, list)) else (p,)
        for item in items:
            sub = getattr(item, "jaxpr", item)
            if hasattr(sub, "eqns"):
                found.append(sub)
    return found


def jaxpr_flops(jaxpr) -> float:
    """The work of one run of a jaxpr in FLOPs, counted from its equations: 2·M·N·K per
    matrix product (convolutions alike), the largest operand or result size for any other
    operation, a ``scan`` body times its length, the largest branch of a ``cond``, and
    ``inf`` for a ``while`` loop (its trip count is not known before it runs).

    A rough count, for choosing how hard XLA should optimize a program (``jit``), not a
    time estimate; sub-jaxprs of calls (``jit``, ``custom_vjp``, ``shard_map``...) count once.
    """
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    total = 0.0
    for eqn in jaxpr.eqns:
        name, params = eqn.primitive.name, eqn.params
        if name == "while":
            return math.inf
        subs = _sub_jaxprs(params)
        if name == "scan":
            total += params["length"] * sum(jaxpr_flops(s) for s in subs)
        elif name == "cond":
            total += max((jaxpr_flops(s) for s in subs), default=0.0)
        elif subs:
            total += sum(jaxpr_flops(s) for s in subs)
        elif name == "dot_general":
            (contract_lhs, _), _ = params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2.0 * _size(eqn.outvars[0]) * math.prod(lhs[d] for d in contract_lhs)
        elif name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            out_features = rhs[params["dimension_numbers"].rhs_spec[0]]
            total += 2.0 * _size(eqn.outvars[0]) * math.prod(rhs) / max(out_features, 1)
        else:
            total += max([_size(v) for v in (*eqn.invars, *eqn.outvars)], default=0)
    return total


def compile_options(jaxpr, platform: str) -> dict | None:
    """XLA options for a program: ``QUICK_CPU_OPTIONS`` for a small one on CPU, else None."""
    if platform == "cpu" and env_switch(ENV_QUICK, "quick compilation"):
        if jaxpr_flops(jaxpr) <= QUICK_COMPILE_FLOPS:
            return dict(QUICK_CPU_OPTIONS)
    return None


def _signature(leaf) -> tuple:
    """What a compiled program is specialized to: shape, dtype, weak type, placement."""
    if isinstance(leaf, jax.Array):
        sharding = leaf.sharding if getattr(leaf, "_committed", True) else None
        aval = jax.typeof(leaf)
        return (aval.shape, aval.dtype, getattr(aval, "weak_type", False), sharding)
    return (np.shape(leaf), np.result_type(leaf), isinstance(leaf, (int, float, complex)), None)


def _platform(leaves) -> str:
    for leaf in leaves:
        if isinstance(leaf, jax.Array):
            return str(getattr(next(iter(leaf.sharding.device_set)), "platform", jax.default_backend()))
    return jax.default_backend()


class WorkJit:
    """``jax.jit(fun, static_argnames=...)``, each program compiled with ``compile_options``.

    Called eagerly, it traces, chooses the options from the traced jaxpr's work, compiles
    and keeps the program per (static arguments, tree, shapes, dtypes, placements). Called
    under a trace (inside the user's jit), it is ``jax.jit`` itself: part of the user's
    program, compiled as that is.
    """

    def __init__(self, fun: Callable, static_argnames: tuple[str, ...] = ()):
        self.jitted = jax.jit(fun, static_argnames=static_argnames)
        self.static_argnames = frozenset(static_argnames)
        self.programs: collections.OrderedDict[Any, Any] = collections.OrderedDict()

    def __call__(self, *args, **kwargs):
        dynamic = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
        leaves, tree = jax.tree_util.tree_flatten((args, dynamic))
        if is_traced(leaves):
            return self.jitted(*args, **kwargs)
        statics = tuple(sorted((k, v) for k, v in kwargs.items() if k in self.static_argnames))
        key = (statics, tree, tuple(_signature(leaf) for leaf in leaves))
        program = self.programs.get(key)
        if program is None:
            traced = self.jitted.trace(*args, **kwargs)
            options = compile_options(traced.jaxpr, _platform(leaves))
            program = self.programs[key] = traced.lower().compile(compiler_options=options)
            while len(self.programs) > MAX_PROGRAMS:
                self.programs.popitem(last=False)
        else:
            self.programs.move_to_end(key)
        return program(*args, **dynamic)
