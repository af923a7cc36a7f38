"""Evidence attachments: checked before storing, stored apart, served only after checks, audited."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
from django.db import DatabaseError, connection

from audit.models import AuditEvent
from recovery.cases.choices import CaseStatus, Route
from recovery.cases.exceptions import AttachmentTampered
from recovery.cases.models import EvidenceAttachment, RecoveryCase
from recovery.cases.services import case_open, context_record
from recovery.cases.services.attachments import attachment_add, attachment_open
from recovery.cases.storage import EvidenceStore, check_storage_outside_web_root
from recovery.cases.uploads import sniff_content_type
from tenants.choices import Role
from tenants.exceptions import CrossTenantNotFound, InvalidInput, PolicyDenied

from ..factories import make_account_with, staff

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(64))
PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n"
TEXT = b"Caller read the badge number aloud; matched HR record.\n"


@pytest.fixture(autouse=True)
def store_dir(settings, tmp_path):
    settings.EVIDENCE_STORAGE_DIR = tmp_path
    return tmp_path


@pytest.fixture
def team(acme):
    return {
        "agent": staff(Role.AGENT, tenant=acme),
        "security": staff(Role.SECURITY_OFFICER, tenant=acme),
        "auditor": staff(Role.AUDITOR, tenant=acme),
        "admin": staff(Role.TENANT_ADMIN, tenant=acme),
    }


@pytest.fixture
def case(acme, team):
    account = make_account_with(acme)
    return case_open(
        actor=team["agent"], account=account, case_type="password_reset", channel="phone"
    )


@pytest.fixture
def security_case(acme, team):
    """A case in the security queue: only security officers work it."""
    account = make_account_with(acme, admin_roles=["Global Administrator"])
    opened = case_open(actor=team["agent"], account=account, case_type="mfa_reset", channel="phone")
    assert opened.route == Route.SECURITY
    return opened


def stored_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def events(case, action):
    return list(
        AuditEvent.objects.filter(
            tenant=case.tenant, action=action, target_id=str(case.pk)
        ).order_by("seq")
    )


def revision(case):
    return RecoveryCase.objects.get(pk=case.pk).revision


def assert_nothing_stored(root, case, revision_before):
    assert stored_files(root) == []
    assert not EvidenceAttachment.objects.filter(case=case).exists()
    assert events(case, "evidence.attachment_added") == []
    assert revision(case) == revision_before


# --- storing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "content_type"),
    [
        ("id-card.png", PNG, "image/png"),
        ("Badge Photo.JPG", JPEG, "image/jpeg"),
        ("letter.pdf", PDF, "application/pdf"),
        ("call-transcript.txt", TEXT, "text/plain"),
    ],
)
def test_attachment_is_stored_under_a_random_name_with_its_sha256(
    store_dir, case, team, name, content, content_type
):
    before = revision(case)
    attachment = attachment_add(actor=team["agent"], case=case, name=name, content=content)

    assert attachment.original_name == name
    assert attachment.content_type == content_type
    assert attachment.size == len(content)
    assert attachment.sha256 == hashlib.sha256(content).hexdigest()
    assert len(attachment.stored_name) == 32 and int(attachment.stored_name, 16) >= 0
    path = store_dir / str(case.tenant_id) / attachment.stored_name
    assert stored_files(store_dir) == [path]
    assert path.read_bytes() == content
    assert name not in str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert revision(case) == before + 1
    (added,) = events(case, "evidence.attachment_added")
    assert added.data == {
        "attachment": attachment.pk,
        "evidence": None,
        "sha256": attachment.sha256,
        "size": len(content),
        "content_type": content_type,
    }


def test_the_same_name_twice_gives_two_files(store_dir, case, team):
    first = attachment_add(actor=team["agent"], case=case, name="a.png", content=PNG)
    second = attachment_add(actor=team["agent"], case=case, name="a.png", content=PNG + b"x")
    assert first.stored_name != second.stored_name
    assert len(stored_files(store_dir)) == 2


def test_attachment_can_belong_to_evidence_of_its_own_case_only(acme, case, team):
    # A photo of a document is context (a fact on record), never a signal by itself.
    evidence = context_record(
        actor=team["agent"], case=case, topic="id_document", statement="held up a staff badge"
    )
    attached = attachment_add(
        actor=team["agent"], case=case, name="id.png", content=PNG, evidence=evidence
    )
    assert attached.evidence == evidence
    other = case_open(
        actor=team["agent"],
        account=make_account_with(acme),
        case_type="password_reset",
        channel="phone",
    )
    with pytest.raises(InvalidInput) as refused:
        attachment_add(
            actor=team["agent"], case=other, name="id.png", content=PNG, evidence=evidence
        )
    assert refused.value.code == "evidence.attachment_evidence_not_on_case"


def test_store_never_overwrites_an_existing_file(tmp_path, monkeypatch):
    store = EvidenceStore(tmp_path)
    monkeypatch.setattr("recovery.cases.storage.secrets.token_hex", lambda n: "ab" * n)
    name = store.write(7, b"first")
    with pytest.raises(FileExistsError):
        store.write(7, b"second")
    assert store.read(7, name) == b"first"


@pytest.mark.parametrize("stored_name", ["../../etc/passwd", "a" * 31, "A" * 32, "x.png"])
def test_store_refuses_anything_but_its_own_random_names(tmp_path, stored_name):
    with pytest.raises(ValueError):
        EvidenceStore(tmp_path).read(7, stored_name)


def test_system_check_refuses_evidence_inside_a_served_directory(settings, tmp_path):
    settings.STATIC_ROOT = str(tmp_path)
    settings.EVIDENCE_STORAGE_DIR = tmp_path / "evidence"
    assert [e.id for e in check_storage_outside_web_root()] == ["recovery.E001"]
    settings.STATIC_ROOT = str(tmp_path / "static")
    assert check_storage_outside_web_root() == []


# --- refusals: a clear code and nothing stored ------------------------------------------------

ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(56)
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + bytes(56)


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("empty.png", b"", "evidence.attachment_empty"),
        ("tool.png", ELF, "evidence.attachment_type_not_allowed"),
        ("setup.png", EXE, "evidence.attachment_type_not_allowed"),
        (
            "page.png",
            b"<!DOCTYPE html><script>alert(1)</script>",
            "evidence.attachment_type_not_allowed",
        ),
        ("page.txt", b"  <html><body onload=x()>", "evidence.attachment_type_not_allowed"),
        (
            "logo.txt",
            b'<svg xmlns="http://www.w3.org/2000/svg"/>',
            "evidence.attachment_type_not_allowed",
        ),
        ("data.txt", b"abc\x00def", "evidence.attachment_type_not_allowed"),
        ("term.txt", b"hello \x1b[31mred", "evidence.attachment_type_not_allowed"),
        ("latin1.txt", "café".encode("latin-1"), "evidence.attachment_type_not_allowed"),
        ("notes.png", TEXT, "evidence.attachment_type_mismatch"),
        ("photo.pdf", PNG, "evidence.attachment_type_mismatch"),
        ("photo", PNG, "evidence.attachment_type_mismatch"),
        ("../../etc/passwd", TEXT, "evidence.attachment_name_invalid"),
        ("a/b.png", PNG, "evidence.attachment_name_invalid"),
        ("a\\b.png", PNG, "evidence.attachment_name_invalid"),
        ("..png", PNG, "evidence.attachment_name_invalid"),
        ("x\x00.png", PNG, "evidence.attachment_name_invalid"),
        ("x\n.png", PNG, "evidence.attachment_name_invalid"),
        ("invoice\u202egnp.exe", PNG, "evidence.attachment_name_invalid"),
        ("", PNG, "evidence.attachment_name_invalid"),
        ("   ", PNG, "evidence.attachment_name_invalid"),
        ("a" * 197 + ".png", PNG, "evidence.attachment_name_invalid"),
    ],
)
def test_bad_upload_is_refused_with_a_code_and_nothing_is_stored(
    store_dir, case, team, name, content, code
):
    before = revision(case)
    with pytest.raises(InvalidInput) as refused:
        attachment_add(actor=team["agent"], case=case, name=name, content=content)
    assert refused.value.code == code
    assert refused.value.field_errors["file"]
    assert_nothing_stored(store_dir, case, before)


def test_size_limit_is_the_setting_inclusive(settings, store_dir, case, team):
    settings.EVIDENCE_MAX_BYTES = len(PNG)
    attachment_add(actor=team["agent"], case=case, name="ok.png", content=PNG)
    before = revision(case)
    with pytest.raises(InvalidInput) as refused:
        attachment_add(actor=team["agent"], case=case, name="big.png", content=PNG + b"\x00")
    assert refused.value.code == "evidence.attachment_too_large"
    assert len(stored_files(store_dir)) == 1
    assert revision(case) == before


def test_name_of_200_characters_is_accepted(case, team):
    name = "a" * 196 + ".png"
    assert (
        attachment_add(actor=team["agent"], case=case, name=name, content=PNG).original_name == name
    )


def test_default_size_limit_is_ten_mebibytes():
    from django.conf import settings

    assert settings.EVIDENCE_MAX_BYTES == 10 * 1024 * 1024


@pytest.mark.parametrize(
    "status", [CaseStatus.PENDING_APPROVAL, CaseStatus.READY, CaseStatus.CANCELLED]
)
def test_attachments_only_while_collecting_evidence(store_dir, case, team, status):
    RecoveryCase.objects.filter(pk=case.pk).update(status=status)
    before = revision(case)
    with pytest.raises(InvalidInput) as refused:
        attachment_add(actor=team["agent"], case=case, name="late.png", content=PNG)
    assert refused.value.code == "evidence.case_not_collecting"
    assert_nothing_stored(store_dir, case, before)


def test_who_may_not_work_the_case_cannot_attach(store_dir, security_case, team):
    before = revision(security_case)
    for actor in (team["agent"], team["auditor"]):
        with pytest.raises(PolicyDenied):
            attachment_add(actor=actor, case=security_case, name="x.png", content=PNG)
    assert_nothing_stored(store_dir, security_case, before)
    assert attachment_add(actor=team["security"], case=security_case, name="x.png", content=PNG)


def test_database_failure_after_writing_leaves_no_file(store_dir, case, team, monkeypatch):
    written = []
    original_write = EvidenceStore.write

    def spy(self, tenant_id, content):
        written.append(original_write(self, tenant_id, content))
        return written[-1]

    monkeypatch.setattr(EvidenceStore, "write", spy)
    before = revision(case)
    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'audit store unavailable'; END $$;
            CREATE TRIGGER refuse BEFORE INSERT ON audit_auditevent
              FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse();
        """)
    with pytest.raises(DatabaseError, match="audit store unavailable"):
        attachment_add(actor=team["agent"], case=case, name="id.png", content=PNG)
    assert len(written) == 1  # the file was written before the database part failed ...
    assert not (store_dir / str(case.tenant_id) / written[0]).exists()  # ... and removed
    assert stored_files(store_dir) == []
    assert not EvidenceAttachment.objects.filter(case=case).exists()
    assert revision(case) == before


# --- reading: permission, tenant, integrity, audit --------------------------------------------


def test_every_download_is_audited(case, team):
    attachment = attachment_add(actor=team["agent"], case=case, name="id.png", content=PNG)
    for reader in (team["agent"], team["agent"], team["auditor"], team["security"]):
        opened = attachment_open(actor=reader, case=case, attachment_id=attachment.pk)
        assert opened.content == PNG and opened.attachment == attachment
    downloads = events(case, "evidence.attachment_downloaded")
    assert [e.actor_id for e in downloads] == [
        str(u.pk) for u in (team["agent"], team["agent"], team["auditor"], team["security"])
    ]
    assert downloads[0].data == {
        "attachment": attachment.pk,
        "sha256": attachment.sha256,
        "size": len(PNG),
    }


def test_attachments_stay_readable_after_the_case_ends(case, team):
    attachment = attachment_add(actor=team["agent"], case=case, name="id.png", content=PNG)
    RecoveryCase.objects.filter(pk=case.pk).update(status=CaseStatus.CLOSED)
    opened = attachment_open(actor=team["auditor"], case=case, attachment_id=attachment.pk)
    assert opened.content == PNG


def test_other_tenants_user_gets_not_found(acme, globex, case, team):
    attachment = attachment_add(actor=team["agent"], case=case, name="id.png", content=PNG)
    outsider = staff(Role.SECURITY_OFFICER, tenant=globex)
    with pytest.raises(CrossTenantNotFound):
        attachment_open(actor=outsider, case=case, attachment_id=attachment.pk)
    own_case = case_open(
        actor=outsider,
        account=make_account_with(globex),
        case_type="password_reset",
        channel="phone",
    )
    with pytest.raises(CrossTenantNotFound):
        attachment_open(actor=outsider, case=own_case, attachment_id=attachment.pk)
    assert events(case, "evidence.attachment_downloaded") == []


def test_attachment_of_another_case_or_a_bad_id_is_not_found(acme, case, team):
    attachment = attachment_add(actor=team["agent"], case=case, name="id.png", content=PNG)
    other = case_open(
        actor=team["agent"],
        account=make_account_with(acme),
        case_type="password_reset",
        channel="phone",
    )
    for bad_id in (attachment.pk, attachment.pk + 10_000, "1 OR 1=1", None):
        with pytest.raises(CrossTenantNotFound):
            attachment_open(actor=team["agent"], case=other, attachment_id=bad_id)


def test_same_tenant_user_without_case_access_is_denied_and_recorded(security_case, team):
    attachment = attachment_add(
        actor=team["security"], case=security_case, name="id.png", content=PNG
    )
    for outsider in (team["agent"], team["admin"]):
        with pytest.raises(PolicyDenied):
            attachment_open(actor=outsider, case=security_case, attachment_id=attachment.pk)
    violations = events(security_case, "policy.violation")
    assert [v.data["code"] for v in violations] == [
        "case.security_queue_only",
        "case.role_required",
    ]
    assert events(security_case, "evidence.attachment_downloaded") == []
    assert attachment_open(actor=team["auditor"], case=security_case, attachment_id=attachment.pk)


def test_tampered_or_missing_file_is_refused_and_recorded(store_dir, case, team):
    attachment = attachment_add(actor=team["agent"], case=case, name="id.png", content=PNG)
    path = store_dir / str(case.tenant_id) / attachment.stored_name
    path.write_bytes(PNG + b"<script>")
    with pytest.raises(AttachmentTampered) as refused:
        attachment_open(actor=team["agent"], case=case, attachment_id=attachment.pk)
    assert refused.value.code == "evidence.attachment_tampered"
    os.remove(path)
    with pytest.raises(AttachmentTampered):
        attachment_open(actor=team["agent"], case=case, attachment_id=attachment.pk)
    failures = events(case, "evidence.attachment_integrity_failed")
    assert [f.data["found"] for f in failures] == [
        hashlib.sha256(PNG + b"<script>").hexdigest(),
        "missing",
    ]
    assert all(f.data["sha256"] == attachment.sha256 for f in failures)
    assert events(case, "evidence.attachment_downloaded") == []


# --- sniffing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (PDF, "application/pdf"),
        ("Grüße, tab\tand CRLF\r\n".encode(), "text/plain"),
        ("\ufeffBOM text".encode(), "text/plain"),
        (b"GIF89a" + bytes(10), None),
        (b"PK\x03\x04zip", None),
        (b"\x89PNX\r\n", None),
        (b"<?xml version='1.0'?><a/>", None),
    ],
)
def test_type_is_sniffed_from_the_bytes(content, expected):
    assert sniff_content_type(content) == expected
