# ruff: noqa: E501
"""Time-bound mailbox delegation for shared and functional mailboxes (issue 14 item 6): the
mailbox's registered owner from the system of record, and one row per delegation, under RLS."""

import django.db.models.deletion
from django.db import migrations, models

from tenants.rls import enable_rls


class Migration(migrations.Migration):
    dependencies = [
        ("recovery", "0028_account_revert"),
        ("tenants", "0008_staff_passkeys"),
    ]

    operations = [
        migrations.AddField(
            model_name="protectedaccount",
            name="mailbox_owner_external_id",
            field=models.CharField(
                blank=True,
                help_text="For a shared or functional mailbox: the external id of its registered owner in the system of record, who approves access to it in their own portal session.",
                max_length=200,
            ),
        ),
        migrations.CreateModel(
            name="MailboxDelegation",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "owner_external_id",
                    models.CharField(
                        help_text="The mailbox's registered owner when it was requested.",
                        max_length=200,
                    ),
                ),
                (
                    "lifetime_seconds",
                    models.PositiveIntegerField(
                        help_text="How long it lasts from the execution (within the policy's maximum)."
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            (
                                "requested",
                                "Requested: waiting for the mailbox owner and the approvals",
                            ),
                            ("owner_refused", "Refused by the mailbox owner"),
                            (
                                "grant_pending",
                                "Approved: a person must grant it in the mail system",
                            ),
                            ("active", "Active until its expiry"),
                            ("removal_pending", "Ended: the removal is still to be done"),
                            ("removed", "Removed"),
                        ],
                        default="requested",
                        max_length=16,
                    ),
                ),
                (
                    "owner_decision",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("", "Not decided"),
                            ("approved", "Approved by the mailbox owner"),
                            ("refused", "Refused by the mailbox owner"),
                        ],
                        default="",
                        max_length=8,
                    ),
                ),
                ("owner_decided_at", models.DateTimeField(blank=True, null=True)),
                (
                    "owner_proof",
                    models.JSONField(
                        blank=True, default=dict, help_text="How that session was authenticated."
                    ),
                ),
                ("requested_at", models.DateTimeField(auto_now_add=True)),
                ("connector", models.CharField(blank=True, max_length=32)),
                ("granted_at", models.DateTimeField(blank=True, null=True)),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                ("ended_at", models.DateTimeField(blank=True, null=True)),
                ("removed_at", models.DateTimeField(blank=True, null=True)),
                (
                    "grant_answer",
                    models.JSONField(blank=True, default=dict, help_text="The connector's answer."),
                ),
                (
                    "removal_answer",
                    models.JSONField(blank=True, default=dict, help_text="The connector's answer."),
                ),
                (
                    "steps",
                    models.JSONField(
                        blank=True,
                        default=list,
                        help_text="Manual steps: pending until a person records them.",
                    ),
                ),
                (
                    "case",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="delegation",
                        to="recovery.recoverycase",
                    ),
                ),
                (
                    "delegate",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="recovery.protectedaccount",
                    ),
                ),
                (
                    "mailbox",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="recovery.protectedaccount",
                    ),
                ),
                (
                    "owner_session",
                    models.ForeignKey(
                        blank=True,
                        help_text="The owner's own portal session the decision was made in.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="recovery.ownerportalsession",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        condition=models.Q(("status__in", ["active", "grant_pending"])),
                        fields=["expires_at"],
                        name="delegation_expiring",
                    )
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                (
                                    "status__in",
                                    ["active", "grant_pending", "removal_pending", "removed"],
                                ),
                                _negated=True,
                            ),
                            models.Q(
                                ("expires_at__isnull", False),
                                ("owner_decision", "approved"),
                                ("owner_session__isnull", False),
                            ),
                            _connector="OR",
                        ),
                        name="delegation_granted_needs_owner",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("owner_decision", ""),
                            ("owner_session__isnull", False),
                            _connector="OR",
                        ),
                        name="delegation_owner_decided_in_session",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("mailbox", models.F("delegate")), _negated=True),
                        name="delegation_not_to_itself",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("status__in", ["active", "grant_pending"])),
                        fields=("mailbox", "delegate"),
                        name="delegation_one_live_per_pair",
                    ),
                ],
            },
        ),
        enable_rls("recovery_mailboxdelegation"),
    ]
