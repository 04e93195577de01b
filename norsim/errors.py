"""Exceptions that name the field, the value and what was expected."""

from __future__ import annotations


class NorsimError(Exception):
    """Base class of every error norsim raises on purpose (the CLI prints it in one line)."""


class ConfigError(NorsimError, ValueError):
    """A configuration field has a bad value, or an unknown key was given."""

    def __init__(self, field: str, value: object, expected: str):
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field} = {value!r}: expected {expected}")


class InputError(NorsimError, ValueError):
    """An array argument has the wrong shape, dtype, range, or holds NaN/inf."""

    def __init__(self, field: str, value: object, expected: str):
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field} = {value}: expected {expected}")


class FileFormatError(NorsimError, ValueError):
    """A model, data or map file is unreadable, truncated, corrupt or inconsistent."""


class ConvergenceError(NorsimError, RuntimeError):
    """An iterative solver did not converge."""


class ExternalToolError(NorsimError, RuntimeError):
    """An external program (e.g. ngspice) is missing or failed."""


class NorsimWarning(UserWarning):
    """Base class of norsim's warnings: a result is computed but may mislead."""


class DegenerateResultWarning(NorsimWarning):
    """Outputs are degenerate: saturated columns, constant or all-zero outputs, a clamped
    full scale. The message gives the numbers."""
