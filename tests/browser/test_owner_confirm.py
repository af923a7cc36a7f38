"""In-app confirmation (S5) in a real browser: the owner opens the link, types the number the
agent reads out, and Chromium's virtual authenticator (CDP) signs the assertion Vouchsafe
verifies. A wrong number (two end the request), an unenrolled authenticator, a replayed
assertion, a cloned credential (its counter goes back), a cancelled prompt and an origin
Vouchsafe does not expect are refused; something that is not two digits does not count.

The owner's passkey is registered through the real portal service with a software key
(tests/owner/softkey.py); its private key is then installed in the virtual authenticator
(`WebAuthn.addCredential`), so the browser holds exactly the enrolled credential.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from django.core import mail
from playwright.sync_api import Page, Route, expect

from recovery.cases.choices import CaseStatus, EvidenceResult
from recovery.cases.models import Evidence, RecoveryCase
from recovery.owner.choices import ConfirmationStatus, PasskeyStatus
from recovery.owner.confirmation import confirmation_request
from recovery.owner.models import OwnerConfirmation, OwnerPasskey
from tenants.models import User

from ..factories import make_tenant
from ..owner.case_owner import Owner, confirm_token, enrolled_owner, open_case
from ..owner.softkey import SoftKey
from .authenticator import VirtualAuthenticator, authenticator_for


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def install(key: VirtualAuthenticator, soft: SoftKey, *, resident: bool = False) -> None:
    """Put the software key's credential into the virtual authenticator."""
    pkcs8 = soft.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    credential = {
        "credentialId": _b64(soft.credential_id),
        "isResidentCredential": resident,
        "rpId": "localhost",
        "privateKey": _b64(pkcs8),
        "signCount": soft.sign_count,
    }
    if resident:
        credential["userHandle"] = _b64(b"someone-else")
    key.add_credential(credential)


@dataclass
class Scene:
    owner: Owner
    agent: User
    case: RecoveryCase
    key: VirtualAuthenticator


@pytest.fixture
def scene(page: Page, webauthn_site) -> Scene:
    owner = enrolled_owner(make_tenant(), codes=False, passkeys=1)
    agent, case = open_case(owner)
    key = authenticator_for(page)
    install(key, owner.keys[0])
    return Scene(owner, agent, case, key)


def ask(scene: Scene) -> tuple[OwnerConfirmation, str]:
    mail.outbox.clear()
    confirmation = confirmation_request(actor=scene.agent, case=scene.case)
    body = next(m.body for m in mail.outbox if "/owner/confirm/" in m.body)
    return confirmation, confirm_token(body)


def wrong_number(confirmation: OwnerConfirmation, step: int = 1) -> str:
    return f"{(int(confirmation.number) + step) % 100:02d}"


def open_link(page: Page, token: str) -> None:
    page.goto(f"/owner/confirm/{token}/")
    expect(page.get_by_role("heading", name="Confirm it is you", level=1)).to_be_visible()


def number_field(page: Page):
    return page.get_by_role("textbox", name="Number the agent reads to you", exact=True)


def enter(page: Page, number: str) -> None:
    """Type the number as the owner would (replacing what is there) and press Continue."""
    number_field(page).fill(number)
    page.get_by_role("button", name="Continue", exact=True).click()


def status(page: Page):
    return page.locator("#confirm-status")


def last_failure(case: RecoveryCase) -> str:
    from audit.models import AuditEvent

    event = (
        AuditEvent.objects.filter(tenant_id=case.tenant_id, action="owner.confirmation_failed")
        .order_by("-seq")
        .first()
    )
    return event.data["reason"] if event else ""


def test_the_owner_confirms_with_the_number_and_a_passkey(page: Page, scene: Scene):
    confirmation, token = ask(scene)
    open_link(page, token)
    expect(page.locator("#confirm-organisation")).to_have_text(scene.owner.tenant.name)
    expect(page.locator("#confirm-agent")).to_have_text(scene.agent.get_username())
    expect(page.locator("#confirm-request")).to_contain_text(scene.case.get_case_type_display())
    field = number_field(page)
    expect(field).to_have_attribute("inputmode", "numeric")
    expect(field).to_have_attribute("autocomplete", "off")
    expect(field).to_have_attribute("pattern", "[0-9]{2}")
    expect(field).to_have_value("")
    expect(page.locator("#confirm-form button")).to_have_count(1)  # Continue; nothing to pick

    enter(page, confirmation.number)

    expect(status(page)).to_have_text("Confirmed. You can tell the agent it is done.")
    evidence = Evidence.objects.get(case=scene.case)
    assert (evidence.method, evidence.result) == ("passkey", EvidenceResult.ACCEPTED)
    confirmation.refresh_from_db()
    assert confirmation.status == ConfirmationStatus.CONFIRMED
    held = scene.key.credentials()[0]["signCount"]
    assert confirmation.sign_count == held == 1
    assert OwnerPasskey.objects.get(pk=scene.owner.passkeys[0].pk).sign_count == held


def test_a_wrong_number_is_counted_and_the_right_one_still_confirms(page: Page, scene: Scene):
    confirmation, token = ask(scene)
    open_link(page, token)

    enter(page, wrong_number(confirmation))
    expect(status(page)).to_contain_text("That is not the number the agent read")
    expect(number_field(page)).to_be_focused()
    assert OwnerConfirmation.objects.get(pk=confirmation.pk).attempts == 1
    assert scene.key.credentials()[0]["signCount"] == 0  # no ceremony for a wrong number

    enter(page, confirmation.number)
    expect(status(page)).to_have_text("Confirmed. You can tell the agent it is done.")
    assert Evidence.objects.get(case=scene.case).result == EvidenceResult.ACCEPTED


def test_two_wrong_numbers_cancel_the_request(page: Page, scene: Scene):
    confirmation, token = ask(scene)
    open_link(page, token)
    enter(page, wrong_number(confirmation))
    expect(status(page)).to_contain_text("1 more try")
    enter(page, wrong_number(confirmation, 2))
    expect(status(page)).to_contain_text("The request is cancelled")
    expect(number_field(page)).to_be_disabled()
    expect(page.get_by_role("button", name="Continue", exact=True)).to_be_disabled()
    assert OwnerConfirmation.objects.get(pk=confirmation.pk).status == ConfirmationStatus.FAILED
    assert scene.key.credentials()[0]["signCount"] == 0
    assert not Evidence.objects.filter(case=scene.case).exists()


def test_something_that_is_not_two_digits_is_said_and_not_counted(page: Page, scene: Scene):
    confirmation, token = ask(scene)
    open_link(page, token)
    for typed in ("", "7", "123"):
        enter(page, typed)
        expect(status(page)).to_contain_text("This did not count as a try.")
    assert OwnerConfirmation.objects.get(pk=confirmation.pk).attempts == 0
    enter(page, confirmation.number)
    expect(status(page)).to_have_text("Confirmed. You can tell the agent it is done.")


def test_a_second_unenrolled_authenticator_is_refused(page: Page, scene: Scene):
    """The enrolled authenticator is gone; another one holds its own credential. Told by a
    tampered page to use any credential (allowCredentials emptied), it answers, and Vouchsafe
    refuses the credential it never enrolled."""
    confirmation, token = ask(scene)
    scene.key.remove()
    other = authenticator_for(page)
    install(other, SoftKey(origin=""), resident=True)

    def any_credential(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        if body.get("ok"):
            body["options"]["allowCredentials"] = []
        route.fulfill(response=response, body=json.dumps(body))

    page.route(re.compile(r".*/options/$"), any_credential)
    open_link(page, token)
    enter(page, confirmation.number)

    expect(status(page)).to_contain_text("could not be verified")
    assert last_failure(scene.case) == "unknown_credential"
    assert OwnerConfirmation.objects.get(pk=confirmation.pk).attempts == 1
    assert not Evidence.objects.filter(case=scene.case).exists()


def test_an_unenrolled_authenticator_alone_finds_no_credential_to_use(page: Page, scene: Scene):
    confirmation, token = ask(scene)
    scene.key.remove()
    authenticator_for(page)  # holds nothing for this account
    open_link(page, token)
    enter(page, confirmation.number)
    expect(status(page)).to_contain_text("The passkey prompt was closed")
    assert not Evidence.objects.filter(case=scene.case).exists()


def test_a_replayed_assertion_is_refused(page: Page, scene: Scene):
    first, token = ask(scene)
    sent: list[str] = []
    page.on(
        "request",
        lambda request: (
            sent.append(request.post_data or "") if request.url.endswith("/assert/") else None
        ),
    )
    open_link(page, token)
    enter(page, first.number)
    expect(status(page)).to_have_text("Confirmed. You can tell the agent it is done.")
    (captured,) = sent

    # The same answer again on the spent link, then on a new request of the case.
    again = page.request.post(
        f"/owner/confirm/{token}/assert/",
        data=captured,
        headers={"Content-Type": "application/json", "X-CSRFToken": _csrf(page)},
    )
    assert again.status == 404
    second, second_token = ask(scene)
    replay = json.loads(captured) | {"number": second.number}
    answer = page.request.post(
        f"/owner/confirm/{second_token}/assert/",
        data=json.dumps(replay),
        headers={"Content-Type": "application/json", "X-CSRFToken": _csrf(page)},
    )
    assert answer.status == 400 and answer.json()["code"] == "confirmation.assertion_refused"
    assert last_failure(scene.case) == "challenge_mismatch"
    assert OwnerPasskey.objects.get(pk=scene.owner.passkeys[0].pk).status == PasskeyStatus.ACTIVE
    assert Evidence.objects.filter(case=scene.case, result=EvidenceResult.ACCEPTED).count() == 1


def _csrf(page: Page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")


def test_a_cloned_credential_whose_counter_goes_back_is_disabled(page: Page, scene: Scene):
    first, token = ask(scene)
    open_link(page, token)
    enter(page, first.number)
    expect(status(page)).to_have_text("Confirmed. You can tell the agent it is done.")
    credential_id = scene.owner.passkeys[0].credential_id
    assert OwnerPasskey.objects.get(credential_id=credential_id).sign_count == 1

    # A copy of the key made before that use presents the old counter.
    scene.key.set_sign_count(credential_id, 0)
    second, second_token = ask(scene)
    open_link(page, second_token)
    enter(page, second.number)

    expect(status(page)).to_contain_text("This passkey looks copied")
    passkey = OwnerPasskey.objects.get(credential_id=credential_id)
    assert passkey.status == PasskeyStatus.CLONED
    assert OwnerConfirmation.objects.get(pk=second.pk).status == ConfirmationStatus.FAILED
    assert Evidence.objects.filter(case=scene.case).count() == 1  # only the first


def test_a_cancelled_prompt_records_nothing_and_the_owner_can_retry(page: Page, scene: Scene):
    confirmation, token = ask(scene)
    open_link(page, token)
    scene.key.set_user_verified(False)
    enter(page, confirmation.number)
    expect(status(page)).to_contain_text("The passkey prompt was closed")
    assert not Evidence.objects.filter(case=scene.case).exists()
    scene.key.set_user_verified(True)
    enter(page, confirmation.number)
    expect(status(page)).to_have_text("Confirmed. You can tell the agent it is done.")


def test_an_origin_vouchsafe_does_not_expect_is_refused(
    page: Page, webauthn_site_expecting, scene: Scene
):
    webauthn_site_expecting(["https://vouchsafe.example"])
    confirmation, token = ask(scene)
    open_link(page, token)
    enter(page, confirmation.number)
    expect(status(page)).to_contain_text("could not be verified")
    assert last_failure(scene.case) == "origin_mismatch"
    assert not Evidence.objects.filter(case=scene.case).exists()


def test_no_this_wasnt_me_on_the_page_stops_the_recovery(page: Page, scene: Scene):
    _confirmation, token = ask(scene)
    open_link(page, token)
    page.get_by_role("button", name="No, this wasn't me").click()
    expect(page.get_by_role("status")).to_contain_text("Your account is frozen")
    assert RecoveryCase.objects.get(pk=scene.case.pk).status == CaseStatus.FROZEN
