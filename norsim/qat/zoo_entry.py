"""Turn a finished ``norsim train`` run into a committed zoo entry (``norsim zoo --build``).

Writes ``<zoo>/<name>/model.npz`` (the exported QuantModel), ``entry.json`` (architecture,
seed, the exact training command, the accuracy table, the export-equivalence check on the
full test set) and ``log.jsonl`` (the training log).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path


from norsim.errors import InputError
from norsim.qat.data import load_split
from norsim.qat.export import compare, export
from norsim.qat.models import count_parameters
from norsim.qat.train import load_trained, new_model


def build_entry(run_dir: str | Path, name: str, zoo_dir: str | Path | None = None) -> dict:
    from norsim.zoo import ZOO_DIR

    run = Path(run_dir)
    for f in ("model.pt", "summary.json", "log.jsonl"):
        if not (run / f).is_file():
            raise InputError("--build", str(run), f"a finished training run (missing {f})")
    model, spec = load_trained(run / "model.pt")
    if not model.quantized:
        raise InputError("--build", str(run), "a run with QAT epochs")
    summary = json.loads((run / "summary.json").read_text())
    x, y = load_split(spec.data, "test")
    qm = export(model, name=name, metadata={"zoo": name, "seed": spec.seed, "data": spec.data})
    r = compare(model, qm, x)
    ref_acc = float((r["reference_logits"].argmax(1) == y).mean())
    fq_acc = float((r["fake_quant_logits"].argmax(1) == y).mean())
    cmd = (run / "command.txt").read_text().strip() if (run / "command.txt").is_file() else None
    entry = {
        "arch": spec.arch, "data": spec.data, "bits": spec.bits,
        "first_last_bits": spec.first_last_bits, "seed": spec.seed,
        "parameters": count_parameters(new_model(spec, False)),
        "command": cmd,
        "accuracy": {
            "n_test": int(len(y)),
            "float_test_acc": summary["float_test_acc"],
            "ptq_test_acc": summary["ptq_test_acc"],
            "qat_fake_quant_test_acc": fq_acc,
            "qat_test_acc": ref_acc,          # the exported integer model (reference executor)
            "gap_points": round(100 * (summary["float_test_acc"] - ref_acc), 3),
        },
        "export_check": {k: v for k, v in r.items() if not k.endswith("_logits")}
        | {"top1_agreement": r["fq_top1_agreement"]},
        "training": dataclasses.asdict(spec),
    }
    dest = Path(zoo_dir) if zoo_dir is not None else ZOO_DIR
    d = dest / name
    d.mkdir(parents=True, exist_ok=True)
    qm.save(d / "model.npz")
    shutil.copyfile(run / "log.jsonl", d / "log.jsonl")
    (d / "entry.json").write_text(json.dumps(entry, indent=1) + "\n")
    return entry


