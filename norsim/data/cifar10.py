"""CIFAR-10 from a user's directory: the python batches, the binary version, or npz copies.

The python batches (``cifar-10-batches-py``) are protocol-2 pickles written by Python 2: a dict
with bytes keys ``b"data"`` (an ndarray, 10000 x 3072 uint8, each row R then G then B planes of
32 x 32) and ``b"labels"`` (a list of ints). They are read with :class:`RestrictedUnpickler`,
which admits only the numpy array reconstruction globals (under their numpy 1 name
``numpy.core.multiarray`` and numpy 2 name ``numpy._core.multiarray``) and latin-1
``_codecs.encode``; anything else (``os.system``, ``builtins.eval``, ...) is refused before it
is looked up. The binary version holds 3073-byte records: one label byte and 3072 pixels.

All loaders return ``x`` uint8 ``(N, 32, 32, 3)`` (HWC, RGB) and ``y`` uint8 ``(N,)``.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from norsim.errors import FileFormatError

N_TRAIN = 50000
#: the calibration slice: the last 1000 training images (49000-49999 of the standard 50000)
CALIB_SLICE = slice(-1000, None)
CALIB_SIZE = 1000
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCHES = ["test_batch"]
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]   # numpy's _reconstruct, any version


def _latin1_encode(s, encoding="latin1"):
    if not isinstance(s, str) or str(encoding).lower().replace("-", "") != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode only admitted for latin1 text, got "
                                     f"{encoding!r}")
    return s.encode("latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals an ndarray needs (see module doc)."""

    def find_class(self, module, name):
        key = (module, name)
        if key in _ALLOWED:
            return _ALLOWED[key]
        raise pickle.UnpicklingError(f"global '{module}.{name}' is forbidden (only plain "
                                     f"containers and numpy arrays are admitted)")


def restricted_loads(data: bytes):
    """Unpickle ``data`` (bytes keys kept as bytes, as the CIFAR batches need)."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


def _plain(obj, depth=0) -> bool:
    """True if ``obj`` is built only of plain containers, scalars, bytes/str and arrays."""
    if depth > 20:
        return False
    if isinstance(obj, (bytes, str, int, float, bool, type(None))):
        return True
    if isinstance(obj, np.ndarray):
        return obj.dtype.kind in "biuf"
    if isinstance(obj, (list, tuple)):
        return all(_plain(o, depth + 1) for o in obj)
    if isinstance(obj, dict):
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in obj.items())
    return False


def _get(d: dict, key: str):
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    return None


def read_python_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One python batch -> ``(x (N, 32, 32, 3) uint8, y (N,) uint8)``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read ({exc})") from None
    try:
        obj = restricted_loads(raw)
    except pickle.UnpicklingError as exc:
        raise FileFormatError(f"{path}: refused: {exc}") from None
    except Exception as exc:   # truncated or corrupt pickles raise many types
        raise FileFormatError(f"{path}: corrupt pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict) or not _plain(obj):
        raise FileFormatError(f"{path}: expected a dict of plain values and arrays")
    data, labels = _get(obj, "data"), _get(obj, "labels")
    if data is None or labels is None:
        raise FileFormatError(f"{path}: missing b'data' or b'labels' "
                              f"(keys {sorted(map(repr, obj))})")
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise FileFormatError(f"{path}: data is {data.dtype} {data.shape}, expected uint8 "
                              f"(N, 3072)")
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != data.shape[0] or y.dtype.kind not in "iu" \
            or (y.size and (y.min() < 0 or y.max() > 9)):
        raise FileFormatError(f"{path}: labels must be {data.shape[0]} integers 0-9")
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), y.astype(np.uint8)


def read_binary_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch (``*.bin``, 3073-byte records) -> ``(x, y)``."""
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read ({exc})") from None
    if raw.size == 0 or raw.size % 3073:
        raise FileFormatError(f"{path}: {raw.size} bytes is not a whole number of 3073-byte "
                              f"records")
    rec = raw.reshape(-1, 3073)
    y = rec[:, 0].copy()
    if y.max() > 9:
        raise FileFormatError(f"{path}: label {int(y.max())} is not a class 0-9")
    x = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), y


def _layout(directory: Path):
    """Return ("py"|"bin", folder) for a directory holding the standard distribution."""
    for sub in ("", "cifar-10-batches-py"):
        d = directory / sub if sub else directory
        if (d / "test_batch").is_file():
            return "py", d
    for sub in ("", "cifar-10-batches-bin"):
        d = directory / sub if sub else directory
        if (d / "test_batch.bin").is_file():
            return "bin", d
    return None, None


def has_cifar(directory: Path) -> bool:
    return _layout(Path(directory))[0] is not None


def load_batches_split(directory: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``split`` ("train", "test", "calib") from the python or binary distribution."""
    directory = Path(directory)
    kind, d = _layout(directory)
    if kind is None:
        raise FileFormatError(f"{directory}: no CIFAR-10 test_batch or test_batch.bin found")
    names = TEST_BATCHES if split == "test" else TRAIN_BATCHES
    reader = read_python_batch if kind == "py" else read_binary_batch
    xs, ys = [], []
    for nm in names:
        p = d / (nm if kind == "py" else nm + ".bin")
        if not p.is_file():
            raise FileFormatError(f"{d}: missing {p.name}")
        x, y = reader(p)
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    if split == "calib":
        if x.shape[0] < CALIB_SIZE:
            raise FileFormatError(f"{d}: {x.shape[0]} training images, the calibration slice "
                                  f"needs {CALIB_SIZE}")
        x, y = x[CALIB_SLICE], y[CALIB_SLICE]
    return x, y
