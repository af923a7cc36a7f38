"""Importing accounts from a system of record: validated whole, applied whole, history kept."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit.context import Actor
from audit.models import AuditEvent
from recovery.imports import parse_accounts
from recovery.models import ContactMethod, ProtectedAccount
from recovery.services import accounts_import

pytestmark = pytest.mark.django_db

HEADER = (
    "external_id,username,display_name,groups,admin_roles,mailbox_type,no_helpdesk_reset,"
    "mobile,mobile_registered_at,notification_email\n"
)
GOOD_ROW = (
    "E1,jane@acme.test,Jane Doe,Finance;Staff,,user,false,+15551230001,"
    "2023-01-01T00:00:00+00:00,jane.home@example.test\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def import_file(path: Path, tenant) -> None:
    call_command("import_accounts", str(path), "--tenant", tenant.slug, "--source", "hris")


def test_csv_import_creates_accounts_with_contacts_and_audit(acme, tmp_path):
    import_file(write(tmp_path, "a.csv", HEADER + GOOD_ROW), acme)
    account = ProtectedAccount.objects.for_tenant(acme).get(external_id="E1")
    assert account.groups == ["Finance", "Staff"]
    mobile = account.contact_methods.get(kind="mobile")
    assert mobile.value == "+15551230001" and mobile.source == "hris"
    assert mobile.registered_at.year == 2023  # first import keeps the source's date
    assert mobile.masked == "***01"
    assert account.contact_methods.get(kind="email").masked == "j***@example.test"
    actions = set(AuditEvent.objects.filter(tenant=acme).values_list("action", flat=True))
    assert {"account.created", "contact.added", "accounts.imported"} <= actions
    assert "+15551230001" not in json.dumps(
        list(AuditEvent.objects.filter(tenant=acme).values_list("data", flat=True))
    )


def test_changed_contact_keeps_history_and_starts_quarantine_now(acme, tmp_path):
    import_file(write(tmp_path, "a.csv", HEADER + GOOD_ROW), acme)
    changed = GOOD_ROW.replace(
        "+15551230001,2023-01-01T00:00:00+00:00", "+15559999999,2020-01-01T00:00:00+00:00"
    )
    before = timezone.now()
    import_file(write(tmp_path, "b.csv", HEADER + changed), acme)
    mobiles = ContactMethod.objects.for_tenant(acme).filter(kind="mobile").order_by("id")
    old, new = list(mobiles)
    assert old.value == "+15551230001" and old.replaced_at is not None
    assert new.value == "+15559999999" and new.replaced_at is None
    # The claimed 2020 date is ignored for a value first seen now (R-04 quarantine).
    assert new.registered_at >= before
    assert AuditEvent.objects.filter(tenant=acme, action="contact.replaced").count() == 1


def test_reimporting_the_same_file_changes_nothing(acme, tmp_path):
    path = write(tmp_path, "a.csv", HEADER + GOOD_ROW)
    import_file(path, acme)
    events = AuditEvent.objects.filter(tenant=acme).count()
    import_file(path, acme)
    assert ContactMethod.objects.for_tenant(acme).count() == 2
    # only the batch summary is new
    assert AuditEvent.objects.filter(tenant=acme).count() == events + 1


def test_bad_rows_are_reported_by_line_and_nothing_is_applied(acme, tmp_path, capsys):
    bad = (
        HEADER
        + GOOD_ROW
        + "E2,,No Username,,,user,false,,,\n"
        + "E3,x@acme.test,Bad Box,,,castle,maybe,+15550001,not-a-date,not-an-email\n"
        + GOOD_ROW
    )
    with pytest.raises(CommandError, match="nothing was imported"):
        import_file(write(tmp_path, "bad.csv", bad), acme)
    err = capsys.readouterr().err
    assert "line 3, username: is required" in err
    assert "line 4, mailbox_type: must be one of" in err
    assert "line 4, no_helpdesk_reset: must be true or false" in err
    assert "line 4, mobile_registered_at: must be an ISO-8601" in err
    assert "line 4, notification_email_value: is not an email address" in err
    assert "line 5, external_id: repeats line 2" in err
    assert not ProtectedAccount.objects.for_tenant(acme).exists()
    assert not AuditEvent.objects.filter(tenant=acme, action="account.created").exists()


def test_json_import_with_sim_change_signal(acme, tmp_path):
    swapped = (timezone.now() - timedelta(days=2)).isoformat()
    items = [
        {
            "external_id": "G1",
            "username": "cfo@acme.test",
            "display_name": "CFO",
            "admin_roles": ["Global Administrator"],
            "delegations": ["E9"],
            "contacts": [{"kind": "mobile", "value": "+15550000009", "sim_changed_at": swapped}],
        }
    ]
    import_file(write(tmp_path, "a.json", json.dumps(items)), acme)
    account = ProtectedAccount.objects.for_tenant(acme).get(external_id="G1")
    assert account.admin_roles == ["Global Administrator"]
    assert account.contact_methods.get().sim_changed_at is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "line 1, : not valid JSON"),
        ('{"a": 1}', "must hold a JSON array"),
        ("[1]", "line 1, : must be an object"),
        (
            '[{"external_id": "X", "username": "u", "display_name": "d", "contacts": [7]}]',
            "line 1, contacts[0]: must be an object with kind and value",
        ),
    ],
)
def test_malformed_json_is_explained(acme, tmp_path, capsys, text, message):
    with pytest.raises(CommandError):
        import_file(write(tmp_path, "x.json", text), acme)
    assert message in capsys.readouterr().err.replace("line 1: ", "line 1, : ")


def test_unknown_tenant_and_format_are_usage_errors(acme, tmp_path):
    with pytest.raises(CommandError) as unknown:
        call_command("import_accounts", str(write(tmp_path, "a.csv", HEADER)), "--tenant", "nope")
    assert unknown.value.returncode == 2
    with pytest.raises(CommandError) as fmt:
        import_file(write(tmp_path, "a.txt", HEADER), acme)
    assert fmt.value.returncode == 2


def test_import_touches_only_the_named_tenant(acme, globex):
    records, errors = parse_accounts(HEADER + GOOD_ROW, "csv")
    assert errors == []
    accounts_import(actor=Actor.system("t"), tenant=globex, records=records, source="hris")
    accounts_import(actor=Actor.system("t"), tenant=acme, records=records, source="hris")
    assert ProtectedAccount.objects.filter(external_id="E1").count() == 2
    assert ContactMethod.objects.for_tenant(acme).count() == 2


def test_import_caches_the_tier_computed_by_the_tenant_policy(acme, tmp_path):
    rows = (
        GOOD_ROW
        + "E2,adm@acme.test,Admin,,Global Administrator,user,false,,,\n"
        + "E3,box@acme.test,Shared box,,,shared,false,,,\n"
        + "E4,u@acme.test,User,Staff,,user,false,,,\n"
    )
    import_file(write(tmp_path, "a.csv", HEADER + rows), acme)
    tiers = dict(ProtectedAccount.objects.for_tenant(acme).values_list("external_id", "tier"))
    assert tiers == {"E1": "T1", "E2": "T2", "E3": "T1", "E4": "T0"}


def test_enrolment_reference_comes_from_the_system_of_record_by_csv_and_json(acme, tmp_path):
    """R-05: the reference a proofing verdict must name is the system of record's, synced."""
    header = HEADER.rstrip("\n") + ",enrolment_reference\n"
    import_file(write(tmp_path, "a.csv", header + GOOD_ROW.rstrip("\n") + ",ENR-0001\n"), acme)
    account = ProtectedAccount.objects.for_tenant(acme).get(external_id="E1")
    assert account.enrolment_reference == "ENR-0001"
    item = {"external_id": "E1", "username": "jane@acme.test", "display_name": "Jane Doe"}
    resync = json.dumps([{**item, "enrolment_reference": "R2"}])
    import_file(write(tmp_path, "b.json", resync), acme)
    account.refresh_from_db()
    assert account.enrolment_reference == "R2"
    updated = AuditEvent.objects.filter(tenant=acme, action="account.updated").last()
    assert "enrolment_reference" in json.dumps(updated.data)
    too_long = {**item, "enrolment_reference": "x" * 129}
    _records, errors = parse_accounts(json.dumps([too_long]), "json")
    assert [str(e) for e in errors] == [
        "line 1, enrolment_reference: must be at most 128 characters"
    ]
