"""The one place that imports the optional ``onnx`` package (extra ``norsim[onnx]``)."""

from __future__ import annotations

from norsim.errors import NorsimError

INSTALL_HINT = "pip install 'norsim[onnx]' (or: pip install -c constraints.txt -e '.[onnx]')"


class MissingOnnxExtraError(NorsimError, ImportError):
    """The optional ONNX extra is not installed."""


def require_onnx():
    """Return the ``onnx`` module, or raise a one-line :class:`MissingOnnxExtraError`."""
    try:
        import onnx
    except ImportError:
        raise MissingOnnxExtraError(
            f"ONNX support needs the 'onnx' extra, which is not installed: {INSTALL_HINT}") \
            from None
    return onnx


def require_onnxruntime():
    """Return ``onnxruntime`` (only for comparisons in tests and docs; import never runs it)."""
    try:
        import onnxruntime
    except ImportError:
        raise MissingOnnxExtraError(
            f"running ONNX models needs onnxruntime (the 'onnx' extra): {INSTALL_HINT}") \
            from None
    return onnxruntime
