"""The flat parameter view of a function's arguments.

FD works on one flat vector x. This module turns ``f(*args)`` with ``argnums`` into
``flat_fn(x)`` over the floating-point leaves of the differentiated arguments, and back.
Integer and boolean leaves are held fixed (their "gradient" is a float0 zero, as with
``jax.grad(..., allow_int=True)``). Leaves of several float dtypes share the widest one in x;
f sees each leaf rounded back to its own dtype, so steps are taken per leaf
(``FlatArgs.quantize``). ``apply_precision`` chooses the dtypes a check or sweep runs in.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any
from collections.abc import Callable, Sequence

import jax
import jax.core
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
    return is_array(leaf) and jnp.issubdtype(jnp.result_type(leaf), jnp.floating)


def _check_leaf_dtype(leaf, path, caller):
    dt = jnp.result_type(leaf)
    if jnp.issubdtype(dt, jnp.complexfloating):
        raise TypeError(
            f"{caller}: argument leaf {jax.tree_util.keystr(path) or '<root>'} is complex ({dt}); "
            "fdjax differentiates real floating-point parameters only"
        )


def _in_plain_containers(path) -> bool:
    """The key path goes through dicts, lists and tuples only (no object attribute)."""
    return all(isinstance(k, (jax.tree_util.DictKey, jax.tree_util.SequenceKey)) for k in path)


def as_parameter(path, leaf) -> Any:
    """A leaf of a differentiated argument as fdjax holds it.

    - Arrays (JAX, NumPy, NumPy scalars) become JAX arrays: differentiated when their dtype
      is floating; integer, boolean and PRNG key arrays are held fixed (traced, gradient a
      float0 zero, as ``jax.grad(..., allow_int=True)``).
    - A Python float given as an argument or inside dicts, lists and tuples becomes an array
      and is differentiated, as ``jax.grad`` does.
    - Everything else is held fixed and never traced, with gradient ``None`` as
      ``equinox.filter_grad`` gives: functions, strings, Python ints and bools, and Python
      floats stored as an object's attribute (an equinox module's hyperparameters, e.g.
      ``Dropout.p``, which equinox itself never differentiates).
    """
    if is_array(leaf):
        return jnp.asarray(leaf)
    if type(leaf) is float and _in_plain_containers(path):
        return jnp.asarray(leaf)
    return leaf


@dataclasses.dataclass(frozen=True)
class FlatArgs:
    """Differentiated float leaves of ``args`` as one flat vector ``x``.

    Attributes:
        x: the flat vector (working dtype: the promoted dtype of the float leaves).
        unravel: flat vector -> tuple of the differentiated float leaves.
        args: the positional arguments, with the differentiated ones' array leaves as JAX arrays.
        argnums: normalized argnums.
        is_float: per leaf of the differentiated arguments, whether it is differentiated.
        leaves: the leaves of the differentiated arguments (arrays and held-fixed objects).
        float_paths: key path of each float leaf, in ravel order, prefixed by the argument.
        float_shapes: shape of each float leaf.
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
        # and the host-side checks only need the leaves. Mixed float dtypes (bfloat16 and
        # float32) promote to the wider one, also under strict dtype promotion.
        with jax.numpy_dtype_promotion("standard"):
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

    @property
    def dtype(self) -> np.dtype:
        """The working dtype of x: the widest float leaf dtype (no ravel needed)."""
        with jax.numpy_dtype_promotion("standard"):
            return np.dtype(jnp.result_type(*self.float_dtypes))

    @property
    def mixed(self) -> bool:
        """Some float leaf is narrower than x: f sees its elements rounded to its dtype."""
        return any(np.dtype(dt) != self.dtype for dt in self.float_dtypes)

    def per_element(self, per_leaf: Sequence[float]) -> jax.Array:
        """One value per float leaf, repeated over the leaf's elements: [N] in x's dtype."""
        sizes = [int(np.prod(s, dtype=np.int64)) for s in self.float_shapes]
        return jnp.asarray(np.repeat(np.asarray(per_leaf, np.float64), sizes), self.dtype)

    def element_eps(self) -> jax.Array:
        """Machine epsilon of each element's own leaf dtype: [N] in x's dtype."""
        return self.per_element([float(jnp.finfo(dt).eps) for dt in self.float_dtypes])

    def eps_ratio(self) -> jax.Array | None:
        """eps of each element's leaf over eps of x ([N], >= 1), or None when every float
        leaf has x's dtype."""
        if not self.mixed:
            return None
        return self.element_eps() / jnp.asarray(jnp.finfo(self.dtype).eps, self.dtype)

    def quantize(self, values: jax.Array, idx: jax.Array | None = None) -> jax.Array:
        """``values`` at the coordinates of x rounded to their leaf's dtype (and back).

        ``values`` is [..., N] (every coordinate) or, with ``idx`` [M], [..., M] values of
        the coordinates ``idx``. ``quantize(x + d) − x`` is the displacement f actually sees
        when a narrower leaf (bfloat16 in a float32 x) is rounded on the way in. Identity,
        with no operations, when every float leaf has x's dtype.
        """
        if not self.mixed:
            return values
        sizes = [int(np.prod(s, dtype=np.int64)) for s in self.float_shapes]
        leaf_of = np.repeat(np.arange(len(sizes)), sizes)
        for dt in sorted({np.dtype(d) for d in self.float_dtypes} - {self.dtype}, key=str):
            mask = np.isin(leaf_of, [j for j, d in enumerate(self.float_dtypes) if np.dtype(d) == dt])
            m = jnp.asarray(mask) if idx is None else jnp.asarray(mask)[idx]
            values = jnp.where(m, values.astype(dt).astype(values.dtype), values)
        return values

    def call_args(self, flat: jax.Array) -> tuple:
        """Positional arguments with the float leaves replaced by ``flat``."""
        return self._with_floats(iter(self.unravel(flat)))

    def call_floats(self, floats: Sequence[Any]) -> tuple:
        """Positional arguments with the float leaves replaced by ``floats`` (leaf by leaf)."""
        return self._with_floats(iter(floats))

    @property
    def float_sizes(self) -> tuple[int, ...]:
        return tuple(int(np.prod(s, dtype=np.int64)) for s in self.float_shapes)

    def call_pieces(self, pieces: Sequence[jax.Array]) -> tuple:
        """Positional arguments with float leaf i built from ``pieces[i]`` (its flat values in
        x's dtype): ``call_args(concatenate(pieces))`` without the concatenation, so that a
        vmap over one piece batches only that leaf (the engine's structure-aware plans)."""
        floats = (
            jnp.reshape(p, s).astype(d)
            for p, s, d in zip(pieces, self.float_shapes, self.float_dtypes, strict=True)
        )
        return self._with_floats(floats)

    def _with_floats(self, floats) -> tuple:
        leaves = [next(floats) if f else leaf for f, leaf in zip(self.is_float, self.leaves)]
        diff = jax.tree_util.tree_unflatten(self.treedef, leaves)
        args = list(self.args)
        for i, a in zip(self.argnums, diff):
            args[i] = a
        return tuple(args)

    def unflatten(self, flat: jax.Array, int_fill: str = "float0") -> Any:
        """A flat vector (e.g. a gradient) back to the differentiated argument(s)' structure.

        Integer, boolean and key array leaves become float0 zeros (``int_fill="float0"``)
        or zeros of the working dtype (``int_fill="zeros"``); leaves that are not arrays
        (functions, strings, Python ints) become None, as in ``equinox.filter_grad``.
        """
        floats = iter(self.unravel(flat))
        return self.rebuild(lambda leaf: next(floats), int_fill)

    def rebuild(self, float_leaf: Callable, int_fill: str = "float0", shape: tuple = ()) -> Any:
        """The differentiated argument(s)' structure with ``float_leaf(leaf)`` at the float
        leaves and, at the other leaves, zeros of shape ``shape + leaf.shape`` or None."""
        leaves = []
        for f, leaf in zip(self.is_float, self.leaves):
            if f:
                leaves.append(float_leaf(leaf))
            elif not is_array(leaf):
                leaves.append(None)
            elif int_fill == "float0":
                leaves.append(np.zeros(shape + np.shape(leaf), dtype=jax.dtypes.float0))
            else:
                leaves.append(jnp.zeros(shape + np.shape(leaf), self.x.dtype))
        tree = jax.tree_util.tree_unflatten(self.treedef, leaves)
        return tree[0] if len(self.argnums) == 1 and self._single else tree

    _single: bool = True


def _describe_leaf(leaf) -> str:
    return str(jnp.result_type(leaf)) if is_array(leaf) else type(leaf).__name__


def flatten_args(args: Sequence[Any], argnums: int | Sequence[int], caller: str) -> FlatArgs:
    """Build the flat view. Validates emptiness, dtypes (not finiteness: values may be traced).

    Leaves of the differentiated arguments are taken as ``as_parameter`` says: float arrays
    (and Python floats in plain containers) are differentiated, other arrays are held fixed
    and traced, anything else is held fixed and never traced.
    """
    argnums_t = normalize_argnums(argnums, len(args), caller)
    args = tuple(args)
    diff = tuple(args[i] for i in argnums_t)
    path_leaves, treedef = jax.tree_util.tree_flatten_with_path(diff)
    if not path_leaves:
        raise ValueError(f"{caller}: the differentiated argument(s) {argnums_t} form an empty pytree")
    paths = tuple(p for p, _ in path_leaves)
    leaves = tuple(as_parameter(p[1:], leaf) for p, leaf in path_leaves)
    for p, leaf in zip(paths, leaves):
        if is_array(leaf):
            _check_leaf_dtype(leaf, p, caller)
    is_float = tuple(_is_float(leaf) for leaf in leaves)
    if not any(is_float):
        raise TypeError(
            f"{caller}: the differentiated argument(s) {argnums_t} have no floating-point leaves "
            f"(leaves: {sorted({_describe_leaf(leaf) for leaf in leaves})}); nothing to differentiate. "
            "fdjax differentiates float arrays (and Python floats in dicts, lists and tuples); "
            "other leaves are held fixed"
        )
    converted = jax.tree_util.tree_unflatten(treedef, leaves)
    args_l = list(args)
    for i, a in zip(argnums_t, converted):
        args_l[i] = a
    args = tuple(args_l)
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
        leaves=leaves,
        float_paths=tuple(name(p) for f, p in zip(is_float, paths) if f),
        float_shapes=tuple(tuple(np.shape(leaf)) for leaf in floats),
        float_dtypes=tuple(jnp.result_type(leaf) for leaf in floats),
        _single=single,
    )
    return fa


#: The values of ``precision=`` (check_grad/vjp/jvp, sweep) and what each does.
PRECISIONS = {
    None: "16-bit float leaves (bfloat16, float16) cast to float32",
    "native": "every leaf in its own dtype",
    "float64": "every float leaf cast to float64",
}


def check_precision(precision: Any, caller: str) -> None:
    """Validate ``precision=`` (host side): one of ``PRECISIONS``; float64 needs 64-bit JAX."""
    if not (precision is None or (isinstance(precision, str) and precision in PRECISIONS)):
        accepted = [f"{k!r} ({v})" for k, v in PRECISIONS.items()]
        raise ValueError(
            f"{caller}(precision=...) must be {', '.join(accepted[:-1])} or {accepted[-1]}, got {precision!r}"
        )
    if precision == "float64" and not jax.config.jax_enable_x64:  # type: ignore[attr-defined]
        raise ValueError(
            f"{caller}(precision='float64') needs 64-bit JAX, which is disabled: set the environment "
            "variable JAX_ENABLE_X64=1 before starting Python, or call "
            "jax.config.update('jax_enable_x64', True) at startup, before creating arrays"
        )


def _is_narrow(leaf) -> bool:
    """A float array leaf narrower than float32 (bfloat16, float16, float8 types)."""
    return is_array(leaf) and jnp.issubdtype(leaf.dtype, jnp.floating) and jnp.finfo(leaf.dtype).bits < 32


def apply_precision(precision: Any, args: Any, cotangents: Any, tangents: Any, caller: str):
    """Cast the arguments, cotangents and tangents of a check (or sweep) to the precision asked.

    - ``None`` (default): 16-bit float leaves (bfloat16, float16; also float8) of every
      argument, differentiated or not, and of the cotangents and tangents become float32;
      float32 and float64 leaves are unchanged. A 16-bit check's tolerance (f's rounding,
      ~1e-2 relative) is larger than the gradients, so it could not tell a gradient from
      twice itself; in float32 it can.
    - ``"native"``: nothing is cast; every leaf is checked in its own dtype.
    - ``"float64"``: every float leaf becomes float64 (needs 64-bit JAX).

    Returns:
        ``(args, cotangents, tangents, label)``; ``label`` says what ran: ``"native"``,
        ``"float32 (bfloat16 leaves cast up)"`` or ``"float64"``.

    Raises:
        ValueError: a value not in ``PRECISIONS``, or ``"float64"`` without 64-bit JAX.
    """
    check_precision(precision, caller)
    if precision == "native":
        return tuple(args), cotangents, tangents, "native"
    if precision == "float64":

        def to64(leaf):
            if is_array(leaf) and jnp.issubdtype(leaf.dtype, jnp.floating):
                return jnp.asarray(leaf, jnp.float64)
            return leaf

        cast = [jax.tree_util.tree_map(to64, t) for t in (tuple(args), cotangents, tangents)]
        return cast[0], cast[1], cast[2], "float64"
    narrow = sorted(
        {
            str(np.dtype(leaf.dtype))
            for leaf in jax.tree_util.tree_leaves((tuple(args), cotangents, tangents))
            if _is_narrow(leaf)
        }
    )
    if not narrow:
        return tuple(args), cotangents, tangents, "native"

    def to32(leaf):
        return jnp.asarray(leaf, jnp.float32) if _is_narrow(leaf) else leaf

    cast = [jax.tree_util.tree_map(to32, t) for t in (tuple(args), cotangents, tangents)]
    return cast[0], cast[1], cast[2], f"float32 ({', '.join(narrow)} leaves cast up)"


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
