"""Exceptions that name the file, field and value at fault, so a user can fix the input without a debugger."""

from __future__ import annotations

from os import PathLike

__all__ = [
    "CheckpointError",
    "ConfigError",
    "EcgscaleError",
    "RecordError",
    "StudyError",
]


class EcgscaleError(Exception):
    """Base of every error ecgscale raises on purpose; the CLI prints these without a traceback."""


class RecordError(EcgscaleError, ValueError):
    """An ECG record (or one of its files) cannot be read or is not valid.

    ``reason`` is a short machine-friendly tag (``"missing_signal"``, ``"truncated"``, ...) used to count
    skips by reason in summaries; the message always starts with the path.
    """

    def __init__(self, path: str | PathLike[str], problem: str, *, reason: str = "invalid", field: str | None = None):
        self.path = str(path)
        self.problem = problem
        self.reason = reason
        self.field = field
        where = f"{self.path} [{field}]" if field else self.path
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):  # keep the keyword arguments across process boundaries (multiprocessing)
        return (_rebuild_record_error, (self.path, self.problem, self.reason, self.field))


def _rebuild_record_error(path: str, problem: str, reason: str, field: str | None) -> RecordError:
    return RecordError(path, problem, reason=reason, field=field)


class ConfigError(EcgscaleError, ValueError):
    """A configuration value (argument, config file key, grid entry) is invalid."""

    def __init__(self, problem: str, *, file: str | PathLike[str] | None = None, key: str | None = None):
        self.problem = problem
        self.file = None if file is None else str(file)
        self.key = key
        prefix = ""
        if self.file:
            prefix += f"{self.file}: "
        if key:
            prefix += f"{key}: "
        super().__init__(prefix + problem)


class CheckpointError(EcgscaleError):
    """A run directory or checkpoint is missing, corrupt, or was not written by ecgscale."""


class StudyError(EcgscaleError):
    """A study cannot be created, resumed or analysed as asked (storage, grid or data mismatch)."""
