from tenants.exceptions import DomainError


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


class AttemptNotRecorded(DomainError):
    """A failed attempt was counted (and any lock it set kept), but the trail could not record
    it: the attempt is refused (R-44; an audit outage buys no extra guesses)."""

    code = "audit.attempt_not_recorded"
    message = (
        "This attempt was refused because it could not be recorded in the audit trail; it still "
        "counts towards the limit of attempts. Try again later."
    )

    def __init__(self) -> None:
        super().__init__(self.message)
