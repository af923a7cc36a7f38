"""Shared and functional mailboxes (issue 14, item 6) through the real services, the console
and the API, with the manual connector (the tenant has none configured):

- a shared or functional mailbox refuses the case types that would recover its own credential,
  at opening, in the console's choices and over the API;
- access to it is a time-bound delegation requested by a `mailbox_access` case on the
  requester's own account, decided by the mailbox's registered owner in their own
  identity-provider session (never a link sent by e-mail) plus a supervisor's approval;
- the execution issues no artifact and no reset link; without a native connector the grant and
  the removal are tracked manual steps recorded with a passkey step-up; the sweep ends it.
"""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from recovery.artifacts.models import RecoveryArtifact
from recovery.cases.models import CaseExecution, RecoveryCase
from recovery.cases.services.execution import case_close
from recovery.delegation.choices import DelegationStatus
from recovery.delegation.models import MailboxDelegation
from recovery.delegation.services import (
    delegation_owner_decide,
    delegation_step_record,
    delegations_expire_sweep,
)
from recovery.owner.choices import PortalSessionKind
from tenants.choices import Role
from tenants.exceptions import CrossTenantNotFound, DomainError, InvalidInput, PolicyDenied

from ..api.conftest import api, key_client
from ..conftest import signed_in_client
from ..factories import execute, staff, step_up
from .delegation_helpers import (
    actions,
    delegation_of,
    expire_now,
    idp_session,
    owner_approves,
    person,
    requested,
    shared_mailbox,
    verified_and_approved,
)

pytestmark = pytest.mark.django_db
OWN_CREDENTIAL = ("password_reset", "mfa_reset", "temporary_access", "unlock")


@pytest.fixture
def world(acme):
    """A shared mailbox owned by `owner`, and `alice`, who needs access to it."""
    owner = person(acme)
    return {
        "owner": owner,
        "mailbox": shared_mailbox(acme, owner),
        "alice": person(acme),
        "agent": staff(Role.AGENT, tenant=acme),
    }


# --- the account's kind decides the case types ----------------------------------------------


@pytest.mark.parametrize("kind", ["shared", "functional"])
@pytest.mark.parametrize("case_type", OWN_CREDENTIAL)
def test_a_shared_or_functional_mailbox_refuses_its_own_credential_recovery(acme, kind, case_type):
    from recovery.cases.services import case_open

    mailbox = shared_mailbox(acme, person(acme), kind=kind)
    with pytest.raises(PolicyDenied) as refused:
        case_open(
            actor=staff(Role.AGENT, tenant=acme),
            account=mailbox,
            case_type=case_type,
            channel="phone",
        )
    assert refused.value.code == "case.type_not_for_account_kind"
    assert "mailbox access case" in refused.value.message
    assert not RecoveryCase.objects.filter(account=mailbox).exists()


def test_a_shared_mailbox_is_never_the_subject_of_its_own_access_case(world):
    with pytest.raises(PolicyDenied) as refused:
        requested(world["mailbox"], world["mailbox"])
    assert refused.value.code == "delegation.subject_is_mailbox"


def test_a_person_s_own_mailbox_still_opens_any_recovery(acme, world):
    from recovery.cases.services import case_open

    reset = case_open(
        actor=world["agent"], account=world["alice"], case_type="password_reset", channel="phone"
    )
    assert reset.case_type == "password_reset"


def test_the_console_offers_a_shared_mailbox_no_credential_recovery_and_refuses_a_forced_one(
    acme, world
):
    client = signed_in_client(world["agent"])
    mailbox = world["mailbox"]
    page = client.get(f"/t/{acme.slug}/workspace/accounts/{mailbox.pk}/")
    assert page.status_code == 200
    offered = [value for value, _label in page.context["form"].fields["case_type"].choices]
    assert offered and not set(OWN_CREDENTIAL) & set(offered)
    assert "mailbox_access" not in offered
    forced = client.post(
        f"/t/{acme.slug}/workspace/accounts/{mailbox.pk}/open/",
        {"open-case_type": "password_reset", "open-channel": "phone"},
    )
    assert forced.status_code == 400
    assert not RecoveryCase.objects.filter(account=mailbox).exists()
    # On a person's account, a mailbox access case names one of the tenant's shared mailboxes.
    page = client.get(f"/t/{acme.slug}/workspace/accounts/{world['alice'].pk}/")
    assert list(page.context["form"].fields["mailbox"].queryset) == [mailbox]


def test_the_api_refuses_a_password_reset_of_a_shared_mailbox_with_the_code(acme, world):
    client = key_client(acme)
    answer = client.post(
        api(acme, "cases/"),
        {"account_id": world["mailbox"].pk, "case_type": "password_reset"},
        format="json",
    )
    assert answer.status_code == 403, answer.content
    assert answer.json()["code"] == "case.type_not_for_account_kind"


# --- the request ----------------------------------------------------------------------------


def test_a_mailbox_access_case_on_the_requester_records_the_request(world):
    case = requested(world["mailbox"], world["alice"], world["agent"], hours=8)
    delegation = delegation_of(case)
    assert (case.account, case.case_type) == (world["alice"], "mailbox_access")
    assert (delegation.mailbox, delegation.delegate) == (world["mailbox"], world["alice"])
    assert delegation.owner_external_id == world["owner"].external_id
    assert (delegation.lifetime_seconds, delegation.status) == (8 * 3600, "requested")
    assert actions(case) == ["access.delegation_requested"]


def test_the_length_defaults_to_the_policy_and_more_than_its_maximum_is_refused(world):
    case = requested(world["mailbox"], world["alice"])
    assert delegation_of(case).lifetime_seconds == 86_400  # the platform default
    with pytest.raises(PolicyDenied) as refused:
        requested(world["mailbox"], person(world["mailbox"].tenant), hours=24 * 8)
    assert refused.value.code == "delegation.lifetime_above_policy"


def test_the_api_opens_a_mailbox_access_case_and_another_tenant_s_mailbox_is_a_404(
    acme, globex, world
):
    client = key_client(acme)
    answer = client.post(
        api(acme, "cases/"),
        {
            "account_id": world["alice"].pk,
            "case_type": "mailbox_access",
            "mailbox_id": world["mailbox"].pk,
            "delegation_hours": 4,
        },
        format="json",
    )
    assert answer.status_code == 201, answer.content
    delegation = MailboxDelegation.objects.get(case_id=answer.json()["id"])
    assert delegation.lifetime_seconds == 4 * 3600
    foreign = shared_mailbox(globex, person(globex))
    answer = client.post(
        api(acme, "cases/"),
        {"account_id": world["alice"].pk, "case_type": "mailbox_access", "mailbox_id": foreign.pk},
        format="json",
    )
    assert answer.status_code == 404


@pytest.mark.parametrize(
    ("mailbox_of", "code"),
    [
        (lambda w: None, "delegation.mailbox_required"),
        (lambda w: w["owner"], "delegation.mailbox_not_shared"),
        (lambda w: shared_mailbox(w["owner"].tenant, None), "delegation.mailbox_without_owner"),
        (lambda w: shared_mailbox(w["owner"].tenant, w["alice"]), "sod.requester_is_mailbox_owner"),
    ],
)
def test_a_request_needs_a_shared_mailbox_with_another_registered_owner(world, mailbox_of, code):
    from recovery.cases.services import case_open

    with pytest.raises(PolicyDenied) as refused:
        case_open(
            actor=world["agent"],
            account=world["alice"],
            case_type="mailbox_access",
            channel="phone",
            mailbox=mailbox_of(world),
        )
    assert refused.value.code == code
    assert not RecoveryCase.objects.filter(account=world["alice"]).exists()


def test_only_a_mailbox_access_case_names_a_mailbox(world):
    from recovery.cases.services import case_open

    with pytest.raises(PolicyDenied) as refused:
        case_open(
            actor=world["agent"],
            account=world["alice"],
            case_type="unlock",
            channel="phone",
            mailbox=world["mailbox"],
        )
    assert refused.value.code == "delegation.mailbox_only_for_access"


def test_another_tenant_s_mailbox_is_not_found(globex, world):
    with pytest.raises(CrossTenantNotFound):
        requested(shared_mailbox(globex, person(globex)), world["alice"], world["agent"])


# --- the owner's decision, in their own session ---------------------------------------------


def test_the_registered_owner_approves_in_their_identity_provider_session(world):
    case = requested(world["mailbox"], world["alice"])
    session = idp_session(world["owner"])
    delegation = delegation_owner_decide(
        session=session, delegation_id=case.delegation.pk, approve=True
    )
    assert (delegation.owner_decision, delegation.owner_session) == ("approved", session)
    assert delegation.owner_proof["kind"] == "idp_enrolment"
    # the same answer again changes nothing; another is refused
    delegation_owner_decide(session=session, delegation_id=delegation.pk, approve=True)
    with pytest.raises(InvalidInput) as again:
        delegation_owner_decide(session=session, delegation_id=delegation.pk, approve=False)
    assert again.value.code == "delegation.already_decided"
    assert actions(case) == ["access.delegation_requested", "access.delegation_owner_approved"]


def test_a_session_opened_from_an_emailed_link_cannot_decide(world):
    case = requested(world["mailbox"], world["alice"])
    session = idp_session(world["owner"], kind=PortalSessionKind.ENROLMENT)
    with pytest.raises(PolicyDenied) as refused:
        delegation_owner_decide(session=session, delegation_id=case.delegation.pk, approve=True)
    assert refused.value.code == "delegation.owner_sign_in_required"
    assert delegation_of(case).owner_decision == ""


@pytest.mark.parametrize("who", ["requester", "stranger"])
def test_only_the_registered_owner_decides(world, who):
    case = requested(world["mailbox"], world["alice"])
    account = world["alice"] if who == "requester" else person(world["alice"].tenant)
    with pytest.raises(InvalidInput) as refused:
        delegation_owner_decide(
            session=idp_session(account), delegation_id=case.delegation.pk, approve=True
        )
    assert refused.value.code == "delegation.not_found"


def test_the_owner_who_opened_the_case_does_not_approve_it(acme):
    agent = staff(Role.AGENT, tenant=acme)
    owner = person(acme, person_id=agent.person_id)  # the owner is also the agent
    case = requested(shared_mailbox(acme, owner), person(acme), agent)
    with pytest.raises(PolicyDenied) as refused:
        delegation_owner_decide(
            session=idp_session(owner), delegation_id=case.delegation.pk, approve=True
        )
    assert refused.value.code == "sod.owner_is_opener"


def test_the_database_refuses_a_grant_without_the_owner_s_decision(world):
    case = requested(world["mailbox"], world["alice"])
    with pytest.raises(IntegrityError), transaction.atomic():
        MailboxDelegation.objects.filter(case=case).update(
            status=DelegationStatus.ACTIVE, expires_at=case.created_at
        )


# --- execution under the manual connector ---------------------------------------------------


def test_execution_waits_for_the_owner_and_spends_no_step_up_on_it(world):
    case = verified_and_approved(requested(world["mailbox"], world["alice"]), world["agent"])
    executor = staff(Role.AGENT, tenant=case.tenant)
    with pytest.raises(PolicyDenied) as refused:
        execute(case, executor)
    assert refused.value.code == "delegation.owner_approval_missing"
    case.refresh_from_db()
    assert case.status == "ready" and not CaseExecution.objects.filter(case=case).exists()


def test_an_owner_s_refusal_stops_the_execution(world):
    case = verified_and_approved(requested(world["mailbox"], world["alice"]), world["agent"])
    delegation_owner_decide(
        session=idp_session(world["owner"]), delegation_id=case.delegation.pk, approve=False
    )
    with pytest.raises(PolicyDenied) as refused:
        execute(case, staff(Role.AGENT, tenant=case.tenant))
    assert refused.value.code == "delegation.owner_refused"
    assert delegation_of(case).status == "owner_refused"


def test_a_new_owner_in_the_system_of_record_voids_the_approval(world):
    from recovery.models import ProtectedAccount

    case = verified_and_approved(requested(world["mailbox"], world["alice"]), world["agent"])
    owner_approves(case, world["owner"])
    ProtectedAccount.objects.filter(pk=world["mailbox"].pk).update(
        mailbox_owner_external_id=person(case.tenant).external_id
    )
    with pytest.raises(PolicyDenied) as refused:
        execute(case, staff(Role.AGENT, tenant=case.tenant))
    assert refused.value.code == "delegation.owner_changed"


def test_manual_connector_grant_and_removal_are_steps_a_person_records(world):
    mail.outbox.clear()
    case = verified_and_approved(requested(world["mailbox"], world["alice"]), world["agent"])
    owner_approves(case, world["owner"])
    executor = staff(Role.AGENT, tenant=case.tenant)
    case = execute(case, executor)
    assert case.status == "executed"
    delegation = delegation_of(case)
    assert delegation.status == "grant_pending" and delegation.expires_at is not None
    (step,) = delegation.steps
    assert step["id"] == "grant" and world["mailbox"].username in step["manual_step"]
    # no artifact, no reset link, for the mailbox or anyone
    assert not RecoveryArtifact.objects.filter(case=case).exists()
    assert not [m for m in mail.outbox if "recovery link" in m.subject]
    with pytest.raises(PolicyDenied) as closing:
        case_close(actor=executor, case=case, reason="done")
    assert closing.value.code == "case.delegation_active"

    delegation_step_record(
        actor=executor,
        case=case,
        step="grant",
        step_up=step_up(executor, case=case, action="execute"),
    )
    delegation = delegation_of(case)
    assert delegation.status == "active" and delegation.granted_at is not None

    expire_now(case)
    assert delegations_expire_sweep() == 0  # the removal is a person's too
    delegation = delegation_of(case)
    assert delegation.status == "removal_pending"
    assert [s["id"] for s in delegation.steps if s["state"] == "pending"] == ["remove"]
    assert delegations_expire_sweep() == 0  # waiting for the person: nothing more
    delegation_step_record(
        actor=executor,
        case=case,
        step="remove",
        step_up=step_up(executor, case=case, action="execute"),
    )
    assert delegation_of(case).status == "removed"
    case_close(actor=executor, case=case, reason="access ended")
    assert actions(case) == [
        "access.delegation_requested",
        "access.delegation_owner_approved",
        "access.delegation_step_pending",
        "access.delegation_step_recorded",
        "access.delegation_granted",
        "access.delegation_expired",
        "access.delegation_step_pending",
        "access.delegation_step_recorded",
        "access.delegation_removed",
    ]


def test_a_grant_recorded_after_the_expiry_is_refused(world):
    case = verified_and_approved(requested(world["mailbox"], world["alice"]), world["agent"])
    owner_approves(case, world["owner"])
    executor = staff(Role.AGENT, tenant=case.tenant)
    execute(case, executor)
    expire_now(case)
    with pytest.raises(PolicyDenied) as refused:
        delegation_step_record(
            actor=executor,
            case=case,
            step="grant",
            step_up=step_up(executor, case=case, action="execute"),
        )
    assert refused.value.code == "delegation.expired"


def test_the_executor_rules_still_hold(world):
    case = verified_and_approved(requested(world["mailbox"], world["alice"]), world["agent"])
    owner_approves(case, world["owner"])
    approver = case.approvals.get().approver
    with pytest.raises(DomainError) as refused:
        execute(case, approver)
    assert refused.value.code == "sod.executor_is_approver"


# --- the console ----------------------------------------------------------------------------


def test_the_case_page_shows_the_delegation_and_records_its_step_with_a_passkey(acme, world):
    from ..factories import step_up_assertion

    case = verified_and_approved(requested(world["mailbox"], world["alice"]), world["agent"])
    owner_approves(case, world["owner"])
    executor = staff(Role.AGENT, tenant=acme)
    execute(case, executor)
    client = signed_in_client(executor)
    page = client.get(f"/t/{acme.slug}/cases/{case.pk}/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'data-delegation-status="grant_pending"' in body
    assert 'data-owner-decision="approved"' in body
    assert world["mailbox"].username in body and 'data-delegation-step="grant"' in body
    answer = client.post(
        f"/t/{acme.slug}/cases/{case.pk}/delegation/record/",
        {
            "delegation-step": "grant",
            "delegation-step_up_assertion": step_up_assertion(
                executor, case=case, action="execute"
            ),
        },
    )
    assert answer.status_code == 302, answer.content[:800]
    assert delegation_of(case).status == "active"
    page = client.get(f"/t/{acme.slug}/cases/{case.pk}/")
    assert 'data-delegation-status="active"' in page.content.decode()


def test_over_the_api_a_person_records_the_grant_with_a_passkey(acme, world):
    from tests.api.conftest import api, staff_api_client

    from ..factories import step_up_assertion

    case = verified_and_approved(requested(world["mailbox"], world["alice"]), world["agent"])
    owner_approves(case, world["owner"])
    executor = staff(Role.AGENT, tenant=acme)
    execute(case, executor)
    client = staff_api_client(executor)
    url = api(acme, f"cases/{case.pk}/delegation/record/")
    bare = client.post(url, {"step": "grant"}, format="json")
    assert bare.status_code == 403 and bare.json()["code"] == "stepup.required"
    unknown = client.post(
        url,
        {
            "step": "remove",
            "step_up_assertion": step_up_assertion(executor, case=case, action="execute"),
        },
        format="json",
    )
    assert unknown.json()["code"] == "delegation.step_unknown"
    answer = client.post(
        url,
        {
            "step": "grant",
            "step_up_assertion": step_up_assertion(executor, case=case, action="execute"),
        },
        format="json",
    )
    assert answer.status_code == 200, answer.content[:800]
    assert answer.json()["status"] == "active"
    assert delegation_of(case).status == "active"


def test_no_artifact_is_ever_issued_for_a_mailbox_access_case(world):
    from audit.context import Actor
    from recovery.artifacts.services import artifact_issue
    from recovery.cases.services.base import requirements_for

    case = requested(world["mailbox"], world["alice"])
    with pytest.raises(InvalidInput) as refused:
        artifact_issue(case=case, req=requirements_for(case), actor=Actor.system("tests"))
    assert refused.value.code == "artifact.not_for_mailbox_access"
    assert not RecoveryArtifact.objects.filter(account__in=[world["mailbox"], world["alice"]])


# --- the tenant's policy --------------------------------------------------------------------


def _activate(tenant, text: str) -> None:
    from recovery.policy.services import (
        policy_activation_approve,
        policy_activation_request,
        policy_draft_create,
    )

    author, approver = (
        staff(Role.TENANT_ADMIN, tenant=tenant),
        staff(Role.TENANT_ADMIN, tenant=tenant),
    )
    version = policy_draft_create(actor=author, tenant=tenant, text=text)
    version = policy_activation_request(actor=author, version=version)
    policy_activation_approve(actor=approver, version=version, step_up=step_up(approver))


def _policy_without_the_supervisor(lengths: str = "") -> str:
    from recovery.policy.rules import DEFAULT_POLICY_FILE

    text = DEFAULT_POLICY_FILE.read_text()
    block = (
        "  T0:\n    case_types:                           # issue 14: a supervisor, besides the "
        "mailbox owner\n      mailbox_access: {approvals_required: 1}\n"
    )
    assert block in text
    return text.replace(block, "") + lengths


def test_the_tenant_s_lengths_apply_and_the_ceiling_is_the_platform_s(acme, world):
    from recovery.policy.errors import PolicyInvalid
    from recovery.policy.validation import validate

    lengths = (
        "mailbox_delegation:\n  default_lifetime_seconds: 3600\n  max_lifetime_seconds: 7200\n"
    )
    _activate(acme, _policy_without_the_supervisor(lengths))
    assert delegation_of(requested(world["mailbox"], world["alice"])).lifetime_seconds == 3600
    with pytest.raises(PolicyDenied) as refused:
        requested(world["mailbox"], person(acme), hours=3)
    assert refused.value.code == "delegation.lifetime_above_policy"
    with pytest.raises(PolicyInvalid):
        validate(
            _policy_without_the_supervisor("mailbox_delegation:\n  max_lifetime_seconds: 2600000\n")
        )


def test_without_a_supervisor_s_approval_the_execution_fails_closed(acme, world):
    from recovery.cases.services import case_submit

    from .casework import signal

    _activate(acme, _policy_without_the_supervisor())
    case = requested(world["mailbox"], world["alice"], world["agent"])
    signal(case, world["agent"], "S2")
    case = case_submit(actor=world["agent"], case=case)
    assert case.status == "ready"  # this tenant's policy asks for no approval
    owner_approves(case, world["owner"])
    with pytest.raises(PolicyDenied) as refused:
        execute(case, staff(Role.AGENT, tenant=acme))
    assert refused.value.code == "delegation.supervisor_approval_missing"


def test_the_api_case_detail_shows_the_delegation_and_no_credential(acme, world):
    case = requested(world["mailbox"], world["alice"], hours=5)
    owner_approves(case, world["owner"])
    answer = key_client(acme).get(api(acme, f"cases/{case.pk}/"))
    assert answer.status_code == 200, answer.content
    shown = answer.json()["delegation"]
    assert shown["mailbox"] == world["mailbox"].external_id
    assert shown["delegate"] == world["alice"].external_id
    assert (shown["status"], shown["owner_decision"]) == ("requested", "approved")
    assert shown["lifetime_seconds"] == 5 * 3600 and shown["steps"] == []
    other = key_client(acme).get(api(acme, f"cases/{person_case(acme).pk}/"))
    assert other.json()["delegation"] is None


def person_case(tenant):
    from recovery.cases.services import case_open

    return case_open(
        actor=staff(Role.AGENT, tenant=tenant),
        account=person(tenant),
        case_type="unlock",
        channel="phone",
    )
