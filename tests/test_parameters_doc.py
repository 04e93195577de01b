"""Every preset field must have a documented source and evidence tag."""

from pathlib import Path

from norsim.config import SimConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "parameters.md"
TAGS = {"measured", "simulated", "vendor claim", "estimate", "derived", "convention"}


def _rows():
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("field", "---"):
            rows[cells[0]] = cells
    return rows


def test_every_field_has_source_and_evidence():
    rows = _rows()
    missing = [name for name, _ in SimConfig.field_docs() if name not in rows]
    assert not missing, f"docs/parameters.md lacks rows for {missing}"
    for name, cells in rows.items():
        assert cells[3], f"{name} has no source"
        assert cells[4] in TAGS, f"{name} has evidence tag {cells[4]!r}, expected one of {TAGS}"


def test_no_stale_rows():
    fields = {name for name, _ in SimConfig.field_docs()}
    stale = [name for name in _rows() if name not in fields]
    assert not stale, f"docs/parameters.md documents fields that no longer exist: {stale}"
