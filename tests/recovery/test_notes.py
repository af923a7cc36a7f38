"""Case notes: secrets are masked before storage and never reach the audit trail (R-49)."""

from __future__ import annotations

import json

import pytest
from auditlog.models import LogEntry

from audit.models import AuditEvent
from recovery.cases.masking import MASK, is_token_like, mask_secrets
from recovery.cases.models import CaseNote, RecoveryCase
from recovery.cases.services import case_open
from recovery.cases.services.attachments import MAX_NOTE_LENGTH, note_add
from tenants.choices import Role
from tenants.exceptions import InvalidInput, PolicyDenied

from ..factories import make_account_with, staff

# Each: (text, the secret in it). One test per masking rule.
SECRETS = [
    ("Caller gave password: Hunter2!! before I stopped them.", "Hunter2!!"),
    ("Password=Winter2024", "Winter2024"),
    ("temp passwd: s3cret-x", "s3cret-x"),
    ('password: "correct horse battery staple" (quoted)', "horse battery staple"),
    ("passphrase = 'blue tr0ub4dor lamp' said twice", "tr0ub4dor lamp"),
    ("the password is hunter2", "hunter2"),
    ("passcode=884211", "884211"),
    ("Caller read PIN 4711 off the card", "4711"),
    ("pin: 0000", "0000"),
    ("otp 123456 was read out", "123456"),
    ("One-time code 774411", "774411"),
    ("token: abc", "abc"),
    ("secret=swordfish", "swordfish"),
    ("recovery code: ABCD-EFGH-1234", "ABCD-EFGH-1234"),
    ("api key: k1", "k1"),
    ("pasted ghp_16C7e42F292c6912E7710c838347Ae178B4a into the chat", "ghp_16C7e42F292c6912E7710c"),
    ("session eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9 seen", "eyJhbGciOiJIUzI1NiIsInR5cCI6"),
    ("key (q8Zr3LmX0pVt7YwK2sNd) in brackets", "q8Zr3LmX0pVt7YwK2sNd"),
    (
        "link https://helpdesk.example.com/reset/confirm?session=Ab3kZ9qP2mN7xY4wL8tRq1 sent",
        "Ab3kZ9qP2mN7xY4wL8tRq1",
    ),
    ("hex 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "9f86d081884c"),
]

ORDINARY = [
    "Caller could not remember the password for the VPN; the token expired yesterday.",
    "Please pin the ticket and reset the password. Escalated as INC-00012345 per RITM0012345.",
    "Follow-up on REQ00123456-RITM0045678 and INC-0001234567890123 tomorrow.",
    "See https://helpdesk.example.com/tickets/INC-00012345 or mail john.smith2@example.com.",
    "Call at 2024-06-01T10:30:00Z from SRV-FIN-DB01.corp.example.com, on Windows10-Enterprise-22H2",
    "Internationalization, counterrevolutionaries and electroencephalography are long words.",
    "File at C:\\Users\\jdoe\\Documents\\report2023.docx; state-of-the-art-technology rollout.",
    "The user's OTP device was lost; the secret question is not evidence. Passwords rotate.",
    "Tokens issued: none. PIN reset requested via the portal.",
]


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_each_kind_of_secret_is_masked(text, secret):
    masked, count = mask_secrets(text)
    assert secret not in masked
    assert MASK in masked and count == 1


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_and_ticket_numbers_are_not_masked(text):
    assert mask_secrets(text) == (text, 0)


def test_several_secrets_are_counted_and_masking_is_idempotent():
    text = "pin 4711, otp 123456 and token: q8Zr3LmX0pVt7YwK2sNd"
    masked, count = mask_secrets(text)
    assert count == 3
    assert mask_secrets(masked) == (masked, 0)


@pytest.mark.parametrize(
    "token",
    [
        "q8Zr3LmX0pVt7YwK2sNd",  # base62, 20 characters
        "3f2b8c1e-9a4d-4b7e-8f3a-1c2d3e4f5a6b",  # uuid
        "b64+Kq9/zR2mX7pL0vN4wT8sY1cF3hJ6==",  # base64
    ],
)
def test_token_like_strings_are_detected(token):
    assert is_token_like(token)


@pytest.mark.parametrize(
    "word",
    [
        "q8Zr3LmX0pVt7YwK2sN",  # 19 characters: under the length floor
        "a1a1a1a1a1a1a1a1a1a1",  # short words, but 1 bit per character
        "qZrLmXpVtYwKsNdQzRlMx",  # letters only
        "getUserById2FromHTTPServer",  # an identifier: long words
        "INC-0001234567890123",  # a long ticket number
    ],
)
def test_thresholds_keep_low_entropy_and_word_like_strings(word):
    assert not is_token_like(word)


# --- the service ------------------------------------------------------------------------------


@pytest.fixture
def team(acme):
    return {
        "agent": staff(Role.AGENT, tenant=acme),
        "security": staff(Role.SECURITY_OFFICER, tenant=acme),
        "auditor": staff(Role.AUDITOR, tenant=acme),
    }


@pytest.fixture
def case(acme, team):
    return case_open(
        actor=team["agent"],
        account=make_account_with(acme),
        case_type="password_reset",
        channel="phone",
    )


def note_events(case):
    return list(
        AuditEvent.objects.filter(
            tenant=case.tenant, action="case.note_added", target_id=str(case.pk)
        )
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_note_is_stored_masked_and_flagged_and_the_audit_has_no_secret(case, team, text, secret):
    before = RecoveryCase.objects.get(pk=case.pk).revision
    note = note_add(actor=team["agent"], case=case, text=text)
    stored = CaseNote.objects.get(pk=note.pk)
    assert secret not in stored.text and MASK in stored.text
    assert stored.flagged and stored.secrets_masked == 1
    (event,) = note_events(case)
    assert event.data == {
        "note": note.pk,
        "length": len(stored.text),
        "secrets_masked": 1,
        "flagged": True,
    }
    assert secret not in json.dumps(event.data) + event.target_repr
    diffs = LogEntry.objects.filter(object_pk=str(note.pk), content_type__model="casenote")
    assert diffs.exists() and all(secret not in (d.changes_text or "") for d in diffs)
    assert all(secret not in json.dumps(d.changes) and "text" not in d.changes for d in diffs)
    assert RecoveryCase.objects.get(pk=case.pk).revision == before + 1


@pytest.mark.django_db
def test_note_without_secrets_is_stored_as_written(case, team):
    text = "<b>Caller</b> & manager agreed; see INC-00012345.\nSecond line."
    note = note_add(actor=team["agent"], case=case, text=text)
    stored = CaseNote.objects.get(pk=note.pk)
    assert (stored.text, stored.flagged, stored.secrets_masked) == (text, False, 0)
    assert stored.author == team["agent"] and stored.tenant == case.tenant
    assert note_events(case)[0].data["secrets_masked"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "note.empty"),
        ("  \n\t", "note.empty"),
        ("x" * (MAX_NOTE_LENGTH + 1), "note.too_long"),
        ("a\x00b", "note.invalid_character"),
    ],
)
def test_bad_note_is_refused_and_nothing_stored(case, team, text, code):
    with pytest.raises(InvalidInput) as refused:
        note_add(actor=team["agent"], case=case, text=text)
    assert refused.value.code == code
    assert not CaseNote.objects.filter(case=case).exists() and note_events(case) == []


@pytest.mark.django_db
def test_only_who_may_work_the_case_adds_notes(acme, team):
    account = make_account_with(acme, admin_roles=["Global Administrator"])
    security_case = case_open(
        actor=team["agent"], account=account, case_type="mfa_reset", channel="phone"
    )
    for actor in (team["agent"], team["auditor"]):
        with pytest.raises(PolicyDenied):
            note_add(actor=actor, case=security_case, text="hello")
    assert not CaseNote.objects.filter(case=security_case).exists()
    assert note_add(actor=team["security"], case=security_case, text="hello").pk
