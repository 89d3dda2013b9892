"""The installed version of fdjax (from the package metadata; no JAX import)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fdjax")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
