"""Helpers of the checkpoint tests: a fresh signing key, events to sign, a signing run."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import transaction

from audit.checkpoints import Ed25519KeySigner, SigningRun, checkpoints_sign
from audit.context import Actor
from audit.services import record

SYSTEM = Actor.system("test")


def new_signer(trusted: Path) -> Ed25519KeySigner:
    """A fresh key, its public half written to the trusted folder."""
    key = Ed25519PrivateKey.generate()
    signer = Ed25519KeySigner(key)
    trusted.mkdir(exist_ok=True)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (trusted / f"{signer.key_id.replace(':', '-')}.pem").write_bytes(public)
    return signer


def add_events(tenant, count: int) -> None:
    with transaction.atomic():
        for n in range(count):
            record(action="audit.verified", actor=SYSTEM, tenant=tenant, data={"n": n})


def sign(signer, stores, tenant=None) -> SigningRun:
    chains = None if tenant is None else [f"tenant:{tenant.pk}"]
    return checkpoints_sign(actor=SYSTEM, signer=signer, stores=stores, chains=chains)
