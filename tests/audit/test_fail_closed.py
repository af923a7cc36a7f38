"""Failing closed on a broken audit chain (issue 15 part 3, R-44/R-46): a tampered chain found by
the periodic verifier refuses T1/T2 executions and policy activations in its tenant (T0 goes on),
shows a banner on every case page, pages the audit_admins and the security contact, and only
an audit_admin with a fresh passkey step-up lifts it, recorded in the platform chain.

Everything is real: PostgreSQL (rows tampered as a superuser would, triggers off), the verifier
task run in-process, Django's test mail outbox as the SMTP server.
"""

from __future__ import annotations

import json
import os

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from audit.context import Actor
from audit.integrity import (
    ChainIntegrityFailing,
    integrity_acknowledge,
    integrity_failing,
    platform_audit_admin_set,
    platform_audit_admins,
    untrusted_windows,
)
from audit.models import AuditEvent, ChainIntegrity
from audit.services import record
from audit.tasks import audit_verify_task
from recovery.models import PolicyVersion
from recovery.policy.rules import DEFAULT_POLICY_FILE
from recovery.policy.services import (
    policy_activation_approve,
    policy_activation_request,
    policy_draft_create,
)
from tenants.choices import Role
from tenants.exceptions import DomainError
from tenants.models import Tenant, User
from tenants.stepup import StepUpProof, step_up_passkey_verify

from ..approle import as_app_role
from ..conftest import signed_in_client
from ..factories import (
    execute,
    make_tenant,
    notices_sent,
    operator,
    passkey_of,
    security_contact,
    staff,
    step_up,
)
from ..recovery.execution.helpers import ready_case
from ..staffkey import staff_sign
from .test_tampering import tamper

pytestmark = pytest.mark.django_db

T1 = {"groups": ["finance"], "case_type": "temporary_access"}
STRICTER = DEFAULT_POLICY_FILE.read_text(encoding="utf-8").replace(
    "  max_failed_attempts: 5 ", "  max_failed_attempts: 3 "
)
BANNER = 'id="integrity-banner"'


def break_row(tenant: Tenant, seq: int) -> None:
    tamper(
        tenant,
        f"UPDATE audit_auditevent SET data = '{{{{}}}}' WHERE tenant_id = {{t}} AND seq = {seq}",
    )


def passkey_step_up(user: User) -> StepUpProof:
    """A fresh passkey step-up of `user` over a challenge the server issued for the act."""
    challenge = os.urandom(32)
    return step_up_passkey_verify(
        user=user,
        challenge=challenge,
        credential_json=staff_sign(passkey_of(user), challenge),
        inputs={"action": "audit.integrity_acknowledge"},
    )


def platform_audit_admin() -> User:
    user = staff(Role.AGENT, tenant=make_tenant())  # staff elsewhere: no role in the tenants
    User.objects.filter(pk=user.pk).update(email=f"platform-audit-{user.pk}@example.test")
    user.refresh_from_db()
    platform_audit_admin_set(actor=operator(), user=user, enabled=True)
    return user


def pending_policy(tenant: Tenant) -> PolicyVersion:
    author = staff(Role.TENANT_ADMIN, tenant=tenant)
    version = policy_draft_create(actor=author, tenant=tenant, text=STRICTER)
    return policy_activation_request(actor=author, version=version)


def finding_of(tenant: Tenant) -> ChainIntegrity:
    return ChainIntegrity.objects.get(key=f"tenant:{tenant.pk}")


def acknowledge(user: User, tenant: Tenant, proof: StepUpProof | None = None) -> ChainIntegrity:
    state = finding_of(tenant)
    return integrity_acknowledge(
        actor=user,
        chain=state.key,
        finding=state.finding_event_seq,
        step_up=proof if proof is not None else passkey_step_up(user),
    )


@pytest.fixture
def audit_admin(acme) -> User:
    user = staff(Role.AUDIT_ADMIN, tenant=acme)
    User.objects.filter(pk=user.pk).update(email=f"audit-admin-{user.pk}@example.test")
    user.refresh_from_db()
    return user


@pytest.fixture
def agent(acme) -> User:
    return staff(Role.AGENT, tenant=acme)


@pytest.fixture
def t1_case(acme, agent):
    case = ready_case(acme, agent, **T1)
    assert case.tier == "T1"
    assert set(notices_sent(acme)) <= {"sent"}
    return case


@pytest.fixture
def broken(acme, t1_case):
    """acme's chain tampered at seq 3 and the verifier run over it."""
    break_row(acme, 3)
    audit_verify_task()
    return finding_of(acme)


def test_verifier_makes_the_tenant_fail_closed_and_records_the_finding(acme, globex, broken):
    assert integrity_failing(acme) == broken
    assert (broken.first_bad_seq, broken.broken) == (3, True)
    assert broken.window[0] == 3 and untrusted_windows(acme) == [broken.window]
    assert integrity_failing(globex) is None and untrusted_windows(globex) == []
    violation = AuditEvent.objects.get(tenant=None, seq=broken.finding_event_seq)
    assert violation.action == "audit.integrity_violation"
    assert violation.data["chain"] == acme.slug and violation.data["first_bad_seq"] == 3
    # the tenant's own chain says so too (its webhooks and SIEM stream carry it)
    failing = AuditEvent.objects.filter(tenant=acme, action="audit.integrity_failing").get()
    assert failing.data["first_bad_seq"] == 3
    audit_verify_task()  # the same finding again: not recorded twice
    assert (
        AuditEvent.objects.filter(action="audit.integrity_violation", data__key=broken.key).count()
        == 1
    )


def test_t1_execution_is_refused_with_the_code_and_recorded(acme, agent, t1_case, broken):
    with pytest.raises(ChainIntegrityFailing) as refused:
        execute(t1_case, agent)
    assert refused.value.code == "audit.integrity_failing"
    t1_case.refresh_from_db()
    assert t1_case.status == "ready"
    refusal = AuditEvent.objects.filter(tenant=acme, action="case.execution_refused").last()
    assert refusal.data["code"] == "audit.integrity_failing"


def test_policy_activation_is_refused_with_the_code(acme, broken):
    version = pending_policy(acme)
    approver = staff(Role.TENANT_ADMIN, tenant=acme)
    with pytest.raises(DomainError) as refused:
        policy_activation_approve(actor=approver, version=version, step_up=step_up(approver))
    assert refused.value.code == "audit.integrity_failing"
    version.refresh_from_db()
    assert version.status == "pending_activation"
    rejected = AuditEvent.objects.filter(tenant=acme, action="policy.rejected").last()
    assert rejected.data["code"] == "audit.integrity_failing"


def test_t0_execution_goes_on(acme, agent, broken):
    case = ready_case(acme, agent, case_type="password_reset")
    assert case.tier == "T0"
    assert execute(case, agent).status == "executed"


def test_a_platform_chain_break_fails_every_tenant_closed(acme, globex, t1_case, agent):
    tamper(
        acme, "UPDATE audit_auditevent SET actor_label = 'x' WHERE tenant_id IS NULL AND seq = 1"
    )
    audit_verify_task()
    state = ChainIntegrity.objects.get(key="platform")
    assert integrity_failing(acme) == state and integrity_failing(globex) == state
    with pytest.raises(ChainIntegrityFailing):
        execute(t1_case, agent)
    # a tenant's audit_admin does not acknowledge the platform's finding; a platform one does
    tenant_admin = staff(Role.AUDIT_ADMIN, tenant=acme)
    with pytest.raises(DomainError) as refused:
        integrity_acknowledge(
            actor=tenant_admin,
            chain="platform",
            finding=state.finding_event_seq,
            step_up=passkey_step_up(tenant_admin),
        )
    assert refused.value.code == "audit.platform_admin_required"
    superuser = operator()  # a platform operator is not, as such, a platform audit admin
    with pytest.raises(DomainError) as refused:
        integrity_acknowledge(
            actor=superuser,
            chain="platform",
            finding=state.finding_event_seq,
            step_up=passkey_step_up(superuser),
        )
    assert refused.value.code == "audit.platform_admin_required"
    platform_admin = platform_audit_admin()
    integrity_acknowledge(
        actor=platform_admin,
        chain="platform",
        finding=state.finding_event_seq,
        step_up=passkey_step_up(platform_admin),
    )
    assert integrity_failing(acme) is None
    t1_case.refresh_from_db()
    assert execute(t1_case, agent).status == "executed"


def test_every_case_page_shows_the_banner_while_failing(acme, agent, t1_case, audit_admin):
    client = signed_in_client(agent)
    page = f"/t/{acme.slug}/cases/{t1_case.pk}/"
    assert BANNER not in client.get(page).content.decode()
    break_row(acme, 3)
    audit_verify_task()
    body = client.get(page).content.decode()
    assert BANNER in body and "broken from entry 3" in body
    acknowledge(audit_admin, acme)
    assert BANNER not in client.get(page).content.decode()


def test_the_finding_pages_audit_admins_and_the_security_contact(
    acme, globex, t1_case, audit_admin
):
    security_contact(acme, "soc@acme.example.test")
    platform = platform_audit_admin()
    elsewhere = staff(Role.AUDIT_ADMIN, tenant=globex)
    User.objects.filter(pk=elsewhere.pk).update(email="globex-audit@example.test")
    mail.outbox.clear()
    break_row(acme, 3)
    assert audit_verify_task()["paged"] == 1
    paged = {message.to[0]: message for message in mail.outbox}
    assert set(paged) == {audit_admin.email, platform.email, "soc@acme.example.test"}
    assert acme.slug in paged["soc@acme.example.test"].subject
    assert "entry 3" in paged[audit_admin.email].body
    record = AuditEvent.objects.filter(tenant=None, action="audit.integrity_paged").get()
    assert record.data["recipients"] == 3 and record.data["security_contacts"] == 1
    mail.outbox.clear()
    assert audit_verify_task()["paged"] == 0  # paged once per finding
    assert mail.outbox == []


def test_a_page_that_fails_is_sent_by_the_next_run(acme, t1_case, audit_admin, settings):
    settings.EMAIL_BACKEND = "tests.audit.test_fail_closed.RefusingBackend"
    break_row(acme, 3)
    assert audit_verify_task()["paged"] == 0
    assert finding_of(acme).paged_at is None and integrity_failing(acme) is not None
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    assert audit_verify_task()["paged"] == 1
    assert [message.to for message in mail.outbox] == [[audit_admin.email]]


class RefusingBackend:
    """An SMTP server that is down (with `fail_silently`, it says it sent nothing)."""

    def __init__(self, *args, fail_silently: bool = False, **kwargs) -> None:
        self.fail_silently = fail_silently

    def send_messages(self, messages) -> int:
        if self.fail_silently:
            return 0
        raise ConnectionRefusedError("smtp down")


@pytest.mark.parametrize(
    "role", [Role.AGENT, Role.TENANT_ADMIN, Role.AUDITOR, Role.SECURITY_OFFICER]
)
def test_only_an_audit_admin_may_acknowledge(acme, broken, role):
    user = staff(role, tenant=acme)
    with pytest.raises(DomainError) as refused:
        acknowledge(user, acme)
    assert refused.value.code == "audit.admin_required"
    assert integrity_failing(acme) is not None
    refusal = AuditEvent.objects.filter(
        tenant=None, action="audit.integrity_acknowledge_refused"
    ).last()
    assert refusal.data == {"key": broken.key, "code": "audit.admin_required"}


def test_an_audit_admin_needs_a_fresh_passkey_step_up(acme, broken, audit_admin):
    with pytest.raises(DomainError) as totp:
        acknowledge(audit_admin, acme, proof=step_up(audit_admin))  # an authenticator code
    assert totp.value.code == "stepup.kind_refused"
    with pytest.raises(DomainError) as missing:
        integrity_acknowledge(
            actor=audit_admin, chain=broken.key, finding=broken.finding_event_seq, step_up=None
        )
    assert missing.value.code == "stepup.required"
    assert integrity_failing(acme) is not None


def test_an_acknowledgement_names_the_finding_it_saw(acme, broken, audit_admin):
    with pytest.raises(DomainError) as stale:
        integrity_acknowledge(
            actor=audit_admin,
            chain=broken.key,
            finding=broken.finding_event_seq - 1,
            step_up=passkey_step_up(audit_admin),
        )
    assert stale.value.code == "audit.integrity_finding_changed"


def test_acknowledged_in_the_platform_chain_then_executions_work_again(
    acme, agent, t1_case, broken, audit_admin
):
    state = acknowledge(audit_admin, acme)
    assert not state.failing and integrity_failing(acme) is None
    event = AuditEvent.objects.get(tenant=None, seq=state.acknowledged_event_seq)
    assert event.action == "audit.integrity_acknowledged"
    assert event.actor_id == str(audit_admin.pk)
    assert (event.data["key"], event.data["first_bad_seq"]) == (broken.key, 3)
    assert event.data["step_up"]["device_type"] == "passkey"
    audit_verify_task()  # the same finding again: still acknowledged
    assert integrity_failing(acme) is None
    assert untrusted_windows(acme)[0][0] == 3  # its rows stay untrusted
    assert execute(t1_case, agent).status == "executed"


def test_a_different_break_fails_closed_again(acme, agent, t1_case, broken, audit_admin):
    acknowledge(audit_admin, acme)
    mail.outbox.clear()
    break_row(acme, 2)
    audit_verify_task()
    state = integrity_failing(acme)
    assert state is not None and state.first_bad_seq == 2
    assert untrusted_windows(acme) == [(2, state.window_end)]  # both findings' rows, merged
    assert (
        AuditEvent.objects.filter(action="audit.integrity_violation", data__key=state.key).count()
        == 2
    )
    assert [message.to for message in mail.outbox] == [[audit_admin.email]]
    with pytest.raises(ChainIntegrityFailing):
        execute(t1_case, agent)


def test_the_app_role_cannot_clear_a_finding_or_fake_an_acknowledgement(app_role, acme, broken):
    statements = [
        "DELETE FROM audit_chainintegrity",
        "TRUNCATE audit_chainintegrity",
        "UPDATE audit_chainintegrity SET first_bad_seq = NULL, reason = ''",
        "UPDATE audit_chainintegrity SET acknowledged_seq = first_bad_seq, "
        "acknowledged_reason = reason",
        # an acknowledgement event of another finding does not do either
        "UPDATE audit_chainintegrity SET acknowledged_seq = first_bad_seq, "
        "acknowledged_reason = reason, acknowledged_event_seq = finding_event_seq",
    ]
    for statement in statements:
        with (
            pytest.raises(DatabaseError),
            as_app_role(None),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    assert integrity_failing(acme) == broken
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_table_privilege(%s, 'audit_chainintegrity', 'DELETE'), "
            "has_table_privilege(%s, 'audit_chainintegrity', 'TRUNCATE')",
            [app_role, app_role],
        )
        assert cursor.fetchone() == (False, False)  # refused by the grants, not only triggers


def test_a_platform_operator_makes_platform_audit_admins_but_not_themselves(db):
    user = platform_audit_admin()
    assert list(platform_audit_admins()) == [user]
    changed = AuditEvent.objects.filter(tenant=None, action="audit.platform_admin_changed").get()
    assert changed.data == {"user": user.username, "enabled": True}
    with pytest.raises(DomainError) as itself:
        platform_audit_admin_set(actor=operator(), user=operator(), enabled=True)
    assert itself.value.code == "audit.admin_self_grant"
    with pytest.raises(DomainError) as not_operator:
        platform_audit_admin_set(
            actor=user, user=staff(Role.AGENT, tenant=make_tenant()), enabled=True
        )
    assert not_operator.value.code == "platform.operator_required"
    platform_audit_admin_set(actor=operator(), user=user, enabled=False)
    assert list(platform_audit_admins()) == []


def test_a_break_undone_before_it_was_acknowledged_still_needs_acknowledging(
    acme, broken, audit_admin
):
    acknowledge(audit_admin, acme)  # the finding at seq 3
    original = AuditEvent.objects.filter(tenant=acme, seq=2).values_list("data", flat=True).get()
    break_row(acme, 2)
    audit_verify_task()
    assert integrity_failing(acme).first_bad_seq == 2
    with connection.cursor() as cursor:  # seq 2 put back as it was: seq 3's finding again
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE audit_auditevent SET data = %s::jsonb WHERE tenant_id = %s AND seq = 2",
            [json.dumps(original), acme.pk],
        )
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
    audit_verify_task()
    state = integrity_failing(acme)  # seq 3 was acknowledged; the tampering at 2 was not
    assert state is not None and state.first_bad_seq == 2
    acknowledge(audit_admin, acme)
    audit_verify_task()
    assert integrity_failing(acme) is None


@pytest.mark.parametrize(
    "first_break",
    [
        "UPDATE audit_auditevent SET data = '{{}}' WHERE tenant_id = {t} AND seq = 3",
        "DELETE FROM audit_auditevent WHERE tenant_id = {t} AND seq IN (3, 4)",
    ],
    ids=["modified", "deleted"],
)
def test_an_acknowledged_break_hides_no_later_one(acme, t1_case, audit_admin, first_break):
    tamper(acme, first_break)
    audit_verify_task()
    assert integrity_failing(acme).first_bad_seq == 3
    acknowledge(audit_admin, acme)
    mail.outbox.clear()
    last = AuditEvent.objects.filter(tenant=acme).order_by("-seq").values_list("seq", flat=True)[0]
    break_row(acme, last - 1)
    audit_verify_task()
    state = integrity_failing(acme)
    assert state is not None and state.first_bad_seq == last - 1
    assert [message.to for message in mail.outbox] == [[audit_admin.email]]
    acknowledge(audit_admin, acme)
    audit_verify_task()  # both acknowledged: the tenant works, the rows stay untrusted
    assert integrity_failing(acme) is None
    windows = untrusted_windows(acme)
    assert windows[0][0] == 3 and any(a <= last - 1 <= b for a, b in windows)
    with pytest.raises(CommandError):  # an auditor's own run still reports the first
        call_command("audit_verify", "--tenant", acme.slug)


def test_a_state_is_failing_unless_its_acknowledgement_names_this_finding():
    def state(**ack) -> ChainIntegrity:
        return ChainIntegrity(key="tenant:1", first_bad_seq=3, reason="row content", **ack)

    assert state().failing
    assert state(acknowledged_seq=2, acknowledged_reason="row content").failing
    assert state(acknowledged_seq=3, acknowledged_reason="head moved").failing
    assert not state(acknowledged_seq=3, acknowledged_reason="row content").failing
    assert not ChainIntegrity(key="platform").failing  # no finding


def test_untrusted_windows_skip_findings_recorded_before_windows_existed(acme, broken):
    with transaction.atomic():  # the verifier's data before it named a window
        record(
            action="audit.integrity_violation",
            actor=Actor.system("audit-verifier"),
            data={"chain": acme.slug, "first_bad_seq": 1, "reason": "old"},
        )
    assert untrusted_windows(acme) == [broken.window]
