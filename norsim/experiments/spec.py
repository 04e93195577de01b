"""Sweep specifications: a base configuration, axes over config fields, Monte-Carlo seeds.

A spec is a small TOML file (see ``docs/sweeps.md``)::

    [sweep]
    evaluator = "device"          # registered evaluator name (or "package.module:function")
    model = ""                    # model reference handed to the evaluator (optional)
    data = ""                     # data reference handed to the evaluator (optional)

    [base]
    preset = "nor40"              # or: config = "base.toml" (relative to the spec file)
    set = ["device.read.v_bl_read_v=0.2"]

    [seeds]
    root = 2026                   # one root seed; every point's seeds are spawned from it
    count = 4                     # Monte-Carlo replicates (simulated chips) per point
    mode = "common"               # "common": chip r is the same draw at every point

    [axes]
    "device.read.temperature_k" = [250.0, 300.0, 350.0]
    "device.cell.slope_factor_n" = { start = 1.1, stop = 1.5, num = 5 }
    "array.rows,array.cols" = [[64, 64], [128, 128]]   # linked fields move together

    [options]                     # evaluator options (checked by the evaluator)

The grid is the Cartesian product of the axes in the order written. Every point's full
configuration is built and validated up front, so a bad field or value fails before any
work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import sys
import typing
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from norsim.config.base import ConfigBase, _base_type
from norsim.config.presets import load_preset
from norsim.config.sim import SimConfig
from norsim.errors import ConfigError, InputError

SEED_MODES = ("common", "independent")
RANGE_KEYS = frozenset({"start", "stop", "num", "step", "scale"})
_TABLES = {
    "sweep": {"name", "evaluator", "model", "data"},
    "base": {"preset", "config", "set"},
    "seeds": {"root", "count", "mode"},
    "axes": None,
    "options": None,
}
MAX_POINTS = 10_000_000
#: values of one range axis at most (more could never fit MAX_TASK_BYTES anyway)
MAX_AXIS_VALUES = 1_000_000
#: the task list keeps every run's configuration text: refuse a sweep whose list would not
#: fit in this many bytes before building it
MAX_TASK_BYTES = 1 << 30


# --------------------------------------------------------------------------- fields ----
def leaf_fields(cls: type[ConfigBase] = SimConfig) -> dict[str, Any]:
    """Dotted name -> annotated type of every leaf field of a config class."""
    out: dict[str, Any] = {}

    def walk(c: type, prefix: str) -> None:
        hints = typing.get_type_hints(c)
        for f in dataclasses.fields(c):
            if f.metadata.get("section"):
                walk(hints[f.name], f"{prefix}{f.name}.")
            else:
                out[f"{prefix}{f.name}"] = hints[f.name]

    walk(cls, "")
    return out


def _check_field(path: str, known: dict[str, Any], where: str) -> None:
    if path == "seed":
        raise ConfigError(f"{where}.seed", path, "an axis other than seed (Monte-Carlo seeds "
                                                 "come from [seeds] root and count)")
    if path in known:
        return
    close = difflib.get_close_matches(path, known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(where, path, f"a dotted path to a configuration field{hint}")


def _axis_value(path: str, value: Any, tp: Any) -> Any:
    """Normalise one axis value for its field type (integral floats to int fields)."""
    base, _ = _base_type(tp)
    if base is int and isinstance(value, float) and math.isfinite(value) and value == round(value):
        return int(round(value))
    if isinstance(value, (dict, list)) and typing.get_origin(base) is not tuple:
        raise ConfigError(f"axes.{path}", value, "a plain value (number, string or boolean)")
    return value


def _expand_range(where: str, table: dict) -> list:
    import numpy as np

    unknown = set(table) - RANGE_KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}", table[sorted(unknown)[0]],
                          "a range key: start, stop and one of num or step (scale = 'linear'|'log')")
    for key in ("start", "stop"):
        v = table.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{where}.{key}", v, "a finite number")
    start, stop = table["start"], table["stop"]
    scale = table.get("scale", "linear")
    if scale not in ("linear", "log"):
        raise ConfigError(f"{where}.scale", scale, "'linear' or 'log'")
    if ("num" in table) == ("step" in table):
        raise ConfigError(where, table, "exactly one of num (points, stop included) or step")
    if "num" in table:
        num = table["num"]
        if isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= MAX_AXIS_VALUES:
            raise ConfigError(f"{where}.num", num, f"a whole number in [1, {MAX_AXIS_VALUES}]")
        if scale == "log":
            if start <= 0 or stop <= 0:
                raise ConfigError(where, table, "start > 0 and stop > 0 for scale = 'log'")
            vals = np.geomspace(start, stop, num)
        else:
            vals = np.linspace(start, stop, num)
    else:
        step = table["step"]
        if scale != "linear":
            raise ConfigError(f"{where}.scale", scale, "'linear' with step (use num for 'log')")
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not step or \
                not math.isfinite(step) or (stop - start) * step < 0:
            raise ConfigError(f"{where}.step", step, "a finite non-zero number with the sign "
                                                     "of stop - start")
        count = int(math.floor((stop - start) / step * (1 + 1e-12) + 1e-9)) + 1
        if count > MAX_AXIS_VALUES:
            raise ConfigError(f"{where}.step", step,
                              f"a step giving at most {MAX_AXIS_VALUES} values")
        vals = start + step * np.arange(count)
    out = [float(v) for v in vals]
    if all(isinstance(table[k], int) for k in ("start", "stop")) and \
            isinstance(table.get("step", 1), int) and "num" not in table:
        out = [int(round(v)) for v in out]
    # round away float noise from linspace so TOML/JSON rows read cleanly
    return [float(f"{v:.12g}") if isinstance(v, float) else v for v in out]


# ----------------------------------------------------------------------------- spec ----
@dataclasses.dataclass(frozen=True)
class Axis:
    """One axis: one or more linked fields and the list of their value tuples."""

    fields: tuple[str, ...]
    values: tuple[tuple, ...]


@dataclasses.dataclass(frozen=True)
class PointTask:
    """One unit of work: grid point ``index`` x Monte-Carlo replicate ``replicate``."""

    index: int
    replicate: int
    axes: dict
    seed: int
    spawn_key: tuple
    config_toml: str

    @property
    def key(self) -> tuple[int, int]:
        return (self.index, self.replicate)


@dataclasses.dataclass
class SweepSpec:
    """A parsed, validated sweep specification."""

    evaluator: str
    base: SimConfig
    axes: list[Axis]
    root_seed: int = 0
    seed_count: int = 1
    seed_mode: str = "common"
    model: str = ""
    data: str = ""
    options: dict = dataclasses.field(default_factory=dict)
    name: str = ""
    source: str = ""  # spec text or path, informational

    # ---- grid --------------------------------------------------------------------
    @property
    def n_points(self) -> int:
        return math.prod(len(a.values) for a in self.axes) if self.axes else 1

    @property
    def axis_fields(self) -> list[str]:
        return [f for a in self.axes for f in a.fields]

    def grid(self) -> list[dict]:
        """Axis assignments of every grid point, in row-major order of the axes."""
        combos = itertools.product(*(a.values for a in self.axes)) if self.axes else [()]
        out = []
        for combo in combos:
            point: dict[str, Any] = {}
            for axis, vals in zip(self.axes, combo):
                point.update(zip(axis.fields, vals))
            out.append(point)
        return out

    def seed_for(self, index: int, replicate: int) -> tuple[int, tuple]:
        """The point's seed and its SeedSequence spawn key.

        ``common``: replicate r is child r of ``SeedSequence(root)`` at every point (the same
        simulated chip under every setting: paired comparisons). ``independent``: child r of
        child ``index`` (a fresh chip per point). ``SeedSequence(root, spawn_key=k)`` is exactly
        the child that ``SeedSequence(root).spawn`` hands out at that position, so the result
        does not depend on which worker runs the point or in which order.
        """
        import numpy as np

        key = (replicate,) if self.seed_mode == "common" else (index, replicate)
        ss = np.random.SeedSequence(self.root_seed, spawn_key=key)
        seed = int(ss.generate_state(1, np.uint64)[0]) >> 1  # SimConfig.seed is < 2**63
        return seed, key

    def check_size(self) -> None:
        """Refuse a sweep whose task list (one configuration text per run) would not fit in
        MAX_TASK_BYTES, before anything is built."""
        n_runs = self.n_points * self.seed_count
        per_run = len(self.base.to_toml()) + 200
        if n_runs * per_run > MAX_TASK_BYTES:
            raise ConfigError("axes", f"{self.n_points} points x {self.seed_count} seeds",
                              f"at most {MAX_TASK_BYTES // per_run} runs in one sweep (each "
                              f"keeps its {per_run}-byte configuration; split the sweep)")

    def tasks(self) -> list[PointTask]:
        """Every (point, replicate) with its full validated configuration."""
        out = []
        self.check_size()
        for index, assignment in enumerate(self.grid()):
            # one TOML text per grid point; replicates differ only in the top-level seed line
            text = dataclasses.replace(_apply(self.base, assignment), seed=0).to_toml()
            head, sep, tail = text.partition("\nseed = 0\n")
            if not sep or "[" in head:  # pragma: no cover - tomli_w writes scalars first
                raise RuntimeError("unexpected TOML layout of SimConfig")
            for r in range(self.seed_count):
                seed, key = self.seed_for(index, r)
                out.append(PointTask(index, r, assignment, seed, key,
                                     f"{head}\nseed = {seed}\n{tail}"))
        return out

    def identity(self) -> dict:
        """What must match for a results file to be resumed with this spec (a model file is
        identified by its content, so a retrained model does not mix with old rows)."""
        return {"evaluator": self.evaluator, "model": self.model,
                "model_sha256": _model_digest(self.model), "data": self.data,
                "options": json.loads(json.dumps(self.options, sort_keys=True)),
                "axes": self.axis_fields}


def _model_digest(ref: str) -> str:
    import hashlib

    path = Path(ref) if ref and not ref.startswith("zoo:") else None
    if ref.startswith("zoo:"):
        try:
            from norsim import zoo

            path = zoo.path(ref[4:])
        except Exception:  # noqa: BLE001 - unknown name: the evaluator reports it
            return ""
    if path is None or not path.is_file():
        return ""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _apply(base: SimConfig, assignment: dict) -> SimConfig:
    if not assignment:
        return base
    try:
        return base.with_overrides(assignment)
    except ConfigError as exc:
        raise ConfigError(f"axes.{exc.field}", exc.value, exc.expected) from None


# --------------------------------------------------------------------------- parsing ----
def _flatten_axes(table: dict, prefix: str = "") -> dict[str, Any]:
    """Nested tables (device.read.temperature_k = [...]) -> dotted keys; range tables stay."""
    out: dict[str, Any] = {}

    def add(name: str, value: Any) -> None:
        if name in out:
            raise ConfigError(f"axes.{name}", value, "one definition per field (it is given "
                                                     "both as a quoted key and as a nested table)")
        out[name] = value

    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not (set(value) & RANGE_KEYS):
            for sub, v in _flatten_axes(value, name + ".").items():
                add(sub, v)
        else:
            add(name, value)
    return out


def _parse_axis(name: str, raw: Any, known: dict[str, Any]) -> Axis:
    where = f"axes.{name}"
    fields = tuple(f.strip() for f in name.split(","))
    for f in fields:
        _check_field(f, known, "axes")
    if len(set(fields)) != len(fields):
        raise ConfigError(where, name, "each field at most once")
    if isinstance(raw, dict):
        if len(fields) != 1:
            raise ConfigError(where, raw, "a list of value lists for linked fields")
        values = _expand_range(where, raw)
    elif isinstance(raw, list):
        values = raw
    else:
        raise ConfigError(where, raw, "a list of values or a range table {start, stop, num|step}")
    if not values:
        raise ConfigError(where, raw, "at least one value")
    tuples = []
    for i, v in enumerate(values):
        if len(fields) == 1:
            tup = (v,)
        else:
            if not isinstance(v, list) or len(v) != len(fields):
                raise ConfigError(f"{where}[{i}]", v, f"a list of {len(fields)} values "
                                                      f"({', '.join(fields)})")
            tup = tuple(v)
        tuples.append(tuple(_axis_value(f, x, known[f]) for f, x in zip(fields, tup)))
    if len(set(map(repr, tuples))) != len(tuples):
        raise ConfigError(where, values, "distinct values (a value is repeated)")
    return Axis(fields, tuple(tuples))


def _table(data: dict, name: str) -> dict:
    t = data.get(name, {})
    if not isinstance(t, dict):
        raise ConfigError(f"spec {name}", t, "a table")
    allowed = _TABLES[name]
    if allowed is not None:
        for key in t:
            if key not in allowed:
                raise ConfigError(f"spec {name}.{key}", t[key],
                                  f"a known key of [{name}] ({', '.join(sorted(allowed))})")
    return t


def _string(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(where, value, "a string")
    return value


def _whole(where: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(where, value, f"a whole number in [{lo}, {hi}]")
    return value


def _local_path(ref: str, base_dir: Path | None) -> str:
    """A model/data reference naming a file or folder next to the spec, made absolute."""
    if not ref or ":" in ref or base_dir is None or Path(ref).is_absolute():
        return ref
    candidate = base_dir / ref
    return str(candidate.resolve()) if candidate.exists() else ref


def spec_from_dict(data: dict, base_dir: Path | None = None, source: str = "") -> SweepSpec:
    """Build and validate a :class:`SweepSpec` from a parsed TOML table."""
    if not isinstance(data, dict):
        raise ConfigError("spec", data, "a table")
    for key in data:
        if key not in _TABLES:
            raise ConfigError(f"spec {key}", data[key],
                              f"a known table ({', '.join(_TABLES)})")
    sweep_t, base_t, seeds_t = _table(data, "sweep"), _table(data, "base"), _table(data, "seeds")
    axes_t, options = _table(data, "axes"), _table(data, "options")

    if "evaluator" not in sweep_t:
        raise ConfigError("spec sweep.evaluator", None, "the name of an evaluator, e.g. 'device'")
    evaluator = _string("spec sweep.evaluator", sweep_t["evaluator"])
    from norsim.experiments.evaluators import resolve_target

    resolve_target(evaluator)  # unknown names fail now, import problems at run time

    if "preset" in base_t and "config" in base_t:
        raise ConfigError("spec base", base_t, "either preset or config, not both")
    if "config" in base_t:
        path = Path(_string("spec base.config", base_t["config"]))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        base = SimConfig.load(path)
    else:
        base = load_preset(_string("spec base.preset", base_t.get("preset", "nor40")))
    overrides = base_t.get("set", [])
    if not isinstance(overrides, list) or not all(isinstance(s, str) for s in overrides):
        raise ConfigError("spec base.set", overrides, "a list of 'field.path=value' strings")
    if overrides:
        base = base.with_overrides(overrides)

    root = _whole("spec seeds.root", seeds_t.get("root", base.seed), 0, 2**63 - 1)
    count = _whole("spec seeds.count", seeds_t.get("count", 1), 1, 100_000)
    mode = seeds_t.get("mode", "common")
    if mode not in SEED_MODES:
        raise ConfigError("spec seeds.mode", mode, "one of " + ", ".join(map(repr, SEED_MODES)))

    known = leaf_fields(SimConfig)
    axes = [_parse_axis(name, raw, known) for name, raw in _flatten_axes(axes_t).items()]
    seen: set[str] = set()
    for a in axes:
        for f in a.fields:
            if f in seen:
                raise ConfigError("axes", f, "each field on one axis only")
            seen.add(f)
    spec = SweepSpec(evaluator=evaluator, base=base, axes=axes, root_seed=root,
                     seed_count=count, seed_mode=mode,
                     model=_local_path(_string("spec sweep.model", sweep_t.get("model", "")),
                                       base_dir),
                     data=_local_path(_string("spec sweep.data", sweep_t.get("data", "")),
                                      base_dir),
                     options=dict(options), name=_string("spec sweep.name", sweep_t.get("name", "")),
                     source=source)
    if spec.n_points * count > MAX_POINTS:
        raise ConfigError("axes", f"{spec.n_points} points x {count} seeds",
                          f"at most {MAX_POINTS} runs in one sweep")
    spec.check_size()
    # every axis value must give a valid configuration: check each value on its own (cheap,
    # names the culprit) -- cross-field consistency is checked when the tasks are built
    for a in axes:
        for vals in a.values:
            _apply(base, dict(zip(a.fields, vals)))
    return spec


def load_spec(path_or_text: str | Path) -> SweepSpec:
    """Read a spec from a TOML file (relative paths inside resolve against its folder)."""
    path = Path(path_or_text)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError("spec", str(path), f"a readable TOML file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("spec", str(path), f"a UTF-8 TOML text file (byte "
                         f"0x{raw[exc.start]:02x} at offset {exc.start} is not text)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"spec {path}", str(exc), "valid TOML") from None
    return spec_from_dict(data, base_dir=path.parent, source=str(path))


def as_spec(spec: "SweepSpec | dict | str | Path") -> SweepSpec:
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, dict):
        return spec_from_dict(spec)
    return load_spec(spec)
