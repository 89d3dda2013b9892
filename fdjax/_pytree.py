"""The flat parameter view of a function's arguments.

FD works on one flat vector x. This module turns ``f(*args)`` with ``argnums`` into
``flat_fn(x)`` over the floating-point leaves of the differentiated arguments, and back.
Integer and boolean leaves are held fixed (their "gradient" is a float0 zero, as with
``jax.grad(..., allow_int=True)``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


def is_array(x: Any) -> bool:
    """Leaves that are traced by fdjax's jit: JAX and NumPy arrays and NumPy scalars."""
    return isinstance(x, (jax.Array, np.ndarray, np.generic))


def normalize_argnums(argnums: int | Sequence[int], nargs: int, caller: str) -> tuple[int, ...]:
    """Validate argnums against the number of positional arguments."""
    seq = (
        (argnums,)
        if isinstance(argnums, int)
        else tuple(argnums)
        if isinstance(argnums, (tuple, list))
        else None
    )
    if not seq or not all(isinstance(a, int) and not isinstance(a, bool) for a in seq):
        raise TypeError(f"{caller}(argnums=...) must be an int or a non-empty tuple of ints, got {argnums!r}")
    out = []
    for a in seq:
        if not -nargs <= a < nargs:
            raise ValueError(
                f"{caller}(argnums=...) refers to positional argument {a}, but the function was "
                f"called with {nargs} positional argument(s)"
            )
        out.append(a % nargs)
    if len(set(out)) != len(out):
        raise ValueError(f"{caller}(argnums=...) must not repeat an argument, got {argnums!r}")
    return tuple(out)


def _is_float(leaf) -> bool:
    return jnp.issubdtype(jnp.result_type(leaf), jnp.floating)


def _check_leaf_dtype(leaf, path, caller):
    dt = jnp.result_type(leaf)
    if jnp.issubdtype(dt, jnp.complexfloating):
        raise TypeError(
            f"{caller}: argument leaf {jax.tree_util.keystr(path) or '<root>'} is complex ({dt}); "
            "fdjax differentiates real floating-point parameters only"
        )


@dataclasses.dataclass(frozen=True)
class FlatArgs:
    """Differentiated float leaves of ``args`` as one flat vector ``x``.

    Attributes:
        x: the flat vector (working dtype: the promoted dtype of the float leaves).
        unravel: flat vector -> tuple of the differentiated float leaves.
        args: the original (array-converted) positional arguments.
        argnums: normalized argnums.
        float_paths: key path of each float leaf, in ravel order, prefixed by the argument.
        float_shapes: shape of each float leaf.
        int_paths: key paths of integer/bool leaves that are held fixed.
    """

    args: tuple
    argnums: tuple[int, ...]
    treedef: Any  # treedef of tuple(args[i] for i in argnums)
    is_float: tuple[bool, ...]
    leaves: tuple
    float_paths: tuple[str, ...]
    float_shapes: tuple[tuple[int, ...], ...]
    float_dtypes: tuple[Any, ...]

    @functools.cached_property
    def _raveled(self) -> tuple[jax.Array, Callable]:
        # Lazy: an eager ravel costs a few dispatches (~0.5 ms) on every call outside jit,
        # and the host-side checks only need the leaves.
        return ravel_pytree([leaf for f, leaf in zip(self.is_float, self.leaves) if f])

    @property
    def x(self) -> jax.Array:
        return self._raveled[0]

    @property
    def unravel(self) -> Callable:
        return self._raveled[1]

    @property
    def float_leaves(self) -> list:
        return [leaf for f, leaf in zip(self.is_float, self.leaves) if f]

    @property
    def size(self) -> int:
        return int(sum(np.prod(s, dtype=np.int64) for s in self.float_shapes))

    def call_args(self, flat: jax.Array) -> tuple:
        """Positional arguments with the float leaves replaced by ``flat``."""
        floats = iter(self.unravel(flat))
        leaves = [next(floats) if f else leaf for f, leaf in zip(self.is_float, self.leaves)]
        diff = jax.tree_util.tree_unflatten(self.treedef, leaves)
        args = list(self.args)
        for i, a in zip(self.argnums, diff):
            args[i] = a
        return tuple(args)

    def unflatten(self, flat: jax.Array, int_fill: str = "float0") -> Any:
        """A flat vector (e.g. a gradient) back to the differentiated argument(s)' structure.

        Integer/bool leaves become float0 zeros (``int_fill="float0"``) or zeros of the
        working dtype (``int_fill="zeros"``).
        """
        floats = iter(self.unravel(flat))
        leaves = []
        for f, leaf in zip(self.is_float, self.leaves):
            if f:
                leaves.append(next(floats))
            elif int_fill == "float0":
                leaves.append(np.zeros(np.shape(leaf), dtype=jax.dtypes.float0))
            else:
                leaves.append(jnp.zeros(np.shape(leaf), self.x.dtype))
        tree = jax.tree_util.tree_unflatten(self.treedef, leaves)
        return tree[0] if len(self.argnums) == 1 and self._single else tree

    _single: bool = True


def flatten_args(args: Sequence[Any], argnums: int | Sequence[int], caller: str) -> FlatArgs:
    """Build the flat view. Validates emptiness, dtypes (not finiteness: values may be traced)."""
    argnums_t = normalize_argnums(argnums, len(args), caller)
    args = tuple(args)
    args = tuple(jax.tree_util.tree_map(jnp.asarray, a) if i in argnums_t else a for i, a in enumerate(args))
    diff = tuple(args[i] for i in argnums_t)
    path_leaves, treedef = jax.tree_util.tree_flatten_with_path(diff)
    if not path_leaves:
        raise ValueError(f"{caller}: the differentiated argument(s) {argnums_t} form an empty pytree")
    paths, leaves = zip(*path_leaves)
    for p, leaf in zip(paths, leaves):
        _check_leaf_dtype(leaf, p, caller)
    is_float = tuple(_is_float(leaf) for leaf in leaves)
    if not any(is_float):
        raise TypeError(
            f"{caller}: the differentiated argument(s) {argnums_t} have no floating-point leaves "
            f"(dtypes {sorted({str(jnp.result_type(leaf)) for leaf in leaves})}); nothing to differentiate"
        )
    floats = [leaf for f, leaf in zip(is_float, leaves) if f]

    def name(p):
        # Drop the leading tuple index of the argnums wrapper when there is one argnum.
        return jax.tree_util.keystr(p[1:] if len(argnums_t) == 1 else p) or "<root>"

    single = isinstance(argnums, int)
    fa = FlatArgs(
        args=args,
        argnums=argnums_t,
        treedef=treedef,
        is_float=is_float,
        leaves=tuple(leaves),
        float_paths=tuple(name(p) for f, p in zip(is_float, paths) if f),
        float_shapes=tuple(tuple(np.shape(leaf)) for leaf in floats),
        float_dtypes=tuple(jnp.result_type(leaf) for leaf in floats),
        _single=single,
    )
    return fa


def keystr_leaves(tree) -> list[str]:
    return [jax.tree_util.keystr(p) or "<root>" for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def element_name(fa: FlatArgs, i: int) -> str:
    """'params['w'][2, 3]'-style name of flat coordinate i."""
    start = 0
    for path, shape in zip(fa.float_paths, fa.float_shapes):
        size = int(np.prod(shape, dtype=np.int64))
        if i < start + size:
            idx = np.unravel_index(i - start, shape) if shape else ()
            return f"{path}[{', '.join(str(int(j)) for j in idx)}]" if shape else path
        start += size
    raise IndexError(i)


def is_traced(*trees: Any) -> bool:
    """True when any leaf is a tracer (we are inside the user's jit/vmap/grad)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(trees))
