"""Raise every tenant's active policy to the platform floors of issue 11 (data only).

The floors rose: cooling-off T1 >= 15 min, T2 >= 4 h, exception >= 24 h (R-36); nothing waives
a T2 wait; contact quarantine >= 7 days (R-04); and the evidence rule must be reachable with
methods a verifier can check today (S1 and S5 wait for the owner portal, R-01). An active
version below them would fail closed (`policy_active` refuses it), so for each such tenant this
stores the same document with only those values raised, as a new active version, and records
`policy.floor_raised` in the tenant's trail.

The floors and the layer merge are frozen here (not imported), so this migration keeps doing
what it did when the floors change again; a later raise gets its own migration. A version
whose source no longer matches its hash is left alone: raising it would launder a tampered
policy (it still fails closed, as before).

Who is on record: the new version keeps the author, requester and approver of the version it
replaces (the dual-control constraints need people; no person decided anything new). The
truth is in the trail: `policy.floor_raised` by the system actor `platform`, with every change,
and in the header comment of the new source.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import yaml
from django.db import migrations
from django.utils import timezone

MINUTE, HOUR, DAY = 60, 3_600, 86_400
TIERS = ("T0", "T1", "T2")
CASE_TYPES = (
    "password_reset",
    "mfa_reset",
    "unlock",
    "temporary_access",
    "mailbox_access",
    "privileged_role_restore",
    "exception",
)
QUARANTINE_FLOOR = 7 * DAY
TIER_COOLING_FLOOR = {"T1": 15 * MINUTE, "T2": 4 * HOUR}
EXCEPTION_COOLING_FLOOR = DAY
SIGNAL_CLASSES = ("S1", "S2", "S3", "S4", "S5")
# Classes a verifier can check when this migration was written, in the order they are added.
VERIFIABLE_CLASSES = ("S2", "S3", "S4")
MAX_CHANGES = 200

Path = tuple[str, ...]


def _layers(tier: str, case_type: str) -> tuple[Path, ...]:
    return (
        ("defaults",),
        ("tiers", tier),
        ("case_types", case_type),
        ("tiers", tier, "case_types", case_type),
    )


def _lookup(data: Any, path: Path) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _effective(data: dict, tier: str, case_type: str, field: str) -> tuple[Any, Path | None]:
    """The value of `field` for (tier, case type) and the layer it comes from."""
    value, source = None, None
    for layer in _layers(tier, case_type):
        block = _lookup(data, layer)
        if isinstance(block, dict) and field in block:
            value, source = block[field], layer
    return value, source


def _tier_scoped(source: Path, tier: str, case_type: str) -> Path:
    """Where to write a value one tier needs: never a layer other tiers read too."""
    if source == ("defaults",):
        return ("tiers", tier)
    if source == ("case_types", case_type):
        return ("tiers", tier, "case_types", case_type)
    return source


def _exception_scoped(source: Path, tier: str) -> Path:
    """Where to write a value the exception case type needs: never a layer others read too."""
    if source == ("defaults",):
        return ("case_types", "exception")
    if source == ("tiers", tier):
        return ("tiers", tier, "case_types", "exception")
    return source


class Unreachable(Exception):
    """The evidence rule asks for more classes than can ever be verified: no raise fixes it."""


def _reachable(accepted: list) -> list[str]:
    return [c for c in VERIFIABLE_CLASSES if c in accepted]


def _grown_classes(data: dict, tier: str, case_type: str) -> list | None:
    """accepted_classes with the verifiable classes the evidence rule still lacks, or None."""
    needed, _ = _effective(data, tier, case_type, "min_signal_classes")
    alone, _ = _effective(data, tier, case_type, "s4_alone_suffices")
    accepted, _ = _effective(data, tier, case_type, "accepted_classes")
    accepted = list(accepted or [])
    reachable = _reachable(accepted)
    if (needed or 0) <= len(reachable) or (alone and "S4" in reachable):
        return None
    missing = [c for c in VERIFIABLE_CLASSES if c not in accepted]
    if len(reachable) + len(missing) < needed:
        raise Unreachable(f"{tier} {case_type}: {needed} classes needed")
    grown = accepted + missing[: needed - len(reachable)]
    return sorted(grown, key=lambda c: SIGNAL_CLASSES.index(c) if c in SIGNAL_CLASSES else 99)


def _shortfalls(data: dict, tier: str, case_type: str):
    """(field, path to write, new value, rule) for each value of (tier, case type) below a floor.

    The value is written where it was set when only combinations needing it read that place,
    otherwise in the narrowest layer of this tier (or of the exception case type), so no other
    tier's or case type's requirement moves.
    """
    value, source = _effective(data, tier, case_type, "quarantine_seconds")
    if source is not None and value < QUARANTINE_FLOOR:  # a floor for all: raise it where set
        yield "quarantine_seconds", source, QUARANTINE_FLOOR, "R-04.quarantine_seconds"
    value, source = _effective(data, tier, case_type, "cooling_off_seconds")
    if source is not None and case_type == "exception" and value < EXCEPTION_COOLING_FLOOR:
        yield (
            "cooling_off_seconds",
            _exception_scoped(source, tier),
            EXCEPTION_COOLING_FLOOR,
            "R-24.exception.cooling_off_seconds",
        )
    elif source is not None and tier in TIER_COOLING_FLOOR and value < TIER_COOLING_FLOOR[tier]:
        rule = "R-36.T1.cooling_off_seconds" if tier == "T1" else "R-16.T2.cooling_off_seconds"
        yield (
            "cooling_off_seconds",
            _tier_scoped(source, tier, case_type),
            TIER_COOLING_FLOOR[tier],
            rule,
        )
    value, source = _effective(data, tier, case_type, "s5_waives_cooling_off")
    if source is not None and tier == "T2" and value:
        yield (
            "s5_waives_cooling_off",
            _tier_scoped(source, tier, case_type),
            False,
            "R-36.T2.s5_waives_cooling_off",
        )
    grown = _grown_classes(data, tier, case_type)
    if grown is not None:
        _, source = _effective(data, tier, case_type, "accepted_classes")
        yield (
            "accepted_classes",
            _tier_scoped(source, tier, case_type),
            grown,
            "R-01.min_signal_classes_satisfiable",
        )


def _first_shortfall(data: dict):
    for tier in TIERS:
        for case_type in CASE_TYPES:
            for field, layer, value, rule in _shortfalls(data, tier, case_type):
                before, source = _effective(data, tier, case_type, field)
                return (*layer, field), value, rule, before, (*source, field)
    return None


def _set(data: dict, path: Path, value: Any) -> None:
    block = data
    for part in path[:-1]:
        block = block.setdefault(part, {})
    block[path[-1]] = copy.deepcopy(value)


def _render(path: Path) -> str:
    return "$." + ".".join(path)


def raised_to_floors(data: dict) -> tuple[dict, list[dict]]:
    """A copy of the document with every value below a new floor raised, and the changes.

    Raises Unreachable when the evidence rule cannot be met by any verifiable classes.
    """
    raised = copy.deepcopy(data)
    changes: list[dict] = []
    while (shortfall := _first_shortfall(raised)) is not None:
        if len(changes) >= MAX_CHANGES:
            raise Unreachable(f"no fixed point after {MAX_CHANGES} changes")
        path, value, rule, before, source = shortfall
        _set(raised, path, value)
        change = {"path": _render(path), "from": before, "to": value, "rule": rule}
        if source != path:
            change["inherited_from"] = _render(source)
        changes.append(change)
    return raised, changes


def _source_text(data: dict, number: int, changes: list[dict], today: str) -> str:
    lines = [
        f"# Raised by the Vouchsafe platform on {today} (migration 0016_raise_policy_floors):",
        f"# the platform floors rose (R-04, R-36, R-01). Changes from version {number}:",
    ]
    for change in changes:
        lines.append(
            f"#   {change['path']}: {json.dumps(change['from'])} -> {json.dumps(change['to'])}"
            f" [{change['rule']}]"
        )
    lines.append(
        f"# Otherwise the document of version {number}, regenerated from its parsed form "
        "(its comments and layout are not kept)."
    )
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None)
    return "\n".join(lines) + "\n" + body


def _parsed(version: Any) -> dict:
    return (
        json.loads(version.source) if version.format == "json" else yaml.safe_load(version.source)
    )


def raise_policy_floors(apps, schema_editor):
    from audit.context import Actor
    from audit.services import record

    PolicyVersion = apps.get_model("recovery", "PolicyVersion")
    # The trail shows the target as the model's own __str__ does; the historical class has none.
    PolicyVersion.__str__ = lambda self: f"policy v{self.number} ({self.status})"
    Tenant = apps.get_model("tenants", "Tenant")
    today = timezone.now().strftime("%Y-%m-%d")
    active = PolicyVersion.objects.filter(status="active").order_by("tenant_id")
    for current in active.select_for_update():
        if hashlib.sha256(current.source.encode("utf-8")).hexdigest() != current.sha256:
            print(
                f"\n  tenant {current.tenant_id}: policy v{current.number} fails its hash; left alone"
            )
            continue
        try:
            document, changes = raised_to_floors(_parsed(current))
        except Unreachable as why:
            print(f"\n  tenant {current.tenant_id}: policy v{current.number} not raised ({why})")
            continue
        if not changes:
            continue
        source = _source_text(document, current.number, changes, today)
        assert yaml.safe_load(source) == document  # the text says exactly what is enforced
        now = timezone.now()
        current.status, current.superseded_at = "superseded", now
        current.save(update_fields=["status", "superseded_at"])
        latest = PolicyVersion.objects.filter(tenant_id=current.tenant_id).order_by("-number")
        version = PolicyVersion.objects.create(
            tenant_id=current.tenant_id,
            number=latest.values_list("number", flat=True).first() + 1,
            format="yaml",
            source=source,
            document=document,
            sha256=hashlib.sha256(source.encode("utf-8")).hexdigest(),
            status="active",
            created_by_id=current.created_by_id,
            requested_by_id=current.requested_by_id,
            requested_at=now,
            approved_by_id=current.approved_by_id,
            activated_at=now,
        )
        record(
            action="policy.floor_raised",
            actor=Actor.system("platform"),
            tenant=Tenant.objects.get(pk=current.tenant_id),
            target=version,
            data={
                "from_version": current.number,
                "number": version.number,
                "sha256": version.sha256,
                "changes": changes,
                "migration": "recovery.0016_raise_policy_floors",
            },
        )


class Migration(migrations.Migration):
    dependencies = [
        ("recovery", "0015_verifiers"),
        ("audit", "0004_event_target_index"),
        ("tenants", "0007_verifiers"),
    ]

    operations = [migrations.RunPython(raise_policy_floors, migrations.RunPython.noop)]
