"""The command line's TARGET: ``module:function`` or ``path/to/file.py:function`` → a problem.

A problem is ``(loss_fn, params, *args)``: either TARGET is a function returning that
tuple (like ``fdjax.examples.cnn``), or TARGET is the loss and ``--params`` (and
optionally ``--args``) name the values. Every failure is a ``TargetError`` with one line
that says what was wrong; the command prints it instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import sys
from typing import Any
from collections.abc import Callable

import jax
import jax.numpy as jnp


class TargetError(ValueError):
    """A TARGET, --params or --args that cannot be loaded or used (the message is one line)."""


@dataclasses.dataclass
class Problem:
    """A loss and the arguments it is checked at."""

    loss_fn: Callable
    params: Any
    args: tuple
    name: str


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def load_object(spec: str, what: str = "TARGET") -> Any:
    """Import ``module:attr`` or ``file.py:attr`` (attr may be dotted).

    Examples:
        >>> load_object("fdjax.examples:cnn").__name__
        'cnn'
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise TargetError(f"{what} must be module:function or path/to/file.py:function, got {spec!r}")
    mod_part, _, attr = spec.rpartition(":")
    if not mod_part or not attr:
        raise TargetError(f"{what} must be module:function or path/to/file.py:function, got {spec!r}")
    if mod_part.endswith(".py") or os.sep in mod_part or "/" in mod_part:
        path = os.path.abspath(mod_part)
        if not os.path.isfile(path):
            raise TargetError(f"{what} {spec!r}: no such file {mod_part!r}")
        name = "_fdjax_target_" + os.path.splitext(os.path.basename(path))[0]
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise TargetError(f"{what} {spec!r}: cannot load {mod_part!r} as a Python file")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        sys.path.insert(0, os.path.dirname(path))
        try:
            module_spec.loader.exec_module(module)
        except BaseException as e:  # noqa: BLE001 - user code: report it in one line
            sys.modules.pop(name, None)
            if isinstance(e, KeyboardInterrupt):
                raise
            raise TargetError(f"{what} {spec!r}: importing {mod_part!r} failed: {_one_line(e)}") from None
        finally:
            sys.path.remove(os.path.dirname(path))
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(mod_part)
        except ModuleNotFoundError as e:
            if e.name and mod_part.startswith(e.name):
                raise TargetError(f"{what} {spec!r}: no module named {e.name!r}") from None
            raise TargetError(f"{what} {spec!r}: importing {mod_part!r} failed: {_one_line(e)}") from None
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            raise TargetError(f"{what} {spec!r}: importing {mod_part!r} failed: {_one_line(e)}") from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"{what} {spec!r}: {mod_part!r} has no attribute {attr!r}") from None
    return obj


def _requires_arguments(fn: Callable) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return any(
        p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        for p in sig.parameters.values()
    )


def _value(spec: str, what: str) -> Any:
    obj = load_object(spec, what)
    if callable(obj) and not isinstance(obj, jax.Array):
        if _requires_arguments(obj):
            raise TargetError(
                f"{what} {spec!r} is a function that needs arguments; name a value or a "
                "function without arguments"
            )
        try:
            obj = obj()
        except Exception as e:  # noqa: BLE001
            raise TargetError(f"{what} {spec!r}: calling it failed: {_one_line(e)}") from None
    return obj


def load_problem(target: str, params: str | None = None, args: str | None = None) -> Problem:
    """Resolve TARGET (and --params/--args) into a loss and its arguments, checked to give a
    real scalar.

    Examples:
        >>> p = load_problem("fdjax.examples:mlp")
        >>> p.name, len(p.args)
        ('fdjax.examples:mlp', 2)
    """
    obj = load_object(target)
    if not callable(obj):
        raise TargetError(f"TARGET {target!r} is not callable (it is a {type(obj).__name__})")
    if params is not None:
        loss_fn = obj
        p = _value(params, "--params")
        extra = _value(args, "--args") if args is not None else ()
        if not isinstance(extra, (tuple, list)):
            extra = (extra,)
    else:
        if args is not None:
            raise TargetError("--args needs --params (the loss's first argument)")
        if _requires_arguments(obj):
            raise TargetError(
                f"TARGET {target!r} takes arguments: pass --params module:attribute for its parameters, "
                "or point TARGET at a function returning (loss_fn, params, *args)"
            )
        try:
            out = obj()
        except Exception as e:  # noqa: BLE001
            raise TargetError(f"TARGET {target!r}: calling it failed: {_one_line(e)}") from None
        if not (isinstance(out, (tuple, list)) and len(out) >= 2 and callable(out[0])):
            raise TargetError(
                f"TARGET {target!r} returned a {type(out).__name__}; expected (loss_fn, params, *args) "
                "or pass --params"
            )
        loss_fn, p, extra = out[0], out[1], tuple(out[2:])
    problem = Problem(loss_fn, p, tuple(extra), target)
    check_scalar(problem)
    return problem


def check_scalar(problem: Problem) -> None:
    """The loss must evaluate to a real scalar at the given arguments."""
    try:
        out = jax.eval_shape(problem.loss_fn, problem.params, *problem.args)
    except Exception as e:  # noqa: BLE001
        raise TargetError(
            f"TARGET {problem.name!r}: calling loss_fn(params, *args) failed: {_one_line(e)}"
        ) from None
    shape = getattr(out, "shape", None)
    dtype = getattr(out, "dtype", None)
    if shape != ():
        got = f"shape {tuple(shape)}" if shape is not None else f"a {type(out).__name__}"
        raise TargetError(f"TARGET {problem.name!r}: the loss returns {got}; expected a scalar")
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise TargetError(f"TARGET {problem.name!r}: the loss returns dtype {dtype}; expected a real float")


def cast_floats(tree: Any, dtype: Any) -> Any:
    """Cast the floating-point leaves of a pytree to ``dtype`` (integer leaves unchanged)."""

    def cast(leaf):
        a = jnp.asarray(leaf)
        return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else leaf

    return jax.tree_util.tree_map(cast, tree)
