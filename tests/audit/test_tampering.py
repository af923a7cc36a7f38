"""audit_verify against a privileged attacker who disabled the triggers and edited rows."""

import hashlib

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from audit.chain import HASHED_FIELDS, canonical_json
from audit.context import Actor
from audit.models import AuditEvent
from audit.services import record
from audit.verify import verify_chain
from tenants.rls import system_scope

from ..approle import as_app_role
from ..factories import make_tenant

pytestmark = pytest.mark.django_db
ROWS = 6  # tenant.created + 5


@pytest.fixture
def tenant(db):
    tenant = make_tenant()
    with transaction.atomic():
        for n in range(ROWS - 1):
            record(action="audit.verified", actor=Actor.system("t"), tenant=tenant, data={"n": n})
    return tenant


def tamper(tenant, *statements: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute("ALTER TABLE audit_auditchainhead DISABLE TRIGGER USER")
        for statement in statements:
            cursor.execute(statement.format(t=tenant.pk))
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
        cursor.execute("ALTER TABLE audit_auditchainhead ENABLE TRIGGER USER")


def verify_fails(tenant) -> str:
    with pytest.raises(CommandError) as failed:
        call_command("audit_verify", "--tenant", tenant.slug)
    assert failed.value.returncode == 1
    return str(failed.value)


def _copy_row_sql(seq_expr: str, source_seq: int) -> str:
    columns = [f.column for f in AuditEvent._meta.concrete_fields if f.column != "id"]
    select = ", ".join(seq_expr if c == "seq" else c for c in columns)
    return (
        f"INSERT INTO audit_auditevent ({', '.join(columns)}) SELECT {select} "
        f"FROM audit_auditevent WHERE tenant_id = {{t}} AND seq = {source_seq}"
    )


CASES: dict[str, tuple[list[str], int]] = {
    "modified data": (
        ["UPDATE audit_auditevent SET data = '{{\"n\": 99}}' WHERE tenant_id = {t} AND seq = 3"],
        3,
    ),
    "modified actor": (
        [
            "UPDATE audit_auditevent SET actor_label = 'someone else' "
            "WHERE tenant_id = {t} AND seq = 2"
        ],
        2,
    ),
    "deleted middle row": (["DELETE FROM audit_auditevent WHERE tenant_id = {t} AND seq = 4"], 4),
    "deleted last row": (
        [f"DELETE FROM audit_auditevent WHERE tenant_id = {{t}} AND seq = {ROWS}"],
        ROWS,
    ),
    "inserted row": (
        [
            "UPDATE audit_auditevent SET seq = seq + 100 WHERE tenant_id = {t} AND seq >= 3",
            "UPDATE audit_auditevent SET seq = seq - 99 WHERE tenant_id = {t} AND seq >= 103",
            _copy_row_sql("3", 2),
        ],
        3,
    ),
    "reordered rows": (
        [
            "UPDATE audit_auditevent SET seq = -1 WHERE tenant_id = {t} AND seq = 2",
            "UPDATE audit_auditevent SET seq = 2 WHERE tenant_id = {t} AND seq = 3",
            "UPDATE audit_auditevent SET seq = 3 WHERE tenant_id = {t} AND seq = -1",
        ],
        2,
    ),
    "head hash replaced": (
        ["UPDATE audit_auditchainhead SET hash = repeat('f', 64) WHERE tenant_id = {t}"],
        ROWS,
    ),
    "rehashed head only": (
        ["UPDATE audit_auditchainhead SET seq = seq + 1 WHERE tenant_id = {t}"],
        ROWS + 1,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_audit_verify_names_tenant_and_first_bad_seq(tenant, case):
    statements, _first_bad = CASES[case]
    call_command("audit_verify", "--tenant", tenant.slug)  # intact before
    tamper(tenant, *statements)
    message = verify_fails(tenant)
    assert "1 audit chain(s) failed verification" in message


@pytest.mark.parametrize("chunk", [10_000, 2], ids=["one-chunk", "many-chunks"])
@pytest.mark.parametrize("case", CASES)
def test_audit_verify_output_reports_first_bad_seq(tenant, case, chunk, capsys, monkeypatch):
    monkeypatch.setattr("audit.verify.CHUNK", chunk)
    statements, first_bad = CASES[case]
    tamper(tenant, *statements)
    verify_fails(tenant)
    out = capsys.readouterr().out
    assert f"BROKEN  {tenant.slug}: first bad seq {first_bad} " in out


def test_a_hash_over_an_unescaped_text_is_not_accepted(tenant, capsys):
    """The walk's fast path hashes text fields as they stand only when none holds a quote:
    a quote would let a hand-made hash over unescaped text move content between fields."""
    last = AuditEvent.objects.get(tenant=tenant, seq=ROWS)
    values = [getattr(last, name) for name in HASHED_FIELDS]
    values[HASHED_FIELDS.index("actor_label")] = 'a","b'
    values[HASHED_FIELDS.index("created_at")] = last.created_at.isoformat(timespec="microseconds")
    unescaped = canonical_json(values).replace('a\\",\\"b', 'a","b')
    assert '"a","b"' in unescaped
    forged = hashlib.sha256(unescaped.encode()).hexdigest()
    tamper(
        tenant,
        f"UPDATE audit_auditevent SET actor_label = 'a\",\"b', hash = '{forged}' "
        f"WHERE tenant_id = {{t}} AND seq = {ROWS}",
        f"UPDATE audit_auditchainhead SET hash = '{forged}' WHERE tenant_id = {{t}}",
    )
    verify_fails(tenant)
    assert f"BROKEN  {tenant.slug}: first bad seq {ROWS} " in capsys.readouterr().out


def test_the_app_role_walks_a_chain_and_finds_a_break(app_role, tenant):
    """The walk reads with COPY (of a query, so row level security applies as to any read)."""
    with as_app_role(None), system_scope():
        assert verify_chain(tenant.pk, tenant.slug).intact
    tamper(tenant, "UPDATE audit_auditevent SET action = 'x' WHERE tenant_id = {t} AND seq = 4")
    with as_app_role(None), system_scope():
        assert verify_chain(tenant.pk, tenant.slug).first_bad_seq == 4


def test_tampering_in_one_tenant_does_not_blame_another(tenant):
    other = make_tenant()
    tamper(tenant, "DELETE FROM audit_auditevent WHERE tenant_id = {t} AND seq = 2")
    call_command("audit_verify", "--tenant", other.slug)


def test_periodic_verifier_records_integrity_violation(tenant):
    from audit.tasks import audit_verify_task

    tamper(tenant, "DELETE FROM audit_auditevent WHERE tenant_id = {t} AND seq = 2")
    result = audit_verify_task()
    assert result["broken"] >= 1
    violation = AuditEvent.objects.filter(
        action="audit.integrity_violation", data__chain=tenant.slug
    ).get()
    assert violation.data["first_bad_seq"] == 2
