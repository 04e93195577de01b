"""Export a quantised :class:`~norsim.qat.models.QNet` to a QuantModel (docs/model-format.md).

Every number is taken from the fake-quant model as it computes: weight codes and biases are
rounded from the same float32 values, scales are the float32 scales widened to float64, and
each conv/linear followed by a PACT activation becomes one node with a fused requantisation
(``out_scale = alpha / (2^b - 1)``, unsigned codes). The last linear layer keeps its raw int32
accumulators (``requantize = false``): logits are ``acc * s_in * s_w``. Residual blocks become
two requantised convolutions (signed 8-bit) and an ``add`` node with a fused ReLU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from norsim.errors import InputError
from norsim.mapping.quant_model import (Add, AvgPool2d, Conv2d, Flatten, Input, Linear,
                                        MaxPool2d, QuantModel)
from norsim.mapping.requant import quantize_multipliers
from norsim.qat.layers import AvgPool, BasicBlock, InputQuant, MaxPool, QAct, QLayer
from norsim.qat.layers import Flatten as QFlatten
from norsim.qat.models import QNet


def _f(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).double().numpy().reshape(-1)


def _matmul_node(q: QLayer, name: str, inp: str, in_scale: torch.Tensor,
                 out: tuple[int, bool, torch.Tensor] | None):
    w = q.op.weight.detach()
    cout = w.shape[0]
    s_w32 = q.wq.scale().detach().to(torch.float32).expand(cout)   # per layer: repeated
    codes = q.wq.codes(w)                                   # code - zero point
    zp = None
    if not q.wq.symmetric:   # format: codes and zero points in two's complement [-2^(b-1), ..]
        off = 2 ** (q.w_bits - 1)
        z = q.wq.zero_point().detach().to(torch.int64).expand(cout)
        codes = codes + z.reshape((-1,) + (1,) * (w.dim() - 1)) - off
        zp = (z - off).numpy().astype(np.int8)
    step32 = (s_w32 * in_scale.to(torch.float32)).detach()
    b = q.op.bias
    if b is None:
        bias = np.zeros(cout, dtype=np.int64)
    else:
        bias = torch.round(b.detach() / step32).to(torch.int64).numpy()
    if np.any(np.abs(bias) >= 2 ** 31):
        raise InputError(f"{name}.bias", int(np.abs(bias).max()), "an int32 bias code")
    s_w = _f(s_w32)
    s_in = float(_f(in_scale)[0])
    kw = dict(weight=codes.numpy().astype(np.int8), bias=bias.astype(np.int32),
              weight_scale=s_w, weight_zero_point=zp, weight_bits=int(q.w_bits))
    if out is None:
        kw.update(requantize=False, multiplier=None, shift=None)
    else:
        bits, signed, s_out = out
        s_out = float(_f(s_out)[0])
        m, n = quantize_multipliers(s_in * s_w / s_out)
        kw.update(requantize=True, multiplier=m.astype(np.int32), shift=n.astype(np.int32),
                  out_bits=int(bits), out_signed=bool(signed), out_scale=s_out)
    if q.kind == "conv":
        return Conv2d(name, (inp,), stride=tuple(q.op.stride), padding=tuple(q.op.padding), **kw)
    return Linear(name, (inp,), **kw)


def qlayer_names(model: QNet) -> dict[str, QLayer]:
    """Each quantised layer under the name :func:`export` gives its QuantModel node
    (conv1, fc3, block2_conv1, block2_shortcut, ...), in forward order."""
    out: dict[str, QLayer] = {}
    counts: dict[str, int] = {}
    for L in model.layers:
        if isinstance(L, QLayer):
            prefix = "conv" if L.kind == "conv" else "fc"
            counts[prefix] = counts.get(prefix, 0) + 1
            out[f"{prefix}{counts[prefix]}"] = L
        elif isinstance(L, BasicBlock):
            counts["block"] = counts.get("block", 0) + 1
            p = f"block{counts['block']}"
            out[f"{p}_conv1"], out[f"{p}_conv2"] = L.conv1, L.conv2
            if L.shortcut is not None:
                out[f"{p}_shortcut"] = L.shortcut
    return out


def export(model: QNet, name: str = "", metadata: dict | None = None) -> QuantModel:
    """The integer :class:`QuantModel` of a quantised (``to_qat``-ed) model."""
    if not isinstance(model, QNet) or not model.quantized:
        raise InputError("model", type(model).__name__,
                         "a quantised QNet (call to_qat / train with QAT epochs first)")
    layers = list(model.layers)
    if not isinstance(layers[0], InputQuant):
        raise InputError("model.layers[0]", type(layers[0]).__name__, "InputQuant")
    nodes = [Input("input", shape=tuple(model.input_shape), bits=int(layers[0].bits),
                   signed=False, scale=float(_f(layers[0].scale())[0]))]
    cur, cur_q = "input", layers[0]
    counts: dict[str, int] = {}

    def fresh(prefix: str) -> str:
        counts[prefix] = counts.get(prefix, 0) + 1
        return f"{prefix}{counts[prefix]}"

    i = 1
    while i < len(layers):
        L = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(L, QLayer):
            nm = fresh("conv" if L.kind == "conv" else "fc")
            if isinstance(nxt, QAct):
                nodes.append(_matmul_node(L, nm, cur, cur_q.scale(),
                                          (nxt.pact.bits, False, nxt.scale())))
                cur_q = nxt
                i += 1
            elif nxt is None:
                nodes.append(_matmul_node(L, nm, cur, cur_q.scale(), None))
            else:
                raise InputError(f"layer {i}", type(nxt).__name__,
                                 "a QAct after every conv/linear but the last")
            cur = nm
        elif isinstance(L, BasicBlock):
            p = fresh("block")
            s_in = cur_q.scale()
            nodes.append(_matmul_node(L.conv1, f"{p}_conv1", cur, s_in,
                                      (L.act1.pact.bits, False, L.act1.scale())))
            nodes.append(_matmul_node(L.conv2, f"{p}_conv2", f"{p}_conv1", L.act1.scale(),
                                      (L.q_res.bits, True, L.q_res.scale())))
            if L.shortcut is not None:
                nodes.append(_matmul_node(L.shortcut, f"{p}_shortcut", cur, s_in,
                                          (L.q_sc.bits, True, L.q_sc.scale())))
                sc, s_sc = f"{p}_shortcut", L.q_sc.scale()
            else:
                sc, s_sc = cur, s_in
            nodes.append(Add.from_scales(f"{p}_add", (f"{p}_conv2", sc),
                                         float(_f(L.q_res.scale())[0]), float(_f(s_sc)[0]),
                                         float(_f(L.act2.scale())[0]),
                                         out_bits=L.act2.pact.bits, out_signed=False))
            cur, cur_q = f"{p}_add", L.act2
        elif isinstance(L, MaxPool):
            nm = fresh("pool")
            nodes.append(MaxPool2d(nm, (cur,), kernel=(L.k, L.k)))
            cur = nm
        elif isinstance(L, AvgPool):
            nm = fresh("avgpool")
            nodes.append(AvgPool2d(nm, (cur,), kernel=(L.k, L.k)))
            cur = nm
        elif isinstance(L, QFlatten):
            nodes.append(Flatten("flatten", (cur,)))
            cur = "flatten"
        else:
            raise InputError(f"layer {i}", type(L).__name__, "a layer the exporter knows")
        i += 1
    meta = {"arch": model.arch, "bits": model.bits, "first_last_bits": model.first_last_bits,
            "exporter": "norsim.qat.export"}
    meta.update(metadata or {})
    return QuantModel(nodes=nodes, output=cur, name=name or model.arch, metadata=meta).validate()


@torch.no_grad()
def compare(model: QNet, qm: QuantModel, images: np.ndarray, batch: int = 1000,
            exact: bool = True, reference_logits: np.ndarray | None = None) -> dict:
    """Torch model vs the exported integer reference on uint8 images (N x C x H x W).

    Two torch evaluations are compared with the reference: the float fake-quant forward
    (``fq_*``: float32, the training graph) and the integer-exact torch forward
    (``exact_*``, :meth:`QNet.set_exact`; skipped with ``exact=False``). Reported: top-1 agreement, the largest logit
    difference in output quantisation steps (the per-channel accumulator step of the raw
    output) and the fraction of images whose logits all agree within one step.
    ``reference_logits`` (dequantised reference outputs of ``images``) skips the reference run.
    """
    from norsim.mapping.reference import input_codes, run_reference
    from norsim.qat.data import to_float

    model.eval()
    fq, ex, ref = [], [], []
    try:
        for i in range(0, len(images), batch):
            xb = np.ascontiguousarray(images[i:i + batch])
            xt = to_float(xb)
            model.set_exact(False)
            fq.append(model(xt).double().numpy())
            if exact:
                model.set_exact(True)
                ex.append(model(xt).double().numpy())
            if reference_logits is None:
                codes = run_reference(qm, input_codes(qm, xb))
                ref.append(qm.dequantize_output(codes))
            else:
                ref.append(np.asarray(reference_logits[i:i + batch], dtype=np.float64))
    finally:
        model.set_exact(False)
    fq, ref = np.concatenate(fq), np.concatenate(ref)
    step = np.broadcast_to(np.asarray(qm.output_spec.scale, dtype=np.float64), ref.shape[1:])
    out = {"n": int(len(images))}
    pairs = [("fq", fq)] + ([("exact", np.concatenate(ex))] if exact else [])
    for tag, t in pairs:
        d = np.abs(t - ref) / step
        out[f"{tag}_top1_agreement"] = float((t.argmax(1) == ref.argmax(1)).mean())
        out[f"{tag}_max_logit_diff_steps"] = float(d.max()) if d.size else 0.0
        out[f"{tag}_images_within_one_step"] = float((d <= 1.0).all(axis=1).mean())
    out["reference_logits"] = ref
    out["fake_quant_logits"] = fq
    if exact:
        out["exact_logits"] = pairs[1][1]
    return out


def export_run(out: str | Path) -> Path:
    """Export ``OUT/model.pt`` (written by :func:`norsim.qat.train.train`) to ``OUT/model.npz``."""
    from norsim.qat.train import load_trained

    out = Path(out)
    model, spec = load_trained(out / "model.pt")
    if not model.quantized:
        raise InputError("--epochs", spec.epochs, "more epochs than --float-epochs "
                         "(a float-only run has nothing to export)")
    qm = export(model, name=f"{spec.arch}-{spec.data}-{spec.bits}b",
                metadata={"seed": spec.seed, "data": spec.data})
    return qm.save(out / "model.npz")
