"""Reading untrusted files: every failure a :class:`FileFormatError`, no unpickling, and no
allocation larger than the file itself justifies.

* :func:`read_text` reads a UTF-8 text file (a binary file gets a one-line error naming the
  byte and its offset, not a ``UnicodeDecodeError`` traceback).
* :func:`load_npz` reads every array of an ``.npz`` archive. It parses each member's ``.npy``
  header itself and checks the declared shape against the bytes the member really holds (and
  the member's declared size against its compressed size) *before* allocating, so a corrupt
  header cannot ask for terabytes; an object (pickled) array is refused by name.
* :func:`load_npy` does the same for a single ``.npy`` file.
"""

from __future__ import annotations

import math
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from norsim.errors import FileFormatError

# deflate cannot expand data by more than ~1032:1; anything beyond is a forged size field
MAX_DEFLATE_RATIO = 1100
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"
PICKLE_MAGIC = b"\x80"


def read_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of ``path``; ``what`` names the file in the message (e.g. "config")."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FileFormatError(f"{what} {path}: not readable ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{what} {path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                              f"offset {exc.start}); expected a TOML text file") from None


def sniff(path: Path) -> str:
    """'npz', 'npy', 'pickle' or 'other' from the first bytes of the file."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return "other"
    if head.startswith(ZIP_MAGIC):
        return "npz"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(PICKLE_MAGIC):
        return "pickle"
    return "other"


def _read_header(fh, where: str):
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"npy format version {version}")
    except (ValueError, EOFError, OSError, SyntaxError, TypeError, zlib.error,
            zipfile.BadZipFile, tokenize.TokenError, MemoryError, RecursionError) as exc:
        # (numpy parses the header dict with the tokenizer: a flipped byte can end it early)
        raise FileFormatError(f"{where}: corrupt .npy header ({type(exc).__name__})") from None
    if dtype.hasobject:
        raise FileFormatError(f"{where}: holds Python objects (a pickle); norsim never "
                              "unpickles a file: save plain numeric arrays")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise FileFormatError(f"{where}: bad declared shape {shape}")
    return shape, fortran, dtype


def _read_array(fh, available: int, where: str) -> np.ndarray:
    """One array from a .npy stream holding at most ``available`` bytes (header included)."""
    shape, fortran, dtype = _read_header(fh, where)
    count = math.prod(shape)
    need = count * dtype.itemsize
    if need > available:
        raise FileFormatError(f"{where}: header declares shape {shape} of {dtype} "
                              f"({need} bytes) but the file holds {available} bytes")
    try:
        data = fh.read(need)
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, ValueError) as exc:
        raise FileFormatError(f"{where}: truncated or corrupt data ({type(exc).__name__}: "
                              f"{exc})") from None
    if len(data) != need:
        raise FileFormatError(f"{where}: truncated ({len(data)} of {need} data bytes)")
    if need == 0:
        return np.zeros(shape, dtype=dtype, order="F" if fortran else "C")
    arr = np.frombuffer(data, dtype=dtype, count=count).copy()
    return arr.reshape(shape, order="F" if fortran else "C")


def load_npy(path: str | Path, what: str) -> np.ndarray:
    """The array of a single ``.npy`` file (never unpickles)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            return _read_array(fh, size, f"{what} {path}")
    except OSError as exc:
        raise FileFormatError(f"{what} {path}: not readable ({exc.strerror or exc})") from None


def load_npz(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive by name (without ``.npy``); never unpickles."""
    path = Path(path)
    where = f"{what} {path}"
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise FileFormatError(f"{where}: not readable ({exc.strerror or exc})") from None
    kind = sniff(path)
    if kind == "pickle":
        raise FileFormatError(f"{where}: a Python pickle, not an .npz archive (norsim never "
                              "unpickles a file)")
    if kind == "npy":
        raise FileFormatError(f"{where}: a single .npy array, expected an .npz archive")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise FileFormatError(f"{where}: not a readable .npz archive ({exc})") from None
    out: dict[str, np.ndarray] = {}
    with zf:
        for info in zf.infolist():
            name = info.filename
            key = name[:-4] if name.endswith(".npy") else name
            member = f"{where}: array {key!r}"
            if info.compress_size > size or info.file_size > max(
                    info.compress_size, 1) * MAX_DEFLATE_RATIO + 1024:
                raise FileFormatError(f"{member}: declared size {info.file_size} bytes does "
                                      f"not fit its {info.compress_size} compressed bytes")
            try:
                with zf.open(info) as fh:
                    out[key] = _read_array(fh, info.file_size, member)
                    fh.read()  # bounded by the member's size; the end checks the CRC
            except FileFormatError:
                raise
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error,
                    NotImplementedError, RuntimeError, KeyError) as exc:
                raise FileFormatError(f"{member}: unreadable or truncated "
                                      f"({type(exc).__name__}: {exc})") from None
    return out
