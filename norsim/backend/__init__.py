"""Hardware back-ends behind one seam (:mod:`norsim.backend.base`): ``sim``, ``replay:DIR``,
``remote:HOST:PORT``. :func:`open_backend` builds one from its spec string."""

from norsim.backend.base import (API_VERSION, Backend, BackendInfo, Calibration,  # noqa: F401
                                 MapReading, MvmResult, PatternSpec, ProbeReading,
                                 ProgrammingReport, RetuneReport, parse_backend, tile_id)


def open_backend(spec=None, cfg=None):
    """A back-end from ``spec``: an existing :class:`Backend` (returned as is), a factory
    ``cfg -> Backend``, None or
    ``'sim'`` (a new simulator back-end for ``cfg``), ``'replay:DIR'`` (recorded
    measurements, :mod:`norsim.backend.replay`) or ``'remote:HOST:PORT'`` (a chip server,
    ``norsim.backend.remote``). A bad spec is a one-line InputError."""
    if isinstance(spec, Backend):
        return spec
    if callable(spec):   # a factory: cfg -> Backend (e.g. a recorder around a back-end)
        return spec(cfg)
    kind, arg = parse_backend("sim" if spec is None else spec)
    if kind == "sim":
        from norsim.backend.sim import SimBackend

        return SimBackend(cfg)
    if kind == "replay":
        from norsim.backend.replay import ReplayBackend

        return ReplayBackend(arg, cfg)
    try:
        from norsim.backend import remote
    except ImportError as exc:  # pragma: no cover - the remote module ships with norsim
        from norsim.errors import InputError

        raise InputError("backend", spec, f"an available back-end (remote: {exc})") from None
    return remote.RemoteBackend(arg)
