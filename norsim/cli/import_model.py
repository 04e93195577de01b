"""``norsim import``: an ONNX model (QDQ, QLinear, QONNX or norsim's integer graph) -> a
QuantModel ``.npz``; ``--to-onnx`` goes the other way."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="convert an ONNX model to a QuantModel .npz (needs the "
                                      "onnx extra); --to-onnx exports one")
    p.add_argument("model", help="an .onnx file (or, with --to-onnx, zoo:NAME or a .npz)")
    p.add_argument("--out", required=True, help="the .npz (or, with --to-onnx, .onnx) to write")
    p.add_argument("--input-shape", default=None, metavar="C,H,W",
                   help="resolve a dynamic image shape, e.g. 1,28,28")
    p.add_argument("--to-onnx", choices=("integer", "qdq"), default=None,
                   help="export the QuantModel MODEL to ONNX instead: 'integer' (bit-exact "
                        "integer operators) or 'qdq' (QuantizeLinear/DequantizeLinear)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from norsim.errors import InputError
    from norsim.onnx import require_onnx

    require_onnx()
    if args.to_onnx:
        from norsim.cli.run import load_model
        from norsim.onnx import export_integer, export_qdq

        model = load_model(args.model)
        (export_integer if args.to_onnx == "integer" else export_qdq)(model, args.out)
        print(f"wrote {args.out} ({args.to_onnx} ONNX graph of {model.name or args.model})")
        return 0
    from norsim.onnx import import_onnx

    shape = None
    if args.input_shape:
        try:
            shape = tuple(int(v) for v in args.input_shape.split(","))
        except ValueError:
            shape = ()
        if len(shape) != 3 or min(shape) < 1:
            raise InputError("--input-shape", args.input_shape, "C,H,W (three positive ints)")
    model = import_onnx(Path(args.model), input_shape=shape)
    model.save(args.out)
    n_mm = sum(nd.OP in ("conv2d", "linear") for nd in model.order())
    print(f"wrote {args.out}: {len(model.nodes)} nodes ({n_mm} conv2d/linear), input "
          f"{list(model.input.shape)}, output {model.output!r}")
    notes = model.metadata.get("float_bias_rounding_output_steps") or {}
    if notes:
        worst = max(notes, key=notes.get)
        print(f"note: float biases rounded to the accumulator scale (the format's int32 bias): "
              f"at most {notes[worst]:.3g} output steps ({worst}); quantize biases to int32 "
              f"at s_x * s_w for an exact import")
    return 0
