"""Detection in the console: `{{ data|explained }}` puts an alert in words
(`recovery.detection.explain`), `{{ name|rule_description }}` gives a rule's description in the
reader's language, and `{% detection_chart report %}` draws a simulation's per-day counts as
server-rendered SVG bars (no script, no inline style: it holds under the strict CSP)."""

from __future__ import annotations

from typing import Any

from django import template

from recovery.detection.explain import Explanation, alert_explained, when
from recovery.detection.rules import RULES

register = template.Library()

DAY_WIDTH = 10  # viewBox units per day
BAR_WIDTH = 4  # two bars a day: would fire now, raised then
CHART_HEIGHT = 40


@register.filter
def explained(data: Any) -> Explanation:
    return alert_explained(data if isinstance(data, dict) else None)


@register.filter
def iso_time(text: str) -> str:
    """An ISO time from a job's result, as the console shows times."""
    return when(text)


@register.filter
def rule_description(name: str) -> str:
    rule = RULES.get(name)
    return str(rule.description) if rule else ""


def _bar(index: int, count: int, peak: int, *, then: bool) -> dict[str, Any]:
    height = round(CHART_HEIGHT * count / peak, 2)
    return {
        "x": index * DAY_WIDTH + (1 + BAR_WIDTH if then else 1),
        "y": round(CHART_HEIGHT - height, 2),
        "width": BAR_WIDTH,
        "height": height,
        "count": count,
        "then": then,
    }


def day_charts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One chart per rule, on one scale (the busiest day of any rule fills the height): a bar
    per day it would fire and a bar per day it raised its alert at the time."""
    days, rules = report.get("days", []), report.get("rules", [])
    peak = max((n for row in rules for n in row["per_day"] + row["raised_per_day"]), default=0)
    charts = []
    for row in rules:
        bars = []
        for index, day in enumerate(days):
            for count, then in (
                (row["per_day"][index], False),
                (row["raised_per_day"][index], True),
            ):
                if count:
                    bars.append({**_bar(index, count, peak, then=then), "day": day})
        charts.append({"row": row, "bars": bars})
    return charts


@register.inclusion_tag("console/detection/_chart.html")
def detection_chart(report: dict[str, Any], chart_id: Any = "") -> dict[str, Any]:
    days = report.get("days", [])
    rows = [
        (day, row["rule"], row["per_day"][index], row["raised_per_day"][index])
        for index, day in enumerate(days)
        for row in report.get("rules", [])
        if row["per_day"][index] or row["raised_per_day"][index]
    ]
    return {
        "charts": day_charts(report),
        "rows": rows,
        "width": max(len(days), 1) * DAY_WIDTH,
        "height": CHART_HEIGHT,
        "first_day": days[0] if days else "",
        "last_day": days[-1] if days else "",
        "chart_id": chart_id,
    }
