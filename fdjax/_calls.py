"""How a check or sweep calls the user's function: keyword arguments, ``has_aux``, and options
whose names the function also uses.

fdjax's bodies call ``f(*args)`` with positional arguments only. ``bind`` turns
``f(*args, **kwargs)`` with an auxiliary output into that form: the keyword arguments become
one more positional argument (never differentiated; its arrays are traced, everything else
is static) and the aux is dropped. The bound function is hashable by value, so checking the
same function twice hits the same compiled program.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any
from collections.abc import Callable, Mapping, Sequence


@dataclasses.dataclass(frozen=True)
class Bound:
    """``fun`` called with keyword arguments ``names`` (their values: the last positional
    argument) and, with ``has_aux``, returning the first element of its ``(out, aux)`` pair."""

    fun: Callable
    names: tuple[str, ...]
    has_aux: bool
    caller: str

    def __call__(self, *args: Any) -> Any:
        kwargs: dict[str, Any] = {}
        if self.names:
            *rest, values = args
            args, kwargs = tuple(rest), dict(zip(self.names, values, strict=True))
        out = self.fun(*args, **kwargs)
        if not self.has_aux:
            return out
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(
                f"{self.caller}(has_aux=True) requires the function to return a pair (output, aux), "
                f"got {type(out).__name__}"
                + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
            )
        return out[0]


def bind(
    fun: Callable,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    argnums: Any,
    has_aux: Any,
    caller: str,
) -> tuple[Callable, tuple, Any]:
    """``(fun, args, argnums)`` to call as ``fun(*args)``: the keyword arguments appended as
    one positional argument (a negative ``argnums`` still counts from the end of ``args``)."""
    if not isinstance(has_aux, bool):
        raise TypeError(f"{caller}(has_aux=...) must be True or False, got {has_aux!r}")
    args = tuple(args)
    if not kwargs and not has_aux:
        return fun, args, argnums
    if kwargs:
        argnums = _non_negative(argnums, len(args))
        args = args + (tuple(kwargs.values()),)
    return Bound(fun, tuple(kwargs), has_aux, caller), args, argnums


def _non_negative(argnums: Any, nargs: int) -> Any:
    """Negative argnums made positional before an argument is appended (others as given:
    ``normalize_argnums`` validates them)."""
    if isinstance(argnums, int) and not isinstance(argnums, bool) and -nargs <= argnums < 0:
        return argnums % nargs
    if isinstance(argnums, (tuple, list)):
        return type(argnums)(
            a % nargs if isinstance(a, int) and not isinstance(a, bool) and -nargs <= a < 0 else a
            for a in argnums
        )
    return argnums


def check_collisions(
    fun: Callable,
    nargs: int,
    kwargs: Mapping[str, Any],
    given: Mapping[str, Any],
    caller: str,
    call_form: str,
) -> None:
    """Raise when an option of fdjax is also a parameter of ``fun`` that the call leaves
    unbound: given explicitly (``given``: the options not at their default) it was meant for
    one of the two; required by ``fun``, the call would fail inside the check.

    ``call_form`` is how to pass the function's arguments instead, e.g.
    ``"fdjax.check_grad(loss, **options)(*args, key=...)"``.
    """
    try:
        params = inspect.signature(fun).parameters
    except (TypeError, ValueError):  # builtins, some C callables: nothing to compare
        return
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    bound = {p.name for p in positional[:nargs]} | set(kwargs)
    for name, p in params.items():
        if p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL, p.VAR_KEYWORD) or name in bound:
            continue
        if name in given or (name in _OPTION_NAMES and p.default is p.empty):
            what = "given to fdjax" if name in given else "not given"
            raise TypeError(
                f"{caller}: {name!r} is an option of {caller} and also a parameter of "
                f"{_name(fun)} ({what}). Pass the function's own arguments through the checker: "
                f"{call_form.format(name=name)}, or bind them first with "
                f"functools.partial({_name(fun)}, {name}=...)"
            )


#: The option names of the checks and the sweep (``check_collisions`` compares f's parameters).
_OPTION_NAMES = frozenset(
    {
        "argnums",
        "has_aux",
        "mode",
        "method",
        "step",
        "steps",
        "key",
        "k",
        "num_directions",
        "max_located",
        "order",
        "precision",
        "margin",
        "chunk_size",
        "memory_budget",
        "devices",
        "cotangents",
        "tangents",
    }
)


def _name(fun: Callable) -> str:
    return getattr(fun, "__name__", None) or type(fun).__name__
