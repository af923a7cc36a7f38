"""The written reason a privileged act asks for: present, long enough, or a clear refusal."""

from __future__ import annotations

from .exceptions import InvalidInput


def reason_given(reason: str, *, minimum: int, code: str, ask: str) -> str:
    """`reason` stripped, or InvalidInput(`code`) saying `ask` when it is shorter than
    `minimum` characters (a field error on `reason`)."""
    reason = (reason or "").strip()
    if len(reason) < minimum:
        raise InvalidInput(ask, code=code, field_errors={"reason": ["Required."]})
    return reason
