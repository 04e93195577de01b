"""Read an ONNX file defensively: parse only (nothing in the file is executed), check the
opsets, external data, declared tensor sizes and the graph's acyclicity, with one-line
:class:`~norsim.errors.FileFormatError` messages."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from norsim.errors import FileFormatError
from norsim.onnx._deps import require_onnx

MAX_FILE_BYTES = 2 ** 31          #: protobuf's own limit for one file
MAX_TENSOR_ELEMENTS = 2 ** 28     #: refuse to allocate a larger initializer
MIN_OPSET = 10                    #: QuantizeLinear / ConvInteger appear in opset 10
#: custom domains whose ops the importer understands (QONNX ``Quant``)
QONNX_DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general")


def load_model(path_or_proto, *, source: str | None = None):
    """Parse an ONNX file (or take a ``ModelProto``) and check it; return the ModelProto."""
    onnx = require_onnx()
    if isinstance(path_or_proto, onnx.ModelProto):
        model, where, base = path_or_proto, source or "<ModelProto>", None
    else:
        path = Path(path_or_proto)
        where = str(path)
        if not path.is_file():
            raise FileFormatError(f"{where}: no such ONNX file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise FileFormatError(f"{where}: {size} bytes, more than protobuf's 2 GiB limit")
        data = path.read_bytes()
        model = onnx.ModelProto()
        try:
            model.ParseFromString(data)
        except Exception as exc:  # google.protobuf.message.DecodeError and friends
            raise FileFormatError(f"{where}: not a valid ONNX protobuf (truncated or corrupt: "
                                  f"{type(exc).__name__})") from None
        base = path.parent
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise FileFormatError(f"{where}: no graph (truncated or not an ONNX model)")
    check_opsets(model, where)
    load_external(model, base, where)
    check_acyclic(model.graph, where)
    return model


def check_opsets(model, where: str) -> int:
    """The default-domain opset must be known to this onnx; returns it."""
    onnx = require_onnx()
    latest = onnx.defs.onnx_opset_version()
    version = None
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx"):
            version = int(op.version)
    if version is None:
        raise FileFormatError(f"{where}: opset_import has no default ('ai.onnx') domain")
    if not MIN_OPSET <= version <= latest:
        raise FileFormatError(f"{where}: opset_import ai.onnx = {version}: expected "
                              f"{MIN_OPSET}..{latest} (the opsets onnx {onnx.__version__} knows)")
    return version


def load_external(model, base: Path | None, where: str) -> None:
    """Bring external tensor data into the model after checking every location and length
    (inside the model's folder, file present, declared length matching the file)."""
    onnx = require_onnx()
    from onnx.external_data_helper import (ExternalDataInfo, _get_all_tensors,
                                           uses_external_data)

    ext = [t for t in _get_all_tensors(model) if uses_external_data(t)]
    if not ext:
        return
    if base is None:
        raise FileFormatError(f"{where}: tensor {ext[0].name!r} has external data; load the "
                              f"model from its file")
    root = base.resolve()
    for t in ext:
        info = ExternalDataInfo(t)
        loc = Path(info.location)
        full = (root / loc).resolve()
        if loc.is_absolute() or os.path.commonpath([root, full]) != str(root):
            raise FileFormatError(f"{where}: tensor {t.name!r}: external data location "
                                  f"{info.location!r} is outside the model's folder")
        if not full.is_file():
            raise FileFormatError(f"{where}: tensor {t.name!r}: external data file "
                                  f"{info.location!r} is missing")
        need = _declared_bytes(t, where)
        size = full.stat().st_size
        off = int(info.offset or 0)
        length = int(info.length) if info.length else size - off
        if need is not None and length != need or off + length > size:
            raise FileFormatError(f"{where}: tensor {t.name!r}: external data {info.location!r}"
                                  f" holds {max(size - off, 0)} bytes at offset {off}, the "
                                  f"tensor declares {need}")
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(root))
    except Exception as exc:
        raise FileFormatError(f"{where}: external data unreadable ({exc})") from None


def _declared_bytes(t, where: str) -> int | None:
    onnx = require_onnx()
    n = 1
    for d in t.dims:
        if d < 0:
            raise FileFormatError(f"{where}: tensor {t.name!r}: negative dimension {d}")
        n *= int(d)
    if n > MAX_TENSOR_ELEMENTS:
        raise FileFormatError(f"{where}: tensor {t.name!r}: {n} elements declared, more than "
                              f"{MAX_TENSOR_ELEMENTS}")
    try:
        dt = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
    except Exception:
        raise FileFormatError(f"{where}: tensor {t.name!r}: unknown data_type {t.data_type}") \
            from None
    if t.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4):
        return (n + 1) // 2
    return n * np.dtype(dt).itemsize


def to_array(t, where: str) -> np.ndarray:
    """A TensorProto as a numpy array, after checking its declared size against its data."""
    onnx = require_onnx()
    need = _declared_bytes(t, where)
    if t.HasField("raw_data") and len(t.raw_data) != need:
        raise FileFormatError(f"{where}: tensor {t.name!r}: raw_data holds {len(t.raw_data)} "
                              f"bytes, dims {list(t.dims)} need {need}")
    try:
        a = onnx.numpy_helper.to_array(t)
    except Exception as exc:
        raise FileFormatError(f"{where}: tensor {t.name!r} unreadable ({exc})") from None
    if a.dtype.kind not in "iufb":   # int4 arrives as ml_dtypes int4: make it plain integers
        try:
            a = a.astype(np.int8 if "u" not in str(a.dtype) else np.uint8)
        except Exception:
            raise FileFormatError(f"{where}: tensor {t.name!r}: unsupported dtype {a.dtype}") \
                from None
    elif a.dtype.name.startswith(("int4", "uint4")):  # pragma: no cover - ml_dtypes variants
        a = a.astype(np.int8)
    return a


def check_acyclic(graph, where: str) -> list:
    """Nodes in a topological order; a cycle or a dangling input is an error."""
    produced = {}
    for i, nd in enumerate(graph.node):
        for o in nd.output:
            if o:
                if o in produced:
                    raise FileFormatError(f"{where}: tensor {o!r} is produced twice (nodes "
                                          f"{graph.node[produced[o]].name!r}, {nd.name!r})")
                produced[o] = i
    known = {v.name for v in graph.input} | {t.name for t in graph.initializer} | {""}
    users: dict[int, list[int]] = {i: [] for i in range(len(graph.node))}
    indeg = [0] * len(graph.node)
    for i, nd in enumerate(graph.node):
        for s in nd.input:
            if s in produced:
                users[produced[s]].append(i)
                indeg[i] += 1
            elif s not in known:
                raise FileFormatError(f"{where}: node {nd.name!r} ({nd.op_type}): input {s!r} "
                                      f"is produced by no node, input or initializer")
    ready = [i for i in range(len(graph.node)) if indeg[i] == 0]
    order = []
    while ready:
        i = ready.pop(0)
        order.append(graph.node[i])
        for u in users[i]:
            indeg[u] -= 1
            if indeg[u] == 0:
                ready.append(u)
    if len(order) != len(graph.node):
        left = [graph.node[i].name or graph.node[i].op_type
                for i in range(len(graph.node)) if indeg[i] > 0]
        raise FileFormatError(f"{where}: the graph has a cycle through nodes {left[:5]}")
    return order
