"""One error type for everything a user can get wrong.

The CLI catches `CometError` (and xDSL's parse/verify errors) and prints exactly one
`file:line:col: error: message` line, then exits non-zero. Library code raises it with as
much location as it knows; a YAML path (e.g. ``Hierarchy[0].connects[1].attributes.bw``)
goes into ``where``.
"""
from __future__ import annotations

import os


class CometError(Exception):
    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 col: int | None = None, where: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        self.where = where

    def located(self, default_file: str | None = None) -> str:
        loc = self.file or default_file or "<input>"
        if self.line is not None:
            loc += f":{self.line}"
            if self.col is not None:
                loc += f":{self.col}"
        msg = self.message
        if self.where:
            msg = f"{self.where}: {msg}"
        return f"{loc}: error: {msg}"

    def __str__(self) -> str:
        return self.located()


def env_int(name: str, default: int, low: int = 0, what: str = "comet_ir") -> int:
    """An integer knob from the environment (experiments, variant builds): unset or empty gives
    `default`; anything but an integer >= `low` is a user error naming the variable."""
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        v = int(raw)
    except ValueError:
        v = low - 1
    if v < low:
        raise CometError(f"{what}: environment variable {name} must be an integer >= {low} (got {raw!r})")
    return v
