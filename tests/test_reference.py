"""The integer reference executor against the spec computed directly in floating point.

The float computation below is written from docs/model-format.md only (real values = codes *
scales, convolution as explicit shifted sums, round half up via floor(v + 1/2)); it shares no
code with norsim.mapping.reference. With dyadic scales it is exact, so the two must agree bit
for bit; with arbitrary scales they may differ only where the float value sits on a rounding
tie (the multiplier is rounded to 31 bits).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from norsim.errors import InputError
from norsim.mapping import reference as ref
from norsim.mapping.quant_model import (Add, AvgPool2d, Clip, Conv2d, Flatten, GlobalAvgPool,
                                        Input, Linear, MaxPool2d, QuantModel, ReLU)
from norsim.mapping.random_models import blob_images, random_lenet, random_resnet18
from norsim.mapping.requant import code_range

sys.path.insert(0, str(Path(__file__).parent / "golden"))
from golden_models import GOLDEN, HERE as GOLDEN_DIR  # noqa: E402


# --------------------------------------------------------------------------- float spec

def _clamp_round(v, bits, signed):
    lo, hi = code_range(bits, signed)
    return np.clip(np.floor(v + 0.5), lo, hi)


def float_conv(x_real, w_real, b_real, stride, padding):
    n, c, h, w = x_real.shape
    cout, _, kh, kw = w_real.shape
    ph, pw = padding
    sh, sw = stride
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + w] = x_real
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (w + 2 * pw - kw) // sw + 1
    y = np.zeros((n, cout, ho, wo))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + sh * ho:sh, j:j + sw * wo:sw][:, :, :ho, :wo]
            y += np.einsum("nchw,oc->nohw", patch, w_real[:, :, i, j])
    return y + b_real[None, :, None, None]


def float_forward(model: QuantModel, x_codes: np.ndarray, per_layer_inputs=None):
    """Spec in floats. Returns {node: codes as float64} and the raw-output real values.

    With ``per_layer_inputs`` (a dict of integer tensors), every node reads its inputs from
    that dict instead of from the float run (a per-layer comparison).
    """
    specs = model.specs()
    t: dict[str, np.ndarray] = {}
    real_out = None
    for nd in model.order():
        if isinstance(nd, Input):
            t[nd.name] = x_codes.astype(np.float64)
            continue
        src = per_layer_inputs if per_layer_inputs is not None else t
        ins = [np.asarray(src[s], dtype=np.float64) for s in nd.inputs]
        sin = [specs[s] for s in nd.inputs]
        if isinstance(nd, (Conv2d, Linear)):
            s_x = sin[0].scale
            w = nd.float_weight()
            b = nd.float_bias(s_x)
            xr = ins[0] * s_x
            if isinstance(nd, Conv2d):
                y = float_conv(xr, w, b, nd.stride, nd.padding)
            else:
                y = xr @ w.T + b
            if nd.requantize:
                t[nd.name] = _clamp_round(y / nd.out_scale, nd.out_bits, nd.out_signed)
            else:
                real_out = y
                t[nd.name] = y / (s_x * nd.weight_scale)
        elif isinstance(nd, MaxPool2d):
            x = ins[0]
            ph, pw = nd.padding
            xp = np.full((x.shape[0], x.shape[1], x.shape[2] + 2 * ph, x.shape[3] + 2 * pw),
                         -np.inf)
            xp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]] = x
            ho, wo = specs[nd.name].shape[1:]
            y = np.full((x.shape[0], x.shape[1], ho, wo), -np.inf)
            for a in range(ho):
                for c in range(wo):
                    win = xp[:, :, a * nd.stride[0]:a * nd.stride[0] + nd.kernel[0],
                             c * nd.stride[1]:c * nd.stride[1] + nd.kernel[1]]
                    y[:, :, a, c] = win.max(axis=(2, 3))
            t[nd.name] = y
        elif isinstance(nd, AvgPool2d):
            x = ins[0]
            ho, wo = specs[nd.name].shape[1:]
            y = np.zeros((x.shape[0], x.shape[1], ho, wo))
            for a in range(ho):
                for c in range(wo):
                    win = x[:, :, a * nd.stride[0]:a * nd.stride[0] + nd.kernel[0],
                            c * nd.stride[1]:c * nd.stride[1] + nd.kernel[1]]
                    y[:, :, a, c] = np.floor(win.mean(axis=(2, 3)) + 0.5)
            t[nd.name] = y
        elif isinstance(nd, GlobalAvgPool):
            t[nd.name] = np.floor(ins[0].mean(axis=(2, 3)) + 0.5)
        elif isinstance(nd, Add):
            v = (ins[0] * sin[0].scale + ins[1] * sin[1].scale) / nd.out_scale
            t[nd.name] = _clamp_round(v, nd.out_bits, nd.out_signed)
        elif isinstance(nd, Flatten):
            t[nd.name] = ins[0].reshape(ins[0].shape[0], -1)
        elif isinstance(nd, ReLU):
            t[nd.name] = np.maximum(ins[0], 0)
        elif isinstance(nd, Clip):
            lo, hi = code_range(nd.out_bits, nd.out_signed)
            t[nd.name] = np.clip(ins[0], lo, hi)
        else:  # pragma: no cover
            raise AssertionError(nd)
    return t, real_out


def _spread(codes):
    """Fraction of distinct values: guards against degenerate (all-zero/saturated) tests."""
    return np.unique(codes).size


# --------------------------------------------------------------------------- golden

@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_model_matches_float_spec_exactly(name):
    model, imgs = GOLDEN[name]()
    x = ref.input_codes(model, imgs)
    out, tensors = ref.run_reference(model, x, return_all=True)
    fl, real_out = float_forward(model, x)
    for nd in model.order():
        np.testing.assert_array_equal(tensors[nd.name], fl[nd.name], err_msg=nd.name)
        assert _spread(tensors[nd.name]) > 2, f"{nd.name} is degenerate"
    if real_out is not None:
        np.testing.assert_array_equal(model.dequantize_output(out), real_out)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_committed_golden_files_are_reproduced(name):
    model, imgs = GOLDEN[name]()
    stored = QuantModel.load(GOLDEN_DIR / f"{name}.npz")
    assert stored.graph_dict() == model.graph_dict()
    for a, b in zip(stored.order(), model.order()):
        for k, v in b.arrays().items():
            np.testing.assert_array_equal(a.arrays()[k], v, err_msg=f"{b.name}/{k}")
    with np.load(GOLDEN_DIR / f"{name}.io.npz", allow_pickle=False) as io:
        np.testing.assert_array_equal(io["images"], imgs)
        np.testing.assert_array_equal(io["x_codes"], ref.input_codes(stored, imgs))
        out, tensors = ref.run_reference(stored, io["x_codes"], return_all=True)
        np.testing.assert_array_equal(out, io["output"])
        for k, v in tensors.items():
            np.testing.assert_array_equal(v, io[f"t/{k}"], err_msg=k)


def test_golden_models_cover_every_op_and_feature():
    ops, feats = set(), set()
    for fn in GOLDEN.values():
        m, _ = fn()
        for nd in m.order():
            ops.add(nd.OP)
            if isinstance(nd, (Conv2d, Linear)):
                feats.add(f"wbits{nd.weight_bits}")
                if nd.weight_zero_point is not None:
                    feats.add("zero_point")
                if not nd.requantize:
                    feats.add("raw_output")
            if isinstance(nd, Input):
                feats.add(f"input{nd.bits}{'s' if nd.signed else 'u'}")
            if isinstance(nd, MaxPool2d) and max(nd.padding) > 0:
                feats.add("maxpool_padding")
    from norsim.mapping.quant_model import NODE_TYPES
    assert ops == set(NODE_TYPES)
    assert {"zero_point", "raw_output", "input8s", "input8u", "input4u", "wbits2", "wbits8",
            "maxpool_padding"} <= feats


# --------------------------------------------------------------------------- non-dyadic scales

def test_arbitrary_scales_agree_with_float_spec_up_to_ties():
    """Per layer, on the same integer inputs: the integer rule equals round-half-up of the
    real value except within 1e-6 of a tie (M is rounded to 31 bits)."""
    rng = np.random.default_rng(7)
    model = random_lenet(rng, dyadic=False, calib_n=16)
    x = ref.input_codes(model, blob_images(rng, 16, 28, 28, 1))
    _, tensors = ref.run_reference(model, x, return_all=True)
    specs = model.specs()
    for nd in model.order():
        if not isinstance(nd, (Conv2d, Linear)) or not nd.requantize:
            continue
        fl, _ = float_forward(model, x, per_layer_inputs=tensors)
        got = tensors[nd.name].astype(np.float64)
        # unclamped real value in code units
        s_x = specs[nd.inputs[0]].scale
        xin = tensors[nd.inputs[0]].astype(np.float64) * s_x
        w, b = nd.float_weight(), nd.float_bias(s_x)
        y = (float_conv(xin, w, b, nd.stride, nd.padding) if isinstance(nd, Conv2d)
             else xin @ w.T + b) / nd.out_scale
        near_tie = np.abs((y - np.floor(y)) - 0.5) < 1e-6
        diff = got != fl[nd.name]
        assert not np.any(diff & ~near_tie), nd.name
        assert np.all(np.abs(got - fl[nd.name]) <= 1)


# --------------------------------------------------------------------------- building blocks

def _conv_node(rng, cin=3, cout=5, k=3, stride=2, padding=1, zp=False, wbits=4):
    lo, hi = (-8, 7) if zp else (-7, 7)
    return Conv2d("c", ("input",), weight=rng.integers(lo, hi + 1, (cout, cin, k, k)).astype(
        np.int8), bias=rng.integers(-50, 50, cout).astype(np.int32),
        weight_scale=np.full(cout, 0.01), multiplier=np.full(cout, 2 ** 30, np.int32),
        shift=np.full(cout, 36, np.int32), stride=(stride, stride), padding=(padding, padding),
        weight_bits=wbits, out_bits=4, out_scale=0.01 * 2.0 ** -8 * 2 ** 6 * 1.0,
        weight_zero_point=(rng.integers(-2, 3, cout).astype(np.int8) if zp else None))


def test_im2col_layout_matches_weight_reshape():
    """Row (n, ho, wo), column (cin, kh, kw): each column dotted with weight.reshape gives the
    direct convolution sum at that position."""
    rng = np.random.default_rng(3)
    node = _conv_node(rng)
    x = rng.integers(0, 16, (2, 3, 7, 6)).astype(np.int32)
    cols = ref.im2col(x, node)
    ho, wo = ref.conv_output_size(node, 7, 6)
    assert (ho, wo) == (4, 3)
    assert cols.shape == (2 * ho * wo, 3 * 9)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    n, a, c = 1, 2, 1   # one explicit position
    row = cols[(n * ho + a) * wo + c]
    np.testing.assert_array_equal(row.reshape(3, 3, 3), xp[n, :, 2 * a:2 * a + 3, 2 * c:2 * c + 3])


def test_zero_point_correction_decomposition():
    rng = np.random.default_rng(4)
    node = _conv_node(rng, zp=True)
    x = rng.integers(0, 16, (2, 3, 7, 7)).astype(np.int32)
    cols = ref.im2col(x, node)
    direct = cols.astype(np.int64) @ (node.weight.reshape(5, -1).astype(np.int64)
                                      - node.weight_zero_point[:, None]).T
    np.testing.assert_array_equal(ref.integer_matmul(cols, node), direct)
    np.testing.assert_array_equal(ref.raw_matmul(cols, node)
                                  + ref.zero_point_correction(cols, node), direct)


def test_pluggable_matmul_gives_identical_layer():
    rng = np.random.default_rng(5)
    node = _conv_node(rng)
    x = rng.integers(0, 16, (3, 3, 9, 9)).astype(np.int32)
    calls = []

    def int64_matmul(cols, nd):
        calls.append(cols.shape)
        return cols.astype(np.int64) @ nd.weight_matrix().T

    a = ref.matmul_layer(x, node)
    b = ref.matmul_layer(x, node, matmul=int64_matmul)
    np.testing.assert_array_equal(a, b)
    assert calls == [(3 * 5 * 5, 27)]
    cols = ref.im2col(x, node)
    c = ref.rows_to_nchw(ref.requantize(ref.integer_matmul(cols, node), node), 3, 5, 5)
    np.testing.assert_array_equal(a, c)


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 20000), xbits=st.integers(1, 16), wbits=st.integers(2, 8),
       seed=st.integers(0, 2 ** 31))
def test_integer_matmul_exact_at_extreme_codes(k, xbits, wbits, seed):
    """Float GEMM paths are exact: compare with int64 matmul using extreme codes, including
    bounds just above 2**24 (float32 would round) and large K."""
    rng = np.random.default_rng(seed)
    hi_x, hi_w = 2 ** xbits - 1, 2 ** (wbits - 1) - 1
    if k * hi_x * hi_w >= 2 ** 31:
        k = max(1, (2 ** 31 - 1) // (hi_x * hi_w))
    w = rng.choice([-hi_w, hi_w, hi_w - 1, 0], size=(3, k)).astype(np.int8)
    node = Linear("fc", ("x",), weight=w, bias=np.zeros(3, np.int32),
                  weight_scale=np.ones(3), weight_bits=wbits, requantize=False)
    cols = rng.choice([hi_x, hi_x - 1, 1, 0], size=(4, k)).astype(np.int32)
    cols[0] = hi_x   # worst case row
    np.testing.assert_array_equal(ref.integer_matmul(cols, node),
                                  cols.astype(np.int64) @ w.astype(np.int64).T)


def test_float32_would_be_inexact_above_bound():
    """The dtype switch matters: a sum just above 2**24 with an odd value is not float32."""
    k = 2 ** 16 + 1
    w = np.full((1, k), 127, np.int8)
    cols = np.full((1, k), 255, np.int32)
    cols[0, 0] = 254
    exact = int((cols.astype(np.int64) @ w.astype(np.int64).T).item())
    assert exact < 2 ** 31
    assert float(np.float32(exact)) != exact   # float32 cannot hold it
    node = Linear("fc", ("x",), weight=w, bias=np.zeros(1, np.int32),
                  weight_scale=np.ones(1), weight_bits=8, requantize=False)
    assert int(ref.integer_matmul(cols, node)[0, 0]) == exact


def test_batched_equals_one_by_one_and_chunked():
    rng = np.random.default_rng(11)
    model = random_resnet18(rng, width=8, in_hw=16, calib_n=4)
    x = ref.input_codes(model, blob_images(rng, 5, 16, 16, 3))
    full = ref.run_reference(model, x)
    singles = np.concatenate([ref.run_reference(model, x[i:i + 1]) for i in range(5)])
    np.testing.assert_array_equal(full, singles)
    np.testing.assert_array_equal(full, ref.run_reference(model, x, batch_size=2))
    out, allt = ref.run_reference(model, x, return_all=True, batch_size=2)
    np.testing.assert_array_equal(out, full)
    assert set(allt) == {nd.name for nd in model.order()}
    assert all(v.shape[0] == 5 for v in allt.values())


def test_input_codes_mapping_and_layouts():
    rng = np.random.default_rng(12)
    p = rng.integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    node8 = Input("input", shape=(3, 6, 5), bits=8, signed=True, scale=1 / 128)
    c = ref.input_codes(node8, p)
    np.testing.assert_array_equal(c, p.transpose(0, 3, 1, 2).astype(np.int32) - 128)
    np.testing.assert_array_equal(ref.input_codes(node8, p.transpose(0, 3, 1, 2)), c)
    node4 = Input("input", shape=(1, 6, 5), bits=4, signed=False, scale=16 / 255)
    g = p[..., 0]
    np.testing.assert_array_equal(ref.input_codes(node4, g)[:, 0], g // 16)
    # the default input's real value equals the data normalisation p/255
    from norsim.data import normalize
    node = Input("input", shape=(3, 6, 5))
    np.testing.assert_allclose(ref.input_codes(node, p) * node.scale, normalize(p), rtol=1e-6)


def test_bad_images_and_codes_are_rejected():
    node = Input("input", shape=(1, 8, 8))
    with pytest.raises(InputError, match="dtype"):
        ref.input_codes(node, np.zeros((2, 8, 8), np.float32))
    with pytest.raises(InputError, match="shape"):
        ref.input_codes(node, np.zeros((2, 9, 8), np.uint8))
    with pytest.raises(InputError, match="shape"):
        ref.input_codes(node, np.zeros((8, 8), np.uint8))
    model = random_lenet(np.random.default_rng(0), calib_n=4)
    with pytest.raises(InputError, match="x_codes"):
        ref.run_reference(model, np.zeros((2, 1, 28, 28), np.float32))
    with pytest.raises(InputError, match="shape"):
        ref.run_reference(model, np.zeros((2, 28, 28), np.int32))
    with pytest.raises(InputError, match=r"\[0, 255\]"):
        ref.run_reference(model, np.full((2, 1, 28, 28), 256, np.int32))


def test_predict_uses_dequantised_logits():
    """Raw outputs have per-channel scales: argmax must be over codes * scale."""
    inp = Input("input", shape=(1, 1, 2), bits=8)
    fl = Flatten("f", ("input",))
    fc = Linear("fc", ("f",), weight=np.array([[1, 0], [0, 1]], np.int8),
                bias=np.zeros(2, np.int32), weight_scale=np.array([1.0, 10.0]),
                weight_bits=4, requantize=False)
    m = QuantModel([inp, fl, fc], "fc").validate()
    img = np.array([[[[100, 20]]]], np.uint8).reshape(1, 1, 1, 2)
    codes = ref.run_reference(m, ref.input_codes(m, img))
    assert codes.tolist() == [[100, 20]]          # codes alone would pick class 0
    assert ref.predict(m, img).tolist() == [1]    # 20*10 > 100*1


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_numba_requant_kernel_equals_numpy_twin(dtype):
    from norsim.mapping.requant import requantize_rows, requantize_rows_numpy
    rng = np.random.default_rng(21)
    batch, p, c = 3, 7, 5
    big = 2 ** 23 if dtype == np.float32 else 2 ** 30
    acc = rng.integers(-big, big, (batch * p, c)).astype(dtype)
    acc[0, :] = [big - 1, -big, 0, 1, -1]
    bias = rng.integers(-1000, 1000, c)
    m = rng.integers(0, 2 ** 31, c)
    m[0] = 2 ** 31 - 1
    n = rng.integers(1, 63, c)
    n[1] = 1
    for lo, hi in ((-128, 127), (0, 15), (-(2 ** 15), 2 ** 15 - 1)):
        a = requantize_rows(acc, bias, m, n, lo, hi, batch)
        b = requantize_rows_numpy(acc, bias, m, n, lo, hi, batch)
        assert a.dtype == b.dtype == np.int32 and a.shape == (batch, c, p)
        np.testing.assert_array_equal(a, b)
    # ties: t * m / 2^n exactly k + 1/2 rounds up, for both signs
    t = np.array([[3], [-3], [5], [-5]], dtype)
    np.testing.assert_array_equal(requantize_rows(t, [0], [1], [1], -99, 99, 4).ravel(),
                                  [2, -1, 3, -2])
