"""Problems found in a policy document, each pointing at a path and a line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tenants.exceptions import InvalidInput


@dataclass(frozen=True)
class PolicyError:
    """One problem: where it is (`path` like `$.tiers.T1.min_signal_classes`, 1-based `line`),
    what is wrong, and the rule it breaks (`R-16.T1.min_signal_classes`, `schema.type`, …)."""

    path: str
    line: int
    message: str
    rule: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.path}: {self.message} [{self.rule}]"

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "message": self.message, "rule": self.rule}


class PolicyInvalid(InvalidInput):
    """A policy document that cannot be stored or activated; `errors` lists every problem."""

    code = "policy.invalid"

    def __init__(self, errors: list[PolicyError]) -> None:
        first = errors[0] if errors else None
        count = len(errors)
        message = f"The policy has {count} problem{'s' if count != 1 else ''}"
        message += f"; first: {first}" if first else "."
        field_errors: dict[str, list[str]] = {}
        for error in errors:
            field_errors.setdefault(error.path, []).append(
                f"line {error.line}: {error.message} [{error.rule}]"
            )
        super().__init__(message, field_errors=field_errors)
        self.errors = errors

    @property
    def rules(self) -> list[str]:
        """The rule ids broken, in document order."""
        return [error.rule for error in self.errors]
