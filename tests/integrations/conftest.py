"""The receivers of these tests listen on 127.0.0.1 over http: the test settings allow that
(WEBHOOK_ALLOW_PRIVATE_ADDRESSES); tests of the production guard turn it off themselves."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .hooks import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()
