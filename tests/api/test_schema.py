"""The OpenAPI schema: generated without warnings, valid, and pinned in docs/openapi.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

PINNED = Path(settings.BASE_DIR) / "docs" / "openapi.yaml"


def test_schema_generates_without_warnings_and_matches_the_pinned_copy(tmp_path: Path):
    generated = tmp_path / "openapi.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(generated))
    assert generated.read_text() == PINNED.read_text(), (
        "The API changed: run `make schema` and review the diff of docs/openapi.yaml."
    )


@pytest.mark.django_db
def test_schema_and_docs_are_served_without_external_assets(client):
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200 and b"/api/v1/t/{tenant}/cases/" in schema.content
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "swagger-ui-bundle.js" in page
    assert "https://" not in page and "http://" not in page
