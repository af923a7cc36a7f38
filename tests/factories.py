"""Test data through the real services, so every fixture also writes its audit events."""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from integrations.delivery import webhook_outbox_sweep
from integrations.outbox import webhooks_derive
from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_step_up_verify, step_up_options
from recovery.cases.services.execution import case_execute
from recovery.models import ProtectedAccount
from recovery.notifications.models import NoticeStatus, OwnerNotice
from recovery.notifications.services import notice_send, notices_derive
from recovery.services import account_create
from tenants.apikeys import IssuedKey, apikey_create
from tenants.choices import AI_ASSISTANT_SCOPES, CaseType, Role, Scope, StaffPasskeyStatus
from tenants.models import (
    AlertRoute,
    DelegationGrant,
    Membership,
    ServiceProvider,
    StaffPasskey,
    Tenant,
    User,
)
from tenants.services import (
    grant_approve,
    grant_request,
    membership_create,
    provider_create,
    tenant_create,
    user_create,
)
from tenants.stepup import StepUpProof, step_up_verify

from .owner.softkey import SoftKey
from .staffkey import staff_passkey_enrol

PASSWORD = "correct horse battery staple"
_ids = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}-{timezone.now().strftime('%H%M%S%f')}"


def operator() -> User:
    user = User.objects.filter(username="test-operator").first()
    return user or User.objects.create_superuser(username="test-operator", password=PASSWORD)


def make_user(
    username: str | None = None, *, person_id: str | None = None, totp: bool = True
) -> User:
    user = user_create(
        actor=operator(),
        username=username or unique("user"),
        password=PASSWORD,
        person_id=person_id,
    )
    if totp:
        TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    return user


def make_tenant(slug: str | None = None) -> Tenant:
    slug = slug or unique("tenant")
    return Tenant.objects.filter(slug=slug).first() or tenant_create(
        actor=operator(), slug=slug, name=slug.title()
    )


def security_contact(tenant: Tenant, address: str) -> AlertRoute:
    """An active email route, as the migration carries over an earlier security contact (the
    dual-controlled way in is tested in tests/tenants/test_alert_routes.py)."""
    return AlertRoute.objects.create(
        tenant=tenant, kind="email", target=address, status="active", label="Security contact"
    )


def alerts_routed(tenant: Tenant) -> int:
    """What a worker does once an alert commits: derive the tenant's outbox rows, send them;
    how many were tried."""
    webhooks_derive(tenant_id=tenant.pk)
    return webhook_outbox_sweep()


def make_provider(slug: str | None = None) -> ServiceProvider:
    slug = slug or unique("msp")
    return ServiceProvider.objects.filter(slug=slug).first() or provider_create(
        actor=operator(), slug=slug, name=slug.title()
    )


def member(
    user: User, role: str, *, tenant: Tenant | None = None, provider: ServiceProvider | None = None
) -> Membership:
    return membership_create(
        actor=operator(), user=user, role=role, tenant=tenant, provider=provider
    )


def staff(
    role: str, *, tenant: Tenant | None = None, provider: ServiceProvider | None = None
) -> User:
    user = make_user()
    member(user, role, tenant=tenant, provider=provider)
    return user


def totp_token(user: User) -> str:
    """A token the user's TOTP device will accept now (never one it has already used)."""
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    now_t = totp.t()
    t = max(device.last_t + 1, now_t)  # the current step first: a margin before it expires
    assert t <= now_t + device.tolerance, "too many step-ups in one 30 s window for this device"
    totp.time = (t * device.step) + device.t0
    totp.drift = 0  # t already includes the device's drift
    return f"{totp.token():0{device.digits}d}"


_PASSKEYS: dict[int, SoftKey] = {}


def passkey_of(user: User) -> SoftKey:
    """The user's soft passkey, enrolled through the services on first use."""
    key = _PASSKEYS.get(user.pk)
    active = StaffPasskey.objects.filter(user=user, status=StaffPasskeyStatus.ACTIVE)
    if key is None or not active.filter(credential_id=key.id).exists():
        key = _PASSKEYS[user.pk] = staff_passkey_enrol(user)
    return key


def step_up(
    user: User, *, case: RecoveryCase | None = None, action: str = "approve"
) -> StepUpProof:
    """A fresh step-up of `user`: with `case`, their soft passkey's answer to a challenge issued
    for `action` ("approve" or "execute") on the case as it stands, verified as the console
    and the API verify it; without, a TOTP code (grants, policy activations)."""
    if case is None:
        return step_up_verify(user=user, token=totp_token(user))
    return case_step_up_verify(
        actor=user,
        case=case,
        action=action,
        credential_json=step_up_assertion(user, case=case, action=action),
    )


def step_up_assertion(user: User, *, case: RecoveryCase, action: str) -> str:
    """What the console or an API client posts as `step_up_assertion`: the user's soft passkey's
    answer to options just issued for `action` on `case`."""
    key = passkey_of(user)
    return key.get(step_up_options(actor=user, case=case, action=action))


def execute(case: RecoveryCase, actor: User) -> RecoveryCase:
    """`actor` executes `case` with a fresh passkey step-up for that execution (the floor)."""
    return case_execute(actor=actor, case=case, step_up=step_up(actor, case=case, action="execute"))


def notices_planned(tenant: Tenant) -> list[OwnerNotice]:
    """What a worker does once the tenant's events have committed: plan the owner notices
    they call for from the chain (`notices_derive`). The notices written, still pending."""
    return list(OwnerNotice.objects.filter(pk__in=notices_derive(tenant_id=tenant.pk)))


def notices_sent(tenant: Tenant) -> list[str]:
    """What the workers do once the tenant's events have committed: plan the owner notices,
    then send every pending one. Each notice's outcome ("sent", "failed"), oldest first."""
    notices_planned(tenant)
    pending = OwnerNotice.objects.filter(tenant=tenant, status=NoticeStatus.PENDING)
    return [notice_send(notice_id=pk) for pk in pending.order_by("pk").values_list("pk", flat=True)]


def api_key(
    tenant: Tenant, scopes: list[str] | None = None, *, kind: str = "integration"
) -> IssuedKey:
    """A key issued by a new tenant_admin through the real service (all scopes by default)."""
    if scopes is None:
        scopes = sorted(AI_ASSISTANT_SCOPES) if kind == "ai_assistant" else list(Scope.values)
    return apikey_create(
        actor=staff(Role.TENANT_ADMIN, tenant=tenant),
        tenant=tenant,
        name=unique("key"),
        kind=kind,
        scopes=scopes,
    )


def requested_grant(
    provider: ServiceProvider,
    tenant: Tenant,
    *,
    roles: tuple[str, ...] = (Role.AGENT,),
    tiers: tuple[str, ...] = ("T0",),
    days: int = 30,
) -> DelegationGrant:
    requester = staff(Role.TENANT_ADMIN, provider=provider)
    now = timezone.now()
    return grant_request(
        actor=requester,
        provider=provider,
        tenant=tenant,
        allowed_roles=list(roles),
        allowed_tiers=list(tiers),
        allowed_case_types=[CaseType.PASSWORD_RESET],
        valid_from=now - timedelta(minutes=1),
        valid_until=now + timedelta(days=days),
    )


def active_grant(provider: ServiceProvider, tenant: Tenant, **kwargs) -> DelegationGrant:
    grant = requested_grant(provider, tenant, **kwargs)
    admin = staff(Role.TENANT_ADMIN, tenant=tenant)
    return grant_approve(actor=admin, grant=grant, step_up=step_up(admin))


def make_account(tenant: Tenant, *, tier: str = "T0") -> ProtectedAccount:
    external_id = unique("ext")
    return account_create(
        actor=operator(),
        tenant=tenant,
        external_id=external_id,
        username=f"{external_id}@example.test",
        display_name=external_id,
        tier=tier,
    )


def make_account_with(tenant: Tenant, **attributes) -> ProtectedAccount:
    """An account with authoritative attributes (groups, admin_roles, mailbox_type, …), created
    through the import service as a system of record would."""
    from audit.context import Actor
    from recovery.imports import AccountRecord
    from recovery.services import accounts_import

    external_id = attributes.pop("external_id", None) or unique("ext")
    lists = {k: tuple(v) for k, v in attributes.items() if isinstance(v, list)}
    item = AccountRecord(
        line=1,
        external_id=external_id,
        username=f"{external_id}@example.test",
        display_name=external_id,
        **{**attributes, **lists},
    )
    accounts_import(actor=Actor.system("tests"), tenant=tenant, records=[item], source="tests")
    return ProtectedAccount.objects.for_tenant(tenant).get(external_id=external_id)
