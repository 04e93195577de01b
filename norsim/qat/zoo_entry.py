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


import numpy as np
import torch

from norsim.errors import FileFormatError, InputError
from norsim.qat.data import load_split
from norsim.qat.export import compare, export
from norsim.qat.models import count_parameters
from norsim.qat.train import TrainSpec, load_trained, new_model


def build_entry(run_dir: str | Path, name: str, zoo_dir: str | Path | None = None,
                data_dir: str | None = None) -> dict:
    from norsim.zoo import ZOO_DIR

    run = Path(run_dir)
    for f in ("model.pt", "summary.json", "log.jsonl"):
        if not (run / f).is_file():
            raise InputError("--build", str(run), f"a finished training run (missing {f})")
    model, spec = load_trained(run / "model.pt")
    if not model.quantized:
        raise InputError("--build", str(run), "a run with QAT epochs")
    summary = json.loads((run / "summary.json").read_text())
    x, y = load_split(spec.data, "test", data_dir)
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
            # the slice shipped in norsim/data/embedded (CIFAR-10: cifar10_test500.npz), so
            # a clone without the data set can still check the committed model
            "first_500_test_acc": float((r["reference_logits"][:500].argmax(1) == y[:500]).mean()),
        },
        "export_check": {k: v for k, v in r.items() if not k.endswith("_logits")}
        | {"top1_agreement": r["fq_top1_agreement"]},
        "training": dataclasses.asdict(spec),
    }
    dest = Path(zoo_dir) if zoo_dir is not None else ZOO_DIR
    d = dest / name
    d.mkdir(parents=True, exist_ok=True)
    qm.save(d / "model.npz")
    save_torch_state(model, d / "torch_state.npz")
    shutil.copyfile(run / "log.jsonl", d / "log.jsonl")
    (d / "entry.json").write_text(json.dumps(entry, indent=1) + "\n")
    return entry




def refresh_export_check(name: str, data_dir: str | None = None) -> dict:
    """Rerun the export-equivalence check of a committed entry on its full test set (the
    torch twin from ``torch_state.npz`` against the committed ``model.npz``) and rewrite
    ``export_check`` and ``qat_fake_quant_test_acc`` in its ``entry.json``; the committed
    model and the other accuracies are left as they are (they are checked to reproduce)."""
    from norsim import zoo

    d = zoo.ZOO_DIR
    e = zoo.entry(name)          # a clear error for an unknown or unreadable entry
    e.pop("name")
    model = load_zoo_torch_model(name)
    qm = zoo.load(name)
    x, y = load_split(e["data"], "test", data_dir)
    r = compare(model, qm, x)
    ref_acc = float((r["reference_logits"].argmax(1) == y).mean())
    if ref_acc != e["accuracy"]["qat_test_acc"]:
        raise FileFormatError(f"{name}: the committed model gives {ref_acc} on the test set, "
                              f"entry.json says {e['accuracy']['qat_test_acc']}")
    e["accuracy"]["qat_fake_quant_test_acc"] = float(
        (r["fake_quant_logits"].argmax(1) == y).mean())
    e["export_check"] = ({k: v for k, v in r.items() if not k.endswith("_logits")}
                         | {"top1_agreement": r["fq_top1_agreement"]})
    (d / name / "entry.json").write_text(json.dumps(e, indent=1) + "\n")
    return e


def save_torch_state(model, path: str | Path) -> Path:
    """The QAT model's state dict as a plain ``.npz`` (no pickle), float32/int64 arrays."""
    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return Path(path)


def load_zoo_torch_model(name: str):
    """Rebuild the torch fake-quant twin of a zoo entry (from ``torch_state.npz`` and the
    training spec in ``entry.json``)."""
    from norsim import zoo

    e = zoo.entry(name)
    spec = TrainSpec(**e["training"])
    model = new_model(spec, quantized=True)
    path = zoo.ZOO_DIR / name / "torch_state.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            state = {k: torch.from_numpy(z[k]) for k in z.files}
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"{path}: unreadable torch state ({exc})") from None
    model.load_state_dict(state)
    model.eval()
    return model
