import ipaddress
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .context import RequestContext, reset_request, set_request


def _client_ip(request: HttpRequest) -> str:
    # REMOTE_ADDR only; behind a proxy, the WSGI server must set it from the trusted hop.
    raw = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return ""


class RequestContextMiddleware:
    """Gives each request an id and records IP and user agent for the audit trail."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        ctx = RequestContext(
            request_id=uuid.uuid4().hex,
            ip=_client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
        )
        request.request_id = ctx.request_id
        token = set_request(ctx)
        try:
            response = self.get_response(request)
        finally:
            reset_request(token)
        response["X-Request-ID"] = ctx.request_id
        return response
