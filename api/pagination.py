"""Cursor pagination for every list: stable under inserts, constant cost per page."""

from rest_framework.pagination import CursorPagination


class NewestFirstCursor(CursorPagination):
    """Newest first by id; `?page_size=` up to 100, opaque `next`/`previous` links."""

    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100
    ordering = "-id"


class SequenceCursor(NewestFirstCursor):
    """Audit events of a tenant chain, newest first by their position in the chain."""

    ordering = "-seq"
