"""Facts read once per request: an actor's access (`tenants.access`) and a tenant's active
policy (`recovery.policy.selectors`).

A request's entry point (the API's dispatch, the console's tenant views) opens a memo with
`request_memo()`; inside it, `remembered((kind, id), read)` reads a fact the first time and
answers from memory after. Outside a request (services called by tasks, commands or tests)
nothing is remembered: every call reads. A service that changes a remembered fact calls
`forget(kind)` so the rest of its request reads the new one.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_memo: contextvars.ContextVar[dict[tuple[str, Hashable], Any] | None] = contextvars.ContextVar(
    "vouchsafe_request_memo", default=None
)


@contextmanager
def request_memo() -> Iterator[None]:
    """Remember facts for the duration of one request."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def remembered(kind: str, key: Hashable, read: Callable[[], T]) -> T:
    """`read()` once per request for (`kind`, `key`); every time outside a request."""
    memo = _memo.get()
    if memo is None:
        return read()
    if (kind, key) not in memo:
        memo[(kind, key)] = read()
    return memo[(kind, key)]


def forget(kind: str) -> None:
    """Drop every remembered fact of `kind`: the request changed it."""
    memo = _memo.get()
    if memo is not None:
        for stale in [entry for entry in memo if entry[0] == kind]:
            del memo[stale]
