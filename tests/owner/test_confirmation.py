"""S5 in-app confirmation: the owner types the number the agent reads out, then a passkey
assertion bound to the case. Nothing on the owner's page to choose from, two attempts a
request: typing at random gets past the number about 2 times in 100.

The services and the owner's page, with a software authenticator (`softkey.SoftKey`: a P-256
key answering the server's options as a platform authenticator would). The browser version
with Chromium's virtual authenticator is tests/browser/test_owner_confirm.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from webauthn.helpers import base64url_to_bytes

from audit.models import AuditEvent
from recovery.cases.choices import CaseStatus, EvidenceResult, Verifier
from recovery.cases.models import Evidence, RecoveryCase
from recovery.cases.services import case_cancel
from recovery.models import ContactMethod, ProtectedAccount
from recovery.notifications.models import NoticeEvent, NoticeStatus, OwnerNotice
from recovery.owner.choices import ConfirmationStatus, PasskeyStatus
from recovery.owner.confirmation import (
    ConfirmationRefused,
    confirmation_assert,
    confirmation_challenge,
    confirmation_match,
    confirmation_repudiate,
    confirmation_request,
)
from recovery.owner.models import OwnerConfirmation, OwnerPasskey
from tenants.choices import Role
from tenants.exceptions import DomainError, InvalidInput, PolicyDenied

from ..conftest import signed_in_client
from ..factories import api_key, staff
from .case_owner import confirm_token, enrolled_owner, open_case, origin
from .softkey import SoftKey, challenge_of

pytestmark = pytest.mark.django_db


def events(tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action=action).order_by("seq"))


@pytest.fixture
def owner(acme):
    return enrolled_owner(acme, codes=False, passkeys=1)


@pytest.fixture
def opened(owner):
    return open_case(owner)


def ask(agent, case) -> tuple[OwnerConfirmation, str]:
    """Ask for a confirmation; the link token as the owner's email carries it."""
    mail.outbox.clear()
    confirmation = confirmation_request(actor=agent, case=case)
    (message,) = [m for m in mail.outbox if "/owner/confirm/" in m.body]
    return confirmation, confirm_token(message.body)


def wrong_number(confirmation: OwnerConfirmation, step: int = 1) -> str:
    """Another well-formed number: what someone typing at random most likely sends."""
    return f"{(int(confirmation.number) + step) % 100:02d}"


def signed(key: SoftKey, token: str, number: str, **bend) -> str:
    """Type `number` and let `key` answer the options it gets."""
    matched = confirmation_match(token=token, number=number)
    assert matched.matched, matched
    return key.get(matched.options_json, **bend)


# --- asking -----------------------------------------------------------------------------------


def test_a_request_draws_a_number_and_sends_the_link_to_addresses_on_record(owner, opened):
    agent, case = opened
    confirmation, token = ask(agent, case)

    assert confirmation.status == ConfirmationStatus.OPEN
    assert re.fullmatch(r"[0-9]{2}", confirmation.number)
    assert not hasattr(confirmation, "choices")  # nothing to choose from, anywhere
    assert confirmation.max_attempts == 2  # one mistype: 2 in 100 for a guess
    assert confirmation.expires_at - confirmation.created_at == timedelta(seconds=300)
    assert confirmation.link_hash == hashlib.sha256(token.encode()).hexdigest()
    (email,) = [m for m in mail.outbox if "/owner/confirm/" in m.body]
    assert owner.tenant.name in email.body and agent.get_username() in email.body
    assert "/not-me/" in email.body
    assert not _says_number(email.body, confirmation, case)
    notices = OwnerNotice.objects.filter(case=case, event=NoticeEvent.CONFIRMATION_REQUESTED)
    assert {n.status for n in notices} == {NoticeStatus.SENT} and notices.count() == 2
    (event,) = events(owner.tenant, "owner.confirmation_requested")
    assert event.data["confirmation"] == confirmation.pk and len(event.data["sent_to"]) == 2
    assert "number" not in event.data and "choices" not in event.data
    assert confirmation.number not in [str(value) for value in event.data.values()]
    assert token not in json.dumps(
        list(AuditEvent.objects.filter(tenant=owner.tenant).values_list("data", flat=True)),
        default=str,
    )


def _says_number(body: str, confirmation: OwnerConfirmation, case: RecoveryCase) -> bool:
    """Whether the message gives the number away: anywhere but in the links, the time, the
    case id and the username (where two digits can turn up by chance)."""
    text = re.sub(r"https?://\S+", "", body)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", "", text)
    text = text.replace(case.account.username, "").replace(f"case {case.pk}", "")
    return re.search(rf"\b{confirmation.number}\b", text) is not None


def test_the_challenge_is_sha256_over_the_label_the_case_the_nonce_and_the_number(owner, opened):
    agent, case = opened
    confirmation, token = ask(agent, case)
    matched = confirmation_match(token=token, number=confirmation.number)
    expected = hashlib.sha256(
        b"\x00".join(
            [
                b"vouchsafe-confirm",
                str(case.pk).encode(),
                confirmation.nonce.encode(),
                confirmation.number.encode(),
            ]
        )
    ).digest()
    assert challenge_of(matched.options_json) == expected
    # Each part matters: another number, nonce or case gives another challenge.
    other = wrong_number(confirmation)
    assert confirmation_challenge(case.pk, confirmation.nonce, other) != expected
    assert confirmation_challenge(case.pk + 1, confirmation.nonce, confirmation.number) != expected
    assert confirmation_challenge(case.pk, confirmation.nonce + "x", confirmation.number) != (
        expected
    )


def test_another_accounts_passkey_is_refused(acme, owner, opened):
    agent, case = opened
    neighbour = enrolled_owner(acme, codes=False, passkeys=1)
    confirmation, token = ask(agent, case)
    credential = signed(neighbour.keys[0], token, confirmation.number)
    with pytest.raises(ConfirmationRefused):
        confirmation_assert(token=token, number=confirmation.number, credential_json=credential)
    assert events(owner.tenant, "owner.confirmation_failed")[-1].data["reason"] == (
        "unknown_credential"
    )
    assert not Evidence.objects.filter(case=case).exists()


def test_a_new_request_supersedes_the_open_one(owner, opened):
    agent, case = opened
    first, first_token = ask(agent, case)
    second, _token = ask(agent, case)
    first.refresh_from_db()
    assert first.status == ConfirmationStatus.SUPERSEDED
    assert events(owner.tenant, "owner.confirmation_requested")[-1].data["superseded"] == [first.pk]
    with pytest.raises(ConfirmationRefused):
        confirmation_match(token=first_token, number=first.number)
    assert second.status == ConfirmationStatus.OPEN


@pytest.mark.parametrize("days", [3, None])
def test_no_passkey_held_before_the_case_and_past_the_quarantine_is_refused(acme, days):
    owner = enrolled_owner(acme, codes=False, passkeys=0 if days is None else 1, days=days or 1)
    agent, case = open_case(owner)
    with pytest.raises(PolicyDenied) as refused:
        confirmation_request(actor=agent, case=case)
    assert refused.value.code == "confirmation.no_eligible_passkey"
    assert not OwnerConfirmation.objects.filter(case=case).exists()
    assert events(acme, "owner.confirmation_failed")[-1].data["reason"] == refused.value.code


def test_a_removed_or_cloned_passkey_cannot_be_asked(owner, opened):
    agent, case = opened
    OwnerPasskey.objects.filter(pk=owner.passkeys[0].pk).update(status=PasskeyStatus.CLONED)
    with pytest.raises(PolicyDenied) as refused:
        confirmation_request(actor=agent, case=case)
    assert refused.value.code == "confirmation.no_eligible_passkey"


def test_an_ai_assistant_cannot_ask(owner, opened):
    _agent, case = opened
    assistant = api_key(owner.tenant, kind="ai_assistant").key.principal
    with pytest.raises(PolicyDenied) as refused:
        confirmation_request(actor=assistant, case=case)
    assert refused.value.code == "ai.action_blocked"


# --- the owner answers ------------------------------------------------------------------------


def test_the_right_number_and_a_passkey_record_accepted_s5(owner, opened):
    agent, case = opened
    confirmation, token = ask(agent, case)
    key, passkey = owner.keys[0], owner.passkeys[0]

    matched = confirmation_match(token=token, number=confirmation.number)
    assert matched.matched
    options = json.loads(matched.options_json)
    assert challenge_of(matched.options_json) == confirmation_challenge(
        case.pk, confirmation.nonce, confirmation.number
    )
    assert [c["id"] for c in options["allowCredentials"]] == [passkey.credential_id]
    assert options["userVerification"] == "required"
    credential = key.get(matched.options_json)
    evidence = confirmation_assert(
        token=token, number=confirmation.number, credential_json=credential
    )

    assert (evidence.signal_class, evidence.method, evidence.result) == (
        "S5",
        "passkey",
        EvidenceResult.ACCEPTED,
    )
    assert (evidence.verifier, evidence.verifier_ref) == (Verifier.OWNER_PORTAL, confirmation.pk)
    assert evidence.collected_by == agent and evidence.contact_method == passkey.contact
    digest = hashlib.sha256(credential.encode()).hexdigest()
    assert evidence.details == {
        "credential_id": passkey.credential_id,
        "sign_count": 1,
        "assertion_sha256": digest,
    }
    confirmation.refresh_from_db()
    assert confirmation.status == ConfirmationStatus.CONFIRMED
    assert (confirmation.passkey, confirmation.sign_count, confirmation.assertion_hash) == (
        passkey,
        1,
        digest,
    )
    assert confirmation.evidence == evidence
    passkey.refresh_from_db()
    assert passkey.sign_count == 1 and passkey.last_used_at is not None
    (confirmed,) = events(owner.tenant, "owner.confirmation_confirmed")
    assert confirmed.actor_label == "account-owner" and confirmed.data["evidence"] == evidence.pk


def test_a_wrong_number_counts_and_the_second_fails_the_request_and_the_case_asks_no_more(
    owner, opened
):
    agent, case = opened
    confirmation, token = ask(agent, case)
    first = confirmation_match(token=token, number=wrong_number(confirmation))
    assert (first.matched, first.attempts_left, first.failed) == (False, 1, False)
    second = confirmation_match(token=token, number=wrong_number(confirmation, 2))
    assert (second.matched, second.failed) == (False, True)
    confirmation.refresh_from_db()
    assert confirmation.status == ConfirmationStatus.FAILED and confirmation.attempts == 2
    with pytest.raises(ConfirmationRefused):
        confirmation_match(token=token, number=confirmation.number)
    assert "confirmation_failed" in [e.data["type"] for e in events(owner.tenant, "alert.raised")]
    with pytest.raises(PolicyDenied) as again:
        confirmation_request(actor=agent, case=case)
    assert again.value.code == "confirmation.locked"
    reasons = [e.data["reason"] for e in events(owner.tenant, "owner.confirmation_failed")]
    assert reasons[:2] == ["wrong_number", "wrong_number"]


def test_guessing_gets_two_attempts_and_no_options(owner, opened):
    """Push fatigue: the owner types anything. Two wrong numbers end the request (the policy
    would allow 5); no WebAuthn options are ever issued, not even for the right number after."""
    agent, case = opened
    confirmation, token = ask(agent, case)
    guesses = [wrong_number(confirmation, step) for step in (1, 2)]
    answers = [confirmation_match(token=token, number=guess) for guess in guesses]
    assert [a.matched for a in answers] == [False, False]
    assert [a.options_json for a in answers] == ["", ""]
    assert answers[-1].failed
    confirmation.refresh_from_db()
    assert (confirmation.status, confirmation.attempts) == (ConfirmationStatus.FAILED, 2)
    with pytest.raises(ConfirmationRefused):
        confirmation_match(token=token, number=confirmation.number)
    client = Client()
    late = client.post(
        f"/owner/confirm/{token}/options/",
        {"number": confirmation.number},
        content_type="application/json",
    )
    assert late.status_code == 404 and "options" not in late.json()
    assert not Evidence.objects.filter(case=case).exists()
    # At most 2 of the 100 numbers can ever be tried on one request: 2 in 100 for a guess.
    assert confirmation.max_attempts / 100 <= 0.02


@pytest.mark.parametrize(
    "typed", ["", "7", "123", "4a", "--", "4 2", "\u0664\u0662", "\uff14\uff12"]
)
def test_a_malformed_entry_is_a_typing_slip_and_does_not_count(owner, opened, typed):
    agent, case = opened
    confirmation, token = ask(agent, case)
    with pytest.raises(InvalidInput) as slip:
        confirmation_match(token=token, number=typed)
    assert slip.value.code == "confirmation.number_malformed"
    assert "two digits" in slip.value.message
    confirmation.refresh_from_db()
    assert (confirmation.attempts, confirmation.status) == (0, ConfirmationStatus.OPEN)
    assert not events(owner.tenant, "owner.confirmation_failed")
    # Spaces a phone keyboard adds around the digits are not a slip.
    assert confirmation_match(token=token, number=f" {confirmation.number} ").matched


def test_the_page_says_a_malformed_entry_did_not_count(owner, opened):
    agent, case = opened
    confirmation, token = ask(agent, case)
    client = Client()
    url = f"/owner/confirm/{token}/options/"
    answer = client.post(url, {"number": "5"}, content_type="application/json")
    assert answer.status_code == 400
    assert answer.json()["code"] == "confirmation.number_malformed"
    assert "did not count" in answer.json()["message"]
    page = client.post(url, {"number": "five"})
    assert page.status_code == 400
    html = page.content.decode()
    assert "This did not count as a try." in html and 'aria-invalid="true"' in html
    assert OwnerConfirmation.objects.get(pk=confirmation.pk).attempts == 0


def _page_without_csrf(client: Client, token: str, **post: str) -> str:
    url = f"/owner/confirm/{token}/"
    response = client.post(f"{url}options/", post) if post else client.get(url)
    html = response.content.decode()
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)


def test_the_page_shows_no_candidate_numbers(owner, opened):
    """The page is the same whatever the number is: it shows neither the number nor anything
    to choose from (also after a wrong answer)."""
    agent, case = opened
    confirmation, token = ask(agent, case)
    client = Client()
    pages = {}
    for number in ("00", "47", "99"):
        OwnerConfirmation.objects.filter(pk=confirmation.pk).update(number=number)
        pages[number] = _page_without_csrf(client, token)
    assert pages["00"] == pages["47"] == pages["99"]
    assert 'id="confirm-number"' in pages["47"]
    assert "choice" not in pages["47"]
    assert not re.search(r"<button[^>]*>\s*[0-9]{2}\s*</button>", pages["47"])
    OwnerConfirmation.objects.filter(pk=confirmation.pk).update(number="47")
    first = _page_without_csrf(client, token, number="12")
    OwnerConfirmation.objects.filter(pk=confirmation.pk).update(number="83", attempts=0)
    second = _page_without_csrf(client, token, number="12")
    assert "That is not the number the agent read" in first and first == second


def test_the_number_is_two_digits_from_secrets_with_a_leading_zero(owner, opened, monkeypatch):
    agent, case = opened
    asked = []

    def randbelow(n: int) -> int:
        asked.append(n)
        return 7

    monkeypatch.setattr("recovery.owner.confirmation.secrets.randbelow", randbelow)
    confirmation, token = ask(agent, case)
    assert confirmation.number == "07" and asked == [100]
    with pytest.raises(InvalidInput):
        confirmation_match(token=token, number="7")  # the leading zero is part of it
    assert confirmation_match(token=token, number="07").matched


def test_an_unenrolled_authenticator_is_refused_and_counted(owner, opened):
    agent, case = opened
    confirmation, token = ask(agent, case)
    stranger = SoftKey(origin=origin(), rp_id=owner.keys[0].rp_id)
    credential = signed(stranger, token, confirmation.number)
    with pytest.raises(ConfirmationRefused) as refused:
        confirmation_assert(token=token, number=confirmation.number, credential_json=credential)
    assert refused.value.code == "confirmation.assertion_refused"
    confirmation.refresh_from_db()
    assert confirmation.attempts == 1 and confirmation.status == ConfirmationStatus.OPEN
    assert events(owner.tenant, "owner.confirmation_failed")[-1].data["reason"] == (
        "unknown_credential"
    )
    assert not Evidence.objects.filter(case=case).exists()


def test_the_enrolled_credential_id_with_another_key_does_not_verify(owner, opened):
    agent, case = opened
    confirmation, token = ask(agent, case)
    impostor = SoftKey(
        origin=origin(), rp_id=owner.keys[0].rp_id, credential_id=owner.keys[0].credential_id
    )
    credential = signed(impostor, token, confirmation.number)
    with pytest.raises(ConfirmationRefused):
        confirmation_assert(token=token, number=confirmation.number, credential_json=credential)
    assert events(owner.tenant, "owner.confirmation_failed")[-1].data["reason"] == "bad_signature"
    assert OwnerPasskey.objects.get(pk=owner.passkeys[0].pk).status == PasskeyStatus.ACTIVE


def test_a_replayed_assertion_is_refused_and_never_disables_the_passkey(owner, opened):
    agent, case = opened
    confirmation, token = ask(agent, case)
    credential = signed(owner.keys[0], token, confirmation.number)
    confirmation_assert(token=token, number=confirmation.number, credential_json=credential)

    # The same answer again on the same request: it is closed.
    with pytest.raises(ConfirmationRefused) as again:
        confirmation_assert(token=token, number=confirmation.number, credential_json=credential)
    assert again.value.code == "confirmation.link_invalid"
    # The same answer on a new request: its challenge (a new nonce) does not match.
    second, second_token = ask(agent, case)
    confirmation_match(token=second_token, number=second.number)
    with pytest.raises(ConfirmationRefused) as replayed:
        confirmation_assert(token=second_token, number=second.number, credential_json=credential)
    assert replayed.value.code == "confirmation.assertion_refused"
    assert events(owner.tenant, "owner.confirmation_failed")[-1].data["reason"] == (
        "challenge_mismatch"
    )
    assert OwnerPasskey.objects.get(pk=owner.passkeys[0].pk).status == PasskeyStatus.ACTIVE
    assert Evidence.objects.filter(case=case, result=EvidenceResult.ACCEPTED).count() == 1


def test_a_counter_that_goes_back_disables_the_passkey_and_fails_the_request(owner, opened):
    agent, case = opened
    passkey = owner.passkeys[0]
    OwnerPasskey.objects.filter(pk=passkey.pk).update(sign_count=7)
    confirmation, token = ask(agent, case)
    credential = signed(owner.keys[0], token, confirmation.number, sign_count=5)

    with pytest.raises(ConfirmationRefused) as refused:
        confirmation_assert(token=token, number=confirmation.number, credential_json=credential)

    assert refused.value.code == "confirmation.passkey_cloned"
    passkey.refresh_from_db()
    assert passkey.status == PasskeyStatus.CLONED
    assert ContactMethod.objects.get(pk=passkey.contact_id).replaced_at is not None
    confirmation.refresh_from_db()
    assert confirmation.status == ConfirmationStatus.FAILED
    (clone,) = events(owner.tenant, "owner.passkey_clone_detected")
    assert clone.data["presented_sign_count"] == 5 and clone.data["stored_sign_count"] == 7
    assert "passkey_cloned" in [e.data["type"] for e in events(owner.tenant, "alert.raised")]
    assert not Evidence.objects.filter(case=case).exists()
    with pytest.raises(PolicyDenied) as no_more:
        confirmation_request(actor=agent, case=case)
    assert no_more.value.code == "confirmation.no_eligible_passkey"


@pytest.mark.parametrize(
    ("bend", "reason"),
    [
        ({"origin": "https://vouchsafe.example.evil"}, "origin_mismatch"),
        ({"user_verified": False}, "user_not_verified"),
    ],
)
def test_a_wrong_origin_or_no_user_verification_is_refused(owner, opened, bend, reason):
    agent, case = opened
    confirmation, token = ask(agent, case)
    key = owner.keys[0]
    if "user_verified" in bend:
        key.user_verified = bend.pop("user_verified")
    credential = signed(key, token, confirmation.number, **bend)
    with pytest.raises(ConfirmationRefused):
        confirmation_assert(token=token, number=confirmation.number, credential_json=credential)
    assert events(owner.tenant, "owner.confirmation_failed")[-1].data["reason"] == reason
    assert not Evidence.objects.filter(case=case).exists()


def test_an_assertion_for_another_number_does_not_verify(owner, opened):
    agent, case = opened
    confirmation, token = ask(agent, case)
    credential = signed(owner.keys[0], token, confirmation.number)
    with pytest.raises(ConfirmationRefused):
        confirmation_assert(
            token=token, number=wrong_number(confirmation), credential_json=credential
        )
    assert events(owner.tenant, "owner.confirmation_failed")[-1].data["reason"] == "wrong_number"


def test_an_expired_request_is_refused_by_database_time(owner, opened):
    agent, case = opened
    confirmation, token = ask(agent, case)
    credential = signed(owner.keys[0], token, confirmation.number)
    OwnerConfirmation.objects.filter(pk=confirmation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(ConfirmationRefused):
        confirmation_assert(token=token, number=confirmation.number, credential_json=credential)
    confirmation.refresh_from_db()
    assert confirmation.status == ConfirmationStatus.EXPIRED


def test_a_case_no_longer_collecting_evidence_takes_no_answer(owner, opened):
    agent, case = opened
    confirmation, token = ask(agent, case)
    credential = signed(owner.keys[0], token, confirmation.number)
    case_cancel(actor=agent, case=case, reason="caller hung up")
    with pytest.raises(ConfirmationRefused):
        confirmation_assert(token=token, number=confirmation.number, credential_json=credential)
    assert not Evidence.objects.filter(case=case).exists()


def test_no_this_wasnt_me_repudiates_the_case(owner, opened):
    agent, case = opened
    confirmation, token = ask(agent, case)
    repudiated = confirmation_repudiate(token=token)
    assert repudiated.status == CaseStatus.FROZEN
    assert ProtectedAccount.objects.get(pk=owner.account.pk).frozen_at is not None
    confirmation.refresh_from_db()
    assert confirmation.status == ConfirmationStatus.REPUDIATED
    assert events(owner.tenant, "owner.confirmation_repudiated")
    assert events(owner.tenant, "case.repudiated")
    again = confirmation_repudiate(token=token)  # idempotent
    assert again.status == CaseStatus.FROZEN
    with pytest.raises(ConfirmationRefused):
        confirmation_repudiate(token="no-such-token")


# --- the owner's page -------------------------------------------------------------------------


def test_the_page_shows_who_asks_what_and_a_field_for_the_number_with_no_session(owner, opened):
    agent, case = opened
    confirmation, token = ask(agent, case)
    client = signed_in_client(staff(Role.TENANT_ADMIN, tenant=owner.tenant))  # ignored here
    page = client.get(f"/owner/confirm/{token}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert owner.tenant.name in html and agent.get_username() in html
    assert case.get_case_type_display() in html
    (field,) = re.findall(r"<input[^>]*\bid=\"confirm-number\"[^>]*>", html)
    for attribute in (
        'name="number"',
        'inputmode="numeric"',
        'autocomplete="off"',
        'pattern="[0-9]{2}"',
    ):
        assert attribute in field, attribute
    assert "value=" not in field and f'value="{confirmation.number}"' not in html
    assert (
        '<label for="confirm-number" class="number-label">' in html
        and 'id="confirm-continue"' in html
    )
    assert 'id="confirm-not-me"' in html
    assert Client().get("/owner/confirm/nope/").status_code == 404


def test_the_page_confirms_through_its_json_endpoints(owner, opened):
    agent, case = opened
    confirmation, token = ask(agent, case)
    client = Client(enforce_csrf_checks=False)
    wrong = client.post(
        f"/owner/confirm/{token}/options/",
        {"number": wrong_number(confirmation)},
        content_type="application/json",
    )
    assert wrong.status_code == 400 and wrong.json()["code"] == "confirmation.wrong_number"
    right = client.post(
        f"/owner/confirm/{token}/options/",
        {"number": confirmation.number},
        content_type="application/json",
    )
    assert right.status_code == 200 and right.json()["ok"] is True
    credential = owner.keys[0].get(json.dumps(right.json()["options"]))
    done = client.post(
        f"/owner/confirm/{token}/assert/",
        {"number": confirmation.number, "credential": json.loads(credential)},
        content_type="application/json",
    )
    assert done.status_code == 200 and done.json()["ok"] is True, done.content
    assert Evidence.objects.get(case=case).result == EvidenceResult.ACCEPTED
    page = client.get(f"/owner/confirm/{token}/")
    assert page.status_code == 404  # answered: the link is spent


def test_the_not_me_button_repudiates(owner, opened):
    agent, case = opened
    _confirmation, token = ask(agent, case)
    response = Client().post(f"/owner/confirm/{token}/not-me/")
    assert response.status_code == 200
    assert RecoveryCase.objects.get(pk=case.pk).status == CaseStatus.FROZEN


# --- API and console --------------------------------------------------------------------------


def test_the_api_asks_and_reports_status_with_the_number_while_open(owner, opened):
    agent, case = opened
    client = signed_in_client(agent)
    url = f"/api/v1/t/{owner.tenant.slug}/cases/{case.pk}/confirmation/"
    assert client.get(url).status_code == 404
    created = client.post(
        url, {"verified": True, "result": "accepted"}, content_type="application/json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    confirmation = OwnerConfirmation.objects.get(case=case)
    assert body["number"] == confirmation.number and body["status"] == "open"
    assert "choices" not in body and "nonce" not in body
    status = client.get(url).json()
    assert status["id"] == confirmation.pk and status["status"] == "open"
    assert not Evidence.objects.filter(case=case).exists()

    token = confirm_token(next(m.body for m in mail.outbox if "/owner/confirm/" in m.body))
    credential = signed(owner.keys[0], token, confirmation.number)
    confirmation_assert(token=token, number=confirmation.number, credential_json=credential)
    after = client.get(url).json()
    assert after["status"] == "confirmed" and after["number"] is None
    assert after["evidence_id"] == Evidence.objects.get(case=case).pk


def test_the_api_refuses_without_an_eligible_passkey(acme):
    owner = enrolled_owner(acme, codes=False, passkeys=0)
    agent, case = open_case(owner)
    response = signed_in_client(agent).post(
        f"/api/v1/t/{acme.slug}/cases/{case.pk}/confirmation/", {}, content_type="application/json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "confirmation.no_eligible_passkey"


def test_the_case_page_asks_and_shows_the_number_and_status(owner, opened):
    agent, case = opened
    client = signed_in_client(agent)
    base = f"/t/{owner.tenant.slug}/cases/{case.pk}"
    page = client.get(f"{base}/").content.decode()
    assert 'id="verifier-confirmation"' in page and "Ask for in-app confirmation" in page
    done = client.post(f"{base}/confirmation/", follow=True)
    assert done.status_code == 200
    confirmation = OwnerConfirmation.objects.get(case=case)
    html = done.content.decode()
    assert 'id="confirmation-number"' in html and f">{confirmation.number}<" in html
    assert "every 3s" in html
    status = client.get(f"{base}/confirmation/status/", HTTP_HX_REQUEST="true")
    assert status.status_code == 200
    assert 'data-status="open"' in status.content.decode()
    OwnerConfirmation.objects.filter(pk=confirmation.pk).update(status=ConfirmationStatus.CONFIRMED)
    status = client.get(f"{base}/confirmation/status/").content.decode()
    assert 'data-status="confirmed"' in status and "every 3s" not in status


def test_the_case_page_status_is_only_for_who_may_see_the_case(owner, opened, globex):
    _agent, case = opened
    outsider = signed_in_client(staff(Role.AGENT, tenant=globex))
    response = outsider.get(f"/t/{owner.tenant.slug}/cases/{case.pk}/confirmation/status/")
    assert response.status_code in (403, 404)


def test_options_need_the_right_number(owner, opened):
    agent, case = opened
    confirmation, token = ask(agent, case)
    with pytest.raises(DomainError):
        confirmation_match(token=token + "x", number=confirmation.number)
    matched = confirmation_match(token=token, number=confirmation.number)
    raw = base64url_to_bytes(json.loads(matched.options_json)["challenge"])
    assert len(raw) == 32
