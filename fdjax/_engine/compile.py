"""How fdjax compiles its programs: XLA's options chosen by the work of the program.

At the sizes people check most, XLA:CPU's optimization is most of a first call's time. A
program's work is counted from its jaxpr (``jaxpr_work``); on CPU a small one is compiled
with ``QUICK_CPU_OPTIONS``, a large one with XLA's defaults (``compile_options``).
``WorkJit`` is ``jax.jit`` with that choice made per compiled program, and with compiled
programs shared by what they compute (``program_key``): a new closure of the same code over
the same constants compiles nothing.
"""

from __future__ import annotations

import collections
import hashlib
import math
import weakref
from typing import Any, NamedTuple
from collections.abc import Callable

import jax
import numpy as np

from .._cache import env_switch
from .._pytree import is_traced

#: On CPU, a program whose work (``jaxpr_work``: its jaxpr's equations, loops times their
#: trip counts) is at most this many FLOPs of matrix products and ``QUICK_COMPILE_LOOPS`` of
#: everything else is compiled with ``QUICK_CPU_OPTIONS``. Such a program runs in a fraction
#: of a second even unoptimized, while XLA's full optimization costs most of a small check's
#: time. Measured on full checks (one process, 2 cores): a 200-parameter MLP, both programs
#: quick: first call 0.5 s instead of 0.9 s; a 6.8k-parameter MLP (products 2.2e9, loops
#: 6e8): 1.2 s instead of 1.4-1.7 s, but each later call 0.58 s instead of 0.39 s; a
#: 22k-parameter one (1.9e10 FLOPs): 4.2 s instead of 3.6 s; the 690-parameter CNN of the
#: ``fdjax`` command, whose element rows are grouped convolutions (loops 3.3e8): 0.87 s
#: instead of 0.45 s. So the thresholds sit below where the slower run costs more than the
#: compile saves.
QUICK_COMPILE_FLOPS = 2e9
#: ... and of everything XLA emits as its own loops (``Work.loops``).
QUICK_COMPILE_LOOPS = 1e8
#: LLVM without optimization passes, and XLA:CPU's elemental IR emitters instead of the
#: MLIR fusion emitters: the same operations in IEEE arithmetic (no fast-math either way),
#: compiled about 3x faster, run up to 2x slower. Without optimization LLVM forms no fused
#: multiply-adds, so values can differ from the optimized program's in the last few ulps.
#: The module is emitted as one LLVM module, not split into parts compiled in parallel: for a
#: small program the parts' fixed costs exceed what 2 cores gain (a new 1.2k-parameter
#: function's full check, its 2 programs: compile 0.20 s in 32 parts, 0.16 s in 2, 0.15 s in 1).
QUICK_CPU_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_cpu_use_fusion_emitters": False,
    "xla_cpu_parallel_codegen_split_count": 1,
}
#: ``FDJAX_QUICK_COMPILE=0`` compiles every program with XLA's defaults.
ENV_QUICK = "FDJAX_QUICK_COMPILE"
#: Compiled programs one ``WorkJit`` keeps (least recently used first out).
MAX_PROGRAMS = 64
#: Compiled programs kept by what they compute, across every ``WorkJit`` (``program_key``).
MAX_SHARED = 64


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


class Work(NamedTuple):
    """The work of one run of a program (``jaxpr_work``).

    Attributes:
        products: FLOPs of matrix products (``dot_general``), which XLA:CPU hands to a
            compiled library however the program itself is compiled.
        loops: the work of everything XLA emits as its own loops, convolutions included
            (vmapped over perturbed kernels they become grouped convolutions, which XLA:CPU
            emits itself): the largest operand or result per operation, 2·(output size)·
            (kernel size per output) per convolution. Unoptimized, these run up to 7x slower.
    """

    products: float
    loops: float


def jaxpr_work(jaxpr) -> Work:
    """The work of one run of a jaxpr, counted from its equations: a ``scan`` body times
    its length, the larger branch of a ``cond``, sub-jaxprs of calls (``jit``,
    ``custom_vjp``, ``shard_map``...) once, and ``inf`` loops for a ``while`` loop (its trip
    count is not known before it runs). A rough count, for choosing how hard XLA should
    optimize a program, not a time estimate.
    """
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    products = loops = 0.0
    for eqn in jaxpr.eqns:
        name, params = eqn.primitive.name, eqn.params
        if name == "while":
            return Work(products, math.inf)
        subs = [jaxpr_work(s) for s in _sub_jaxprs(params)]
        if name == "scan":
            products += params["length"] * sum(w.products for w in subs)
            loops += params["length"] * sum(w.loops for w in subs)
        elif name == "cond":
            larger = max(subs, key=lambda w: w.products + w.loops, default=Work(0.0, 0.0))
            products, loops = products + larger.products, loops + larger.loops
        elif subs:
            products += sum(w.products for w in subs)
            loops += sum(w.loops for w in subs)
        elif name == "dot_general":
            (contract_lhs, _), _ = params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            products += 2.0 * _size(eqn.outvars[0]) * math.prod(lhs[d] for d in contract_lhs)
        elif name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            out_features = rhs[params["dimension_numbers"].rhs_spec[0]]
            loops += 2.0 * _size(eqn.outvars[0]) * math.prod(rhs) / max(out_features, 1)
        else:
            loops += max([_size(v) for v in (*eqn.invars, *eqn.outvars)], default=0)
    return Work(products, loops)


def compile_options(jaxpr, platform: str) -> dict | None:
    """XLA options for a program: ``QUICK_CPU_OPTIONS`` for a small one on CPU, else None."""
    if platform == "cpu" and env_switch(ENV_QUICK, "quick compilation"):
        work = jaxpr_work(jaxpr)
        if work.products <= QUICK_COMPILE_FLOPS and work.loops <= QUICK_COMPILE_LOOPS:
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
        self.fun = fun
        self.jitted = jax.jit(fun, static_argnames=static_argnames)
        self.static_argnames = frozenset(static_argnames)
        self.programs: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        _LIVE.add(self)

    def clear(self) -> None:
        """Drop the compiled programs (and, with the old ``jax.jit`` object, its own cache)."""
        self.programs.clear()
        self.jitted = jax.jit(self.fun, static_argnames=tuple(self.static_argnames))

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
            program = self.programs[key] = _compile(traced.lower(), options, key[2])
            while len(self.programs) > MAX_PROGRAMS:
                self.programs.popitem(last=False)
        else:
            self.programs.move_to_end(key)
        return program(*args, **dynamic)


def program_key(lowered, options: dict | None, signature: tuple) -> tuple | None:
    """What a lowered program computes and how it is called, or None where the module alone
    does not tell.

    The key is the module's text (constants included: JAX writes closed-over arrays into
    it), XLA's options, the argument and result trees, the arguments' shapes, dtypes and
    placements, and which arguments the program kept. Two lowerings with the same key run
    the same executable. None (never shared) for a program that calls back into Python
    (``pure_callback``, ``io_callback``, ``jax.debug.print``: the executable binds the
    Python functions, which the text does not name), one with effects or with constants
    passed beside the module, and where JAX's lowering no longer says which of these hold.
    """
    args = getattr(getattr(lowered, "_lowering", None), "compile_args", None)
    needed = ("host_callbacks", "keepalive", "kept_var_idx", "ordered_effects", "unordered_effects")
    if not isinstance(args, dict) or not all(k in args for k in needed):
        return None
    if any(args[k] for k in needed if k != "kept_var_idx") or args.get("const_args"):
        return None
    try:
        key = (
            hashlib.sha256(lowered.as_text().encode()).digest(),
            tuple(sorted(options.items())) if options else None,
            lowered.in_tree,
            lowered.out_tree,
            signature,
            tuple(sorted(args["kept_var_idx"])),
            repr(args.get("in_shardings")),
            repr(args.get("out_shardings")),
        )
        hash(key)
    except Exception:  # an unhashable tree node, a module JAX cannot print: do not share
        return None
    return key


#: Compiled programs by ``program_key``, least recently used first out.
_SHARED: collections.OrderedDict[tuple, Any] = collections.OrderedDict()


def _compile(lowered, options: dict | None, signature: tuple):
    """``lowered.compile(options)``, or the program already compiled for the same key."""
    key = program_key(lowered, options, signature)
    if key is None:
        return lowered.compile(compiler_options=options)
    program = _SHARED.get(key)
    if program is not None:
        _SHARED.move_to_end(key)
    else:
        program = _SHARED[key] = lowered.compile(compiler_options=options)
        while len(_SHARED) > MAX_SHARED:
            _SHARED.popitem(last=False)
    return program


#: Every WorkJit alive, for ``clear_programs``.
_LIVE: weakref.WeakSet[WorkJit] = weakref.WeakSet()


def clear_programs() -> None:
    """Drop the compiled programs of every ``WorkJit``, and the shared ones."""
    _SHARED.clear()
    for jitted in tuple(_LIVE):
        jitted.clear()
