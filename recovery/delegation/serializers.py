"""What the API shows of a mailbox access case's delegation (the case detail's `delegation`)."""

from __future__ import annotations

from rest_framework import serializers

from .choices import DelegationStatus, OwnerDecision


class DelegationStepOutput(serializers.Serializer):
    id = serializers.CharField(help_text="`grant` or `remove`.")
    state = serializers.CharField(help_text="`pending`, `recorded` or `void` (expired first).")
    manual_step = serializers.CharField(
        help_text="What a person does in the mail system's own console instead."
    )


class CaseDelegationOutput(serializers.Serializer):
    """The delegation a mailbox access case asks for: the mailbox, the owner's decision (made
    in their own portal session) and where the grant stands. Never a credential."""

    mailbox = serializers.CharField(source="mailbox.external_id")
    mailbox_username = serializers.CharField(source="mailbox.username")
    delegate = serializers.CharField(source="delegate.external_id")
    lifetime_seconds = serializers.IntegerField()
    status = serializers.ChoiceField(choices=DelegationStatus.choices)
    owner_decision = serializers.ChoiceField(
        choices=OwnerDecision.choices, help_text="Empty while the mailbox's owner has not answered."
    )
    owner_decided_at = serializers.DateTimeField(allow_null=True)
    connector = serializers.CharField(help_text="The connector that granted it (empty: not yet).")
    granted_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    removed_at = serializers.DateTimeField(allow_null=True)
    steps = DelegationStepOutput(many=True)
