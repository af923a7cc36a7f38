"""Saved recovery codes, enrolment side: ten codes of at least 64 bits, shown once, stored
only as keyed digests; a new set replaces the whole old one and every address hears of it."""

from __future__ import annotations

import hashlib
import hmac
import math
import re

import pytest
from django.conf import settings
from django.test import Client

from audit.models import AuditEvent
from recovery.cases.services import case_open
from recovery.models import ContactMethod, ProtectedAccount
from recovery.notifications.models import NoticeEvent, OwnerNotice
from recovery.owner import codes as saved
from recovery.owner.models import RecoveryCode, RecoveryCodeSet
from tenants.choices import Role

from ..factories import notices_planned, staff
from .owners import enrolled_client, owner_account, portal_session

pytestmark = pytest.mark.django_db

CODES = "/owner/codes/"


@pytest.fixture
def account(acme) -> ProtectedAccount:
    return owner_account(acme, kinds=("email", "mobile", "desk_phone", "manager"))


@pytest.fixture
def owner(account) -> Client:
    return enrolled_client(account)


def shown(response) -> list[str]:
    assert response.status_code == 200, response.content[:500]
    return re.findall(r"<code>([0-9A-Z-]+)</code>", response.content.decode())


def expected_digest(code: str) -> str:
    """The digest written out here, not imported: HMAC-SHA256 under a key from SECRET_KEY."""
    key = hmac.new(
        settings.SECRET_KEY.encode(), b"vouchsafe.saved-recovery-codes", hashlib.sha256
    ).digest()
    plain = code.replace("-", "")
    return hmac.new(key, plain.encode(), hashlib.sha256).hexdigest()


def test_ten_distinct_codes_of_at_least_64_bits_are_shown_once(account, owner):
    response = owner.post(CODES)
    codes = shown(response)
    assert len(codes) == 10 and len(set(codes)) == 10
    for code in codes:
        plain = code.replace("-", "")
        assert len(plain) * math.log2(len(saved.ALPHABET)) >= 64
        assert all(c in saved.ALPHABET for c in plain)
    assert "no-store" in response["Cache-Control"]
    assert shown(owner.get(CODES)) == []  # never again
    assert not any(code in owner.get("/owner/").content.decode() for code in codes)


def test_only_keyed_digests_are_stored_and_no_code_is_recorded(account, owner):
    codes = shown(owner.post(CODES))
    code_set = RecoveryCodeSet.objects.get(account=account, replaced_at__isnull=True)
    stored = set(RecoveryCode.objects.filter(code_set=code_set).values_list("code_hash", flat=True))
    assert stored == {expected_digest(c) for c in codes}
    plain_sha = {hashlib.sha256(c.replace("-", "").encode()).hexdigest() for c in codes}
    assert not stored & plain_sha
    trail = str(list(AuditEvent.objects.filter(tenant_id=account.tenant_id).values("data")))
    assert not any(c in trail or c.replace("-", "") in trail for c in codes)
    [issued] = AuditEvent.objects.filter(action="owner.codes_issued", data__account=account.pk)
    assert issued.data["count"] == 10 and issued.data["code_set"] == code_set.pk


def test_the_set_is_a_contact_method_under_quarantine(account, owner):
    owner.post(CODES)
    code_set = RecoveryCodeSet.objects.get(account=account, replaced_at__isnull=True)
    contact = code_set.contact
    assert (contact.kind, contact.source) == ("recovery_codes", "owner_portal")
    assert contact.value == f"codes:{code_set.pk}" and not contact.is_notification
    assert code_set.registered_in == portal_session(account)


def test_a_new_set_replaces_the_whole_old_one(account, owner):
    old_codes = shown(owner.post(CODES))
    old = RecoveryCodeSet.objects.get(account=account, replaced_at__isnull=True)
    new_codes = shown(owner.post(CODES))
    old.refresh_from_db()
    new = RecoveryCodeSet.objects.get(account=account, replaced_at__isnull=True)
    assert old.replaced_at is not None and old.contact.replaced_at is not None
    assert new.pk != old.pk and new.contact.registered_at >= old.replaced_at
    assert not set(old_codes) & set(new_codes)
    current = RecoveryCode.objects.filter(code_set__account=account, code_set__replaced_at=None)
    assert current.count() == 10
    assert not current.filter(code_hash__in=[expected_digest(c) for c in old_codes]).exists()
    [_, second] = AuditEvent.objects.filter(
        action="owner.codes_issued", data__account=account.pk
    ).order_by("seq")
    assert second.data["replaced"] == old.pk


def test_issuing_and_regenerating_notify_every_notification_address(account, owner):
    owner.post(CODES)
    owner.post(CODES)
    notices_planned(account.tenant)  # what a worker does once it has committed
    addresses = ContactMethod.objects.filter(
        account=account, kind__in=["email", "mobile", "desk_phone"]
    ).values_list("pk", flat=True)
    notices = OwnerNotice.objects.filter(account=account, event=NoticeEvent.CODES_ISSUED)
    assert notices.count() == 6
    assert sorted(notices.values_list("contact_id", flat=True)) == sorted(list(addresses) * 2)
    assert not notices.filter(recipient="manager").exists()  # T0 with three addresses


def test_a_t1_account_also_tells_the_manager(acme):
    account = owner_account(acme, tier="T1", kinds=("email", "mobile", "manager"))
    enrolled_client(account).post(CODES)
    notices_planned(acme)  # what a worker does once it has committed
    recipients = OwnerNotice.objects.filter(
        account=account, event=NoticeEvent.CODES_ISSUED
    ).values_list("recipient", flat=True)
    assert sorted(recipients) == ["manager", "owner", "owner"]


def test_no_codes_while_a_case_is_open(acme, account, owner):
    case_open(
        actor=staff(Role.AGENT, tenant=acme), account=account, case_type="unlock", channel="phone"
    )
    response = owner.post(CODES)
    assert response.status_code == 403
    assert shown_nothing(response)
    assert not RecoveryCodeSet.objects.filter(account=account).exists()


def shown_nothing(response) -> bool:
    return not re.findall(r"<code>", response.content.decode())


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("abcd-efgh-jkmnp", "ABCDEFGHJKMNP"),
        (" ABCD EFGH JKMNP ", "ABCDEFGHJKMNP"),
        ("O1IL-0000-00000", "0111000000000"),
        ("abcd_efgh.jkmnp", "ABCDEFGHJKMNP"),
    ],
)
def test_what_is_read_back_is_normalised_as_stored(typed, stored):
    assert saved.code_normalise(typed) == stored
    assert saved.code_digest(typed) == saved.code_digest(stored)
    assert saved.code_well_formed(stored)


def test_a_malformed_code_is_not_well_formed():
    assert not saved.code_well_formed(saved.code_normalise("ABCD-EFGH-JKMN"))  # 12 characters
    assert not saved.code_well_formed("ABCDEFGHJKMNU")  # U is not in the alphabet
