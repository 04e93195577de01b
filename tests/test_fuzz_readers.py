"""Fuzzing the file readers: truncations, bit flips and type confusions of model files, data
files, measured maps, configurations and sweep specs. Every outcome is a success or a norsim
error class (never another exception), and no reader allocates more than the file justifies.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from norsim.errors import NorsimError

# NORSIM_FUZZ_EXAMPLES=5000 runs a longer, randomised search (the default is fixed and fast)
_EXAMPLES = int(os.environ.get("NORSIM_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_EXAMPLES or 60, deadline=None, derandomize=not _EXAMPLES,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
# a reader may hold the decoded file a few times over, plus interpreter noise; a forged size
# field asking for gigabytes is far above this
ALLOC_SLACK = 32 << 20


def _mutate(data: bytes, draw_ops) -> bytes:
    buf = bytearray(data)
    for op, pos, val in draw_ops:
        if not buf:
            break
        pos %= len(buf)
        if op == "flip":
            buf[pos] ^= 1 << (val % 8)
        elif op == "byte":
            buf[pos] = val % 256
        elif op == "truncate":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = bytes([val % 256]) * (1 + val % 7)
    return bytes(buf)


MUTATIONS = st.lists(st.tuples(st.sampled_from(["flip", "byte", "truncate", "insert"]),
                               st.integers(0, 1 << 30), st.integers(0, 1 << 16)),
                     min_size=1, max_size=6)


def _outcome(fn, path, size_hint: int):
    """Run a reader; only norsim errors may escape; peak allocation stays bounded."""
    tracemalloc.start()
    try:
        fn(path)
    except NorsimError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg.strip(), msg
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak <= 64 * size_hint + ALLOC_SLACK, f"peak {peak} bytes for a {size_hint}-byte file"


# ------------------------------------------------------------------------ models ----
@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    from norsim.mapping.random_models import random_lenet

    path = tmp_path_factory.mktemp("m") / "m.npz"
    random_lenet(np.random.default_rng(0), calib_n=4).save(path)
    return path.read_bytes()


def _load_model(path):
    from norsim.mapping.quant_model import QuantModel

    QuantModel.load(path)


@FUZZ
@given(ops=MUTATIONS)
def test_model_file_bit_flips_and_truncations(model_bytes, tmp_path, ops):
    path = tmp_path / "m.npz"
    path.write_bytes(_mutate(model_bytes, ops))
    _outcome(_load_model, path, len(model_bytes))


def _npz_with(arrays: dict, compress=False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **arrays)
    return buf.getvalue()


def _graph_and_arrays(model_bytes):
    from norsim.mapping.quant_model import GRAPH_KEY

    with np.load(io.BytesIO(model_bytes), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    graph = json.loads(arrays.pop(GRAPH_KEY).tobytes())
    return graph, arrays


JSON_JUNK = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) |
                         st.floats(allow_nan=True) | st.text(max_size=5),
                         lambda c: st.lists(c, max_size=3) |
                         st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=6)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


@FUZZ
@given(data=st.data())
def test_model_graph_type_confusions(model_bytes, tmp_path, data):
    from norsim.mapping.quant_model import GRAPH_KEY

    graph, arrays = _graph_and_arrays(model_bytes)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(graph) if p]
        if not paths:
            break
        where = data.draw(st.sampled_from(paths))
        node = graph
        for k in where[:-1]:
            node = node[k]
        node[where[-1]] = data.draw(JSON_JUNK)
    try:
        text = json.dumps(graph)
    except (ValueError, TypeError):
        return
    arrays[GRAPH_KEY] = np.frombuffer(text.encode(), dtype=np.uint8)
    if data.draw(st.booleans()):  # and an array of the wrong kind
        name = data.draw(st.sampled_from(sorted(arrays)))
        arrays[name] = data.draw(st.sampled_from([
            np.zeros((2, 3), np.float32), np.array([1e30]), np.zeros(0, np.int8),
            np.arange(5, dtype=np.int64), np.array(["x"]), np.zeros((1, 1, 1, 1, 1), np.int8)]))
    path = tmp_path / "m.npz"
    path.write_bytes(_npz_with(arrays))
    _outcome(_load_model, path, path.stat().st_size)


def _npy_header(shape, descr="<f8") -> bytes:
    head = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    head += b" " * (63 - (len(head) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head


def test_a_forged_array_size_is_refused_before_allocating(model_bytes, tmp_path):
    """A member whose header declares 10^12 elements is refused, with no such allocation."""
    from norsim.errors import FileFormatError

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("huge.npy", _npy_header((10**6, 10**6)) + b"\0" * 64)
    path = tmp_path / "m.npz"
    path.write_bytes(buf.getvalue())
    tracemalloc.start()
    with pytest.raises(FileFormatError, match=r"declares shape \(1000000, 1000000\)"):
        _load_model(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < ALLOC_SLACK


def test_a_pickle_is_named_as_such_without_numpys_allow_pickle_hint(tmp_path):
    import pickle

    from norsim.errors import FileFormatError

    plain = tmp_path / "plain.npz"
    plain.write_bytes(pickle.dumps({"w": [1, 2]}))
    with pytest.raises(FileFormatError, match="pickle") as e1:
        _load_model(plain)
    inner = tmp_path / "inner.npz"
    inner.write_bytes(_npz_with({"w": np.array([{"a": 1}], dtype=object)}))
    with pytest.raises(FileFormatError, match="pickle") as e2:
        _load_model(inner)
    for e in (e1, e2):
        assert "allow_pickle" not in str(e.value) and "truncated" not in str(e.value)


# -------------------------------------------------------------------------- data ----
def _idx(x: np.ndarray) -> bytes:
    return struct.pack(">I", 0x0800 + x.ndim) + b"".join(
        struct.pack(">I", n) for n in x.shape) + x.tobytes()


@pytest.fixture(scope="module")
def data_files():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (6, 4, 4), dtype=np.uint8)
    y = rng.integers(0, 10, 6, dtype=np.uint8)
    cifar_bin = np.concatenate([y[:2, None], rng.integers(0, 256, (2, 3072), dtype=np.uint8)],
                               axis=1).astype(np.uint8).tobytes()
    return {"idx": _idx(x), "idx.gz": gzip.compress(_idx(x)),
            "npz": _npz_with({"x": x, "y": y}, compress=True),
            "bin": cifar_bin}


def _read_data(kind):
    def read(path):
        if kind.startswith("idx"):
            from norsim.data.mnist import read_idx

            read_idx(path)
        elif kind == "npz":
            from norsim.data import _read_npz

            _read_npz(path)
        else:
            from norsim.data.cifar10 import read_binary_batch

            read_binary_batch(path)
    return read


@FUZZ
@given(kind=st.sampled_from(["idx", "idx.gz", "npz", "bin"]), ops=MUTATIONS)
def test_data_files_bit_flips_and_truncations(data_files, tmp_path, kind, ops):
    path = tmp_path / f"d.{kind}"
    path.write_bytes(_mutate(data_files[kind], ops))
    _outcome(_read_data(kind), path, len(data_files[kind]))


def test_a_gzip_bomb_idx_is_refused(tmp_path):
    """An IDX header declaring far more data than a compressed file can hold."""
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(struct.pack(">IIII", 0x0803, 10**5, 10**4, 10**4)))
    from norsim.errors import FileFormatError

    with pytest.raises(FileFormatError, match="header says"):
        _read_data("idx")(path)


@FUZZ
@given(ops=MUTATIONS)
def test_embedded_copy_damaged(tmp_path, monkeypatch, ops):
    from norsim.data import embedded

    small = tmp_path / "small.npz"
    small.write_bytes(_npz_with({"test_x": np.zeros((3, 28, 28), np.uint8),
                                 "test_y": np.zeros(3, np.uint8),
                                 "test_index": np.arange(3)}, compress=True))
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(_mutate(small.read_bytes(), ops))
    monkeypatch.setattr(embedded, "MNIST_FILE", bad)
    _outcome(lambda p: embedded.load_embedded_mnist("test"), bad, small.stat().st_size)


# ------------------------------------------------------------------ measured maps ----
@pytest.mark.parametrize("suffix", [
    ".csv",
    ".npy",
])
@FUZZ
@given(ops=MUTATIONS)
def test_measured_map_files(tmp_path, suffix, ops):
    from norsim.device.measured import read_map_file

    grid = np.linspace(1.0, 3.0, 12).reshape(3, 4)
    if suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, grid)
        raw = buf.getvalue()
    else:
        raw = "\n".join(",".join(f"{v:.4f}" for v in row) for row in grid).encode()
    path = tmp_path / f"map{suffix}"
    path.write_bytes(_mutate(raw, ops))
    _outcome(read_map_file, path, len(raw))


# ------------------------------------------------------------- configs and specs ----
CONFIG = b"""seed = 3
[device.read]
temperature_k = 300.0
[array]
rows = 64
"""
SPEC = b"""[sweep]
evaluator = "test"
[base]
preset = "nor40"
[seeds]
root = 1
count = 2
[axes]
"device.read.temperature_k" = [280.0, 300.0]
"array.rows" = { start = 32, stop = 64, step = 32 }
[options]
"""


def _load_config(path):
    from norsim.config.sim import SimConfig

    SimConfig.load(path)


def _load_spec(path):
    from norsim.experiments.spec import load_spec

    load_spec(path)


@FUZZ
@given(which=st.sampled_from(["config", "spec"]), ops=MUTATIONS)
def test_toml_files_bit_flips_and_truncations(tmp_path, which, ops):
    raw = CONFIG if which == "config" else SPEC
    path = tmp_path / f"{which}.toml"
    path.write_bytes(_mutate(raw, ops))
    _outcome(_load_config if which == "config" else _load_spec, path, len(raw))


TOML_VALUES = st.sampled_from(['"x"', "1", "-1", "1e400", "nan", "inf", "true", "[]", "[1, 2]",
                               "{}", "{ start = 1 }", '[[1, "a"]]', "2026-01-01", "0x10",
                               '"1.0"', "[[]]", "{ a = { b = 1 } }"])


@FUZZ
@given(which=st.sampled_from(["config", "spec"]), data=st.data())
def test_toml_type_confusions(tmp_path, which, data):
    raw = (CONFIG if which == "config" else SPEC).decode()
    lines = raw.splitlines()
    candidates = [i for i, ln in enumerate(lines) if "=" in ln]
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.sampled_from(candidates))
        key = lines[i].split("=", 1)[0]
        lines[i] = f"{key}= {data.draw(TOML_VALUES)}"
    path = tmp_path / f"{which}.toml"
    path.write_text("\n".join(lines) + "\n")
    _outcome(_load_config if which == "config" else _load_spec, path, len(raw))


@pytest.mark.parametrize("which", ["config", "spec"])
def test_binary_toml_is_a_one_line_error(tmp_path, which):
    from norsim.errors import NorsimError

    path = tmp_path / "x.toml"
    path.write_bytes(b"seed = 1\n\xff\xfe\x00binary")
    with pytest.raises(NorsimError, match=r"UTF-8.*0xff at offset 9"):
        (_load_config if which == "config" else _load_spec)(path)
