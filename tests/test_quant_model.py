"""QuantModel files: round trip, no pickle, and every kind of bad file named precisely.
Also the requantisation arithmetic against exact Python integers."""

from __future__ import annotations

import io
import json
import zipfile
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from norsim.errors import FileFormatError, InputError
from norsim.mapping import reference as ref
from norsim.mapping.quant_model import (GRAPH_KEY, Add, Conv2d, Flatten, Input, Linear,
                                        QuantModel, ReLU)
from norsim.mapping.random_models import blob_images, random_lenet
from norsim.mapping.requant import (apply_multiplier, div_round_half_up, quantize_multiplier,
                                    quantize_multiplier_pair)


@pytest.fixture(scope="module")
def lenet():
    return random_lenet(np.random.default_rng(0), calib_n=8)


def _arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _write(path, arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def _graph(arrays):
    return json.loads(arrays[GRAPH_KEY].tobytes().decode())


def _set_graph(arrays, g):
    arrays[GRAPH_KEY] = np.frombuffer(json.dumps(g).encode(), np.uint8)


# --------------------------------------------------------------------------- round trip

def test_save_load_round_trip_same_outputs(lenet, tmp_path):
    p = lenet.save(tmp_path / "m.npz")
    m2 = QuantModel.load(p)
    assert m2.graph_dict() == lenet.graph_dict()
    assert m2.specs()["conv1"].shape == (6, 28, 28)
    x = ref.input_codes(lenet, blob_images(np.random.default_rng(1), 4, 28, 28, 1))
    np.testing.assert_array_equal(ref.run_reference(m2, x), ref.run_reference(lenet, x))
    g = _graph(_arrays(p))
    assert g["format"] == "norsim-quantmodel" and g["format_version"] == 1
    assert [n["op"] for n in g["nodes"]][:2] == ["input", "conv2d"]


def test_file_holds_no_pickle_and_canonical_dtypes(lenet, tmp_path):
    p = lenet.save(tmp_path / "m.npz")
    with zipfile.ZipFile(p) as z:
        for name in z.namelist():
            with z.open(name) as fh:
                head = fh.read(10)
            assert head.startswith(b"\x93NUMPY"), name
    a = _arrays(p)
    assert a["conv1/weight"].dtype == np.int8 and a["conv1/bias"].dtype == np.int32
    assert a["conv1/weight_scale"].dtype == np.float64
    assert a["conv1/multiplier"].dtype == np.int32 and a["conv1/shift"].dtype == np.int32


def test_nodes_in_any_order_are_sorted(lenet):
    shuffled = QuantModel(list(reversed(lenet.nodes)), lenet.output).validate()
    assert [n.name for n in shuffled.order()] == [n.name for n in lenet.order()]


def test_float_params_and_from_float_round_trip():
    """from_float quantises as documented; float_weight/float_bias invert it on the grid."""
    rng = np.random.default_rng(2)
    s_w = np.array([0.1, 0.05, 0.2])
    q = rng.integers(-7, 8, (3, 2, 3, 3))
    w = q * s_w[:, None, None, None]
    b = np.array([0.5, -0.25, 0.125])
    c = Conv2d.from_float("c", "input", w, b, s_w, in_scale=1 / 255, out_scale=0.1)
    np.testing.assert_array_equal(c.weight, q)
    np.testing.assert_array_equal(c.bias, np.rint(b / (s_w / 255)))
    np.testing.assert_allclose(c.float_weight(), w)
    np.testing.assert_allclose(c.float_bias(1 / 255), b, atol=s_w.max() / 255 / 2)
    np.testing.assert_allclose(c.multiplier / 2.0 ** c.shift, s_w / 255 / 0.1, rtol=2 ** -30)
    # values outside the 4-bit grid saturate at +-7 (narrow range)
    c2 = Conv2d.from_float("c", "input", w * 3, None, s_w, 1 / 255, 0.1)
    assert c2.weight.max() == 7 and c2.weight.min() == -7


# --------------------------------------------------------------------------- bad files

def test_missing_array_names_node_and_array(lenet, tmp_path):
    a = _arrays(lenet.save(tmp_path / "m.npz"))
    del a["conv2/bias"]
    with pytest.raises(FileFormatError, match=r"conv2.*bias.*missing"):
        QuantModel.load(_write(tmp_path / "bad.npz", a))


def test_stray_array_is_rejected(lenet, tmp_path):
    a = _arrays(lenet.save(tmp_path / "m.npz"))
    a["ghost/weight"] = np.zeros(3, np.int8)
    with pytest.raises(FileFormatError, match="ghost/weight"):
        QuantModel.load(_write(tmp_path / "bad.npz", a))


def test_code_out_of_range_names_node(lenet, tmp_path):
    a = _arrays(lenet.save(tmp_path / "m.npz"))
    a["conv2/weight"] = a["conv2/weight"].copy()
    a["conv2/weight"][0, 0, 0, 0] = 8          # 4-bit narrow range is [-7, 7]
    with pytest.raises(FileFormatError, match=r"conv2.*weight.*8 out of range \[-7, 7\]"):
        QuantModel.load(_write(tmp_path / "bad.npz", a))


def test_wrong_dtype_and_shape(lenet, tmp_path):
    a = _arrays(lenet.save(tmp_path / "m.npz"))
    b = dict(a, **{"fc1/weight": a["fc1/weight"].astype(np.int16)})
    with pytest.raises(FileFormatError, match=r"fc1.*weight.*int16"):
        QuantModel.load(_write(tmp_path / "bad.npz", b))
    c = dict(a, **{"fc1/bias": a["fc1/bias"][:-1]})
    with pytest.raises(FileFormatError, match=r"fc1.*bias.*shape"):
        QuantModel.load(_write(tmp_path / "bad.npz", c))
    d = dict(a, **{"fc2/weight": a["fc2/weight"][:, :-1]})
    with pytest.raises(FileFormatError, match=r"fc2.*inputs"):
        QuantModel.load(_write(tmp_path / "bad.npz", d))


def test_cycle_is_rejected(lenet, tmp_path):
    a = _arrays(lenet.save(tmp_path / "m.npz"))
    g = _graph(a)
    for n in g["nodes"]:
        if n["name"] == "conv2":
            n["inputs"] = ["fc1"]      # conv2 -> pool2 -> flatten -> fc1 -> conv2
    _set_graph(a, g)
    with pytest.raises(FileFormatError, match=r"cycle.*conv2"):
        QuantModel.load(_write(tmp_path / "bad.npz", a))
    # in memory too
    r1 = ReLU("r1", ("r2",))
    r2 = ReLU("r2", ("r1",))
    with pytest.raises(FileFormatError, match="cycle"):
        QuantModel([Input("input", shape=(1, 2, 2)), r1, r2], "r2").validate()


def test_truncated_and_corrupt_files(lenet, tmp_path):
    raw = lenet.save(tmp_path / "m.npz").read_bytes()
    for cut in (10, len(raw) // 2, len(raw) - 30):
        p = tmp_path / f"cut{cut}.npz"
        p.write_bytes(raw[:cut])
        with pytest.raises(FileFormatError):
            QuantModel.load(p)
    # a corrupted member (flip bytes in the middle of the archive, keep the directory)
    bad = bytearray(raw)
    mid = len(bad) // 3
    bad[mid:mid + 64] = bytes(64)
    (tmp_path / "flip.npz").write_bytes(bytes(bad))
    with pytest.raises(FileFormatError):
        QuantModel.load(tmp_path / "flip.npz")
    with pytest.raises(FileFormatError, match="no such"):
        QuantModel.load(tmp_path / "absent.npz")


def test_pickled_array_is_not_unpickled(lenet, tmp_path):
    a = _arrays(lenet.save(tmp_path / "m.npz"))
    a["conv1/bias"] = np.array([object()] * 6, dtype=object)
    buf = io.BytesIO()
    np.savez(buf, **a)                     # numpy pickles object arrays
    (tmp_path / "obj.npz").write_bytes(buf.getvalue())
    with pytest.raises(FileFormatError, match="conv1/bias"):
        QuantModel.load(tmp_path / "obj.npz")


@pytest.mark.parametrize("mutate, pattern", [
    (lambda g: g.update(format_version=2), "format_version"),
    (lambda g: g.update(format="onnx"), "format"),
    (lambda g: g["nodes"][1].update(op="conv3d"), "conv3d"),
    (lambda g: g["nodes"][1].update(dilation=[2, 2]), r"conv1.*dilation"),
    (lambda g: g["nodes"][1].pop("stride"), r"conv1.*stride.*missing"),
    (lambda g: g["nodes"][1].update(stride=[0, 1]), r"conv1.*stride"),
    (lambda g: g["nodes"][1].update(out_bits=40), r"conv1.*out_bits"),
    (lambda g: g["nodes"][1].update(weight_bits=1), r"conv1.*weight_bits"),
    (lambda g: g["nodes"][1].update(out_scale=-1.0), r"conv1.*out_scale"),
    (lambda g: g["nodes"][1].update(inputs=["nowhere"]), r"conv1.*nowhere"),
    (lambda g: g["nodes"][1].update(inputs=[]), r"conv1.*input"),
    (lambda g: g.update(output="fc9"), "fc9"),
    (lambda g: g["nodes"][0].update(shape=[1, 28]), r"input.*shape"),
    (lambda g: g["nodes"][0].update(bits=9), r"input.*bits"),
    (lambda g: g["nodes"].append(dict(g["nodes"][0], name="input2")), "input node"),
    (lambda g: g["nodes"].append(dict(g["nodes"][1], name="conv1")), "duplicate"),
])
def test_bad_graph_json(lenet, tmp_path, mutate, pattern):
    a = _arrays(lenet.save(tmp_path / "m.npz"))
    g = _graph(a)
    assert g["nodes"][1]["name"] == "conv1"
    mutate(g)
    _set_graph(a, g)
    with pytest.raises(FileFormatError, match=pattern):
        QuantModel.load(_write(tmp_path / "bad.npz", a))


def test_garbage_graph_and_missing_graph(lenet, tmp_path):
    a = _arrays(lenet.save(tmp_path / "m.npz"))
    a[GRAPH_KEY] = np.frombuffer(b"{not json", np.uint8)
    with pytest.raises(FileFormatError, match="JSON"):
        QuantModel.load(_write(tmp_path / "bad.npz", a))
    del a[GRAPH_KEY]
    with pytest.raises(FileFormatError, match=GRAPH_KEY):
        QuantModel.load(_write(tmp_path / "bad2.npz", a))


def test_inconsistent_multiplier_and_accumulator_overflow(lenet, tmp_path):
    a = _arrays(lenet.save(tmp_path / "m.npz"))
    b = dict(a, **{"conv2/multiplier": (a["conv2/multiplier"] // 2).astype(np.int32)})
    with pytest.raises(FileFormatError, match=r"conv2.*multiplier.*scales"):
        QuantModel.load(_write(tmp_path / "bad.npz", b))
    c = dict(a, **{"conv2/bias": np.full_like(a["conv2/bias"], 2 ** 31 - 10)})
    with pytest.raises(FileFormatError, match=r"conv2.*int32"):
        QuantModel.load(_write(tmp_path / "bad2.npz", c))


def test_unused_node_and_raw_output_feeding_a_node():
    inp = Input("input", shape=(1, 2, 2))
    f = Flatten("f", ("input",))
    lin = Linear("fc", ("f",), weight=np.ones((2, 4), np.int8), bias=np.zeros(2, np.int32),
                 weight_scale=np.ones(2), requantize=False)
    dead = ReLU("dead", ("f",))
    with pytest.raises(FileFormatError, match="dead"):
        QuantModel([inp, f, lin, dead], "fc").validate()
    after = ReLU("r", ("fc",))
    with pytest.raises(FileFormatError, match=r"r.*raw accumulators"):
        QuantModel([inp, f, lin, after], "r").validate()


def test_add_shape_mismatch_named():
    inp = Input("input", shape=(1, 4, 4))
    f = Flatten("f", ("input",))
    a = Add("a", ("input", "f"), multiplier_a=2 ** 30, multiplier_b=2 ** 30, shift=30,
            out_scale=1 / 255)
    with pytest.raises(FileFormatError, match=r"'a'.*shapes differ"):
        QuantModel([inp, f, a], "a").validate()


# --------------------------------------------------------------------------- requantisation

@settings(max_examples=200, deadline=None)
@given(real=st.floats(1e-12, 1e6, allow_nan=False))
def test_quantize_multiplier_precision(real):
    m, n = quantize_multiplier(real)
    assert 0 <= m < 2 ** 31 and 1 <= n <= 62
    if n < 62:
        assert 2 ** 30 <= m
        assert abs(Fraction(m, 2 ** n) - Fraction(real)) <= Fraction(real) * Fraction(1, 2 ** 31)
    else:
        assert abs(Fraction(m, 2 ** 62) - Fraction(real)) <= Fraction(1, 2 ** 63)


def test_quantize_multiplier_rejects_bad_values():
    for bad in (0.0, -1.0, float("nan"), float("inf"), 2.0 ** 31):
        with pytest.raises(InputError):
            quantize_multiplier(bad)


@settings(max_examples=200, deadline=None)
@given(acc=st.integers(-(2 ** 31) + 1, 2 ** 31 - 1), m=st.integers(0, 2 ** 31 - 1),
       n=st.integers(1, 62))
def test_apply_multiplier_is_round_half_up_of_exact_rational(acc, m, n):
    v = Fraction(acc * m, 2 ** n) + Fraction(1, 2)
    want = v.numerator // v.denominator            # floor, exact
    want = max(-128, min(127, want))
    got = int(apply_multiplier(np.array([acc]), m, n, -128, 127)[0])
    assert got == want


def test_rounding_ties_go_up():
    # 3 * 1 / 2 = 1.5 -> 2 ; -3 / 2 = -1.5 -> -1 ; 5 / 4 = 1.25 -> 1 ; -5/4 -> -1
    got = apply_multiplier(np.array([3, -3, 5, -5, -6]), 1, np.array([1, 1, 2, 2, 2]),
                           -100, 100)
    assert got.tolist() == [2, -1, 1, -1, -1]
    assert div_round_half_up(np.array([3, -3, 4, 5, -5, 13, -13]), 2).tolist() == \
        [2, -1, 2, 3, -2, 7, -6]
    assert div_round_half_up(np.array([13, 14, -13, -14]), 9).tolist() == [1, 2, -1, -2]


def test_multiplier_pair_shares_shift():
    ma, mb, n = quantize_multiplier_pair(0.75, 0.3)
    assert max(ma, mb) < 2 ** 31 and 2 ** 30 <= max(ma, mb)
    assert abs(ma / 2 ** n - 0.75) < 2 ** -30 and abs(mb / 2 ** n - 0.3) < 2 ** -30
