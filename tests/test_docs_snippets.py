"""Every ```python block in docs/ runs as written (blocks of one page in order, sharing one
namespace, in a scratch folder), unless the line before it is
``<!-- not runnable: reason -->``."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
FENCE = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.S)
NOT_RUNNABLE = re.compile(r"<!-- not runnable: (?P<why>.+\S) -->")


def snippets(text: str) -> list[tuple[str, str | None]]:
    """(code, reason it is not run or None) of every python block of a page."""
    out = []
    for m in FENCE.finditer("\n" + text):
        why = NOT_RUNNABLE.search(m.group("before"))
        out.append((m.group("code"), why.group("why") if why else None))
    return out


PAGES = sorted(p for p in DOCS.glob("**/*.md") if "```python" in p.read_text(encoding="utf-8"))


def test_snippet_finder_sees_runnable_and_marked_blocks():
    text = ("intro\n```python\nx = 1\n```\n<!-- not runnable: needs a GPU -->\n```python\n"
            "y = 2\n```\n```toml\na = 1\n```\n")
    assert snippets(text) == [("x = 1", None), ("y = 2", "needs a GPU")]
    assert any(code for page in PAGES for code, why in snippets(page.read_text()) if why is None)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_runnable_doc_snippets_run(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__docs__"}
    for i, (code, why) in enumerate(snippets(page.read_text(encoding="utf-8"))):
        if why is not None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a documented example runs clean
            exec(compile(code, f"{page.name}[python block {i}]", "exec"), ns)  # noqa: S102
