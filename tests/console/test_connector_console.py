"""Client admin console: the tenant's connector — a summary of what is in force, proposing a
change per kind, its diff, approval by a second admin with a fresh code, rejection, withdrawal
and test connection; auditors read only; another tenant's change is a 404."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.utils.html import escape

from audit.models import AuditEvent
from recovery.connectors.change_selectors import connector_change_pending
from recovery.connectors.choices import ConnectorKind
from recovery.connectors.forms import BOOL, INT, KIND_SETTINGS, LINES, ConnectorChangeForm
from recovery.connectors.models import ConnectorChange, ConnectorChangeStatus, ConnectorConfig
from recovery.connectors.services import connector_change_request
from recovery.connectors.summary import ORIGIN, SHOWN
from recovery.connectors.validation import validate_settings
from tenants.choices import Role
from tenants.exceptions import InvalidInput

from ..conftest import signed_in_client
from ..connector_helpers import connector_set
from ..factories import active_grant, make_user, member, staff, totp_token
from ..pages import page

pytestmark = pytest.mark.django_db

TOKEN_PATH = "hooks/tok_1f2e3d4c5b"
HOOK = {"url": f"https://automation.acme.example/{TOKEN_PATH}", "secret_env": "ACME_HOOK_KEY"}
LDAP_FORM = {
    "kind": "ldap",
    "is_active": "on",
    "server_uri": "ldaps://ldap.acme.example",
    "bind_dn": "cn=vouchsafe,ou=services,dc=acme,dc=example",
    "bind_password_env": "ACME_BIND_PASSWORD",
    "base_dn": "dc=acme,dc=example",
    "timeout_seconds": "",
    "directory": "",
}


def url(tenant, rest: str = "") -> str:
    return f"/t/{tenant.slug}/connector/{rest}"


def body(response) -> str:
    return response.content.decode()


@pytest.fixture
def admin(acme):
    return staff(Role.TENANT_ADMIN, tenant=acme)


@pytest.fixture
def second_admin(acme):
    return staff(Role.TENANT_ADMIN, tenant=acme)


def pending(tenant, requester) -> ConnectorChange:
    return connector_change_request(actor=requester, tenant=tenant, kind="webhook", settings=HOOK)


def diff_row(html: str, setting: str) -> str:
    match = re.search(
        rf"<tr class=\"diff-\w+\">\s*<th scope=\"row\"><code>{setting}</code>.*?</tr>", html, re.S
    )
    assert match, f"{setting} is not in the diff"
    return match.group(0)


# --- reading ----------------------------------------------------------------------------------


def test_an_admin_sees_the_manual_default_a_propose_link_and_the_nav_entry(acme, admin):
    html = body(signed_in_client(admin).get(url(acme)))
    assert "None configured: agents follow the manual connector" in html
    assert f'href="{url(acme, "propose/")}"' in html
    assert f'<a href="{url(acme)}" aria-current="page">Connector</a>' in html
    assert "Test connection" in html


def test_the_summary_never_shows_a_url_path(acme, admin):
    connector_set(acme, kind="webhook", settings=HOOK)
    client = signed_in_client(admin)
    html = body(client.get(url(acme)))
    assert "https://automation.acme.example (sha256:" in html and "ACME_HOOK_KEY" in html
    assert TOKEN_PATH not in html
    form = body(client.get(url(acme, "propose/?kind=webhook")))
    assert TOKEN_PATH not in form and 'value="ACME_HOOK_KEY"' in form  # the URL is typed again


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.SECURITY_OFFICER])
def test_readers_see_the_change_and_its_diff_but_no_form(acme, admin, role):
    change = pending(acme, admin)
    reader = staff(role, tenant=acme)
    client = signed_in_client(reader)
    html = body(client.get(url(acme)))
    assert f"Change {change.pk}, proposed by {admin.username}" in html
    assert "Changed" in diff_row(html, "secret_env")
    for action in ("Approve and apply", "Reject", "Withdraw", "Test connection", "Propose a"):
        assert action not in html, action
    assert 'method="post" action="/t/' not in html.split("</header>")[1]  # no form at all
    assert client.get(url(acme, "propose/")).status_code == 403
    assert client.post(url(acme, "propose/"), LDAP_FORM).status_code == 403
    approve = client.post(url(acme, f"changes/{change.pk}/approve/"), {"token": totp_token(reader)})
    assert approve.status_code == 403
    assert client.post(url(acme, "test/")).status_code == 403
    change.refresh_from_db()
    assert change.status == ConnectorChangeStatus.PENDING


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR])
def test_case_workers_get_403_and_no_nav_entry(acme, role):
    client = signed_in_client(staff(role, tenant=acme))
    assert client.get(url(acme)).status_code == 403
    assert f'href="{url(acme)}"' not in body(client.get(f"/t/{acme.slug}/"))


def test_provider_staff_through_a_grant_get_403(acme, deskco):
    active_grant(deskco, acme, roles=(Role.SUPERVISOR, Role.AUDITOR))
    msp = make_user()
    member(msp, Role.AUDITOR, provider=deskco)
    assert signed_in_client(msp).get(url(acme)).status_code == 403


@pytest.mark.parametrize("verb", ["approve", "reject", "withdraw"])
def test_another_tenants_change_is_a_404_like_a_missing_one(acme, globex, admin, verb):
    theirs = pending(globex, staff(Role.TENANT_ADMIN, tenant=globex))
    client = signed_in_client(admin)
    data = {"token": "123456", "reason": "mine"}
    foreign = client.post(url(acme, f"changes/{theirs.pk}/{verb}/"), data)
    missing = client.post(url(acme, f"changes/{theirs.pk + 10_000}/{verb}/"), data)
    assert foreign.status_code == missing.status_code == 404
    assert page(foreign) == page(missing)
    theirs.refresh_from_db()
    assert theirs.status == ConnectorChangeStatus.PENDING
    assert AuditEvent.objects.filter(tenant=globex, action="tenant.cross_access_denied").exists()


# --- proposing --------------------------------------------------------------------------------


def test_the_form_offers_every_kind_and_each_kinds_fields_with_help(acme, admin):
    client = signed_in_client(admin)
    html = body(client.get(url(acme, "propose/?kind=ldap")))
    for value in ("manual", "ldap", "webhook"):
        assert f'<option value="{value}"' in html
    assert 'name="server_uri"' in html and "ldaps://host[:port]" in html
    assert 'name="bind_password_env"' in html and "never the secret" in html
    assert "<details>" in html and 'name="uac_clear_bits"' in html  # advanced, folded
    assert 'name="url"' not in html
    assert 'name="secret_env"' in body(client.get(url(acme, "propose/?kind=webhook")))


def test_an_admin_proposes_and_the_change_waits_with_its_diff(acme, admin):
    client = signed_in_client(admin)
    response = client.post(url(acme, "propose/"), LDAP_FORM)
    assert response.status_code == 302 and response.url == url(acme)
    change = ConnectorChange.objects.for_tenant(acme).get()
    assert (change.kind, change.requested_by, change.status) == ("ldap", admin, "pending")
    assert change.settings["server_uri"] == "ldaps://ldap.acme.example"
    assert change.settings["timeout_seconds"] == 10  # left empty: the default
    html = body(client.get(response.url))
    assert "Change proposed. Another tenant admin must now approve it." in html
    assert "ldaps://ldap.acme.example" in diff_row(html, "server_uri")
    assert "You proposed this change: another tenant admin has to approve it." in html
    assert "Approve and apply" not in html and "Withdraw" in html
    assert not ConnectorConfig.objects.for_tenant(acme).exists()


def test_invalid_settings_are_shown_under_their_field_and_nothing_is_stored(acme, admin):
    data = {**LDAP_FORM, "bind_password_env": "hunter2 secret", "server_uri": "http://x"}
    response = signed_in_client(admin).post(url(acme, "propose/"), data)
    assert response.status_code == 400
    form = response.context["form"]
    assert "environment variable" in form.errors["bind_password_env"][0]
    assert "server_uri" in form.errors
    assert 'value="http://x"' in body(response)  # what was typed stays in the form
    assert not ConnectorChange.objects.for_tenant(acme).exists()


def test_a_second_proposal_while_one_waits_is_refused_on_the_form(acme, admin, second_admin):
    pending(acme, second_admin)
    client = signed_in_client(admin)
    assert "is waiting for approval" in body(client.get(url(acme, "propose/")))
    response = client.post(url(acme, "propose/"), LDAP_FORM)
    assert response.status_code == 400 and "(connector.change_pending)" in body(response)
    assert ConnectorChange.objects.for_tenant(acme).count() == 1


def test_the_form_starts_from_the_configuration_in_force_of_that_kind():
    form = ConnectorChangeForm(
        kind="ldap", current=({"server_uri": "ldaps://dc1", "timeout_seconds": 5}, False)
    )
    assert form["server_uri"].initial == "ldaps://dc1" and form["timeout_seconds"].initial == 5
    assert form["is_active"].initial is False
    hook = ConnectorChangeForm(kind="webhook", current=(HOOK, True))
    assert hook["url"].initial is None and hook["secret_env"].initial == "ACME_HOOK_KEY"


def test_a_kind_without_a_table_entry_takes_its_settings_as_json():
    assert "scim" not in KIND_SETTINGS
    form = ConnectorChangeForm({"kind": "manual", "settings": '{"console": "entra"}'}, kind="scim")
    assert list(form.fields) == ["kind", "is_active", "settings"]
    form.is_valid()
    assert form.settings() == {"console": "entra"}


@pytest.mark.parametrize("kind", ConnectorKind.values)
def test_every_kind_has_its_fields_and_each_is_a_setting_the_kind_knows(kind):
    """A new kind, or a renamed setting, fails here until the tables in forms.py and
    summary.py say how to ask for it and how to show it."""
    assert kind in KIND_SETTINGS and kind in SHOWN, f"declare {kind} in KIND_SETTINGS and SHOWN"
    empty = {BOOL: False, INT: 0, LINES: []}
    raw = {setting.name: empty.get(setting.type, "") for setting in KIND_SETTINGS[kind]}
    try:
        validate_settings(kind, raw)
    except InvalidInput as refused:
        unknown = [
            n for n, problems in refused.field_errors.items() if "Unknown setting." in problems
        ]
        assert not unknown, f"{kind}: the form asks for settings the kind does not know: {unknown}"
    assert {s.name for s in KIND_SETTINGS[kind]} <= set(SHOWN[kind]), "each field needs a rule"


def test_an_entra_change_is_proposed_from_its_fields_and_shown_without_url_paths(acme, admin):
    client = signed_in_client(admin)
    assert 'name="client_secret_env"' in body(client.get(url(acme, "propose/?kind=entra")))
    data = {
        "kind": "entra",
        "is_active": "on",
        "tenant_id": "contoso.onmicrosoft.com",
        "client_id": "4a1c2b3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        "client_secret_env": "CONTOSO_GRAPH_SECRET",
        "tap_lifetime_minutes": "120",
        "privileged_roles": "",
        "graph_url": "",
    }
    response = client.post(url(acme, "propose/"), data)
    assert response.status_code == 302, response.context["form"].errors
    change = ConnectorChange.objects.for_tenant(acme).get()
    assert change.settings["tap_lifetime_minutes"] == 120
    assert change.settings["graph_url"] == "https://graph.microsoft.com"  # the default
    html = body(client.get(url(acme)))
    assert "CONTOSO_GRAPH_SECRET" in diff_row(html, "client_secret_env")
    assert "https://graph.microsoft.com (sha256:" in diff_row(html, "graph_url")


# --- the cloud kinds --------------------------------------------------------------------------

# One valid configuration per cloud kind, as the service takes it; the URLs point at local test
# servers, so that keeping them (not the vendor's default) is visible.
CLOUD: dict[str, dict[str, Any]] = {
    "entra": {
        "tenant_id": "contoso.onmicrosoft.com",
        "client_id": "4a1c2b3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        "client_secret_env": "CONTOSO_GRAPH_SECRET",
        "tap_lifetime_minutes": 120,
        "privileged_roles": [
            "62e90394-69f5-4237-9190-012177145e10",
            "e8611ab8-c189-46e8-94e1-60213ab1f814",
        ],
        "authority_host": "https://127.0.0.1:8443",
        "graph_url": "https://127.0.0.1:8444",
        "ca_bundle": "/etc/vouchsafe/test-ca.pem",
    },
    "okta": {
        "org_url": "https://acme.okta.com",
        "client_id": "0oa1b2c3d4e5f6g7h8i9",
        "key_id": "acme-2026",
        "private_key_env": "ACME_OKTA_PRIVATE_KEY",
        "manage_roles": False,
    },
    "google_workspace": {
        "admin_email": "recovery-admin@acme.example",
        "customer_id": "C03az79cb",
        "service_account_key_file": "/etc/vouchsafe/acme-google.json",
        "api_endpoint": "http://127.0.0.1:9000",
        "manage_roles": True,
        "manage_delegates": True,
    },
}
# One configuration per cloud kind that its validator refuses, and the fields it blames.
CLOUD_INVALID: dict[str, tuple[dict[str, Any], set[str]]] = {
    "entra": (
        {
            "tenant_id": "common",
            "client_id": "contoso-recovery-app",
            "client_secret_env": "Xq8~secret.value-that-was-pasted",
            "tap_lifetime_minutes": 600,
            "privileged_roles": ["Global Administrator"],
        },
        {"tenant_id", "client_id", "client_secret_env", "tap_lifetime_minutes", "privileged_roles"},
    ),
    "okta": (
        {
            "org_url": "http://acme.okta.com",
            "client_id": "0oa1b2c3d4e5f6g7h8i9",
            "private_key_file": "keys/okta.pem",
            "api_token_env": "ACME_OKTA_TOKEN",
            "manage_roles": True,
        },
        {"org_url", "client_id", "private_key_file", "api_token_env"},
    ),
    "google_workspace": (
        {
            "admin_email": "not an address",
            "customer_id": "acme",
            "api_endpoint": "https://admin.googleapis.com/admin/directory",
            "manage_roles": False,
        },
        {
            "admin_email",
            "customer_id",
            "api_endpoint",
            "service_account_key_file",
            "service_account_key_env",
        },
    ),
}


def form_data(kind: str, settings: dict[str, Any]) -> dict[str, str]:
    """`settings` typed into the propose form as a browser posts it: every field, empty ones
    as "", a list one value per line, a ticked box as "on" and an unticked one left out."""
    data = {"kind": kind, "is_active": "on"}
    for setting in KIND_SETTINGS[kind]:
        value = settings.get(setting.name)
        if setting.type == BOOL:
            if value:
                data[setting.name] = "on"
        elif setting.type == LINES:
            data[setting.name] = "\r\n".join(value or [])
        else:
            data[setting.name] = "" if value is None else str(value)
    return data


class _PostedForm(HTMLParser):
    """What a browser would submit from a page's POST form, untouched: each input's value, each
    textarea's text, a checkbox only when ticked. `widgets` gives each field's input type."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.widgets: dict[str, str] = {}
        self._in_post_form = False
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        if tag == "form":
            self._in_post_form = attributes.get("method") == "post"
        name = attributes.get("name")
        if not self._in_post_form or not name:
            return
        if tag == "textarea":
            self.widgets[name], self.values[name], self._textarea = "textarea", "", name
        elif tag == "input":
            self.widgets[name] = attributes.get("type", "text")
            if self.widgets[name] != "checkbox":
                self.values[name] = attributes.get("value", "")
            elif "checked" in attributes:
                self.values[name] = "on"

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.values[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._textarea is not None:
            # A browser drops the newline that opens a textarea's content.
            self.values[self._textarea] = self.values[self._textarea].removeprefix("\n")
            self._textarea = None
        elif tag == "form":
            self._in_post_form = False


def posted_form(html: str) -> _PostedForm:
    parser = _PostedForm()
    parser.feed(html)
    return parser


def error_list(html: str, field: str) -> str:
    """The errors Django renders next to `field` (its `id_<field>_error` list)."""
    match = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', html, re.S)
    assert match, f"no errors next to {field}"
    return match.group(1)


def in_force(html: str) -> dict[str, str]:
    """The settings of the configuration in force as the page shows them."""
    section = html.split('id="connector-in-force"', 1)[1].split("</dl>", 1)[0]
    return dict(re.findall(r"<dt><code>(\w+)</code></dt><dd><code>(.*?)</code></dd>", section))


@pytest.mark.parametrize("kind", CLOUD)
def test_every_setting_a_cloud_kind_stores_has_a_field_and_a_rule_to_show_it(kind):
    """The other direction of the test above: a setting the validator adds fails here until
    the form asks for it and the summary says how to show it."""
    stored = validate_settings(kind, CLOUD[kind])
    assert {setting.name for setting in KIND_SETTINGS[kind]} == set(stored) == set(SHOWN[kind])


@pytest.mark.parametrize("kind", CLOUD)
def test_a_cloud_kinds_form_asks_for_each_setting_with_its_help_as_text(acme, admin, kind):
    html = body(signed_in_client(admin).get(url(acme, f"propose/?kind={kind}")))
    form = posted_form(html)
    expected_widget = {BOOL: "checkbox", LINES: "textarea", INT: "number"}
    for setting in KIND_SETTINGS[kind]:
        assert form.widgets[setting.name] == expected_widget.get(setting.type, "text")
        assert setting.help, f"{kind}.{setting.name} has no help"
        # Help is shown as written: "app's" or "<org>" would otherwise be read as markup.
        assert f">{escape(setting.help)}</div>" in html, setting.name
    boxes = [s.name for s in KIND_SETTINGS[kind] if s.type == BOOL]
    assert all(form.values.get(name) == "on" for name in boxes)  # a new configuration: ticked


@pytest.mark.parametrize(
    ("kind", "setting"),
    [
        ("entra", "tap_lifetime_minutes"),
        ("entra", "authority_host"),
        ("entra", "graph_url"),
        ("google_workspace", "token_uri"),
        ("google_workspace", "api_endpoint"),
    ],
)
def test_the_default_a_help_text_promises_is_the_one_stored(kind, setting):
    typed = {name: value for name, value in CLOUD[kind].items() if name != setting}
    default = validate_settings(kind, typed)[setting]
    [help_text] = [str(s.help) for s in KIND_SETTINGS[kind] if s.name == setting]
    assert f"empty for {default}".lower() in help_text.lower()


@pytest.mark.parametrize("kind", CLOUD)
def test_a_cloud_kind_proposed_in_the_form_is_stored_as_its_validator_answers(acme, admin, kind):
    client = signed_in_client(admin)
    response = client.post(url(acme, "propose/"), form_data(kind, CLOUD[kind]))
    assert response.status_code == 302, response.context["form"].errors
    change = ConnectorChange.objects.for_tenant(acme).get()
    assert (change.kind, change.status, change.requested_by) == (kind, "pending", admin)
    assert change.settings == validate_settings(kind, CLOUD[kind])
    assert change.is_active is True
    assert not ConnectorConfig.objects.for_tenant(acme).exists()


@pytest.mark.parametrize("kind", CLOUD)
def test_a_refused_cloud_setting_is_shown_next_to_its_field_and_nothing_is_stored(
    acme, admin, kind
):
    typed, blamed = CLOUD_INVALID[kind]
    with pytest.raises(InvalidInput) as refused:
        validate_settings(kind, typed)
    expected = refused.value.field_errors
    assert set(expected) == blamed

    response = signed_in_client(admin).post(url(acme, "propose/"), form_data(kind, typed))

    assert response.status_code == 400
    form = response.context["form"]
    assert {name: list(errors) for name, errors in form.errors.items()} == expected
    html = body(response)
    for field, problems in expected.items():
        shown = error_list(html, field)
        assert all(escape(problem) in shown for problem in problems), field
    advanced = {s.name for s in KIND_SETTINGS[kind] if s.advanced}
    assert ("<details open>" in html) is bool(advanced & blamed)  # an error is never folded away
    assert not ConnectorChange.objects.for_tenant(acme).exists()
    [event] = AuditEvent.objects.filter(tenant=acme, action="connector.change_refused")
    assert event.data["fields"] == sorted(blamed)
    assert "secret.value" not in json.dumps(event.data)


@pytest.mark.parametrize("kind", CLOUD)
def test_a_cloud_connector_edited_in_the_form_keeps_what_was_not_touched(acme, admin, kind):
    """Re-submitting the form as it opens, with one box unticked, proposes only that change:
    the fields start from what is in force, vendor addresses included."""
    config = connector_set(acme, kind=kind, settings=CLOUD[kind])
    client = signed_in_client(admin)
    submitted = posted_form(body(client.get(url(acme, f"propose/?kind={kind}")))).values
    assert submitted.pop("is_active") == "on"

    response = client.post(url(acme, "propose/"), submitted)

    assert response.status_code == 302, response.context["form"].errors
    change = connector_change_pending(tenant=acme)
    assert change.settings == config.settings and change.is_active is False
    html = body(client.get(url(acme)))
    [changed] = re.findall(r'<tr class="diff-added">.*?</tr>', html, re.S)
    assert "<code>is_active</code>" in changed


# What the page shows of each CLOUD configuration in force, written out by hand.
CLOUD_SHOWN = {
    "entra": {
        "tenant_id": "contoso.onmicrosoft.com",
        "client_id": "4a1c2b3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        "client_secret_env": "CONTOSO_GRAPH_SECRET",
        "tap_lifetime_minutes": "120",
        "ca_bundle": "/etc/vouchsafe/test-ca.pem",
        "graph_url": "https://127.0.0.1:8444 (sha256:",
    },
    "okta": {
        "org_url": "https://acme.okta.com (sha256:",
        "client_id": "0oa1b2c3d4e5f6g7h8i9",
        "key_id": "acme-2026",
        "private_key_env": "ACME_OKTA_PRIVATE_KEY",
        "api_token_env": "—",
        "manage_roles": "false",
    },
    "google_workspace": {
        "admin_email": "recovery-admin@acme.example",
        "customer_id": "C03az79cb",
        "service_account_key_file": "/etc/vouchsafe/acme-google.json",
        "token_uri": "https://oauth2.googleapis.com (sha256:",
        "manage_roles": "true",
    },
}


@pytest.mark.parametrize("kind", CLOUD)
def test_a_cloud_connector_in_force_is_shown_in_clear_but_its_urls(acme, admin, kind):
    config = connector_set(acme, kind=kind, settings=CLOUD[kind])
    shown = in_force(body(signed_in_client(admin).get(url(acme))))
    assert set(shown) == set(config.settings)
    assert all(shown[name].startswith(value) for name, value in CLOUD_SHOWN[kind].items())
    hashed = {name for name, text in shown.items() if "sha256:" in text}
    assert hashed == {name for name, rule in SHOWN[kind].items() if rule == ORIGIN}
    assert "/token" not in json.dumps(shown)  # Google's token address, only as its origin


# --- deciding ---------------------------------------------------------------------------------


def test_a_second_admin_approves_with_a_fresh_code_and_it_applies(acme, admin, second_admin):
    change = pending(acme, admin)
    client = signed_in_client(second_admin)
    assert "Approve and apply" in body(client.get(url(acme)))
    response = client.post(
        url(acme, f"changes/{change.pk}/approve/"), {"token": totp_token(second_admin)}
    )
    assert response.status_code == 302
    change.refresh_from_db()
    assert (change.status, change.decided_by) == (ConnectorChangeStatus.APPLIED, second_admin)
    assert ConnectorConfig.objects.for_tenant(acme).get().kind == "webhook"
    event = AuditEvent.objects.get(tenant=acme, action="connector.change_approved")
    assert event.data["step_up"]["device_type"] == "totp"
    html = body(client.get(response.url))
    assert "The change is approved and the connector now uses it." in html
    assert "No change is waiting." in html


def test_the_requester_cannot_approve_their_own_change(acme, admin):
    change = pending(acme, admin)
    response = signed_in_client(admin).post(
        url(acme, f"changes/{change.pk}/approve/"), {"token": totp_token(admin)}, follow=True
    )
    assert "Whoever proposed a change cannot approve it. (sod.approver_is_requester)" in body(
        response
    )
    change.refresh_from_db()
    assert change.status == ConnectorChangeStatus.PENDING
    assert not ConnectorConfig.objects.for_tenant(acme).exists()


def test_the_same_person_under_another_account_cannot_approve(acme, admin):
    alias = make_user(person_id=str(admin.person_id))
    member(alias, Role.TENANT_ADMIN, tenant=acme)
    change = pending(acme, admin)
    response = signed_in_client(alias).post(
        url(acme, f"changes/{change.pk}/approve/"), {"token": totp_token(alias)}, follow=True
    )
    assert "(sod.same_person)" in body(response)
    assert not ConnectorConfig.objects.for_tenant(acme).exists()


@pytest.mark.parametrize("token", ["", "000000"], ids=["missing", "wrong"])
def test_approval_without_a_valid_fresh_code_applies_nothing(acme, admin, second_admin, token):
    change = pending(acme, admin)
    response = signed_in_client(second_admin).post(
        url(acme, f"changes/{change.pk}/approve/"), {"token": token}, follow=True
    )
    assert "(stepup." in body(response)
    change.refresh_from_db()
    assert change.status == ConnectorChangeStatus.PENDING
    assert not ConnectorConfig.objects.for_tenant(acme).exists()


def test_another_admin_rejects_with_a_reason_and_the_requester_withdraws(acme, admin, second_admin):
    change = pending(acme, admin)
    reviewer = signed_in_client(second_admin)
    no_reason = reviewer.post(url(acme, f"changes/{change.pk}/reject/"), {}, follow=True)
    assert "(connector.reason_invalid)" in body(no_reason)
    reviewer.post(url(acme, f"changes/{change.pk}/reject/"), {"reason": "wrong host"})
    change.refresh_from_db()
    assert (change.status, change.reason) == (ConnectorChangeStatus.REJECTED, "wrong host")

    second = pending(acme, admin)
    signed_in_client(admin).post(url(acme, f"changes/{second.pk}/withdraw/"), {"reason": ""})
    second.refresh_from_db()
    assert second.status == ConnectorChangeStatus.WITHDRAWN
    html = body(reviewer.get(url(acme)))
    assert f'id="connector-change-{change.pk}"' in html and "wrong host" in html
    assert not ConnectorConfig.objects.for_tenant(acme).exists()


# --- test connection --------------------------------------------------------------------------


def test_test_connection_shows_the_outcome_and_is_audited(acme, admin, second_admin, monkeypatch):
    monkeypatch.delenv("ACME_HOOK_KEY", raising=False)
    change = pending(acme, admin)
    client = signed_in_client(second_admin)
    failed = client.post(url(acme, "test/"), {"change": change.pk}, follow=True)
    assert "Connection failed: The signing key variable" in body(failed)
    works = client.post(url(acme, "test/"), follow=True)
    assert "Connection works: Manual: nothing to reach" in body(works)
    recorded = AuditEvent.objects.filter(tenant=acme, action="connector.tested").order_by("seq")
    assert [(e.data["configuration"], e.data["ok"]) for e in recorded] == [
        ("pending", False),
        ("active", True),
    ]
