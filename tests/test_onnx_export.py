"""QuantModel -> ONNX integer graph: ONNX Runtime's output codes equal the integer
reference's bit for bit (zoo models and a model with every op)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from _onnx_models import all_ops_model, run_ort  # noqa: E402

from norsim import zoo  # noqa: E402
from norsim.mapping import reference as ref  # noqa: E402
from norsim.onnx import export_integer  # noqa: E402


def _images(model, n, seed=1):
    c, h, w = model.input.shape
    return np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8)


@pytest.mark.parametrize("name", ["lenet-mnist-4b", "cnn-cifar10-4b"])
def test_zoo_integer_export_is_bit_exact_under_onnxruntime(name, tmp_path):
    from norsim.data import load_dataset

    model = zoo.load(name)
    if model.input.shape[0] == 1:
        x = load_dataset("mnist", "test").x[:1000][:, None]
    else:
        x = _images(model, 1000)
    path = tmp_path / "m.onnx"
    export_integer(model, path)
    import onnx

    out = run_ort(onnx.load(str(path)), {"pixels": x})
    want = ref.run_reference(model, ref.input_codes(model, x))
    assert out.shape == want.shape
    np.testing.assert_array_equal(out, want)
    agree = float(np.mean(out.argmax(1) == want.argmax(1)))
    print(f"\n{name}: ONNX Runtime integer graph vs reference on {len(x)} images: "
          f"codes identical, top-1 agreement {100 * agree:.2f} %")


def test_every_op_integer_export_is_bit_exact():
    model, imgs = all_ops_model()
    x = imgs.transpose(0, 3, 1, 2).copy()
    out = run_ort(export_integer(model), {"pixels": x})
    np.testing.assert_array_equal(out, ref.run_reference(model, ref.input_codes(model, x)))


def test_an_injected_off_by_one_is_caught():
    """The comparison above can fail: one bias off by one changes some codes."""
    model, imgs = all_ops_model()
    x = imgs.transpose(0, 3, 1, 2).copy()
    proto = export_integer(model)
    model.node("c2").bias[0] += 1
    assert not np.array_equal(run_ort(proto, {"pixels": x}),
                              ref.run_reference(model, ref.input_codes(model, x)))


def test_wide_activations_into_a_conv_are_refused_in_one_line():
    from norsim.errors import InputError
    from norsim.mapping.quant_model import Conv2d, Input, QuantModel

    w = np.ones((2, 1, 3, 3))
    m = QuantModel([Input("input", [], shape=(1, 6, 6)),
                    Conv2d.from_float("c1", ["input"], w, None, 0.1, 1 / 255, 0.01,
                                      weight_bits=4, out_bits=12, out_signed=False),
                    Conv2d.from_float("c2", ["c1"], w[:, :1].repeat(2, 1), None, 0.1, 0.01, 1.0,
                                      requantize=False)], "c2").validate()
    with pytest.raises(InputError, match="c2.*12-bit codes") as e:
        export_integer(m)
    assert "\n" not in str(e.value)
