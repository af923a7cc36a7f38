class AuditError(Exception):
    """Raised when an audit event cannot be written; the caller's action must fail with it."""

    code = "audit.write_failed"


class TrailReadNotRecorded(AuditError):
    """A read of the trail could not be recorded, so it is refused (R-50; fails closed)."""

    code = "audit.read_not_recorded"
    message = (
        "The audit trail cannot be shown right now: reading it must be recorded in the trail, "
        "and that failed. Nothing was shown. Try again later."
    )
