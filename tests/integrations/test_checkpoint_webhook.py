"""Tenants hold their own copies of their chain's signed checkpoints (R-46, issue 15).

Each signing run records `audit.checkpoint_signed` in the tenant's chain; a subscription to that
event type receives it through the outbox like any other event, over real HTTP, and the body is
enough to check the checkpoint's signature with the published public key, with no access to us.
"""

from __future__ import annotations

import base64
import json

import pytest

from audit.checkpoints import (
    Checkpoint,
    DirectoryStore,
    checkpoints_sign,
    signature_problem,
    trusted_keys,
)
from audit.context import Actor
from audit.models import AuditEvent
from integrations.choices import DeliveryStatus
from integrations.models import WebhookDelivery
from integrations.outbox import webhooks_derive
from integrations.signing import verify
from integrations.tasks import webhook_deliver_task

from ..audit.checkpointing import new_signer
from .hooks import subscribe

pytestmark = pytest.mark.django_db


def test_a_subscriber_receives_its_own_tenants_signed_checkpoint(acme, globex, receiver, tmp_path):
    trusted = tmp_path / "trusted"
    signer = new_signer(trusted)
    _, secret = subscribe(acme, f"{receiver.url}/acme", ["audit.checkpoint_signed"])
    subscribe(acme, f"{receiver.url}/acme-cases", ["case.opened"])
    subscribe(globex, f"{receiver.url}/globex", ["audit.checkpoint_signed"])
    run = checkpoints_sign(
        actor=Actor.system("test"),
        signer=signer,
        stores=[DirectoryStore(tmp_path / "worm", "worm")],
        chains=[f"tenant:{acme.pk}", f"tenant:{globex.pk}"],
    )
    signed = {checkpoint.statement["tenant_id"]: checkpoint for checkpoint in run.signed}
    assert set(signed) == {acme.pk, globex.pk}

    for tenant in (acme, globex):
        webhooks_derive(tenant_id=tenant.pk)
        [delivery] = WebhookDelivery.objects.for_tenant(tenant)
        assert webhook_deliver_task(str(delivery.pk)) == DeliveryStatus.DELIVERED
    by_path = {request.path.rsplit("/", 1)[-1]: request for request in receiver.requests}
    assert set(by_path) == {"acme", "globex"}  # nothing for the case.opened subscription

    request = by_path["acme"]
    assert verify(secret, request.headers["Vouchsafe-Signature"], request.body)
    body = json.loads(request.body)
    recorded = AuditEvent.objects.get(tenant_id=acme.pk, action="audit.checkpoint_signed")
    assert (body["type"], body["tenant"], body["sequence"]) == (
        "audit.checkpoint_signed",
        acme.slug,
        recorded.seq,
    )
    data = body["data"]
    copy = Checkpoint(data["statement"], base64.b64decode(data["signature"]))
    assert copy == signed[acme.pk]
    assert data["digest"] == copy.digest
    assert signature_problem(copy, trusted_keys([trusted])) is None
    assert "stores" not in data  # where we keep ours is not part of their copy
    assert json.loads(by_path["globex"].body)["data"]["statement"]["tenant_id"] == globex.pk


def test_a_subscriber_is_told_when_its_tenants_chain_fails_verification(acme, receiver):
    from audit.tasks import audit_verify_task

    from ..audit.test_fail_closed import break_row

    _, secret = subscribe(acme, f"{receiver.url}/acme", ["audit.integrity_failing"])
    break_row(acme, 1)
    audit_verify_task()
    webhooks_derive(tenant_id=acme.pk)
    [delivery] = WebhookDelivery.objects.for_tenant(acme)
    assert webhook_deliver_task(str(delivery.pk)) == DeliveryStatus.DELIVERED
    [request] = receiver.requests
    assert verify(secret, request.headers["Vouchsafe-Signature"], request.body)
    body = json.loads(request.body)
    assert body["type"] == "audit.integrity_failing"
    assert body["data"]["first_bad_seq"] == 1 and body["data"]["window"][0] == 1
    assert {"first_bad_seq", "reason", "window"} <= set(body["data"])
