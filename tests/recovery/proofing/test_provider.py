"""S4 through an identity-proofing provider: only a signed, fresh, first verdict for its own
session and case, naming the account's enrolment reference, becomes accepted evidence."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from audit.models import AuditEvent
from recovery.cases.models import Evidence, RecoveryCase
from recovery.cases.services import accepted_classes, case_cancel, case_open
from recovery.models import ProtectedAccount
from recovery.proofing.models import ProofingSession
from recovery.proofing.providers import (
    SIGNATURE_HEADER,
    DevProofingProvider,
    provider_get,
)
from recovery.proofing.services import proofing_start, proofing_verdict_receive
from tenants.choices import Role
from tenants.exceptions import DomainError
from tenants.models import Tenant, User

from ...api.conftest import api, key_client, staff_api_client
from ...factories import make_account_with, staff
from ..verifiers import dev_provider, enrolled

pytestmark = pytest.mark.django_db

DEV_PROVIDERS = {"dev": {"CLASS": "recovery.proofing.providers.DevProofingProvider"}}


# --- helpers ----------------------------------------------------------------------------------


def t1_case(tenant: Tenant, agent: User | None = None, **attributes) -> RecoveryCase:
    """A T1 case (S4 is accepted at T1) on an account with an enrolment reference."""
    agent = agent or staff(Role.AGENT, tenant=tenant)
    account = make_account_with(tenant, groups=["finance"], **attributes)
    enrolled(account)
    return case_open(actor=agent, account=account, case_type="password_reset", channel="phone")


def agent_of(case: RecoveryCase) -> User:
    return case.opened_by


def start(case: RecoveryCase) -> ProofingSession:
    return proofing_start(actor=agent_of(case), case=case, provider="dev").session


def verdict(session: ProofingSession, **overrides) -> tuple[bytes, dict[str, str]]:
    """The development vendor's signed verdict for `session` (a match unless overridden)."""
    fields = {"outcome": "pass", "subject_reference": session.case.account.enrolment_reference}
    fields.update(overrides)
    return dev_provider().verdict_for(session, **fields)


def deliver(body: bytes, headers: dict[str, str]) -> ProofingSession:
    return proofing_verdict_receive(provider="dev", body=body, headers=headers)


def refused_with(code: str, call, *args, **kwargs) -> DomainError:
    with pytest.raises(DomainError) as refused:
        call(*args, **kwargs)
    assert refused.value.code == code, refused.value.code
    return refused.value


def events(case: RecoveryCase, action: str) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            tenant=case.tenant, action=action, target_id=str(case.pk)
        ).order_by("seq")
    )


def refusal_codes(case: RecoveryCase) -> list[str]:
    return [e.data["code"] for e in events(case, "verification.proofing_refused")]


def alerts(case: RecoveryCase) -> list[str]:
    return [e.data["type"] for e in events(case, "alert.raised")]


def accepted(case: RecoveryCase) -> list[Evidence]:
    return list(Evidence.objects.filter(case=case, result="accepted"))


def fresh(row):
    return type(row).objects.get(pk=row.pk)


@contextmanager
def http_vendor(**options) -> Iterator[None]:
    """A provider named "vendor" reached over HTTP, next to the development one."""
    entry = {
        "CLASS": "recovery.proofing.providers.SignedHttpProvider",
        "OPTIONS": {"secret": "vendor-shared-secret-0123456789", **options},
    }
    with override_settings(PROOFING_PROVIDERS={**DEV_PROVIDERS, "vendor": entry}):
        yield


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- a verdict that counts --------------------------------------------------------------------


def test_a_passing_verdict_is_accepted_s4_naming_the_provider_session(acme):
    case = t1_case(acme)
    started = proofing_start(actor=agent_of(case), case=case)

    session = deliver(*verdict(started.session))

    assert started.redirect_url.endswith(f"/dev-proofing/{started.session.nonce}/")
    assert len(started.session.nonce) >= 43  # 256 random bits
    assert session.status == "passed" and session.verdict_id and session.verdict_digest
    [evidence] = accepted(case)
    assert evidence.signal_class == "S4" and evidence.method == "identity_proofing"
    assert evidence.verifier == "proofing_provider" and evidence.verifier_ref == session.pk
    assert evidence.collected_by == agent_of(case)
    assert evidence.details["verdict_id"] == session.verdict_id
    assert fresh(session).evidence == evidence
    assert accepted_classes(case) == {"S4"}
    assert len(events(case, "verification.proofing_started")) == 1
    [applied] = events(case, "verification.proofing_verdict")
    assert applied.data["matched"] is True and applied.data["evidence"] == evidence.pk
    assert applied.actor_type == "system"


def test_a_verdict_that_cannot_proof_the_person_counts_for_nothing(acme):
    case = t1_case(acme)
    session = start(case)

    session = deliver(*verdict(session, outcome="fail", subject_reference=""))

    assert session.status == "failed" and session.evidence is None
    assert accepted(case) == [] and fresh(case).status == "collecting_evidence"
    [applied] = events(case, "verification.proofing_verdict")
    assert applied.data["outcome"] == "fail"


def test_a_verdict_arriving_after_the_case_stopped_collecting_counts_for_nothing(acme):
    case = t1_case(acme)
    session = start(case)
    case_cancel(actor=agent_of(case), case=case, reason="caller hung up")

    refused_with("proofing.case_not_collecting", deliver, *verdict(session))

    assert accepted(case) == [] and fresh(session).status == "expired"


# --- the verdict's checks ---------------------------------------------------------------------


def test_a_verdict_with_a_bad_signature_is_refused_and_recorded(acme):
    case = t1_case(acme)
    session = start(case)
    body, headers = verdict(session)
    forged = DevProofingProvider(secret="someone-elses-key-0123456789")
    other_body, other_headers = forged.verdict_for(
        session, outcome="pass", subject_reference=case.account.enrolment_reference
    )

    refused_with("proofing.bad_signature", deliver, body.replace(b'"pass"', b'"pass" '), headers)
    refused_with("proofing.bad_signature", deliver, other_body, other_headers)
    refused_with("proofing.bad_signature", deliver, body, {})

    assert accepted(case) == [] and fresh(session).status == "started"
    assert refusal_codes(case) == ["proofing.bad_signature"] * 3
    # The right signature still works afterwards.
    assert deliver(body, headers).status == "passed"


def test_a_verdict_naming_no_session_is_refused(acme):
    case = t1_case(acme)
    session = start(case)
    session.nonce = "not-a-nonce-we-issued"
    refused_with("proofing.unknown_nonce", deliver, *verdict(session))
    assert accepted(case) == []


def test_the_same_verdict_twice_is_a_replay(acme):
    case = t1_case(acme)
    session = start(case)
    body, headers = verdict(session)
    deliver(body, headers)

    refused_with("proofing.replayed", deliver, body, headers)
    # A second, differently numbered verdict for the same nonce is a replay of the session.
    refused_with("proofing.replayed", deliver, *verdict(session))

    assert len(accepted(case)) == 1
    assert refusal_codes(case) == ["proofing.replayed"] * 2
    assert alerts(case) == ["proofing_replay"] * 2


def test_a_verdict_id_used_for_another_session_is_a_replay(acme):
    first, second = t1_case(acme), t1_case(acme)
    used = deliver(*verdict(start(first))).verdict_id
    other = start(second)

    refused_with("proofing.replayed", deliver, *verdict(other, verdict_id=used))

    assert accepted(second) == [] and fresh(other).status == "started"
    assert alerts(second) == ["proofing_replay"]


def test_a_verdict_for_another_case_is_refused(acme):
    case, other_case = t1_case(acme), t1_case(acme)
    session = start(case)
    session.case_id = other_case.pk  # the verdict names this session's nonce, another case

    refused_with("proofing.wrong_case", deliver, *verdict(session))

    assert accepted(case) == [] and accepted(other_case) == []
    assert refusal_codes(case) == ["proofing.wrong_case"]
    assert fresh(ProofingSession.objects.get(case=case)).status == "started"


def test_a_stale_verdict_is_refused(acme):
    case = t1_case(acme)
    session = start(case)
    now = timezone.now()

    for issued_at in (now - timedelta(minutes=6), now + timedelta(minutes=5)):
        refused_with("proofing.stale", deliver, *verdict(session, issued_at=issued_at))
    # Issued before the session existed: an old verdict dressed up for this nonce.
    refused_with(
        "proofing.stale",
        deliver,
        *verdict(session, issued_at=session.created_at - timedelta(minutes=2)),
    )

    assert accepted(case) == [] and fresh(session).status == "started"
    assert refusal_codes(case) == ["proofing.stale"] * 3


def test_a_verdict_older_than_its_window_is_stale_even_within_the_session(acme):
    case = t1_case(acme)
    session = start(case)
    now = timezone.now()
    ProofingSession.objects.filter(pk=session.pk).update(created_at=now - timedelta(minutes=20))

    refused_with("proofing.stale", deliver, *verdict(session, issued_at=now - timedelta(minutes=6)))

    assert accepted(case) == [] and fresh(session).status == "started"
    assert deliver(*verdict(session, issued_at=now - timedelta(minutes=4))).status == "passed"


def test_a_verdict_for_an_expired_session_is_refused_and_expires_it(acme):
    case = t1_case(acme)
    session = start(case)
    ProofingSession.objects.filter(pk=session.pk).update(
        created_at=timezone.now() - timedelta(minutes=40),
        expires_at=timezone.now() - timedelta(minutes=10),
    )

    refused_with("proofing.stale", deliver, *verdict(session))

    assert accepted(case) == [] and fresh(session).status == "expired"


def test_a_verdict_below_the_enrolment_level_is_refused(acme):
    case = t1_case(acme, proofing_level="IAL2")
    session = start(case)
    assert session.level == "IAL2"

    refused_with("proofing.level_too_low", deliver, *verdict(session, level="IAL1"))

    assert accepted(case) == [] and fresh(session).status == "failed"


def test_another_reference_rejects_the_case_and_raises_an_alert(acme):
    case = t1_case(acme)
    session, spare = start(case), start(case)

    session = deliver(*verdict(session, subject_reference="ENROL-SOMEONE-ELSE"))

    assert session.status == "mismatch" and session.evidence is None
    case = fresh(case)
    assert case.status == "rejected" and case.ended_at and "enrolment record" in case.end_reason
    assert accepted(case) == []
    assert alerts(case) == ["proofing_mismatch"]
    assert len(events(case, "case.rejected")) == 1
    [applied] = events(case, "verification.proofing_verdict")
    assert applied.data["matched"] is False and "ENROL-SOMEONE-ELSE" not in str(applied.data)
    # The case's other session can no longer bring a pass.
    refused_with("proofing.stale", deliver, *verdict(spare))
    assert accepted(case) == []


# --- starting ---------------------------------------------------------------------------------


def test_a_provider_that_is_down_leaves_the_case_waiting(acme):
    case = t1_case(acme)
    with http_vendor(start_url=f"http://127.0.0.1:{closed_port()}/start", timeout=2):
        refused_with(
            "proofing.provider_unavailable",
            proofing_start,
            actor=agent_of(case),
            case=case,
            provider="vendor",
        )

    [session] = ProofingSession.objects.filter(case=case)
    assert session.status == "expired" and session.provider == "vendor"
    assert fresh(case).status == "collecting_evidence" and accepted(case) == []
    assert refusal_codes(case) == ["proofing.provider_unavailable"]
    assert events(case, "verification.proofing_started") == []


@contextmanager
def silent_vendor(hang_up_after: float = 5.0) -> Iterator[int]:
    """A server that accepts connections and never answers; it hangs up after a while, so a
    client without a timeout is slow rather than stuck forever."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        held = []
        while not stop.is_set():
            with suppress(TimeoutError):
                held.append((listener.accept()[0], time.monotonic()))
            for conn, since in list(held):
                if time.monotonic() - since > hang_up_after:
                    conn.close()
                    held.remove((conn, since))
        for conn, _ in held:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_a_slow_provider_is_given_up_on_after_its_timeout(acme):
    case = t1_case(acme)
    with (
        silent_vendor() as port,
        http_vendor(start_url=f"http://127.0.0.1:{port}/start", timeout=0.5),
    ):
        began = time.monotonic()
        refusal = refused_with(
            "proofing.provider_unavailable",
            proofing_start,
            actor=agent_of(case),
            case=case,
            provider="vendor",
        )
        waited = time.monotonic() - began

    assert waited < 3, waited
    assert "the case waits" in refusal.message
    [session] = ProofingSession.objects.filter(case=case)
    assert session.status == "expired" and accepted(case) == []
    [event] = events(case, "verification.proofing_refused")
    assert "Timeout" in event.data["error"]


class _Vendor(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers["Content-Length"])
        self.server.received.append(self.rfile.read(length))
        body = b'{"redirect_url": "https://vendor.example/p/77", "provider_ref": "vendor-77"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_an_http_provider_is_started_with_the_nonce_and_its_signed_verdict_counts(acme):
    case = t1_case(acme)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Vendor)
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with http_vendor(start_url=f"http://127.0.0.1:{server.server_port}/start"):
            started = proofing_start(actor=agent_of(case), case=case, provider="vendor")
            vendor = provider_get("vendor")
            body, headers = vendor.signed(
                {
                    "nonce": started.session.nonce,
                    "case": case.pk,
                    "verdict_id": "v-1",
                    "outcome": "pass",
                    "subject_reference": case.account.enrolment_reference,
                    "level": "none",
                    "issued_at": timezone.now().isoformat(),
                }
            )
            # The development provider's key does not sign for the vendor.
            refused_with(
                "proofing.unknown_nonce",
                proofing_verdict_receive,
                provider="dev",
                body=body,
                headers={SIGNATURE_HEADER: dev_provider().sign(body)},
            )
            session = proofing_verdict_receive(provider="vendor", body=body, headers=headers)
    finally:
        server.shutdown()
        server.server_close()

    assert started.redirect_url == "https://vendor.example/p/77"
    assert started.session.nonce.encode() in server.received[0]
    assert session.status == "passed" and fresh(session).provider_ref == "vendor-77"
    assert [e.verifier_ref for e in accepted(case)] == [session.pk]


def test_no_enrolment_reference_no_proofing(acme):
    agent = staff(Role.AGENT, tenant=acme)
    account = make_account_with(acme, groups=["finance"])
    case = case_open(actor=agent, account=account, case_type="password_reset", channel="phone")

    refused_with("proofing.no_enrolment_reference", proofing_start, actor=agent, case=case)

    assert not ProofingSession.objects.filter(case=case).exists()
    assert refusal_codes(case) == ["proofing.no_enrolment_reference"]


def test_a_t0_case_does_not_accept_s4(acme):
    agent = staff(Role.AGENT, tenant=acme)
    account = make_account_with(acme)
    enrolled(account)
    case = case_open(actor=agent, account=account, case_type="password_reset", channel="phone")

    refused_with("evidence.class_not_accepted", proofing_start, actor=agent, case=case)

    assert not ProofingSession.objects.filter(case=case).exists()


def test_an_unconfigured_provider_is_refused(acme):
    case = t1_case(acme)
    refused_with(
        "proofing.not_configured", proofing_start, actor=agent_of(case), case=case, provider="x"
    )
    with override_settings(PROOFING_PROVIDERS={}):
        refused_with("proofing.not_configured", proofing_start, actor=agent_of(case), case=case)
    with override_settings(VOUCHSAFE_ENVIRONMENT="production"):
        assert provider_get("dev") is None  # the development provider never runs in production
    assert refusal_codes(case) == ["proofing.not_configured"] * 2


def test_an_ai_drafted_case_waits_for_a_person_and_an_ai_cannot_start(acme):
    assistant = key_client(acme, kind="ai_assistant").principal
    account = make_account_with(acme, groups=["finance"])
    enrolled(account)
    draft = case_open(actor=assistant, account=account, case_type="password_reset", channel="api")
    agent = staff(Role.AGENT, tenant=acme)

    refused_with("ai.action_blocked", proofing_start, actor=assistant, case=draft)
    refused_with("case.not_taken", proofing_start, actor=agent, case=draft)

    assert not ProofingSession.objects.filter(case=draft).exists()
    RecoveryCase.objects.filter(pk=draft.pk).update(taken_by=agent, taken_at=timezone.now())
    assert proofing_start(actor=agent, case=draft).session.started_by == agent


def test_someone_who_cannot_work_the_case_cannot_start(acme, globex):
    case = t1_case(acme)
    outsider = staff(Role.AGENT, tenant=globex)
    auditor = staff(Role.AUDITOR, tenant=acme)
    for actor in (outsider, auditor):
        with pytest.raises(Exception):  # noqa: B017 (a 404 or a policy refusal)
            proofing_start(actor=actor, case=case)
    assert not ProofingSession.objects.filter(case=case).exists()


# --- over the API -----------------------------------------------------------------------------


def proofing_url(case: RecoveryCase) -> str:
    return api(case.tenant, f"cases/{case.pk}/proofing/")


def test_an_integration_key_starts_proofing_but_only_the_verdict_counts(acme):
    case = t1_case(acme)
    client = key_client(acme)

    response = client.post(proofing_url(case), {}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "started" and body["provider"] == "dev" and body["expires_at"]
    assert body["redirect_url"].endswith(
        "/dev-proofing/" + fresh(case).proofing_sessions.get().nonce + "/"
    )
    assert body["evidence_id"] is None and response["ETag"]
    assert accepted(case) == []  # starting proves nothing
    session = ProofingSession.objects.get(pk=body["id"])
    assert session.started_by == client.principal
    deliver(*verdict(session))
    assert [e.verifier_ref for e in accepted(case)] == [session.pk]


def test_a_staff_agent_starts_proofing_through_their_session(acme):
    case = t1_case(acme)
    response = staff_api_client(agent_of(case)).post(proofing_url(case), {}, format="json")
    assert response.status_code == 201, response.content


def test_an_ai_key_cannot_start_proofing(acme):
    case = t1_case(acme)
    response = key_client(acme, kind="ai_assistant").post(proofing_url(case), {}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "ai.action_blocked"
    assert not ProofingSession.objects.filter(case=case).exists()


def test_refusals_over_the_api_carry_their_code_and_stay_on_record(acme, globex):
    case = t1_case(acme)
    client = key_client(acme)
    unknown = client.post(proofing_url(case), {"provider": "nope"}, format="json")
    assert unknown.status_code == 403 and unknown.json()["code"] == "proofing.not_configured"
    assert refusal_codes(case) == ["proofing.not_configured"]
    theirs = key_client(globex).post(api(globex, f"cases/{case.pk}/proofing/"), {}, format="json")
    assert theirs.status_code == 404
    assert not ProofingSession.objects.filter(case=case).exists()


# --- the verdict endpoint and the development vendor page ------------------------------------


def verdict_post(provider: str, body: bytes, headers: dict[str, str]):
    extra = {
        "HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items() if k != "Content-Type"
    }
    return Client(enforce_csrf_checks=True).post(  # the provider has no CSRF cookie
        f"/proofing/{provider}/verdict/", body, content_type="application/json", **extra
    )


def test_the_verdict_endpoint_applies_a_signed_verdict_without_a_session(acme):
    case = t1_case(acme)
    session = start(case)
    body, headers = verdict(session)

    forged = verdict_post("dev", body.replace(b"pass", b"fail"), headers)
    applied = verdict_post("dev", body, headers)
    again = verdict_post("dev", body, headers)

    assert forged.status_code == 400 and forged.json()["code"] == "proofing.bad_signature"
    assert applied.status_code == 200, applied.content
    assert applied.json() == {"code": "proofing.verdict_applied", "status": "passed"}
    assert again.status_code == 400 and again.json()["code"] == "proofing.replayed"
    assert verdict_post("nope", body, headers).json()["code"] == "proofing.not_configured"
    assert Client().get("/proofing/dev/verdict/").status_code == 405
    assert [e.verifier_ref for e in accepted(case)] == [session.pk]


def test_the_vendor_page_shows_a_masked_subject_and_its_buttons(acme):
    case = t1_case(acme)
    ProtectedAccount.objects.filter(pk=case.account_id).update(display_name="Jamie Rivera")
    session = start(case)

    page = Client().get(f"/dev-proofing/{session.nonce}/")

    assert page.status_code == 200
    text = page.content.decode()
    assert "J*** R***" in text and "Jamie" not in text
    assert case.account.enrolment_reference not in text
    for value in ("match", "no_match", "cannot_proof"):
        assert f'value="{value}"' in text
    assert Client().get("/dev-proofing/unknown-nonce/").status_code == 404


@pytest.mark.parametrize(
    ("choice", "status", "case_status", "counted"),
    [
        ("match", "passed", "collecting_evidence", 1),
        ("no_match", "mismatch", "rejected", 0),
        ("cannot_proof", "failed", "collecting_evidence", 0),
    ],
)
def test_the_vendor_page_buttons_lead_to_their_outcome(acme, choice, status, case_status, counted):
    case = t1_case(acme)
    session = start(case)
    browser = Client(enforce_csrf_checks=True)
    browser.get(f"/dev-proofing/{session.nonce}/")

    done = browser.post(
        f"/dev-proofing/{session.nonce}/",
        {"outcome": choice, "csrfmiddlewaretoken": browser.cookies["csrftoken"].value},
    )

    assert done.status_code == 200, done.content
    assert fresh(session).status == status
    assert fresh(case).status == case_status
    assert len(accepted(case)) == counted
    assert browser.get(f"/dev-proofing/{session.nonce}/").status_code == 410


def test_the_vendor_page_is_not_served_without_the_development_provider(acme):
    case = t1_case(acme)
    session = start(case)
    with override_settings(PROOFING_PROVIDERS={}):
        assert Client().get(f"/dev-proofing/{session.nonce}/").status_code == 404
        assert (
            Client().post(f"/dev-proofing/{session.nonce}/", {"outcome": "match"}).status_code
            == 404
        )
    assert accepted(case) == []
