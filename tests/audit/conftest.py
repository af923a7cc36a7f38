"""Fixtures of the checkpoint tests: trusted keys, a signer, two stores, the settings that
name them, a tenant with a few events."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from audit.checkpoints import DirectoryStore, Ed25519KeySigner

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


@pytest.fixture
def stores(tmp_path) -> list[DirectoryStore]:
    return [DirectoryStore(tmp_path / "worm", "worm"), DirectoryStore(tmp_path / "offsite", "off")]


@pytest.fixture
def configured(settings, stores, trusted, signer, tmp_path):
    """The settings a deployment has: the key in a file, trusted keys, two stores."""
    key_file = tmp_path / "signing-key.pem"
    key_file.write_bytes(
        signer._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    settings.AUDIT_SIGNING_KEY_FILE = str(key_file)
    settings.AUDIT_TRUSTED_KEYS = [str(trusted)]
    settings.AUDIT_CHECKPOINT_STORES = [
        {"CLASS": "audit.checkpoints.DirectoryStore", "OPTIONS": {"path": str(s.path)}}
        for s in stores
    ]
    return settings
