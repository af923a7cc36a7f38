"""Helpers of the audit tests: a fresh signing key, events to sign, a signing run, and how the
chain walk reads a tenant's rows."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import transaction

from audit.checkpoints import Ed25519KeySigner, SigningRun, checkpoints_sign
from audit.context import Actor
from audit.services import record
from audit.verify import _fast_confirms, _line_confirms, chain_lines, needs_unescaping

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


def lines_unconfirmed(tenant) -> tuple[list[int], list[int]]:
    """Seqs of the tenant's intact rows whose COPY line the walk's exact path (`_line_confirms`)
    and its fast path (`_fast_confirms`, for lines with nothing to unescape and no quote in a
    text field) do not confirm."""
    tenant_json = str(tenant.pk).encode()
    exact, fast = [], []
    with transaction.atomic():
        for lines in chain_lines(tenant.pk):
            for line in lines:
                fields = line.split(b"\t")
                seq = int(fields[1])
                if _line_confirms(tenant.pk, seq, fields) is not True:
                    exact.append(seq)
                plain = line.count(b'"') == fields[3].count(b'"')  # no quote in a text field
                plain = plain and not needs_unescaping(line)
                if plain and not _fast_confirms(tenant_json, fields):
                    fast.append(seq)
    return exact, fast
