"""Comparing rendered pages: two answers that must not be told apart (a 404 for another tenant's
object and for a missing one, a used link and an unknown one)."""

from __future__ import annotations

import re


def page(response) -> str:
    """The body without what differs on every render: the CSRF masks (forms and the htmx header)
    and the language menu's return address, which echoes the requested path."""
    body = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())
    body = re.sub(r'name="next" value="[^"]*"', "", body)
    return re.sub(r'"X-CSRFToken": "[^"]+"', "", body)
