"""The owner binds at the identity provider, the connector completes (R-10, R-11, R-12, R-34).

The tenant's active connector is Entra ID pointed at the Graph fake (a real HTTPS server with
its own CA). A case is opened, verified, approved and executed through the real services; the
owner opens the artifact, is shown the Temporary Access Pass once, "registers" a new method at
Microsoft (the test adds it to the fake, created now), and confirms. What is asserted is the
fake's state afterwards (methods, sessions-revoked time, the pass), the audit trail and what
the database, the mail, the text messages and the logs hold.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.test import Client

from recovery.cases.models import CaseExecution, RecoveryCase
from recovery.cases.services.containment import containment_step_record
from recovery.cases.services.execution import case_close
from recovery.connectors.base import Capability
from recovery.connectors.cloud import AuthMethod
from recovery.connectors.entra import EntraConnector, validate_entra_settings
from recovery.connectors.models import ConnectorConfig
from recovery.connectors.validation import _Errors
from recovery.models import ProtectedAccount
from recovery.owner.binding import methods_bound_since, temporary_pass_minutes
from tenants.choices import Role
from tenants.exceptions import DomainError, PolicyDenied, StepUpFailed
from tenants.models import Tenant
from tests.fakes.graph import PASSWORD_METHOD_ID, FakeGraph, graph_error, iso

from ..conftest import signed_in_client
from ..factories import execute, notices_sent, staff, step_up, unique
from ..recovery.execution.helpers import owner_email, ready_case
from .binding_helpers import events, mfa_session, outbound_texts, tables_containing
from .owners import enrolled_client, owner_account

pytestmark = pytest.mark.django_db

SECRET_ENV = "VS_TEST_ENTRA_BINDING_SECRET"
PAGE, PASS_URL, CONFIRM_URL = (
    "/owner/recovery/",
    "/owner/recovery/pass/",
    "/owner/recovery/confirm/",
)
TAP = "temporaryAccessPass"
DAY = 86_400


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def sms_outbox(settings, tmp_path) -> Path:
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    return settings.SMS_OUTBOX_PATH


@pytest.fixture
def entra(acme: Tenant, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch) -> FakeGraph:
    """acme's active connector is Entra ID at the fake: validated settings, the secret in the
    variable they name, the fake's CA as `ca_bundle` (no process-wide trust)."""
    monkeypatch.setenv(SECRET_ENV, graph.client_secret)
    errors = _Errors()
    settings = validate_entra_settings(
        {
            "tenant_id": graph.tenant_id,
            "client_id": graph.client_id,
            "client_secret_env": SECRET_ENV,
            "authority_host": graph.url,
            "graph_url": graph.url,
            "ca_bundle": graph.ca_path,
        },
        errors,
    )
    assert errors.fields == {}
    ConnectorConfig.objects.create(
        tenant=acme,
        kind="entra",
        settings=settings,
        is_active=True,
        updated_by=staff(Role.TENANT_ADMIN, tenant=acme),
    )
    return graph


@dataclass
class Owner:
    """The account in Vouchsafe and its user at the fake, with the methods lost before."""

    external_id: str
    user_id: str
    lost: list[str]

    @property
    def upn(self) -> str:
        return f"{self.external_id}@example.test"


def entra_owner(graph: FakeGraph) -> Owner:
    """A user with two methods registered a day ago (the lost phone app, the lost key)."""
    external_id = unique("ext")
    user_id = graph.add_user(f"{external_id}@example.test", "Ada Lovelace")
    a_day_ago = iso(graph.now() - DAY)
    lost = [
        graph.add_method(user_id, "microsoftAuthenticator", createdDateTime=a_day_ago),
        graph.add_method(user_id, "fido2", displayName="Old key", createdDateTime=a_day_ago),
    ]
    return Owner(external_id=external_id, user_id=user_id, lost=lost)


def passes(graph: FakeGraph, owner: Owner) -> list[str]:
    return [
        m["id"]
        for m in graph.methods[owner.user_id]
        if m["@odata.type"].endswith(f"{TAP}AuthenticationMethod")
    ]


def registered_at_microsoft(graph: FakeGraph, owner: Owner, kind: str = "fido2") -> str:
    """The owner, signed in with the pass, adds a method at Microsoft a minute later."""
    graph.advance(60)
    return graph.add_method(owner.user_id, kind, displayName="New key")


def writes(graph: FakeGraph) -> list[tuple[str, str]]:
    return [
        (r.method, r.path)
        for r in graph.requests
        if r.method in ("POST", "PATCH", "DELETE") and not r.path.endswith("/token")
    ]


def execution_of(case: RecoveryCase) -> CaseExecution:
    return CaseExecution.objects.get(case=case)


def step_events(tenant: Tenant, case: RecoveryCase) -> list[tuple[str, str, str]]:
    return [
        (e.action, e.data["operation"], e.data["target"])
        for e in events(tenant, "containment.step_done", case)
        + events(tenant, "containment.step_failed", case)
    ]


# --- the whole recovery ----------------------------------------------------------------------


def test_the_owner_sees_the_pass_once_binds_at_microsoft_and_the_lost_methods_go(
    acme, entra, sms_outbox, caplog
):
    caplog.set_level(logging.DEBUG)
    owner = entra_owner(entra)
    recovery = mfa_session(acme, sms_outbox, external_id=owner.external_id)
    assert execution_of(recovery.case).connector == "entra"
    assert passes(entra, owner) == [] and entra.sessions_revoked_at == {}

    page = recovery.client.get(PAGE)
    assert page.status_code == 200 and "Show my one-time pass" in page.content.decode()
    assert "no-store" in page["Cache-Control"]

    shown = recovery.client.post(PASS_URL)

    assert shown.status_code == 200 and "no-store" in shown["Cache-Control"]
    [pass_id] = passes(entra, owner)  # the fake holds exactly one pass, for this user
    secret = entra.pass_values[pass_id]
    assert f'<code id="one-time-pass">{secret}</code>' in shown.content.decode()
    [created] = entra.sent("POST", r"/temporaryAccessPassMethods$")
    assert created.json() == {"lifetimeInMinutes": 60, "isUsableOnce": True}  # the policy's 1 h
    [issued] = events(acme, "owner.temporary_pass_issued", recovery.case)
    assert issued.data["pass_id"] == pass_id and issued.data["expires_at"]
    assert issued.data["lifetime_minutes"] == 60
    assert recovery.client.get(PAGE).content.decode().count(secret) == 0  # shown once only
    # Every session ended before the pass existed: none held elsewhere can use it.
    revoke = entra.sent("POST", r"/revokeSignInSessions$")
    assert len(revoke) == 1 and revoke[0] in entra.requests[: entra.requests.index(created)]
    assert issued.data["sessions_ended_first"].endswith("/revokeSignInSessions")

    new_key = registered_at_microsoft(entra, owner)
    revoked_before = entra.users[owner.user_id]["signInSessionsValidFromDateTime"]
    confirmed = recovery.client.post(CONFIRM_URL)

    assert confirmed.status_code == 302 and confirmed.url == PAGE
    assert entra.method_ids(owner.user_id) == [PASSWORD_METHOD_ID, new_key]  # lost, pass: gone
    assert owner.user_id in entra.sessions_revoked_at
    assert entra.users[owner.user_id]["signInSessionsValidFromDateTime"] > revoked_before
    assert sorted(step_events(acme, recovery.case)) == sorted(
        [
            ("containment.step_done", "method_remove", owner.lost[0]),
            ("containment.step_done", "method_remove", owner.lost[1]),
            ("containment.step_done", "sessions_revoke", owner.upn),
            ("containment.step_done", "revoke_temporary_access", pass_id),
        ]
    )
    removal = events(acme, "containment.step_done", recovery.case)[0]
    assert removal.data["path"].startswith(f"DELETE /users/{owner.upn}/authentication/")
    [bound] = events(acme, "owner.authenticator_bound", recovery.case)
    assert bound.data["verified_by"] == "connector"
    assert [(m["kind"], m["id"]) for m in bound.data["methods"]] == [("fido2", new_key)]
    session = recovery.session
    assert session.bound_at is not None and session.bound_detail["verified_by"] == "connector"
    execution = execution_of(recovery.case)
    assert execution.containment_done_at is not None and execution.containment_steps == []
    done = recovery.client.get(PAGE).content.decode()
    assert "confirmed your new sign-in method" in done

    # The pass is nowhere but in that one response: no row, mail, text, log, or staff page.
    notices_sent(acme)
    assert tables_containing(secret) == []
    assert secret not in outbound_texts(sms_outbox)
    assert secret not in caplog.text
    agent = signed_in_client(staff(Role.AGENT, tenant=acme))
    assert secret not in agent.get(f"/t/{acme.slug}/cases/{recovery.case.pk}/").content.decode()
    # Nothing left to do: the case closes.
    closed = case_close(actor=staff(Role.AGENT, tenant=acme), case=recovery.case, reason="done")
    assert closed.status == "closed"


def test_confirming_before_any_new_method_is_refused_and_removes_nothing(acme, entra, sms_outbox):
    owner = entra_owner(entra)
    recovery = mfa_session(acme, sms_outbox, external_id=owner.external_id)
    early = recovery.client.post(CONFIRM_URL)  # not even a pass yet
    assert early.status_code == 409 and "First show your one-time pass" in early.content.decode()
    recovery.client.post(PASS_URL)
    before = list(entra.method_ids(owner.user_id))

    refused = recovery.client.post(CONFIRM_URL)

    assert refused.status_code == 409
    assert "shows no new sign-in method" in refused.content.decode()
    assert entra.method_ids(owner.user_id) == before
    assert [w for w in writes(entra) if w[0] == "DELETE"] == []
    assert len(entra.sent("POST", r"/revokeSignInSessions$")) == 1  # before the pass, not since
    reasons = [e.data["reason"] for e in events(acme, "owner.binding_refused", recovery.case)]
    assert reasons == ["binding.no_pass", "binding.no_new_method"]
    assert events(acme, "containment.step_done", recovery.case) == []
    assert recovery.session.bound_at is None
    # A method from before the pass is no new one, whenever it was reported.
    entra.add_method(owner.user_id, "fido2", createdDateTime=iso(entra.now() - 3600))
    assert recovery.client.post(CONFIRM_URL).status_code == 409
    assert recovery.session.bound_at is None


def test_a_second_pass_is_refused_and_recorded(acme, entra, sms_outbox):
    owner = entra_owner(entra)
    recovery = mfa_session(acme, sms_outbox, external_id=owner.external_id)
    first = recovery.client.post(PASS_URL)
    [pass_id] = passes(entra, owner)
    first_secret = entra.pass_values[pass_id]
    assert first_secret in first.content.decode()

    second = recovery.client.post(PASS_URL)

    assert second.status_code == 409
    assert "already shown on this page" in second.content.decode()
    assert first_secret not in second.content.decode()
    assert passes(entra, owner) == [pass_id]  # no new pass replaced it
    assert len(entra.sent("POST", r"/temporaryAccessPassMethods$")) == 1
    [refused] = events(acme, "owner.binding_refused", recovery.case)
    assert refused.data["reason"] == "binding.pass_already_issued"
    assert len(events(acme, "owner.temporary_pass_issued", recovery.case)) == 1


def test_a_failed_pass_is_recorded_and_told_in_words(acme, entra, sms_outbox):
    owner = entra_owner(entra)
    recovery = mfa_session(acme, sms_outbox, external_id=owner.external_id)
    entra.fail_next(
        "POST",
        r"/temporaryAccessPassMethods$",
        403,
        graph_error(
            "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        ),
    )
    failed = recovery.client.post(PASS_URL)
    assert failed.status_code == 409
    assert "did not give a one-time pass just now" in failed.content.decode()
    [refused] = events(acme, "owner.binding_refused", recovery.case)
    assert refused.data["reason"] == "binding.pass_failed"
    assert refused.data["connector"]["code"] == "entra.forbidden"
    assert execution_of(recovery.case).temporary_pass is None
    # Nothing was issued, so the owner may try again.
    again = recovery.client.post(PASS_URL)
    assert again.status_code == 200 and len(passes(entra, owner)) == 1


# --- containment that the connector could not finish -------------------------------------------


def test_a_failed_removal_keeps_the_case_open_until_a_person_records_it_with_step_up(
    acme, entra, sms_outbox
):
    owner = entra_owner(entra)
    recovery = mfa_session(acme, sms_outbox, external_id=owner.external_id)
    recovery.client.post(PASS_URL)
    new_key = registered_at_microsoft(entra, owner)
    lost_key = owner.lost[1]
    entra.fail_next(
        "DELETE",
        rf"/fido2Methods/{lost_key}$",
        403,
        graph_error(
            "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        ),
    )

    assert recovery.client.post(CONFIRM_URL).status_code == 302

    assert entra.method_ids(owner.user_id) == [PASSWORD_METHOD_ID, lost_key, new_key]
    assert owner.user_id in entra.sessions_revoked_at and passes(entra, owner) == []
    [failed] = events(acme, "containment.step_failed", recovery.case)
    assert (failed.data["operation"], failed.data["target"]) == ("method_remove", lost_key)
    assert failed.data["path"].endswith(f"/fido2Methods/{lost_key}")
    assert "Insufficient privileges" in failed.data["error"]
    [pending] = execution_of(recovery.case).containment_steps
    assert pending["state"] == "pending" and lost_key in pending["manual_step"]
    assert recovery.session.bound_at is not None  # bound: containment is the desk's part now
    assert "could not be finished automatically" in recovery.client.get(PAGE).content.decode()

    agent = staff(Role.AGENT, tenant=acme)
    with pytest.raises(DomainError) as refused:
        case_close(actor=agent, case=recovery.case, reason="done")
    assert refused.value.code == "case.containment_pending"
    with pytest.raises(StepUpFailed):
        containment_step_record(actor=agent, case=recovery.case, step=pending["id"], step_up=None)
    with pytest.raises(StepUpFailed):  # a code is no passkey: the execution's floor
        containment_step_record(
            actor=agent, case=recovery.case, step=pending["id"], step_up=step_up(agent)
        )
    assert execution_of(recovery.case).containment_steps[0]["state"] == "pending"

    proof = step_up(agent, case=recovery.case, action="execute")
    containment_step_record(actor=agent, case=recovery.case, step=pending["id"], step_up=proof)

    [recorded] = events(acme, "containment.step_recorded", recovery.case)
    assert recorded.data["step"] == pending["id"] and recorded.data["step_up"]
    with pytest.raises(DomainError) as twice:  # recorded once; nothing pending under that id
        containment_step_record(
            actor=agent,
            case=recovery.case,
            step=pending["id"],
            step_up=step_up(agent, case=recovery.case, action="execute"),
        )
    assert twice.value.code == "containment.step_unknown"
    assert execution_of(recovery.case).containment_steps[0]["recorded_by"] == agent.pk
    assert case_close(actor=agent, case=recovery.case, reason="done").status == "closed"


def test_a_connector_without_a_capability_leaves_that_step_to_a_person(
    acme, entra, sms_outbox, monkeypatch
):
    owner = entra_owner(entra)
    recovery = mfa_session(acme, sms_outbox, external_id=owner.external_id)
    monkeypatch.setattr(
        EntraConnector, "native", EntraConnector.native - {Capability.SESSIONS_REVOKE}
    )
    recovery.client.post(PASS_URL)
    registered_at_microsoft(entra, owner)
    assert recovery.client.post(CONFIRM_URL).status_code == 302
    assert entra.sessions_revoked_at == {}  # not attempted
    [failed] = events(acme, "containment.step_failed", recovery.case)
    assert failed.data["operation"] == "sessions_revoke"
    [pending] = execution_of(recovery.case).containment_steps
    assert "End every session and refresh token" in pending["manual_step"]


# --- who may reach it, and repeating it -----------------------------------------------------------


def test_a_staff_session_and_another_owner_session_reach_none_of_it(acme, entra, sms_outbox):
    owner = entra_owner(entra)
    recovery = mfa_session(acme, sms_outbox, external_id=owner.external_id)
    agent = signed_in_client(staff(Role.AGENT, tenant=acme))
    enrolled = enrolled_client(owner_account(acme))
    for browser in (agent, enrolled, Client()):
        assert browser.get(PAGE).status_code == 403
        assert browser.post(PASS_URL).status_code == 403
        assert browser.post(CONFIRM_URL).status_code == 403
    assert passes(entra, owner) == [] and writes(entra) == []
    assert execution_of(recovery.case).temporary_pass is None


def test_confirming_again_repeats_nothing_even_after_a_crash(acme, entra, sms_outbox, monkeypatch):
    owner = entra_owner(entra)
    recovery = mfa_session(acme, sms_outbox, external_id=owner.external_id)
    recovery.client.post(PASS_URL)
    [pass_id] = passes(entra, owner)
    new_key = registered_at_microsoft(entra, owner)

    def crash(self, **kwargs):
        raise RuntimeError("worker killed")

    # The lost methods are removed at Microsoft, then the process dies before anything commits.
    with monkeypatch.context() as patched:
        patched.setattr(EntraConnector, "revoke_temporary_access", crash)
        with pytest.raises(RuntimeError):
            recovery.client.post(CONFIRM_URL)
    assert entra.method_ids(owner.user_id) == [PASSWORD_METHOD_ID, pass_id, new_key]
    assert recovery.session.bound_at is None and step_events(acme, recovery.case) == []

    assert recovery.client.post(CONFIRM_URL).status_code == 302
    again = recovery.client.post(CONFIRM_URL)

    assert again.status_code == 409 and "already complete" in again.content.decode()
    assert entra.method_ids(owner.user_id) == [PASSWORD_METHOD_ID, new_key]
    for lost in owner.lost:  # removed once at Microsoft, recorded once here
        assert len(entra.sent("DELETE", rf"/{lost}$")) == 1
    steps = step_events(acme, recovery.case)
    assert len(steps) == len(set(steps)) == 4
    done = events(acme, "containment.step_done", recovery.case)
    absent = [e.data["detail"].get("absent") for e in done]
    assert absent.count(True) == 2  # the second run found the lost methods gone
    assert len(events(acme, "owner.authenticator_bound", recovery.case)) == 1
    # Before the pass, then once per confirm run: ending sessions again is harmless.
    assert len(entra.sent("POST", r"/revokeSignInSessions$")) == 3


# --- R-11 and R-12 ------------------------------------------------------------------------------


def test_a_t2_account_needs_a_phishing_resistant_new_method(acme, entra, sms_outbox):
    owner = entra_owner(entra)
    recovery = mfa_session(acme, sms_outbox, external_id=owner.external_id)
    ProtectedAccount.objects.filter(pk=recovery.case.account_id).update(
        admin_roles=["Global Administrator"]
    )
    assert "must be a passkey or a security key" in recovery.client.get(PAGE).content.decode()
    recovery.client.post(PASS_URL)
    registered_at_microsoft(entra, owner, kind="microsoftAuthenticator")

    refused = recovery.client.post(CONFIRM_URL)

    assert refused.status_code == 409 and "must resist phishing" in refused.content.decode()
    assert set(owner.lost) <= set(entra.method_ids(owner.user_id))
    registered_at_microsoft(entra, owner, kind="fido2")
    assert recovery.client.post(CONFIRM_URL).status_code == 302
    [bound] = events(acme, "owner.authenticator_bound", recovery.case)
    assert bound.data["tier"] == "T2" and bound.data["phishing_resistant"] is True


def test_a_password_reset_is_refused_and_changes_nothing_at_microsoft(acme, entra, sms_outbox):
    """R-12: the pass that would complete a password reset could also enrol MFA, so the Entra
    connector refuses the execution: nothing changes at Microsoft and no artifact leaves."""
    owner = entra_owner(entra)
    case = ready_case(acme, case_type="password_reset", external_id=owner.external_id)
    owner_email(case)
    before = list(entra.method_ids(owner.user_id))
    with pytest.raises(DomainError):
        execute(case, staff(Role.AGENT, tenant=acme))
    assert RecoveryCase.objects.get(pk=case.pk).status == "ready"
    [failed] = events(acme, "case.execution_failed", case)
    assert "R-12" in failed.data["error"]
    assert entra.method_ids(owner.user_id) == before and passes(entra, owner) == []
    assert not CaseExecution.objects.filter(case=case).exists()


# --- the pure parts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy_seconds", "minutes"),
    [(3600, 60), (600, 10), (30, 1), (8 * 3600, 480), (48 * 3600, 480)],
)
def test_the_pass_lives_the_policys_lifetime_and_never_above_eight_hours(policy_seconds, minutes):
    assert temporary_pass_minutes(policy_seconds) == minutes


def test_only_a_method_created_since_the_pass_counts_as_new():
    start = dt.datetime(2025, 5, 1, 9, 0, tzinfo=dt.UTC)

    def method(kind: str, created: dt.datetime | None, method_id: str | None = None) -> AuthMethod:
        return AuthMethod(id=method_id or str(uuid.uuid4()), kind=kind, created_at=created)

    later = start + dt.timedelta(seconds=1)
    new = method("fido2", later)
    methods = [
        method("fido2", start - dt.timedelta(seconds=1)),
        method("password", later),
        method(TAP, later, "the-pass"),
        method("phone", None),
        method("microsoftAuthenticator", start),
        new,
    ]
    found = methods_bound_since(methods, started=start, pass_id="the-pass")
    assert [m.kind for m in found] == ["microsoftAuthenticator", "fido2"]


def test_closing_a_case_whose_pass_was_never_used_deletes_the_pass_first(acme, entra, sms_outbox):
    """R-33: the owner took a pass and never confirmed a new method; closing the case deletes
    the pass at the provider, and a provider that cannot delete it keeps the case open."""
    owner = entra_owner(entra)
    recovery = mfa_session(acme, sms_outbox, external_id=owner.external_id)
    recovery.client.post(PASS_URL)
    [pass_id] = passes(entra, owner)
    agent = staff(Role.AGENT, tenant=acme)

    entra.fail_next("DELETE", r"/temporaryAccessPassMethods/", 503, times=5)
    with pytest.raises(PolicyDenied) as kept_open:
        case_close(actor=agent, case=recovery.case, reason="owner went quiet")
    assert kept_open.value.code == "case.pass_not_revoked"
    assert passes(entra, owner) == [pass_id]
    assert RecoveryCase.objects.get(pk=recovery.case.pk).status == "executed"

    closed = case_close(actor=agent, case=recovery.case, reason="owner went quiet")

    assert closed.status == "closed" and passes(entra, owner) == []
    assert step_events(acme, recovery.case) == [
        ("containment.step_done", "revoke_temporary_access", pass_id)
    ]
