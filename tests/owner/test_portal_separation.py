"""The owner portal and the staff console never accept each other's session (issue 12): a
staff sign-in opens nothing in the portal, the portal cookie opens nothing in the console or
the API, and neither cookie works under the other's name."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from audit.models import AuditEvent
from recovery.owner.sessions import cookie_name
from tenants.choices import Role

from ..conftest import signed_in_client
from ..factories import staff
from .owners import enrolled_client, owner_account

pytestmark = pytest.mark.django_db

PORTAL_PAGES = ("/owner/codes/", "/owner/recovery/")


def test_a_verified_staff_sign_in_opens_no_portal_page(acme):
    admin = signed_in_client(staff(Role.TENANT_ADMIN, tenant=acme))
    for path in PORTAL_PAGES:
        assert admin.get(path).status_code == 403, path
    assert admin.post("/owner/codes/").status_code == 403
    assert admin.post("/owner/passkeys/register/options/").status_code == 403
    home = admin.get("/owner/")
    assert home.status_code == 200 and b"Add a passkey" not in home.content


def test_the_staff_session_id_under_the_portal_cookie_name_opens_nothing(acme):
    admin = signed_in_client(staff(Role.TENANT_ADMIN, tenant=acme))
    stolen = admin.cookies[settings.SESSION_COOKIE_NAME].value
    browser = Client()
    browser.cookies[cookie_name()] = stolen
    assert browser.get("/owner/codes/").status_code == 403


def test_an_owner_session_opens_no_console_page_and_no_api(acme):
    owner = enrolled_client(owner_account(acme))
    assert owner.get("/owner/codes/").status_code == 200  # the portal session works
    console = owner.get(f"/t/{acme.slug}/")
    assert console.status_code == 302 and console["Location"].startswith("/login/")
    assert owner.get(f"/api/v1/t/{acme.slug}/cases/").status_code in (401, 403)


def test_the_portal_token_under_the_staff_cookie_name_opens_nothing(acme):
    owner = enrolled_client(owner_account(acme))
    token = owner.cookies[cookie_name()].value
    browser = Client()
    browser.cookies[settings.SESSION_COOKIE_NAME] = token
    console = browser.get(f"/t/{acme.slug}/")
    assert console.status_code == 302 and console["Location"].startswith("/login/")


def test_a_refused_session_of_the_wrong_kind_is_on_the_trail(acme):
    """An enrolment session on a recovery page: refused and recorded (R-12)."""
    account = owner_account(acme)
    owner = enrolled_client(account)
    assert owner.get("/owner/recovery/").status_code == 403
    refused = AuditEvent.objects.filter(action="owner.session_refused", tenant=acme)
    assert [event.data["reason"] for event in refused] == ["wrong_session_kind"]
