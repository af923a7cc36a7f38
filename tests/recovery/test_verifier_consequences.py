"""Consequences of issue 11 beyond the verifiers: cooling-off and its floors (R-36, R-04), the
migration that raises tenant policies to them, secrets in notes (R-49) and caller-dictated
destinations (R-03)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import yaml
from django.core import mail
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from audit.models import AuditEvent
from audit.verify import verify_chain
from recovery.cases.choices import CaseStatus, Verifier
from recovery.cases.models import Evidence, RecoveryCase
from recovery.cases.services import case_open, case_submit
from recovery.cases.services.attachments import note_add
from recovery.challenges.models import VerificationChallenge
from recovery.challenges.services import challenge_send
from recovery.policy.choices import PolicyStatus
from recovery.policy.errors import PolicyInvalid
from recovery.policy.models import PolicyVersion
from recovery.policy.rules import DEFAULT_POLICY_FILE
from recovery.policy.selectors import policy_active
from recovery.policy.services import policy_draft_create
from tenants.choices import Role
from tenants.exceptions import PolicyDenied
from tenants.models import Tenant

from ..factories import make_account_with, make_tenant, staff
from .casework import approved, contact, signal

pytestmark = pytest.mark.django_db

DEFAULT = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
T2_WAIVER = "    s5_waives_cooling_off: false          # R-36: nothing waives a T2 wait\n"


def edited(old: str, new: str, text: str = DEFAULT) -> str:
    assert text.count(old) == 1, f"{old!r} must occur once in the document"
    return text.replace(old, new)


def events(tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action=action).order_by("seq"))


# --- cooling-off: only a verifier's S5 could waive it ---------------------------------------


def test_an_s5_recorded_any_other_way_than_its_verifier_waives_nothing(acme):
    """A T1 policy lets a verified S5 waive the wait. An accepted S5 row no verifier produced
    (asserted before verifiers existed, the only other accepted row the database admits) is on
    the case, and the full hour still applies."""
    agent = staff(Role.AGENT, tenant=acme)
    account = make_account_with(acme, groups=["Finance"])
    case = case_open(actor=agent, account=account, case_type="mfa_reset", channel="phone")
    assert policy_active(acme).requirements(case.tier, case.case_type).s5_waives_cooling_off
    signal(case, agent, "S2")
    signal(case, agent, "S3")
    Evidence.objects.create(
        tenant=acme,
        case=case,
        signal_class="S5",
        method="passkey",
        result="accepted",
        verifier=Verifier.LEGACY_ASSERTION,
        collected_by=agent,
        digest="0" * 64,
    )

    case = approved(case_submit(actor=agent, case=case))

    assert case.status == CaseStatus.COOLING_OFF
    assert case.cooling_off_until >= timezone.now() + timedelta(minutes=59)
    [moved] = [e for e in events(acme, "case.status_changed") if e.target_id == str(case.pk)]
    assert moved.data["cooling_off_waived_by_s5"] is False


# --- floors ------------------------------------------------------------------------------------

BELOW_FLOORS = [
    (
        "R-36.T1.cooling_off_seconds",
        "    cooling_off_seconds: 3600\n",
        "    cooling_off_seconds: 1\n",
    ),
    (
        "R-16.T2.cooling_off_seconds",
        "    cooling_off_seconds: 86400\n\ncase_types:",
        "    cooling_off_seconds: 3600\n\ncase_types:",
    ),
    (
        "R-24.exception.cooling_off_seconds",
        "    cooling_off_seconds: 86400\n    s5_waives_cooling_off: false\n",
        "    cooling_off_seconds: 3600\n    s5_waives_cooling_off: false\n",
    ),
    ("R-04.quarantine_seconds", "  quarantine_seconds: 1209600 ", "  quarantine_seconds: 86400 "),
    ("R-36.T2.s5_waives_cooling_off", T2_WAIVER, ""),
]


@pytest.mark.parametrize(("rule", "old", "new"), BELOW_FLOORS, ids=[b[0] for b in BELOW_FLOORS])
def test_a_draft_below_the_new_floors_is_refused_and_the_refusal_recorded(acme, rule, old, new):
    """Values that passed before issue 11 (a 1 s cooling-off, 24 h quarantine) are refused."""
    with pytest.raises(PolicyInvalid) as refused:
        policy_draft_create(
            actor=staff(Role.TENANT_ADMIN, tenant=acme), tenant=acme, text=edited(old, new)
        )
    assert rule in refused.value.rules
    assert not PolicyVersion.objects.filter(tenant=acme).exists()
    [rejected] = events(acme, "policy.rejected")
    assert rule in {error["rule"] for error in rejected.data["errors"]}


def test_the_platform_default_sits_on_or_above_every_new_floor():
    policy = policy_active(make_tenant())
    assert policy.number == 0
    t1, t2 = policy.requirements("T1", "unlock"), policy.requirements("T2", "unlock")
    exception = policy.requirements("T0", "exception")
    assert (t1.cooling_off_seconds, t2.cooling_off_seconds) == (3600, 86400)
    assert exception.cooling_off_seconds == 86400 and not exception.s5_waives_cooling_off
    assert t2.s5_waives_cooling_off is False
    assert t1.quarantine_seconds == 14 * 86400


# --- the migration that raises tenant policies ---------------------------------------------

# A policy that was valid before issue 11: 10 min T1 wait, 1 h T2 wait with the S5 waiver
# inherited, 1 h exception wait, 2-day quarantine, and a T1 evidence rule only S1/S5 could meet.
LOW = edited("  quarantine_seconds: 1209600 ", "  quarantine_seconds: 172800 ")
LOW = edited("    cooling_off_seconds: 3600\n", "    cooling_off_seconds: 600\n", LOW)
LOW = edited(T2_WAIVER + "    cooling_off_seconds: 86400\n", "    cooling_off_seconds: 3600\n", LOW)
LOW = edited(
    "    cooling_off_seconds: 86400\n    s5_waives_cooling_off: false\n",
    "    cooling_off_seconds: 3600\n    s5_waives_cooling_off: false\n",
    LOW,
)
LOW = edited(
    "  T1:\n    accepted_classes: [S1, S2, S3, S4, S5]\n    min_signal_classes: 2\n"
    "    s4_alone_suffices: true\n",
    "  T1:\n    accepted_classes: [S1, S2, S5]\n    min_signal_classes: 2\n"
    "    s4_alone_suffices: false\n",
    LOW,
)
LOW = "# Acme's policy, written by hand.\n" + LOW


def stored_active(tenant: Tenant, text: str) -> PolicyVersion:
    """An active version stored as activation did before the floors rose (no re-validation)."""
    author, approver = (staff(Role.TENANT_ADMIN, tenant=tenant) for _ in range(2))
    now = timezone.now()
    return PolicyVersion.objects.create(
        tenant=tenant,
        number=1,
        format="yaml",
        source=text,
        document=yaml.safe_load(text),
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        status=PolicyStatus.ACTIVE,
        created_by=author,
        requested_by=author,
        requested_at=now,
        approved_by=approver,
        activated_at=now,
    )


@pytest.fixture
def at_0015():
    """The database migrated back to 0015_verifiers, then forward again after the test."""
    executor = MigrationExecutor(connection)
    executor.migrate([("recovery", "0015_verifiers")])
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def migrate_to_0016() -> None:
    executor = MigrationExecutor(connection)  # a fresh loader sees 0015 as the applied state
    executor.migrate([("recovery", "0016_raise_policy_floors")])


def test_a_policy_below_the_new_floors_fails_closed_until_it_is_raised(acme):
    stored_active(acme, LOW)
    with pytest.raises(PolicyInvalid):
        policy_active(acme)


@pytest.mark.usefixtures("at_0015")
def test_the_migration_raises_a_low_active_policy_to_the_floors_and_records_it(acme, globex):
    low = stored_active(acme, LOW)
    fine = stored_active(globex, DEFAULT)
    other = make_tenant()
    tampered = stored_active(other, LOW)
    PolicyVersion.objects.filter(pk=tampered.pk).update(source=LOW + "# edited in the database\n")

    migrate_to_0016()

    # acme: a new active version 2, the old one superseded, the values raised to the floors.
    low.refresh_from_db()
    assert (low.status, low.superseded_at is not None) == (PolicyStatus.SUPERSEDED, True)
    raised = PolicyVersion.objects.get(tenant=acme, status=PolicyStatus.ACTIVE)
    assert raised.number == 2 and raised.format == "yaml"
    assert (raised.created_by_id, raised.approved_by_id) == (low.created_by_id, low.approved_by_id)
    assert raised.source.startswith("# Raised by the Vouchsafe platform")
    assert yaml.safe_load(raised.source) == raised.document
    policy = policy_active(acme)  # passes every floor of today's code
    assert policy.number == 2
    t1, t2 = policy.requirements("T1", "unlock"), policy.requirements("T2", "unlock")
    assert (t1.cooling_off_seconds, t2.cooling_off_seconds) == (900, 14400)
    assert t2.s5_waives_cooling_off is False
    assert policy.requirements("T0", "exception").cooling_off_seconds == 86400
    assert t1.quarantine_seconds == 7 * 86400
    assert t1.accepted_classes == ("S1", "S2", "S3", "S5")
    # Nothing else moved: T0 still waits nothing and keeps its S5 waiver; the rest is as written.
    t0 = policy.requirements("T0", "unlock")
    assert (t0.cooling_off_seconds, t0.s5_waives_cooling_off) == (0, True)
    before = yaml.safe_load(LOW)
    assert raised.document["tier_rules"] == before["tier_rules"]
    assert raised.document["description"] == before["description"]
    assert (
        raised.document["defaults"]["artifact_lifetimes"]
        == before["defaults"]["artifact_lifetimes"]
    )

    [event] = events(acme, "policy.floor_raised")
    assert event.actor_type == "system" and event.actor_label == "platform"
    assert (event.target_id, event.target_repr) == (str(raised.pk), "policy v2 (active)")
    assert (event.data["from_version"], event.data["number"]) == (1, 2)
    assert event.data["sha256"] == raised.sha256
    changes = {change["path"]: change for change in event.data["changes"]}
    assert changes["$.tiers.T1.cooling_off_seconds"]["from"] == 600
    assert changes["$.tiers.T1.cooling_off_seconds"]["to"] == 900
    assert changes["$.tiers.T2.s5_waives_cooling_off"]["inherited_from"] == (
        "$.defaults.s5_waives_cooling_off"
    )
    assert changes["$.defaults.quarantine_seconds"]["rule"] == "R-04.quarantine_seconds"
    assert set(changes) == {
        "$.defaults.quarantine_seconds",
        "$.case_types.exception.cooling_off_seconds",
        "$.tiers.T1.cooling_off_seconds",
        "$.tiers.T1.accepted_classes",
        "$.tiers.T2.cooling_off_seconds",
        "$.tiers.T2.s5_waives_cooling_off",
    }
    assert verify_chain(acme.pk, acme.slug).intact

    # globex was already above the floors; the tampered one is left to fail closed.
    assert list(PolicyVersion.objects.filter(tenant=globex).values_list("pk", flat=True)) == [
        fine.pk
    ]
    assert not events(globex, "policy.floor_raised")
    tampered.refresh_from_db()
    assert tampered.status == PolicyStatus.ACTIVE
    assert not events(other, "policy.floor_raised")


# --- secrets in notes (R-49) ---------------------------------------------------------------


def test_a_masked_secret_in_a_note_is_recorded_as_a_policy_violation(acme):
    agent = staff(Role.AGENT, tenant=acme)
    case = case_open(
        actor=agent, account=make_account_with(acme), case_type="unlock", channel="phone"
    )
    note = note_add(actor=agent, case=case, text="Caller said password: Hunter2-Spring!")
    clean = note_add(actor=agent, case=case, text="Caller will ring back after lunch.")

    assert note.secrets_masked == 1 and "Hunter2" not in note.text
    [violation] = events(acme, "policy.violation")
    assert violation.data == {"code": "secret_in_notes", "note": note.pk, "masked": 1}
    assert violation.target_id == str(case.pk) and violation.actor_id == str(agent.pk)
    assert "Hunter2" not in str(violation.data)
    assert clean.secrets_masked == 0


# --- caller-dictated destinations (R-03) --------------------------------------------------


def test_a_caller_dictated_destination_is_refused_recorded_and_never_stored(acme):
    agent = staff(Role.AGENT, tenant=acme)
    account = make_account_with(acme)
    mobile = contact(account, "mobile", "+15550101234")
    case = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    mail.outbox.clear()

    with pytest.raises(PolicyDenied) as refused:
        challenge_send(
            actor=agent,
            case=case,
            contact_method=mobile,
            caller_supplied_destination="+447700900123",
        )

    assert refused.value.code == "evidence.caller_supplied_channel"
    assert not VerificationChallenge.objects.filter(case=case).exists()
    assert not mail.outbox
    [rejected] = events(acme, "verification.signal_rejected")
    assert rejected.data["reason"] == "caller_supplied_channel"
    assert rejected.target_id == str(case.pk)
    trail = AuditEvent.objects.filter(tenant=acme).values_list("data", flat=True)
    assert not any("900123" in str(data) for data in trail)
    assert RecoveryCase.objects.get(pk=case.pk).status == CaseStatus.COLLECTING_EVIDENCE


def test_a_blank_caller_destination_changes_nothing(acme):
    agent = staff(Role.AGENT, tenant=acme)
    account = make_account_with(acme)
    email = contact(account, "email", "owner@acme.example")
    case = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    challenge = challenge_send(
        actor=agent, case=case, contact_method=email, caller_supplied_destination="  "
    )
    assert challenge.contact_method_id == email.pk
