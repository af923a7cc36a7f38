"""`{% integrity_banner %}`: the console's banner while the tenant's audit trail (or the
platform's) failed verification and nobody has acknowledged it (audit.integrity)."""

from __future__ import annotations

from typing import Any

from django import template

from audit.integrity import PLATFORM, integrity_failing

register = template.Library()


@register.inclusion_tag("console/audit/_integrity_banner.html", takes_context=True)
def integrity_banner(context: template.Context) -> dict[str, Any]:
    """The failing state of the request's tenant, for the banner partial (nothing without a
    tenant)."""
    tenant = getattr(context.get("request"), "tenant", None)
    state = integrity_failing(tenant) if tenant is not None else None
    return {"integrity": state, "platform": state is not None and state.key == PLATFORM}
