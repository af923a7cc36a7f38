"""Per-user console language and time zone (issue 6: multilingual desks)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings

from audit.models import AuditEvent
from tenants.choices import Role
from tenants.exceptions import InvalidInput
from tenants.models import BackgroundJob, User
from tenants.preferences import user_preferences_update, zone_of
from tests.conftest import signed_in_client
from tests.factories import staff

pytestmark = pytest.mark.django_db


def test_preferences_are_saved_on_the_user_and_audited(acme):
    user = staff(Role.AGENT, tenant=acme)
    client = signed_in_client(user)
    response = client.post(
        "/account/preferences/", {"language": "fr", "time_zone": "America/Bogota"}
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert (user.language, user.time_zone) == ("fr", "America/Bogota")
    event = AuditEvent.objects.get(action="user.preferences_changed", target_id=str(user.pk))
    assert event.tenant_id is None  # a person's own settings live in the platform chain
    assert event.data["after"] == {"language": "fr", "time_zone": "America/Bogota"}
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "fr"


def test_saving_unchanged_preferences_writes_no_event(acme):
    user = staff(Role.AGENT, tenant=acme)
    user_preferences_update(actor=user, language="es", time_zone="")
    user_preferences_update(actor=user, language="es", time_zone="")
    assert AuditEvent.objects.filter(action="user.preferences_changed").count() == 1


@pytest.mark.parametrize(
    ("language", "time_zone", "code"),
    [
        ("de", "", "preferences.language_unknown"),
        ("", "Mars/Olympus_Mons", "preferences.time_zone_unknown"),
    ],
)
def test_unknown_language_or_zone_is_refused_and_nothing_changes(acme, language, time_zone, code):
    user = staff(Role.AGENT, tenant=acme)
    with pytest.raises(InvalidInput) as refused:
        user_preferences_update(actor=user, language=language, time_zone=time_zone)
    assert refused.value.code == code
    user.refresh_from_db()
    assert (user.language, user.time_zone) == ("", "")
    assert not AuditEvent.objects.filter(action="user.preferences_changed").exists()


def test_preferences_form_rejects_an_unknown_zone_with_a_message(acme):
    user = staff(Role.AGENT, tenant=acme)
    client = signed_in_client(user)
    response = client.post("/account/preferences/", {"language": "", "time_zone": "Nowhere/X"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    user.refresh_from_db()
    assert user.time_zone == ""


def test_the_console_speaks_the_users_language(acme):
    user = staff(Role.AGENT, tenant=acme)
    user_preferences_update(actor=user, language="es", time_zone="")
    client = signed_in_client(user)
    response = client.get(f"/t/{acme.slug}/", headers={"accept-language": "fr"})
    assert response["Content-Language"] == "es"
    assert '<html lang="es">' in response.content.decode()


def test_without_a_stored_choice_the_browser_language_is_used(acme):
    client = signed_in_client(staff(Role.AGENT, tenant=acme))
    response = client.get(f"/t/{acme.slug}/", headers={"accept-language": "fr-CA,fr;q=0.9"})
    assert response["Content-Language"] == "fr"


def test_language_menu_stores_the_choice_for_a_signed_in_user(acme):
    user = staff(Role.AGENT, tenant=acme)
    client = signed_in_client(user)
    response = client.post("/language/", {"language": "fr", "next": f"/t/{acme.slug}/"})
    assert response.status_code == 302 and response.url == f"/t/{acme.slug}/"
    assert User.objects.get(pk=user.pk).language == "fr"


def test_language_menu_before_sign_in_uses_a_cookie(db):
    from django.test import Client

    client = Client()
    response = client.post("/language/", {"language": "es", "next": "/login/"})
    assert response.url == "/login/"
    assert client.get("/login/")["Content-Language"] == "es"


def test_language_menu_never_redirects_off_site(acme):
    client = signed_in_client(staff(Role.AGENT, tenant=acme))
    response = client.post("/language/", {"language": "es", "next": "https://evil.example/"})
    assert response.url == "/"


def test_dates_render_in_the_users_time_zone(acme):
    user = staff(Role.AUDITOR, tenant=acme)
    user_preferences_update(actor=user, language="en", time_zone="Asia/Tokyo")
    job = BackgroundJob.objects.create(tenant=acme, created_by=user, kind="any", params={})
    BackgroundJob.objects.filter(pk=job.pk).update(
        created_at=dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    )
    page = signed_in_client(user).get(f"/t/{acme.slug}/jobs/{job.pk}/").content.decode()
    assert "Jan. 1, 2026, 9 p.m." in page  # 12:00 UTC is 21:00 in Tokyo
    assert zone_of("Not/AZone").key == "UTC"
