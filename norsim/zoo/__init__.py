"""The model zoo: small pre-trained 4-bit QuantModels committed with the package.

Each entry is a folder ``norsim/zoo/<name>/`` holding ``model.npz`` (a QuantModel),
``entry.json`` (architecture, data, seed, the exact training command, the accuracy table and
the export-equivalence check) and ``log.jsonl`` (the training log). No torch needed.
"""

from __future__ import annotations

import json
from pathlib import Path

from norsim.errors import FileFormatError, InputError

ZOO_DIR = Path(__file__).resolve().parent


def names() -> list[str]:
    return sorted(p.name for p in ZOO_DIR.iterdir() if (p / "entry.json").is_file())


def entry(name: str) -> dict:
    """The metadata of one zoo entry (``entry.json``)."""
    if name not in names():
        raise InputError("zoo model", name, "one of " + (", ".join(names()) or "(none)"))
    path = ZOO_DIR / name / "entry.json"
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FileFormatError(f"{path}: unreadable zoo entry ({exc})") from None
    d["name"] = name
    return d


def entries() -> list[dict]:
    return [entry(n) for n in names()]


def path(name: str) -> Path:
    """Path of the entry's QuantModel file."""
    entry(name)
    return ZOO_DIR / name / "model.npz"


def load(name: str):
    """The entry's :class:`~norsim.mapping.quant_model.QuantModel` (validated, no pickle)."""
    from norsim.mapping.quant_model import QuantModel

    return QuantModel.load(path(name))


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def format_table(items: list[dict]) -> str:
    """A Markdown table of the entries, then each entry's training command."""
    head = ("| model | arch | data | W/A bits | float test acc % | 4-bit test acc % | gap (pts) "
            "| n test | export top-1 agree % | seed | QAT weight noise sigma_lnw |")
    lines = [head, "|" + "---|" * 11]
    for e in items:
        a = e.get("accuracy", {})
        x = e.get("export_check", {})
        lines.append(
            f"| {e['name']} | {e.get('arch', '-')} | {e.get('data', '-')} "
            f"| {e.get('bits', '-')} (first/last W {e.get('first_last_bits', '-')}) "
            f"| {_pct(a.get('float_test_acc'))} | {_pct(a.get('qat_test_acc'))} "
            f"| {a.get('gap_points', '-')} | {a.get('n_test', '-')} "
            f"| {_pct(x.get('top1_agreement'))} | {e.get('seed', '-')} "
            f"| {e.get('training', {}).get('noise_sigma_lnw', 0.0):.3g} |")
    for e in items:
        lines.append(f"\n{e['name']}: {e.get('command', '(command not recorded)')}")
    return "\n".join(lines)
