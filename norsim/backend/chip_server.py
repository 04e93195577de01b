"""The reference chip server: any :class:`~norsim.backend.base.Backend` (by default the
simulator, :class:`norsim.backend.sim.SimBackend`) behind the wire protocol of
:mod:`norsim.backend.wire` (docs/backend-protocol.md)::

    python -m norsim.backend.chip_server --port 0 --preset nor40

prints the bound port alone on its first stdout line (flushed), then serves one client at
a time on the loopback interface until SIGTERM / Ctrl-C (a client idle for ``--handover-s``
while another waits is disconnected; it reconnects and re-verifies when it comes back). The
chip state (programmed tiles, calibration, noise streams) lives as long as the process,
across client connections, so a client that reconnects finds its tiles as it left them (it
checks: ``_state``).

Fault injection for tests (each off by default): ``--delay-s`` (sleep before every answer),
``--corrupt-after K`` (the K-th answer goes out with one flipped byte), ``--drop-after K``
(every connection is closed after its K-th request ran, before the answer: the answer is
kept, so the client's resend gets it without running the call twice), ``--exit-after K``
(the process exits on receiving the K-th request: a killed chip) and ``--speak-version V``
(speak only protocol version V).
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import select
import signal
import socket
import socketserver
import sys
import time
import uuid

from norsim.backend import wire
from norsim.errors import InputError, NorsimError


@dataclasses.dataclass
class Faults:
    """Fault injection of the reference server (tests); 0 / None disables each."""

    delay_s: float = 0.0
    """Seconds slept before answering every back-end request."""
    corrupt_after: int = 0
    """The answer to the K-th back-end request is sent with one flipped byte (bad CRC)."""
    drop_after: int = 0
    """Each connection is dropped after its K-th back-end request ran, before the answer."""
    exit_after: int = 0
    """The server process exits (status 3) on receiving the K-th back-end request."""
    speak_version: int | None = None
    """Speak only this protocol version (None: every version in ``wire.VERSIONS``)."""


class ChipServer(socketserver.TCPServer):
    """One back-end served to one client at a time (connections queue in the backlog)."""

    allow_reuse_address = True

    def __init__(self, backend, host: str = "127.0.0.1", port: int = 0, *,
                 faults: Faults | None = None, allow_remote: bool = False,
                 idle_timeout_s: float = 600.0, handover_s: float = 1.0,
                 max_payload: int = wire.MAX_PAYLOAD_BYTES, log=None):
        check_bind_host(host, allow_remote)
        self.backend = backend
        self.faults = faults or Faults()
        self.versions = ((self.faults.speak_version,) if self.faults.speak_version is not None
                         else wire.VERSIONS)
        self.idle_timeout_s = idle_timeout_s
        self.handover_s = handover_s
        self.max_payload = max_payload
        self.boot_id = uuid.uuid4().hex   # changes when the chip state is lost (a restart)
        self.chains: dict[str, str] = {}  # tile -> state chain (wire.chain_digest)
        self.calls = 0                    # back-end requests received, all connections
        self.last_answer: tuple | None = None  # (session, request id, type, body)
        self.log = log
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        wire.tune_socket(self.socket)  # accepted sockets inherit the buffer sizes
        super().server_bind()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def _say(self, msg: str) -> None:
        if self.log is not None:
            print(f"chip server: {msg}", file=self.log, flush=True)

    # -------------------------------------------------------------- one request ----
    def dispatch(self, method: str, args: dict):
        """Run ``method(**args)`` on the back-end; keeps the tiles' state chains."""
        if method == wire.STATE_QUERY:
            return {"boot_id": self.boot_id, "tiles": dict(self.chains)}
        if method not in wire.BACKEND_METHODS:
            raise InputError("method", method, f"one of {', '.join(wire.BACKEND_METHODS)}")
        if not isinstance(args, dict):
            raise InputError(f"{method} arguments", type(args).__name__,
                             "a table of named arguments")
        link = None
        if method in wire.STATE_METHODS:
            tile = str(args.get("tile_id"))
            prev = "" if method == "program" else self.chains.get(tile, "")
            link = (tile, wire.chain_digest(prev, method, args))
        args = {k: _widen(v) for k, v in args.items()}
        result = getattr(self.backend, method)(**args)
        if link is not None:
            self.chains[link[0]] = link[1]
            if method == "program":  # a fresh chip instance drops the old tiles' chains
                held = set(self.backend.tile_ids())
                if held:
                    self.chains = {t: c for t, c in self.chains.items() if t in held}
        return result


def _widen(v):
    """Integer arrays travel in their narrowest type; the back-end gets int64 (the seam)."""
    import numpy as np

    if isinstance(v, np.ndarray) and v.dtype.kind in "iu" and v.dtype != np.int64:
        return v.astype(np.int64)
    return v


class _Handler(socketserver.BaseRequestHandler):
    server: ChipServer

    def _send(self, type_, body, version, rid, corrupt=False):
        bufs = wire.pack_frame(type_, body, version=version, request_id=rid,
                               max_payload=self.server.max_payload)
        if corrupt:  # flip one byte of the last buffer: the CRC no longer matches
            last = bytearray(bytes(bufs[-1]))
            last[len(last) // 2] ^= 0x5A
            bufs[-1] = bytes(last)
        wire.send_buffers(self.request, bufs)

    def handle(self) -> None:
        srv = self.server
        sock = self.request
        wire.tune_socket(sock)
        sock.settimeout(srv.idle_timeout_s)
        try:
            version, session = self._hello()
            if version is None:
                return
            served = 0
            while True:
                if not self._wait_for_request():
                    srv._say("another client is waiting and this one is idle: connection closed")
                    return
                f = wire.recv_frame(sock, max_payload=srv.max_payload)
                if f.type == wire.BYE:
                    return
                if f.type != wire.REQUEST or f.version != version:
                    raise wire.ProtocolError(
                        f"expected a REQUEST frame of version {version}, got "
                        f"{wire.TYPE_NAMES[f.type]} of version {f.version}")
                method = str(f.body.get("method", ""))
                last = srv.last_answer
                if last is not None and last[:2] == (session, f.request_id):
                    self._send(last[2], last[3], version, f.request_id)  # a resend: no rerun
                    continue
                backend_call = method in wire.BACKEND_METHODS
                if backend_call:
                    srv.calls += 1
                    served += 1
                    if srv.faults.exit_after and srv.calls >= srv.faults.exit_after:
                        srv._say(f"exiting on request {srv.calls} (--exit-after)")
                        os._exit(3)
                    if srv.faults.delay_s:
                        time.sleep(srv.faults.delay_s)
                try:
                    body = {"result": srv.dispatch(method, f.body.get("args") or {})}
                    type_ = wire.RESPONSE
                except Exception as e:  # noqa: BLE001 - every failure goes back as one line
                    body = {"kind": type(e).__name__, "message": wire.one_line(e)}
                    type_ = wire.ERROR
                if backend_call:  # kept for a resend of the same request id
                    srv.last_answer = (session, f.request_id, type_, body)
                if backend_call and srv.faults.drop_after and served >= srv.faults.drop_after:
                    srv._say(f"dropping the connection after request {srv.calls} (--drop-after)")
                    return
                corrupt = bool(backend_call and srv.faults.corrupt_after
                               and srv.calls == srv.faults.corrupt_after)
                self._send(type_, body, version, f.request_id, corrupt=corrupt)
        except wire.ConnectionLost:
            return
        except socket.timeout:
            srv._say(f"client idle for {srv.idle_timeout_s:g} s: connection closed")
        except wire.ProtocolError as e:
            srv._say(str(e))
            try:  # tell the client why, if it still listens
                self._send(wire.ERROR, {"kind": "ProtocolError", "message": str(e)}, 0, 0)
            except OSError:
                pass
        except OSError:
            return

    def _wait_for_request(self) -> bool:
        """Wait for the client's next frame (True); False when another client has waited
        while this one stayed idle for ``handover_s`` (a host that forgot to close yields);
        socket.timeout after ``idle_timeout_s``."""
        srv = self.server
        t0 = time.monotonic()
        while True:
            idle = time.monotonic() - t0
            if idle >= srv.idle_timeout_s:
                raise socket.timeout
            r, _, _ = select.select([self.request, srv.socket], [], [],
                                    min(0.5, srv.idle_timeout_s - idle))
            if self.request in r:
                return True
            if srv.socket in r:
                if idle >= srv.handover_s:
                    return False
                r, _, _ = select.select([self.request], [], [], srv.handover_s - idle)
                if r:
                    return True

    def _hello(self):
        srv = self.server
        f = wire.recv_frame(self.request, max_payload=srv.max_payload)
        if f.type != wire.HELLO:
            raise wire.ProtocolError(f"expected HELLO first, got {wire.TYPE_NAMES[f.type]}")
        try:
            version = wire.choose_version(f.body.get("versions", []), srv.versions)
        except wire.ProtocolError as e:
            srv._say(str(e))
            self._send(wire.ERROR, {"kind": "ProtocolError", "message": str(e)}, 0, f.request_id)
            return None, None
        info = srv.backend.info()
        self._send(wire.WELCOME, {"version": version, "boot_id": srv.boot_id,
                                  "server": "norsim chip_server", "info": info},
                   0, f.request_id)
        return version, str(f.body.get("session", ""))


def check_bind_host(host: str, allow_remote: bool) -> None:
    """Loopback only unless ``allow_remote``: a chip server has no authentication."""
    if allow_remote:
        return
    try:
        addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    except socket.gaierror as e:
        raise InputError("--host", host, f"a resolvable host name ({e.strerror})") from None
    if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
        raise InputError("--host", host, "a loopback address (127.0.0.1, ::1, localhost); "
                         "the protocol has no authentication: pass --allow-remote to expose "
                         "the chip on a network on purpose")


def make_sim_backend(cfg):
    """The simulator back-end the reference server wraps: a :class:`SimBackend` that
    becomes a fresh simulated chip instance whenever a ``program`` call's configuration
    names another ``seed`` (the instance the client's in-process ``sim`` would build, so
    remote and in-process runs agree bit for bit; a real chip ignores seeds)."""
    from norsim.backend.base import StreamTable
    from norsim.backend.sim import SimBackend

    class SeededSimBackend(SimBackend):
        def program(self, tile_id, weights, config, stream):
            if self.cfg is not None and int(config.seed) != int(self.cfg.seed):
                fresh = dataclasses.replace(self.cfg, seed=int(config.seed))
                self.cfg, self.tiles, self.configs = fresh, {}, {}
                self.streams = StreamTable(fresh)
            return super().program(tile_id, weights, config, stream)

    return SeededSimBackend(cfg)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m norsim.backend.chip_server",
                                description="Reference chip server: the simulator behind the "
                                            "norsim wire protocol (docs/backend-protocol.md).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only unless "
                   "--allow-remote)")
    p.add_argument("--port", type=int, default=0, help="TCP port (0: any free port); the bound "
                   "port is printed alone on the first line")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback bind (no authentication: a trusted network only)")
    p.add_argument("--config", metavar="FILE", help="TOML configuration (default: the preset)")
    p.add_argument("--preset", default="nor40", help="preset to start from (default nor40)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="FIELD=VALUE", help="override one configuration field")
    p.add_argument("--idle-timeout-s", type=float, default=600.0,
                   help="close a connection idle this long (s)")
    p.add_argument("--handover-s", type=float, default=1.0,
                   help="close a connection idle this long while another client waits (s)")
    g = p.add_argument_group("fault injection (tests)")
    g.add_argument("--delay-s", type=float, default=0.0, help="sleep before every answer (s)")
    g.add_argument("--corrupt-after", type=int, default=0, metavar="K",
                   help="send the K-th answer with one flipped byte")
    g.add_argument("--drop-after", type=int, default=0, metavar="K",
                   help="drop each connection after its K-th request ran (answer kept)")
    g.add_argument("--exit-after", type=int, default=0, metavar="K",
                   help="exit (status 3) on receiving the K-th request")
    g.add_argument("--speak-version", type=int, default=None, metavar="V",
                   help="speak only protocol version V")
    g.add_argument("--quiet", action="store_true", help="no log lines on stderr")
    return p


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("delay_s", "corrupt_after", "drop_after", "exit_after", "idle_timeout_s",
                 "handover_s"):
        if getattr(args, name) < 0:
            raise InputError("--" + name.replace("_", "-"), getattr(args, name), "a value >= 0")
    if not 0 <= args.port <= 65535:
        raise InputError("--port", args.port, "0..65535")
    from norsim.config.presets import load_preset
    from norsim.config.sim import SimConfig

    cfg = SimConfig.load(args.config) if args.config else load_preset(args.preset)
    if args.overrides:
        cfg = cfg.with_overrides(args.overrides)
    cfg = cfg.validate()
    faults = Faults(args.delay_s, args.corrupt_after, args.drop_after, args.exit_after,
                    args.speak_version)
    server = ChipServer(make_sim_backend(cfg), args.host, args.port, faults=faults,
                        allow_remote=args.allow_remote, idle_timeout_s=args.idle_timeout_s,
                        handover_s=args.handover_s,
                        log=None if args.quiet else sys.stderr)
    print(server.port, flush=True)
    server._say(f"serving {server.backend.info().chip_id or 'a chip'} on "
                f"{args.host}:{server.port} (protocol {', '.join(map(str, server.versions))})")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised as a subprocess by the tests
    try:
        sys.exit(main())
    except NorsimError as e:
        print(f"chip server: {wire.one_line(e)}", file=sys.stderr)
        sys.exit(2)
