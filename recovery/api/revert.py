"""The API of a repudiated recovery's revert (R-37, R-41) and of an account's freeze: record a
revert step done by hand (`cases/<id>/revert/record/`), lift the freeze
(`accounts/<id>/unfreeze/`). Thin: the services decide."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.request import Request
from rest_framework.response import Response

from api.base import TenantApiView
from tenants.choices import StaffScope
from tenants.stepup import step_up_verify

from ..cases.services.repudiation import account_unfreeze, revert_step_record
from ..selectors import account_get_visible
from . import revert_serializers as rs
from .serializers import StepRecordInput
from .views import IDEMPOTENCY_KEY, IF_MATCH, StepRecordApi, _revert


@extend_schema_view(
    post=extend_schema(
        operation_id="cases_revert_record",
        summary="Record a pending revert step as done by hand (staff, passkey step-up)",
        description="A revert step (R-37) of a repudiated recovery (`revert.pending`); a case "
        "not frozen is `case.wrong_state`. The last one makes the case `reverted`.",
        request=StepRecordInput,
        responses=rs.CaseRevertOutput,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
)
class CaseRevertRecordApi(StepRecordApi):
    recorded = staticmethod(revert_step_record)

    def output(self, row: Any) -> dict[str, Any]:
        return rs.CaseRevertOutput(_revert(row)).data


class AccountUnfreezeApi(TenantApiView):
    """Lift an account's freeze (a repudiation's or the re-establishment window's): a security
    officer, with a reason and a fresh step-up code. Refused to anyone else
    (`account.unfreeze_forbidden`), while a revert step or a window change is still to be done
    (`account.revert_pending`), or for an account that is not frozen (`account.not_frozen`)."""

    scopes = {"POST": StaffScope.CASES_EXECUTE}

    @extend_schema(
        operation_id="accounts_unfreeze",
        summary="Lift an account's freeze (security officer, reason, step-up)",
        request=rs.AccountUnfreezeInput,
        responses=rs.AccountFreezeOutput,
    )
    def post(self, request: Request, account_id: int) -> Response:
        data = rs.AccountUnfreezeInput(data=request.data)
        data.is_valid(raise_exception=True)
        account = account_get_visible(tenant=request.tenant, pk=account_id)
        proof = step_up_verify(user=request.user, token=data.validated_data["otp"])
        account = account_unfreeze(
            actor=request.user,
            account=account,
            reason=data.validated_data["reason"],
            step_up=proof,
        )
        return Response(rs.AccountFreezeOutput(account).data)
