"""Progress over the engine's chunks: the loss reports each evaluated chunk to the host.

The engine runs all perturbed evaluations in one jitted call (``lax.map`` over vmapped
chunks), so progress cannot be counted from Python between calls. Instead the loss is
wrapped so that every call also sends the (stop-gradient) loss value through a
``jax.pure_callback`` with ``vmap_method="expand_dims"``: inside a vmapped chunk that is
one host call per chunk, carrying the chunk's values, and the bar advances by their count.
The callback's output (zeros) is added to the loss, so the value is unchanged and the
callback is not removed as dead code.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Progress"]


class Progress:
    """A progress bar (rich, on a terminal) over the evaluations of a wrapped loss.

    Disabled progress (not a TTY, ``--quiet``, or rich missing) wraps nothing and prints
    nothing.

    Example:
        >>> p = Progress(enabled=False)
        >>> with p.stage("check", total=10):
        ...     pass
        >>> p.evaluations
        0
    """

    def __init__(self, enabled: bool, stream: Any = None):
        self.stream = sys.stderr if stream is None else stream
        self.evaluations = 0
        self._bar = None
        self._task = None
        self._total = 0
        if enabled:
            try:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress
                from rich.progress import TextColumn, TimeElapsedColumn
            except ImportError:  # pragma: no cover - rich is in the report extra
                enabled = False
            else:
                self._bar = RichProgress(
                    TextColumn("[bold]{task.description:<10}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("evaluations"),
                    TimeElapsedColumn(),
                    console=Console(file=self.stream),
                    transient=True,
                )
        self.enabled = enabled

    def _advance(self, count: int) -> None:
        self.evaluations += count
        if self._bar is not None and self._task is not None:
            done = self._bar.tasks[self._task].completed + count
            if done > self._total:
                self._total = int(done)
                self._bar.update(self._task, total=self._total)
            self._bar.advance(self._task, count)

    def wrap(self, fn: Callable) -> Callable:
        """``fn`` with a host callback that counts its evaluations (``fn`` itself if disabled)."""
        if not self.enabled:
            return fn

        def tick(value):
            value = np.asarray(value)
            self._advance(int(value.size))
            return np.zeros_like(value)

        def counted(*args, **kwargs):
            out = fn(*args, **kwargs)
            probe = jax.lax.stop_gradient(out)
            zero = jax.pure_callback(
                tick, jax.ShapeDtypeStruct(jnp.shape(probe), probe.dtype), probe, vmap_method="expand_dims"
            )
            return out + jax.lax.stop_gradient(zero)

        counted.__wrapped__ = fn  # type: ignore[attr-defined]
        return counted

    @contextlib.contextmanager
    def stage(self, description: str, total: int) -> Iterator[None]:
        """Show one bar for the evaluations of a stage (check, sweep, landscape)."""
        if self._bar is None:
            yield
            return
        self._total = max(int(total), 1)
        with self._bar:
            self._task = self._bar.add_task(description, total=self._total)
            try:
                yield
            finally:
                self._bar.update(self._task, completed=self._total)
                self._bar.remove_task(self._task)
                self._task = None
