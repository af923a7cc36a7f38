"""The OpenID Provider fixture and the steps of an owner's IdP sign-in, for tests/owner/test_oidc*.

`oidc` starts one real provider (tests/oidc_provider) per test module that imports it; the
client registered there redirects to this deployment's callback (`PUBLIC_BASE_URL`).
`idp_config` drafts and approves a configuration through the real services (two tenant_admins,
a fresh step-up), as a tenant would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client

from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_open
from recovery.models import ProtectedAccount
from recovery.owner.idp_config import idp_config_approve, idp_config_draft
from recovery.owner.models import OwnerIdpConfig
from recovery.owner.oidc import _cache_key, redirect_uri
from tenants.choices import Role
from tenants.models import Tenant, User

from ..factories import staff, step_up, unique
from ..oidc_provider import OidcProvider
from .owners import owner_account

SECRET_ENV = "VOUCHSAFE_TEST_OWNER_IDP_SECRET"
BOUND_AMR = ("hwk", "swk", "mfa")
LINK = re.compile(r"/owner/idp/([A-Za-z0-9_-]+)/")


@pytest.fixture(scope="module")
def oidc(tmp_path_factory) -> Iterator[OidcProvider]:
    try:
        provider = OidcProvider.start(
            tmp_path_factory.mktemp("oidc"), redirect_uris=[redirect_uri()]
        )
    except FileNotFoundError as missing:
        pytest.fail(str(missing))
    yield provider
    provider.stop()


@pytest.fixture
def idp_secret(oidc, monkeypatch) -> str:
    """The client secret in the environment variable the configurations name; and no
    discovery document or JWKS left in the cache from another test."""
    monkeypatch.setenv(SECRET_ENV, oidc.client_secret)
    forget_provider(oidc)
    return oidc.client_secret


def forget_provider(oidc: OidcProvider) -> None:
    cache.delete_many(
        [_cache_key("discovery", oidc.issuer), _cache_key("jwks", f"{oidc.issuer}/jwks")]
    )


def idp_config(
    tenant: Tenant,
    oidc: OidcProvider,
    *,
    amr: tuple[str, ...] = BOUND_AMR,
    acr: tuple[str, ...] = (),
) -> OwnerIdpConfig:
    """An active configuration: drafted by one tenant_admin, approved by another with step-up."""
    drafter = staff(Role.TENANT_ADMIN, tenant=tenant)
    approver = staff(Role.TENANT_ADMIN, tenant=tenant)
    config = idp_config_draft(
        actor=drafter,
        tenant=tenant,
        issuer=oidc.issuer,
        client_id=oidc.client_id,
        client_secret_env=SECRET_ENV,
        allowed_amr=list(amr),
        allowed_acr=list(acr),
    )
    return idp_config_approve(actor=approver, config=config, step_up=step_up(approver))


def subject_account(tenant: Tenant, *, tier: str = "T0") -> ProtectedAccount:
    """An account with long-held addresses and its IdP subject from the system of record."""
    account = owner_account(tenant, tier=tier)
    account.idp_subject = unique("sub")
    ProtectedAccount.objects.filter(pk=account.pk).update(idp_subject=account.idp_subject)
    return account


def case_on(account: ProtectedAccount, agent: User | None = None) -> RecoveryCase:
    agent = agent or staff(Role.AGENT, tenant=account.tenant)
    return case_open(actor=agent, account=account, case_type="unlock", channel="phone")


def link_token() -> str:
    assert mail.outbox, "no message was sent"
    match = LINK.search(mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(1)


def to_provider(client: Client, token: str) -> str:
    """The owner opens the agent's link and goes on: the provider's authorization URL."""
    page = client.get(f"/owner/idp/{token}/")
    assert page.status_code == 200, page.content[:500]
    answer = client.post(f"/owner/idp/{token}/")
    assert answer.status_code == 302, answer.content[:500]
    return answer["Location"]


def back_from_provider(client: Client, callback_url: str):
    """The browser follows the provider's redirect back to this deployment's callback."""
    assert callback_url.startswith(redirect_uri() + "?"), callback_url
    parts = urlsplit(callback_url)
    return client.get(f"{parts.path}?{parts.query}")
