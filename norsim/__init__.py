"""norsim: a NOR-flash compute-in-memory simulator."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("norsim")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"


def sweep(spec, out, **kwargs):  # lazy: `import norsim` stays light
    """Run or resume a sweep; returns a pandas DataFrame (see norsim.experiments.sweep)."""
    from norsim.experiments import sweep as _sweep

    return _sweep(spec, out, **kwargs)
