"""Data sets: ``load_dataset(name_or_dir, split)`` and a standard normalisation.

Names:

* ``"mnist"``: the embedded copy in the package (splits "test" = the 10,000 t10k images,
  "calib" = training images 59000-59999); no download, no data directory;
* ``"mnist-full"``: ``<data root>/mnist``; ``"cifar10"``: ``<data root>/cifar10``, where the
  data root is the ``data_dir`` argument (a CLI's ``--data-dir``) or else ``$NORSIM_DATA``;
* any directory path, in one of these layouts (detected automatically):
  MNIST IDX files (``train-images-idx3-ubyte[.gz]``, ``t10k-...``), the CIFAR-10 python
  batches (``cifar-10-batches-py/`` or the batch files directly), the CIFAR-10 binary version
  (``cifar-10-batches-bin/``), or the npz layout (``test.npz`` + ``train.npz`` for MNIST,
  ``test.npz`` + ``train_0..4.npz`` for CIFAR-10, each with ``x`` uint8 and ``y`` uint8).

Splits: "train" (all training images), "test", "calib" (the last 1000 training images, i.e.
MNIST 59000-59999, CIFAR-10 49000-49999; exclude them from training if you calibrate on them).

Images are uint8: MNIST ``(N, 28, 28)``, CIFAR-10 ``(N, 32, 32, 3)`` (HWC, RGB); labels uint8.
:func:`normalize` gives float32 NCHW ``p / 255`` -- exactly the real value of the default
QuantModel input codes (docs/model-format.md, section 4).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from norsim.errors import FileFormatError, InputError

from . import cifar10, mnist
from .embedded import load_embedded_mnist

ENV_VAR = "NORSIM_DATA"
SPLITS = ("train", "test", "calib")
NAMES = {"mnist-full": "mnist", "cifar10": "cifar10"}
#: commonly used per-channel statistics (of the training sets, in [0, 1] units)
MNIST_MEAN_STD = ((0.1307,), (0.3081,))
CIFAR10_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


@dataclass
class Dataset:
    """Images ``x`` (uint8), labels ``y`` (uint8); unpacks as ``x, y = dataset``."""

    x: np.ndarray
    y: np.ndarray
    name: str
    split: str

    def __iter__(self):
        return iter((self.x, self.y))

    def __len__(self) -> int:
        return int(self.x.shape[0])


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The directory that holds the larger data sets: ``data_dir`` or ``$NORSIM_DATA``."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(ENV_VAR)
    if not env:
        raise InputError(ENV_VAR, None, "set NORSIM_DATA (or pass --data-dir / data_dir=) to "
                         "a directory holding mnist/ and cifar10/")
    return Path(env)


def add_data_args(parser) -> None:
    """Add ``--data-dir`` (overrides ``$NORSIM_DATA``) to an argparse parser."""
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help=f"directory of the larger data sets (default: ${ENV_VAR})")


def load_dataset(name_or_dir: str | os.PathLike = "mnist", split: str = "test", *,
                 data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load ``split`` ("train", "test" or "calib") of a named data set or a directory."""
    if split not in SPLITS:
        raise InputError("split", split, f"one of {SPLITS}")
    key = str(name_or_dir)
    if key == "mnist":
        x, y = load_embedded_mnist(split)
        return Dataset(x, y, "mnist", split)
    if key in NAMES:
        root = data_root(data_dir)
        d = root / NAMES[key]
        if not d.is_dir():
            raise InputError(f"{key} directory", str(d), "an existing directory (set "
                             f"{ENV_VAR} or data_dir to its parent)")
        x, y = _load_dir(d, split)
        return Dataset(x, y, key, split)
    d = Path(name_or_dir)
    if not d.is_dir():
        raise InputError("name_or_dir", key, f"'mnist', one of {sorted(NAMES)} or a directory")
    x, y = _load_dir(d, split)
    return Dataset(x, y, str(d), split)


def _load_dir(d: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    if (d / "test.npz").is_file():
        return _load_npz_layout(d, split)
    if mnist.has_idx(d):
        return mnist.load_idx_split(d, split)
    if cifar10.has_cifar(d):
        return cifar10.load_batches_split(d, split)
    raise FileFormatError(f"{d}: no recognised data layout (test.npz, MNIST IDX files, "
                          f"cifar-10-batches-py or cifar-10-batches-bin)")


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from norsim.safeio import load_npz

    z = load_npz(path, "data set")
    if "x" not in z or "y" not in z:
        raise FileFormatError(f"{path}: expected arrays 'x' and 'y', found {sorted(z)}")
    x, y = z["x"], z["y"]
    if x.dtype != np.uint8 or y.dtype != np.uint8:
        raise FileFormatError(f"{path}: x is {x.dtype}, y is {y.dtype}; expected uint8")
    if x.ndim not in (3, 4) or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise FileFormatError(f"{path}: x {x.shape} and y {y.shape} are not N images and N "
                              f"labels")
    if x.ndim == 4 and x.shape[3] not in (1, 3):
        raise FileFormatError(f"{path}: x {x.shape} is not channels-last (N, H, W, C)")
    if y.size and y.max() > 9:
        raise FileFormatError(f"{path}: label {int(y.max())} outside 0-9")
    return x, y


def _load_npz_layout(d: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    if split == "test":
        return _read_npz(d / "test.npz")
    if (d / "train.npz").is_file():
        x, y = _read_npz(d / "train.npz")
        calib = mnist.CALIB_SLICE
    else:
        parts = [d / f"train_{k}.npz" for k in range(5)]
        missing = [p.name for p in parts if not p.is_file()]
        if missing:
            raise FileFormatError(f"{d}: npz layout without train.npz or {missing}")
        xs, ys = zip(*(_read_npz(p) for p in parts))
        x, y = np.concatenate(xs), np.concatenate(ys)
        calib = cifar10.CALIB_SLICE
    if split == "calib":
        if x.shape[0] < 1000:
            raise FileFormatError(f"{d}: {x.shape[0]} training images, the calibration slice "
                                  f"needs {1000}")
        return x[calib], y[calib]
    return x, y


def normalize(x: np.ndarray, mean=None, std=None) -> np.ndarray:
    """uint8 images ``(N, H, W)`` or ``(N, H, W, C)`` -> float32 ``(N, C, H, W)``.

    Without ``mean``/``std`` the result is ``p / 255`` (the QuantModel default input's real
    value); with them, ``(p/255 - mean[c]) / std[c]`` per channel.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        raise InputError("x.dtype", getattr(x, "dtype", type(x).__name__), "uint8 images")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    else:
        raise InputError("x.shape", x.shape, "(N, H, W) or (N, H, W, C)")
    out = x.astype(np.float32) / np.float32(255.0)
    if mean is not None or std is not None:
        c = out.shape[1]
        m = np.asarray(0.0 if mean is None else mean, np.float32).reshape(-1)
        s = np.asarray(1.0 if std is None else std, np.float32).reshape(-1)
        if m.size not in (1, c) or s.size not in (1, c) or np.any(s <= 0):
            raise InputError("mean/std", (mean, std), f"1 or {c} values, std > 0")
        out = (out - m.reshape(1, -1, 1, 1)) / s.reshape(1, -1, 1, 1)
    return np.ascontiguousarray(out)


__all__ = ["Dataset", "load_dataset", "normalize", "data_root", "add_data_args",
           "load_embedded_mnist", "MNIST_MEAN_STD", "CIFAR10_MEAN_STD", "ENV_VAR"]
