"""The mailbox owner answers a request for access in the owner portal, in their own session:
signed in at the tenant's identity provider (the real OpenID provider of tests/oidc_provider),
never through a link sent by e-mail, never with a staff session."""

from __future__ import annotations

import pytest
from django.test import Client

from recovery.owner.choices import PortalSessionKind
from tenants.choices import Role

from ..conftest import signed_in_client
from ..factories import staff
from ..owner.oidc_helpers import (  # noqa: F401 - fixtures
    back_from_provider,
    idp_config,
    idp_secret,
    oidc,
    subject_account,
)
from ..owner.owners import enrolled_client
from .delegation_helpers import actions, delegation_of, person, requested, shared_mailbox

pytestmark = pytest.mark.django_db
PAGE = "/owner/mailbox-access/"


def _signed_in_at_the_idp(tenant, oidc, sub: str) -> Client:  # noqa: F811
    client = Client()
    started = client.post(f"/owner/t/{tenant.slug}/sign-in/")
    assert started.status_code == 302, started.content[:500]
    answer = back_from_provider(client, oidc.login(started["Location"], sub=sub, amr=("hwk",)))
    assert answer.status_code == 302 and answer["Location"] == "/owner/", answer.content[:500]
    return client


@pytest.fixture
def request_for(acme, oidc, idp_secret):  # noqa: F811
    idp_config(acme, oidc)
    owner = subject_account(acme)
    case = requested(shared_mailbox(acme, owner), person(acme), hours=6)
    return owner, case


def test_the_owner_signed_in_at_the_idp_sees_and_approves_the_request(acme, oidc, request_for):  # noqa: F811
    owner, case = request_for
    client = _signed_in_at_the_idp(acme, oidc, owner.idp_subject)
    assert PAGE.encode() in client.get("/owner/").content  # linked from the signed-in home
    page = client.get(PAGE)
    assert page.status_code == 200
    assert [item.pk for item in page.context["requests"]] == [case.delegation.pk]
    assert b"For 6 hours" in page.content
    answer = client.post(f"{PAGE}{case.delegation.pk}/decide/", {"decision": "approve"})
    assert answer.status_code == 302 and answer["Location"] == f"{PAGE}?done=approved"
    delegation = delegation_of(case)
    assert delegation.owner_decision == "approved"
    assert delegation.owner_session.kind == PortalSessionKind.IDP_ENROLMENT
    assert delegation.owner_session.account == owner
    assert client.get(PAGE).context["requests"] == []  # answered: no longer waiting
    assert actions(case)[-1] == "access.delegation_owner_approved"


def test_an_enrolment_session_from_an_emailed_link_cannot_answer(acme, request_for):
    owner, case = request_for
    client = enrolled_client(owner)
    page = client.get(PAGE)
    assert page.status_code == 200 and b'name="decision"' not in page.content
    answer = client.post(f"{PAGE}{case.delegation.pk}/decide/", {"decision": "approve"})
    assert answer.status_code == 403
    assert answer.context["error"].code == "delegation.owner_sign_in_required"
    assert delegation_of(case).owner_decision == ""


def test_another_owner_gets_a_404_and_no_session_or_a_staff_session_gets_nothing(
    acme,
    oidc,  # noqa: F811
    request_for,
):
    _owner, case = request_for
    other = subject_account(acme)
    client = _signed_in_at_the_idp(acme, oidc, other.idp_subject)
    assert client.get(PAGE).context["requests"] == []
    assert (
        client.post(f"{PAGE}{case.delegation.pk}/decide/", {"decision": "approve"}).status_code
        == 404
    )
    assert (
        Client().post(f"{PAGE}{case.delegation.pk}/decide/", {"decision": "approve"}).status_code
        == 403
    )
    staff_client = signed_in_client(staff(Role.SUPERVISOR, tenant=acme))
    refused = staff_client.post(f"{PAGE}{case.delegation.pk}/decide/", {"decision": "approve"})
    assert refused.status_code == 403
    assert delegation_of(case).owner_decision == ""
