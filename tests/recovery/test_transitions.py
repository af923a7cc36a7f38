"""The case lifecycle is one table (recovery/cases/transitions.py): complete, the only way a
status changes, refused outside it, the console's buttons derived from it, the docs' copy equal
to it; and the `expire` sweep that ends idle open cases."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db.models import signals
from django.db.models.functions import Now
from django.urls import reverse
from django.utils.module_loading import import_string

from audit.models import AuditEvent
from audit.registry import ACTIONS
from recovery.artifacts.models import ArtifactStatus, RecoveryArtifact
from recovery.cases.choices import CaseStatus
from recovery.cases.models import RecoveryCase
from recovery.cases.services import (
    case_cancel,
    case_expire_idle,
    case_expire_sweep,
    case_release_cooled,
)
from recovery.cases.services.execution import case_close
from recovery.cases.transitions import (
    INITIAL,
    PARTY_POLICY,
    TABLE,
    TRANSITIONS,
    Move,
    Party,
    case_move,
    table_markdown,
    transition_require,
)
from recovery.policy.errors import PolicyInvalid
from recovery.policy.rules import DEFAULT_POLICY_FILE
from recovery.policy.services import (
    policy_activation_approve,
    policy_activation_request,
    policy_draft_create,
)
from recovery.tasks import case_expire_sweep_task
from tenants.choices import Role
from tenants.exceptions import InvalidInput

from ..conftest import signed_in_client
from ..factories import execute, staff, step_up
from .casework import approved, submitted
from .challenges.helpers import open_case
from .execution.helpers import owner_email, ready_case

pytestmark = pytest.mark.django_db
ROOT = Path(settings.BASE_DIR)
DAY = timedelta(days=1)


# --- the table itself -------------------------------------------------------------------------


def test_every_status_is_in_the_table_and_every_open_status_can_end():
    reached = {target for t in TABLE for _source, target in t.edges}
    left = {source for t in TABLE for source, _target in t.edges if source is not None}
    assert set(CaseStatus) <= reached | left
    assert set(CaseStatus) == reached  # every status is entered by some move
    assert TRANSITIONS[Move.OPEN].edges == frozenset({(None, INITIAL)})
    assert set(TRANSITIONS) == set(Move)  # one row per move, none missing
    ends = {CaseStatus.CANCELLED, CaseStatus.EXPIRED}
    for status in (CaseStatus.COLLECTING_EVIDENCE, CaseStatus.PENDING_APPROVAL, CaseStatus.READY):
        assert {t for s, t in TRANSITIONS[Move.EXPIRE].edges if s == status} | {
            t for s, t in TRANSITIONS[Move.CANCEL].edges if s == status
        } == ends


def test_every_move_records_a_registered_action_and_names_real_functions():
    for transition in TABLE:
        assert transition.audit_action in ACTIONS, transition.move
        assert transition.parties, transition.move
        for name in transition.services:
            assert callable(import_string(name)), name
    for party, policy in PARTY_POLICY.items():
        if party not in (Party.OWNER, Party.SYSTEM):
            assert callable(import_string(policy)), party


# Every module that may move a case: the services, the verifiers, the owner's paths.
MOVERS = sorted(
    path
    for path in (ROOT / "recovery").rglob("*.py")
    if "migrations" not in path.parts and path.name != "transitions.py"
)


def _calls(tree: ast.AST, name: str) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if called == name:
                yield node


def _moves_named(node: ast.AST) -> set[str]:
    return {
        n.attr
        for n in ast.walk(node)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "Move"
    }


def test_every_status_change_in_the_code_is_a_move_of_the_table():
    """Enumerates the code: no module but transitions.py assigns a case's status or updates
    it in bulk; every `case_move`, `case_end`, `workflow_move` and `transition_require` names a
    Move; and every move the workflow makes is named somewhere (so the table holds no row
    nobody makes)."""
    named: set[str] = set()
    for path in MOVERS:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                for leaf in target.elts if isinstance(target, ast.Tuple) else [target]:
                    assert not (
                        isinstance(leaf, ast.Attribute)
                        and leaf.attr == "status"
                        and isinstance(leaf.value, ast.Name)
                        and "case" in leaf.value.id
                    ), f"{path}:{node.lineno} sets a case's status outside the table"
        source = path.read_text(encoding="utf-8")
        assert "require_status" not in source, path
        assert not re.search(r"RecoveryCase\.objects[^\n]*\n?[^\n]*\.update\(status=", source)
        for name in ("case_move", "case_end", "workflow_move", "transition_require"):
            for call in _calls(tree, name):
                if any(isinstance(arg, ast.Name) and arg.id == "move" for arg in call.args):
                    continue  # `case_end` handing its caller's move on
                moves = _moves_named(call)
                assert moves, f"{path}:{call.lineno} {name} names no Move"
                named |= moves
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Name)
                and node.value.id == "TRANSITIONS"
            ):
                named |= _moves_named(node)
    made_elsewhere = {Move.OPEN.name}  # a case is created in `collecting_evidence`
    assert named | made_elsewhere == {move.name for move in Move}


def test_the_status_changes_of_real_lifecycles_are_edges_of_the_table(acme):
    """Every status a save writes, through the services, is an edge of the table."""
    seen: list[tuple[str, str]] = []

    def watch(sender, instance, update_fields=None, **kwargs):
        if instance.pk and (update_fields is None or "status" in update_fields):
            before = RecoveryCase.objects.filter(pk=instance.pk).values_list("status", flat=True)
            if before and before[0] != instance.status:
                seen.append((before[0], instance.status))

    signals.pre_save.connect(watch, sender=RecoveryCase, dispatch_uid="transitions-watch")
    try:
        agent = staff(Role.AGENT, tenant=acme)
        executed = execute(_t0_ready(acme, agent), agent)
        case_close(actor=agent, case=executed, reason="done")
        t1 = submitted(acme, agent, ("S2", "S3"), groups=["finance"])
        cooled = approved(t1)
        RecoveryCase.objects.filter(pk=cooled.pk).update(cooling_off_until=cooled.created_at)
        case_cancel(actor=agent, case=case_release_cooled(case=cooled), reason="caller hung up")
    finally:
        signals.pre_save.disconnect(sender=RecoveryCase, dispatch_uid="transitions-watch")
    edges = {edge for t in TABLE for edge in t.edges}
    assert seen and set(seen) <= edges, set(seen) - edges
    assert {
        ("ready", "executed"),
        ("executed", "closed"),
        ("collecting_evidence", "pending_approval"),
        ("pending_approval", "cooling_off"),
        ("cooling_off", "ready"),
        ("ready", "cancelled"),
    } <= set(seen)


# --- refusals outside the table ---------------------------------------------------------------


def test_a_move_outside_the_table_is_refused_naming_the_current_and_needed_states(acme):
    setup = open_case(acme)
    with pytest.raises(InvalidInput) as refused:
        case_close(actor=setup.agent, case=setup.case, reason="nothing to close")
    assert refused.value.code == "case.wrong_state"
    assert "collecting evidence" in str(refused.value) and "executed" in str(refused.value)
    setup.case.refresh_from_db()
    assert setup.case.status == CaseStatus.COLLECTING_EVIDENCE

    cancelled = case_cancel(actor=setup.agent, case=setup.case, reason="wrong caller")
    with pytest.raises(InvalidInput) as again:
        case_cancel(actor=setup.agent, case=cancelled, reason="twice")
    assert again.value.code == "case.wrong_state"
    assert "cancelled" in str(again.value) and "pending approval" in str(again.value)


def test_an_edge_the_move_does_not_have_is_refused(acme):
    case = open_case(acme).case
    with pytest.raises(InvalidInput) as refused:
        case_move(case, Move.SUBMIT, CaseStatus.READY)  # submit leads to pending approval only
    assert refused.value.code == "case.wrong_state"
    assert case.status == CaseStatus.COLLECTING_EVIDENCE
    assert transition_require(case, Move.SUBMIT) is TRANSITIONS[Move.SUBMIT]
    for move in (Move.CLOSE, Move.EXECUTE, Move.APPROVE, Move.RELEASE, Move.RECORD_MANUAL_STEP):
        with pytest.raises(InvalidInput) as wrong:
            transition_require(case, move)
        assert wrong.value.code == "case.wrong_state"


# --- the console's buttons --------------------------------------------------------------------


def _buttons(client, case) -> set[str]:
    """The actions the page's "Next step" panel offers: its forms, and the link to decide."""
    body = client.get(f"/t/{case.tenant.slug}/cases/{case.pk}/").content.decode()
    match = re.search(r'<section class="panel" id="case-actions".*?</section>', body, re.S)
    panel = match.group(0) if match else ""
    base = f"/t/{case.tenant.slug}/cases/{case.pk}/"
    offered = set(re.findall(rf'<form method="post" action="{base}([a-z-]+)/"', panel))
    review = reverse("review-case", kwargs={"tenant": case.tenant.slug, "pk": case.pk})
    return offered | ({"decide"} if f'href="{review}"' in panel else set())


def _t0_ready(tenant, agent):
    case = ready_case(tenant, agent, case_type="password_reset")
    owner_email(case)
    return case


def _case_in(state: str, tenant, agent, approver):
    """A case of `agent` in `state`, approved by `approver` where it was approved at all."""
    if state == "collecting_evidence":
        return open_case(tenant, agent=agent).case
    if state == "pending_approval":
        return submitted(tenant, agent, ("S2", "S3"), groups=["finance"])
    if state == "ready":
        case = approved(submitted(tenant, agent, ("S2", "S3"), groups=["finance"]), approver)
        RecoveryCase.objects.filter(pk=case.pk).update(cooling_off_until=case.created_at)
        return case_release_cooled(case=case)
    if state == "executed":
        return execute(_t0_ready(tenant, agent), agent)
    assert state == "cancelled"
    return case_cancel(actor=agent, case=open_case(tenant, agent=agent).case, reason="gone")


# (state, who looks) -> the buttons: the table's moves from the state that the user's policy
# allows. `approver` approved the ready case; `supervisor` is another one; `agent` opened it.
EXPECTED = {
    ("collecting_evidence", "agent"): {"submit", "cancel"},
    ("collecting_evidence", "auditor"): set(),
    ("pending_approval", "agent"): {"cancel"},
    ("pending_approval", "supervisor"): {"decide", "cancel"},
    ("pending_approval", "auditor"): set(),
    ("ready", "agent"): {"execute", "cancel"},
    ("ready", "approver"): {"cancel"},
    ("ready", "supervisor"): {"execute", "cancel"},
    ("executed", "agent"): {"close"},
    ("cancelled", "agent"): set(),
}


@pytest.mark.parametrize("state", sorted({state for state, _who in EXPECTED}))
def test_the_case_page_shows_exactly_the_moves_the_table_allows_this_user(acme, state):
    people = {
        "agent": staff(Role.AGENT, tenant=acme),
        "approver": staff(Role.SUPERVISOR, tenant=acme),
        "supervisor": staff(Role.SUPERVISOR, tenant=acme),
        "auditor": staff(Role.AUDITOR, tenant=acme),
    }
    case = _case_in(state, acme, people["agent"], people["approver"])
    assert case.status == state
    for (expected_state, who), buttons in EXPECTED.items():
        if expected_state == state:
            assert _buttons(signed_in_client(people[who]), case) == buttons, (state, who)


# --- the docs ---------------------------------------------------------------------------------


def test_docs_table_is_the_code():
    text = (ROOT / "docs" / "recovery.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- transitions:start -->\n(.*?)\n<!-- transitions:end -->", text, re.S)
    assert match, "docs/recovery.md lost its transition table"
    assert match.group(1) == table_markdown()


# --- the expire sweep -------------------------------------------------------------------------


def _idle_for(case: RecoveryCase, age: timedelta) -> None:
    """Make `case` look unchanged for `age` (a fixture: nothing in the product does this)."""
    RecoveryCase.objects.filter(pk=case.pk).update(updated_at=Now() - age)


def _expired_events(case: RecoveryCase) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(tenant_id=case.tenant_id, action="case.expired").filter(
            target_id=str(case.pk)
        )
    )


def test_the_sweep_expires_an_idle_case_once_and_leaves_an_active_one(acme):
    idle, active = open_case(acme).case, open_case(acme).case
    _idle_for(idle, 15 * DAY)  # past the default 14 days
    _idle_for(active, 13 * DAY)

    assert case_expire_sweep_task() == 1
    idle.refresh_from_db()
    active.refresh_from_db()
    assert idle.status == CaseStatus.EXPIRED and idle.ended_at is not None
    assert active.status == CaseStatus.COLLECTING_EVIDENCE
    (event,) = _expired_events(idle)
    assert event.data["from"] == CaseStatus.COLLECTING_EVIDENCE
    assert event.data["idle_limit_seconds"] == 14 * 86_400
    assert event.actor_type == "system"
    assert _expired_events(active) == []

    assert case_expire_sweep() == 0  # delivered twice: nothing more
    _idle_for(idle, 30 * DAY)  # an ended case long unchanged is no idle open case
    assert case_expire_idle(case=idle).status == CaseStatus.EXPIRED
    assert len(_expired_events(idle)) == 1


def test_a_case_that_changed_since_it_was_picked_is_left_open(acme):
    case = open_case(acme).case
    assert case_expire_idle(case=case).status == CaseStatus.COLLECTING_EVIDENCE
    assert _expired_events(case) == []


def test_cooling_off_never_expires(acme):
    agent = staff(Role.AGENT, tenant=acme)
    case = approved(submitted(acme, agent, ("S2", "S3"), groups=["finance"]))
    assert case.status == CaseStatus.COOLING_OFF
    _idle_for(case, 60 * DAY)
    assert case_expire_sweep() == 0
    case.refresh_from_db()
    assert case.status == CaseStatus.COOLING_OFF


def test_the_sweep_revokes_the_expired_cases_artifacts(acme):
    agent = staff(Role.AGENT, tenant=acme)
    executed = execute(_t0_ready(acme, agent), agent)
    # A fixture row: an open case holding an active artifact (the sweep must not leave it).
    RecoveryCase.objects.filter(pk=executed.pk).update(status=CaseStatus.READY)
    _idle_for(executed, 15 * DAY)

    assert case_expire_sweep() == 1
    artifact = RecoveryArtifact.objects.get(case=executed)
    assert artifact.status == ArtifactStatus.REVOKED
    (event,) = _expired_events(executed)
    assert event.data["artifacts_revoked"] == 1


def _activate(tenant, text: str) -> None:
    author, approver = (staff(Role.TENANT_ADMIN, tenant=tenant) for _ in range(2))
    version = policy_draft_create(actor=author, tenant=tenant, text=text)
    policy_activation_request(actor=author, version=version)
    policy_activation_approve(actor=approver, version=version, step_up=step_up(approver))


def test_the_idle_limit_is_the_tenants_policy_value_per_tier(acme, globex):
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8").replace(
        "  max_failed_attempts: 5", "  case_idle_limit_seconds: 7200\n  max_failed_attempts: 5", 1
    )
    _activate(acme, text)
    short, default = open_case(acme).case, open_case(globex).case
    for case in (short, default):
        _idle_for(case, timedelta(hours=3))

    assert case_expire_sweep() == 1
    short.refresh_from_db()
    default.refresh_from_db()
    assert short.status == CaseStatus.EXPIRED
    assert default.status == CaseStatus.COLLECTING_EVIDENCE
    assert _expired_events(short)[0].data["idle_limit_seconds"] == 7200


@pytest.mark.parametrize("seconds", [60, 91 * 86_400])
def test_an_idle_limit_outside_the_platform_bounds_is_refused(acme, seconds):
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8").replace(
        "  max_failed_attempts: 5",
        f"  case_idle_limit_seconds: {seconds}\n  max_failed_attempts: 5",
        1,
    )
    author = staff(Role.TENANT_ADMIN, tenant=acme)
    with pytest.raises(PolicyInvalid) as refused:
        policy_draft_create(actor=author, tenant=acme, text=text)
    assert list(refused.value.field_errors) == ["$.defaults.case_idle_limit_seconds"]


def test_the_beat_schedule_runs_the_sweep():
    entry = settings.CELERY_BEAT_SCHEDULE["expire-idle-cases"]
    assert entry["task"] == case_expire_sweep_task.name == "recovery.tasks.case_expire_sweep_task"
