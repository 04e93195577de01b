"""MNIST from a user's directory: the original IDX files (gzip or not) or the npz layout.

IDX format (LeCun): a big-endian header ``0x00 0x00 <type> <ndim>`` followed by ``ndim``
big-endian uint32 sizes and the data. MNIST uses type 0x08 (unsigned byte), so the magic
numbers are 2051 (0x00000803) for images and 2049 (0x00000801) for labels.
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import numpy as np

from norsim.errors import FileFormatError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
N_TRAIN = 60000
#: the calibration slice: the last 1000 training images (59000-59999 of the standard 60000;
#: the embedded copy ships the same images)
CALIB_SLICE = slice(-1000, None)
CALIB_SIZE = 1000


def read_idx(path: str | Path, expect_magic: int | None = None) -> np.ndarray:
    """Read one IDX file of unsigned bytes (``.gz`` is decompressed) into a uint8 array."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            # deflate expands at most ~1032:1: a longer stream is not a real gzip file
            limit = 1100 * len(raw) + 1024
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
                raw = gz.read(limit + 1)
            if len(raw) > limit:
                raise FileFormatError(f"{path}: gzip stream expands beyond {limit} bytes")
    except (OSError, EOFError, zlib.error) as exc:
        raise FileFormatError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 4:
        raise FileFormatError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise FileFormatError(f"{path}: magic number {magic:#010x} is not an unsigned-byte IDX "
                              f"file (expected 0x000008NN)")
    if expect_magic is not None and magic != expect_magic:
        raise FileFormatError(f"{path}: magic number {magic} (expected {expect_magic})")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if ndim < 1 or len(raw) < head:
        raise FileFormatError(f"{path}: truncated IDX header ({ndim} dimensions)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(dims, dtype=np.int64))
    if len(raw) - head != size:
        raise FileFormatError(f"{path}: header says {dims} = {size} bytes of data, "
                              f"file holds {len(raw) - head}")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims).copy()


def _find(directory: Path, stem: str) -> Path | None:
    for cand in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        p = directory / cand
        if p.is_file():
            return p
    return None


def has_idx(directory: Path) -> bool:
    return _find(Path(directory), FILES["test"][0]) is not None


def load_idx_split(directory: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x uint8 (N, 28, 28), y uint8 (N,))`` of ``split`` from IDX files in ``directory``."""
    directory = Path(directory)
    src = "train" if split == "calib" else split
    img_stem, lab_stem = FILES[src]
    pi, pl = _find(directory, img_stem), _find(directory, lab_stem)
    if pi is None or pl is None:
        raise FileFormatError(f"{directory}: missing {img_stem if pi is None else lab_stem}"
                              f"[.gz]")
    x = read_idx(pi, IMAGES_MAGIC)
    y = read_idx(pl, LABELS_MAGIC)
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise FileFormatError(f"{directory}: images {x.shape} and labels {y.shape} disagree")
    if y.size and y.max() > 9:
        raise FileFormatError(f"{pl}: label {int(y.max())} is not a digit 0-9")
    if split == "calib":
        if x.shape[0] < CALIB_SIZE:
            raise FileFormatError(f"{pi}: {x.shape[0]} training images, the calibration "
                                  f"slice needs {CALIB_SIZE}")
        x, y = x[CALIB_SLICE], y[CALIB_SLICE]
    return x, y


def write_idx(path: str | Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write a uint8 array as an IDX file (used for fixtures and conversions)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    head = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    data = head + a.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path
