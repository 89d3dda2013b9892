"""Which devices the engine's rows are spread over: the ``devices=`` option and its 1-D mesh.

The rows of a plan are independent, so the engine shards them over a 1-D
``jax.sharding.Mesh`` with one axis, ``"rows"``; x is replicated and each device evaluates
its share. After ``jax.distributed.initialize()`` ``jax.devices()`` lists the devices of
every process, so the same code builds a global mesh and runs multi-host (every process
calls the same function on the same x, as in any multi-controller JAX program).
"""

from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


#: Name of the mesh axis that the rows of a plan are sharded over.
ROW_AXIS = "rows"


def check_devices(devices: Any, caller: str) -> int | tuple | None:
    """Validate the ``devices=`` option; returns it normalized (a tuple for a sequence).

    Accepted: ``None`` (every device: ``jax.devices()``; sharding is on when there are
    several), a positive int k (the first k of ``jax.devices()``; 1 turns sharding off),
    or a non-empty sequence of distinct ``jax.Device`` of one platform.
    """
    if devices is None:
        return None
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        n = jax.device_count()
        if not 1 <= devices <= n:
            raise ValueError(
                f"{caller}(devices=...) must be between 1 and the number of devices ({n}), got {devices!r}"
            )
        return int(devices)
    if isinstance(devices, jax.Device):
        devices = (devices,)
    if isinstance(devices, (str, bytes)) or not isinstance(devices, Sequence) or not devices:
        raise TypeError(
            f"{caller}(devices=...) must be None, a positive int or a non-empty sequence of "
            f"jax.Device, got {devices!r}"
        )
    devs = tuple(devices)
    bad = [d for d in devs if not isinstance(d, jax.Device)]
    if bad:
        raise TypeError(f"{caller}(devices=...) must contain jax.Device objects, got {bad[0]!r}")
    if len(set(devs)) != len(devs):
        raise ValueError(f"{caller}(devices=...) lists a device more than once: {list(devs)}")
    platforms = sorted({d.platform for d in devs})
    if len(platforms) > 1:
        raise ValueError(f"{caller}(devices=...) mixes platforms {platforms}; give devices of one platform")
    return devs


def resolve_devices(devices: int | tuple | None) -> tuple:
    """The concrete devices for a validated ``devices=`` value (resolved at trace time)."""
    if devices is None:
        return tuple(jax.devices())
    if isinstance(devices, int):
        return tuple(jax.devices()[:devices])
    return devices


def row_mesh(devices: int | tuple | None) -> Mesh | None:
    """The 1-D ``("rows",)`` mesh over the resolved devices.

    None (no mesh: JAX's default placement) when ``devices`` is None or an int that
    resolves to one device; an explicit sequence always gets a mesh, even of one device,
    so that the rows run where the caller asked.
    """
    ambient = ambient_mesh()
    if ambient is not None:
        if devices is None:  # the user's mesh decides placement: rows are not sharded again
            return None
        raise ValueError(
            f"devices={devices!r} cannot shard the rows inside a computation that already has a mesh "
            f"({ambient}: inside jax.pmap, jax.shard_map or jax.set_mesh); pass devices=None there "
            "(the default: the engine then evaluates rows where the surrounding computation runs)"
        )
    devs = resolve_devices(devices)
    if len(devs) <= 1 and not isinstance(devices, tuple):
        return None
    return Mesh(np.asarray(devs, dtype=object), (ROW_AXIS,))


def ambient_mesh() -> Any:
    """The mesh of the computation being traced (inside ``jax.pmap``, ``jax.shard_map`` or
    ``jax.set_mesh``), or None outside any."""
    get = getattr(jax.sharding, "get_abstract_mesh", None)
    mesh = get() if get is not None else None
    if mesh is None or getattr(mesh, "empty", True):
        return None
    return mesh


def replicate(leaves: list, devices: int | tuple | None) -> list:
    """Concrete ``jax.Array`` leaves put replicated on the row mesh (others unchanged).

    An array committed to one device (``jax.device_put(x, d)``, or the output of a jitted
    step on such arrays) cannot enter a computation sharded over several devices; a
    replicated copy can. Call it outside any trace (inside the user's jit the placement
    is the user's: there, arrays committed to one device need ``devices=1``).
    """
    mesh = row_mesh(devices)
    if mesh is None:
        return leaves
    sharding = NamedSharding(mesh, P())
    return [jax.device_put(leaf, sharding) if isinstance(leaf, jax.Array) else leaf for leaf in leaves]


def uncommit(leaves: list, devices: int | tuple | None) -> list:
    """Concrete ``jax.Array`` leaves placed by the user (committed to a device, or sharded
    over their own mesh) copied into fresh arrays that JAX may place anywhere, when the
    engine shards its rows (others unchanged).

    The check bodies close over values computed from these arguments (the AD gradient)
    inside the engine's ``shard_map``; a value that carries the user's placement, or a
    replicated one on the row mesh, cannot enter it, a fresh array can. The copy goes
    through the host: arguments are the parameters and a batch, small next to the check.
    """
    if row_mesh(devices) is None:
        return leaves
    out = []
    for leaf in leaves:
        placed = isinstance(leaf, jax.Array) and (
            getattr(leaf, "committed", False) or len(leaf.sharding.device_set) > 1
        )
        if placed and leaf.is_fully_addressable:
            leaf = jax.numpy.asarray(np.asarray(leaf))
        out.append(leaf)
    return out


def varying(x: Any) -> Any:
    """``x`` marked as varying over every manual axis of the surrounding computation.

    Inside ``jax.shard_map`` (with its default ``check_vma=True``) a value that does not vary
    over an axis, such as parameters closed over, has a gradient summed over that axis:
    ``jax.grad`` of each device's f returns the total over devices, while finite differences
    measure this device's f. Marked as varying, both sides measure this device's f. Outside
    shard_map, or where the value already varies, ``x`` is returned unchanged.
    """
    mesh = ambient_mesh()
    manual: tuple[Any, ...] = tuple(getattr(mesh, "manual_axes", ()) or ()) if mesh is not None else ()
    if not manual:
        return x
    aval_type = getattr(jax.typeof(x), "manual_axis_type", None)
    already = getattr(aval_type, "varying", None)
    if already is None:  # a JAX without varying-axis types: nothing is summed implicitly
        return x
    missing = tuple(a for a in manual if a not in already)
    return jax.lax.pcast(x, missing, to="varying") if missing else x
