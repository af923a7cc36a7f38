"""The objects the API-wide tests address, built through the real services, one set per tenant.

`OBJECT_MAP` says which object fills each URL kwarg (`case_id` → a case, …); a kwarg can be
given a meaning for one app only with an `"<app>:<kwarg>"` entry (the audit API's `event_id` is
an audit event, elsewhere it is an ingested event). `BODIES` holds, per view and method, a
request body that passes input validation, so a write reaches its object lookup instead of
stopping at a 400. A route with a kwarg missing from `OBJECT_MAP` fails the matrix loudly.

Builders are lazy: only the objects some route needs are built, and each builder may ask for
others (an attachment needs its case).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls.converters import IntConverter, UUIDConverter
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.choices import Role
from tenants.models import Tenant, User

from .. import factories
from ..conftest import signed_in_client
from ..factories import unique
from ..integrations.siem_collector import ca_certificate_pem
from ..recovery.casework import contact, signal

# --- per-tenant objects ---------------------------------------------------------------------


@dataclass
class TenantObjects:
    """One tenant and the objects built in it so far (by builder name)."""

    tenant: Tenant
    admin: User
    agent: User
    built: dict[str, Any] = field(default_factory=dict)
    frozen: bool = False  # set once a shared setup is done: later builds would be rolled back

    @classmethod
    def create(cls) -> TenantObjects:
        tenant = factories.make_tenant()
        return cls(
            tenant=tenant,
            admin=factories.staff(Role.TENANT_ADMIN, tenant=tenant),
            agent=factories.staff(Role.AGENT, tenant=tenant),
        )

    def get(self, name: str) -> Any:
        """The object `name` (a key of BUILDERS), built on first use."""
        if name not in self.built:
            if self.frozen:
                raise AssertionError(
                    f"{name!r} was not built in the shared setup; build it there first."
                )
            self.built[name] = BUILDERS[name](self)
        return self.built[name]


def _account(objs: TenantObjects):
    """A T1 account (every signal class accepted, S4 among them) with the enrolment reference
    identity proofing checks against (R-05), a mobile and an email held for a year."""
    from recovery.models import ProtectedAccount

    account = factories.make_account_with(objs.tenant, groups=["finance"])
    ProtectedAccount.objects.filter(pk=account.pk).update(enrolment_reference=unique("enrol"))
    account.refresh_from_db()
    objs.built["mobile"] = contact(account)
    objs.built["manager_email"] = contact(account, "email", "manager@example.test")
    return account


def _case(objs: TenantObjects):
    from recovery.cases.services import case_open

    return case_open(
        actor=objs.agent, account=objs.get("account"), case_type="unlock", channel="phone"
    )


def _evidence(objs: TenantObjects):
    """An accepted S2, produced by its verifier (a code emailed and read back)."""
    return signal(objs.get("case"), objs.agent, "S2")


def _attachment(objs: TenantObjects):
    from recovery.cases.services.attachments import attachment_add

    return attachment_add(
        actor=objs.agent,
        case=objs.get("case"),
        name="callback-log.txt",
        content=b"Called the number on file; the user confirmed the code.\n",
    )


def _note(objs: TenantObjects):
    from recovery.cases.services.attachments import note_add

    return note_add(actor=objs.agent, case=objs.get("case"), text="Called back on the HR number.")


def _policy_version(objs: TenantObjects):
    from recovery.policy.services import policy_draft_create

    return policy_draft_create(actor=objs.admin, tenant=objs.tenant, text=_policy_text())


def _webhook_subscription(objs: TenantObjects):
    from integrations.choices import WebhookEventType
    from integrations.services import webhook_subscription_create

    with override_settings(WEBHOOK_ALLOW_PRIVATE_ADDRESSES=True):  # no DNS lookup in tests
        subscription, _secret = webhook_subscription_create(
            actor=objs.admin,
            tenant=objs.tenant,
            url="https://hooks.example.test/vouchsafe",
            event_types=list(WebhookEventType.values),
        )
    return subscription


def _webhook_delivery(objs: TenantObjects):
    """The outbox row a subscribed event makes (its send waits for a commit that never comes)."""
    from integrations.models import WebhookDelivery
    from integrations.outbox import webhooks_derive
    from recovery.cases.services import case_open

    subscription = objs.get("webhook_subscription")
    account = factories.make_account(objs.tenant)
    case_open(actor=objs.agent, account=account, case_type="unlock", channel="phone")
    webhooks_derive(tenant_id=objs.tenant.pk)  # what the worker does once it has committed
    delivery = (
        WebhookDelivery.objects.for_tenant(objs.tenant).filter(subscription=subscription).first()
    )
    assert delivery is not None, "opening a case wrote no delivery for a subscription to it"
    return delivery


def _ingested_event(objs: TenantObjects):
    from integrations.services import event_ingest

    event, _created = event_ingest(
        actor=objs.admin,
        tenant=objs.tenant,
        event_type="sim_change",
        account_external_id=objs.get("account").external_id,
        occurred_at=timezone.now() - timedelta(hours=1),
        source="tests",
        external_id=factories.unique("evt"),
        data={"phone_last4": "0001"},
    )
    return event


def _audit_event(objs: TenantObjects):
    from audit.models import AuditEvent

    objs.get("case")
    return AuditEvent.objects.filter(tenant=objs.tenant).order_by("-seq").first()


def _api_key(objs: TenantObjects):
    return factories.api_key(objs.tenant).key


def _grant(objs: TenantObjects):
    return factories.active_grant(factories.make_provider(), objs.tenant)


def _provider(objs: TenantObjects):
    return factories.make_provider()


def _membership(objs: TenantObjects):
    from tenants.models import Membership

    return Membership.objects.for_tenant(objs.tenant).get(user=objs.agent)


def _challenge(objs: TenantObjects):
    """A one-time code sent by email (Django's test outbox) to a contact held before the case."""
    from recovery.challenges.services import challenge_send

    objs.get("account")
    return challenge_send(
        actor=objs.agent, case=objs.get("case"), contact_method=objs.built["manager_email"]
    )


def _referee(objs: TenantObjects):
    """A trusted referee of the tenant, certified by its admin (R-09), party to no case."""
    from tenants.models import Membership
    from tenants.services import referee_certify

    user = factories.staff(Role.TRUSTED_REFEREE, tenant=objs.tenant)
    referee_certify(
        actor=objs.admin,
        membership=Membership.objects.get(user=user, tenant=objs.tenant),
        until=timezone.now() + timedelta(days=30),
    )
    return user


def _attended_session(objs: TenantObjects):
    """An attended session the referee opened on the case (coercion question unanswered)."""
    from recovery.proofing.attended import attended_start

    return attended_start(
        actor=objs.get("referee"),
        case=objs.get("case"),
        mode="remote_video",
        reason="The caller lost every device; no code channel remains.",
    )


def _proofing_session(objs: TenantObjects):
    """An identity-proofing session started at the development provider, awaiting its verdict."""
    from recovery.proofing.services import proofing_start

    return proofing_start(actor=objs.agent, case=objs.get("case"), provider="dev").session


def _idp_config(objs: TenantObjects):
    """An OpenID Connect provider for account owners, drafted and waiting for a second admin
    (no network: drafting checks the settings, approval fetches the discovery document)."""
    from recovery.owner.idp_config import idp_config_draft

    return idp_config_draft(
        actor=objs.admin,
        tenant=objs.tenant,
        issuer="https://idp.example.test",
        client_id="vouchsafe-owner-portal",
        client_secret_env="VOUCHSAFE_TEST_IDP_SECRET",
        allowed_amr=["hwk", "mfa"],
    )


def _connector_change(objs: TenantObjects):
    """A connector change the tenant's admin proposed, waiting for a second admin."""
    from recovery.connectors.services import connector_change_request

    return connector_change_request(
        actor=objs.admin, tenant=objs.tenant, kind="manual", settings={"console": "entra"}
    )


def _alert(objs: TenantObjects):
    """An open alert of the tenant's security queue (raised on its case)."""
    from recovery.cases.services.base import alert_raise
    from recovery.detection.models import Alert

    alert_raise(objs.get("case"), "repeat_case")
    return Alert.objects.filter(tenant=objs.tenant).latest("pk")


def _alert_route(objs: TenantObjects):
    """A route the tenant's admin proposed, waiting for a second admin."""
    from tenants.routes import route_propose

    return route_propose(
        actor=objs.admin, tenant=objs.tenant, kind="email", target="soc@matrix.example.test"
    )


BUILDERS: dict[str, Callable[[TenantObjects], Any]] = {
    "account": _account,
    "case": _case,
    "evidence": _evidence,
    "attachment": _attachment,
    "note": _note,
    "policy_version": _policy_version,
    "webhook_subscription": _webhook_subscription,
    "webhook_delivery": _webhook_delivery,
    "ingested_event": _ingested_event,
    "audit_event": _audit_event,
    "api_key": _api_key,
    "grant": _grant,
    "membership": _membership,
    "provider": _provider,
    "challenge": _challenge,
    "referee": _referee,
    "attended_session": _attended_session,
    "proofing_session": _proofing_session,
    "idp_config": _idp_config,
    "connector_change": _connector_change,
    "alert_route": _alert_route,
    "alert": _alert,
}

# URL kwarg (or "<app>:<kwarg>", which wins for views of that app) -> builder name, with
# ".<attribute>" when the URL carries something other than the object's pk.
OBJECT_MAP: dict[str, str] = {
    "account_id": "account",
    "case_id": "case",
    "evidence_id": "evidence",
    "attachment_id": "attachment",
    "note_id": "note",
    "version_id": "policy_version",
    "subscription_id": "webhook_subscription",
    "delivery_id": "webhook_delivery",
    "event_id": "ingested_event",
    "audit:event_id": "audit_event",
    "key_id": "api_key",
    "grant_id": "grant",
    "membership_id": "membership",
    "challenge_id": "challenge",
    "session_id": "attended_session",
    "provider": "provider.slug",
    "config_id": "idp_config",
    "change_id": "connector_change",
    "route_id": "alert_route",
    "alert_id": "alert",
}


def builder_for(kwarg: str, app: str) -> str | None:
    """The builder that fills `kwarg` for a view of `app`, or None if the map lacks it."""
    entry = OBJECT_MAP.get(f"{app}:{kwarg}") or OBJECT_MAP.get(kwarg)
    return entry.partition(".")[0] if entry else None


def url_value(objs: TenantObjects, kwarg: str, app: str) -> Any:
    """What `kwarg` is set to in a URL addressing `objs`' object (its pk unless mapped)."""
    entry = OBJECT_MAP.get(f"{app}:{kwarg}") or OBJECT_MAP[kwarg]
    name, _, attribute = entry.partition(".")
    return getattr(objs.get(name), attribute or "pk")


def missing_value(converter: Any) -> Any:
    """A value of the converter's type that names no object in any tenant."""
    if isinstance(converter, UUIDConverter):
        return uuid.UUID(int=0xDEAD_BEEF)
    if isinstance(converter, IntConverter):
        return 2_000_000_000
    return "no-such-object"


# --- request bodies -------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    data: Any = None
    format: str = "json"

    def kwargs(self) -> dict[str, Any]:
        if self.data is None:
            return {"format": self.format}
        return {"data": self.data, "format": self.format}


def _evidence_body(objs: TenantObjects) -> Body:
    """What an old client sent to the removed evidence endpoint (410 whatever the body)."""
    objs.get("account")
    return Body(
        {
            "signal_class": "S3",
            "method": "manager_attestation",
            "verified": True,
            "contact_method_id": objs.built["manager_email"].pk,
        }
    )


def _challenge_body(objs: TenantObjects) -> Body:
    objs.get("account")
    return Body({"contact_method_id": objs.built["manager_email"].pk})


def _upload_body(objs: TenantObjects) -> Body:
    upload = SimpleUploadedFile("notes.txt", b"The caller answered on the number on file.\n")
    return Body({"file": upload}, format="multipart")


def _policy_text() -> str:
    from recovery.policy.rules import DEFAULT_POLICY_FILE

    return DEFAULT_POLICY_FILE.read_text(encoding="utf-8")


def _summary_body(objs: TenantObjects) -> Body:
    return Body(
        {
            "text": "The caller's story matches the HR record.",
            "model_id": "helpdesk-assistant",
            "model_version": "2025-01",
            "prompt_sha256": hashlib.sha256(b"prompt").hexdigest(),
            "retrieved_document_ids": ["kb-12"],
        }
    )


# "<ViewClass>.<METHOD>" -> a body that passes the view's input validation in `objs`' tenant.
# Methods without an entry are sent with no body.
BODIES: dict[str, Callable[[TenantObjects], Body]] = {
    # a GET's data is its query: the options of a step-up for approving
    "CaseStepUpOptionsApi.GET": lambda objs: Body({"action": "approve"}),
    "CaseListApi.POST": lambda objs: Body(
        {"account_id": objs.get("account").pk, "case_type": "unlock"}
    ),
    "CaseEvidenceApi.POST": _evidence_body,
    "CaseContextApi.POST": lambda objs: Body(
        {"topic": "ticket_number", "statement": "The caller quoted INC-4711."}
    ),
    "CaseCancelApi.POST": lambda objs: Body({"reason": "duplicate of another case"}),
    "CaseCloseApi.POST": lambda objs: Body({"reason": "the owner set a new password"}),
    "CaseManualStepApi.POST": lambda objs: Body({"path": "Entra admin center > Users > reset"}),
    # the case was never executed, so nothing is pending: refused after the case lookup
    "CaseContainmentRecordApi.POST": lambda objs: Body(
        {"step": f"sessions_revoke:{objs.get('account').username}"}
    ),
    "CaseRevertRecordApi.POST": lambda objs: Body({"step": "manual_step:1"}),
    "CaseDelegationRecordApi.POST": lambda objs: Body({"step": "grant"}),
    "AccountUnfreezeApi.POST": lambda objs: Body(
        {"reason": "Reviewed with the owner; nothing left to revert.", "otp": "000000"}
    ),
    "CaseNoteApi.POST": lambda objs: Body({"text": "Called back on the HR number."}),
    "CaseSummaryApi.POST": _summary_body,
    "CaseApproveApi.POST": lambda objs: Body({"reason": "manager confirmed", "otp": "000000"}),
    "CaseDenyApi.POST": lambda objs: Body({"reason": "story does not match", "otp": "000000"}),
    "CaseAttachmentListApi.POST": _upload_body,
    "PolicyValidateApi.POST": lambda objs: Body({"text": _policy_text()}),
    "PolicySimulateApi.POST": lambda objs: Body({"text": _policy_text(), "days": 30}),
    "PolicyVersionListApi.POST": lambda objs: Body({"text": _policy_text()}),
    "PolicyActivationApproveApi.POST": lambda objs: Body({"otp": "000000"}),
    "CaseChallengeListApi.POST": _challenge_body,
    "ChallengeVerifyApi.POST": lambda objs: Body({"code": "00000000"}),
    "CaseRecoveryCodeApi.POST": lambda objs: Body({"code": "0000-0000-00000"}),
    "CaseProofingStartApi.POST": lambda objs: Body({"provider": "dev"}),
    "CaseAttendedStartApi.POST": lambda objs: Body(
        {"mode": "remote_video", "reason": "The caller lost every device."}
    ),
    "AttendedCoercionApi.POST": lambda objs: Body({"observed": False}),
    "AttendedCompleteApi.POST": lambda objs: Body(
        {
            "documents_presented": ["passport"],
            "steps_completed": ["document check", "live challenge"],
            "live_challenge_passed": True,
        }
    ),
    "AttendedFraudApi.POST": lambda objs: Body({"reason": "A second voice prompted the caller."}),
    "OwnerIdpConfigListApi.POST": lambda objs: Body(
        {
            "issuer": "https://idp.example.test",
            "client_id": "vouchsafe-owner-portal",
            "client_secret_env": "VOUCHSAFE_TEST_IDP_SECRET",
            "allowed_amr": ["hwk"],
        }
    ),
    "OwnerIdpConfigApproveApi.POST": lambda objs: Body({"otp": "000000"}),
    "OwnerIdpConfigRetireApi.POST": lambda objs: Body({"reason": "replaced by another provider"}),
    "ConnectorApi.POST": lambda objs: Body({"kind": "manual", "settings": {"console": "generic"}}),
    "ConnectorChangeApproveApi.POST": lambda objs: Body({"otp": "000000"}),
    "ConnectorChangeRejectApi.POST": lambda objs: Body({"reason": "the host is not ours"}),
    "AlertResolveApi.POST": lambda objs: Body(
        {"outcome": "false_positive", "reason": "the owner called twice, both genuine"}
    ),
    "IncidentApi.POST": lambda objs: Body(
        {"switch": "freeze", "reason": "suspected help-desk social engineering", "otp": "000000"}
    ),
    "AlertRouteListApi.POST": lambda objs: Body({"kind": "email", "target": "it@matrix.test"}),
    "AlertRouteApproveApi.POST": lambda objs: Body({"otp": "000000"}),
    "AlertRouteRemoveApi.POST": lambda objs: Body({"reason": "the mailbox is retired"}),
    "AlertRouteRejectApi.POST": lambda objs: Body({"reason": "not our security mailbox"}),
    "SiemDestinationApi.PUT": lambda objs: Body(
        {
            "host": "siem.example.test",
            "port": 6514,
            "format": "cef",
            "ca_pem": ca_certificate_pem("Matrix Test CA"),
        }
    ),
}


def body_for(view_class: type, method: str, objs: TenantObjects) -> Body:
    make = BODIES.get(f"{view_class.__name__}.{method}")
    return make(objs) if make else Body()


# --- clients --------------------------------------------------------------------------------


def staff_session(user: User) -> APIClient:
    """An API client on `user`'s verified staff session (password + TOTP), sending CSRF."""
    browser = signed_in_client(user)
    browser.get("/")  # a page with a form sets the CSRF cookie
    client = APIClient(enforce_csrf_checks=True)
    client.cookies = browser.cookies
    client.credentials(HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value)
    return client


def broad_staff(tenant: Tenant) -> User:
    """A member of `tenant` holding every role, so a role check never hides an object lookup."""
    user = factories.make_user()
    for role in Role.values:
        factories.member(user, role, tenant=tenant)
    return user


# --- routes ---------------------------------------------------------------------------------

TENANT_PREFIX = "api/v1/t/"
HANDLERS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Route:
    """One URL pattern of the project, flattened: its full route and its view."""

    route: str  # e.g. "api/v1/t/<slug:tenant>/cases/<int:case_id>/"
    view_class: type | None
    converters: dict[str, Any]
    plain: bool  # every level is a path() route (not a regex), so the matrix can fill it
    actions: tuple[str, ...] | None = None  # a viewset's method -> action mapping, if any

    @property
    def is_tenant_route(self) -> bool:
        return self.route.replace("^", "").startswith(TENANT_PREFIX)

    @property
    def app(self) -> str:
        return self.view_class.__module__.split(".")[0] if self.view_class else ""

    @property
    def methods(self) -> tuple[str, ...]:
        if self.actions is not None:
            return tuple(m.upper() for m in self.actions if m in HANDLERS)
        return tuple(m.upper() for m in HANDLERS if callable(getattr(self.view_class, m, None)))

    @property
    def id_kwargs(self) -> tuple[str, ...]:
        return tuple(name for name in self.converters if name != "tenant")

    def path(self, values: dict[str, Any]) -> str:
        """The URL with each `<converter:name>` replaced by `values[name]`."""

        def fill(match: re.Match) -> str:
            name = match.group(2)
            return self.converters[name].to_url(values[name])

        return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, self.route)

    def __str__(self) -> str:
        return "/" + self.route


def all_routes() -> list[Route]:
    """Every URL pattern of the project, from the URLconf (recursively through includes)."""
    from django.urls import URLResolver, get_resolver
    from django.urls.resolvers import RoutePattern

    def walk(patterns, prefix: str, converters: dict[str, Any], plain: bool):
        for pattern in patterns:
            level_plain = plain and isinstance(pattern.pattern, RoutePattern)
            route = prefix + str(pattern.pattern)
            merged = {**converters, **getattr(pattern.pattern, "converters", {})}
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route, merged, level_plain)
                continue
            callback = pattern.callback
            view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
            actions = getattr(callback, "actions", None)
            yield Route(
                route=route,
                view_class=view_class,
                converters=merged,
                plain=level_plain,
                actions=tuple(actions) if actions else None,
            )

    return list(walk(get_resolver().url_patterns, "", {}, True))


def tenant_api_routes() -> list[Route]:
    """The routes under /api/v1/t/<tenant>/ whose view is a TenantApiView (the matrix's rows)."""
    from api.base import TenantApiView

    return [
        route
        for route in all_routes()
        if route.is_tenant_route
        and isinstance(route.view_class, type)
        and issubclass(route.view_class, TenantApiView)
    ]


def required_scope(view_class: type, method: str, held, query=None) -> str | None:
    """The scope `view_class` asks for `method` (its own answer) of a key holding `held`, or
    of a staff session when `held` is None, for a request with `query` parameters."""
    from types import SimpleNamespace

    from tenants.models import ApiKey

    view = view_class()
    view.args, view.kwargs = (), {}
    view.request = SimpleNamespace(
        auth=ApiKey(scopes=sorted(held)) if held is not None else None,
        method=method,
        user=None,
        query_params=query or {},
    )
    return view.required_scope(method)
