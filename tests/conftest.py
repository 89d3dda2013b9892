import ctypes
import ctypes.util
import gc
import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Tests marked with one ``xdist_group`` run next to each other, where the first of them
    was collected; the order of everything else is kept.

    A group is tests that share compiled programs (fdjax caches its compiled bodies per
    function object, options and shapes) or a module-scoped fixture. ``--dist worksteal``
    (pyproject.toml) gives each xdist worker a contiguous block of this order, so a group
    runs on one worker and compiles once (a worker that runs out takes over the end of the
    other's block, which splits at most the group it cuts). ``--dist loadgroup`` would keep
    groups whole, but it silently stops grouping on pytest 9.2 (pytest-xdist issue #1386).
    """
    first: dict[tuple, int] = {}
    keys = []
    for i, item in enumerate(items):
        mark = item.get_closest_marker("xdist_group")
        if mark is None:
            keys.append((i, i))
            continue
        name = mark.args[0] if mark.args else mark.kwargs.get("name", "default")
        keys.append((first.setdefault((item.path, name), i), i))
    items[:] = [items[i] for _, i in sorted(keys)]


#: FDJAX_TEST_KEEP_PROGRAMS=1 keeps compiled programs from one test to the next.
_KEEP = os.environ.get("FDJAX_TEST_KEEP_PROGRAMS") == "1"
#: A worker whose resident memory exceeds this many bytes after a test drops its programs
#: (raised to 256 MB above what is left when clearing cannot get below it: memory that a
#: module-scoped fixture holds is not the caches', and clearing after every test is slow).
_RSS_LIMIT = [768 * 2**20]


def _group(item) -> tuple | None:
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return None
    return (item.path, mark.args[0] if mark.args else mark.kwargs.get("name", "default"))


def _rss() -> int:
    """This process's resident memory in bytes (Linux), else 0 (then modules are the unit)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def pytest_runtest_teardown(item, nextitem):
    """Drop the programs fdjax and JAX compiled once a worker holds more than 768 MB (and at
    the end of each module where that cannot be read), unless the next test is of the same
    ``xdist_group`` (tests that share compiled programs on purpose).

    Tests share nothing else compiled (each calls its own functions), but every program stays
    in memory while JAX or fdjax caches it: a worker that runs half the suite grew to ~3 GB.
    Clearing after every test would hold it under 1 GB but compile JAX's own small programs
    (``jnp`` operations called eagerly) again in each test: ~10% more time.
    """
    group = _group(item)
    if _KEEP or (group is not None and nextitem is not None and _group(nextitem) == group):
        return
    rss = _rss()
    if rss > _RSS_LIMIT[0] or (rss == 0 and (nextitem is None or nextitem.path != item.path)):
        import fdjax

        fdjax.clear_caches()
        jax.clear_caches()
        gc.collect()
        if _LIBC is not None:
            _LIBC.malloc_trim(0)  # hand the freed heap back to the operating system
        _RSS_LIMIT[0] = max(_RSS_LIMIT[0], _rss() + 256 * 2**20)


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None  # glibc only


_LIBC = _libc()
