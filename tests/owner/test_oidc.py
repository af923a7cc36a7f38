"""Sign-in with the tenant's identity provider (S5, and enrolment), against a real OpenID
Provider (panva/oidc-provider run by Node.js, tests/oidc_provider).

The happy path and the amr/acr cases go through the provider end to end: the agent asks, the
owner's link, the POST to go on, the provider's authorization endpoint and login, the code
exchange with PKCE and the client secret, the ID token checked against the provider's JWKS.
The forged-token cases call the validation function with tokens signed here: with the key the
provider publishes (so only the claim under test is wrong), with a key it does not publish, or
with none.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client
from django.utils import timezone
from joserfc import jwt
from joserfc.jwk import OctKey

from audit.models import AuditEvent
from recovery.cases.models import Evidence
from recovery.cases.services import accepted_classes, case_cancel
from recovery.owner import oidc as oidc_client
from recovery.owner.choices import IdpSignInStatus, PortalSessionKind, PortalSessionStatus
from recovery.owner.idp_config import idp_config_retire
from recovery.owner.idp_sign_in import idp_sign_in_request
from recovery.owner.models import IdpSignIn, OwnerPortalSession
from recovery.owner.oidc import IdTokenRefused, digest, id_token_validate
from recovery.owner.sessions import cookie_name
from recovery.owner.throttle import RATE_PER_ADDRESS
from tenants.choices import Role
from tenants.exceptions import PolicyDenied

from ..factories import staff, unique
from ..oidc_provider import signing_key
from .oidc_helpers import (
    back_from_provider,
    case_on,
    forget_provider,
    idp_config,
    idp_secret,  # noqa: F401 - a fixture
    link_token,
    oidc,  # noqa: F401 - a fixture
    subject_account,
    to_provider,
)

pytestmark = pytest.mark.django_db

ACR_MFA = "urn:vouchsafe:test:loa:mfa"


@pytest.fixture
def world(acme, oidc, idp_secret):  # noqa: F811 - fixtures
    """A tenant with an active IdP configuration, an account with its IdP subject and a case
    an agent opened on it."""
    config = idp_config(acme, oidc, acr=(ACR_MFA,))
    account = subject_account(acme)
    agent = staff(Role.AGENT, tenant=acme)
    case = case_on(account, agent)
    return {"tenant": acme, "config": config, "account": account, "agent": agent, "case": case}


def _request(world) -> IdpSignIn:
    return idp_sign_in_request(actor=world["agent"], case=world["case"])


def _case_sign_in(world, oidc, *, sub=None, amr=("pwd", "hwk"), acr="", client=None):  # noqa: F811
    """The agent asks; the owner signs in at the provider; the browser comes back."""
    _request(world)
    client = client or Client()
    authorize = to_provider(client, link_token())
    callback = oidc.login(authorize, sub=sub or world["account"].idp_subject, amr=amr, acr=acr)
    return client, callback, back_from_provider(client, callback)


def _refusals(case_or_account, reason: str | None = None):
    events = AuditEvent.objects.filter(action="owner.idp_sign_in_refused")
    if reason is not None:
        events = [e for e in events if e.data.get("reason") == reason]
    return list(events)


# --- the happy path and the amr/acr rule, through the real provider -------------------------


def test_sign_in_with_a_bound_authenticator_records_accepted_s5(world, oidc):  # noqa: F811
    _client, callback, answer = _case_sign_in(world, oidc, amr=("pwd", "hwk"))
    assert answer.status_code == 200, answer.content[:500]
    assert "PKCE" not in answer.content.decode()
    query = parse_qs(urlsplit(callback).query)
    assert query["iss"] == [oidc.issuer]  # RFC 9207: the provider names itself
    sign_in = IdpSignIn.objects.get(case=world["case"])
    assert sign_in.status == IdpSignInStatus.COMPLETED
    assert sign_in.code_verifier == ""  # forgotten once used
    assert sign_in.sub == world["account"].idp_subject and sign_in.amr == ["pwd", "hwk"]
    evidence = Evidence.objects.get(case=world["case"])
    assert (evidence.signal_class, evidence.method, evidence.result) == (
        "S5",
        "idp_sign_in",
        "accepted",
    )
    assert (evidence.verifier, evidence.verifier_ref) == ("owner_portal", sign_in.pk)
    assert evidence.contact_method is None
    assert evidence.collected_by == world["agent"]
    assert evidence.details["sub"] == world["account"].idp_subject
    assert evidence.details["amr"] == ["pwd", "hwk"]
    assert evidence.details["id_token_sha256"] == sign_in.id_token_hash
    assert len(sign_in.id_token_hash) == 64
    assert sign_in.evidence == evidence
    assert "S5" in accepted_classes(world["case"])
    completed = AuditEvent.objects.get(action="owner.idp_sign_in_completed")
    assert completed.data["evidence"] == evidence.pk and completed.data["result"] == "accepted"
    assert AuditEvent.objects.filter(action="owner.idp_sign_in_started").count() == 1


def test_the_request_notifies_the_owner_addresses_with_a_link_kept_only_as_a_hash(world):
    from django.core import mail

    from recovery.notifications.models import OwnerNotice

    sign_in = _request(world)
    token = link_token()
    assert sign_in.link_hash == digest(token) and token not in json.dumps(
        list(AuditEvent.objects.filter(tenant=world["tenant"]).values_list("data", flat=True)),
        default=str,
    )
    notices = OwnerNotice.objects.filter(case=world["case"], event="idp_sign_in_requested")
    # email and mobile, both held for a year
    assert sorted(n.contact.kind for n in notices) == ["email", "mobile"]
    assert {n.status for n in notices} == {"sent"}
    assert "/not-me/" in mail.outbox[-1].body
    requested = AuditEvent.objects.get(action="owner.idp_sign_in_requested")
    assert requested.data["sign_in"] == sign_in.pk and requested.data["sent_to"]


def test_a_password_only_sign_in_is_recorded_but_never_counts_as_s5(world, oidc):  # noqa: F811
    _client, _callback, answer = _case_sign_in(world, oidc, amr=("pwd",))
    assert answer.status_code == 200
    assert "password alone" in answer.content.decode()
    evidence = Evidence.objects.get(case=world["case"])
    assert (evidence.method, evidence.result) == ("idp_sign_in", "rejected")
    assert evidence.reason_code == "idp_sign_in_without_bound_authenticator"
    assert evidence.verifier_ref == IdpSignIn.objects.get(case=world["case"]).pk
    assert "S5" not in accepted_classes(world["case"])


def test_an_acr_the_tenant_accepts_counts_without_an_amr_value(world, oidc):  # noqa: F811
    _client, _callback, answer = _case_sign_in(world, oidc, amr=("pwd",), acr=ACR_MFA)
    assert answer.status_code == 200
    evidence = Evidence.objects.get(case=world["case"])
    assert evidence.result == "accepted" and evidence.details["acr"] == ACR_MFA


def test_an_acr_the_tenant_does_not_list_does_not_count(world, oidc):  # noqa: F811
    _case_sign_in(world, oidc, amr=("pwd",), acr="urn:vouchsafe:test:loa:password")
    assert Evidence.objects.get(case=world["case"]).result == "rejected"


def test_sub_of_another_account_is_refused_and_alerted(world, oidc):  # noqa: F811
    other = subject_account(world["tenant"])
    _client, _callback, answer = _case_sign_in(world, oidc, sub=other.idp_subject)
    assert answer.status_code == 403
    assert not Evidence.objects.filter(case=world["case"]).exists()
    sign_in = IdpSignIn.objects.get(case=world["case"])
    assert (sign_in.status, sign_in.refusal) == (IdpSignInStatus.REFUSED, "idp.wrong_subject")
    assert _refusals(world["case"], "idp.wrong_subject")
    assert AuditEvent.objects.filter(action="alert.raised", data__type="idp_sign_in_refused")


# --- replay, state and browser binding -------------------------------------------------------


def test_a_completed_sign_in_cannot_complete_again(world, oidc):  # noqa: F811
    client, callback, answer = _case_sign_in(world, oidc)
    assert answer.status_code == 200
    again = back_from_provider(client, callback)
    assert again.status_code == 403
    assert Evidence.objects.filter(case=world["case"]).count() == 1
    assert _refusals(world["case"], "idp.replayed")


def test_an_id_token_of_a_completed_sign_in_does_not_complete_another(
    world,
    oidc,  # noqa: F811
    monkeypatch,
):
    """Replayed nonce: the provider signed this token for the first sign-in's nonce."""
    issued = []
    real_exchange = oidc_client.code_exchange

    def keep(**kwargs):
        tokens = real_exchange(**kwargs)
        issued.append(tokens["id_token"])
        return tokens

    monkeypatch.setattr("recovery.owner.idp_sign_in.code_exchange", keep)
    _case_sign_in(world, oidc)
    assert len(issued) == 1 and Evidence.objects.filter(case=world["case"]).count() == 1
    monkeypatch.setattr(
        "recovery.owner.idp_sign_in.code_exchange", lambda **kwargs: {"id_token": issued[0]}
    )
    _client, _callback, answer = _case_sign_in(world, oidc)
    assert answer.status_code == 403
    assert Evidence.objects.filter(case=world["case"]).count() == 1
    second = IdpSignIn.objects.filter(case=world["case"]).order_by("-pk").first()
    assert (second.status, second.refusal) == (IdpSignInStatus.REFUSED, "idp.nonce_mismatch")


def test_a_state_nobody_issued_is_refused(world):
    answer = Client().get("/owner/idp/callback/?" + urlencode({"state": "forged", "code": "x"}))
    assert answer.status_code == 400


def test_a_callback_in_another_browser_is_refused_and_ends_the_flow(world, oidc):  # noqa: F811
    """Login CSRF: the state is real, but the browser lacks the cookie that started it."""
    _request(world)
    owner = Client()
    callback = oidc.login(to_provider(owner, link_token()), sub=world["account"].idp_subject)
    answer = back_from_provider(Client(), callback)  # someone else's browser
    assert answer.status_code == 403
    sign_in = IdpSignIn.objects.get(case=world["case"])
    assert (sign_in.status, sign_in.refusal) == (IdpSignInStatus.REFUSED, "idp.browser_mismatch")
    assert sign_in.code_verifier == ""
    assert back_from_provider(owner, callback).status_code == 403  # the flow is over
    assert not Evidence.objects.filter(case=world["case"]).exists()


def test_a_callback_naming_another_issuer_is_refused(world, oidc):  # noqa: F811
    _request(world)
    client = Client()
    callback = oidc.login(to_provider(client, link_token()), sub=world["account"].idp_subject)
    forged = callback.replace(
        "iss=" + urlencode({"": oidc.issuer})[1:], "iss=" + urlencode({"": "https://evil.test"})[1:]
    )
    assert forged != callback
    assert back_from_provider(client, forged).status_code == 403
    assert IdpSignIn.objects.get(case=world["case"]).refusal == "idp.wrong_issuer"


def test_a_callback_without_the_issuer_the_provider_always_names_is_refused(world, oidc):  # noqa: F811
    """RFC 9207: this provider adds `iss` to every redirect; one without it is a mix-up."""
    _request(world)
    client = Client()
    callback = oidc.login(to_provider(client, link_token()), sub=world["account"].idp_subject)
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query).items() if k != "iss"}
    assert (
        back_from_provider(
            client, f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"
        ).status_code
        == 403
    )
    assert IdpSignIn.objects.get(case=world["case"]).refusal == "idp.wrong_issuer"
    assert not Evidence.objects.filter(case=world["case"]).exists()


def test_an_expired_sign_in_is_refused(world, oidc):  # noqa: F811
    _request(world)
    client = Client()
    callback = oidc.login(to_provider(client, link_token()), sub=world["account"].idp_subject)
    IdpSignIn.objects.filter(case=world["case"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert back_from_provider(client, callback).status_code == 403
    sign_in = IdpSignIn.objects.get(case=world["case"])
    assert (sign_in.status, sign_in.refusal) == (IdpSignInStatus.EXPIRED, "idp.expired")


def test_the_link_is_used_once(world):
    _request(world)
    token = link_token()
    client = Client()
    to_provider(client, token)
    assert client.post(f"/owner/idp/{token}/").status_code == 410
    assert client.get(f"/owner/idp/{token}/").status_code == 404


def test_the_provider_error_ends_the_sign_in(world):
    _request(world)
    client = Client()
    authorize = to_provider(client, link_token())
    state = parse_qs(urlsplit(authorize).query)["state"][0]
    answer = client.get(
        "/owner/idp/callback/?" + urlencode({"state": state, "error": "access_denied"})
    )
    assert answer.status_code == 403
    assert IdpSignIn.objects.get(case=world["case"]).refusal == "idp.provider_error"


def test_the_authorization_request_uses_pkce_s256_state_and_nonce(world):
    _request(world)
    authorize = to_provider(Client(), link_token())
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 43 and len(query["nonce"][0]) >= 43
    assert query["scope"] == ["openid"] and query["response_type"] == ["code"]
    sign_in = IdpSignIn.objects.get(case=world["case"])
    assert sign_in.state_hash == digest(query["state"][0])
    assert sign_in.nonce == digest(query["nonce"][0])  # kept as digests, never raw


def test_a_retired_configuration_refuses_a_sign_in_under_way(world, oidc):  # noqa: F811
    _request(world)
    client = Client()
    callback = oidc.login(to_provider(client, link_token()), sub=world["account"].idp_subject)
    idp_config_retire(
        actor=staff(Role.TENANT_ADMIN, tenant=world["tenant"]), config=world["config"]
    )
    assert back_from_provider(client, callback).status_code == 403
    assert IdpSignIn.objects.get(case=world["case"]).refusal == "idp.config_inactive"


def test_a_case_that_stopped_collecting_gets_nothing(world, oidc):  # noqa: F811
    _request(world)
    client = Client()
    callback = oidc.login(to_provider(client, link_token()), sub=world["account"].idp_subject)
    case_cancel(actor=world["agent"], case=world["case"], reason="the caller hung up")
    assert back_from_provider(client, callback).status_code == 403
    assert not Evidence.objects.filter(case=world["case"]).exists()


def test_not_me_on_the_link_page_repudiates_the_case(world):
    _request(world)
    token = link_token()
    answer = Client().post(f"/owner/idp/{token}/not-me/")
    assert answer.status_code == 200
    world["case"].refresh_from_db()
    assert world["case"].status in ("frozen", "reverted")


# --- the agent's request ----------------------------------------------------------------------


def test_no_request_without_an_active_configuration(acme, oidc, idp_secret):  # noqa: F811
    account = subject_account(acme)
    case = case_on(account)
    with pytest.raises(PolicyDenied) as refused:
        idp_sign_in_request(actor=case.opened_by, case=case)
    assert refused.value.code == "idp.not_configured"


def test_no_request_for_an_account_without_an_idp_subject(world):
    from recovery.models import ProtectedAccount

    ProtectedAccount.objects.filter(pk=world["account"].pk).update(idp_subject="")
    with pytest.raises(PolicyDenied) as refused:
        _request(world)
    assert refused.value.code == "idp.no_subject"
    assert AuditEvent.objects.filter(action="owner.idp_sign_in_refused", data__stage="request")


# --- the ID token, forged here -----------------------------------------------------------------


NONCE = "a-nonce-this-sign-in-sent"


def _claims(oidc, **changes):  # noqa: F811
    now = int(time.time())
    claims = {
        "iss": oidc.issuer,
        "aud": oidc.client_id,
        "sub": "subject-1",
        "nonce": NONCE,
        "iat": now,
        "exp": now + 300,
        "amr": ["hwk"],
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _validate(oidc, token: str):  # noqa: F811
    return id_token_validate(
        token, issuer=oidc.issuer, client_id=oidc.client_id, nonce_digest=digest(NONCE)
    )


def _refused(oidc, token: str) -> str:  # noqa: F811
    with pytest.raises(IdTokenRefused) as refused:
        _validate(oidc, token)
    return refused.value.code


def test_a_token_signed_with_the_published_key_passes(oidc, idp_secret, settings):  # noqa: F811
    token = _validate(oidc, oidc.sign(_claims(oidc)))
    assert (token.sub, token.amr) == ("subject-1", ("hwk",))


def test_wrong_issuer(oidc, idp_secret):  # noqa: F811
    assert _refused(oidc, oidc.sign(_claims(oidc, iss="https://evil.test"))) == "idp.wrong_issuer"


def test_wrong_audience(oidc, idp_secret):  # noqa: F811
    token = oidc.sign(_claims(oidc, aud="another-client"))
    assert _refused(oidc, token) == "idp.wrong_audience"
    several = oidc.sign(_claims(oidc, aud=[oidc.client_id, "another-client"]))
    assert _refused(oidc, several) == "idp.wrong_audience"  # several audiences need our azp
    assert _validate(oidc, oidc.sign(_claims(oidc, aud=[oidc.client_id, "x"], azp=oidc.client_id)))


def test_expired_token(oidc, idp_secret):  # noqa: F811
    now = int(time.time())
    token = oidc.sign(_claims(oidc, iat=now - 900, exp=now - 120))
    assert _refused(oidc, token) == "idp.token_expired"
    future = oidc.sign(_claims(oidc, iat=now + 600, exp=now + 900))
    assert _refused(oidc, future) == "idp.token_not_yet_valid"


def test_nonce_of_another_sign_in(oidc, idp_secret):  # noqa: F811
    assert _refused(oidc, oidc.sign(_claims(oidc, nonce="another"))) == "idp.nonce_mismatch"
    assert _refused(oidc, oidc.sign(_claims(oidc, nonce=None))) == "idp.nonce_mismatch"


def test_unknown_kid_refreshes_the_jwks_once_then_refuses(oidc, idp_secret, monkeypatch):  # noqa: F811
    fetched = []
    real = oidc_client._get_json

    def counting(url):
        fetched.append(url)
        return real(url)

    monkeypatch.setattr(oidc_client, "_get_json", counting)
    forget_provider(oidc)
    rogue = signing_key("rogue-key")
    assert _refused(oidc, oidc.sign(_claims(oidc), key=rogue)) == "idp.unknown_kid"
    assert [u for u in fetched if u.endswith("/jwks")] == [f"{oidc.issuer}/jwks"] * 2


def test_a_published_kid_with_another_key_is_a_bad_signature(oidc, idp_secret):  # noqa: F811
    rogue = signing_key(oidc.key.kid)
    assert _refused(oidc, oidc.sign(_claims(oidc), key=rogue)) == "idp.bad_signature"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none_is_refused(oidc, idp_secret):  # noqa: F811
    header = {"alg": "none", "kid": oidc.key.kid}
    token = f"{_b64(header)}.{_b64(_claims(oidc))}."
    assert _refused(oidc, token) == "idp.alg_not_allowed"


def test_an_hmac_signed_with_the_client_secret_is_refused(oidc, idp_secret):  # noqa: F811
    """The provider advertises RS256; a token MACed with our own secret proves nothing."""
    key = OctKey.import_key(oidc.client_secret.encode())
    token = jwt.encode({"alg": "HS256"}, _claims(oidc), key)
    assert _refused(oidc, token) == "idp.alg_not_allowed"


def test_garbage_is_a_malformed_token(oidc, idp_secret):  # noqa: F811
    assert _refused(oidc, "not-a-token") == "idp.malformed_token"
    assert _refused(oidc, oidc.sign(_claims(oidc, sub=None))) == "idp.malformed_token"


def test_a_forged_token_at_the_callback_refuses_the_sign_in(world, oidc, monkeypatch):  # noqa: F811
    """End to end: whatever the token endpoint answered, a token the provider did not sign
    ends the sign-in with the reason on the trail and an alert."""
    rogue = signing_key("rogue-key")

    def forged(**kwargs):
        sign_in = IdpSignIn.objects.get(case=world["case"], status="started")
        claims = _claims(oidc, sub=world["account"].idp_subject, nonce=None)
        claims["nonce"] = "unknown"
        assert sign_in
        return {"id_token": oidc.sign(claims, key=rogue)}

    monkeypatch.setattr("recovery.owner.idp_sign_in.code_exchange", forged)
    _client, _callback, answer = _case_sign_in(world, oidc)
    assert answer.status_code == 403
    sign_in = IdpSignIn.objects.get(case=world["case"])
    assert (sign_in.status, sign_in.refusal) == (IdpSignInStatus.REFUSED, "idp.unknown_kid")
    assert not Evidence.objects.filter(case=world["case"]).exists()
    assert AuditEvent.objects.filter(action="alert.raised", data__reason="idp.unknown_kid")


# --- enrolment through the provider -------------------------------------------------------------


def _enrol(tenant, oidc, *, sub, amr=("hwk",)):  # noqa: F811
    client = Client()
    started = client.post(f"/owner/t/{tenant.slug}/sign-in/")
    assert started.status_code == 302, started.content[:500]
    callback = oidc.login(started["Location"], sub=sub, amr=amr)
    return client, back_from_provider(client, callback)


def test_sign_in_to_enrol_starts_an_idp_enrolment_session(acme, oidc, idp_secret):  # noqa: F811
    idp_config(acme, oidc)
    account = subject_account(acme)
    page = Client().get(f"/owner/t/{acme.slug}/sign-in/")
    assert page.status_code == 200 and b"idp-sign-in" in page.content
    client, answer = _enrol(acme, oidc, sub=account.idp_subject)
    assert answer.status_code == 302 and answer["Location"] == "/owner/"
    assert client.cookies[cookie_name()].value
    session = OwnerPortalSession.objects.get(account=account)
    assert (session.kind, session.status) == (
        PortalSessionKind.IDP_ENROLMENT,
        PortalSessionStatus.ACTIVE,
    )
    sign_in = IdpSignIn.objects.get(account=account)
    assert sign_in.purpose == "enrolment" and sign_in.status == IdpSignInStatus.COMPLETED
    assert AuditEvent.objects.filter(action="owner.session_started", data__session=session.pk)
    assert client.get("/owner/").status_code == 200  # the enrolled home, in that session


def test_a_password_alone_never_enrols(acme, oidc, idp_secret):  # noqa: F811
    idp_config(acme, oidc)
    account = subject_account(acme)
    client, answer = _enrol(acme, oidc, sub=account.idp_subject, amr=("pwd",))
    assert answer.status_code == 403
    assert not OwnerPortalSession.objects.filter(account=account).exists()
    assert cookie_name() not in client.cookies
    assert IdpSignIn.objects.get(tenant=acme).refusal == "idp.no_bound_authenticator"


def test_an_unknown_subject_does_not_enrol(acme, oidc, idp_secret):  # noqa: F811
    idp_config(acme, oidc)
    _client, answer = _enrol(acme, oidc, sub=unique("nobody"))
    assert answer.status_code == 403
    assert IdpSignIn.objects.get(tenant=acme).refusal == "idp.unknown_subject"


def test_no_enrolment_while_a_case_is_open(acme, oidc, idp_secret):  # noqa: F811
    idp_config(acme, oidc)
    account = subject_account(acme)
    case_on(account)
    _client, answer = _enrol(acme, oidc, sub=account.idp_subject)
    assert answer.status_code == 403
    assert not OwnerPortalSession.objects.filter(account=account).exists()
    assert IdpSignIn.objects.get(tenant=acme).refusal == "enrolment.open_case"


def test_a_tenant_without_a_configuration_says_so(acme):
    page = Client().get(f"/owner/t/{acme.slug}/sign-in/")
    assert page.status_code == 200 and b"idp-not-configured" in page.content
    assert Client().post(f"/owner/t/{acme.slug}/sign-in/").status_code == 200
    assert not IdpSignIn.objects.filter(tenant=acme).exists()


def test_sign_ins_to_enrol_are_limited_per_address(acme, oidc, idp_secret):  # noqa: F811
    """An anonymous page that writes a row per POST: a stranger cannot fill the table."""
    idp_config(acme, oidc)
    client = Client(REMOTE_ADDR="203.0.113.7")
    answers = [
        client.post(f"/owner/t/{acme.slug}/sign-in/").status_code
        for _ in range(RATE_PER_ADDRESS + 1)
    ]
    assert answers == [302] * RATE_PER_ADDRESS + [429]
    assert IdpSignIn.objects.filter(tenant=acme).count() == RATE_PER_ADDRESS
    other = Client(REMOTE_ADDR="203.0.113.8").post(f"/owner/t/{acme.slug}/sign-in/")
    assert other.status_code == 302
