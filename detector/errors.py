"""Exceptions raised by burnrate, and the ``Problem`` record that rule errors carry.

Callers catch ``BurnrateError`` to handle any product error in one place and let
programming errors (``TypeError``, ``KeyError``, ...) propagate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding in a rule file, located by file, line and column.

    ``line`` and ``column`` are 1-based. ``line`` is 0 when the finding concerns the
    file or folder as a whole, and ``field`` is then usually empty. ``field`` is a
    dotted path such as ``rules[2].window``.
    """

    path: Path
    line: int
    column: int
    field: str
    message: str
    severity: Severity

    def __str__(self) -> str:
        where = str(self.path)
        if self.line > 0:
            where = f"{where}:{self.line}:{self.column}"
        field = f"{self.field}: " if self.field else ""
        return f"{where}: {self.severity}: {field}{self.message}"


class BurnrateError(Exception):
    """Base class of every error that burnrate raises on purpose."""


class RuleError(BurnrateError):
    """Invalid rule files: ``problems`` lists every error found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        lines = [f"{count} problem{'s' if count != 1 else ''} in rule files:"]
        lines.extend(str(problem) for problem in problems)
        super().__init__("\n".join(lines))
