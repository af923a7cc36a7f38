"""Signed checkpoints outside the database, and verification against them (R-46, issue 15).

The attacker is a database administrator with superuser rights: triggers off, rows rewritten
with freshly computed hashes, the chain head moved. What they cannot touch is the signing key
and the checkpoint stores (a write-once folder here; an Object Lock bucket in production).
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.chain import HASHED_FIELDS, row_hash
from audit.checkpoints import (
    CHECKPOINT_ACTION,
    Checkpoint,
    CheckpointError,
    DirectoryStore,
    Ed25519KeySigner,
    canonical_bytes,
    trusted_keys,
)
from audit.models import AuditChainHead, AuditEvent
from audit.verify import CheckpointSource, verify_chain
from tenants.choices import Role

from ..conftest import signed_in_client
from ..factories import make_tenant, staff
from .checkpointing import add_events, new_signer, sign
from .test_chain_lock import _head_is_free


def check(tenant, stores, trusted, *, incremental=False, complete=True):
    source = CheckpointSource(stores, trusted_keys([trusted]), complete)
    return verify_chain(tenant.pk, tenant.slug, checkpoints=source, incremental=incremental)


def head_of(tenant) -> AuditChainHead:
    return AuditChainHead.objects.get(tenant_id=tenant.pk)


def _triggers(enabled: bool) -> None:
    verb = "ENABLE" if enabled else "DISABLE"
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE audit_auditevent {verb} TRIGGER USER")
        cursor.execute(f"ALTER TABLE audit_auditchainhead {verb} TRIGGER USER")


def rewrite_consistently(tenant, seq: int, *, prev: str | None = None, **changes) -> None:
    """Change a row, recompute its hash and every later row's, and move the head to match;
    `prev` links the row to another hash than the previous row's."""
    _triggers(False)
    rows = AuditEvent.objects.filter(tenant_id=tenant.pk, seq__gte=seq).order_by("seq")
    prev = prev or AuditEvent.objects.get(tenant_id=tenant.pk, seq=seq - 1).hash
    for event in rows:
        if event.seq == seq:
            for name, value in changes.items():
                setattr(event, name, value)
        event.prev_hash = prev
        event.hash = row_hash(tuple(getattr(event, name) for name in HASHED_FIELDS))
        AuditEvent.objects.filter(pk=event.pk).update(
            prev_hash=event.prev_hash, hash=event.hash, **changes if event.seq == seq else {}
        )
        prev = event.hash
    AuditChainHead.objects.filter(tenant_id=tenant.pk).update(hash=prev)
    _triggers(True)


def cut_tail(tenant, keep: int) -> None:
    """Delete every row after `keep` and move the head back to it (also: an older backup)."""
    _triggers(False)
    AuditEvent.objects.filter(tenant_id=tenant.pk, seq__gt=keep).delete()
    last = AuditEvent.objects.get(tenant_id=tenant.pk, seq=keep)
    AuditChainHead.objects.filter(tenant_id=tenant.pk).update(seq=keep, hash=last.hash)
    _triggers(True)


# --- signing and publishing ----------------------------------------------------------------


def test_signing_publishes_each_moved_head_to_every_store_and_records_it(
    tenant, signer, stores, trusted
):
    run = sign(signer, stores, tenant)
    assert [(c.chain, c.seq) for c in run.signed] == [(f"tenant:{tenant.pk}", 6)]
    assert run.failures == []
    for store in stores:
        path = store.path / f"tenant-{tenant.pk}" / f"{6:020d}.json"
        kept = Checkpoint.from_bytes(path.read_bytes())
        row_6 = AuditEvent.objects.get(tenant_id=tenant.pk, seq=6)
        assert kept.hash == row_6.hash == run.signed[0].hash
        assert kept.key_id == signer.key_id and kept.prev == "0" * 64
        assert path.stat().st_mode & 0o222 == 0  # created read-only
    recorded = AuditEvent.objects.get(tenant_id=tenant.pk, action=CHECKPOINT_ACTION)
    assert recorded.seq == 7
    assert recorded.data["digest"] == run.signed[0].digest
    assert recorded.data["stores"] == ["worm", "off"]
    # Nothing moved but the checkpoint's own record: nothing to sign.
    assert sign(signer, stores, tenant).signed == []
    add_events(tenant, 2)
    second = sign(signer, stores, tenant).signed[0]
    assert (second.seq, second.prev) == (9, run.signed[0].digest)
    report = check(tenant, stores, trusted)
    assert report.intact and report.checkpoints == 2 * len(stores)


def test_a_store_never_rewrites_a_checkpoint(tenant, signer, stores):
    checkpoint = sign(signer, stores, tenant).signed[0]
    forged = Checkpoint({**checkpoint.statement, "hash": "f" * 64}, b"x" * 64)
    with pytest.raises(CheckpointError) as refused:
        stores[0].put(forged)
    assert refused.value.code == "checkpoint.exists"
    kept = stores[0].get(checkpoint.chain, checkpoint.seq)
    assert kept.hash == checkpoint.hash


def test_a_failing_store_is_reported_and_the_others_still_keep_the_checkpoint(
    tenant, signer, stores, tmp_path
):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the store's folder should be")
    run = sign(signer, [DirectoryStore(blocked, "broken"), *stores], tenant)
    assert len(run.signed) == 1
    assert [(store, chain) for store, chain, _ in run.failures] == [
        ("broken", f"tenant:{tenant.pk}")
    ]
    recorded = AuditEvent.objects.get(tenant_id=tenant.pk, action=CHECKPOINT_ACTION)
    assert recorded.data["stores"] == ["worm", "off"]


def test_signing_and_publishing_hold_no_chain_head_lock(committed, signer, stores):
    tenant = make_tenant()
    add_events(tenant, 2)
    key = f"tenant:{tenant.pk}"
    seen: list[bool] = []

    class Watching(DirectoryStore):
        def put(self, checkpoint: Checkpoint) -> None:
            seen.append(_head_is_free(key))
            super().put(checkpoint)

    run = sign(signer, [Watching(stores[0].path, "watching")], tenant)
    assert len(run.signed) == 1
    assert seen == [True]


# --- the tamper matrix ---------------------------------------------------------------------


def test_a_consistent_rewrite_before_a_checkpoint_is_detected_with_its_window(
    tenant, signer, stores, trusted
):
    sign(signer, stores, tenant)  # checkpoint at seq 6
    add_events(tenant, 3)
    sign(signer, stores, tenant)  # checkpoint at seq 10
    rewrite_consistently(tenant, 8, actor_label="someone else")
    # The chain alone is consistent again (what audit_verify said before checkpoints):
    assert check(tenant, [], trusted, complete=False).intact
    report = check(tenant, stores, trusted)
    assert not report.intact
    assert report.window == (7, 10)
    assert "rows 7-10 were rewritten" in report.reason


def test_the_approver_changed_in_an_old_row_is_detected_by_the_hourly_incremental_walk(
    tenant, signer, stores, trusted
):
    sign(signer, stores, tenant)
    add_events(tenant, 2)
    rewrite_consistently(tenant, 3, actor_id="user:999", actor_label="Mallory")
    report = check(tenant, stores, trusted, incremental=True)
    assert not report.intact
    assert report.window == (1, 6)


def test_a_truncated_tail_after_a_checkpoint_is_detected(tenant, signer, stores, trusted):
    add_events(tenant, 3)
    sign(signer, stores, tenant)  # seq 9
    cut_tail(tenant, 5)
    assert check(tenant, [], trusted, complete=False).intact  # consistent without checkpoints
    report = check(tenant, stores, trusted)
    assert not report.intact
    assert report.first_bad_seq == 6 and report.window == (6, 9)
    assert "rows after seq 5 are missing" in report.reason


def test_a_restored_older_backup_is_detected(tenant, signer, stores, trusted):
    """A backup taken at seq 6, restored after a checkpoint of seq 9 and its record."""
    sign(signer, stores, tenant)
    add_events(tenant, 2)
    sign(signer, stores, tenant)
    cut_tail(tenant, 6)
    report = check(tenant, stores, trusted, incremental=True)
    assert not report.intact
    assert report.window == (7, 9)


def test_rows_deleted_in_the_middle_are_still_detected(tenant, signer, stores, trusted):
    sign(signer, stores, tenant)
    _triggers(False)
    AuditEvent.objects.filter(tenant_id=tenant.pk, seq__in=[2, 3, 4]).delete()
    _triggers(True)
    report = check(tenant, stores, trusted)
    assert (report.first_bad_seq, report.window) == (2, (2, 7))


def test_a_deleted_checkpoint_is_detected(tenant, signer, stores, trusted):
    for _ in range(3):
        sign(signer, stores, tenant)
        add_events(tenant, 1)
    seqs = stores[0].seqs(f"tenant:{tenant.pk}")
    assert seqs == [6, 8, 10]
    middle = stores[0].path / f"tenant-{tenant.pk}" / f"{8:020d}.json"
    # The same checkpoint is gone from every store (a store admin with both keys):
    for store in stores:
        (store.path / middle.relative_to(stores[0].path)).unlink()
    report = check(tenant, stores, trusted)
    assert not report.intact
    assert "checkpoint between seq 6 and seq 10 is missing" in report.reason
    assert report.window == (7, 10)


def test_the_newest_checkpoint_deleted_from_every_store_is_detected_by_its_record(
    tenant, signer, stores, trusted
):
    sign(signer, stores, tenant)
    for store in stores:
        (store.path / f"tenant-{tenant.pk}" / f"{6:020d}.json").unlink()
    report = check(tenant, stores, trusted)
    assert not report.intact
    assert "checkpoint of seq 6 recorded at seq 7 is in no store" in report.reason
    # An auditor's own copy need not hold every checkpoint: not a finding there.
    assert check(tenant, stores, trusted, complete=False).intact


def test_a_checkpoint_forged_with_another_key_is_detected(
    tenant, signer, stores, trusted, tmp_path
):
    sign(signer, stores, tenant)
    add_events(tenant, 1)
    rewrite_consistently(tenant, 2, actor_label="forger")
    intruder = Ed25519KeySigner(Ed25519PrivateKey.generate())
    # The attacker signs the rewritten head with their own key into the store folder.
    sign(intruder, [DirectoryStore(tmp_path / "worm", "worm")], tenant)
    report = check(tenant, stores, trusted)
    assert not report.intact
    assert "not a trusted key" in report.reason or "rewritten" in report.reason


def test_an_altered_checkpoint_statement_fails_its_signature(tenant, signer, stores, trusted):
    checkpoint = sign(signer, stores, tenant).signed[0]
    rewrite_consistently(tenant, 4, data={"n": 99})
    path = stores[0].path / f"tenant-{tenant.pk}" / f"{6:020d}.json"
    path.chmod(0o644)
    altered = {**checkpoint.statement, "hash": head_of(tenant).hash}
    body = {"statement": altered, "signature": base64.b64encode(checkpoint.signature).decode()}
    path.write_bytes(canonical_bytes(body))
    report = check(tenant, stores[:1], trusted)
    assert not report.intact
    assert "signature does not verify" in report.reason


def test_key_rotation_keeps_old_checkpoints_verifiable(tenant, signer, stores, trusted):
    sign(signer, stores, tenant)
    add_events(tenant, 1)
    rotated = new_signer(trusted)
    assert rotated.key_id != signer.key_id
    second = sign(rotated, stores, tenant).signed[0]
    assert second.key_id == rotated.key_id
    assert check(tenant, stores, trusted).intact
    # Drop the retired key from the trusted set: its checkpoints no longer count as genuine.
    (trusted / f"{signer.key_id.replace(':', '-')}.pem").unlink()
    report = check(tenant, stores, trusted)
    assert not report.intact and "not a trusted key" in report.reason


# --- the commands ----------------------------------------------------------------------------


def test_audit_checkpoint_and_audit_verify_commands(configured, tenant, stores, tmp_path, capsys):
    call_command("audit_checkpoint")
    out = capsys.readouterr().out
    assert f"SIGNED  tenant:{tenant.pk} at seq 6" in out
    call_command("audit_verify", "--tenant", tenant.slug)
    assert f"OK      {tenant.slug}: 7 events, 2 checkpoints" in capsys.readouterr().out
    # An auditor verifies against their own copy of the checkpoints and their own key copy.
    copy = tmp_path / "auditor-copy"
    copy.mkdir()
    (copy / f"tenant-{tenant.pk}").mkdir()
    for source in (stores[0].path / f"tenant-{tenant.pk}").iterdir():
        (copy / f"tenant-{tenant.pk}" / source.name).write_bytes(source.read_bytes())
    rewrite_consistently(tenant, 5, target_repr="nothing to see")
    with pytest.raises(CommandError) as failed:
        call_command(
            "audit_verify",
            "--tenant",
            tenant.slug,
            "--checkpoints",
            str(copy),
            "--keys",
            configured.AUDIT_TRUSTED_KEYS[0],
        )
    assert failed.value.returncode == 1
    assert "[untrusted: seq 1-6]" in capsys.readouterr().out


def test_audit_checkpoint_without_a_key_fails_clearly(settings, tenant, stores):
    settings.AUDIT_SIGNING_KEY_FILE = ""
    settings.AUDIT_CHECKPOINT_STORES = [
        {"CLASS": "audit.checkpoints.DirectoryStore", "OPTIONS": {"path": str(stores[0].path)}}
    ]
    with pytest.raises(CommandError) as failed:
        call_command("audit_checkpoint")
    assert "checkpoint.no_key" in str(failed.value)


def test_audit_keygen_never_overwrites_a_key(tmp_path, capsys):
    private, trusted = tmp_path / "k" / "signing.pem", tmp_path / "trusted"
    call_command("audit_keygen", "--private", str(private), "--trusted-dir", str(trusted))
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    keys = trusted_keys([trusted])
    assert len(keys) == 1
    before = private.read_bytes()
    with pytest.raises(CommandError):
        call_command("audit_keygen", "--private", str(private), "--trusted-dir", str(trusted))
    call_command(
        "audit_keygen", "--private", str(private), "--trusted-dir", str(trusted), "--if-missing"
    )
    assert private.read_bytes() == before and len(trusted_keys([trusted])) == 1


def test_the_beat_task_signs_and_records_a_failing_store(configured, tenant, tmp_path):
    from audit.tasks import audit_checkpoint_task

    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")
    configured.AUDIT_CHECKPOINT_STORES = [
        *configured.AUDIT_CHECKPOINT_STORES,
        {"CLASS": "audit.checkpoints.DirectoryStore", "OPTIONS": {"path": str(blocked)}},
    ]
    result = audit_checkpoint_task()
    assert result["signed"] >= 1 and result["failures"] >= 1
    failure = AuditEvent.objects.filter(tenant__isnull=True, action="audit.checkpoint_failed")
    assert failure.filter(data__chain=f"tenant:{tenant.pk}").exists()


def test_the_chain_page_shows_the_checkpoint_key_lag_and_failures(configured, tenant, tmp_path):
    from audit.tasks import audit_checkpoint_task

    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")
    configured.AUDIT_CHECKPOINT_STORES = [
        *configured.AUDIT_CHECKPOINT_STORES,
        {"CLASS": "audit.checkpoints.DirectoryStore", "OPTIONS": {"path": str(blocked)}},
    ]
    audit_checkpoint_task()  # signs seq 6, records it as seq 7; the blocked store fails
    add_events(tenant, 2)
    client = signed_in_client(staff(Role.AUDITOR, tenant=tenant))
    unsigned = AuditChainHead.objects.get(tenant=tenant).seq - 6
    assert unsigned >= 3  # the checkpoint's own record, then two events
    page = client.get(f"/t/{tenant.slug}/audit/chain/").content.decode()
    status = page[page.index('id="checkpoint-status"') :]
    assert "#6" in status and "✓" in status.split("Kept in")[0]
    assert f"Events since</dt><dd>{unsigned}</dd>" in status
    failures = page[page.index('id="checkpoint-failures"') :]
    assert "blocked" in failures.split("</ul>")[0]
    configured.AUDIT_TRUSTED_KEYS = []  # the signing key is no longer trusted here
    page = client.get(f"/t/{tenant.slug}/audit/chain/").content.decode()
    assert "not among the keys this deployment trusts" in page


def test_checkpoint_files_are_plain_json_an_outsider_can_read(tenant, signer, stores):
    sign(signer, stores, tenant)
    path = stores[0].path / f"tenant-{tenant.pk}" / f"{6:020d}.json"
    body = json.loads(path.read_text())
    assert set(body) == {"statement", "signature"}
    assert set(body["statement"]) == {
        "format",
        "chain",
        "tenant_id",
        "seq",
        "hash",
        "signed_at",
        "prev",
        "key_id",
    }


def test_a_whole_chain_removed_with_its_head_is_reported_from_the_stores(
    tenant, signer, stores, trusted
):
    from audit.verify import verify_all

    sign(signer, stores, tenant)
    _triggers(False)
    AuditEvent.objects.filter(tenant_id=tenant.pk).delete()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditchainhead WHERE tenant_id = %s", [tenant.pk])
    _triggers(True)
    source = CheckpointSource(stores, trusted_keys([trusted]))
    report = next(r for r in verify_all(checkpoints=source) if r.chain == tenant.slug)
    assert not report.intact and report.window == (1, 6)
    assert "rows after seq 0 are missing" in report.reason


def test_the_incremental_walk_reads_only_the_newest_checkpoint(
    tenant, signer, stores, trusted, monkeypatch
):
    for _ in range(4):
        sign(signer, stores, tenant)
        add_events(tenant, 2)
    read: list[int] = []
    original = DirectoryStore.get

    def counting_get(self, chain, seq):
        read.append(seq)
        return original(self, chain, seq)

    monkeypatch.setattr(DirectoryStore, "get", counting_get)
    report = check(tenant, stores, trusted, incremental=True)
    assert report.intact
    newest = stores[0].seqs(f"tenant:{tenant.pk}")[-1]
    assert set(read) == {newest}
    read.clear()
    assert check(tenant, stores, trusted).intact  # the full walk reads every one
    assert len(set(read)) == 4
