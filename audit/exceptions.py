class AuditError(Exception):
    """Raised when an audit event cannot be written; the caller's action must fail with it."""

    code = "audit.write_failed"
