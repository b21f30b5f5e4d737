"""Domain errors and exit codes. No click here: the CLI edge turns these into messages."""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NO_FIT = 3


class PlannerError(Exception):
    """An error a user can act on: one line of message, an optional hint."""

    exit_code = Exit.ERROR

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(PlannerError):
    """Bad arguments (exit 2)."""

    exit_code = Exit.USAGE


class CatalogError(PlannerError):
    """Invalid shipped or user data; the message names file, entry and field."""


class MachineFileError(PlannerError):
    """An unreadable or invalid machine file; the message names file and field."""


class ModelFileError(PlannerError):
    """A model file or directory that cannot be read or sized; the message names the file and field."""
