"""Idempotent demo data: DeskCo (MSP), tenants acme and globex, staff in every role, and demo
cases whose evidence each verifier produced (a code read back, a manager's attestation, a
development proofing provider's verdict, an attended session). Under the development settings
acme's connector is Entra ID, reaching the fake that scripts/fake_idps.py serves."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import mail
from django.core.management.base import BaseCommand, CommandError
from django.http import HttpResponse
from django.test.utils import override_settings
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.context import Actor
from recovery.cases.models import RecoveryCase
from recovery.cases.services import approval_decide, case_cancel, case_open, case_submit
from recovery.challenges.services import (
    attestation_confirm,
    attestation_request,
    challenge_send,
    challenge_verify,
)
from recovery.connectors.choices import ConnectorKind
from recovery.connectors.models import ConnectorChange, ConnectorChangeStatus
from recovery.connectors.selectors import connector_config_get
from recovery.connectors.services import connector_change_approve, connector_change_request
from recovery.connectors.validation import validate_settings
from recovery.imports import AccountRecord, ContactRecord
from recovery.models import ContactMethod, ProtectedAccount
from recovery.owner.codes import code_display, code_set_current, codes_issue
from recovery.owner.enrolment import EnrolmentRefused, enrolment_link_open, enrolment_link_send
from recovery.owner.idp_config import idp_config_active, idp_config_approve, idp_config_draft
from recovery.proofing.attended import (
    attended_coercion_answer,
    attended_complete,
    attended_start,
)
from recovery.proofing.providers import DevProofingProvider, provider_get
from recovery.proofing.services import proofing_start, proofing_verdict_receive
from recovery.services import accounts_import
from tenants.apikeys import apikey_authenticate, apikey_create
from tenants.choices import (
    AI_ASSISTANT_SCOPES,
    EXPLICIT_GRANT_SCOPES,
    CaseType,
    GrantStatus,
    PrincipalKind,
    Role,
    RouteKind,
    Scope,
)
from tenants.models import (
    AlertRoute,
    DelegationGrant,
    Membership,
    ServiceProvider,
    Tenant,
    User,
)
from tenants.otp import backup_codes_issue
from tenants.rls import system_scope
from tenants.routes import route_approve, route_propose
from tenants.services import (
    grant_approve,
    grant_request,
    membership_create,
    platform_operator_bootstrap,
    provider_create,
    referee_certify,
    tenant_create,
    user_create,
)
from tenants.stepup import StepUpProof, step_up_verify

TENANTS = {"acme": "Acme Corporation", "globex": "Globex Industries"}
PROVIDER = ("deskco", "DeskCo Managed Services")
# username -> (organisation slug, roles)
STAFF: dict[str, tuple[str, list[str]]] = {
    "acme-admin": ("acme", [Role.TENANT_ADMIN]),
    "acme-admin2": ("acme", [Role.TENANT_ADMIN]),
    "acme-agent": ("acme", [Role.AGENT]),
    "acme-supervisor": ("acme", [Role.SUPERVISOR]),
    "acme-security": ("acme", [Role.SECURITY_OFFICER]),
    "acme-security2": ("acme", [Role.SECURITY_OFFICER]),
    "acme-security3": ("acme", [Role.SECURITY_OFFICER]),
    "acme-auditor": ("acme", [Role.AUDITOR]),
    # Reads and exports the trail; acknowledges an integrity finding with a passkey.
    "acme-audit-admin": ("acme", [Role.AUDIT_ADMIN]),
    # The second audit admin a purge of the trail needs (dual authorisation, R-48).
    "acme-audit-admin2": ("acme", [Role.AUDIT_ADMIN]),
    # Runs attended identity-proofing sessions (S4, R-09); certified by acme-admin below.
    "acme-referee": ("acme", [Role.TRUSTED_REFEREE]),
    # No staff role: the manager of acme's demo accounts, who attests (S3) from this sign-in.
    "acme-manager": ("acme", []),
    "globex-admin": ("globex", [Role.TENANT_ADMIN]),
    "globex-agent": ("globex", [Role.AGENT]),
    "globex-supervisor": ("globex", [Role.SUPERVISOR]),
    "globex-security": ("globex", [Role.SECURITY_OFFICER]),
    "globex-auditor": ("globex", [Role.AUDITOR]),
    "deskco-admin": ("deskco", [Role.TENANT_ADMIN]),
    "deskco-agent1": ("deskco", [Role.AGENT]),
    "deskco-agent2": ("deskco", [Role.AGENT]),
    "deskco-supervisor": ("deskco", [Role.SUPERVISOR]),
}
# external id, username, display name, authoritative attributes (the tier follows from them).
# Every account also gets an enrolment reference and, in acme, E1000 as its manager.
MANAGER = ("E1000", "acme-manager")  # the manager's account, and their staff sign-in
ACCOUNTS: dict[str, list[tuple[str, str, str, dict[str, Any]]]] = {
    "acme": [
        ("E1000", "maria@acme.example", "Maria Manager", {}),
        ("E1001", "jdoe@acme.example", "Jane Doe", {}),
        ("E1002", "cfo@acme.example", "Carla Finch (CFO)", {"groups": ("Finance",)}),
        ("E1003", "it-admin@acme.example", "Ian Admin", {"admin_roles": ("Global Admin",)}),
        (
            "E1004",
            "payroll@acme.example",
            "Payroll mailbox",
            # its registered owner (Pat) approves access to it in the owner portal (issue 14)
            {"mailbox_type": "shared", "mailbox_owner_external_id": "E1008"},
        ),
        ("E1005", "sam@acme.example", "Sam Sales", {}),
        ("E1006", "fiona@acme.example", "Fiona Finch", {"groups": ("Finance",)}),
        ("E1007", "tom@acme.example", "Tom Treasury", {"groups": ("Finance",)}),
        ("E1008", "pat@acme.example", "Pat Payroll", {"groups": ("Payroll",)}),
        ("E1009", "rita@acme.example", "Rita Rivers", {"groups": ("Executives",)}),
    ],
    "globex": [
        ("G2001", "hank@globex.example", "Hank Scorpio", {"groups": ("Executives",)}),
        ("G2002", "frank@globex.example", "Frank Grimes", {}),
    ],
}
CONTACTS_SINCE = datetime(2023, 1, 1, tzinfo=UTC)
# The tenant whose recoveries go through the development Entra ID fake (settings.FAKE_IDPS), and
# the settings that say where the fake is: the seed follows them when its port moves.
CLOUD_TENANT = "acme"
FAKE_ADDRESS = ("authority_host", "graph_url", "ca_bundle")
# Owner portal demo: an owner who saved recovery codes long ago, and one who gets a fresh
# enrolment link on every run (to enrol a passkey in the browser).
ENROLLED_OWNER = "E1005"
INVITED_OWNER = "E1000"
# A referee's certification is renewed when a seed finds less than this left of it.
CERTIFICATION_RENEW = timedelta(days=30)
# name -> (tenant, kind, scopes); the tokens are shown once, so the file is their only copy.
API_KEYS: dict[str, tuple[str, str, list[str]]] = {
    "acme-integration": (
        "acme",
        PrincipalKind.INTEGRATION,
        sorted(set(Scope.values) - {Scope.CASES_DRAFT} - EXPLICIT_GRANT_SCOPES),
    ),
    "globex-integration": (
        "globex",
        PrincipalKind.INTEGRATION,
        sorted(set(Scope.values) - {Scope.CASES_DRAFT} - EXPLICIT_GRANT_SCOPES),
    ),
    "acme-ai-assistant": ("acme", PrincipalKind.AI_ASSISTANT, sorted(AI_ASSISTANT_SCOPES)),
}  # long before any demo case: no quarantine


def demo_records(
    rows: list[tuple[str, str, str, dict[str, Any]]], manager: User | None = None
) -> list[AccountRecord]:
    """The system of record's view of the demo accounts: attributes, enrolment references
    and contacts held since 2023; with `manager`, their manager (an account of the same
    person as that staff user) and the manager's address. The identity provider fakes
    (scripts/fake_idps.py) hold the same accounts."""
    records = []
    for number, (external_id, username, name, attributes) in enumerate(rows, start=1):
        contacts = [
            ContactRecord(
                kind="mobile", value=f"+1555010{number:04d}", registered_at=CONTACTS_SINCE
            ),
            ContactRecord(kind="email", value=f"home.{username}", registered_at=CONTACTS_SINCE),
        ]
        extra: dict[str, Any] = {}
        if manager is not None and external_id == MANAGER[0]:
            extra["person_id"] = manager.person_id
        elif manager is not None:
            extra["manager_external_id"] = MANAGER[0]
            contacts.append(
                ContactRecord(kind="manager", value=manager.email, registered_at=CONTACTS_SINCE)
            )
        records.append(
            AccountRecord(
                line=number,
                external_id=external_id,
                username=username,
                display_name=name,
                email=username,
                enrolment_reference=f"ENR-{external_id}",
                idp_subject=username,  # the subject the demo OpenID Provider signs in
                **attributes,
                **extra,
                contacts=tuple(contacts),
            )
        )
    return records


@contextmanager
def _owner_inbox() -> Iterator[list[mail.EmailMessage]]:
    """The demo plays the account owner (and the manager): the messages sent in this block
    land in a local inbox it reads, instead of the configured email backend."""
    saved = getattr(mail, "outbox", None)
    mail.outbox = []
    try:
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
            yield mail.outbox
    finally:
        if saved is None:
            del mail.outbox
        else:
            mail.outbox = saved


def _found(pattern: str, inbox: list[mail.EmailMessage]) -> str:
    match = re.search(pattern, inbox[-1].body) if inbox else None
    if match is None:
        raise CommandError(f"seed_demo: the message it waited for never came ({pattern}).")
    return match.group(1)


class Command(BaseCommand):
    help = (
        "Create demo tenants, an MSP, staff in every role with TOTP enrolled, and sample "
        "accounts. Safe to run again. Writes every login to var/demo-credentials.json."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.VOUCHSAFE_ENVIRONMENT == "production":
            raise CommandError("seed_demo refuses to run with production settings.")
        path = Path(settings.DEMO_CREDENTIALS_PATH)
        known = json.loads(path.read_text()) if path.exists() else {}
        with system_scope():
            credentials = self._seed(
                known.get("users", {}), known.get("api_keys", {}), known.get("owners", {})
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(credentials, indent=2))
        path.chmod(0o600)
        self.stdout.write(self.style.SUCCESS(f"Demo data ready. Logins: {path}"))

    def _seed(
        self,
        known_users: dict[str, dict],
        known_keys: dict[str, dict],
        known_owners: dict[str, Any],
    ) -> dict[str, Any]:
        operator, users = self._operator(known_users), {}
        tenants = {
            slug: Tenant.objects.filter(slug=slug).first()
            or tenant_create(actor=operator, slug=slug, name=name)
            for slug, name in TENANTS.items()
        }
        provider = ServiceProvider.objects.filter(slug=PROVIDER[0]).first() or provider_create(
            actor=operator, slug=PROVIDER[0], name=PROVIDER[1]
        )
        users["platform"] = self._login(operator, known_users, "platform", ["platform_operator"])
        for username, (org, roles) in STAFF.items():
            user = User.objects.filter(username=username).first() or user_create(
                actor=operator,
                username=username,
                password=secrets.token_urlsafe(12),
                email=f"{username}@{org}.example",
            )
            for role in roles:
                scope = {"tenant": tenants[org]} if org in tenants else {"provider": provider}
                if not Membership.objects.filter(user=user, role=role, **scope).exists():
                    membership_create(actor=operator, user=user, role=role, **scope)
            users[username] = self._login(user, known_users, org, roles)
        self._grant(provider, tenants["acme"])
        self._certify_referees(tenants, users)
        manager = User.objects.get(username=MANAGER[1])
        for slug, rows in ACCOUNTS.items():
            accounts_import(
                actor=Actor.system("seed_demo"),
                tenant=tenants[slug],
                records=demo_records(rows, manager if slug == "acme" else None),
                source="demo-hris",
            )
        keys = self._api_keys(tenants, known_keys)
        # Before the first cases: an approved demo case was approved for this connector.
        connector = self._cloud_connector(tenants[CLOUD_TENANT])
        self.stdout.write(f"Connector of {CLOUD_TENANT}: {connector}")
        self._security_contact(tenants["acme"])
        if not RecoveryCase.objects.for_tenant(tenants["acme"]).exists():
            self._cases(tenants["acme"])
        owners = self._owner_portal(tenants["acme"], known_owners)
        return {
            "note": "Demo only. Sign in at /login/ with username + password, then the current "
            "TOTP code for totp_secret (or one backup code). API: "
            "Authorization: Bearer <token> on /api/v1/t/<tenant>/ (docs at /api/v1/docs/).",
            "tenants": list(TENANTS),
            "provider": PROVIDER[0],
            "grant": "deskco -> acme only (agent, supervisor; T0, T1)",
            "users": users,
            "api_keys": keys,
            "owners": owners,
            "connectors": {CLOUD_TENANT: connector},
        }

    def _cloud_connector(self, tenant: Tenant) -> str:
        """The tenant's connector: Entra ID through the development fake, when the settings
        define one, proposed by acme-admin and approved by acme-admin2 (dual control, R-27).
        Once configured it only follows the fake's address; a configuration set in the
        console (another kind, another directory, inactive) or a pending change is left alone.
        Answers what the connector is, for the credentials file."""
        fake = getattr(settings, "FAKE_IDPS", {}).get(ConnectorKind.ENTRA)
        if fake is None:
            return "manual (these settings define no identity provider fake)"
        ours = fake["settings"]
        config = connector_config_get(tenant=tenant)
        if config is None:
            wanted = validate_settings(ConnectorKind.ENTRA, ours)
        elif (
            config.kind == ConnectorKind.ENTRA
            and config.is_active
            and (config.settings["tenant_id"], config.settings["client_id"])
            == (ours["tenant_id"], ours["client_id"])
        ):
            moved = {name: ours[name] for name in FAKE_ADDRESS}
            wanted = validate_settings(ConnectorKind.ENTRA, {**config.settings, **moved})
        else:
            return f"{config} (set in the console, left as it is)"
        described = f"entra, the development fake at {wanted['graph_url']}"
        if config is not None and config.settings == wanted:
            return described
        pending = ConnectorChange.objects.for_tenant(tenant).filter(
            status=ConnectorChangeStatus.PENDING
        )
        if pending.exists():
            return f"{config or 'manual connector'} (a change waits in the console, left as it is)"
        change = connector_change_request(
            actor=User.objects.get(username=f"{tenant.slug}-admin"),
            tenant=tenant,
            kind=ConnectorKind.ENTRA,
            settings=wanted,
        )
        approver = User.objects.get(username=f"{tenant.slug}-admin2")
        connector_change_approve(actor=approver, change=change, step_up=_fresh_step_up(approver))
        return described

    def _security_contact(self, tenant: Tenant) -> None:
        """acme's security contact, an email route proposed by acme-admin2 and approved by
        acme-admin (dual control); routes set in the console are left alone."""
        if AlertRoute.objects.for_tenant(tenant).exists():
            return
        route = route_propose(
            actor=User.objects.get(username="acme-admin2"),
            tenant=tenant,
            kind=RouteKind.EMAIL,
            target="security@acme.example",
            label="Acme security operations",
        )
        approver = User.objects.get(username="acme-admin")
        route_approve(actor=approver, route=route, step_up=_fresh_step_up(approver))

    def _owner_portal(self, tenant: Tenant, known: dict[str, Any]) -> dict[str, Any]:
        """The owner portal's demo: saved codes for one owner, an enrolment link for another,
        and the local OpenID Provider as acme's owner IdP when `make run` started it."""
        accounts = {a.external_id: a for a in ProtectedAccount.objects.for_tenant(tenant)}
        enrolled = accounts[ENROLLED_OWNER]
        owners: dict[str, Any] = {}
        codes = known.get(enrolled.username, {}).get("saved_codes")
        if code_set_current(account=enrolled) is None or not codes:
            session = self._enrolment_session(enrolled)
            code_set, issued = codes_issue(session=session)
            # Demo data: the codes were saved long ago, like the contacts (no quarantine).
            ContactMethod.objects.for_tenant(tenant).filter(pk=code_set.contact_id).update(
                registered_at=CONTACTS_SINCE
            )
            codes = [code_display(code) for code in issued]
        owners[enrolled.username] = {
            "saved_codes": codes,
            "note": "Saved recovery codes (S1): read one back to an agent on a case.",
        }
        invited = accounts[INVITED_OWNER]
        try:
            with _owner_inbox() as inbox:
                enrolment_link_send(account=invited, who=Actor.system("seed_demo"), via="seed")
                link = _found(r"(\S+/owner/enrol/[A-Za-z0-9_-]+/)", inbox)
            owners[invited.username] = {"enrolment_link": link}
            self.stdout.write(f"Owner portal: {invited.username} can enrol at {link}")
        except EnrolmentRefused as refused:
            owners[invited.username] = {"enrolment_link": None, "refused": refused.code}
        owners["idp"] = self._owner_idp(tenant)
        return owners

    def _enrolment_session(self, account: ProtectedAccount):
        """An enrolment session opened the way an owner opens it: the link from their inbox."""
        with _owner_inbox() as inbox:
            enrolment_link_send(account=account, who=Actor.system("seed_demo"), via="seed")
            token = _found(r"/owner/enrol/([A-Za-z0-9_-]+)/", inbox)
        return enrolment_link_open(token=token, response=HttpResponse())

    def _owner_idp(self, tenant: Tenant) -> str:
        """acme's owner IdP: the local provider run.sh started (dual control: two admins)."""
        issuer = os.environ.get("DEMO_OIDC_ISSUER", "")
        active = idp_config_active(tenant)
        if not issuer:
            return active.issuer if active else "not configured (make run starts one with Node.js)"
        if active is not None and active.issuer == issuer:
            return issuer
        config = idp_config_draft(
            actor=User.objects.get(username="acme-admin"),
            tenant=tenant,
            issuer=issuer,
            client_id="vouchsafe-demo",
            client_secret_env="DEMO_OIDC_CLIENT_SECRET",  # noqa: S106 (a variable name)
            allowed_amr=["mfa", "hwk", "swk"],
        )
        approver = User.objects.get(username="acme-admin2")
        idp_config_approve(actor=approver, config=config, step_up=_fresh_step_up(approver))
        return issuer

    def _certify_referees(self, tenants: dict[str, Tenant], users: dict[str, dict]) -> None:
        """Each demo trusted referee holds a current certification, given by their tenant's
        admin (R-09); renewed when less than CERTIFICATION_RENEW of it is left."""
        for username, (org, roles) in STAFF.items():
            if Role.TRUSTED_REFEREE not in roles:
                continue
            membership = Membership.objects.get(
                user__username=username, tenant=tenants[org], role=Role.TRUSTED_REFEREE
            )
            until = membership.certified_until
            if until is None or until < timezone.now() + CERTIFICATION_RENEW:
                until = referee_certify(
                    actor=User.objects.get(username=f"{org}-admin"),
                    membership=membership,
                    until=timezone.now() + timedelta(days=365),
                ).certified_until
            users[username]["certified_until"] = until.isoformat()

    def _api_keys(
        self, tenants: dict[str, Tenant], known: dict[str, dict]
    ) -> dict[str, dict[str, Any]]:
        """Keep each demo key that still works; issue the missing ones (by acme/globex admin)."""
        keys = {}
        for name, (slug, kind, scopes) in API_KEYS.items():
            token = known.get(name, {}).get("token", "")
            if not token or apikey_authenticate(token) is None:
                token = apikey_create(
                    actor=User.objects.get(username=f"{slug}-admin"),
                    tenant=tenants[slug],
                    name=name,
                    kind=kind,
                    scopes=scopes,
                ).token
            keys[name] = {"tenant": slug, "kind": str(kind), "scopes": scopes, "token": token}
        return keys

    def _operator(self, known_users: dict[str, dict]) -> User:
        operator = User.objects.filter(username="platform").first()
        if operator is None:
            operator = platform_operator_bootstrap(
                username="platform", password=secrets.token_urlsafe(12)
            )
        return operator

    def _login(
        self, user: User, known: dict[str, dict], org: str, roles: list[str]
    ) -> dict[str, Any]:
        """Give the demo user a known password, a TOTP device and backup codes."""
        previous = known.get(user.username, {})
        password = previous.get("password") or secrets.token_urlsafe(12)
        user.set_password(password)
        user.save(update_fields=["password"])
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or (
            TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
        )
        codes = previous.get("backup_codes")
        if not codes or not StaticDevice.objects.filter(user=user).exists():
            codes = backup_codes_issue(user=user, count=5)
        return {
            "password": password,
            "totp_secret": base64.b32encode(device.bin_key).decode(),
            "otpauth_url": device.config_url,
            "backup_codes": codes,
            "organisation": org,
            "roles": [str(r) for r in roles],
        }

    def _cases(self, tenant: Tenant) -> None:
        """One case in each state a demo should show, and one for each verifier, through the
        real services: every accepted signal here was checked by its verifier."""
        agent = User.objects.get(username="acme-agent")
        accounts = {a.external_id: a for a in ProtectedAccount.objects.for_tenant(tenant)}

        def opened(external_id: str, case_type: str) -> RecoveryCase:
            return case_open(
                actor=agent, account=accounts[external_id], case_type=case_type, channel="phone"
            )

        def code_read_back(case: RecoveryCase) -> None:
            """S2: a code emailed to the owner's address on record, read back to the agent."""
            mailbox = ContactMethod.objects.for_tenant(tenant).get(
                account=case.account, kind="email", replaced_at__isnull=True
            )
            with _owner_inbox() as inbox:
                challenge = challenge_send(actor=agent, case=case, contact_method=mailbox)
                code = _found(r"Verification code: (\d+)", inbox)
            challenge_verify(actor=agent, case=case, challenge=challenge, code=code)

        def manager_attested(case: RecoveryCase) -> None:
            """S3: the manager confirms the emailed link from their own sign-in."""
            with _owner_inbox() as inbox:
                attestation_request(actor=agent, case=case)
                token = _found(r"/attest/([A-Za-z0-9_-]+)/", inbox)
            attestation_confirm(actor=User.objects.get(username=MANAGER[1]), token=token)

        def worked(external_id: str, case_type: str) -> RecoveryCase:
            case = opened(external_id, case_type)
            code_read_back(case)
            manager_attested(case)
            return case_submit(actor=agent, case=case)

        opened("E1001", "unlock")  # nothing collected yet: try the verifier actions here
        worked("E1002", "password_reset")  # pending approval: a code and an attestation
        for external_id, username, decision in (
            ("E1006", "acme-supervisor", "approved"),
            ("E1007", "acme-security", "denied"),
        ):
            approver = User.objects.get(username=username)
            approval_decide(
                actor=approver,
                case=worked(external_id, "mfa_reset"),
                decision=decision,
                reason="Demo: decided after reviewing the evidence.",
                step_up=_fresh_step_up(approver),
            )
        cancelled = case_open(
            actor=agent, account=accounts["E1005"], case_type="unlock", channel="chat"
        )
        case_cancel(actor=agent, case=cancelled, reason="Demo: the caller hung up.")
        self._proofed(opened("E1008", "mfa_reset"), agent)
        self._attended(opened("E1009", "mfa_reset"), User.objects.get(username="acme-referee"))

    def _proofed(self, case: RecoveryCase, agent: User) -> None:
        """S4 from the development proofing provider: the session is started as an agent
        would, and its vendor page's passing verdict (signed, naming the account's enrolment
        reference) arrives at the verdict endpoint's service."""
        provider = provider_get("dev")
        if not isinstance(provider, DevProofingProvider):
            self.stdout.write("No development proofing provider configured: no proofing demo.")
            return
        session = proofing_start(actor=agent, case=case, provider="dev").session
        body, headers = provider.verdict_for(
            session, outcome="pass", subject_reference=case.account.enrolment_reference
        )
        proofing_verdict_receive(provider="dev", body=body, headers=headers)

    def _attended(self, case: RecoveryCase, referee: User) -> None:
        """S4 from an attended video session the certified referee ran to completion."""
        session = attended_start(
            actor=referee,
            case=case,
            mode="remote_video",
            reason="Demo: the caller lost their phone and laptop; no code channel remains.",
        )
        attended_coercion_answer(actor=referee, session=session, observed=False)
        attended_complete(
            actor=referee,
            session=session,
            documents_presented=["Passport (photo page, chip read)", "Staff badge"],
            steps_completed=["Document check", "Live challenge", "Coercion question"],
            live_challenge_passed=True,
            outcome_note="Demo: the person matched the documents and did the live challenge.",
        )

    def _grant(self, provider: ServiceProvider, tenant: Tenant) -> None:
        live = DelegationGrant.objects.filter(
            provider=provider,
            tenant=tenant,
            status=GrantStatus.ACTIVE,
            valid_until__gt=timezone.now(),
        )
        if live.exists():
            return
        now = timezone.now()
        grant = grant_request(
            actor=User.objects.get(username="deskco-admin"),
            provider=provider,
            tenant=tenant,
            allowed_roles=[Role.AGENT, Role.SUPERVISOR],
            allowed_tiers=["T0", "T1"],
            allowed_case_types=[c for c in CaseType.values if c != CaseType.EXCEPTION],
            valid_from=now,
            valid_until=now + timedelta(days=90),
        )
        approver = User.objects.get(username="acme-admin")
        grant_approve(actor=approver, grant=grant, step_up=_fresh_step_up(approver))


def _fresh_step_up(user: User) -> StepUpProof:
    """A step-up with the demo user's TOTP code (the command holds their secrets): the current
    one, or the next one when this run already spent it (a code counts once, and one user may
    step up twice within a 30-second step; the device accepts a code one step ahead)."""
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    now = int((time.time() - device.t0) // device.step)
    ahead = max(0, device.last_t + 1 - now)
    code = totp(device.bin_key, device.step, device.t0, device.digits, drift=ahead)
    return step_up_verify(user=user, token=f"{code:06d}")
