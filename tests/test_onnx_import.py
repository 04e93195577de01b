"""ONNX -> QuantModel: round trips (integer graph identical, QDQ within one step of ONNX
Runtime), QLinear graphs, activation zero points, and one-line errors for what the format
cannot hold or a file that is broken."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from _onnx_models import all_ops_model, ort_int8_weight_max, run_ort  # noqa: E402

from norsim import zoo  # noqa: E402
from norsim.errors import FileFormatError  # noqa: E402
from norsim.mapping import reference as ref  # noqa: E402
from norsim.onnx import export_integer, export_qdq, import_onnx  # noqa: E402


def _models():
    return [zoo.load("lenet-mnist-4b"), zoo.load("cnn-cifar10-4b"), all_ops_model()[0]]


def _same_model(a, b):
    assert a.graph_dict() == b.graph_dict()
    for na, nb in zip(a.order(), b.order()):
        aa, ab = na.arrays(), nb.arrays()
        assert aa.keys() == ab.keys(), na.name
        for k in aa:
            assert aa[k].dtype == ab[k].dtype and np.array_equal(aa[k], ab[k]), (na.name, k)


@pytest.mark.parametrize("i", range(3), ids=["lenet", "cifar", "all-ops"])
def test_integer_graph_round_trip_is_identical(i, tmp_path):
    model = _models()[i]
    export_integer(model, tmp_path / "m.onnx")
    back = import_onnx(tmp_path / "m.onnx")
    _same_model(model, back)
    back.save(tmp_path / "m.npz")   # and it is a valid file


def test_integers_come_from_the_graph_and_edited_ops_are_refused():
    model = zoo.load("lenet-mnist-4b")
    proto = export_integer(model)
    for t in proto.graph.initializer:
        if t.name == "conv2.bias":
            a = numpy_helper.to_array(t).copy()
            a.flat[0] += 1
            t.CopyFrom(numpy_helper.from_array(a, t.name))
    back = import_onnx(proto)       # an edited integer is read as it is in the graph ...
    assert back.node("conv2").bias[0] == model.node("conv2").bias[0] + 1
    x = np.random.default_rng(0).integers(0, 256, (50, 1, 28, 28), dtype=np.uint8)
    np.testing.assert_array_equal(run_ort(proto, {"pixels": x}),
                                  ref.run_reference(back, ref.input_codes(back, x)))
    for nd in proto.graph.node:     # ... an edited operator is not
        if nd.op_type == "MaxPool":
            nd.attribute[0].CopyFrom(helper.make_attribute(nd.attribute[0].name, [3, 3])
                                     if nd.attribute[0].name in ("kernel_shape", "strides")
                                     else nd.attribute[0])
            break
    with pytest.raises(FileFormatError, match="differs from what its"):
        import_onnx(proto)


def _qdq_agreement(model, x):
    proto = export_qdq(model)
    back = import_onnx(proto)
    y_ort = run_ort(proto, {"x": (x / 255.0).astype(np.float32)})
    y_ns = back.dequantize_output(ref.run_reference(back, ref.input_codes(back, x)))
    fc = back.node(back.output)
    step = back.specs()[fc.inputs[0]].scale * np.abs(fc.float_weight()).max()
    return back, float(np.mean(y_ort.argmax(1) == y_ns.argmax(1))), \
        float(np.abs(y_ort - y_ns).max() / step)


def test_qdq_export_import_keeps_codes_and_agrees_with_onnxruntime():
    from norsim.data import load_dataset

    model = zoo.load("lenet-mnist-4b")
    x = load_dataset("mnist", "test").x[:1000][:, None]
    proto = export_qdq(model)
    assert any(t.data_type == TensorProto.INT4 for t in proto.graph.initializer)  # 4-bit
    back, top1, worst = _qdq_agreement(model, x)
    for a, b in zip(model.order(), back.order()):
        assert a.OP == b.OP
        for k in ("weight", "bias", "weight_zero_point"):
            va, vb = getattr(a, k, None), getattr(b, k, None)
            assert (va is None) == (vb is None) and (va is None or np.array_equal(va, vb))
        if a.OP in ("conv2d", "linear") and a.requantize:
            np.testing.assert_allclose(b.multiplier / 2.0 ** b.shift,
                                       a.multiplier / 2.0 ** a.shift, rtol=1e-6)
    print(f"\nlenet-mnist-4b QDQ export -> import, 1000 MNIST test images: top-1 agreement "
          f"with ONNX Runtime {100 * top1:.2f} %, max logit difference {worst:.3f} steps")
    assert top1 >= 0.999 and worst <= 1.0


def test_qdq_every_op_round_trip():
    model, imgs = all_ops_model(signed_input=False)
    x = imgs.transpose(0, 3, 1, 2).copy()
    back, top1, worst = _qdq_agreement(model, x)
    assert [n.OP for n in back.order()] == [n.OP for n in model.order()]
    assert top1 >= 0.9   # 16 random-noise images: near-ties are common, codes still close
    assert worst <= 64


# --------------------------------------------------------------------------- QLinear


def _init(name, arr, dtype=None):
    arr = np.asarray(arr)
    if dtype is None:
        return numpy_helper.from_array(arr, name)
    return helper.make_tensor(name, dtype, list(arr.shape), arr.reshape(-1).tolist())


def _qlinear_model(y2_zp=0, y2_type=TensorProto.UINT8, seed=0):
    """Q(x) -> QLinearConv (uint8 out) -> MaxPool -> QLinearConv (y2 zero point) -> Flatten
    -> QLinearMatMul (uint8, zero point 128) -> DequantizeLinear. (ONNX Runtime wants the
    same 8-bit type in and out of these operators.)"""
    rng = np.random.default_rng(seed)
    wmax = ort_int8_weight_max()       # full int8 range where ONNX Runtime is exact
    w1 = rng.integers(-wmax, wmax + 1, (4, 1, 3, 3)).astype(np.int8)
    w2 = rng.integers(-wmax, wmax + 1, (6, 4, 3, 3)).astype(np.int8)
    w3 = rng.integers(-wmax, wmax + 1, (6 * 4 * 4, 5)).astype(np.int8)
    inits = [
        _init("s_in", np.float32(1 / 255)), _init("z_in", np.uint8(0)),
        _init("w1", w1), _init("w1_s", rng.uniform(0.002, 0.004, 4).astype(np.float32)),
        _init("w1_z", np.zeros(4, np.int8)), _init("s1", np.float32(0.01)),
        _init("z1", np.uint8(0)),
        _init("b1", rng.integers(-2000, 2000, 4).astype(np.int32)),
        _init("w2", w2), _init("w2_s", np.float32(0.003)), _init("w2_z", np.int8(0)),
        _init("s2", np.float32(0.02)), _init("z2", np.array(y2_zp), y2_type),
        _init("b2", rng.integers(-500, 500, 6).astype(np.int32)),
        _init("w3", w3), _init("w3_s", np.float32(0.004)), _init("w3_z", np.int8(0)),
        _init("s3", np.float32(0.05)), _init("z3", np.uint8(128)),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s_in", "z_in"], ["xq"], name="q_in"),
        helper.make_node("QLinearConv", ["xq", "s_in", "z_in", "w1", "w1_s", "w1_z", "s1", "z1",
                                         "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("QLinearConv", ["p1", "s1", "z1", "w2", "w2_s", "w2_z", "s2", "z2",
                                         "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["c2"], ["f"], name="flat"),
        helper.make_node("QLinearMatMul", ["f", "s2", "z2", "w3", "w3_s", "w3_z", "s3", "z3"],
                         ["mm"], name="fc"),
        helper.make_node("DequantizeLinear", ["mm", "s3", "z3"], ["y"], name="dq_out"),
    ]
    g = helper.make_graph(nodes, "qlinear", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 1, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize("zp, dtype, want", [(128, TensorProto.UINT8, (8, True)),
                                             (0, TensorProto.UINT8, (8, False))],
                         ids=["uint8-zp128", "uint8-zp0"])
def test_qlinear_graph_imports_within_one_step(zp, dtype, want):
    proto = _qlinear_model(zp, dtype)
    model = import_onnx(proto)
    conv2 = model.node("conv2")
    assert (conv2.out_bits, conv2.out_signed) == want   # zero point converted exactly
    x = np.random.default_rng(3).integers(0, 256, (200, 1, 16, 16), dtype=np.uint8)
    y_ort = run_ort(proto, {"x": (x / 255.0).astype(np.float32)})
    codes = ref.run_reference(model, ref.input_codes(model, x))
    assert (model.node("fc").out_bits, model.node("fc").out_signed) == (8, True)
    steps = np.abs(np.rint(y_ort / np.float32(0.05)) - codes)
    print(f"\nQLinear graph ({want}): output codes equal on {100 * np.mean(steps == 0):.2f} %, "
          f"max {steps.max():.0f} step")
    # ONNX Runtime requantises with a float32 multiplier (24 bits) and propagates its own
    # roundings through three layers of random weights; the format's is 31-bit fixed point
    assert steps.max() <= 1 and np.mean(steps == 0) >= 0.99


def test_asymmetric_zero_point_that_the_format_cannot_hold_is_refused():
    with pytest.raises(FileFormatError, match=r"node 'conv2' \(QLinearConv\).*\[-37, 218\]"):
        import_onnx(_qlinear_model(37, TensorProto.UINT8))


# --------------------------------------------------------------------------- errors


def _one_line(exc):
    assert "\n" not in str(exc.value)
    return str(exc.value)


def _tiny(op_nodes, inits, opset=13, in_dims=("N", 1, 8, 8)):
    g = helper.make_graph(op_nodes, "t", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, list(in_dims))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def test_dynamic_quantization_is_refused_naming_the_node():
    m = _tiny([helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"], name="dq0"),
               helper.make_node("ConvInteger", ["q", "w", "z"], ["y"], name="ci")],
              [_init("w", np.ones((1, 1, 3, 3), np.uint8))])
    with pytest.raises(FileFormatError) as e:
        import_onnx(m)
    msg = _one_line(e)
    assert "'dq0'" in msg and "DynamicQuantizeLinear" in msg and "dynamic" in msg


def test_conv_integer_first_is_refused():
    m = _tiny([helper.make_node("Cast", ["x"], ["u"], to=TensorProto.UINT8, name="c"),
               helper.make_node("ConvInteger", ["u", "w"], ["y"], name="ci")],
              [_init("w", np.ones((1, 1, 3, 3), np.uint8))])
    with pytest.raises(FileFormatError) as e:
        import_onnx(m)
    assert "Cast" in _one_line(e)


def _qdq_conv(extra_attrs=None, act_scale=None):
    w = np.ones((2, 1, 3, 3), np.int8)
    inits = [_init("s", np.float32(1 / 255)), _init("z", np.uint8(0)), _init("w", w),
             _init("ws", np.float32(0.01)), _init("wz", np.int8(0)),
             _init("sy", act_scale if act_scale is not None else np.float32(0.1))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="qx"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dqx"),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], name="dqw"),
             helper.make_node("Conv", ["xd", "wd"], ["c"], name="conv0", **(extra_attrs or {})),
             helper.make_node("QuantizeLinear", ["c", "sy", "z"], ["cq"], name="qc"),
             helper.make_node("DequantizeLinear", ["cq", "sy", "z"], ["y"], name="dqc")]
    return _tiny(nodes, inits)


def test_tiny_qdq_conv_imports():
    m = import_onnx(_qdq_conv())
    assert [n.OP for n in m.order()] == ["input", "conv2d"]


@pytest.mark.parametrize("attrs, scale, match", [
    ({"group": 1, "dilations": [2, 2]}, None, r"'conv0' \(Conv\): dilations"),
    ({"pads": [1, 0, 0, 1]}, None, r"'conv0' \(Conv\): pads"),
    (None, np.array([0.1, 0.2], np.float32), r"'qc' \(QuantizeLinear\): scale"),
], ids=["dilation", "asymmetric-pads", "per-channel-activation"])
def test_unrepresentable_parts_are_refused(attrs, scale, match):
    with pytest.raises(FileFormatError, match=match) as e:
        import_onnx(_qdq_conv(attrs, scale))
    _one_line(e)


def test_unsupported_operator_is_refused():
    m = _qdq_conv()
    m.graph.node.append(helper.make_node("Sigmoid", ["y"], ["y2"], name="sig"))
    m.graph.output[0].name = "y2"
    with pytest.raises(FileFormatError, match=r"'sig' \(Sigmoid\): operator not supported"):
        import_onnx(m)


def test_broken_files_get_one_line_errors(tmp_path):
    good = _qdq_conv()
    data = good.SerializeToString()
    (tmp_path / "trunc.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError) as e:
        import_onnx(tmp_path / "trunc.onnx")
    assert "truncated" in _one_line(e) or "no graph" in _one_line(e)
    bad = _qdq_conv()
    bad.opset_import[0].version = 99
    with pytest.raises(FileFormatError, match="opset_import ai.onnx = 99") as e:
        import_onnx(bad)
    _one_line(e)
    cyc = _qdq_conv()
    cyc.graph.node[1].input[0] = "cq"    # dqx now depends on its own consumer chain
    with pytest.raises(FileFormatError, match="cycle") as e:
        import_onnx(cyc)
    _one_line(e)
    dyn = _qdq_conv()
    dyn.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    with pytest.raises(FileFormatError, match="dimension H is dynamic") as e:
        import_onnx(dyn)
    _one_line(e)
    assert import_onnx(dyn, input_shape=(1, 8, 8)).input.shape == (1, 8, 8)
    with pytest.raises(FileFormatError, match="no such ONNX file"):
        import_onnx(tmp_path / "missing.onnx")


def test_external_data_is_checked(tmp_path):
    from onnx.external_data_helper import convert_model_to_external_data

    m = _qdq_conv()
    convert_model_to_external_data(m, all_tensors_to_one_file=True, location="w.bin",
                                   size_threshold=0)
    onnx.save_model(m, str(tmp_path / "m.onnx"))
    assert import_onnx(tmp_path / "m.onnx").node("conv0").weight.shape == (2, 1, 3, 3)
    (tmp_path / "w.bin").unlink()
    with pytest.raises(FileFormatError, match="external data file 'w.bin' is missing") as e:
        import_onnx(tmp_path / "m.onnx")
    _one_line(e)
    m2 = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False)
    for t in m2.graph.initializer:
        for kv in t.external_data:
            if kv.key == "location":
                kv.value = "../outside.bin"
    onnx.save_model(m2, str(tmp_path / "m2.onnx"))
    with pytest.raises(FileFormatError, match="outside the model's folder"):
        import_onnx(tmp_path / "m2.onnx")


def test_declared_size_mismatch_is_refused():
    m = _qdq_conv()
    for t in m.graph.initializer:
        if t.name == "w":
            t.dims[0] = 1000   # claims 9000 values, holds 18
    with pytest.raises(FileFormatError, match="raw_data holds 18 bytes"):
        import_onnx(m)


# --------------------------------------------------------------------------- ONNX Runtime PTQ


def _ort_quantized(tmp_path, symmetric):
    torch = pytest.importorskip("torch")
    qz = pytest.importorskip("onnxruntime.quantization")
    import logging
    import warnings

    from norsim.data import load_dataset

    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 7 * 7, 10)).eval()
    f32 = tmp_path / "f32.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.rand(1, 1, 28, 28),), str(f32), dynamo=False,
                          opset_version=13, input_names=["x"], dynamic_axes={"x": {0: "N"}})
    calib = load_dataset("mnist", "calib").x[:64, None]

    class Reader(qz.CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": (calib[i:i + 16] / 255.0).astype(np.float32)}
                            for i in range(0, 64, 16)])

        def get_next(self):
            return next(self.it, None)

    out = tmp_path / "q.onnx"
    logging.getLogger().setLevel(logging.ERROR)
    qz.quantize_static(str(f32), str(out), Reader(), quant_format=qz.QuantFormat.QDQ,
                       per_channel=True, activation_type=qz.QuantType.QUInt8,
                       weight_type=qz.QuantType.QInt8,
                       reduce_range=ort_int8_weight_max() < 127,
                       extra_options={"ActivationSymmetric": symmetric, "TensorQuantOverrides": {
                           "x": [{"scale": np.array(1 / 255, np.float32),
                                  "zero_point": np.array(0, np.uint8)}]}})
    return out


def test_onnxruntime_quantize_static_symmetric_imports_within_one_step(tmp_path):
    from norsim.data import load_dataset

    path = _ort_quantized(tmp_path, symmetric=True)
    model = import_onnx(path)
    assert [n.OP for n in model.order()] == ["input", "conv2d", "relu", "maxpool2d", "conv2d",
                                             "relu", "maxpool2d", "flatten", "linear"]
    fc = model.node(model.output)
    assert (fc.out_bits, fc.out_signed) == (8, True)   # uint8 zero point 128 -> int8 codes
    x = load_dataset("mnist", "test").x[:1000]
    y_ort = run_ort(onnx.load(str(path)), {"x": (x[:, None] / 255.0).astype(np.float32)})
    codes = ref.run_reference(model, ref.input_codes(model, x))
    steps = np.abs(np.rint(y_ort / np.float32(fc.out_scale)) - codes)
    print(f"\nONNX Runtime quantize_static (symmetric uint8, zero point 128), 1000 MNIST "
          f"images: output codes equal {100 * np.mean(steps == 0):.2f} %, max "
          f"{steps.max():.0f} step")
    assert steps.max() <= 1 and np.mean(steps == 0) >= 0.95


def test_onnxruntime_quantize_static_default_asymmetric_is_refused(tmp_path):
    path = _ort_quantized(tmp_path, symmetric=False)
    with pytest.raises(FileFormatError, match=r"\(QuantizeLinear\): output codes of .* "
                                              r"zero point") as e:
        import_onnx(path)
    _one_line(e)


def test_batchnorm_after_a_quantized_conv_is_folded():
    from onnx import helper as h

    m = _qdq_conv()
    rng = np.random.default_rng(0)
    bn = {"g": np.array([1.5, -0.7], np.float32), "b": np.array([0.2, -0.1], np.float32),
          "mu": rng.normal(0, 0.1, 2).astype(np.float32),
          "var": np.array([0.5, 2.0], np.float32)}
    m.graph.initializer.extend([_init(k, v) for k, v in bn.items()])
    conv = m.graph.node[3]
    conv.output[0] = "c0"
    m.graph.node.insert(4, h.make_node("BatchNormalization", ["c0", "g", "b", "mu", "var"],
                                       ["c"], name="bn"))
    model = import_onnx(m)
    assert [n.OP for n in model.order()] == ["input", "conv2d"]
    x = np.random.default_rng(1).integers(0, 256, (64, 1, 8, 8), dtype=np.uint8)
    y_ort = run_ort(m, {"x": (x / 255.0).astype(np.float32)})
    codes = ref.run_reference(model, ref.input_codes(model, x))
    steps = np.abs(np.rint(y_ort / np.float32(0.1)) - codes)
    assert steps.max() <= 1 and np.mean(steps == 0) >= 0.95
