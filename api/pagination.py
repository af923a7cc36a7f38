"""Cursor pagination for every list: stable under inserts, constant cost per page."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Model, QuerySet
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from .exceptions import CursorInvalid


class NewestFirstCursor(CursorPagination):
    """Newest first by id; `?page_size=` up to 100, opaque `next`/`previous` links.

    A cursor the API did not give out (not base64, not a cursor, or a position that is not a
    value of the ordering field, e.g. a date where an id goes) is refused with 400
    `pagination.cursor_invalid` before it reaches the query.
    """

    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100
    ordering = "-id"

    model: type[Model] | None = None

    def paginate_queryset(
        self, queryset: QuerySet, request: Request, view: Any = None
    ) -> list | None:
        self.model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound as error:  # DRF's answer to an undecodable cursor
            raise CursorInvalid() from error
        if cursor is not None and cursor.position is not None:
            self._check_position(cursor.position)
        return cursor

    def _check_position(self, position: str) -> None:
        """The position must be a value of the first ordering field, as the query will use it."""
        if self.model is None:
            return
        ordering = self.ordering if isinstance(self.ordering, str) else self.ordering[0]
        try:
            field = self.model._meta.get_field(ordering.lstrip("-"))
        except FieldDoesNotExist:  # an annotation: nothing to check it against
            return
        try:
            field.get_prep_value(field.to_python(position))
        except (ValidationError, TypeError, ValueError, OverflowError) as error:
            raise CursorInvalid() from error


class SequenceCursor(NewestFirstCursor):
    """Audit events of a tenant chain, newest first by their position in the chain."""

    ordering = "-seq"
