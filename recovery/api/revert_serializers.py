"""What the API shows and takes for a repudiated recovery's revert (R-37, R-41) and for lifting
an account's freeze. Apart from `serializers`, so that the case detail can embed the revert
without the views' imports."""

from __future__ import annotations

from rest_framework import serializers

from ..cases.services.containment import METHOD_REMOVE, SESSIONS_REVOKE, TEMPORARY_ACCESS_REVOKE
from ..cases.services.repudiation import CONNECTOR_CHANGED, MANUAL_STEP, SNAPSHOT_RESTORE

STEP_UP_ASSERTION_MAX = 64 * 1024


class RevertStepOutput(serializers.Serializer):
    id = serializers.CharField(
        help_text="`<operation>:<target>`: the `step` to send to `revert/record/`."
    )
    operation = serializers.ChoiceField(
        choices=[
            TEMPORARY_ACCESS_REVOKE,
            METHOD_REMOVE,
            SESSIONS_REVOKE,
            SNAPSHOT_RESTORE,
            MANUAL_STEP,
            CONNECTOR_CHANGED,
        ],
        help_text="Delete the one-time pass, remove a sign-in method registered since the "
        "execution, end every session, restore the directory snapshot, a step the manual "
        "connector lists, or a revert left to a person because the tenant's connector changed.",
    )
    target = serializers.CharField(
        help_text="The method's or pass's id at the provider, the account, or the step's number."
    )
    code = serializers.CharField(
        help_text="Why the connector did not do it, e.g. `connector.manual_step`, "
        "`connector.capability_missing` or `entra.forbidden`."
    )
    manual_step = serializers.CharField(
        help_text="What a person does in the directory's own admin console."
    )


class CaseRevertOutput(serializers.Serializer):
    """The revert of a repudiated recovery: when it ran and the steps still to do by hand."""

    ran_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the connector was asked (null: not yet). The steps it did are in the "
        "timeline (`change.reverted`).",
    )
    reverted_at = serializers.DateTimeField(
        allow_null=True, help_text="When every step was done (the case is then `reverted`)."
    )
    pending = RevertStepOutput(
        many=True,
        help_text="Steps a person does and records; the case stays `frozen`, and the account's "
        "freeze cannot be lifted, until each is recorded.",
    )


class AccountUnfreezeInput(serializers.Serializer):
    reason = serializers.CharField(
        max_length=2000, help_text="Why the account may be used again (10 to 2000 characters)."
    )
    otp = serializers.RegexField(
        r"^\d{6,8}$", help_text="A fresh code from your authenticator app (step-up)."
    )


class AccountFreezeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    frozen_at = serializers.DateTimeField(allow_null=True)
