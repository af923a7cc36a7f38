import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recovery.detection.simulate import DetectionReport, detection_simulate
from recovery.policy.explain import duration
from tenants.exceptions import DomainError
from tenants.models import Tenant
from tenants.rls import tenant_scope

DEFAULT_THRESHOLDS = "those of the policy version each case was opened under"


def _overrides(given: list[str]) -> dict[str, int]:
    """`NAME=VALUE` pairs, each value a whole number; a usage error (exit 2) otherwise."""
    overrides = {}
    for text in given:
        name, equals, value = (part.strip() for part in text.partition("="))
        if not (equals and name and value.lstrip("-").isdigit()):
            raise CommandError(
                f"--set takes NAME=VALUE with a whole number, not {text!r}.", returncode=2
            )
        overrides[name] = int(value)
    return overrides


class Command(BaseCommand):
    help = (
        "Replay the detection rules evaluated when a case opens over the tenant's cases of the "
        "last DAYS days, as they stood when each case opened, and report per rule how many "
        "cases it would fire on, how many of those raised the alert at the time, and per day. "
        "--set name=value overrides a threshold (e.g. repeat_case_window_seconds=172800). "
        "Changes nothing. Exits 1 for a threshold refused (unknown, or weaker than its platform "
        "floor), 2 for an unknown tenant, a non-positive DAYS or a malformed --set."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, metavar="SLUG")
        parser.add_argument("--since", required=True, type=int, metavar="DAYS")
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            dest="overrides",
            metavar="NAME=VALUE",
            help="A threshold to use instead of the policy's (repeatable).",
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **options) -> None:
        days: int = options["since"]
        overrides = _overrides(options["overrides"])
        if days <= 0:
            raise CommandError("--since must be a positive number of days.", returncode=2)
        tenant = Tenant.objects.filter(slug=options["tenant"], is_active=True).first()
        if tenant is None:
            raise CommandError(f"No active tenant with slug {options['tenant']!r}.", returncode=2)
        try:
            with tenant_scope([tenant.pk]):
                report = detection_simulate(tenant=tenant, days=days, overrides=overrides)
        except DomainError as refusal:
            raise CommandError(f"{refusal.code}: {refusal.message}", returncode=1) from None
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2, sort_keys=True))
        else:
            self.stdout.write("\n".join(_text(report)))


def _text(report: DetectionReport) -> list[str]:
    """A header, one line per rule with its counts, then the example cases."""
    data = report.as_dict()
    overrides = ", ".join(f"{name}={value}" for name, value in report.overrides.items())
    lines = [
        f"{report.tenant}: detection rules (rule set {data['ruleset']}) replayed over the "
        f"{data['cases_replayed']} case(s) opened in the last {report.since_days} day(s) "
        f"(since {report.window_start:%Y-%m-%d %H:%M} UTC)",
        f"  thresholds: {overrides or DEFAULT_THRESHOLDS}",
        *(f"  note: {note}" for note in data["notes"]),
        "",
    ]
    for rule in data["rules"]:
        lines.append(
            f"{rule['rule']} ({rule['requirement']}): would fire on {rule['would_fire']}, "
            f"raised then on {rule['raised_then']} (both {rule['would_fire_and_raised_then']}, "
            f"new {rule['would_fire_not_raised_then']}, "
            f"gone {rule['raised_then_would_not_fire']})"
        )
    if data["examples"]:
        lines += ["", "Examples:"]
    for example in data["examples"]:
        now = "would fire" if example["would_fire"] else "would not fire"
        then = "raised then" if example["raised_then"] else "not raised then"
        facts = _facts(example["facts"])
        lines.append(
            f"  case {example['case_id']} · {example['account']} · opened "
            f"{example['opened_at'][:16].replace('T', ' ')} UTC · {example['rule']}: {now}, "
            f"{then}{f' — {facts}' if facts else ''}"
        )
    if data["examples_total"] > len(data["examples"]):
        lines.append(f"  … and {data['examples_total'] - len(data['examples'])} more")
    return lines


def _facts(facts: dict) -> str:
    """Facts on one line, windows as durations (`window_seconds: 86400` → `window: 1 day`)."""
    parts = []
    for key, value in facts.items():
        if key.endswith("_seconds") and isinstance(value, int):
            key, value = key.removesuffix("_seconds"), duration(value)
        parts.append(f"{key}: {value}")
    return "; ".join(parts)
