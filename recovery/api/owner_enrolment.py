"""Owner portal enrolment over the API: a tenant admin or agent sends the account's owner a
one-time enrolment link. The link goes to an address on record chosen by id, never a typed
destination (R-03), and never appears in the response: only a masked hint of where it went.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.choices import StaffScope

from ..models import ContactMethod
from ..owner.enrolment import enrolment_invite
from ..selectors import account_get_visible
from .views import IDEMPOTENCY_KEY, TenantApiView


class EnrolmentInviteInput(serializers.Serializer):
    contact_method_id = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="One of the account's email or mobile contact methods on record; by default "
        "the first email address, else the mobile phone.",
    )


class EnrolmentInviteOutput(serializers.Serializer):
    session_id = serializers.IntegerField(help_text="The pending enrolment session.")
    sent_to = serializers.CharField(help_text="Masked: never the whole address (R-14).")
    contact_kind = serializers.CharField()
    expires_at = serializers.DateTimeField(help_text="The link works once, until then.")


class AccountEnrolmentInviteApi(TenantApiView):
    """Send the owner a one-time link to enrol passkeys and saved codes in the owner portal.

    Refused (403, `enrolment.*`) while the account has a recovery case in progress, is frozen,
    had a contact change inside its quarantine, or has no email or mobile on record. People
    only (agents, supervisors, security officers, tenant admins): no API key may call it.
    """

    scopes = {"POST": StaffScope.OWNER_ENROL}

    @extend_schema(
        operation_id="accounts_enrolment_invite",
        summary="Send the owner a one-time enrolment link (owner portal)",
        request=EnrolmentInviteInput,
        responses={201: EnrolmentInviteOutput},
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, account_id: int) -> Response:
        account = account_get_visible(tenant=request.tenant, pk=account_id)
        data = EnrolmentInviteInput(data=request.data)
        data.is_valid(raise_exception=True)
        contact = None
        if contact_id := data.validated_data.get("contact_method_id"):
            # Another account's or tenant's id is refused by the service like any other.
            contact = (
                ContactMethod.objects.for_tenant(request.tenant).filter(pk=contact_id).first()
            ) or ContactMethod(pk=contact_id, account_id=0)
        session = enrolment_invite(actor=request.user, account=account, contact=contact)
        out = EnrolmentInviteOutput(
            {
                "session_id": session.pk,
                "sent_to": session.sent_to.masked,
                "contact_kind": session.sent_to.kind,
                "expires_at": session.link_expires_at,
            }
        )
        return Response(out.data, status=status.HTTP_201_CREATED)
