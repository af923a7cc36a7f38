"""A checkpoint store in an S3 bucket with Object Lock in compliance mode (R-46).

Each checkpoint is one object `<prefix><chain folder>/<seq, 20 digits>.json` (the same names as
`DirectoryStore`), written once with a conditional write (`If-None-Match: *`), a SHA-256 content
checksum and a compliance-mode retention: until that date no one, the bucket's owner and the
account's root included, can delete or alter that object version. The bucket must have been
created with Object Lock; the store checks that before its first use and refuses a bucket
without it.

Reading does not trust the newest version of a key: someone allowed to `PutObject` could stack
a new version on a checkpoint's key (a write without the condition), so `get` reads the first
version ever written, the one the lock protects, and listings ignore delete markers.

Credentials come only from boto3's standard chain (environment, shared config, web identity,
instance or task role), never from `AUDIT_CHECKPOINT_STORES`. `endpoint_url` points the store at
an S3-compatible service. Errors become `CheckpointError`s with stable codes:
`checkpoint.exists`, `checkpoint.missing`, `checkpoint.unreadable`, `checkpoint.store_not_locked`,
`checkpoint.store_no_bucket`, `checkpoint.store_denied`, `checkpoint.store_no_credentials`,
`checkpoint.store_unreachable`, `checkpoint.store_bad_option` and `checkpoint.store_error`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    FlexibleChecksumError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from .checkpoints import Checkpoint, CheckpointError, chain_file_name

# Options that would put a secret into the settings: refused, boto3's chain supplies them.
CREDENTIAL_OPTIONS = frozenset({"aws_access_key_id", "aws_secret_access_key", "aws_session_token"})
# After the endpoint could not be reached, calls fail at once for this long instead of each
# waiting for its own timeouts (a signing run touches the store once per chain).
UNREACHABLE_PAUSE_SECONDS = 60.0
_EXISTS = {"PreconditionFailed", "ConditionalRequestConflict"}
_MISSING = {"NoSuchKey", "NoSuchVersion", "404"}
_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "403",
}


def sha256_base64(blob: bytes) -> str:
    """The value of S3's `x-amz-checksum-sha256` for `blob`."""
    return base64.b64encode(hashlib.sha256(blob).digest()).decode()


@dataclass
class S3ObjectLockStore:
    """Checkpoints as compliance-locked objects in `bucket` under `prefix`."""

    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    retention_days: int = 400
    name: str = "s3"
    page_size: int = 1000
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 3
    _client: Any = field(default=None, init=False, repr=False)
    _lock_checked: bool = field(default=False, init=False, repr=False)
    _unreachable_until: float = field(default=0.0, init=False, repr=False)
    # checkpoint key -> id of its first version, for the chain listed last
    _first_versions: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"
        problems = [
            "bucket is required" if not self.bucket else "",
            "retention_days must be a whole number of days, at least 1"
            if not isinstance(self.retention_days, int) or self.retention_days < 1
            else "",
            "page_size must be between 1 and 1000"
            if not isinstance(self.page_size, int) or not 1 <= self.page_size <= 1000
            else "",
        ]
        if any(problems):
            reason = "; ".join(problem for problem in problems if problem)
            raise CheckpointError("checkpoint.store_bad_option", f"S3 store {self.name}: {reason}.")

    @classmethod
    def from_options(cls, **options: Any) -> S3ObjectLockStore:
        """The store `AUDIT_CHECKPOINT_STORES` describes; credentials there are refused."""
        secrets = sorted(CREDENTIAL_OPTIONS & set(options))
        if secrets:
            raise CheckpointError(
                "checkpoint.store_bad_option",
                f"AWS credentials ({', '.join(secrets)}) do not belong in AUDIT_CHECKPOINT_STORES: "
                "give them to boto3 through its environment (AWS_PROFILE, AWS_ACCESS_KEY_ID …) "
                "or an instance or task role.",
            )
        known = {option.name for option in dataclasses.fields(cls) if option.init}
        unknown = sorted(set(options) - known)
        if unknown:
            raise CheckpointError(
                "checkpoint.store_bad_option",
                f"Unknown S3 checkpoint store option(s) {', '.join(unknown)}; "
                f"the options are {', '.join(sorted(known))}.",
            )
        return cls(**options)

    # --- the protocol ----------------------------------------------------------------------

    def put(self, checkpoint: Checkpoint) -> None:
        key = self._key(checkpoint.chain, checkpoint.seq)
        blob = checkpoint.to_bytes()
        retain_until = datetime.now(UTC) + timedelta(days=self.retention_days)
        with self._s3_errors(f"writing {self._where(key)}"):
            self._locked_client().put_object(
                Bucket=self.bucket,
                Key=key,
                Body=blob,
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=sha256_base64(blob),
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=retain_until,
                IfNoneMatch="*",
            )

    def seqs(self, chain: str) -> list[int]:
        folder = self._folder(chain)
        first_versions = self._first_versions_under(folder)
        self._first_versions = first_versions  # one chain's keys, for the `get`s that follow
        names = (key.removeprefix(folder) for key in first_versions)
        return sorted(int(name[:-5]) for name in names if _is_checkpoint_name(name))

    def get(self, chain: str, seq: int) -> Checkpoint:
        key = self._key(chain, seq)
        where = self._where(key)
        version = self._first_versions.get(key) or self._first_versions_under(key).get(key)
        if version is None:
            raise CheckpointError("checkpoint.missing", f"No checkpoint at {where}.")
        with self._s3_errors(f"reading {where}"):
            answer = self._locked_client().get_object(
                Bucket=self.bucket, Key=key, VersionId=version, ChecksumMode="ENABLED"
            )
            blob = answer["Body"].read()  # botocore checks it against its stored checksum
        return Checkpoint.from_bytes(blob)

    def chains(self) -> list[str]:
        folders: set[str] = set()
        listing = f"listing {self._where(self.prefix)}"
        for page in self._version_pages(listing, Prefix=self.prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                folders.add(common["Prefix"].removeprefix(self.prefix).rstrip("/"))
        return sorted(folder.replace("-", ":", 1) for folder in folders)

    # --- S3 --------------------------------------------------------------------------------

    def _folder(self, chain: str) -> str:
        return f"{self.prefix}{chain_file_name(chain)}/"

    def _key(self, chain: str, seq: int) -> str:
        return f"{self._folder(chain)}{int(seq):020d}.json"

    def _where(self, key: str) -> str:
        endpoint = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}/{key} (store {self.name}{endpoint})"

    def _first_versions_under(self, prefix: str) -> dict[str, str]:
        """Each key under `prefix` and the id of its first version. S3 lists a key's versions
        newest first, so the last one seen is the oldest; delete markers are not versions."""
        first: dict[str, str] = {}
        for page in self._version_pages(f"listing {self._where(prefix)}", Prefix=prefix):
            for version in page.get("Versions", []):
                first[version["Key"]] = version["VersionId"]
        return first

    def _version_pages(self, doing: str, **arguments: Any) -> Iterator[dict[str, Any]]:
        """The pages of ListObjectVersions (every version and delete marker, all pages)."""
        with self._s3_errors(doing):
            paginator = self._locked_client().get_paginator("list_object_versions")
            yield from paginator.paginate(
                Bucket=self.bucket, PaginationConfig={"PageSize": self.page_size}, **arguments
            )

    def _locked_client(self) -> Any:
        """The S3 client, once the bucket is known to have Object Lock enabled."""
        if self._client is None:
            self._client = boto3.session.Session().client(
                "s3",
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                config=Config(
                    connect_timeout=self.connect_timeout,
                    read_timeout=self.read_timeout,
                    retries={"max_attempts": self.max_attempts, "mode": "standard"},
                ),
            )
        if not self._lock_checked:
            self._check_object_lock()
        return self._client

    def _check_object_lock(self) -> None:
        refusal = CheckpointError(
            "checkpoint.store_not_locked",
            f"Bucket {self.bucket} (store {self.name}) does not have S3 Object Lock enabled: "
            "checkpoints are kept only in a bucket created with Object Lock, so that no one can "
            "delete or replace them. Create one with Object Lock and a compliance-mode default "
            "retention.",
        )
        try:
            answer = self._client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as error:
            if _code_of(error) == "ObjectLockConfigurationNotFoundError":
                raise refusal from None
            raise
        if answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise refusal
        self._lock_checked = True

    @contextmanager
    def _s3_errors(self, doing: str) -> Iterator[None]:
        """Turn what boto3 raises into a CheckpointError with a stable code."""
        if time.monotonic() < self._unreachable_until:
            raise CheckpointError(
                "checkpoint.store_unreachable",
                f"S3 could not be reached less than {UNREACHABLE_PAUSE_SECONDS:.0f} seconds ago; "
                f"{doing} waits until then.",
            )
        try:
            yield
        except ClientError as error:
            raise _client_error(error, doing, self.bucket) from None
        except (BotoConnectionError, HTTPClientError) as error:
            self._unreachable_until = time.monotonic() + UNREACHABLE_PAUSE_SECONDS
            reason = f"S3 could not be reached for {doing}: {error}"
            raise CheckpointError("checkpoint.store_unreachable", reason) from None
        except (NoCredentialsError, PartialCredentialsError) as error:
            reason = (
                f"No usable AWS credentials for {doing} ({error}): give them to boto3 through "
                "its environment (AWS_PROFILE, AWS_ACCESS_KEY_ID …) or an instance or task role."
            )
            raise CheckpointError("checkpoint.store_no_credentials", reason) from None
        except FlexibleChecksumError as error:
            reason = f"Refused {doing}: the object does not match its checksum ({error})."
            raise CheckpointError("checkpoint.unreadable", reason) from None
        except BotoCoreError as error:
            raise CheckpointError("checkpoint.store_error", f"{doing} failed: {error}") from None


def _is_checkpoint_name(name: str) -> bool:
    return len(name) == 25 and name.endswith(".json") and name[:20].isdigit()


def _code_of(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _client_error(error: ClientError, doing: str, bucket: str) -> CheckpointError:
    code = _code_of(error)
    if code in _EXISTS:
        return CheckpointError(
            "checkpoint.exists",
            f"Refused {doing}: that checkpoint exists already; checkpoints are never rewritten.",
        )
    if code in _MISSING:
        return CheckpointError("checkpoint.missing", f"Nothing found {doing}.")
    if code == "NoSuchBucket":
        return CheckpointError(
            "checkpoint.store_no_bucket", f"Bucket {bucket} does not exist ({doing})."
        )
    if code in _DENIED:
        return CheckpointError(
            "checkpoint.store_denied",
            f"S3 denied {doing} ({code}): check the credentials and that their policy allows "
            "s3:PutObject, s3:PutObjectRetention, s3:GetObject, s3:GetObjectVersion, "
            "s3:ListBucket, s3:ListBucketVersions and s3:GetBucketObjectLockConfiguration.",
        )
    message = error.response.get("Error", {}).get("Message", "")
    return CheckpointError("checkpoint.store_error", f"S3 answered {code} to {doing}: {message}")
