"""Staff sign-in: password, then TOTP enrolment or verification, lockout, and the admin site."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from tenants.choices import Role
from tenants.models import User

from ..conftest import signed_in_client
from ..factories import PASSWORD, make_account, make_user, member, staff, totp_token, unique

pytestmark = pytest.mark.django_db

LOGIN, VERIFY, ENROL = "/login/", "/account/otp/", "/account/otp/enrol/"
GENERIC_ERROR = "The username or password is incorrect."
LOCKED = "this account is locked"


# --- helpers -------------------------------------------------------------------------------


def password_step(user: User, client: Client | None = None) -> Client:
    """A client that has passed the password step only (no OTP yet)."""
    client = client or Client()
    response = client.post(LOGIN, {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302 and response.url == VERIFY, response.content
    return client


def post_password(client: Client, username: str, password: str):
    return client.post(LOGIN, {"username": username, "password": password})


def wrong_token(device) -> str:
    """A 6-digit code the device would refuse at any moment near now."""
    near = {
        f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift + d):06d}"
        for d in range(-3, 4)
    }
    return next(code for code in (f"{n}" * 6 for n in range(10)) if code not in near)


def user_wrong_token(user: User) -> str:
    return wrong_token(TOTPDevice.objects.get(user=user, confirmed=True))


def events(user: User, action: str) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            action=action, target_type="tenants.User", target_id=str(user.pk)
        ).order_by("seq")
    )


def is_signed_in(client: Client, user: User) -> bool:
    return client.session.get("_auth_user_id") == str(user.pk)


def reload(user: User) -> User:
    return User.objects.get(pk=user.pk)


def superuser(*, totp_device: bool = True) -> User:
    user = User.objects.create_superuser(username=unique("root"), password=PASSWORD)
    if totp_device:
        TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    return user


# --- 1. anonymous --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "grants/"])
def test_anonymous_tenant_page_redirects_to_login(acme, suffix):
    response = Client().get(f"/t/{acme.slug}/{suffix}")
    assert response.status_code == 302
    assert response.url.startswith(LOGIN)


def test_anonymous_home_redirects_to_login(db):
    response = Client().get("/")
    assert response.status_code == 302
    assert response.url.startswith(LOGIN)


# --- 2. enrolment --------------------------------------------------------------------------


def unenrolled_member(tenant) -> User:
    user = make_user(totp=False)
    member(user, Role.AGENT, tenant=tenant)
    return user


def test_password_without_device_sends_every_page_to_enrolment_without_tenant_data(acme):
    user = unenrolled_member(acme)
    account = make_account(acme)
    client = password_step(user)
    assert client.get(VERIFY).url == ENROL
    pages = ["/", f"/t/{acme.slug}/", f"/t/{acme.slug}/grants/"]
    pages.append(f"/t/{acme.slug}/accounts/{account.pk}/")
    for page in pages:
        response = client.get(page)
        assert (response.status_code, response.url) == (302, ENROL), page
        assert account.display_name.encode() not in response.content
        followed = client.get(page, follow=True)
        assert followed.redirect_chain[-1][0] == ENROL
        assert account.display_name.encode() not in followed.content
        assert acme.name.encode() not in followed.content


def test_enrolment_page_shows_secret_of_one_new_unconfirmed_device(acme):
    user = unenrolled_member(acme)
    client = password_step(user)
    first = client.get(ENROL)
    second = client.get(ENROL)
    assert first.status_code == second.status_code == 200
    device = TOTPDevice.objects.get(user=user)
    assert not device.confirmed
    secret = base64.b32encode(device.bin_key).decode()
    assert secret.encode() in first.content
    assert secret.encode() in second.content  # reloading does not mint another device


def test_enrolment_refuses_wrong_token_and_confirms_nothing(acme):
    user = unenrolled_member(acme)
    client = password_step(user)
    client.get(ENROL)
    device = TOTPDevice.objects.get(user=user)
    response = client.post(ENROL, {"token": wrong_token(device)})
    assert response.status_code == 200
    assert b"That code does not match" in response.content
    device.refresh_from_db()
    assert not device.confirmed
    assert not StaticDevice.objects.filter(user=user).exists()
    assert events(user, "auth.otp_enrolled") == []
    assert [e.data["kind"] for e in events(user, "auth.login_failed")] == ["otp"]
    assert client.get(f"/t/{acme.slug}/").url == ENROL


def test_enrolment_with_valid_token_confirms_device_and_shows_ten_backup_codes(acme):
    user = unenrolled_member(acme)
    account = make_account(acme)
    client = password_step(user)
    client.get(ENROL)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    token = f"{totp(device.bin_key, device.step, device.t0, device.digits):06d}"

    response = client.post(ENROL, {"token": token})

    assert response.status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    codes = list(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert len(codes) == 10 == len(set(codes))
    for code in codes:
        assert code.encode() in response.content
    [enrolled] = events(user, "auth.otp_enrolled")
    assert enrolled.tenant_id is None
    assert enrolled.data == {"backup_codes": 10}
    page = client.get(f"/t/{acme.slug}/")
    assert page.status_code == 200
    assert account.display_name.encode() in page.content
    assert client.get("/").status_code == 200


def test_locked_account_cannot_complete_enrolment_from_an_earlier_password_session(acme):
    user = unenrolled_member(acme)
    client = password_step(user)
    client.get(ENROL)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    attacker = Client()
    for _i in range(settings.STAFF_LOCKOUT_THRESHOLD):
        post_password(attacker, user.username, "wrong password")
    assert reload(user).locked_until is not None

    token = f"{totp(device.bin_key, device.step, device.t0, device.digits):06d}"
    response = client.post(ENROL, {"token": token})

    assert response.status_code == 302 and response.url.startswith(LOGIN)
    device.refresh_from_db()
    assert not device.confirmed
    assert not StaticDevice.objects.filter(user=user).exists()
    assert events(user, "auth.otp_enrolled") == []
    assert client.get(f"/t/{acme.slug}/").url.startswith(LOGIN)


# --- 3. password passed, OTP not -----------------------------------------------------------


def test_password_with_device_sends_every_page_to_verification(acme):
    user = staff(Role.AGENT, tenant=acme)
    account = make_account(acme)
    client = password_step(user)
    for page in ["/", f"/t/{acme.slug}/", f"/t/{acme.slug}/accounts/{account.pk}/"]:
        response = client.get(page)
        assert (response.status_code, response.url) == (302, VERIFY), page
        assert account.display_name.encode() not in response.content


def test_password_alone_cannot_enrol_a_second_device(acme):
    user = staff(Role.AGENT, tenant=acme)
    client = password_step(user)
    assert (client.get(ENROL).status_code, client.get(ENROL).url) == (302, VERIFY)
    response = client.post(ENROL, {"token": "123456"})
    assert (response.status_code, response.url) == (302, VERIFY)
    assert TOTPDevice.objects.filter(user=user).count() == 1
    assert not StaticDevice.objects.filter(user=user).exists()
    assert events(user, "auth.otp_enrolled") == []
    assert client.get(f"/t/{acme.slug}/").url == VERIFY


# --- 4. verification -----------------------------------------------------------------------


def test_wrong_otp_is_refused_with_an_error(acme):
    user = staff(Role.AGENT, tenant=acme)
    client = password_step(user)
    response = client.post(VERIFY, {"token": user_wrong_token(user)})
    assert response.status_code == 200
    assert b"That code is not valid" in response.content
    assert client.get(f"/t/{acme.slug}/").url == VERIFY
    assert reload(user).failed_attempts == 1
    assert [e.data["kind"] for e in events(user, "auth.login_failed")] == ["otp"]
    assert events(user, "auth.login_succeeded") == []


def test_correct_totp_signs_in_and_opens_tenant_pages(acme):
    user = staff(Role.AGENT, tenant=acme)
    account = make_account(acme)
    client = password_step(user)
    response = client.post(VERIFY, {"token": totp_token(user)})
    assert (response.status_code, response.url) == (302, "/")
    page = client.get(f"/t/{acme.slug}/")
    assert page.status_code == 200
    assert account.display_name.encode() in page.content
    [succeeded] = events(user, "auth.login_succeeded")
    assert succeeded.tenant_id is None
    assert succeeded.data == {"device_type": "TOTPDevice"}


def test_verified_user_visiting_verification_goes_home(acme):
    client = signed_in_client(staff(Role.AGENT, tenant=acme))
    response = client.get(VERIFY)
    assert (response.status_code, response.url) == (302, "/")


def test_totp_token_cannot_be_used_twice(acme):
    user = staff(Role.AGENT, tenant=acme)
    token = totp_token(user)
    first = password_step(user)
    assert first.post(VERIFY, {"token": token}).url == "/"

    second = password_step(user)
    response = second.post(VERIFY, {"token": token})

    assert response.status_code == 200
    assert b"That code is not valid" in response.content
    assert second.get(f"/t/{acme.slug}/").url == VERIFY
    assert len(events(user, "auth.login_succeeded")) == 1


def test_backup_code_signs_in_once_only(acme):
    user = staff(Role.AGENT, tenant=acme)
    backup = StaticDevice.objects.create(user=user, name="Backup codes")
    code = StaticToken.random_token()
    backup.token_set.create(token=code)

    first = password_step(user)
    response = first.post(VERIFY, {"token": code})
    assert (response.status_code, response.url) == (302, "/")
    assert first.get(f"/t/{acme.slug}/").status_code == 200
    assert not StaticToken.objects.filter(device=backup).exists()

    second = password_step(user)
    response = second.post(VERIFY, {"token": code})
    assert response.status_code == 200
    assert b"That code is not valid" in response.content
    assert second.get(f"/t/{acme.slug}/").url == VERIFY
    assert [e.data for e in events(user, "auth.login_succeeded")] == [
        {"device_type": "StaticDevice"}
    ]


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/path", "http://testserver.evil/"]
)
def test_verification_never_redirects_off_site(acme, next_url):
    user = staff(Role.AGENT, tenant=acme)
    client = password_step(user)
    response = client.post(f"{VERIFY}?next={next_url}", {"token": totp_token(user)})
    assert response.status_code == 302
    assert response.url == "/"
    assert client.get(f"/t/{acme.slug}/").status_code == 200


def test_verification_follows_a_local_next(acme):
    user = staff(Role.AGENT, tenant=acme)
    client = password_step(user)
    response = client.post(f"{VERIFY}?next=/t/{acme.slug}/grants/", {"token": totp_token(user)})
    assert (response.status_code, response.url) == (302, f"/t/{acme.slug}/grants/")


# --- 5. lockout ----------------------------------------------------------------------------


def test_wrong_passwords_lock_the_account_and_then_the_correct_password_is_refused(acme):
    user = staff(Role.AGENT, tenant=acme)
    threshold = settings.STAFF_LOCKOUT_THRESHOLD
    client = Client()
    for attempt in range(1, threshold):
        response = post_password(client, user.username, f"wrong {attempt}")
        assert response.status_code == 200
        assert GENERIC_ERROR.encode() in response.content
        assert reload(user).failed_attempts == attempt
    assert events(user, "auth.account_locked") == []

    response = post_password(client, user.username, "wrong again")

    assert response.status_code == 200
    assert LOCKED.encode() in response.content
    locked = reload(user)
    assert locked.locked_until is not None and locked.locked_until > timezone.now()
    [lock_event] = events(user, "auth.account_locked")
    assert lock_event.tenant_id is None
    assert lock_event.actor_type == "system"
    assert lock_event.data["kind"] == "password"
    failed = events(user, "auth.login_failed")
    assert [e.data["attempt"] for e in failed] == list(range(1, threshold + 1))

    response = post_password(Client(), user.username, PASSWORD)
    assert response.status_code == 200
    assert LOCKED.encode() in response.content
    assert not is_signed_in(client, user)
    assert client.get(f"/t/{acme.slug}/").url.startswith(LOGIN)


def test_wrong_password_while_locked_adds_no_further_lock(acme):
    user = staff(Role.AGENT, tenant=acme)
    client = Client()
    for _i in range(settings.STAFF_LOCKOUT_THRESHOLD + 3):
        post_password(client, user.username, "wrong")
    response = post_password(client, user.username, "wrong")
    assert LOCKED.encode() in response.content
    assert len(events(user, "auth.account_locked")) == 1


def test_lock_ends_after_lockout_seconds(acme, monkeypatch):
    user = staff(Role.AGENT, tenant=acme)
    for _i in range(settings.STAFF_LOCKOUT_THRESHOLD):
        post_password(Client(), user.username, "wrong")
    assert LOCKED.encode() in post_password(Client(), user.username, PASSWORD).content

    later = timezone.now() + timedelta(seconds=settings.STAFF_LOCKOUT_SECONDS + 1)
    monkeypatch.setattr("tenants.lockout.timezone.now", lambda: later)

    response = post_password(Client(), user.username, PASSWORD)
    assert (response.status_code, response.url) == (302, VERIFY)


def test_failed_otp_attempts_log_out_and_lock_the_account(acme):
    user = staff(Role.AGENT, tenant=acme)
    threshold = settings.STAFF_LOCKOUT_THRESHOLD
    client = password_step(user)
    bad = user_wrong_token(user)
    for _i in range(threshold - 1):
        response = client.post(VERIFY, {"token": bad})
        assert response.status_code == 200
        assert b"That code is not valid" in response.content

    response = client.post(VERIFY, {"token": bad})

    assert response.status_code == 302 and response.url.startswith(LOGIN)
    assert not is_signed_in(client, user)
    assert client.get(f"/t/{acme.slug}/").url.startswith(LOGIN)
    assert reload(user).locked_until is not None
    [lock_event] = events(user, "auth.account_locked")
    assert lock_event.data["kind"] == "otp"
    response = post_password(Client(), user.username, PASSWORD)
    assert LOCKED.encode() in response.content


def test_correct_otp_is_refused_while_locked_even_in_an_earlier_password_session(acme):
    user = staff(Role.AGENT, tenant=acme)
    client = password_step(user)
    for _i in range(settings.STAFF_LOCKOUT_THRESHOLD):
        post_password(Client(), user.username, "wrong")

    response = client.post(VERIFY, {"token": totp_token(user)})

    assert response.status_code == 302 and response.url.startswith(LOGIN)
    assert not is_signed_in(client, user)
    assert events(user, "auth.login_succeeded") == []


def test_successful_sign_in_resets_the_failure_count(acme):
    user = staff(Role.AGENT, tenant=acme)
    threshold = settings.STAFF_LOCKOUT_THRESHOLD
    for _i in range(threshold - 1):
        post_password(Client(), user.username, "wrong")
    assert reload(user).failed_attempts == threshold - 1

    signed_in_client(user)

    assert reload(user).failed_attempts == 0
    for _i in range(threshold - 1):
        post_password(Client(), user.username, "wrong")
    assert reload(user).locked_until is None
    assert events(user, "auth.account_locked") == []


def test_password_alone_does_not_reset_otp_failures(acme):
    user = staff(Role.AGENT, tenant=acme)
    threshold = settings.STAFF_LOCKOUT_THRESHOLD
    bad = user_wrong_token(user)
    client = password_step(user)
    for _i in range(threshold - 1):
        client.post(VERIFY, {"token": bad})

    client = password_step(user)  # a fresh password sign-in must not clear the count
    assert reload(user).failed_attempts == threshold - 1
    response = client.post(VERIFY, {"token": bad})

    assert response.status_code == 302 and response.url.startswith(LOGIN)
    assert reload(user).locked_until is not None


def test_unknown_username_gets_the_generic_error_and_locks_nothing(acme):
    known = staff(Role.AGENT, tenant=acme)
    known_response = post_password(Client(), known.username, "wrong")
    locks_before = AuditEvent.objects.filter(action="auth.account_locked").count()
    failures_before = AuditEvent.objects.filter(action="auth.login_failed").count()
    ghost = unique("nobody")

    for _i in range(settings.STAFF_LOCKOUT_THRESHOLD + 2):
        response = post_password(Client(), ghost, "wrong")
        assert response.status_code == 200
        assert GENERIC_ERROR.encode() in response.content
        assert LOCKED.encode() not in response.content

    assert GENERIC_ERROR.encode() in known_response.content
    assert not User.objects.filter(username=ghost).exists()
    assert AuditEvent.objects.filter(action="auth.account_locked").count() == locks_before
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == failures_before
    assert not User.objects.filter(locked_until__isnull=False).exists()


# --- 6. Django admin -----------------------------------------------------------------------


@pytest.mark.parametrize("totp_device", [True, False])
def test_admin_refuses_superuser_who_passed_only_the_password(db, totp_device):
    root = superuser(totp_device=totp_device)
    client = Client()
    assert post_password(client, root.username, PASSWORD).status_code == 302
    for page in ["/admin/", "/admin/tenants/user/"]:
        response = client.get(page)
        assert response.status_code == 302, page
        followed = client.get(page, follow=True)
        assert not followed.request["PATH_INFO"].startswith("/admin/tenants/")
        assert b"Site administration" not in followed.content


def test_admin_serves_a_verified_superuser(db):
    client = signed_in_client(superuser())
    response = client.get("/admin/")
    assert response.status_code == 200
    assert b"Site administration" in response.content


def admin_login(client: Client, root: User, password: str, token: str = ""):
    device = TOTPDevice.objects.get(user=root, confirmed=True)
    return client.post(
        "/admin/login/?next=/admin/",
        {
            "username": root.username,
            "password": password,
            "otp_device": device.persistent_id,
            "otp_token": token,
            "this_is_the_login_form": "1",
            "next": "/admin/",
        },
    )


def test_admin_login_form_does_not_sign_in_with_a_password_alone(db):
    root = superuser()
    client = Client()
    admin_login(client, root, PASSWORD)
    assert not is_signed_in(client, root)
    assert client.get("/admin/").status_code != 200


def test_admin_login_form_cannot_bypass_the_lockout(db):
    root = superuser()
    for _i in range(settings.STAFF_LOCKOUT_THRESHOLD):
        post_password(Client(), root.username, "wrong")
    assert reload(root).locked_until is not None

    client = Client()
    admin_login(client, root, PASSWORD, totp_token(root))

    assert not is_signed_in(client, root)
    assert client.get("/admin/").status_code != 200
    assert events(root, "auth.login_succeeded") == []


def test_admin_login_form_reveals_nothing_about_passwords(db):
    root = superuser()
    responses = [admin_login(Client(), root, pw) for pw in ("guess 1", "guess 2", PASSWORD)]
    assert len({(r.status_code, r.get("Location")) for r in responses}) == 1
    assert not any(b"correct username and password" in r.content for r in responses)
    assert events(root, "auth.login_succeeded") == []


def test_account_with_only_backup_codes_proves_one_before_enrolling_a_new_app(acme):
    user = unenrolled_member(acme)
    device = StaticDevice.objects.create(user=user, name="Backup codes")
    StaticToken.objects.create(device=device, token="backup12")
    client = password_step(user)
    assert client.get("/account/otp/enrol/").url == "/account/otp/"
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert client.post("/account/otp/", {"token": "backup12"}).status_code == 302
    # Signed in with a backup code and no app: every page leads to enrolment first.
    assert client.get(f"/t/{acme.slug}/").url == "/account/otp/enrol/"
    assert client.get("/account/otp/enrol/").status_code == 200


def test_sign_in_keeps_next_through_the_otp_step(acme):
    """A link that needed a sign-in (say a manager's attestation) is reached after the OTP."""
    user = staff(Role.AGENT, tenant=acme)
    client = Client()
    target = f"/t/{acme.slug}/"
    response = client.post(
        f"{LOGIN}?next={target}", {"username": user.username, "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response.url == f"{VERIFY}?next=%2Ft%2F{acme.slug}%2F"
    response = client.post(response.url, {"token": totp_token(user)})
    assert response.status_code == 302 and response.url == target


def test_sign_in_drops_a_foreign_next(acme):
    user = staff(Role.AGENT, tenant=acme)
    response = Client().post(
        f"{LOGIN}?next=https://evil.example/", {"username": user.username, "password": PASSWORD}
    )
    assert response.url == VERIFY
