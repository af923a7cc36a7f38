"""The case page's verifier actions: what each proves and cannot, identity proofing through the
development provider's page, starting an attended session (trusted referees only), methods not
available yet, and taking a case an AI assistant drafted. Each action is the service the API
calls; refusals come back with their code and write nothing but what the service records."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.utils.html import escape

from audit.models import AuditEvent
from recovery.cases.methods import METHODS
from recovery.cases.models import Evidence, RecoveryCase
from recovery.challenges.models import VerificationChallenge
from recovery.proofing.models import AttendedSession, ProofingSession
from tenants.choices import Role

from ..conftest import signed_in_client
from ..factories import make_tenant, staff
from ..pages import page
from ..recovery.casework import contact
from ..recovery.challenges.helpers import open_case
from .verifying import ai_drafted, referee, t1_case

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
REASON = "The caller lost every registered device."


def url(case, action: str = "") -> str:
    return f"/t/{case.tenant.slug}/cases/{case.pk}/" + (f"{action}/" if action else "")


def events(tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action=action).order_by("seq"))


def section(body: str, ident: str) -> str:
    return body.split(f'id="{ident}"')[1].split("</section>")[0]


# --- what the page offers -------------------------------------------------------------------


def test_each_action_says_what_it_proves_and_what_it_cannot(acme):
    s = t1_case(acme)
    body = signed_in_client(s.agent).get(url(s.case)).content.decode()
    verifiers = section(body, "case-verifiers")
    for name in ("sms_code", "email_code", "manager_attestation", "identity_proofing"):
        method = METHODS[name]
        for text in (method.label, method.proves, method.cannot_prove):
            assert escape(str(text)) in verifiers, (name, text)
    for heading in (
        "Send a code",
        "Ask the manager to attest",
        "Start identity proofing",
        "Start an attended session",
    ):
        assert f"<h3>{heading}</h3>" in verifiers
    assert f'action="{url(s.case, "proofing")}"' in verifiers
    # An agent is no referee: the attended session is described, with no control.
    assert f'action="{url(s.case, "attended")}"' not in verifiers
    assert "A trusted referee who is not working this case starts it" in verifiers


def test_methods_without_a_verifier_are_listed_as_not_available_with_no_control(acme):
    s = t1_case(acme)
    body = signed_in_client(s.agent).get(url(s.case)).content.decode()
    unbuilt = [m for m in METHODS.values() if not m.available]
    if not unbuilt:
        assert 'id="verifier-unavailable"' not in body
        return
    block = body.split('id="verifier-unavailable"')[1].split("</div>")[0]
    for method in unbuilt:
        assert escape(str(method.label)) in block
    assert "<h3>Not available yet</h3>" in block
    assert "<form" not in block and "<button" not in block


def test_the_owner_portal_signals_have_their_own_actions(acme):
    """S1 (a saved code read back) and S5 (in-app confirmation) are verified by the owner
    portal: each has its block, described by the catalogue, never under "not available"."""
    s = t1_case(acme)
    body = signed_in_client(s.agent).get(url(s.case)).content.decode()
    for ident, name, heading in (
        ("verifier-saved-code", "recovery_code", "Saved recovery code read back"),
        ("verifier-confirmation", "passkey", "Ask for in-app confirmation"),
    ):
        block = section(body, ident)
        assert f"<h3>{heading}</h3>" in block
        for text in (METHODS[name].label, METHODS[name].proves, METHODS[name].cannot_prove):
            assert escape(str(text)) in block, (name, text)
    if 'id="verifier-unavailable"' in body:
        unavailable = body.split('id="verifier-unavailable"')[1].split("</div>")[0]
        for name in ("recovery_code", "passkey"):
            assert escape(str(METHODS[name].label)) not in unavailable


def test_a_method_the_cases_policy_does_not_take_is_marked(acme):
    s = open_case(acme)  # T0: the default policy takes no S4
    body = signed_in_client(s.agent).get(url(s.case)).content.decode()
    proofing = body.split('id="verifier-proofing"')[1].split("</div>")[0]
    code = body.split('id="verifier-code"')[1].split("</div>")[0]
    assert "Not accepted by this case's policy" in proofing
    assert "Not accepted" not in code


# --- identity proofing ----------------------------------------------------------------------


def test_proofing_starts_shows_the_address_and_the_providers_verdict_becomes_s4(acme):
    s = t1_case(acme)
    client = signed_in_client(s.agent)

    response = client.post(url(s.case, "proofing"), follow=True)

    session = ProofingSession.objects.get(case=s.case)
    body = response.content.decode()
    address = re.search(r'<a href="([^"]+)" class="proofing-link"', body).group(1)
    assert address.endswith(f"/dev-proofing/{session.nonce}/")
    assert "Identity proofing started. Give the person this address to open:" in body
    assert "Identity proofing started at dev by" in body  # the timeline
    assert not Evidence.objects.filter(case=s.case).exists()

    # The person opens the address: the development provider's page plays the vendor.
    vendor = signed_in_client(staff(Role.AUDITOR, tenant=make_tenant())).post(
        urlsplit(address).path, {"outcome": "match"}
    )

    assert vendor.status_code == 200
    evidence = Evidence.objects.get(case=s.case)
    assert (evidence.signal_class, evidence.result, evidence.verifier_ref) == (
        "S4",
        "accepted",
        session.pk,
    )
    body = client.get(url(s.case)).content.decode()
    session.refresh_from_db()
    assert f"Proofing session {session.pk} at provider dev, verdict {session.verdict_id}" in body
    assert "Evidence: complete (accepted classes: S4)." in body
    assert "Passed: matched the enrolment record" in body


def test_a_proofing_mismatch_ends_the_case_as_rejected_and_the_page_says_so(acme):
    s = t1_case(acme)
    client = signed_in_client(s.agent)
    client.post(url(s.case, "proofing"))
    session = ProofingSession.objects.get(case=s.case)

    client.post(f"/dev-proofing/{session.nonce}/", {"outcome": "no_match"})

    body = client.get(url(s.case)).content.decode()
    assert RecoveryCase.objects.get(pk=s.case.pk).status == "rejected"
    assert "Rejected (identity proofing did not match the enrolment record)" in body
    assert "Rejected: identity proofing at dev did not match the enrolment record" in body
    assert "mismatch with the enrolment record" in body  # the verdict, in the timeline
    assert f'action="{url(s.case, "proofing")}"' not in body  # nothing left to verify
    assert not Evidence.objects.filter(case=s.case, result="accepted").exists()


def test_proofing_with_htmx_answers_the_live_section_with_the_address(acme):
    s = t1_case(acme)
    response = signed_in_client(s.agent).post(url(s.case, "proofing"), **HTMX)
    body = response.content.decode()
    nonce = ProofingSession.objects.get(case=s.case).nonce
    assert response.status_code == 200 and "<html" not in body
    assert f"/dev-proofing/{nonce}/" in body and 'hx-swap-oob="innerHTML"' in body


def test_proofing_without_an_enrolment_reference_is_refused_and_the_refusal_kept(acme):
    s = t1_case(acme, enrolment=False)
    client = signed_in_client(s.agent)
    assert "nothing to proof against (R-05)" in client.get(url(s.case)).content.decode()

    response = client.post(url(s.case, "proofing"))

    assert response.status_code == 400
    assert "(proofing.no_enrolment_reference)" in response.content.decode()
    assert not ProofingSession.objects.filter(case=s.case).exists()
    refused = events(acme, "verification.proofing_refused")
    assert [e.data["code"] for e in refused] == ["proofing.no_enrolment_reference"]


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.TENANT_ADMIN])
def test_roles_that_do_not_work_cases_cannot_start_proofing(acme, role):
    s = t1_case(acme)
    response = signed_in_client(staff(role, tenant=acme)).post(url(s.case, "proofing"))
    assert response.status_code == 403
    assert not ProofingSession.objects.exists()
    assert not events(acme, "verification.proofing_refused")


@pytest.mark.parametrize("action", ["proofing", "attended", "take", "context"])
def test_another_tenants_case_is_the_same_404_as_a_missing_one(acme, globex, action):
    theirs = t1_case(globex).case
    client = signed_in_client(staff(Role.AGENT, tenant=acme))
    mine = RecoveryCase(pk=theirs.pk, tenant=acme)
    missing = RecoveryCase(pk=theirs.pk + 10_000, tenant=acme)

    foreign = client.post(url(mine, action), {"attended-mode": "onsite"})
    absent = client.post(url(missing, action), {"attended-mode": "onsite"})

    assert foreign.status_code == absent.status_code == 404
    assert page(foreign) == page(absent)
    assert not ProofingSession.objects.exists() and not AttendedSession.objects.exists()
    assert RecoveryCase.objects.get(pk=theirs.pk).taken_by_id is not None


# --- attended sessions ----------------------------------------------------------------------


def test_a_referee_starts_an_attended_session_and_lands_on_its_page(acme):
    s = t1_case(acme)
    judge = referee(acme)
    client = signed_in_client(judge)
    body = client.get(url(s.case)).content.decode()
    verifiers = section(body, "case-verifiers")
    assert f'action="{url(s.case, "attended")}"' in verifiers
    assert 'name="attended-mode"' in verifiers and 'name="attended-reason"' in verifiers
    assert "Send a code" not in verifiers  # a referee only referees
    for name in ("attended_remote", "attended_onsite"):
        assert escape(str(METHODS[name].proves)) in verifiers

    response = client.post(
        url(s.case, "attended"), {"attended-mode": "remote_video", "attended-reason": REASON}
    )

    session = AttendedSession.objects.get(case=s.case)
    assert response.status_code == 302
    assert response.url == url(s.case, f"attended/{session.pk}")
    assert (session.referee, session.mode, session.reason) == (judge, "remote_video", REASON)
    assert events(acme, "verification.attended_started")


def test_an_agent_cannot_start_an_attended_session(acme):
    s = t1_case(acme)
    response = signed_in_client(s.agent).post(
        url(s.case, "attended"), {"attended-mode": "onsite", "attended-reason": REASON}
    )
    assert response.status_code == 403
    assert not AttendedSession.objects.exists() and not events(acme, "policy.violation")


def test_a_referee_whose_certification_lapsed_is_refused_with_its_code(acme):
    s = t1_case(acme)
    judge = referee(acme, certified=False)
    response = signed_in_client(judge).post(
        url(s.case, "attended"), {"attended-mode": "remote_video", "attended-reason": REASON}
    )
    body = response.content.decode()
    assert response.status_code == 400 and "(attended.certification_lapsed)" in body
    assert REASON in body  # the referee's input is kept
    assert not AttendedSession.objects.exists()
    assert [e.data["code"] for e in events(acme, "policy.violation")] == [
        "attended.certification_lapsed"
    ]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"attended-mode": "remote_video", "attended-reason": ""}, "This field is required."),
        ({"attended-mode": "by_post", "attended-reason": REASON}, "Select a valid choice."),
    ],
)
def test_a_bad_attended_start_is_refused_and_nothing_written(acme, data, error):
    s = t1_case(acme)
    client = signed_in_client(referee(acme))
    before = AuditEvent.objects.filter(tenant=acme).count()
    response = client.post(url(s.case, "attended"), data)
    body = response.content.decode()
    assert response.status_code == 400 and error in body
    assert "Nothing was saved: correct the marked fields." in body
    assert not AttendedSession.objects.exists()
    assert AuditEvent.objects.filter(tenant=acme).count() == before


def test_a_referee_who_works_the_case_is_refused(acme):
    judge = referee(acme, also=Role.AGENT)
    s = t1_case(acme, agent=judge)  # the referee opened it: not independent
    response = signed_in_client(judge).post(
        url(s.case, "attended"), {"attended-mode": "remote_video", "attended-reason": REASON}
    )
    assert response.status_code == 400 and "(sod.referee_is_party)" in response.content.decode()
    assert not AttendedSession.objects.exists()


# --- a case an AI assistant drafted ---------------------------------------------------------


def test_a_drafted_case_offers_take_and_no_verifier_action_until_a_person_takes_it(acme):
    case = ai_drafted(acme)
    agent = staff(Role.AGENT, tenant=acme)
    client = signed_in_client(agent)
    verifiers = section(client.get(url(case)).content.decode(), "case-verifiers")
    assert "An AI assistant drafted this case." in verifiers
    assert f'action="{url(case, "take")}"' in verifiers
    assert "Send a code" not in verifiers and "Start identity proofing" not in verifiers

    response = client.post(url(case, "take"), follow=True)

    case.refresh_from_db()
    assert case.taken_by == agent and case.taken_at is not None
    body = response.content.decode()
    assert "You took this case." in body
    assert f"Taken by {agent.username}: a person now works this case" in body  # the timeline
    verifiers = section(body, "case-verifiers")
    assert f'action="{url(case, "take")}"' not in verifiers
    assert "<h3>Send a code</h3>" in verifiers


def test_taking_a_case_that_has_a_person_already_is_refused_with_its_code(acme):
    s = open_case(acme)
    other = staff(Role.AGENT, tenant=acme)
    response = signed_in_client(other).post(url(s.case, "take"))
    assert response.status_code == 400 and "(case.already_taken)" in response.content.decode()
    assert RecoveryCase.objects.get(pk=s.case.pk).taken_by == s.agent
    assert not events(acme, "case.taken")


def test_an_auditor_cannot_take_a_drafted_case(acme):
    case = ai_drafted(acme)
    client = signed_in_client(staff(Role.AUDITOR, tenant=acme))
    assert f'action="{url(case, "take")}"' not in client.get(url(case)).content.decode()
    assert client.post(url(case, "take")).status_code == 403
    assert RecoveryCase.objects.get(pk=case.pk).taken_by_id is None


def test_a_drafted_case_sends_no_code_even_when_posted_directly(acme):
    case = ai_drafted(acme)
    mailbox = contact(case.account, "email", "drafted.owner@example.test")
    sent_before = len(mail.outbox)
    response = signed_in_client(staff(Role.AGENT, tenant=acme)).post(
        url(case, "challenges"), {"send-contact_method": mailbox.pk}
    )
    assert response.status_code == 400 and "(case.not_taken)" in response.content.decode()
    assert len(mail.outbox) == sent_before
    assert not VerificationChallenge.objects.filter(case=case).exists()
