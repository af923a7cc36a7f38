"""Console form of a connector change: the kind, then that kind's settings, one field each.

`KIND_SETTINGS` says which settings each kind asks for, with a label and help text; extend it
when a kind is added. A kind missing from it is still configurable: its settings are typed as
one JSON object. A field left empty is left out, so `validate_settings` fills in its default;
the service checks everything again (the form only shapes the input).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db import models
from django.utils.functional import Promise
from django.utils.html import escape
from django.utils.translation import gettext_lazy as _

from .choices import ConnectorKind, Directory, ManualConsole, PasswordMode
from .summary import shown_in_full

TEXT, ENV, URL, BOOL, INT, CHOICE, LINES, JSON = (
    "text",
    "env",
    "url",
    "bool",
    "int",
    "choice",
    "lines",
    "json",
)
ENV_HELP = _(
    "The name of an environment variable set on every server (A-Z, 0-9, _); never the secret "
    "itself."
)


@dataclass(frozen=True)
class Setting:
    """One setting as the console asks for it."""

    name: str
    label: Promise
    help: Promise | str = ""
    type: str = TEXT
    required: bool = False
    choices: type[models.TextChoices] | None = None
    advanced: bool = False  # shown folded: most tenants keep the default
    initial: Any = None  # what a new configuration's field starts with (a box ticked or not)


KIND_SETTINGS: dict[str, tuple[Setting, ...]] = {
    "manual": (
        Setting(
            "console",
            _("Console named in the steps"),
            _("Whose menu paths the default steps give."),
            CHOICE,
            choices=ManualConsole,
        ),
        Setting(
            "steps",
            _("Your own steps (JSON)"),
            _(
                "Optional: a JSON object from a case type (unlock, password_reset, …) to its "
                "list of steps. A step may name the account with {username}, {external_id} "
                "or {display_name}."
            ),
            JSON,
            advanced=True,
        ),
    ),
    "ldap": (
        Setting("directory", _("Directory"), "", CHOICE, choices=Directory),
        Setting(
            "server_uri",
            _("Server"),
            _("ldaps://host[:port], or ldap://host[:port] with StartTLS."),
            required=True,
        ),
        Setting("start_tls", _("Use StartTLS"), "", BOOL),
        Setting("bind_dn", _("Service account DN"), "", required=True),
        Setting(
            "bind_password_env", _("Variable holding its password"), ENV_HELP, ENV, required=True
        ),
        Setting("base_dn", _("Search base DN"), "", required=True),
        Setting(
            "user_filter",
            _("User filter"),
            _("Uses {username} and/or {external_id}; empty for the directory's default."),
        ),
        Setting(
            "temporary_access_group_dn",
            _("Temporary-access group DN"),
            _("The group that grants temporary access; empty for none."),
        ),
        Setting(
            "admin_group_dns",
            _("Admin group DNs"),
            _(
                "Groups whose membership is a standing admin role, separated by ';': a T2 "
                "recovery takes the account out of them until an approved restore (R-19)."
            ),
        ),
        Setting("tls_ca_file", _("CA bundle file"), _("An absolute path."), advanced=True),
        Setting(
            "allow_unencrypted",
            _("Allow an unencrypted connection"),
            _("Only for a directory on the same host."),
            BOOL,
            advanced=True,
        ),
        Setting("timeout_seconds", _("Timeout (seconds)"), "", INT, advanced=True),
        Setting(
            "password_mode", _("Password mode"), "", CHOICE, choices=PasswordMode, advanced=True
        ),
        Setting("password_attribute", _("Password attribute"), advanced=True),
        Setting("must_change_attribute", _("Must-change attribute"), advanced=True),
        Setting("must_change_value", _("Must-change value"), advanced=True),
        Setting("must_change_object_class", _("Must-change object class"), advanced=True),
        Setting("uac_clear_bits", _("userAccountControl bits to clear"), "", INT, advanced=True),
        Setting("unlock_attribute", _("Unlock attribute"), advanced=True),
        Setting("unlock_value", _("Unlock value"), advanced=True),
        Setting("group_member_attribute", _("Group member attribute"), advanced=True),
        Setting("temporary_access_attribute", _("Temporary-access attribute"), advanced=True),
        Setting("temporary_access_value", _("Temporary-access value"), advanced=True),
    ),
    "webhook": (
        Setting(
            "url",
            _("URL of your automation"),
            _("https. Type it in full each time: the stored one is shown only as its origin."),
            URL,
            required=True,
        ),
        Setting("secret_env", _("Variable holding the signing key"), ENV_HELP, ENV, required=True),
    ),
    "entra": (
        Setting(
            "tenant_id",
            _("Directory (tenant) ID"),
            _(
                "On the app registration's Overview page in the Entra admin center: a GUID, or "
                "the tenant's domain such as contoso.onmicrosoft.com."
            ),
            required=True,
        ),
        Setting(
            "client_id",
            _("Application (client) ID"),
            _("On the same Overview page: a GUID."),
            required=True,
        ),
        Setting(
            "client_secret_env",
            _("Variable holding the client secret"),
            _(
                "The name of the environment variable that holds the app's client secret on "
                "every server (A-Z, 0-9, _) — never the secret itself."
            ),
            ENV,
            required=True,
        ),
        Setting(
            "tap_lifetime_minutes",
            _("Temporary Access Pass lifetime (minutes)"),
            _(
                "How long the one-time pass shown to the owner stays valid: 10 to 480 minutes; "
                "empty for 60. The tenant's Temporary Access Pass policy must allow it."
            ),
            INT,
        ),
        Setting(
            "privileged_roles",
            _("Privileged roles"),
            _(
                "The roles a T2 recovery suspends until a separate approved case restores them: "
                "one role template ID (a GUID) per line. Empty for Microsoft's built-in "
                "privileged roles."
            ),
            LINES,
            advanced=True,
        ),
        Setting(
            "authority_host",
            _("Sign-in address"),
            _(
                "Where the connector gets its tokens, without a path. Empty for "
                "https://login.microsoftonline.com; change it only for a national cloud or a "
                "test server."
            ),
            URL,
            advanced=True,
        ),
        Setting(
            "graph_url",
            _("Microsoft Graph address"),
            _(
                "Without a path. Empty for https://graph.microsoft.com; change it only for a "
                "national cloud or a test server."
            ),
            URL,
            advanced=True,
        ),
        Setting(
            "ca_bundle",
            _("CA certificates file"),
            _(
                "The absolute path of a PEM file of the certificate authorities to trust, for a "
                "test server. Empty for the system's."
            ),
            advanced=True,
        ),
    ),
    "okta": (
        Setting(
            "org_url",
            _("Okta org address"),
            _("Your Okta org's address without a path, such as https://acme.okta.com."),
            URL,
            required=True,
        ),
        Setting(
            "client_id",
            _("Service app's client ID"),
            _(
                "The client ID of the API Services app, which starts with 0oa. Leave it empty "
                "when you name an API token instead."
            ),
        ),
        Setting(
            "key_id",
            _("Key ID"),
            _("The key ID (kid) of the app's public key; needed only when the app has several."),
        ),
        Setting(
            "private_key_env",
            _("Variable holding the private key"),
            _(
                "The name of the environment variable that holds the app's private key (PEM or "
                "JWK) on every server (A-Z, 0-9, _) — never the key itself. Name one credential "
                "only: this variable, the key file or an API token."
            ),
            ENV,
        ),
        Setting(
            "private_key_file",
            _("Or: file holding the private key"),
            _("The absolute path of the file that holds the app's private key on every server."),
        ),
        Setting(
            "api_token_env",
            _("Or: variable holding an API token"),
            _(
                "For an org that still uses API tokens instead of a service app: the name of the "
                "environment variable that holds the token — never the token itself."
            ),
            ENV,
        ),
        Setting(
            "manage_roles",
            _("Suspend and restore admin roles"),
            _(
                "Tick only if the service app holds the Super Admin role and the "
                "okta.roles.manage scope. Unticked, suspending a T2 account's admin roles stays "
                "a manual step for a person."
            ),
            BOOL,
            initial=True,
        ),
    ),
    "google_workspace": (
        Setting(
            "admin_email",
            _("Administrator to act as"),
            _(
                "The e-mail address of a Workspace administrator: the service account acts as "
                "them (domain-wide delegation)."
            ),
            required=True,
        ),
        Setting(
            "customer_id",
            _("Customer ID"),
            _(
                "In the Admin console under Account settings; it starts with C. Empty for the "
                "customer of the administrator above."
            ),
        ),
        Setting(
            "service_account_key_file",
            _("File holding the service account key"),
            _(
                "The absolute path of the service account's JSON key file on every server. Name "
                "one: this file or the variable below."
            ),
        ),
        Setting(
            "service_account_key_env",
            _("Or: variable holding the service account key"),
            _(
                "The name of the environment variable that holds the JSON key on every server "
                "(A-Z, 0-9, _) — never the key itself."
            ),
            ENV,
        ),
        Setting(
            "manage_roles",
            _("Suspend and restore admin roles"),
            _(
                "Tick only if the admin.directory.rolemanagement scope is delegated. Unticked, "
                "suspending a T2 account's admin roles stays a manual step for a person."
            ),
            BOOL,
            initial=True,
        ),
        Setting(
            "token_uri",
            _("Token address"),
            _(
                "Empty for https://oauth2.googleapis.com/token; change it only for a test server. "
                "A stored address is shown only as its origin: to keep one of your own, type it "
                "again with each change."
            ),
            URL,
            advanced=True,
        ),
        Setting(
            "api_endpoint",
            _("Admin SDK address"),
            _(
                "Without a path. Empty for https://admin.googleapis.com; change it only for a "
                "test server."
            ),
            URL,
            advanced=True,
        ),
        Setting(
            "manage_delegates",
            _("Grant and remove mailbox delegations"),
            _(
                "Tick only if the gmail.settings.sharing scope is delegated. Unticked, a shared "
                "mailbox's time-bound delegation is granted and removed by a person (tracked "
                "manual steps)."
            ),
            BOOL,
            initial=True,
        ),
        Setting(
            "gmail_endpoint",
            _("Gmail API address"),
            _(
                "Without a path. Empty for https://gmail.googleapis.com; change it only for a "
                "test server."
            ),
            URL,
            advanced=True,
        ),
    ),
}
# A kind with no entry above: its settings as one JSON object.
ANY_SETTINGS = (
    Setting(
        "settings",
        _("Settings (JSON object)"),
        _("Secrets are named environment variables or files, never the values."),
        JSON,
    ),
)


def kind_settings(kind: str) -> tuple[Setting, ...]:
    return KIND_SETTINGS.get(kind, ANY_SETTINGS)


def _field(setting: Setting) -> forms.Field:
    common: dict[str, Any] = {
        "label": setting.label,
        # Django renders help text as HTML: escaped, it shows as typed (`<`, `'`, `&`).
        "help_text": escape(setting.help),
        "required": setting.required,
    }
    if setting.type == BOOL:
        return forms.BooleanField(**{**common, "required": False}, initial=setting.initial)
    if setting.type == INT:
        return forms.IntegerField(**common)
    if setting.type == CHOICE:
        choices = [("", _("(default)")), *setting.choices.choices]
        return forms.ChoiceField(choices=choices, **common)
    if setting.type in (LINES, JSON):
        rows = 6 if setting.type == JSON else 4
        attrs = {"rows": rows, "class": "code", "spellcheck": "false"}
        return forms.CharField(widget=forms.Textarea(attrs=attrs), max_length=50_000, **common)
    attrs = {"spellcheck": "false", "autocapitalize": "off"}
    if setting.type == ENV:
        attrs["autocapitalize"] = "characters"
    return forms.CharField(max_length=2000, widget=forms.TextInput(attrs=attrs), **common)


def _initial(setting: Setting, kind: str, value: Any) -> Any:
    """The stored value as the field shows it. A value the summary shows only in part (a URL
    with a path, a setting it does not know) is not put back into the page."""
    if not shown_in_full(kind, setting.name, value):
        return None
    if setting.type == JSON:
        return json.dumps(value, indent=2, ensure_ascii=False) if value else ""
    if setting.type == LINES:
        return "\n".join(value)
    return value


class ConnectorChangeForm(forms.Form):
    """A proposal: the kind (fixed for this form), whether it is active, and its settings."""

    kind = forms.ChoiceField(choices=ConnectorKind.choices, widget=forms.HiddenInput)
    is_active = forms.BooleanField(
        label=_("Active"),
        required=False,
        initial=True,
        help_text=_("Unticked, recoveries go through the manual connector meanwhile."),
    )

    def __init__(
        self, *args: Any, kind: str, current: tuple[dict[str, Any], bool] | None = None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.kind_name = kind
        self.fields["kind"].initial = kind
        self.settings_fields = kind_settings(kind)
        for setting in self.settings_fields:
            self.fields[setting.name] = _field(setting)
        if current is not None:
            stored, is_active = current
            self.fields["is_active"].initial = is_active
            for setting in self.settings_fields:
                if setting.name in stored:
                    self.fields[setting.name].initial = _initial(
                        setting, kind, stored[setting.name]
                    )

    def _clean_json(self, name: str) -> Any:
        text = self.cleaned_data.get(name) or ""
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError:
            self.add_error(name, _("Not valid JSON."))
            return None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for setting in self.settings_fields:
            if setting.type == JSON and setting.name in cleaned:
                cleaned[setting.name] = self._clean_json(setting.name)
        return cleaned

    def settings(self) -> dict[str, Any]:
        """The settings typed: empty fields left out (their default applies)."""
        if self.settings_fields is ANY_SETTINGS:
            return self.cleaned_data["settings"] or {}
        data: dict[str, Any] = {}
        for setting in self.settings_fields:
            value = self.cleaned_data.get(setting.name)
            if setting.type == LINES:
                value = [line.strip() for line in (value or "").splitlines() if line.strip()]
            if setting.type == BOOL or value not in (None, "", []):
                data[setting.name] = value
        return data

    def add_service_errors(self, field_errors: dict[str, list[str]]) -> None:
        """The service's problems, each under its field (`steps.unlock` under `steps`)."""
        for name, problems in field_errors.items():
            field = name.split(".", 1)[0]
            for problem in problems:
                if field in self.fields and field != "kind":
                    self.add_error(field, problem)
                else:
                    self.add_error(None, f"{name}: {problem}")

    def groups(self) -> tuple[list[forms.BoundField], list[forms.BoundField]]:
        """The settings' fields: the usual ones, then those most tenants leave at default."""
        usual = [self[s.name] for s in self.settings_fields if not s.advanced]
        advanced = [self[s.name] for s in self.settings_fields if s.advanced]
        return usual, advanced
