"""Over the API, provider staff see the cases their delegation grant covers, as on the
console's pages (issue 13): a T0-only grant lists and reads no T1/T2 case."""

from __future__ import annotations

import pytest

from recovery.cases.services import case_open
from tenants.choices import Role

from ..factories import active_grant, make_account_with, staff
from .conftest import api, staff_api_client

pytestmark = pytest.mark.django_db


def _case(tenant, *, groups=(), opener=None):
    opener = opener or staff(Role.AGENT, tenant=tenant)
    account = make_account_with(tenant, groups=list(groups))
    return case_open(actor=opener, account=account, case_type="password_reset", channel="phone")


def test_a_t0_grant_lists_and_reads_only_t0_cases(acme, deskco):
    active_grant(deskco, acme, tiers=("T0",))
    provider_agent = staff(Role.AGENT, provider=deskco)
    low = _case(acme)
    high = _case(acme, groups=("Finance",))
    assert (low.tier, high.tier) == ("T0", "T1")
    client = staff_api_client(provider_agent)

    listed = client.get(api(acme, "cases/")).json()["results"]
    assert [row["id"] for row in listed] == [low.pk]
    assert client.get(api(acme, f"cases/{low.pk}/")).status_code == 200
    assert client.get(api(acme, f"cases/{high.pk}/")).status_code == 404


def test_the_tenants_own_agent_sees_every_tier(acme):
    agent = staff(Role.AGENT, tenant=acme)
    cases = {_case(acme).pk, _case(acme, groups=("Finance",)).pk}
    listed = staff_api_client(agent).get(api(acme, "cases/")).json()["results"]
    assert {row["id"] for row in listed} >= cases
