"""Fixtures of the checkpoint tests: trusted keys, a signer, a tenant with a few events."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.checkpoints import Ed25519KeySigner

from ..factories import make_tenant
from .checkpointing import add_events, new_signer


@pytest.fixture
def trusted(tmp_path) -> Path:
    """The folder of public keys verification trusts (AUDIT_TRUSTED_KEYS)."""
    return tmp_path / "trusted"


@pytest.fixture
def signer(trusted) -> Ed25519KeySigner:
    return new_signer(trusted)


@pytest.fixture
def tenant(db):
    """A tenant whose chain holds seq 1 (tenant.created) to 6."""
    tenant = make_tenant()
    add_events(tenant, 5)
    return tenant
