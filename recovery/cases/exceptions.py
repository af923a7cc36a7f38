"""Refusals specific to recovery cases (the shared ones live in tenants.exceptions)."""

from __future__ import annotations

from tenants.exceptions import DomainError


class AttachmentTampered(DomainError):
    """A stored file no longer matches the sha256 recorded when it was uploaded; not served."""

    code = "evidence.attachment_tampered"
