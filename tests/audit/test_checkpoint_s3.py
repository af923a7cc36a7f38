"""Checkpoints in an S3 bucket with Object Lock in compliance mode (R-46, issue 15).

S3 lies outside this machine, so these tests run `audit.checkpoint_s3.S3ObjectLockStore`
against moto's in-process S3 double (`moto.mock_aws`): boto3 and the store are real, only the
service behind them is the double. What the store relies on, checked here against moto as AWS
documents it (S3 User Guide, "Locking objects with Object Lock" and "Conditional writes"):

- a bucket created with Object Lock answers `GetObjectLockConfiguration` with
  `ObjectLockEnabled: Enabled`, one without it with `ObjectLockConfigurationNotFoundError`;
- `PutObject` with `If-None-Match: *` on an existing key fails with 412 `PreconditionFailed`;
- a compliance-locked object version cannot be deleted (403 `AccessDenied`), even with
  `x-amz-bypass-governance-retention`; a plain `PutObject` on its key adds a *new* version and
  leaves the locked one as it was;
- listings are paginated (1000 keys a page at most) and list a key's versions newest first.

- an upload with a retention must carry `Content-MD5` or `x-amz-sdk-checksum-algorithm`.

Where moto is more lenient than AWS, the store does not depend on it: moto accepts a
`PutObject` whose `x-amz-checksum-sha256` does not match the body (AWS refuses it with
`BadDigest`), so the store also asks for the checksum when it reads (`ChecksumMode`) and
botocore compares it with the body; moto lets a compliance retention be changed to governance
(AWS refuses), and the store never changes one.
The endpoint that cannot be reached is a closed port on 127.0.0.1, outside the double.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from audit.checkpoint_s3 import S3ObjectLockStore
from audit.checkpoints import (
    Checkpoint,
    CheckpointError,
    DirectoryStore,
    stores_load,
    trusted_keys,
)
from audit.models import AuditEvent
from audit.verify import CheckpointSource, verify_chain

from .checkpointing import add_events, sign
from .test_checkpoints import rewrite_consistently

REGION = "eu-central-1"
BUCKET = "vouchsafe-checkpoints"
PREFIX = "audit/"


@pytest.fixture
def s3(monkeypatch, tmp_path) -> Iterator[object]:
    """moto's S3, with fake credentials in boto3's environment (never a real account's)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    with mock_aws():
        yield boto3.client("s3", region_name=REGION)


def bucket_create(client, name: str, *, object_lock: bool) -> None:
    """A bucket as docs/operations.md says to create it (or, for a test, without the lock).
    Its default retention is a day here, so the store's own 400 days show on each object."""
    client.create_bucket(
        Bucket=name,
        CreateBucketConfiguration={"LocationConstraint": REGION},
        ObjectLockEnabledForBucket=object_lock,
    )
    if object_lock:
        client.put_object_lock_configuration(
            Bucket=name,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
            },
        )


@pytest.fixture
def bucket(s3) -> str:
    bucket_create(s3, BUCKET, object_lock=True)
    return BUCKET


@pytest.fixture
def s3_store(bucket) -> S3ObjectLockStore:
    return S3ObjectLockStore(bucket=bucket, prefix=PREFIX, region=REGION, name="s3")


@pytest.fixture
def directory(tmp_path) -> DirectoryStore:
    return DirectoryStore(tmp_path / "worm", "worm")


def key_of(tenant, seq: int) -> str:
    return f"{PREFIX}tenant-{tenant.pk}/{seq:020d}.json"


def check(tenant, stores, trusted):
    source = CheckpointSource(stores, trusted_keys([trusted]))
    return verify_chain(tenant.pk, tenant.slug, checkpoints=source)


def versions_of(client, key: str) -> list[dict]:
    return client.list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- writing and verifying -------------------------------------------------------------------


def test_checkpoints_signed_into_a_directory_and_a_locked_bucket_verify_intact(
    tenant, signer, directory, s3_store, s3, trusted
):
    run = sign(signer, [directory, s3_store], tenant)
    assert run.failures == []
    [checkpoint] = run.signed
    recorded = AuditEvent.objects.get(tenant_id=tenant.pk, action="audit.checkpoint_signed")
    assert recorded.data["stores"] == ["worm", "s3"]

    stored = s3.head_object(Bucket=BUCKET, Key=key_of(tenant, 6), ChecksumMode="ENABLED")
    body = s3.get_object(Bucket=BUCKET, Key=key_of(tenant, 6))["Body"].read()
    in_directory = directory.path / f"tenant-{tenant.pk}" / f"{6:020d}.json"
    assert body == checkpoint.to_bytes() == in_directory.read_bytes()
    assert stored["ObjectLockMode"] == "COMPLIANCE"
    in_400_days = datetime.now(UTC) + timedelta(days=400)
    assert abs(stored["ObjectLockRetainUntilDate"] - in_400_days) < timedelta(minutes=5)
    assert stored["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert s3_store.seqs(checkpoint.chain) == [6]
    assert s3_store.chains() == [checkpoint.chain]
    assert s3_store.get(checkpoint.chain, 6) == checkpoint

    add_events(tenant, 2)
    assert [c.seq for c in sign(signer, [directory, s3_store], tenant).signed] == [9]
    report = check(tenant, [directory, s3_store], trusted)
    assert report.intact and report.checkpoints == 4


def test_a_consistent_rewrite_is_detected_reading_only_the_bucket(
    tenant, signer, directory, s3_store, trusted
):
    sign(signer, [directory, s3_store], tenant)  # seq 6
    add_events(tenant, 3)
    sign(signer, [directory, s3_store], tenant)  # seq 10
    rewrite_consistently(tenant, 8, actor_label="someone else")
    report = check(tenant, [s3_store], trusted)
    assert not report.intact
    assert report.window == (7, 10)
    assert "rows 7-10 were rewritten" in report.reason


# --- nothing replaces a checkpoint -------------------------------------------------------------


def test_the_store_refuses_to_overwrite_a_checkpoint(tenant, signer, s3_store, s3):
    [checkpoint] = sign(signer, [s3_store], tenant).signed
    forged = Checkpoint({**checkpoint.statement, "hash": "f" * 64}, b"x" * 64)
    with pytest.raises(CheckpointError) as refused:
        s3_store.put(forged)
    assert refused.value.code == "checkpoint.exists"
    assert "never rewritten" in str(refused.value)
    assert len(versions_of(s3, key_of(tenant, 6))) == 1
    fresh = S3ObjectLockStore(bucket=BUCKET, prefix=PREFIX, region=REGION)
    assert fresh.get(checkpoint.chain, 6) == checkpoint


def test_s3_itself_refuses_to_delete_or_overwrite_a_locked_checkpoint(tenant, signer, s3_store, s3):
    """What Object Lock in compliance mode guarantees, whoever holds the bucket's keys."""
    [checkpoint] = sign(signer, [s3_store], tenant).signed
    key = key_of(tenant, 6)
    [locked] = versions_of(s3, key)
    for bypass in (False, True):
        with pytest.raises(ClientError) as refused:
            s3.delete_object(
                Bucket=BUCKET,
                Key=key,
                VersionId=locked["VersionId"],
                BypassGovernanceRetention=bypass,
            )
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert s3.get_object(Bucket=BUCKET, Key=key, VersionId=locked["VersionId"])["Body"].read() == (
        checkpoint.to_bytes()
    )


def test_a_version_stacked_on_a_checkpoint_or_a_delete_marker_hides_nothing(
    tenant, signer, s3_store, s3
):
    """Someone allowed to PutObject (and, against the documented policy, DeleteObject) writes
    around the store: a new version without the condition, a delete marker on another key.
    The store still reads the first, locked version of each checkpoint."""
    sign(signer, [s3_store], tenant)
    add_events(tenant, 1)
    [second] = sign(signer, [s3_store], tenant).signed
    s3.put_object(Bucket=BUCKET, Key=key_of(tenant, 6), Body=b'{"not": "a checkpoint"}')
    s3.delete_object(Bucket=BUCKET, Key=key_of(tenant, 8))  # a delete marker, not a deletion
    assert len(versions_of(s3, key_of(tenant, 6))) == 2
    fresh = S3ObjectLockStore(bucket=BUCKET, prefix=PREFIX, region=REGION)
    chain = f"tenant:{tenant.pk}"
    assert fresh.seqs(chain) == [6, 8]
    assert fresh.get(chain, 6).seq == 6
    assert fresh.get(chain, 8) == second
    # Without the listing first (the chain's versions looked up for the one key):
    assert S3ObjectLockStore(bucket=BUCKET, prefix=PREFIX, region=REGION).get(chain, 8) == second


def test_a_checkpoint_that_does_not_match_its_checksum_is_unreadable(
    tenant, signer, directory, s3_store, s3
):
    """AWS refuses a body that does not match x-amz-checksum-sha256 (moto does not): the
    checksum is checked again when the store reads, so a damaged or substituted body is never
    taken for a checkpoint, even a well-formed one."""
    [checkpoint] = sign(signer, [directory], tenant).signed
    s3.put_object(
        Bucket=BUCKET,
        Key=key_of(tenant, 6),
        Body=checkpoint.to_bytes(),
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=base64.b64encode(hashlib.sha256(b"what was sent").digest()).decode(),
    )
    with pytest.raises(CheckpointError) as unreadable:
        s3_store.get(checkpoint.chain, 6)
    assert unreadable.value.code == "checkpoint.unreadable"
    assert "checksum" in str(unreadable.value)
    with pytest.raises(CheckpointError) as missing:
        s3_store.get(checkpoint.chain, 7)
    assert missing.value.code == "checkpoint.missing"


# --- refusing a bucket that cannot keep them ---------------------------------------------------


def test_a_bucket_without_object_lock_is_refused_and_gets_nothing(tenant, signer, directory, s3):
    bucket_create(s3, "plain-bucket", object_lock=False)
    plain = S3ObjectLockStore(bucket="plain-bucket", region=REGION, name="plain")
    run = sign(signer, [directory, plain], tenant)
    assert [c.seq for c in run.signed] == [6]
    [(store, chain, error)] = run.failures
    assert (store, chain) == ("plain", f"tenant:{tenant.pk}")
    assert "does not have S3 Object Lock enabled" in error
    assert s3.list_objects_v2(Bucket="plain-bucket")["KeyCount"] == 0
    for use in (lambda: plain.put(run.signed[0]), lambda: plain.seqs(chain), plain.chains):
        with pytest.raises(CheckpointError) as refused:
            use()
        assert refused.value.code == "checkpoint.store_not_locked"
    assert directory.seqs(chain) == [6]


def test_a_missing_bucket_is_named(tenant, signer, s3):
    missing = S3ObjectLockStore(bucket="no-such-bucket", region=REGION)
    with pytest.raises(CheckpointError) as refused:
        missing.seqs(f"tenant:{tenant.pk}")
    assert refused.value.code == "checkpoint.store_no_bucket"
    assert "no-such-bucket does not exist" in str(refused.value)


def test_a_write_the_credentials_may_not_make_is_named(
    tenant, signer, directory, bucket, monkeypatch
):
    """The store's credentials come from boto3's environment; here those of an IAM user whose
    policy denies s3:PutObject (moto checks IAM policies once told to)."""
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="checkpoint-signer")
    no_writes = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*"},
        ],
    }
    iam.put_user_policy(
        UserName="checkpoint-signer", PolicyName="no-writes", PolicyDocument=json.dumps(no_writes)
    )
    key = iam.create_access_key(UserName="checkpoint-signer")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    store = S3ObjectLockStore(bucket=bucket, prefix=PREFIX, region=REGION, name="s3")

    @set_initial_no_auth_action_count(0)
    def sign_as_that_user():
        run = sign(signer, [store, directory], tenant)
        with pytest.raises(CheckpointError) as denied:
            store.put(run.signed[0])
        return run, denied.value

    run, denied = sign_as_that_user()
    assert denied.code == "checkpoint.store_denied"
    assert "S3 denied writing" in str(denied) and "s3:PutObject" in str(denied)
    assert [(store, chain) for store, chain, _ in run.failures] == [("s3", f"tenant:{tenant.pk}")]
    assert directory.seqs(f"tenant:{tenant.pk}") == [6]


def test_an_unreachable_endpoint_fails_that_store_only(tenant, signer, directory, s3_store):
    unreachable = S3ObjectLockStore(
        bucket=BUCKET,
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        region=REGION,
        name="minio",
        connect_timeout=1,
        max_attempts=1,
    )
    run = sign(signer, [unreachable, directory, s3_store], tenant)
    assert [c.seq for c in run.signed] == [6]
    [(store, chain, error)] = run.failures
    assert (store, chain) == ("minio", f"tenant:{tenant.pk}")
    assert "S3 could not be reached" in error
    recorded = AuditEvent.objects.get(tenant_id=tenant.pk, action="audit.checkpoint_signed")
    assert recorded.data["stores"] == ["worm", "s3"]
    assert directory.seqs(chain) == s3_store.seqs(chain) == [6]
    # The next call in this process does not wait for the network again for a while:
    with pytest.raises(CheckpointError) as refused:
        unreachable.put(run.signed[0])
    assert refused.value.code == "checkpoint.store_unreachable"
    assert "could not be reached less than 60 seconds ago" in str(refused.value)


# --- listings ------------------------------------------------------------------------------------


def test_listings_follow_every_page(tenant, signer, s3_store):
    """More than 1000 checkpoints of one chain (S3's largest page), and more chains than a
    small page size."""
    chain = f"tenant:{tenant.pk}"
    [first] = sign(signer, [s3_store], tenant).signed
    for seq in range(7, 1008):
        statement = {**first.statement, "seq": seq}
        s3_store.put(Checkpoint(statement, signer.sign(b"any")))
    assert s3_store.seqs(chain) == list(range(6, 1008))
    assert s3_store.get(chain, 1007).seq == 1007

    small_pages = S3ObjectLockStore(bucket=BUCKET, prefix=PREFIX, region=REGION, page_size=2)
    for tenant_id in (9001, 9002, 9003, 9004):
        statement = {**first.statement, "chain": f"tenant:{tenant_id}", "tenant_id": tenant_id}
        small_pages.put(Checkpoint(statement, first.signature))
    expected = sorted([chain, "tenant:9001", "tenant:9002", "tenant:9003", "tenant:9004"])
    assert small_pages.chains() == expected


# --- settings ------------------------------------------------------------------------------------


def test_the_stores_come_from_settings_and_credentials_there_are_refused(settings, tmp_path):
    both = [
        {"CLASS": "audit.checkpoints.DirectoryStore", "OPTIONS": {"path": str(tmp_path / "w")}},
        {
            "CLASS": "audit.checkpoint_s3.S3ObjectLockStore",
            "OPTIONS": {"bucket": BUCKET, "prefix": "audit", "region": REGION},
        },
    ]
    settings.AUDIT_CHECKPOINT_STORES = both
    directory, bucket = stores_load()
    assert isinstance(directory, DirectoryStore) and isinstance(bucket, S3ObjectLockStore)
    assert (bucket.bucket, bucket.prefix, bucket.retention_days) == (BUCKET, "audit/", 400)

    both[1]["OPTIONS"] = {"bucket": BUCKET, "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG"}
    settings.AUDIT_CHECKPOINT_STORES = both
    with pytest.raises(CheckpointError) as refused:
        stores_load()
    assert refused.value.code == "checkpoint.store_bad_option"
    assert "aws_secret_access_key" in str(refused.value)
    assert "do not belong in AUDIT_CHECKPOINT_STORES" in str(refused.value)
    assert "wJalrXUtnFEMI" not in str(refused.value)
    for bad in ({"retention_days": 0}, {"page_size": 5000}, {"retention": 30}):
        with pytest.raises(CheckpointError) as refused:
            S3ObjectLockStore.from_options(bucket=BUCKET, **bad)
        assert refused.value.code == "checkpoint.store_bad_option"
