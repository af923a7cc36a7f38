"""A concurrent duplicate POST with one Idempotency-Key: threads on committed data."""

from __future__ import annotations

import threading

import pytest
from rest_framework.test import APIClient

from recovery.cases.models import RecoveryCase

from .. import factories
from .conftest import api, key_client


@pytest.mark.usefixtures("committed")
def test_concurrent_duplicate_gets_409_and_the_action_runs_once():
    tenant = factories.make_tenant()
    client = key_client(tenant)
    accounts = [factories.make_account(tenant)] * 6
    gate = threading.Barrier(6)
    statuses: list[int] = []
    account = accounts[0]

    def call() -> None:
        from django.db import connection

        own = APIClient()  # a test client is not thread-safe; one per thread, same key
        own.credentials(HTTP_AUTHORIZATION=f"Bearer {client.token}")
        gate.wait()
        response = own.post(
            api(tenant, "cases/"),
            {"account_id": account.pk, "case_type": "unlock"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="race",
        )
        statuses.append(response.status_code)
        connection.close()

    threads = [threading.Thread(target=call) for _ in accounts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert RecoveryCase.objects.filter(account=accounts[0]).count() == 1
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
