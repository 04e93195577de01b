"""The MNIST copy shipped in the package: integrity against published checksums, counts,
and disjoint calibration/evaluation images."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from norsim.data import load_dataset, normalize
from norsim.data.embedded import MNIST_FILE, embedded_source, load_embedded_mnist
from norsim.errors import InputError

# widely published MD5s of the original, uncompressed LeCun files
T10K_IMAGES_MD5 = "2646ac647ad5339dbf082846283269ea"
T10K_LABELS_MD5 = "27ae3e4e09519cfbb04c329615203637"
T10K_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_embedded_test_set_is_byte_exact_t10k():
    x, y = load_dataset("mnist", "test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8 and y.dtype == np.uint8
    idx_images = struct.pack(">IIII", 2051, 10000, 28, 28) + x.tobytes()
    idx_labels = struct.pack(">II", 2049, 10000) + y.tobytes()
    assert hashlib.md5(idx_images).hexdigest() == T10K_IMAGES_MD5
    assert hashlib.md5(idx_labels).hexdigest() == T10K_LABELS_MD5
    assert np.bincount(y, minlength=10).tolist() == T10K_COUNTS


def test_calibration_slice_disjoint_from_evaluation():
    xt, yt, it = load_embedded_mnist("test", with_index=True)
    xc, yc, ic = load_embedded_mnist("calib", with_index=True)
    assert xc.shape == (1000, 28, 28) and yc.shape == (1000,)
    # indices: test images are t10k 0..9999, calibration images are *training* 59000..59999
    assert it.tolist() == list(range(10000))
    assert ic.tolist() == list(range(59000, 60000))
    test_ids = {("t10k", int(i)) for i in it}
    calib_ids = {("train", int(i)) for i in ic}
    assert not test_ids & calib_ids
    # and by content: no calibration image is pixel-identical to an evaluation image
    th = {hashlib.sha1(a.tobytes()).digest() for a in xt}
    ch = {hashlib.sha1(a.tobytes()).digest() for a in xc}
    assert len(ch) == 1000 and not th & ch
    assert set(np.unique(yc).tolist()) == set(range(10))
    assert "59000" in embedded_source()["calib"]


def test_embedded_file_size_and_no_training_split():
    assert MNIST_FILE.stat().st_size < 2.5e6
    with pytest.raises(InputError, match="mnist-full"):
        load_dataset("mnist", "train")


def test_normalize_is_p_over_255():
    x, _ = load_dataset("mnist", "calib")
    f = normalize(x[:5])
    assert f.shape == (5, 1, 28, 28) and f.dtype == np.float32
    np.testing.assert_array_equal(f[:, 0], (x[:5] / np.float32(255)).astype(np.float32))
    with pytest.raises(InputError):
        normalize(x.astype(np.float32))
    with pytest.raises(InputError):
        normalize(x[0])


def test_embedded_cifar10_slice_is_the_first_500_test_images():
    from norsim.data.embedded import CIFAR10_FILE, load_embedded_cifar10_test

    x, y = load_embedded_cifar10_test()
    assert x.shape == (500, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.uint8
    # the standard test_batch order starts cat, ship, ship, airplane, frog, frog, car, frog
    assert y[:8].tolist() == [3, 8, 8, 0, 6, 6, 1, 6]
    # sha256 of the first 500 images / labels of the lossless test set (shared/data/cifar10)
    assert hashlib.sha256(x.tobytes()).hexdigest() == \
        "8f2427926825821b6e0de483aa537ca1419ff2a5b82cc5e436d5dfc50e85cc7a"
    assert hashlib.sha256(y.tobytes()).hexdigest() == \
        "bbe0434d8a802d526f50804695a856046b325584d14495246771129e328f248d"
    assert CIFAR10_FILE.stat().st_size < 1.6e6
