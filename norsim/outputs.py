"""Output paths checked before any work starts: a run that would fail to write its result
fails in its first second, naming the option and the path, not after the whole run.
"""

from __future__ import annotations

import os
from pathlib import Path

from norsim.errors import InputError


def _existing_ancestor(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_parent(field: str, path: Path) -> None:
    anc = _existing_ancestor(path.parent if path.parent != Path("") else Path("."))
    if not anc.is_dir():
        raise InputError(field, str(path), f"a path inside a folder ({anc} is a file, not a "
                                           "folder)")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise InputError(field, str(path), f"a path in a writable folder ({anc} is not "
                                           "writable)")


def check_output_file(field: str, path: str | Path, *, suffix: str | None = None) -> Path:
    """``path`` can be written as a file: it is not a folder and its folder exists or can be
    created. ``suffix`` (e.g. ".png") is required when given; returns the path."""
    path = Path(path)
    if suffix is not None and path.suffix.lower() != suffix:
        raise InputError(field, str(path), f"a file name ending in {suffix}")
    if path.is_dir():
        raise InputError(field, str(path), "a file path (it is a folder)")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(field, str(path), "a writable file (it is read-only)")
    _check_parent(field, path)
    return path


def check_output_dir(field: str, path: str | Path) -> Path:
    """``path`` is a folder or can be created as one; returns the path."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise InputError(field, str(path), "a folder (it is a file)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(field, str(path), "a writable folder")
        return path
    _check_parent(field, path)
    return path
