"""Progress of a long job: one line per stage, and on a terminal a live bar over the evaluations.

The engine runs all perturbed evaluations of a pass in one jitted call (``lax.map`` over
vmapped chunks), so progress cannot be counted from Python between calls. Two hooks give
it instead:

- the size of every pass is announced when the pass is traced (``fdjax._engine.listen``),
  before any of its rows run, so the bar's total is exact before its first evaluation
  and the wait in between shows as "compiling";
- on a terminal (``per_chunk``, the bar's default) the loss is wrapped so that every call
  also sends its (stop-gradient) value through a ``jax.pure_callback`` with
  ``vmap_method="expand_dims"``: inside a vmapped chunk that is one host call per chunk,
  carrying the chunk's values, and the bar advances by their count. The callback's output
  (zeros) is added to the loss, so the value is unchanged and the callback is not removed
  as dead code. A program with a host callback is never written to JAX's persistent
  compilation cache, so without a live bar (``"lines"``) the loss is left alone: the
  evaluations are the passes' announced sizes and the compile time is XLA's own
  (``jax.monitoring``), and the next command reads every program back from the cache.

Three styles: ``"bar"`` (rich, for a terminal: a live bar plus a line per finished stage),
``"lines"`` (a line per stage and nothing else, for a pipe or a log file) and ``"off"``.
Nothing here imports JAX until a loss is wrapped or a stage runs.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Any, Literal
from collections.abc import Callable, Iterator

Style = Literal["bar", "lines", "off"]

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_counting: list[Any] = []  # the Progress objects whose stage takes XLA's compile time now
_registered = False


def _on_duration(event: str, duration_secs: float, **kwargs: str | int) -> None:
    if event != _COMPILE_EVENT:
        return
    for prog in tuple(_counting):
        with prog._lock:
            if prog._stage:
                prog._stage["compile"] += float(duration_secs)


@contextlib.contextmanager
def _compiling(prog: Any) -> Iterator[None]:
    """Add XLA's compile time to ``prog``'s stage while it runs (one listener per process)."""
    global _registered
    import jax

    if not _registered:
        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        _registered = True
    _counting.append(prog)
    try:
        yield
    finally:
        _counting.remove(prog)


STYLES: tuple[str, ...] = ("bar", "lines", "off")


def default_style(stream: Any, quiet: bool) -> Style:
    """``"off"`` when quiet, ``"bar"`` on a terminal (when rich is installed), else ``"lines"``."""
    if quiet:
        return "off"
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        try:
            import rich  # noqa: F401
        except ImportError:  # pragma: no cover - rich is in the report extra
            return "lines"
        return "bar"
    return "lines"


class Progress:
    """Progress of the stages of a job over the evaluations of a wrapped loss.

    Args:
        style: ``"bar"``, ``"lines"`` or ``"off"`` (see the module docstring).
        stream: where to write (default ``sys.stderr``).

    Examples:
        >>> import io
        >>> out = io.StringIO()
        >>> p = Progress("lines", stream=out)
        >>> with p.step("load the model"):
        ...     pass
        >>> out.getvalue().startswith("fdjax: load the model")
        True
        >>> Progress("off").evaluations
        0
    """

    def __init__(self, style: Style = "off", stream: Any = None, per_chunk: bool | None = None):
        if style not in STYLES:
            raise ValueError(f"Progress(style=...) must be one of {STYLES}, got {style!r}")
        self.style = style
        #: count evaluations per chunk with a host callback (the live bar), or per pass
        self.per_chunk = style == "bar" if per_chunk is None else bool(per_chunk)
        self.stream = sys.stderr if stream is None else stream
        self.evaluations = 0
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None
        self._stage: dict[str, Any] = {}
        if style == "bar":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress
            from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

            self._console = Console(file=self.stream, highlight=False)
            self._bar = RichProgress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description:<10}"),
                TextColumn("{task.fields[phase]:<20}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("evaluations"),
                TimeElapsedColumn(),
                console=self._console,
                transient=True,
            )

    @property
    def enabled(self) -> bool:
        return self.style != "off"

    # -- output ------------------------------------------------------------------------------

    def line(self, text: str) -> None:
        """One finished line (above the live bar on a terminal)."""
        if self.style == "off":
            return
        if self._bar is not None:
            self._console.print(text, markup=False)
        else:
            self.stream.write(f"fdjax: {text}\n")
            self.stream.flush()

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        """A step without evaluations to count (import, load the target): a line when done."""
        started = time.perf_counter()
        if self._bar is not None:
            with self._console.status(what):
                yield
        else:
            yield
        self.line(f"{what:<24} {time.perf_counter() - started:6.1f} s")

    # -- counting ----------------------------------------------------------------------------

    def wrap(self, fn: Callable) -> Callable:
        """``fn`` with a host callback that counts its evaluations (``fn`` itself when off or
        not counting per chunk)."""
        if not self.enabled or not self.per_chunk:
            return fn
        import jax
        import jax.numpy as jnp
        import numpy as np

        def tick(value):
            value = np.asarray(value)
            self._tick(int(value.size))
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

    def _planned(self, rows: int) -> None:
        """A pass of ``rows`` evaluations was traced: it runs next (after compiling)."""
        with self._lock:
            st = self._stage
            if not st:
                return
            st["total"] += int(rows)
            st["passes"] += 1
            if not self.per_chunk:  # counted when announced; compile time from jax.monitoring
                st["done"] += int(rows)
                self.evaluations += int(rows)
                return
            st["waiting"] = True
            st["pass_start"] = time.perf_counter()
            self._refresh("compiling" if st["passes"] == 1 else f"compiling pass {st['passes']}")

    def _tick(self, count: int) -> None:
        now = time.perf_counter()
        with self._lock:
            self.evaluations += count
            st = self._stage
            if not st:
                return
            st["done"] += count
            st["total"] = max(st["total"], st["done"])
            if st["waiting"]:
                st["waiting"] = False
                st["compile"] += now - st["pass_start"]
            # after a pass's last evaluation the stage may still be reading its values
            self._refresh("analysing" if st["done"] >= st["total"] else "")

    def _refresh(self, phase: str) -> None:
        if self._bar is not None and self._task is not None:
            st = self._stage
            self._bar.update(self._task, completed=st["done"], total=st["total"] or None, phase=phase)

    @contextlib.contextmanager
    def stage(self, description: str) -> Iterator[None]:
        """Count the evaluations of one stage (check, sweep, landscape); a line when done."""
        if not self.enabled:
            yield
            return
        from .. import _engine

        started = time.perf_counter()
        self._stage = dict(done=0, total=0, passes=0, waiting=True, pass_start=started, compile=0.0)
        try:
            with contextlib.ExitStack() as stack:
                if not self.per_chunk:
                    stack.enter_context(_compiling(self))
                if self._bar is not None:
                    stack.enter_context(self._bar)
                    self._task = self._bar.add_task(description, total=None, phase="tracing")
                stack.enter_context(_engine.listen(self._planned))
                yield
        finally:
            with self._lock:
                st, self._stage = self._stage, {}
                if self._bar is not None and self._task is not None:
                    self._bar.remove_task(self._task)
                    self._task = None
        elapsed = time.perf_counter() - started
        passes = f" in {st['passes']} passes" if st["passes"] > 1 else ""
        self.line(
            f"{description:<10} {st['done']:>9,} evaluations{passes:<12} {elapsed:6.1f} s "
            f"(compiling {st['compile']:.2f} s)"
        )
