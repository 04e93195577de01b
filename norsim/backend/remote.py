"""The ``remote:HOST:PORT`` back-end: a chip server behind a socket (docs/backend-protocol.md).

:class:`RemoteBackend` sends every :class:`~norsim.backend.base.Backend` call as one
REQUEST frame of :mod:`norsim.backend.wire` and waits for its answer. A batch of input
vectors travels in one frame (``mvm(tile, x)`` with ``x`` of shape (B, rows)), so the
per-call cost (a loopback round trip, framing, CRC) is paid once per tile and batch, not per
vector. Integer inputs travel in the narrowest unsigned type that holds them (uint8 for
codes below 256); the server widens them to int64.

Failure handling (:class:`RemoteConfig`):

* connect and per-call **timeouts**; a call past its timeout is a one-line
  :class:`RemoteTimeout` (never retried: the chip may still be busy with it);
* a lost connection (reset, refused, closed) is **retried** ``retries`` times with
  exponential backoff; the request is re-sent with its request id, and the server answers a
  request id it already ran from its record, so no call runs twice (noise streams stay in
  step);
* after every **reconnect** the client **re-verifies** the tiles it programmed: the server's
  boot id must be the one it programmed them on, and each tile's state chain (a SHA-256
  chain over the state-changing calls it saw: ``program``, ``calibrate``, ``set_adc``,
  ``set_read_voltage``, ``retune_cells``) must equal the one the client kept. If the chip
  lost its state, ``on_lost_state='fail'`` (default) raises :class:`RemoteStateLost`;
  ``'replay'`` re-sends the journal in order: those calls, each preceded by the reads
  (``mvm``, ``probe``) that had advanced its noise stream, so programming and calibration
  come back exactly; streams still live at the loss restart from the journal's position,
  and the replayed reads count in the tiles' event counts;
* a corrupt frame or a protocol violation is a one-line :class:`~norsim.backend.wire.
  ProtocolError` (not retried: the stream is dropped).
"""

from __future__ import annotations

import dataclasses
import socket
import time
import uuid

import numpy as np

from norsim.backend import wire
from norsim.backend.base import (Backend, BackendInfo, Calibration, MapReading, MvmResult,
                                 PatternSpec, ProbeReading, ProgrammingReport, RetuneReport)
from norsim.errors import InputError, NorsimError


class RemoteTimeout(NorsimError, TimeoutError):
    """The chip server did not answer within the timeout."""


class RemoteUnavailable(NorsimError, ConnectionError):
    """The chip server could not be reached (after the retries)."""


class RemoteStateLost(NorsimError, RuntimeError):
    """After a reconnect, the chip no longer holds the tiles as this client programmed them."""


@dataclasses.dataclass
class RemoteConfig:
    """Transport settings of a :class:`RemoteBackend` (not physics: no preset entry)."""

    connect_timeout_s: float = 5.0
    """Seconds to open the TCP connection and finish the hello exchange."""
    call_timeout_s: float = 120.0
    """Seconds one request may take to answer (programming a large tile on a real chip can
    take seconds; a LeNet batch on the reference server well under one)."""
    retries: int = 3
    """Reconnect attempts after a lost connection before the call fails."""
    backoff_s: float = 0.2
    """Wait before the first reconnect; doubled after each failed attempt."""
    backoff_max_s: float = 2.0
    """Longest wait between reconnect attempts."""
    on_lost_state: str = "fail"
    """After a reconnect to a chip that lost the tiles' state: ``'fail'`` (one-line error)
    or ``'replay'`` (re-send the state-changing calls of the journal in order)."""
    max_payload_bytes: int = wire.MAX_PAYLOAD_BYTES
    """Largest payload of one frame either way (a longer frame is a ProtocolError)."""

    def validate(self) -> "RemoteConfig":
        for name in ("connect_timeout_s", "call_timeout_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0):
                raise InputError(f"remote.{name}", v, "seconds > 0")
        for name in ("backoff_s", "backoff_max_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v >= 0):
                raise InputError(f"remote.{name}", v, "seconds >= 0")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise InputError("remote.retries", self.retries, "a whole number >= 0")
        if self.on_lost_state not in ("fail", "replay"):
            raise InputError("remote.on_lost_state", self.on_lost_state, "'fail' or 'replay'")
        if not isinstance(self.max_payload_bytes, int) or self.max_payload_bytes < 1:
            raise InputError("remote.max_payload_bytes", self.max_payload_bytes, "bytes >= 1")
        return self


def parse_address(address: str) -> tuple[str, int]:
    """``'HOST:PORT'`` (or ``'remote:HOST:PORT'``, ``'[::1]:PORT'``) -> (host, port)."""
    s = str(address).strip()
    if s.startswith("remote:"):
        s = s[len("remote:"):]
    host, sep, port = s.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError("backend", f"remote:{s}", "remote:HOST:PORT with a port in 1..65535")
    return host, int(port)


def _narrow(x):
    """Integer input codes in the narrowest unsigned type holding them (uint8 for < 256)."""
    a = np.asarray(x)
    if a.dtype.kind in "iu" and a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo >= 0:
            for t in (np.uint8, np.uint16, np.uint32):
                if hi <= np.iinfo(t).max:
                    return np.ascontiguousarray(a, dtype=t)
    return np.ascontiguousarray(a)


class RemoteBackend(Backend):
    """A chip behind a norsim chip server (``--backend remote:HOST:PORT``)."""

    kind = "remote"

    def __init__(self, address: str, config: RemoteConfig | None = None):
        self.host, self.port = parse_address(address)
        self.address = f"{self.host}:{self.port}"
        self.config = (config or RemoteConfig()).validate()
        self.session = uuid.uuid4().hex
        self.sock: socket.socket | None = None
        self.version = 0
        self.boot_id: str | None = None     # the server's, when the first tile was programmed
        self.server_info: BackendInfo | None = None
        self.chains: dict[str, str] = {}    # tile -> state chain, as the server must have it
        self.journal: list[tuple[str, dict]] = []  # calls that made the tiles' state
        self._pending: dict[tuple, list] = {}  # reads on live streams, by stream
        self.reconnects = 0
        self.closed = False
        self._rid = 0
        try:  # fail fast: an unreachable server is an error before any work
            self._connect()
        except wire.ConnectionLost as e:
            raise RemoteUnavailable(self._err(f"{e} (is the chip server running? start one "
                                              "with python -m norsim.backend.chip_server)")
                                    ) from None

    # ------------------------------------------------------------ connection ----
    def _err(self, msg: str) -> str:
        return f"remote chip {self.address}: {msg}"

    def _connect(self) -> None:
        cfg = self.config
        sock = None
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            fam, typ, proto, _, addr = infos[0]
            sock = socket.socket(fam, typ, proto)
            wire.tune_socket(sock)  # buffers before connect: the window scale follows them
            sock.settimeout(cfg.connect_timeout_s)
            sock.connect(addr)
        except socket.timeout:
            sock.close()
            raise RemoteTimeout(self._err(f"no connection within {cfg.connect_timeout_s:g} s "
                                          "(remote.connect_timeout_s)")) from None
        except OSError as e:
            if sock is not None:
                sock.close()
            raise wire.ConnectionLost(f"cannot connect: {e.strerror or e}") from None
        try:
            wire.send_frame(sock, wire.HELLO, {"versions": list(wire.VERSIONS),
                                               "client": "norsim", "session": self.session},
                            version=0)
            f = wire.recv_frame(sock, max_payload=cfg.max_payload_bytes)
        except socket.timeout:
            sock.close()
            raise RemoteTimeout(self._err(f"no hello answer within {cfg.connect_timeout_s:g} s "
                                          "(remote.connect_timeout_s; is the server busy with "
                                          "another client?)")) from None
        except wire.ProtocolError as e:
            sock.close()
            raise wire.ProtocolError(self._err(str(e))) from None
        except BaseException:
            sock.close()
            raise
        if f.type == wire.ERROR:
            sock.close()
            raise wire.ProtocolError(self._err(str(f.body.get("message", "hello refused"))))
        v = f.body.get("version")
        if f.type != wire.WELCOME or v not in wire.VERSIONS:
            sock.close()
            raise wire.ProtocolError(self._err(
                f"hello answered with {wire.TYPE_NAMES[f.type]} choosing version {v!r}; "
                f"this client speaks {list(wire.VERSIONS)}"))
        sock.settimeout(cfg.call_timeout_s)
        self.sock, self.version = sock, int(v)
        self.server_info = f.body.get("info")
        boot = str(f.body.get("boot_id", ""))
        if self.boot_id is None or not self.chains:
            self.boot_id = boot
        elif boot != self.boot_id:
            self._lost(f"the server restarted (boot id {boot[:8]} is not {self.boot_id[:8]}), "
                       f"losing the state of the {len(self.chains)} programmed tiles", boot)

    def _drop(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def _verify(self, in_flight: tuple | None) -> None:
        """After a reconnect to the same server: every programmed tile's state chain must be
        the one this client kept (``in_flight``: (tile, chain after) of a state-changing call
        that may or may not have run)."""
        if not self.chains:
            return
        state = self._exchange(wire.STATE_QUERY, {})
        theirs = state.get("tiles", {})
        for tile, chain in self.chains.items():
            got = theirs.get(tile)
            if got == chain or (in_flight is not None and in_flight[0] == tile
                                and got == in_flight[1]):
                continue
            what = "is not programmed" if got is None else "was changed by another client"
            self._lost(f"tile {tile!r} {what} since this client programmed it", self.boot_id)
            return

    def _lost(self, what: str, boot: str | None) -> None:
        if self.config.on_lost_state != "replay":
            self._drop()
            raise RemoteStateLost(self._err(f"{what}; rerun (a sweep resumes the point) or "
                                            "use remote.on_lost_state = 'replay'"))
        self.boot_id = boot
        journal, self.chains = self.journal, {}
        self.journal, self._pending = [], {}
        for method, args in journal:  # the same calls, in order: the same chains
            self._exchange(method, args)
            self._record(method, args)

    # ------------------------------------------------------------- one call ----
    def _exchange(self, method: str, args: dict):
        """Send one request on the open connection and return its result."""
        self._rid = (self._rid + 1) & 0xFFFFFFFF
        return self._send_recv(self._rid, method, args)

    def _send_recv(self, rid: int, method: str, args: dict):
        cfg = self.config
        if self.sock is None:
            raise wire.ConnectionLost("not connected")
        wire.send_frame(self.sock, wire.REQUEST, {"method": method, "args": args},
                        version=self.version, request_id=rid, max_payload=cfg.max_payload_bytes)
        f = wire.recv_frame(self.sock, max_payload=cfg.max_payload_bytes)
        if f.type == wire.ERROR:
            kind, msg = str(f.body.get("kind", "Error")), str(f.body.get("message", ""))
            if kind == "ProtocolError":
                raise wire.ProtocolError(f"the server refused a frame: {msg}")
            if kind == "NotImplementedError":
                raise NotImplementedError(self._err(msg))
            raise wire.RemoteCallError(kind, self._err(f"{method}{_tile_note(args)} failed on "
                                                       f"the server: {kind}: {msg}"))
        if f.type != wire.RESPONSE or f.request_id != rid:
            raise wire.ProtocolError(f"expected the RESPONSE to request {rid}, got "
                                     f"{wire.TYPE_NAMES[f.type]} {f.request_id}")
        return f.body.get("result")

    def _record(self, method: str, args: dict) -> None:
        """Keep the chains and the journal: every state-changing call, preceded by the reads
        that advanced its noise stream since that stream last started (so a replay gives the
        state-changing call the same draws)."""
        stream = tuple(args["stream"]) if "stream" in args else None
        if method == "release":
            self._pending.pop(stream, None)
            return
        if method not in wire.STATE_METHODS:
            if stream is not None and method in ("mvm", "probe"):
                self._pending.setdefault(stream, []).append((method, args))
            return
        tile = str(args["tile_id"])
        prev = "" if method == "program" else self.chains.get(tile, "")
        self.chains[tile] = wire.chain_digest(prev, method, args)
        if stream is not None:
            self.journal.extend(self._pending.pop(stream, []))
        self.journal.append((method, args))

    def call(self, method: str, **args):
        """Run ``method(**args)`` on the server's back-end: one request, re-sent with the
        same request id over reconnects (the server never runs an id twice)."""
        if self.closed:
            raise RemoteUnavailable(self._err("this RemoteBackend was closed"))
        cfg = self.config
        self._rid = (self._rid + 1) & 0xFFFFFFFF
        rid = self._rid
        in_flight = None
        if method in wire.STATE_METHODS:
            tile = str(args["tile_id"])
            prev = "" if method == "program" else self.chains.get(tile, "")
            in_flight = (tile, wire.chain_digest(prev, method, args))
        failures, wait, t0 = 0, cfg.backoff_s, time.monotonic()
        while True:
            try:
                if self.sock is None:
                    self._connect()
                    self.reconnects += 1
                    self._verify(in_flight)
                result = self._send_recv(rid, method, args)
                break
            except socket.timeout:
                self._drop()
                raise RemoteTimeout(self._err(
                    f"{method}{_tile_note(args)} got no answer within "
                    f"{cfg.call_timeout_s:g} s (remote.call_timeout_s; the server is slow or "
                    "hung)")) from None
            except wire.ConnectionLost as e:
                self._drop()
                failures += 1
                if failures > cfg.retries:
                    raise RemoteUnavailable(self._err(
                        f"{method}{_tile_note(args)} failed: {e}; gave up after "
                        f"{cfg.retries} reconnect attempts over {time.monotonic() - t0:.1f} s "
                        "(remote.retries)")) from None
                time.sleep(min(wait, cfg.backoff_max_s))
                wait *= 2
            except wire.ProtocolError as e:
                self._drop()
                msg = str(e)
                raise wire.ProtocolError(msg if msg.startswith("remote chip") else self._err(
                    f"{method}{_tile_note(args)}: {msg}")) from None
        self._record(method, args)
        return result

    # ------------------------------------------------------------- the seam ----
    def info(self) -> BackendInfo:
        srv = self.call("info")
        srv = srv if isinstance(srv, BackendInfo) else BackendInfo(kind="remote")
        return dataclasses.replace(
            srv, kind="remote", chip_id=srv.chip_id or self.address,
            firmware=f"{srv.firmware} via norsim chip server" if srv.firmware else "chip server",
            protocol=f"norsim-wire/{self.version} {self.address}")

    def tile_ids(self) -> list[str]:
        return list(self.call("tile_ids"))

    def program(self, tile_id: str, weights: np.ndarray, config, stream) -> ProgrammingReport:
        return self.call("program", tile_id=tile_id, weights=np.asarray(weights, dtype=np.int64),
                         config=config, stream=_key(stream))

    def read_map(self, tile_id: str, quantity: str = "vth") -> MapReading:
        return self.call("read_map", tile_id=tile_id, quantity=quantity)

    def calibrate(self, tile_id: str, x: np.ndarray, stream) -> Calibration:
        return self.call("calibrate", tile_id=tile_id, x=_narrow(x), stream=_key(stream))

    def calibration(self, tile_id: str) -> Calibration:
        return self.call("calibration", tile_id=tile_id)

    def set_adc(self, tile_id: str, gain, offset, full_scale_a=None,
                per_channel: bool = False) -> Calibration:
        return self.call("set_adc", tile_id=tile_id, gain=np.asarray(gain, dtype=np.float64),
                         offset=np.asarray(offset, dtype=np.float64),
                         full_scale_a=None if full_scale_a is None else float(full_scale_a),
                         per_channel=bool(per_channel))

    def set_read_voltage(self, tile_id: str, v_cg: float) -> None:
        self.call("set_read_voltage", tile_id=tile_id, v_cg=float(v_cg))

    def mvm(self, tile_id: str, x: np.ndarray, stream, purpose: str = "run") -> MvmResult:
        return self.call("mvm", tile_id=tile_id, x=_narrow(x), stream=_key(stream),
                         purpose=purpose)

    def probe(self, tile_id: str, stream, x=None, patterns: PatternSpec | None = None,
              ) -> ProbeReading:
        return self.call("probe", tile_id=tile_id, stream=_key(stream),
                         x=None if x is None else _narrow(x), patterns=patterns)

    def retune_cells(self, tile_id: str, rows, cols) -> RetuneReport:
        return self.call("retune_cells", tile_id=tile_id, rows=np.asarray(rows, dtype=np.int64),
                         cols=np.asarray(cols, dtype=np.int64))

    def events(self, tile_id: str) -> dict:
        return self.call("events", tile_id=tile_id)

    def reset_events(self, tile_id: str) -> None:
        self.call("reset_events", tile_id=tile_id)

    def release(self, stream) -> None:
        self.call("release", stream=_key(stream))

    def close(self) -> None:
        if self.sock is not None:
            try:
                wire.send_frame(self.sock, wire.BYE, {}, version=self.version)
            except (OSError, NorsimError):
                pass
            self._drop()
        self.closed = True


def _key(stream) -> list:
    return [int(v) for v in stream]


def _tile_note(args: dict) -> str:
    return f"(tile {args['tile_id']!r})" if "tile_id" in args else "()"
