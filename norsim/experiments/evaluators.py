"""The evaluator interface: one sweep point in, a dict of metrics out.

An evaluator is a plain function ``evaluate(point: Point) -> dict[str, float]``. It receives
the point's *full* configuration (the base configuration with the axis values applied and
``seed`` set to the point's Monte-Carlo seed), the model and data references of the spec
and the spec's ``[options]`` table. It draws every random number from
``point.config.rng(...)`` (or ``point.rng(...)``), so the same point gives the same metrics
on any worker, in any order.

Metrics are finite real numbers (bools and ints are fine). A metric that is a proportion
measured on ``n`` samples (an accuracy on n test images, an error rate over n cells)
reports its sample count as a companion metric ``<name>_n``; ``norsim plot`` then draws the
test-sampling (Wilson) interval of that metric separately from the chip-to-chip band.
An evaluator signals a bad point by raising; the sweep records the error and goes on.
An evaluator module may also define ``check_spec(spec, tasks)``: it runs once before the
first point (and in ``norsim sweep --dry-run``) and raises for anything that would make every
point fail (bad options, a missing model or data set, a layer that does not fit the array).

Evaluators are registered by name as ``"package.module:function"`` targets, imported in the
worker process when first needed (so registration works with spawned processes and Dask
workers alike). A spec may also name a target directly.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

from norsim.errors import ConfigError

# name -> "module:function"
_REGISTRY: dict[str, str] = {
    "device": "norsim.experiments.device_eval:evaluate",
    "accuracy": "norsim.experiments.accuracy_eval:evaluate",
    "test": "norsim.experiments.testing:evaluate",
    "test-env": "norsim.experiments.testing:evaluate_env",
}


@dataclasses.dataclass(frozen=True)
class Point:
    """Everything an evaluator gets for one (grid point, Monte-Carlo replicate)."""

    index: int                 # grid point (row-major over the spec's axes)
    replicate: int             # Monte-Carlo replicate (simulated chip) 0..count-1
    axes: dict                 # {dotted field: value} of this grid point
    config: Any                # norsim.config.sim.SimConfig, seed already set
    seed: int                  # == config.seed
    spawn_key: tuple           # SeedSequence spawn key of the seed under the root seed
    model: str = ""            # the spec's model reference ("" if none)
    data: str = ""             # the spec's data reference ("" if none)
    options: dict = dataclasses.field(default_factory=dict)  # the spec's [options]

    def rng(self, *stream: int):
        """A numpy Generator for a named sub-stream of this point's seed."""
        return self.config.rng(*stream)


def register_evaluator(name: str, target: str) -> None:
    """Register ``target`` ("package.module:function") under ``name`` (this process only;
    spawned workers resolve the target string, so pass a target, not a function)."""
    if ":" not in target:
        raise ConfigError("evaluator target", target, "'package.module:function'")
    _REGISTRY[name] = target


def evaluator_names() -> list[str]:
    return sorted(_REGISTRY)


def resolve_target(name: str) -> str:
    """The import target of a registered name (or of a direct 'module:function')."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return name
    raise ConfigError("spec sweep.evaluator", name,
                      "a registered evaluator (" + ", ".join(evaluator_names()) +
                      ") or 'package.module:function'")


def check_importable(name_or_target: str) -> None:
    """Fail early (without importing it) if the evaluator's module cannot be found."""
    import importlib.util

    target = resolve_target(name_or_target)
    module_name = target.partition(":")[0]
    try:
        found = importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError("spec sweep.evaluator", name_or_target,
                          f"an evaluator whose module exists ({module_name} is not installed)")


def check_spec(spec, tasks) -> None:
    """Everything a run of ``spec`` needs, checked up front (by ``norsim sweep`` before the
    first point and by ``--dry-run``): the evaluator module exists and, when it defines
    ``check_spec(spec, tasks)``, that function's checks (options, model, data, array fit).
    A failure raises the one-line error every point would otherwise record."""
    check_importable(spec.evaluator)
    target = resolve_target(spec.evaluator)
    module_name = target.partition(":")[0]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("spec sweep.evaluator", spec.evaluator,
                          f"an importable evaluator ({target}: {exc})") from None
    fn = getattr(module, "check_spec", None)
    if callable(fn):
        fn(spec, tasks)


def load_evaluator(name_or_target: str) -> Callable[[Point], dict]:
    """Import the evaluator function; a missing module names the evaluator."""
    target = resolve_target(name_or_target)
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("spec sweep.evaluator", name_or_target,
                          f"an importable evaluator ({target}: {exc})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError("spec sweep.evaluator", name_or_target,
                          f"a function {attr} in {module_name}")
    return fn
