"""Crash-safe results: one SQLite file, WAL journal, one transaction per finished point.

Only the parent process writes; a killed parent or worker loses at most the points that
were in flight. Rows already committed are never rewritten, except failed points when the
user asks to retry them.

Tables::

    meta(key TEXT PRIMARY KEY, value TEXT)      -- format, version, spec identity, spec text
    points(point_index, replicate,              -- primary key
           status 'ok'|'error', axes JSON, metrics JSON, seed, spawn_key JSON,
           config_toml, error, traceback, wall_s, norsim_version, worker, finished_at)
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable

from norsim.errors import FileFormatError, InputError

FORMAT = "norsim-sweep"
FORMAT_VERSION = "1"
DEFAULT_NAME = "results.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    point_index INTEGER NOT NULL,
    replicate INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    axes TEXT NOT NULL,
    metrics TEXT,
    seed INTEGER NOT NULL,
    spawn_key TEXT NOT NULL,
    config_toml TEXT NOT NULL,
    error TEXT,
    traceback TEXT,
    wall_s REAL,
    norsim_version TEXT,
    worker TEXT,
    finished_at TEXT NOT NULL,
    PRIMARY KEY (point_index, replicate)
);
"""
COLUMNS = ("point_index", "replicate", "status", "axes", "metrics", "seed", "spawn_key",
           "config_toml", "error", "traceback", "wall_s", "norsim_version", "worker",
           "finished_at")


def results_path(out: str | Path) -> Path:
    """``out`` itself, or ``out/results.sqlite`` when ``out`` is an existing folder."""
    path = Path(out)
    return path / DEFAULT_NAME if path.is_dir() else path


def _corrupt(path: Path, why: str) -> FileFormatError:
    return FileFormatError(f"{path}: not a norsim sweep results file ({why})")


class ResultStore:
    """A results file opened for reading or for appending rows."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int | None = None):
        self.path = path
        self.conn = conn
        self.lock_fd = lock_fd

    # ---- opening -----------------------------------------------------------------
    @classmethod
    def open(cls, out: str | Path, *, create: bool = False) -> "ResultStore":
        path = results_path(out)
        exists = path.exists()
        if not exists and not create:
            raise InputError("RESULTS", str(path), "an existing sweep results file")
        if exists and path.is_dir():
            raise InputError("RESULTS", str(path), "a file path")
        lock_fd = None
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            # lock the file the database really is: the same store reached through a
            # symlink (or another relative spelling) takes the same lock
            lock_fd = _lock(path.resolve())
        store = None
        try:
            uri = path.resolve().as_uri() + ("" if create else "?mode=ro")
            if not create:
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
            else:
                conn = sqlite3.connect(str(path.resolve()), isolation_level=None, timeout=30)
            store = cls(path, conn, lock_fd)
            store._check_or_init(create and (not exists or path.stat().st_size == 0))
            return store
        except sqlite3.OperationalError as exc:  # locked, read-only, no such folder, ...
            err = InputError("RESULTS", str(path), f"a readable and writable results file ({exc})")
        except sqlite3.DatabaseError as exc:  # not a database, malformed
            err = _corrupt(path, str(exc))
        except BaseException:
            _close(store, lock_fd)
            raise
        _close(store, lock_fd)
        raise err

    def _check_or_init(self, new: bool) -> None:
        c = self.conn
        if new:
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=FULL")
            c.executescript(_SCHEMA)
            with self.transaction():
                self._set_meta({"format": FORMAT, "format_version": FORMAT_VERSION,
                                "created_at": _now()})
            return
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"meta", "points"} <= tables:
            raise _corrupt(self.path, "missing the meta/points tables")
        meta = self.meta()
        if meta.get("format") != FORMAT:
            raise _corrupt(self.path, f"format {meta.get('format')!r}")
        if meta.get("format_version") != FORMAT_VERSION:
            raise FileFormatError(f"{self.path}: results format version "
                                  f"{meta.get('format_version')!r}, this norsim reads "
                                  f"{FORMAT_VERSION!r}")
        cols = [r[1] for r in c.execute("PRAGMA table_info(points)")]
        if tuple(cols) != COLUMNS:
            raise _corrupt(self.path, "unexpected columns in table points")
        if not c.execute("PRAGMA query_only").fetchone()[0]:
            c.execute("PRAGMA synchronous=FULL")

    def close(self) -> None:
        self.conn.close()
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # releases the lock
            self.lock_fd = None

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- meta --------------------------------------------------------------------
    def transaction(self):
        return _Transaction(self.conn)

    def meta(self) -> dict[str, str]:
        try:
            return dict(self.conn.execute("SELECT key, value FROM meta"))
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.path, str(exc)) from None

    def _set_meta(self, items: dict[str, str]) -> None:
        self.conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) "
                              "DO UPDATE SET value = excluded.value", items.items())

    def bind_spec(self, identity: dict, spec_text: str, version: str) -> None:
        """Record the spec on first use; refuse a results file written by another spec."""
        ident = json.dumps(identity, sort_keys=True)
        meta = self.meta()
        if "identity" not in meta:
            with self.transaction():
                self._set_meta({"identity": ident, "spec": spec_text, "norsim_version": version})
        elif meta["identity"] != ident:
            old = json.loads(meta["identity"])
            diff = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
            raise InputError("--out", str(self.path),
                             "a results file of this spec or a new path (it was written by a "
                             f"spec with a different {', '.join(diff)})")

    # ---- rows --------------------------------------------------------------------
    def finished(self, *, include_errors: bool = True) -> dict[tuple[int, int], tuple[int, str]]:
        """(point_index, replicate) -> (seed, config_toml) of the committed rows."""
        q = "SELECT point_index, replicate, seed, config_toml FROM points"
        if not include_errors:
            q += " WHERE status = 'ok'"
        try:
            return {(i, r): (s, c) for i, r, s, c in self.conn.execute(q)}
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.path, str(exc)) from None

    def commit_point(self, row: dict[str, Any]) -> None:
        """Write one finished point in its own transaction. A committed 'ok' row is kept."""
        values = {
            "point_index": row["point_index"], "replicate": row["replicate"],
            "status": row["status"], "axes": json.dumps(row["axes"]),
            "metrics": json.dumps(row["metrics"]) if row.get("metrics") is not None else None,
            "seed": row["seed"], "spawn_key": json.dumps(list(row["spawn_key"])),
            "config_toml": row["config_toml"], "error": row.get("error"),
            "traceback": row.get("traceback"), "wall_s": row.get("wall_s"),
            "norsim_version": row.get("norsim_version"), "worker": row.get("worker"),
            "finished_at": _now(),
        }
        cols = ", ".join(COLUMNS)
        marks = ", ".join(f":{c}" for c in COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[2:])
        try:
            with self.transaction():
                self.conn.execute(
                    f"INSERT INTO points ({cols}) VALUES ({marks}) "
                    f"ON CONFLICT(point_index, replicate) DO UPDATE SET {updates} "
                    f"WHERE points.status = 'error'", values)
        except sqlite3.Error as exc:
            raise FileFormatError(f"{self.path}: cannot write a result row ({exc})") from None

    def rows(self) -> list[dict[str, Any]]:
        """Every committed row, JSON columns decoded, ordered by point and replicate."""
        try:
            cur = self.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM points "
                                    "ORDER BY point_index, replicate")
            out = []
            for rec in cur:
                row = dict(zip(COLUMNS, rec))
                row["axes"] = json.loads(row["axes"])
                row["metrics"] = json.loads(row["metrics"]) if row["metrics"] else {}
                row["spawn_key"] = tuple(json.loads(row["spawn_key"]))
                out.append(row)
            return out
        except (sqlite3.DatabaseError, json.JSONDecodeError, TypeError) as exc:
            raise _corrupt(self.path, str(exc)) from None


class _Transaction:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, *rest):
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _lock(path: Path) -> int | None:
    """Hold ``<results>.lock`` while writing: a second sweep on the same file is refused.

    The operating system drops the lock when the process ends, however it ends, so a killed
    sweep can be resumed at once. (No lock where ``fcntl`` is missing, i.e. on Windows.)
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return None
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise InputError("--out", str(path), "a results file no other running sweep is "
                                             "writing (another norsim sweep holds its lock)") from None
    return fd


def _close(store: "ResultStore | None", lock_fd: int | None) -> None:
    if store is not None:
        store.close()
    elif lock_fd is not None:
        os.close(lock_fd)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def check_rows_match(store: ResultStore, tasks: Iterable) -> None:
    """Every committed row must be the same (seed, configuration) the spec gives now."""
    by_key = {t.key: t for t in tasks}
    for key, (seed, config_toml) in store.finished().items():
        task = by_key.get(key)
        if task is None or task.seed != seed or task.config_toml != config_toml:
            what = "is not a point of this spec" if task is None else (
                "has another seed" if task.seed != seed else "has another configuration")
            raise InputError("--out", str(store.path),
                             f"a results file of this spec or a new path (its point {key[0]} "
                             f"replicate {key[1]} {what})")
