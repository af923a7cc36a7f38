"""`{% siem_status %}`: the tenant's SIEM stream on the console's audit pages, for those who
may see it (the audit app does not import integrations; the template asks for it)."""

from typing import Any

from django import template

from integrations.siem.selectors import siem_status_for_reader

register = template.Library()


@register.inclusion_tag("console/audit/_siem_status.html", takes_context=True)
def siem_status(context: dict[str, Any]) -> dict[str, Any]:
    request = context["request"]
    status = siem_status_for_reader(
        tenant=request.tenant, user=request.user, access=request.tenant_access
    )
    return {"siem": status}
