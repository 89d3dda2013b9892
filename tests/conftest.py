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
