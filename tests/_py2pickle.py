"""Write pickles the way Python 2's cPickle wrote the CIFAR-10 python batches (protocol 2).

Python 2 ``str`` objects are SHORT_BINSTRING/BINSTRING opcodes (bytes when read by Python 3
with ``encoding="bytes"``), dict keys are such strings, and a numpy array is pickled as
``numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), 'b')`` followed by a BUILD with the
state ``(1, shape, dtype, is_fortran, raw_bytes)``; the dtype is ``numpy.dtype('u1', 0, 1)``
with state ``(3, '|', None, None, None, -1, -1, 0)``. This is written opcode by opcode, not
with Python 3's pickler (which would emit ``_codecs.encode`` calls instead).
"""

from __future__ import annotations

import struct

import numpy as np

PROTO, STOP, MARK = b"\x80\x02", b".", b"("
EMPTY_DICT, EMPTY_LIST, SETITEMS, APPENDS = b"}", b"]", b"u", b"e"
TUPLE, TUPLE1, TUPLE3, REDUCE, BUILD, NONE = b"t", b"\x85", b"\x87", b"R", b"b", b"N"
NEWFALSE = b"\x89"


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(b: bytes) -> bytes:  # py2 str
    if len(b) < 256:
        return b"U" + bytes([len(b)]) + b
    return b"T" + struct.pack("<i", len(b)) + b


def _int(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    return b"J" + struct.pack("<i", v)


def _array(a: np.ndarray, module: str) -> bytes:
    assert a.dtype == np.uint8
    out = _global(module, "_reconstruct") + _global("numpy", "ndarray")
    out += _int(0) + TUPLE1 + _str(b"b") + TUPLE3 + REDUCE
    dt = _global("numpy", "dtype") + _str(b"u1") + _int(0) + _int(1) + TUPLE3 + REDUCE
    dt += MARK + _int(3) + _str(b"|") + NONE + NONE + NONE + b"J" + struct.pack("<i", -1) \
        + b"J" + struct.pack("<i", -1) + _int(0) + TUPLE + BUILD
    shape = MARK + b"".join(_int(s) for s in a.shape) + TUPLE
    state = MARK + _int(1) + shape + dt + NEWFALSE + _str(a.tobytes()) + TUPLE
    return out + state + BUILD


def cifar_batch_pickle(data: np.ndarray, labels: list[int], batch_label: bytes = b"batch",
                       module: str = "numpy.core.multiarray") -> bytes:
    """A python-batch pickle: {b'batch_label', b'labels', b'data', b'filenames'}."""
    out = PROTO + EMPTY_DICT + MARK
    out += _str(b"batch_label") + _str(batch_label)
    out += _str(b"labels") + EMPTY_LIST + MARK + b"".join(_int(int(v)) for v in labels) + APPENDS
    out += _str(b"data") + _array(data, module)
    out += _str(b"filenames") + EMPTY_LIST + MARK + b"".join(
        _str(f"img_{i:05d}.png".encode()) for i in range(len(labels))) + APPENDS
    return out + SETITEMS + STOP


def malicious_pickle(command: str) -> bytes:
    """A protocol-2 pickle whose loading would call ``os.system(command)``."""
    return PROTO + _global("os", "system") + _str(command.encode()) + TUPLE1 + REDUCE + STOP


def malicious_pickle_posix(command: str) -> bytes:
    """Same, through ``posix.system`` (what Python 2 on Linux actually writes for os.system)."""
    return PROTO + _global("posix", "system") + _str(command.encode()) + TUPLE1 + REDUCE + STOP
