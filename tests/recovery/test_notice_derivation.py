"""Owner notices are planned from the committed audit chain (`notices_derive`), not in the
transaction of the event that calls for them: once per event, nothing for a rollback, nothing
lost when no task ran, and a T1/T2 execution waits until they are planned and sent."""

from __future__ import annotations

import pytest
from django.db import transaction

from audit.models import AuditChainHead
from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_open, case_release_cooled, case_submit
from recovery.notifications.models import NoticeCursor, OwnerNotice
from recovery.notifications.services import notice_sweep, notices_derive
from recovery.tasks import notices_derive_task
from tenants.choices import Role
from tenants.exceptions import DomainError

from .. import factories
from .casework import approved, contact, signal

pytestmark = pytest.mark.django_db

FINANCE = {"groups": ["finance"]}  # T1


@pytest.fixture
def agent(acme):
    return factories.staff(Role.AGENT, tenant=acme)


def _account(tenant):
    account = factories.make_account_with(tenant)
    contact(account, "email", f"owner-{account.pk}@example.test")
    contact(account, "mobile", "+15550102020")
    return account


def test_the_opening_writes_no_notice_and_the_worker_plans_one_per_address(acme, agent):
    case = case_open(actor=agent, account=_account(acme), case_type="unlock", channel="phone")
    assert not OwnerNotice.objects.filter(case=case).exists()

    planned = notices_derive(tenant_id=acme.pk)

    notices = OwnerNotice.objects.filter(case=case)
    assert sorted(planned) == sorted(notices.values_list("pk", flat=True))
    assert sorted(n.address for n in notices) == sorted(
        [f"owner-{case.account_id}@example.test", "+15550102020"]
    )
    assert {n.status for n in notices} == {"pending"}


def test_each_event_is_planned_once_and_the_cursor_reaches_the_head(acme, agent):
    case_open(actor=agent, account=_account(acme), case_type="unlock", channel="phone")
    assert len(notices_derive(tenant_id=acme.pk)) == 2
    assert notices_derive(tenant_id=acme.pk) == []  # a second worker finds nothing left
    assert notices_derive_task(acme.pk) == 0  # nor does the task, delivered again
    assert NoticeCursor.objects.get(tenant=acme).seq == AuditChainHead.objects.get(tenant=acme).seq


def test_a_rolled_back_opening_tells_nobody(acme, agent):
    account = _account(acme)
    with pytest.raises(RuntimeError), transaction.atomic():
        case_open(actor=agent, account=account, case_type="unlock", channel="phone")
        raise RuntimeError("the request failed after the case was opened")
    assert notices_derive(tenant_id=acme.pk) == []
    assert not OwnerNotice.objects.filter(account=account).exists()


def test_the_sweep_plans_what_no_task_planned(acme, globex, agent):
    case = case_open(actor=agent, account=_account(acme), case_type="unlock", channel="phone")
    other = case_open(
        actor=factories.staff(Role.AGENT, tenant=globex),
        account=_account(globex),
        case_type="unlock",
        channel="phone",
    )
    notice_sweep()  # no task ever ran for either tenant (a broker outage, a crash)
    assert OwnerNotice.objects.filter(case=case).count() == 2
    assert OwnerNotice.objects.filter(case=other).count() == 2


def _ready_t1(tenant, agent) -> RecoveryCase:
    """A T1 case at `ready` whose notices no worker has planned yet."""
    account = factories.make_account_with(tenant, **FINANCE)
    contact(account)
    case = case_open(actor=agent, account=account, case_type="temporary_access", channel="phone")
    signal(case, agent, "S2")
    signal(case, agent, "S3")
    case = approved(case_submit(actor=agent, case=case))
    RecoveryCase.objects.filter(pk=case.pk).update(cooling_off_until=case.created_at)
    return case_release_cooled(case=case)


def test_a_t1_execution_waits_until_its_notices_are_planned_and_sent(acme, agent):
    case = _ready_t1(acme, agent)
    executor = factories.staff(Role.AGENT, tenant=acme)
    with pytest.raises(DomainError) as waiting:
        factories.execute(case, executor)
    assert waiting.value.code == "notice.pending"
    assert RecoveryCase.objects.get(pk=case.pk).status == "ready"

    factories.notices_planned(acme)  # planned, not sent yet: still waiting
    with pytest.raises(DomainError) as still:
        factories.execute(case, executor)
    assert still.value.code == "notice.pending"

    assert set(factories.notices_sent(acme)) == {"sent"}
    assert factories.execute(case, executor).status == "executed"
