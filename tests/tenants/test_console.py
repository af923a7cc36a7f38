"""Tenant pages: the tenant comes from the URL and is checked; foreign answers are plain 404s."""

import pytest

from audit.models import AuditEvent
from tenants.choices import Role
from tenants.services import grant_revoke

from ..conftest import signed_in_client
from ..factories import active_grant, make_account, staff
from ..pages import page

pytestmark = pytest.mark.django_db


def test_member_sees_own_tenant_accounts(acme):
    account = make_account(acme)
    client = signed_in_client(staff(Role.AGENT, tenant=acme))
    response = client.get(f"/t/{acme.slug}/")
    assert response.status_code == 200
    assert account.display_name in response.content.decode()
    assert client.get(f"/t/{acme.slug}/accounts/{account.pk}/").status_code == 200


def test_foreign_tenant_is_indistinguishable_from_a_missing_one(acme, globex):
    client = signed_in_client(staff(Role.AGENT, tenant=acme))
    foreign = client.get(f"/t/{globex.slug}/")
    missing = client.get("/t/no-such-tenant/")
    assert foreign.status_code == missing.status_code == 404
    assert page(foreign) == page(missing)
    denied = AuditEvent.objects.get(tenant=globex, action="tenant.cross_access_denied")
    assert denied.data["reason"] == "no access to tenant"


def test_foreign_object_id_is_a_404_like_a_missing_id_and_is_recorded(acme, globex):
    agent = staff(Role.AGENT, tenant=acme)
    theirs = make_account(globex)
    client = signed_in_client(agent)
    foreign = client.get(f"/t/{acme.slug}/accounts/{theirs.pk}/")
    missing = client.get(f"/t/{acme.slug}/accounts/{theirs.pk + 10_000}/")
    assert foreign.status_code == missing.status_code == 404
    assert page(foreign) == page(missing)
    assert theirs.display_name not in foreign.content.decode()
    event = AuditEvent.objects.get(tenant=globex, action="tenant.cross_access_denied")
    assert event.actor_id == str(agent.pk)
    assert event.data["requested_in"] == acme.slug
    assert not AuditEvent.objects.filter(tenant=acme, action="tenant.cross_access_denied").exists()


def test_msp_agent_reaches_granted_tenant_only(acme, globex, deskco):
    agent = staff(Role.AGENT, provider=deskco)
    active_grant(deskco, acme)
    client = signed_in_client(agent)
    assert client.get(f"/t/{acme.slug}/").status_code == 200
    assert client.get(f"/t/{globex.slug}/").status_code == 404
    home = client.get("/").content.decode()
    assert acme.name in home and globex.name not in home


def test_revoked_grant_ends_access_within_the_same_session(acme, deskco):
    agent = staff(Role.AGENT, provider=deskco)
    grant = active_grant(deskco, acme)
    client = signed_in_client(agent)
    assert client.get(f"/t/{acme.slug}/").status_code == 200
    grant_revoke(actor=staff(Role.TENANT_ADMIN, tenant=acme), grant=grant, reason="offboarded")
    ended = client.get(f"/t/{acme.slug}/")  # the session itself ends at once
    assert ended.status_code == 302 and ended.url.startswith("/login/")
    assert signed_in_client(agent).get(f"/t/{acme.slug}/").status_code == 404


def test_tenant_from_header_or_query_is_ignored(acme, globex):
    client = signed_in_client(staff(Role.AGENT, tenant=acme))
    theirs = make_account(globex)
    response = client.get(f"/t/{acme.slug}/?tenant={globex.slug}", HTTP_X_TENANT=globex.slug)
    assert response.status_code == 200
    assert theirs.display_name not in response.content.decode()


def test_account_list_is_paginated(acme):
    for _ in range(30):
        make_account(acme)
    client = signed_in_client(staff(Role.AGENT, tenant=acme))
    body = client.get(f"/t/{acme.slug}/").content.decode()
    assert "Page 1 of 2" in body
    assert client.get(f"/t/{acme.slug}/?page=2").status_code == 200


def test_tenant_page_query_count_does_not_grow_with_accounts(acme, django_assert_max_num_queries):
    client = signed_in_client(staff(Role.AGENT, tenant=acme))
    make_account(acme)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        client.get(f"/t/{acme.slug}/")
    for _ in range(20):
        make_account(acme)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(f"/t/{acme.slug}/")
