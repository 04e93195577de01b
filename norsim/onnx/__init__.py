"""ONNX interchange for QuantModels (optional extra: ``pip install norsim[onnx]``).

* :func:`export_integer` writes a QuantModel as an ONNX graph of integer operators
  (ConvInteger / MatMulInteger, int64 fixed-point requantisation) whose output codes under
  ONNX Runtime equal the integer reference's bit for bit; :func:`export_qdq` writes the same
  network as a float QuantizeLinear/DequantizeLinear graph (agrees within one output step).
* :func:`import_onnx` reads QDQ (int8/uint8/int4), QLinearConv/QLinearMatMul and QONNX
  ``Quant`` graphs, and norsim's own integer graphs, into a QuantModel.

See docs/onnx.md. The submodules import ``onnx`` lazily through :func:`require_onnx`, so
``import norsim.onnx`` works without the extra and the error says what to install.
"""

from __future__ import annotations

from norsim.onnx._deps import MissingOnnxExtraError, require_onnx


def export_integer(model, path=None, **kw):
    """QuantModel -> ONNX integer graph (see :mod:`norsim.onnx.export_int`)."""
    from norsim.onnx.export_int import export_integer as f
    return f(model, path, **kw)


def export_qdq(model, path=None, **kw):
    """QuantModel -> ONNX QDQ float graph (see :mod:`norsim.onnx.export_qdq`)."""
    from norsim.onnx.export_qdq import export_qdq as f
    return f(model, path, **kw)


def import_onnx(path_or_proto, **kw):
    """ONNX file (or ModelProto) -> validated QuantModel (see :mod:`norsim.onnx.importer`)."""
    from norsim.onnx.importer import import_onnx as f
    return f(path_or_proto, **kw)


__all__ = ["MissingOnnxExtraError", "require_onnx", "export_integer", "export_qdq",
           "import_onnx"]
