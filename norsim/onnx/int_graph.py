"""Re-import of norsim's own integer graphs (:mod:`norsim.onnx.export_int`).

The integers (weights, zero points, biases, multipliers, shifts) are read from the graph's
initializers; attributes and the informative float scales from the ``norsim.quantmodel``
metadata. The result is then exported again and compared node by node and initializer by
initializer with the file, so an edited graph is refused instead of silently misread.
"""

from __future__ import annotations

import json

import numpy as np

from norsim.errors import FileFormatError
from norsim.mapping.quant_model import QuantModel
from norsim.onnx.loader import to_array


def import_integer_graph(model, meta: str, where: str) -> QuantModel:
    from norsim.onnx.export_int import build_integer_graph

    try:
        doc = json.loads(meta)
        graph, wscale = doc["graph"], doc["weight_scale"]
        nodes = graph["nodes"]
    except (ValueError, KeyError, TypeError) as exc:
        raise FileFormatError(f"{where}: metadata 'norsim.quantmodel' is corrupt ({exc})") \
            from None
    inits = {t.name: t for t in model.graph.initializer}

    def arr(name):
        if name not in inits:
            raise FileFormatError(f"{where}: initializer {name!r} is missing (not a graph "
                                  f"written by norsim export)")
        return to_array(inits[name], where)

    arrays: dict[str, np.ndarray] = {}
    for d in nodes:
        n, op = d.get("name"), d.get("op")
        if op in ("conv2d", "linear"):
            w = arr(f"{n}.W")
            arrays[f"{n}/weight"] = (w if op == "conv2d" else w.T).astype(np.int8)
            arrays[f"{n}/bias"] = arr(f"{n}.bias").reshape(-1).astype(np.int32)
            arrays[f"{n}/weight_scale"] = np.asarray(wscale.get(n, []), np.float64)
            if f"{n}.neg_w_zp" in inits:
                arrays[f"{n}/weight_zero_point"] = (-arr(f"{n}.neg_w_zp").reshape(-1)).astype(
                    np.int8)
            if d.get("requantize"):
                arrays[f"{n}/multiplier"] = arr(f"{n}.m").reshape(-1).astype(np.int32)
                dd = arr(f"{n}.d").reshape(-1).astype(np.int64)
                arrays[f"{n}/shift"] = _log2(dd, n, where).astype(np.int32)
        elif op == "add":
            d["multiplier_a"] = int(arr(f"{n}.ma"))
            d["multiplier_b"] = int(arr(f"{n}.mb"))
            d["shift"] = int(_log2(arr(f"{n}.d").reshape(-1).astype(np.int64), n, where)[0])
    try:
        qm = QuantModel.from_graph(graph, arrays)
    except FileFormatError as exc:
        raise FileFormatError(f"{where}: {exc}") from None
    again = build_integer_graph(qm)
    def sig(g):
        return [(n.op_type, n.domain, list(n.input), list(n.output),
                 sorted(a.SerializeToString() for a in n.attribute)) for n in g.node]

    mine, theirs = sig(model.graph), sig(again.graph)
    if mine != theirs or any(
            not np.array_equal(to_array(t, where), arr(t.name)) for t in again.graph.initializer):
        raise FileFormatError(f"{where}: the integer graph differs from what its "
                              f"'norsim.quantmodel' metadata describes (edited after export?)")
    return qm


def _log2(d: np.ndarray, node: str, where: str) -> np.ndarray:
    n = np.array([int(v).bit_length() - 1 for v in d], dtype=np.int64)
    if np.any(d <= 0) or np.any((np.int64(1) << n) != d):
        raise FileFormatError(f"{where}: node {node!r}: divisor {d.tolist()[:3]} is not a "
                              f"power of two")
    return n
