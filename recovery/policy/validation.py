"""One entry point: source text in, a document that passed syntax, schema and floors out."""

from __future__ import annotations

import hashlib
from functools import lru_cache

from .document import ParsedDocument, parse
from .errors import PolicyInvalid
from .floors import floor_errors
from .schema import schema_errors


def source_sha256(text: str) -> str:
    """The hex SHA-256 of a policy source as stored (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def validate(text: str) -> ParsedDocument:
    """Parse and check `text`; raise PolicyInvalid listing every problem with path and line.

    Schema problems are reported first and alone: floors are only meaningful on a document of
    the right shape.
    """
    doc = parse(text)
    errors = schema_errors(doc) or floor_errors(doc)
    if errors:
        raise PolicyInvalid(errors)
    return doc


@lru_cache(maxsize=64)
def validated(text: str) -> ParsedDocument:
    """`validate` memoised by source text, for reading active policies on every case."""
    return validate(text)
