"""Hardware back-ends behind one seam (:mod:`norsim.backend.base`): ``sim``, ``replay:DIR``,
``remote:HOST:PORT``. :func:`open_backend` builds one from its spec string."""

from norsim.backend.base import (API_VERSION, Backend, BackendInfo, Calibration,  # noqa: F401
                                 MapReading, MvmResult, PatternSpec, ProbeReading,
                                 ProgrammingReport, RetuneReport, parse_backend, tile_id)
