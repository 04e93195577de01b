"""The documentation site: generated reference pages up to date, `mkdocs build --strict` passes.

The configuration and CLI reference pages are generated (`python -m norsim.config.reference`);
a committed page that differs from what the code generates now fails here, with the command
that fixes it. The strict build fails on any broken link, missing page or bad anchor; a
second build on a copy with a broken link proves that it would.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from norsim.config import reference
from norsim.config.sim import SimConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_generated_reference_pages_are_up_to_date():
    stale = reference.stale_pages(DOCS)
    assert not stale, (f"docs/{', docs/'.join(stale)} out of date: run "
                       "`python -m norsim.config.reference` and commit the result")


def test_stale_pages_detects_an_edited_page(tmp_path):
    for name, text in reference.pages().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert reference.stale_pages(tmp_path) == []
    page = tmp_path / reference.CONFIG_PAGE
    page.write_text(page.read_text(encoding="utf-8").replace("| `seed` |", "| `sead` |"),
                    encoding="utf-8")
    assert reference.stale_pages(tmp_path) == [reference.CONFIG_PAGE]
    (tmp_path / reference.CLI_PAGE).unlink()
    assert set(reference.stale_pages(tmp_path)) == {reference.CONFIG_PAGE, reference.CLI_PAGE}
    assert reference.main(["--docs", str(tmp_path), "--check"]) == 1
    assert reference.main(["--docs", str(tmp_path)]) == 0
    assert reference.main(["--docs", str(tmp_path), "--check"]) == 0


def _leaf_values(cfg, prefix=""):
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if f.metadata.get("section"):
            yield from _leaf_values(v, prefix + f.name + ".")
        else:
            yield prefix + f.name, v, f.metadata


def test_config_reference_has_one_row_per_field_with_its_doc_unit_and_default():
    text = reference.config_reference_markdown()
    split = lambda line: [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]  # noqa: E731
    rows = {split(line)[0].strip("`"): split(line)
            for line in text.splitlines() if line.startswith("| `")}
    fields = list(_leaf_values(SimConfig()))
    assert len(fields) == sum(1 for _ in SimConfig.field_docs())
    assert set(rows) == {name for name, _, _ in fields}
    for name, value, meta in fields:
        cells = rows[name]
        assert len(cells) == 6, name
        doc = " ".join(meta["doc"].split()).replace("|", "\\|")
        assert cells[5] == doc, name
        assert cells[3] == (meta["unit"] or "-"), name
        if isinstance(value, bool):
            assert cells[2].startswith("true" if value else "false"), name
        elif isinstance(value, (int, float)):
            assert float(cells[2].split(" ")[0]) == pytest.approx(value, rel=1e-5), name
        if meta.get("choices"):
            for c in meta["choices"]:
                assert f'"{c}"' in cells[4], name


def test_config_reference_marks_preset_values_that_differ_from_the_dataclass_default():
    text = reference.config_reference_markdown()
    row = next(line for line in text.splitlines()
               if line.startswith("| `device.programming.two_way_tuning` |"))
    from norsim.config.presets import load_preset

    preset_value = load_preset("nor40").device.programming.two_way_tuning
    if preset_value == SimConfig().device.programming.two_way_tuning:
        assert "nor40:" not in row
    else:
        assert f"(nor40: {'true' if preset_value else 'false'})" in row


def test_cli_reference_documents_every_subcommand_and_option():
    from norsim.cli.main import build_parser

    text = reference.cli_reference_markdown()
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert sub.choices, "no subcommands registered"
    for name, sp in sub.choices.items():
        assert f"\n## norsim {name}\n" in text
        section = text.split(f"\n## norsim {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in sp._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for opt in action.option_strings:
                assert f"`{opt}`" in section, (name, opt)


def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.fail("mkdocs is not installed: pip install -c constraints.txt -e '.[docs]' "
                    "(make env installs it)")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--config-file", str(config), "--site-dir", str(site)],
                          capture_output=True, text=True, timeout=300,
                          env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin",
                               "HOME": str(site.parent)})


@pytest.mark.slow
def test_mkdocs_build_strict_passes(tmp_path):
    res = _mkdocs(ROOT / "mkdocs.yml", tmp_path / "site")
    assert res.returncode == 0, res.stdout + res.stderr
    for page in ("index.html", "user-guide/index.html", "configuration/index.html",
                 "cli/index.html", "notebooks/index.html", "results/index.html"):
        assert (tmp_path / "site" / page).is_file(), page


@pytest.mark.slow
def test_mkdocs_strict_build_fails_on_a_broken_link(tmp_path):
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    index = tmp_path / "docs" / "index.md"
    index.write_text(index.read_text(encoding="utf-8") + "\nSee [nowhere](no-such-page.md).\n",
                     encoding="utf-8")
    res = _mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert res.returncode != 0
    assert "no-such-page.md" in res.stdout + res.stderr
