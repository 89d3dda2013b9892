"""JAX's persistent compilation cache: where fdjax keeps it, and turning it on.

A compiled XLA program is written to a folder and read back by the next process that
compiles the same program (the next ``fdjax check``, the next pytest run), which then skips
the compilation. The command turns the cache on by default; ``fdjax.enable_compilation_cache``
does it in a Python process, and the pytest plugin in a test session. This module imports
JAX only inside its functions, so the command's parser can read the environment without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

#: ``FDJAX_CACHE=0`` turns the cache off where fdjax would turn it on by itself (the
#: command, the pytest plugin's ini option); ``FDJAX_CACHE_DIR`` moves the default folder.
ENV_SWITCH = "FDJAX_CACHE"
ENV_DIR = "FDJAX_CACHE_DIR"
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")

#: The JAX options set with the folder: every program is written, whatever its compile
#: time or size (JAX's defaults keep only those that took a second or more to compile;
#: most of fdjax's programs compile in less).
_THRESHOLDS = {
    "jax_persistent_cache_min_compile_time_secs": 0.0,
    "jax_persistent_cache_min_entry_size_bytes": -1,
}
_DIR_OPTION = "jax_compilation_cache_dir"


def default_dir() -> str:
    """The default cache folder: ``$FDJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/fdjax/jax``,
    else ``~/.cache/fdjax/jax`` (a relative ``XDG_CACHE_HOME`` is ignored, as the XDG
    specification says)."""
    moved = os.environ.get(ENV_DIR, "").strip()
    if moved:
        return os.path.abspath(os.path.expanduser(moved))
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fdjax", "jax")


def switched_on() -> bool:
    """Whether ``FDJAX_CACHE`` leaves the cache on (unset or empty: on).

    Raises:
        ValueError: a value that is not one of the accepted spellings (the message names
            the variable; the caller says who read it).
    """
    return env_switch(ENV_SWITCH, "cache")


def env_switch(variable: str, what: str) -> bool:
    """Whether the environment variable ``variable`` leaves ``what`` on (unset or empty: on).

    Raises:
        ValueError: a value that is not one of the accepted spellings (naming the variable).
    """
    value = os.environ.get(variable, "").strip()
    if not value or value.lower() in _ON:
        return True
    if value.lower() in _OFF:
        return False
    raise ValueError(
        f"the environment variable {variable} must be one of {list(_OFF)} ({what} off) or "
        f"{list(_ON)} ({what} on), got {value!r}"
    )


def folder(path: Any, what: str) -> str:
    """``path`` (None: ``default_dir()``) as an absolute, existing, writable folder.

    Args:
        path: the folder, a str or ``os.PathLike``; ``~`` is expanded. None: the default.
        what: how the folder was given, to begin the error message with
            (``"fdjax.enable_compilation_cache(path=...)"``, ``"--fdjax-cache: FDJAX_CACHE_DIR"``).

    Raises:
        TypeError: not a str, an ``os.PathLike`` or None.
        ValueError: empty, not a folder, or not creatable or writable.
    """
    if path is None:
        path = default_dir()
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a folder (str or os.PathLike) or None, got {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what} must be a folder, got {path!r}")
    where = os.path.abspath(os.path.expanduser(text))
    try:
        os.makedirs(where, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"{what} must be a folder that can be created, got {text!r}: {e.strerror or e}"
        ) from None
    if not os.access(where, os.W_OK | os.X_OK):
        raise ValueError(f"{what} must be a writable folder, got {text!r}")
    return where


def configured_dir() -> str | None:
    """The folder JAX's cache is set to now (None: off), e.g. from ``JAX_COMPILATION_CACHE_DIR``."""
    import jax

    value = getattr(jax.config, _DIR_OPTION)
    return str(value) if value else None


def activate(where: str) -> Callable[[], None]:
    """Point JAX's persistent compilation cache at the folder ``where`` (already checked by
    ``folder``), writing every program; returns a function that restores JAX's previous
    cache options (the command and the pytest plugin undo what they set)."""
    import jax

    names = (_DIR_OPTION, *_THRESHOLDS)
    previous = {name: getattr(jax.config, name) for name in names}
    _set({_DIR_OPTION: where, **_THRESHOLDS})

    def restore() -> None:
        _set(previous)

    return restore


def _set(values: dict[str, Any]) -> None:
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    moved = getattr(jax.config, _DIR_OPTION) != values[_DIR_OPTION]
    for name, value in values.items():
        jax.config.update(name, value)
    if moved:
        # JAX opens the cache once, at the first compilation: forget the folder it opened.
        compilation_cache.reset_cache()


def enable_compilation_cache(path: str | os.PathLike[str] | None = None) -> str:
    """Turn on JAX's persistent compilation cache for this process, in ``path``.

    Every XLA program compiled afterwards is written to the folder and read back by the
    next process that compiles the same program (same function, shapes, dtypes, options,
    JAX version and device), which then skips the compilation: the second run of a test
    suite or a script starts checking at once. Programs are written whatever their compile
    time (JAX's default keeps only those that took a second or more). Call it at startup,
    before the first compilation (in a test suite: ``conftest.py``; or use the pytest
    plugin's ``--fdjax-cache``). It sets ``jax_compilation_cache_dir`` and the two
    ``jax_persistent_cache_min_*`` thresholds, which last for the process.

    The folder is trusted: a program read from it runs as your code, so do not point it
    at a folder other people can write to.

    Args:
        path: the folder (created if missing; ``~`` is expanded). Default:
            ``$FDJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/fdjax/jax``, else
            ``~/.cache/fdjax/jax`` (the folder the ``fdjax`` command uses).

    Returns:
        The folder, as an absolute path.

    Raises:
        TypeError: ``path`` is not a str, an ``os.PathLike`` or None.
        ValueError: ``path`` is empty, or the folder cannot be created or written.

    Example:
        In a test suite's ``conftest.py``, before anything is compiled::

            import fdjax

            fdjax.enable_compilation_cache()  # ~/.cache/fdjax/jax, or $FDJAX_CACHE_DIR
    """
    where = folder(path, "fdjax.enable_compilation_cache(path=...)")
    activate(where)
    return where
