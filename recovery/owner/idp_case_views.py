"""The agent's IdP sign-in action on the case page (S5): ask the owner to sign in with the
tenant's identity provider. A POST is a `CaseAction` calling the same service as the API
(`recovery.owner.idp_sign_in.idp_sign_in_request`); only the owner's sign-in, validated at the
callback, records the evidence.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.utils.translation import gettext as _

from tenants.console import tenant_view

from ..cases.views import CaseAction
from .idp_sign_in import idp_sign_in_request


class IdpSignInRequestView(CaseAction):
    """Send the owner a link to sign in with the organisation's identity provider."""

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        idp_sign_in_request(actor=self.request.user, case=self.case)
        return messages.SUCCESS, _(
            "The owner was sent a link to sign in with your identity provider. The result "
            "appears here once they have signed in; a password alone is recorded but does not "
            "count."
        )


case_idp_sign_in_view = tenant_view(IdpSignInRequestView.as_view())
