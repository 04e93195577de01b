"""norsim: a NOR-flash compute-in-memory simulator."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("norsim")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
