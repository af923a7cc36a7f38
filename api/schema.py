"""OpenAPI details drf-spectacular cannot infer: the key scheme and the shared error responses."""

from __future__ import annotations

import inspect
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message", "errors"],
    "properties": {
        "code": {"type": "string", "description": "Stable machine-readable reason."},
        "message": {"type": "string", "description": "What went wrong, for a person."},
        "errors": {
            "type": "object",
            "description": "Per field (dotted for nested input): what is wrong with it.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}
ERROR_RESPONSES = {
    "400": "The input (or a pagination cursor) is invalid; `errors` says which field and why.",
    "401": "No credentials, or an unknown, expired or revoked API key.",
    "403": "Not allowed: missing scope or role, a policy refusal, or an AI-assistant block.",
    "404": "No such object in this tenant (another tenant's object looks the same).",
    "405": "This method is not offered on this path.",
    "406": "The Accept header asks for a format this operation cannot give.",
    "409": "The object is not in a state for this, or the Idempotency-Key is still in use.",
    "412": "If-Match does not match the current ETag: reload and retry.",
    "415": "The request body's content type is not accepted here.",
    "422": "The Idempotency-Key was already used with a different request.",
    "429": "Too many requests; wait for the seconds in Retry-After.",
    "503": "Not possible right now (e.g. a read of the trail could not be recorded): try later.",
}


class ApiAutoSchema(AutoSchema):
    """Descriptions come from a view's own docstring, never one inherited from a base class."""

    def get_description(self) -> str:
        return inspect.cleandoc(type(self.view).__dict__.get("__doc__") or "")


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A tenant API key: `Authorization: Bearer vsk_<prefix>_<secret>`.",
        }


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.StaffSessionAuthentication"
    name = "staffSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "A verified staff session (password + TOTP); send X-CSRFToken.",
        }


def add_error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook: the Error component and every error status on every operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_RESPONSES.items():
                responses.setdefault(
                    status,
                    {"description": description, "content": {"application/json": {"schema": ref}}},
                )
            responses["429"].setdefault(
                "headers",
                {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}},
            )
    return result
