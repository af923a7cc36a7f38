from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone, translation
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from .preferences import zone_of
from .sessions import session_rotate
from .stepup import step_up_request_end, step_up_request_start, step_up_verified_in_request

# The API answers unverified sessions itself, with a JSON 401 instead of a redirect.
# The owner portal never reads the staff session (recovery/owner/sessions.py).
OPEN_PATH_PREFIXES = ("/static/", "/healthz", "/api/", "/owner/")
OPEN_URL_NAMES = (
    "staff-login",
    "staff-logout",
    "otp-verify",
    "otp-enrol",
    "staff-passkey-sign-in-options",
    "staff-passkey-sign-in",
)


class StaffOTPRequiredMiddleware:
    """Nothing past sign-in is served until the staff user has enrolled and verified TOTP."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._open_paths: tuple[str, ...] | None = None
        self._admin_login: str | None = None

    def _is_open(self, path: str) -> bool:
        if self._open_paths is None:
            self._open_paths = tuple(reverse(name) for name in OPEN_URL_NAMES)
        return path.startswith(OPEN_PATH_PREFIXES) or path in self._open_paths

    def _admin_login_path(self) -> str:
        if self._admin_login is None:
            self._admin_login = reverse("admin:login")
        return self._admin_login

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if request.path == self._admin_login_path():
            # The admin's own login form checks passwords outside the staff lockout: every
            # sign-in goes through the staff views instead.
            return redirect("home" if user.is_verified() else "staff-login")
        if user.is_authenticated and not self._is_open(request.path):
            if not user.is_verified():
                has_totp = TOTPDevice.objects.devices_for_user(user, confirmed=True).exists()
                return redirect("otp-verify" if has_totp else "otp-enrol")
            if isinstance(user.otp_device, StaticDevice) and not (
                TOTPDevice.objects.devices_for_user(user, confirmed=True).exists()
            ):
                # Signed in with a backup code after losing the app: enrol a new one first.
                return redirect("otp-enrol")
        return self.get_response(request)


class UserPreferencesMiddleware:
    """Signed-in staff see the console in their chosen language and time zone.

    Without a stored choice, LocaleMiddleware's pick (cookie, then browser) and UTC stand.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and user.language:
            translation.activate(user.language)
            request.LANGUAGE_CODE = user.language
        if user.is_authenticated and user.time_zone:
            timezone.activate(zone_of(user.time_zone))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


class SessionRotationMiddleware:
    """A request that verified a step-up leaves with a new session key (issue 17 item 7).

    The sign-in steps rotate the key themselves (Django's `login`, `second_factor_login`); a
    step-up is verified deep inside many views, so its rotation is done once, here, on the way
    out. Listed after SessionMiddleware, so the new key is the cookie that is sent.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = step_up_request_start()
        try:
            response = self.get_response(request)
            if step_up_verified_in_request():
                session_rotate(request)
        finally:
            step_up_request_end(token)
        return response
