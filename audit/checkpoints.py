"""Signed checkpoints: each chain's head signed with a key the database never holds (R-46).

A checkpoint states one chain's head (chain, seq, hash), when it was signed, and the digest of
the chain's previous checkpoint, so checkpoints form a chain of their own. It is signed with
Ed25519 by a `CheckpointSigner` (a key file or an environment secret by default; a KMS or HSM
can take its place) and written to every configured `CheckpointStore`: places a database
administrator does not control (a write-once directory, an Object Lock bucket). A store never
overwrites a checkpoint. Verification (`audit.verify`) reads them back, checks each signature
against the trusted public keys (`AUDIT_TRUSTED_KEYS`, outside the database too) and compares the
signed hashes with the chain rows.

Signing reads the chain heads without locking them and records `audit.checkpoint_signed` in each
chain afterwards, in a transaction of its own, so writers never wait for a signature or a store.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

from tenants.rls import system_scope

from .chain import GENESIS_HASH
from .context import Actor
from .models import AuditChainHead, AuditEvent
from .timestamps import TimestampAuthority, TimestampError

FORMAT = "vouchsafe-checkpoint/1"
CHECKPOINT_ACTION = "audit.checkpoint_signed"
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


class CheckpointError(Exception):
    """A checkpoint could not be signed, stored or read; `code` says which way."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def canonical_bytes(value: Any) -> bytes:
    """The bytes that are signed and digested: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """A public key's id: `ed25519:` and the first 16 hex digits of its raw bytes' sha256."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def chain_file_name(chain: str) -> str:
    """The chain's folder name in a store: `platform` or `tenant-<id>`."""
    return chain.replace(":", "-")


@dataclass(frozen=True)
class Checkpoint:
    """One signed statement of a chain's head, as stored (`statement` is what was signed)."""

    statement: dict[str, Any]
    signature: bytes
    timestamp: bytes | None = None  # an RFC 3161 token of `digest` (audit.timestamps)

    @property
    def chain(self) -> str:
        return str(self.statement["chain"])

    @property
    def seq(self) -> int:
        return int(self.statement["seq"])

    @property
    def hash(self) -> str:
        return str(self.statement["hash"])

    @property
    def key_id(self) -> str:
        return str(self.statement["key_id"])

    @property
    def signed_at(self) -> str:
        return str(self.statement["signed_at"])

    @property
    def prev(self) -> str:
        return str(self.statement["prev"])

    @property
    def purge(self) -> dict[str, Any] | None:
        """What a purge checkpoint vouches was removed: `through_seq` and its `hash`."""
        purge = self.statement.get("purge")
        return purge if isinstance(purge, dict) else None

    @property
    def digest(self) -> str:
        """sha256 of the signed statement: what the chain's next checkpoint names as `prev`."""
        return hashlib.sha256(canonical_bytes(self.statement)).hexdigest()

    def to_bytes(self) -> bytes:
        """The file a store keeps: the statement and its base64 signature."""
        body = {"statement": self.statement, "signature": base64.b64encode(self.signature).decode()}
        if self.timestamp is not None:
            body["timestamp"] = base64.b64encode(self.timestamp).decode()
        return canonical_bytes(body) + b"\n"

    @classmethod
    def from_bytes(cls, blob: bytes) -> Checkpoint:
        try:
            body = json.loads(blob)
            statement, signature = body["statement"], base64.b64decode(body["signature"])
            timestamp = base64.b64decode(body["timestamp"]) if "timestamp" in body else None
            if statement.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} statement")
            int(statement["seq"]), str(statement["hash"]), str(statement["key_id"])
        except (ValueError, KeyError, TypeError, AttributeError) as bad:
            raise CheckpointError("checkpoint.unreadable", f"Not a checkpoint: {bad}") from None
        return cls(statement=statement, signature=signature, timestamp=timestamp)


# --- signing keys --------------------------------------------------------------------------


class CheckpointSigner(Protocol):
    """Signs checkpoint statements. A KMS or HSM signer implements the same two members."""

    key_id: str

    def sign(self, message: bytes) -> bytes: ...


class Ed25519KeySigner:
    """An Ed25519 private key read from a PEM file (`AUDIT_SIGNING_KEY_FILE`) or from the
    environment (`AUDIT_SIGNING_KEY`: the PEM text). Neither is ever written to the database."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.key_id = key_id_of(private_key.public_key())

    @classmethod
    def from_settings(cls) -> Ed25519KeySigner:
        pem = os.environ.get("AUDIT_SIGNING_KEY", "").encode()
        path = getattr(settings, "AUDIT_SIGNING_KEY_FILE", "")
        if not pem and path:
            try:
                pem = Path(path).read_bytes()
            except OSError as error:
                reason = f"The checkpoint signing key {path} cannot be read: {error}"
                raise CheckpointError("checkpoint.no_key", reason) from None
        if not pem:
            raise CheckpointError(
                "checkpoint.no_key",
                "No checkpoint signing key: set AUDIT_SIGNING_KEY_FILE or AUDIT_SIGNING_KEY.",
            )
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            reason = "The checkpoint signing key is not an Ed25519 key."
            raise CheckpointError("checkpoint.bad_key", reason)
        return cls(key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def signer_load() -> CheckpointSigner:
    """The configured signer (`AUDIT_CHECKPOINT_SIGNER`, a dotted path to a class with a
    `from_settings()` constructor)."""
    return import_string(settings.AUDIT_CHECKPOINT_SIGNER).from_settings()


def key_pair_new() -> tuple[str, bytes, bytes]:
    """A new Ed25519 key pair: its key id, the private key (PKCS#8 PEM), the public key (PEM)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key_id_of(key.public_key()), private, public


def trusted_keys(paths: Iterable[str | Path] | None = None) -> dict[str, Ed25519PublicKey]:
    """The public keys checkpoints may be signed with, by key id: every `*.pem` / `*.pub` file
    named in `AUDIT_TRUSTED_KEYS` (files or directories). Keep retired keys listed: the
    checkpoints they signed stay verifiable."""
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in paths if paths is not None else settings.AUDIT_TRUSTED_KEYS:
        entry = Path(entry)
        if not entry.exists():
            continue
        files = sorted(entry.glob("*.p[eu][mb]")) if entry.is_dir() else [entry]
        for path in files:
            key = serialization.load_pem_public_key(path.read_bytes())
            if isinstance(key, Ed25519PublicKey):
                keys[key_id_of(key)] = key
    return keys


def signature_problem(checkpoint: Checkpoint, keys: dict[str, Ed25519PublicKey]) -> str | None:
    """Why the checkpoint's signature cannot be trusted, or None when it verifies."""
    key = keys.get(checkpoint.key_id)
    if key is None:
        return f"signed with key {checkpoint.key_id}, which is not a trusted key"
    try:
        key.verify(checkpoint.signature, canonical_bytes(checkpoint.statement))
    except InvalidSignature:
        return f"its signature does not verify with key {checkpoint.key_id}"
    return None


# --- stores --------------------------------------------------------------------------------


class CheckpointStore(Protocol):
    """A place checkpoints are kept, outside the database's administrative domain."""

    name: str

    def put(self, checkpoint: Checkpoint) -> None:
        """Keep the checkpoint; refuse (`checkpoint.exists`) to replace one already kept."""
        ...

    def seqs(self, chain: str) -> list[int]:
        """The seqs of the chain's checkpoints kept here, ascending."""
        ...

    def get(self, chain: str, seq: int) -> Checkpoint:
        """One kept checkpoint (`checkpoint.missing` when there is none)."""
        ...

    def chains(self) -> list[str]:
        """The chains that have checkpoints here."""
        ...


def file_write_new(path: Path, blob: bytes, *, mode: int = 0o444) -> None:
    """Create `path` with `blob` (FileExistsError if it exists: O_EXCL), written and synced."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | _NO_FOLLOW
    descriptor = os.open(path, flags, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(blob)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass
class DirectoryStore:
    """Checkpoints as files `<path>/<chain>/<seq, 20 digits>.json`, created once and never
    rewritten: mount the directory write-once (WORM) or sync it off the host."""

    path: Path
    name: str = "directory"

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def _file(self, chain: str, seq: int) -> Path:
        return self.path / chain_file_name(chain) / f"{int(seq):020d}.json"

    def put(self, checkpoint: Checkpoint) -> None:
        target = self._file(checkpoint.chain, checkpoint.seq)
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        try:
            file_write_new(target, checkpoint.to_bytes())
        except FileExistsError:
            raise CheckpointError(
                "checkpoint.exists", f"{target} exists already; checkpoints are never rewritten."
            ) from None

    def seqs(self, chain: str) -> list[int]:
        folder = self.path / chain_file_name(chain)
        if not folder.is_dir():
            return []
        return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())

    def get(self, chain: str, seq: int) -> Checkpoint:
        try:
            return Checkpoint.from_bytes(self._file(chain, seq).read_bytes())
        except FileNotFoundError:
            raise CheckpointError(
                "checkpoint.missing", f"No checkpoint at seq {seq} of {chain} in {self.path}."
            ) from None

    def chains(self) -> list[str]:
        if not self.path.is_dir():
            return []
        names = (p.name for p in self.path.iterdir() if p.is_dir())
        return sorted(name.replace("-", ":", 1) for name in names)

    @classmethod
    def from_options(cls, path: str, name: str = "directory") -> DirectoryStore:
        return cls(path=Path(path), name=name)


@cache
def _configured(spec: str) -> list[CheckpointStore]:
    stores = []
    for entry in json.loads(spec):
        store_class = import_string(entry["CLASS"])
        stores.append(store_class.from_options(**entry.get("OPTIONS", {})))
    return stores


def stores_load() -> list[CheckpointStore]:
    """The configured stores (`AUDIT_CHECKPOINT_STORES`: CLASS and OPTIONS per store)."""
    return _configured(json.dumps(settings.AUDIT_CHECKPOINT_STORES, sort_keys=True))


# --- signing -------------------------------------------------------------------------------


@dataclass
class SigningRun:
    """What one signing run did: the checkpoints it published, and per store what failed."""

    signed: list[Checkpoint] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # store, chain, error


def latest_in(stores: Iterable[CheckpointStore], chain: str) -> Checkpoint | None:
    """The chain's newest checkpoint found in any of the stores that can be read."""
    best: Checkpoint | None = None
    for store in stores:
        try:
            seqs = store.seqs(chain)
            if seqs and (best is None or seqs[-1] > best.seq):
                best = store.get(chain, seqs[-1])
        except (CheckpointError, OSError):
            continue
    return best


def _needs_checkpoint(head: AuditChainHead, last: Checkpoint | None) -> bool:
    """Whether the chain moved past its last checkpoint by more than that checkpoint's record."""
    if last is None:
        return head.seq > 0
    if head.seq <= last.seq:
        return False
    if head.seq > last.seq + 1:
        return True
    newest = AuditEvent.objects.filter(tenant_id=head.tenant_id, seq=head.seq)
    return not newest.filter(action=CHECKPOINT_ACTION).exists()


def _statement(
    head: AuditChainHead, last: Checkpoint | None, key_id: str, purge: dict[str, Any] | None
) -> dict[str, Any]:
    statement: dict[str, Any] = {"purge": purge} if purge else {}
    return statement | {
        "format": FORMAT,
        "chain": head.key,
        "tenant_id": head.tenant_id,
        "seq": head.seq,
        "hash": head.hash,
        "signed_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "prev": last.digest if last else GENESIS_HASH,
        "key_id": key_id,
    }


def checkpoints_sign(
    *,
    actor: Actor,
    signer: CheckpointSigner | None = None,
    stores: list[CheckpointStore] | None = None,
    chains: Iterable[str] | None = None,
) -> SigningRun:
    """Sign the head of every chain (or of `chains`) that moved since its last checkpoint,
    publish it to every store and record `audit.checkpoint_signed` in the chain.

    No chain head is locked: the heads are read as committed, signed and published, and only
    then is each record appended (a short transaction per chain, like any other write). A
    checkpoint that no store accepted is not recorded, and the run says why.
    """
    signer = signer or signer_load()
    stores = stores if stores is not None else stores_load()
    authority = TimestampAuthority.from_settings()
    if not stores:
        raise CheckpointError("checkpoint.no_store", "No checkpoint store is configured.")
    run = SigningRun()
    with system_scope():
        heads = AuditChainHead.objects.order_by("key")
        if chains is not None:
            heads = heads.filter(key__in=list(chains))
        for head in heads:
            last = latest_in(stores, head.key)
            if _needs_checkpoint(head, last):
                _sign_head(head, last, (signer, stores, authority), run, actor)
    return run


def purge_checkpoint_sign(
    *,
    head: AuditChainHead,
    purge: dict[str, Any],
    actor: Actor,
    signer: CheckpointSigner | None = None,
    stores: list[CheckpointStore] | None = None,
) -> tuple[Checkpoint | None, SigningRun]:
    """Sign `head` now with `purge` in the statement (the seq and hash a purge removes up to,
    and who asked and approved): verification accepts a chain that starts after seq 1 only
    from such a checkpoint. Published and recorded like any checkpoint; None when no store
    kept it (the run says why)."""
    signer = signer or signer_load()
    stores = stores if stores is not None else stores_load()
    run = SigningRun()
    if not stores:
        raise CheckpointError("checkpoint.no_store", "No checkpoint store is configured.")
    last = latest_in(stores, head.key)
    machinery = (signer, stores, TimestampAuthority.from_settings())
    return _sign_head(head, last, machinery, run, actor, purge), run


def _sign_head(
    head: AuditChainHead,
    last: Checkpoint | None,
    machinery: tuple[CheckpointSigner, list[CheckpointStore], TimestampAuthority | None],
    run: SigningRun,
    actor: Actor,
    purge: dict[str, Any] | None = None,
) -> Checkpoint | None:
    """Sign one head, timestamp it, publish it and record it; None when no store kept it."""
    signer, stores, authority = machinery
    statement = _statement(head, last, signer.key_id, purge)
    checkpoint = Checkpoint(statement, signer.sign(canonical_bytes(statement)))
    if authority is not None:
        checkpoint = _timestamped(checkpoint, authority, run)
    kept = _publish(checkpoint, stores, run)
    if not kept:
        return None
    _record(checkpoint, kept, actor)
    run.signed.append(checkpoint)
    return checkpoint


def _timestamped(
    checkpoint: Checkpoint, authority: TimestampAuthority, run: SigningRun
) -> Checkpoint:
    """The checkpoint with the TSA's token of its digest; without one (reported) if the TSA
    cannot give one: a TSA outage must not stop checkpoints from being published."""
    try:
        token = authority.stamp(checkpoint.digest)
    except TimestampError as error:
        run.failures.append(("tsa", checkpoint.chain, f"{error} ({error.code})"))
        return checkpoint
    return dataclasses.replace(checkpoint, timestamp=token)


def _publish(checkpoint: Checkpoint, stores: list[CheckpointStore], run: SigningRun) -> list[str]:
    """Write the checkpoint to each store; the names of those that kept it."""
    kept = []
    for store in stores:
        try:
            store.put(checkpoint)
            kept.append(store.name)
        except (CheckpointError, OSError) as error:
            code = error.code if isinstance(error, CheckpointError) else "checkpoint.store_error"
            run.failures.append((store.name, checkpoint.chain, f"{error} ({code})"))
    return kept


def _record(checkpoint: Checkpoint, kept: list[str], actor: Actor) -> None:
    from .services import record  # services imports the registry; keep this module light

    tenant = None
    if checkpoint.statement["tenant_id"] is not None:
        from tenants.models import Tenant

        tenant = Tenant.objects.get(pk=checkpoint.statement["tenant_id"])
    with transaction.atomic():
        record(
            action=CHECKPOINT_ACTION,
            actor=actor,
            tenant=tenant,
            data={
                "statement": checkpoint.statement,
                "digest": checkpoint.digest,
                "signature": base64.b64encode(checkpoint.signature).decode(),
                "stores": kept,
            },
        )


def checkpoints_read(
    stores: Iterable[CheckpointStore], chain: str, *, since_seq: int = 0
) -> Iterator[tuple[str, Checkpoint | CheckpointError]]:
    """Every checkpoint of `chain` kept in `stores` (seq > since_seq), with the store's name;
    a file that cannot be read comes as its error, so the caller can report it."""
    for store in stores:
        try:
            seqs = store.seqs(chain)
        except (CheckpointError, OSError) as error:
            if not isinstance(error, CheckpointError):
                error = CheckpointError("checkpoint.store_unreadable", str(error))
            yield store.name, error
            continue
        for seq in seqs:
            if seq <= since_seq:
                continue
            try:
                yield store.name, store.get(chain, seq)
            except (CheckpointError, OSError) as error:
                if not isinstance(error, CheckpointError):
                    error = CheckpointError("checkpoint.unreadable", str(error))
                yield store.name, error
