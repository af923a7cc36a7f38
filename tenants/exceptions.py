"""Typed domain refusals: a stable machine `code` and a message a person understands."""

from __future__ import annotations

from django.http import Http404


class DomainError(Exception):
    """Base of every refusal a service can give; views map it to a 4xx with its code."""

    code = "domain.error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field_errors: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.field_errors = field_errors or {}


class PolicyDenied(DomainError):
    code = "policy.denied"


class InvalidInput(DomainError):
    code = "input.invalid"


class StepUpFailed(DomainError):
    code = "stepup.failed"


class CrossTenantNotFound(Http404):
    """A 404 for an object that may exist in another tenant; the view records the attempt."""

    def __init__(self, model_label: str, pk: object) -> None:
        super().__init__("Not found.")
        self.model_label = model_label
        self.pk = pk
