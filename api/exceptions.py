"""API-level refusals with stable codes (domain refusals come from the services)."""

from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException


class ScopeMissing(APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "auth.scope_missing"
    default_detail = "This API key lacks the scope this operation needs."


class StaffOnly(APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "auth.staff_only"
    default_detail = "Only a signed-in staff member can do this; API keys cannot."


class PreconditionFailed(APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_code = "case.etag_mismatch"
    default_detail = "The case changed since you read it (If-Match does not match its ETag)."


class IdempotencyInProgress(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency.in_progress"
    default_detail = "A request with this Idempotency-Key is still being processed; retry later."


class IdempotencyKeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency.key_reused"
    default_detail = "This Idempotency-Key was already used with a different request body."


class IdempotencyKeyInvalid(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "idempotency.key_invalid"
    default_detail = "An Idempotency-Key must be 1 to 255 printable ASCII characters."


class CursorInvalid(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "pagination.cursor_invalid"
    default_detail = _(
        "This cursor is not one the API gave out: follow the next and previous links as they "
        "are, or start again without a cursor."
    )
