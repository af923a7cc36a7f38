"""A session-wide OpenLDAP server (Debian's slapd) for the LDAP connector tests, and a webhook
receiver for the webhook connector's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ...integrations.hooks import Receiver
from ...ldap_server import INSTALL_HINT, LdapServer


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LdapServer]:
    try:
        server = LdapServer.start(tmp_path_factory.mktemp("slapd"))
    except FileNotFoundError:
        pytest.fail(INSTALL_HINT, pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP endpoint on 127.0.0.1 (the webhook tests' receiver)."""
    server = Receiver()
    try:
        yield server
    finally:
        server.close()
