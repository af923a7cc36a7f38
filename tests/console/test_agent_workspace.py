"""The agent workspace: find an account, see it masked, open a case, keep prior attempts and
one's own open cases in view; tenant-safe, role-checked, with constant query counts."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_cancel, case_open
from tenants.choices import Role

from ..conftest import signed_in_client
from ..factories import active_grant, make_account, make_account_with, staff
from ..pages import page
from ..recovery.casework import contact

pytestmark = pytest.mark.django_db

MOBILE = "+15550107788"
HOME_EMAIL = "jamie.home@example.test"
# Words no input of the console may be named or labelled with: nothing to type a number, an
# address, a code destination or a password into.
FORBIDDEN = re.compile(r"phone|number|destination|password|e-?mail|tel\b", re.IGNORECASE)


class _Fields(HTMLParser):
    """The form fields of a page, each with its name, type and the text of its label."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[dict[str, str]] = []
        self.labels: dict[str, str] = {}
        self._label_for: str | None = None
        self._label_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        if tag in {"input", "select", "textarea"}:
            self.fields.append({"tag": tag, **attributes})
        elif tag == "label":
            self._label_for, self._label_text = attributes.get("for", ""), []

    def handle_data(self, data: str) -> None:
        if self._label_for is not None:
            self._label_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "label" and self._label_for is not None:
            self.labels[self._label_for] = " ".join("".join(self._label_text).split())
            self._label_for = None


def typed_fields(body: str) -> list[dict[str, str]]:
    """Every field a person can type or pick into (hidden fields excluded), with its label."""
    parser = _Fields()
    parser.feed(body)
    fields = [f for f in parser.fields if f.get("type") not in {"hidden", "submit"}]
    for field in fields:
        field["label"] = parser.labels.get(field.get("id", ""), "")
    return fields


# How the contact arrived (R-55 d, R-56): stored only as keyed hashes and masked hints, so
# never a destination (tests/recovery/test_detection.py proves no clear value is kept).
CALLER_FIELDS = frozenset(f"open-caller_{kind}" for kind in ("number", "email", "chat", "name"))


def assert_no_secret_inputs(body: str) -> None:
    """No field is named or labelled for a phone number, an address, a destination or a
    password, nor typed as one; the search box (`q`) and code boxes are the only text boxes
    that are not free text about the case."""
    fields = typed_fields(body)
    assert fields, "the page has no form at all"
    for field in fields:
        if field.get("name") in CALLER_FIELDS:
            continue  # data about the caller, kept hashed, never a destination (test_detection)
        words = " ".join(field.get(k, "") for k in ("name", "id", "label", "placeholder"))
        words += " " + field.get("aria-label", "") + " " + field.get("autocomplete", "")
        assert not FORBIDDEN.search(words), field
        assert field.get("type") not in {"password", "tel", "email"}, field


def workspace_url(tenant, query: str = "") -> str:
    return f"/t/{tenant.slug}/workspace/" + (f"?q={query}" if query else "")


def account_url(tenant, account) -> str:
    return f"/t/{tenant.slug}/workspace/accounts/{account.pk}/"


def open_url(tenant, account) -> str:
    return f"/t/{tenant.slug}/workspace/accounts/{account.pk}/open/"


def with_contacts(tenant, **attributes):
    account = make_account_with(tenant, **attributes)
    contact(account, "mobile", MOBILE)
    contact(account, "email", HOME_EMAIL)
    return account


# --- search ---------------------------------------------------------------------------------


def test_search_finds_accounts_with_tier_and_masked_contacts_only(acme):
    account = with_contacts(acme, groups=["Finance"])
    make_account(acme)  # another account that does not match
    client = signed_in_client(staff(Role.AGENT, tenant=acme))

    response = client.get(workspace_url(acme, account.external_id))

    body = response.content.decode()
    assert response.status_code == 200
    assert account.display_name in body and "1 account found." in body
    assert f"tier-{account.tier}" in body
    assert "***88" in body and "j***@example.test" in body
    assert MOBILE not in body and HOME_EMAIL not in body


def test_search_as_you_type_answers_with_the_results_only(acme):
    account = with_contacts(acme)
    client = signed_in_client(staff(Role.AGENT, tenant=acme))

    response = client.get(workspace_url(acme, account.username[:12]), HTTP_HX_REQUEST="true")

    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body and account.display_name in body
    assert 'id="account-results-status"' in body and 'hx-swap-oob="innerHTML"' in body
    assert "My open cases" not in body
    assert "HX-Request" in response["Vary"]
    restored = client.get(
        workspace_url(acme, account.username[:12]),
        HTTP_HX_REQUEST="true",
        HTTP_HX_HISTORY_RESTORE_REQUEST="true",
    )
    assert "<html" in restored.content.decode()  # htmx restoring history needs the whole page


def test_search_stays_inside_the_tenant(acme, globex):
    theirs = make_account_with(globex, external_id="shared-name-globex")
    ours = make_account_with(acme, external_id="shared-name-acme")
    client = signed_in_client(staff(Role.AGENT, tenant=acme))

    body = client.get(workspace_url(acme, "shared-name")).content.decode()

    assert ours.display_name in body and theirs.display_name not in body


def test_a_too_long_search_is_refused_with_a_message(acme):
    client = signed_in_client(staff(Role.AGENT, tenant=acme))
    response = client.get(workspace_url(acme, "x" * 201))
    assert response.status_code == 200
    assert "Ensure this value has at most 200 characters" in response.content.decode()


def test_results_are_paginated_at_a_constant_query_count(acme, django_assert_num_queries):
    client = signed_in_client(staff(Role.AGENT, tenant=acme))
    for _ in range(10):
        with_contacts(acme, groups=["pagetest"])
    url = workspace_url(acme, "ext-")
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    for _ in range(40):
        with_contacts(acme)
    with django_assert_num_queries(len(few.captured_queries)):
        body = client.get(url).content.decode()
    assert "Page 1 of 3" in body and "50 accounts found." in body
    second = client.get(url + "&page=3").content.decode()
    assert "Page 3 of 3" in second and "q=ext-&amp;page=2" in second


# --- my open cases --------------------------------------------------------------------------


def test_my_open_cases_lists_only_my_open_workable_cases(acme):
    agent = staff(Role.AGENT, tenant=acme)
    colleague = staff(Role.AGENT, tenant=acme)
    mine = case_open(actor=agent, account=make_account(acme), case_type="unlock", channel="phone")
    ended = case_open(actor=agent, account=make_account(acme), case_type="unlock", channel="phone")
    case_cancel(actor=agent, case=ended, reason="caller hung up")
    theirs = case_open(
        actor=colleague, account=make_account(acme), case_type="unlock", channel="phone"
    )
    privileged = case_open(
        actor=agent,
        account=make_account_with(acme, admin_roles=["Global Administrator"]),
        case_type="unlock",
        channel="phone",
    )
    assert privileged.route == "security"

    body = signed_in_client(agent).get(workspace_url(acme)).content.decode()

    assert f"/cases/{mine.pk}/" in body
    for other in (ended, theirs, privileged):
        assert f"/cases/{other.pk}/" not in body


def test_my_open_cases_cost_the_same_queries_for_ten_and_fifty(acme, django_assert_num_queries):
    agent = staff(Role.AGENT, tenant=acme)
    client = signed_in_client(agent)

    def open_cases(count: int) -> None:
        for _ in range(count):
            case_open(actor=agent, account=make_account(acme), case_type="unlock", channel="chat")

    open_cases(10)
    with CaptureQueriesContext(connection) as few:
        client.get(workspace_url(acme))
    open_cases(40)
    with django_assert_num_queries(len(few.captured_queries)):
        body = client.get(workspace_url(acme)).content.decode()
    assert "Page 1 of 3" in body
    assert "Page 2 of 3" in client.get(workspace_url(acme) + "?cases=2").content.decode()


# --- the account, and opening a case --------------------------------------------------------


def test_account_page_shows_contacts_masked_and_prior_attempts_newest_first(acme):
    agent = staff(Role.AGENT, tenant=acme)
    account = with_contacts(acme)
    first = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    case_cancel(actor=agent, case=first, reason="caller could not answer")
    second = case_open(actor=agent, account=account, case_type="password_reset", channel="phone")

    body = signed_in_client(agent).get(account_url(acme, account)).content.decode()

    assert "***88" in body and MOBILE not in body and HOME_EMAIL not in body
    assert body.index(f"Case {second.pk}") < body.index(f"Case {first.pk}")
    assert "caller could not answer" in body and "Cancelled" in body and "Still open" in body
    assert 'name="open-case_type"' in body


def test_opening_a_case_lands_on_its_page_with_server_computed_tier(acme):
    agent = staff(Role.AGENT, tenant=acme)
    account = with_contacts(acme, groups=["Finance"])
    client = signed_in_client(agent)

    response = client.post(
        open_url(acme, account),
        {
            "open-case_type": "password_reset",
            "open-channel": "phone",
            "open-claimant_statement": "Locked out after holiday",
        },
    )

    case = RecoveryCase.objects.get(account=account)
    assert response.status_code == 302 and response.url == f"/t/{acme.slug}/cases/{case.pk}/"
    assert case.opened_by == agent and case.channel == "phone" and case.tier == "T1"
    assert AuditEvent.objects.filter(tenant=acme, action="case.opened", target_id=str(case.pk))
    landed = client.get(response.url).content.decode()
    assert f"Case {case.pk} opened." in landed and "Locked out after holiday" in landed


def test_an_exception_without_justification_is_refused_and_the_input_kept(acme):
    account = make_account(acme)
    client = signed_in_client(staff(Role.AGENT, tenant=acme))

    response = client.post(
        open_url(acme, account),
        {
            "open-case_type": "exception",
            "open-channel": "walk_in",
            "open-claimant_statement": "Lost every device on a trip",
        },
    )

    body = response.content.decode()
    assert response.status_code == 400
    assert "(case.justification_required)" in body
    assert "Explain why the standard path cannot be used." in body
    assert "Lost every device on a trip" in body
    assert not RecoveryCase.objects.filter(account=account).exists()


def test_an_msp_agent_is_offered_only_the_case_types_of_their_grant(acme, deskco):
    active_grant(deskco, acme)  # T0 accounts, password resets only
    agent = staff(Role.AGENT, provider=deskco)
    account = make_account(acme)
    client = signed_in_client(agent)

    body = client.get(account_url(acme, account)).content.decode()
    options = re.findall(r'<option value="([a-z_]+)"', body.split('name="open-case_type"')[1])
    assert options[: options.index("phone")] == ["password_reset"]

    refused = client.post(
        open_url(acme, account), {"open-case_type": "mfa_reset", "open-channel": "phone"}
    )
    assert refused.status_code == 400
    assert "Select a valid choice" in refused.content.decode()
    assert not RecoveryCase.objects.filter(account=account).exists()


def test_an_msp_agent_sees_why_they_cannot_open_a_case_above_their_grant(acme, deskco):
    active_grant(deskco, acme)
    account = make_account_with(acme, groups=["Finance"])  # T1
    client = signed_in_client(staff(Role.AGENT, provider=deskco))

    body = client.get(account_url(acme, account)).content.decode()

    assert "(grant.tier_not_allowed)" in body and 'name="open-case_type"' not in body
    forced = client.post(
        open_url(acme, account), {"open-case_type": "password_reset", "open-channel": "phone"}
    )
    assert forced.status_code == 400 and "(grant.tier_not_allowed)" in forced.content.decode()
    assert not RecoveryCase.objects.filter(account=account).exists()


# --- who may use it -------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.TENANT_ADMIN])
def test_roles_that_do_not_work_cases_get_a_403_and_nothing_is_written(acme, role):
    account = make_account(acme)
    client = signed_in_client(staff(role, tenant=acme))

    assert client.get(workspace_url(acme)).status_code == 403
    assert client.get(account_url(acme, account)).status_code == 403
    posted = client.post(
        open_url(acme, account), {"open-case_type": "unlock", "open-channel": "phone"}
    )
    assert posted.status_code == 403
    assert not RecoveryCase.objects.filter(account=account).exists()
    assert "Workspace" not in client.get(f"/t/{acme.slug}/").content.decode()


def test_another_tenants_account_is_a_404_like_a_missing_one(acme, globex):
    theirs = make_account(globex)
    client = signed_in_client(staff(Role.AGENT, tenant=acme))
    missing = type(theirs)(pk=theirs.pk + 10_000)

    for url in (account_url, open_url):
        method = client.post if url is open_url else client.get
        data = {"open-case_type": "unlock", "open-channel": "phone"} if url is open_url else None
        foreign = method(url(acme, theirs), data)
        absent = method(url(acme, missing), data)
        assert foreign.status_code == absent.status_code == 404
        assert page(foreign) == page(absent)
        assert theirs.display_name not in foreign.content.decode()
    assert not RecoveryCase.objects.filter(account=theirs).exists()


def test_the_nav_shows_the_workspace_to_case_workers_and_marks_the_current_page(acme):
    client = signed_in_client(staff(Role.SUPERVISOR, tenant=acme))
    link = f'href="/t/{acme.slug}/workspace/"'
    on_page = client.get(workspace_url(acme)).content.decode()
    assert f'{link} aria-current="page"' in on_page
    elsewhere = client.get(f"/t/{acme.slug}/").content.decode()
    assert link in elsewhere and f'{link} aria-current="page"' not in elsewhere


def test_the_workspace_has_no_field_for_a_number_an_address_or_a_password(acme):
    account = with_contacts(acme)
    client = signed_in_client(staff(Role.AGENT, tenant=acme))

    workspace = client.get(workspace_url(acme, account.external_id)).content.decode()
    assert sorted(f["name"] for f in typed_fields(workspace)) == ["language", "q"]
    assert_no_secret_inputs(workspace)
    assert_no_secret_inputs(client.get(account_url(acme, account)).content.decode())


def test_the_tenant_account_page_links_case_workers_to_the_workspace(acme):
    account = make_account(acme)
    detail = f"/t/{acme.slug}/accounts/{account.pk}/"
    link = f'href="{account_url(acme, account)}"'

    for role, shown in ((Role.AGENT, True), (Role.AUDITOR, False)):
        body = signed_in_client(staff(role, tenant=acme)).get(detail).content.decode()
        assert (link in body) is shown
