"""The chip-server wire protocol: binary frames over a TCP socket (docs/backend-protocol.md).

One frame::

    offset size  field
    0      4     magic            b"NORW"
    4      2     version          u16: the negotiated protocol version (0 in the hello exchange)
    6      2     type             u16: HELLO 1, WELCOME 2, REQUEST 3, RESPONSE 4, ERROR 5, BYE 6
    8      4     request id       u32: a response carries the id of its request
    12     4     header length    u32: bytes of the JSON header that follows
    16     8     payload length   u64: bytes of the raw array payload after the header
    24     4     CRC-32           zlib.crc32 of bytes 0..23 + JSON header + payload
    28     ...   JSON header (UTF-8), then the payload

All integers little-endian. The JSON header holds the method name, scalar arguments and,
for every ndarray, a descriptor ``{"__nd__": i, "dtype": "<i8", "shape": [..]}`` whose
data is the i-th block of the payload (C order, little-endian, concatenated in index
order). Only plain numeric dtypes travel (bool, [u]int8..64, float32/64); nothing is ever
unpickled. Dataclasses of :mod:`norsim.backend.base` travel as ``{"__dc__": name,
"fields": {...}}`` and are rebuilt only from that module's own classes (a whitelist).
A :class:`~norsim.config.sim.SimConfig` travels as ``{"__config__": "SimConfig", "toml":
text}``; dicts with non-string keys as ``{"__map__": [[key, value], ...]}``.
Non-finite floats travel as ``{"__float__": "nan" | "inf" | "-inf"}`` so the header is
strict JSON.

Every reader check (magic, CRC, lengths against the limits, a truncated frame, a
malformed header) raises a one-line :class:`ProtocolError` naming what was wrong.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import socket
import struct
import zlib

import numpy as np

from norsim.config.base import ConfigBase
from norsim.errors import NorsimError

MAGIC = b"NORW"
#: protocol versions this norsim speaks (the client offers them, the server picks the
#: highest it shares)
VERSIONS = (1,)
HELLO, WELCOME, REQUEST, RESPONSE, ERROR, BYE = 1, 2, 3, 4, 5, 6
TYPE_NAMES = {HELLO: "HELLO", WELCOME: "WELCOME", REQUEST: "REQUEST", RESPONSE: "RESPONSE",
              ERROR: "ERROR", BYE: "BYE"}
_FIXED = struct.Struct("<4sHHIIQ")        # everything before the CRC
_CRC = struct.Struct("<I")
HEADER_BYTES = _FIXED.size + _CRC.size   # 28
#: the JSON header is small (names, scalars, descriptors): more is a corrupt length
MAX_HEADER_BYTES = 1 << 20
#: default limit of one frame's payload (a LeNet batch of 1000 images is a few MiB; an
#: AlexNet conv tile's batch of input planes stays well below this)
MAX_PAYLOAD_BYTES = 1 << 30
#: configurations that travel (as their TOML text, rebuilt with ``from_toml``)
_CONFIGS = ("SimConfig",)
#: dataclasses of norsim.backend.base that are host-side helpers, not messages
_NOT_MESSAGES = ("StreamTable",)
#: dtypes allowed on the wire (numpy ``dtype.str`` after conversion to little-endian)
DTYPES = frozenset(np.dtype(t).newbyteorder("<").str for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
    np.uint64, np.float32, np.float64))


class ProtocolError(NorsimError, RuntimeError):
    """A frame or exchange broke the chip-server protocol (corrupt, truncated, wrong
    version, unexpected type or id); the message is one line naming what was wrong."""


class ConnectionLost(NorsimError, ConnectionError):
    """The peer closed the connection or the socket failed (the client may reconnect)."""


class RemoteCallError(NorsimError, RuntimeError):
    """The server ran the request and it raised: ``kind`` names the server-side exception
    class, the message is the server's one-line message."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


@dataclasses.dataclass
class Frame:
    """One decoded frame."""

    type: int        # HELLO ... BYE
    version: int     # protocol version stamped on the frame
    request_id: int  # request id (a response echoes it)
    body: dict       # the JSON header with its arrays put back in place


# ------------------------------------------------------------------ values <-> JSON + payload
@functools.lru_cache(maxsize=1)
def _registry() -> dict:
    """Dataclasses allowed on the wire: those defined in norsim.backend.base."""
    try:
        from norsim.backend import base
    except ImportError:  # pragma: no cover - the seam is part of the package
        return {}
    return {n: c for n, c in vars(base).items()
            if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == base.__name__
            and n not in _NOT_MESSAGES}


def encode_value(value, arrays: list) -> object:
    """JSON-able form of ``value``; ndarrays are appended to ``arrays`` and referenced."""
    if isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        if dt.str not in DTYPES:
            raise ProtocolError(f"array dtype {a.dtype} cannot travel: allowed are bool, "
                                "[u]int8..64, float32, float64")
        arrays.append(a.astype(dt, copy=False))
        return {"__nd__": len(arrays) - 1, "dtype": dt.str, "shape": list(a.shape)}
    if isinstance(value, ConfigBase):
        if type(value).__name__ not in _CONFIGS:
            raise ProtocolError(f"configuration {type(value).__name__} cannot travel (only "
                                f"{', '.join(_CONFIGS)})")
        return {"__config__": type(value).__name__, "toml": value.to_toml()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__dc__": type(value).__name__,
                "fields": {f.name: encode_value(getattr(value, f.name), arrays)
                           for f in dataclasses.fields(value)}}
    if isinstance(value, dict):
        return {"__map__": [[encode_value(k, arrays), encode_value(v, arrays)]
                            for k, v in value.items()]} if any(
            not isinstance(k, str) for k in value) else {
            k: encode_value(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_value(v, arrays) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else {"__float__": repr(v)}
    if value is None or isinstance(value, str):
        return value
    raise ProtocolError(f"a {type(value).__name__} cannot travel on the wire: allowed are "
                        "ndarrays, numbers, strings, None, lists, dicts and the dataclasses "
                        "of norsim.backend.base")


def decode_value(obj, arrays: list, registry: dict | None = None):
    """Inverse of :func:`encode_value` (``arrays``: the decoded payload blocks)."""
    if isinstance(obj, list):
        return [decode_value(v, arrays, registry) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__nd__" in obj:
        i = obj["__nd__"]
        if not isinstance(i, int) or not 0 <= i < len(arrays):
            raise ProtocolError(f"array reference {i!r} outside the {len(arrays)} payload arrays")
        return arrays[i]
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__map__" in obj:
        return {_hashable(decode_value(k, arrays, registry)): decode_value(v, arrays, registry)
                for k, v in obj["__map__"]}
    if "__config__" in obj:
        cls = _config_class(obj["__config__"])
        return cls.from_toml(str(obj.get("toml", "")))
    if "__dc__" in obj:
        reg = _registry() if registry is None else registry
        cls = reg.get(obj["__dc__"])
        if cls is None:
            raise ProtocolError(f"dataclass {obj['__dc__']!r} is not one of norsim.backend.base's "
                                f"({', '.join(sorted(reg)) or 'none'})")
        fields = {k: decode_value(v, arrays, reg) for k, v in obj.get("fields", {}).items()}
        try:
            return cls(**fields)
        except TypeError as e:
            raise ProtocolError(f"dataclass {obj['__dc__']}: {e}") from None
    return {k: decode_value(v, arrays, registry) for k, v in obj.items()}


def _config_class(name):
    if name not in _CONFIGS:
        raise ProtocolError(f"configuration {name!r} is not one of {', '.join(_CONFIGS)}")
    from norsim.config.sim import SimConfig

    return {"SimConfig": SimConfig}[name]


def _hashable(k):
    return tuple(_hashable(x) for x in k) if isinstance(k, list) else k


# ------------------------------------------------------------------ frames
def pack_frame(type_: int, body: dict, *, version: int, request_id: int = 0,
               max_payload: int = MAX_PAYLOAD_BYTES) -> list:
    """The frame's byte buffers (fixed header, JSON header, array blocks) for sendmsg."""
    arrays: list = []
    header = encode_value(body, arrays)
    descr = [{"dtype": a.dtype.str, "shape": list(a.shape), "nbytes": a.nbytes} for a in arrays]
    hbytes = json.dumps({"body": header, "arrays": descr}, separators=(",", ":"),
                        allow_nan=False).encode()
    plen = sum(a.nbytes for a in arrays)
    if plen > max_payload:
        raise ProtocolError(f"payload of {plen} bytes exceeds the limit of {max_payload} bytes "
                            "(send a smaller batch or raise max_payload_bytes)")
    fixed = _FIXED.pack(MAGIC, version, type_, request_id & 0xFFFFFFFF, len(hbytes), plen)
    views = [memoryview(a).cast("B") if a.nbytes else b"" for a in arrays]
    crc = zlib.crc32(fixed)
    crc = zlib.crc32(hbytes, crc)
    for v in views:
        crc = zlib.crc32(v, crc)
    return [fixed + _CRC.pack(crc), hbytes, *[v for v in views if len(v)]]


def send_frame(sock: socket.socket, type_: int, body: dict, *, version: int,
               request_id: int = 0, max_payload: int = MAX_PAYLOAD_BYTES) -> None:
    """Pack and send one frame (the arrays are sent from their own buffers, not copied)."""
    bufs = pack_frame(type_, body, version=version, request_id=request_id,
                      max_payload=max_payload)
    try:
        send_buffers(sock, bufs)
    except socket.timeout:
        raise
    except OSError as e:
        raise ConnectionLost(f"connection lost while sending: {e}") from None


def send_buffers(sock: socket.socket, bufs: list) -> None:
    """Send the buffers in order, gathered in one ``sendmsg`` (one system call and one
    wake-up of the peer for a frame that fits the socket buffer), the rest by ``sendall``."""
    views = [memoryview(b).cast("B") for b in bufs]
    sent = sock.sendmsg(views) if hasattr(sock, "sendmsg") else 0
    for v in views:
        if sent >= len(v):
            sent -= len(v)
            continue
        sock.sendall(v[sent:])
        sent = 0


#: socket buffer asked for on both sides (the kernel caps it at net.core.[rw]mem_max): a
#: batch's frame then crosses the loopback without waiting for the peer to drain it
SOCKET_BUFFER_BYTES = 4 << 20


def tune_socket(sock: socket.socket) -> None:
    """TCP_NODELAY and large send/receive buffers (set before connect/listen)."""
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER_BYTES)
        except OSError:  # pragma: no cover - a platform that refuses: keep its default
            pass
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # pragma: no cover - not TCP (a socketpair in tests)
        pass


def _recv_exact(sock: socket.socket, n: int, what: str, started: bool) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        try:
            k = sock.recv_into(view[got:], min(n - got, 1 << 22))
        except socket.timeout:
            raise
        except OSError as e:
            raise ConnectionLost(f"connection lost while receiving the {what}: {e}") from None
        if k == 0:
            if got == 0 and not started:
                raise ConnectionLost("connection closed by the peer")
            raise ProtocolError(f"truncated frame: the connection closed after {got} of {n} "
                                f"bytes of the {what}")
        got += k
        started = True
    return buf


def recv_frame(sock: socket.socket, *, max_payload: int = MAX_PAYLOAD_BYTES,
               registry: dict | None = None) -> Frame:
    """Read and check one frame (magic, lengths against the limits, CRC, header JSON,
    array descriptors) and rebuild its body."""
    head = _recv_exact(sock, HEADER_BYTES, "frame header", False)
    magic, version, type_, rid, hlen, plen = _FIXED.unpack_from(head)
    (crc,) = _CRC.unpack_from(head, _FIXED.size)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {bytes(magic)!r} (expected {MAGIC!r}): not a norsim "
                            "chip-server peer, or the stream lost its framing")
    if type_ not in TYPE_NAMES:
        raise ProtocolError(f"unknown message type {type_} (expected one of "
                            f"{sorted(TYPE_NAMES)})")
    if hlen > MAX_HEADER_BYTES:
        raise ProtocolError(f"header length {hlen} bytes exceeds the limit of "
                            f"{MAX_HEADER_BYTES} bytes")
    if plen > max_payload:
        raise ProtocolError(f"payload length {plen} bytes exceeds the limit of {max_payload} "
                            "bytes (max_payload_bytes)")
    hbytes = _recv_exact(sock, hlen, "JSON header", True)
    payload = _recv_exact(sock, plen, "payload", True) if plen else bytearray()
    got = zlib.crc32(payload, zlib.crc32(hbytes, zlib.crc32(head[:_FIXED.size])))
    if got != crc:
        raise ProtocolError(f"CRC-32 mismatch in a {TYPE_NAMES[type_]} frame: header says "
                            f"{crc:#010x}, the {HEADER_BYTES + hlen + plen} bytes give "
                            f"{got:#010x} (corrupt frame)")
    try:
        meta = json.loads(hbytes.decode())
        body, descr = meta["body"], meta["arrays"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise ProtocolError(f"malformed JSON header: {str(e).splitlines()[0]}") from None
    arrays = []
    off = 0
    for i, d in enumerate(descr):
        try:
            dt = np.dtype(d["dtype"])
            shape = tuple(int(s) for s in d["shape"])
            nbytes = int(d["nbytes"])
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"array {i}: bad descriptor {d!r} ({e})") from None
        if dt.str not in DTYPES:
            raise ProtocolError(f"array {i}: dtype {d['dtype']!r} is not allowed on the wire")
        if any(s < 0 for s in shape) or math.prod(shape) * dt.itemsize != nbytes:
            raise ProtocolError(f"array {i}: shape {list(shape)} of {dt.str} does not make "
                                f"{nbytes} bytes")
        if off + nbytes > plen:
            raise ProtocolError(f"array {i}: ends at byte {off + nbytes} beyond the payload "
                                f"length {plen}")
        a = np.frombuffer(payload, dtype=dt, count=math.prod(shape), offset=off).reshape(shape)
        arrays.append(a if a.flags.aligned else a.copy())  # kernels want aligned data
        off += nbytes
    if off != plen:
        raise ProtocolError(f"payload length {plen} bytes, but its arrays take {off}")
    return Frame(type_, version, rid, decode_value(body, arrays, registry))


def choose_version(offered, supported=VERSIONS) -> int:
    """The highest version both sides speak; ProtocolError naming both lists if none."""
    try:
        offered = [int(v) for v in offered]
    except (TypeError, ValueError):
        raise ProtocolError(f"hello: versions {offered!r} is not a list of integers") from None
    common = set(offered) & set(supported)
    if not common:
        raise ProtocolError(f"protocol version mismatch: client offers {sorted(offered)}, "
                            f"server speaks {sorted(supported)}")
    return max(common)


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (server errors travel as one line)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def chain_digest(previous: str, method: str, args: dict) -> str:
    """The next link of a tile's state chain: SHA-256 over the previous link, the method
    name and the canonical encoding of the arguments (sorted JSON + each array's dtype,
    shape and bytes). Client and server compute it from the same request, so equal chains
    mean the tile has seen exactly the same state-changing calls."""
    import hashlib

    arrays: list = []
    enc = encode_value(args, arrays)
    h = hashlib.sha256()
    h.update(previous.encode())
    h.update(b"\0" + method.encode() + b"\0")
    h.update(json.dumps(enc, sort_keys=True, separators=(",", ":")).encode())
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(np.ascontiguousarray(a)).cast("B") if a.nbytes else b"")
    return h.hexdigest()


#: methods of :class:`norsim.backend.base.Backend` that change a tile's state (``program``
#: starts the tile's chain afresh); the others only read or draw from noise streams
STATE_METHODS = ("program", "calibrate", "set_adc", "set_read_voltage", "retune_cells")
#: methods a client may call on the server's back-end (``close`` is the server's business)
BACKEND_METHODS = ("info", "tile_ids", "program", "read_map", "calibrate", "calibration",
                   "set_adc", "set_read_voltage", "mvm", "probe", "retune_cells", "events",
                   "reset_events", "release")
#: protocol-level methods every server answers: its boot id and the tiles' state chains
STATE_QUERY = "_state"
