"""Evidence bundles: a signed zip an outsider checks with `verifier/vouchsafe_verify.py`.

The generic half of a bundle lives here; what a subject (a recovery case) adds lives with it
(`recovery.bundle`). A bundle holds:

- `events.jsonl`: the subject's events, each with exactly the hashed fields and its hash;
- `chain.jsonl`: every row of the chain from the subject's first event to the seq of a signed
  checkpoint at or after its last event, so each hash and each link can be recomputed;
- `checkpoints/<seq>.json`: that checkpoint, as a store keeps it;
- `keys/<key id>.pem`: the public keys of the checkpoint and of the manifest (for a verifier
  that has no trusted copy: that proves integrity only, not origin);
- the subject's own files, then `manifest.json` (every file's sha256, the chain, the checkpoint
  seq, the subject rule, the time, the key id) and `manifest.sig` (base64 Ed25519 signature of
  the manifest's bytes by the checkpoint signer).

The checkpoint is looked up in the configured stores; when none covers the last event yet, one
is signed on demand (`checkpoint_covering`). Signing commits its own record
(`audit.checkpoint_signed`) and publishes a head already committed: call it outside the
transaction that reads the bundle's rows and records the download.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization

from .chain import HASHED_FIELDS, chain_key
from .checkpoints import (
    Checkpoint,
    CheckpointError,
    CheckpointSigner,
    CheckpointStore,
    canonical_bytes,
    checkpoints_sign,
    signer_load,
    stores_load,
    trusted_keys,
)
from .context import Actor
from .models import AuditEvent
from .selectors import hashed_time

BUNDLE_FORMAT = "vouchsafe-bundle/1"
MANIFEST, MANIFEST_SIG = "manifest.json", "manifest.sig"
ROW_FIELDS: tuple[str, ...] = (*HASHED_FIELDS, "hash")
BUNDLE_SIGNER = Actor.system("evidence-bundle")


class BundleUnavailable(Exception):
    """A bundle cannot be made now (no checkpoint, no trusted key, no events); `code` says
    which. Nothing is handed out."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SubjectRule:
    """Which events of a chain are about the subject: its target, or `data[data_key]` naming
    it. The verifier applies the same rule to `chain.jsonl` (it is written in the manifest)."""

    target_type: str
    target_id: str
    data_key: str

    def matches(self, row: dict[str, Any]) -> bool:
        if row["target_type"] == self.target_type and row["target_id"] == self.target_id:
            return True
        data = row["data"] if isinstance(row["data"], dict) else {}
        return self.data_key in data and str(data[self.data_key]) == self.target_id

    def as_data(self) -> dict[str, str]:
        return {
            "target_type": self.target_type,
            "target_id": self.target_id,
            "data_key": self.data_key,
        }


def jsonl(rows: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(canonical_bytes(row) + b"\n" for row in rows)


def row_of(values: dict[str, Any]) -> dict[str, Any]:
    """One chain row as a bundle writes it: the hashed fields, `created_at` as hashed, hash."""
    row = {name: values[name] for name in ROW_FIELDS}
    row["created_at"] = hashed_time(values["created_at"])
    return row


def chain_rows(tenant_id: int, first: int, last: int) -> list[dict[str, Any]]:
    """Rows `first`…`last` of the tenant's chain, in seq order."""
    rows = (
        AuditEvent.objects.filter(tenant_id=tenant_id, seq__gte=first, seq__lte=last)
        .order_by("seq")
        .values(*ROW_FIELDS)
    )
    return [row_of(values) for values in rows]


def _stored_at_or_after(stores: list[CheckpointStore], chain: str, seq: int) -> Checkpoint | None:
    """The chain's earliest checkpoint at or after `seq` in any store (shortest proof)."""
    best: tuple[int, CheckpointStore] | None = None
    for store in stores:
        try:
            covering = [s for s in store.seqs(chain) if s >= seq]
        except OSError:
            continue
        if covering and (best is None or covering[0] < best[0]):
            best = (covering[0], store)
    if best is None:
        return None
    try:
        return best[1].get(chain, best[0])
    except (CheckpointError, OSError):
        return None


def checkpoint_covering(
    chain: str,
    seq: int,
    *,
    stores: list[CheckpointStore] | None = None,
    signer: CheckpointSigner | None = None,
) -> Checkpoint:
    """A signed checkpoint of `chain` at or after `seq`: a stored one, else one signed now."""
    try:
        stores = stores if stores is not None else stores_load()
        found = _stored_at_or_after(stores, chain, seq)
        if found is None:
            checkpoints_sign(actor=BUNDLE_SIGNER, signer=signer, stores=stores, chains=[chain])
            found = _stored_at_or_after(stores, chain, seq)
    except CheckpointError as error:
        raise BundleUnavailable("bundle.no_checkpoint", _no_checkpoint(str(error))) from error
    if found is None:
        raise BundleUnavailable("bundle.no_checkpoint", _no_checkpoint("no store kept one"))
    return found


def _no_checkpoint(reason: str) -> str:
    return (
        "The evidence bundle needs a signed checkpoint of the chain after the case's last "
        f"event, and none could be made ({reason}). Try again later or ask an audit admin."
    )


def public_key_pem(key_id: str) -> bytes:
    """The trusted public key with this id, as SPKI PEM (refused when it is not trusted)."""
    key = trusted_keys().get(key_id)
    if key is None:
        raise BundleUnavailable(
            "bundle.key_not_trusted",
            f"The key {key_id} is not among the trusted keys (AUDIT_TRUSTED_KEYS), so a bundle "
            "signed with it could not be checked. Ask an audit admin to list it.",
        )
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_file_name(key_id: str) -> str:
    return f"keys/{key_id.replace(':', '-')}.pem"


@dataclass(frozen=True)
class ChainProof:
    """The subject's events and the rows that link them to a signed checkpoint."""

    chain: str
    events: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    checkpoint: Checkpoint


def chain_proof(
    *, tenant_id: int, rule: SubjectRule, first: int, checkpoint: Checkpoint
) -> ChainProof:
    """Rows `first`… of the tenant's chain up to `checkpoint` (`checkpoint_covering`), and the
    events among them that `rule` picks (all of them, also those written since it was signed
    for the subject's last event)."""
    rows = chain_rows(tenant_id, first, checkpoint.seq)
    events = [row for row in rows if rule.matches(row)]
    return ChainProof(chain=chain_key(tenant_id), events=events, rows=rows, checkpoint=checkpoint)


@dataclass
class BundleWriter:
    """Files of a bundle by name; `seal` adds the signed manifest and zips them."""

    files: dict[str, bytes] = field(default_factory=dict)

    def add(self, name: str, content: bytes) -> None:
        if name in self.files or name in (MANIFEST, MANIFEST_SIG):
            raise ValueError(f"{name} is in the bundle already")
        self.files[name] = content

    def add_json(self, name: str, value: Any) -> None:
        self.add(name, canonical_bytes(value) + b"\n")

    def add_proof(self, proof: ChainProof) -> None:
        self.add("events.jsonl", jsonl(proof.events))
        self.add("chain.jsonl", jsonl(proof.rows))
        self.add(f"checkpoints/{proof.checkpoint.seq}.json", proof.checkpoint.to_bytes())

    def seal(
        self,
        meta: dict[str, Any],
        *,
        signer: CheckpointSigner | None = None,
        key_ids: Iterable[str] = (),
    ) -> tuple[bytes, str]:
        """The zip and its manifest's sha256. The manifest names every file with its sha256,
        `meta` and the signer's key id; the signer's and `key_ids`' public keys are added."""
        signer = signer or signer_load()
        for key_id in sorted({signer.key_id, *key_ids}):
            self.add(key_file_name(key_id), public_key_pem(key_id))
        manifest = {
            "format": BUNDLE_FORMAT,
            **meta,
            "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "key_id": signer.key_id,
            "files": {
                name: hashlib.sha256(content).hexdigest()
                for name, content in sorted(self.files.items())
            },
        }
        manifest_bytes = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True)
        body = manifest_bytes.encode() + b"\n"
        signature = base64.b64encode(signer.sign(body)) + b"\n"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, content in [*sorted(self.files.items()), (MANIFEST, body)]:
                archive.writestr(name, content)
            archive.writestr(MANIFEST_SIG, signature)
        return buffer.getvalue(), hashlib.sha256(body).hexdigest()
