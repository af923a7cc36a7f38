"""/admin/ shows and never changes (issue 17 item 1), for every model registered there.

Walks `admin.site._registry` as a verified superuser: the changelist answers 200 (or the model
has no admin pages at all), the add page is 403, a change page shows no secret (TOTP seeds,
backup codes, emailed codes, password hashes), and a POST to change or delete changes nothing.
A model registered later is covered the moment it is registered.
"""

from __future__ import annotations

import base64

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db.models import Model
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django_otp.plugins.otp_email.models import EmailDevice
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants.choices import Role
from tenants.models import User

from ..conftest import signed_in_client
from ..factories import PASSWORD, staff, unique

pytestmark = pytest.mark.django_db

BACKUP_CODE = "bkp7q2xz"
EMAILED_CODE = "739104"


def _url(model: type[Model], page: str, *args) -> str | None:
    try:
        return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{page}", args=args)
    except NoReverseMatch:
        return None


@pytest.fixture
def root_client(acme) -> tuple[Client, list[str]]:
    """A verified superuser, objects of every registered model, and every secret among them."""
    root = User.objects.create_superuser(username=unique("root"), password=PASSWORD)
    TOTPDevice.objects.create(user=root, name="test", confirmed=True)
    client = signed_in_client(root)
    other = staff(Role.AGENT, tenant=acme)  # a TOTP device, a membership, an audit log entry
    backups = StaticDevice.objects.create(user=other, name="backup", confirmed=True)
    StaticToken.objects.create(device=backups, token=BACKUP_CODE)
    EmailDevice.objects.create(
        user=other, name="email", confirmed=True, token=EMAILED_CODE, valid_until=timezone.now()
    )
    Group.objects.create(name=unique("group"))
    secrets = [BACKUP_CODE, EMAILED_CODE]
    for device in TOTPDevice.objects.all():
        secrets += [device.key, base64.b32encode(device.bin_key).decode()]
    for user in User.objects.all():
        # the whole hash, and its salt and digest (long parts; not the algorithm's name)
        secrets += [user.password, *(part for part in user.password.split("$") if len(part) > 8)]
    return client, secrets


def _registered() -> list[type[Model]]:
    return list(admin.site._registry)


def test_the_walk_covers_the_secret_holding_models():
    labels = {model._meta.label for model in _registered()}
    assert {"otp_totp.TOTPDevice", "otp_static.StaticDevice", "tenants.User"} <= labels


@pytest.mark.parametrize("model", _registered(), ids=lambda model: model._meta.label)
def test_every_admin_model_is_read_only_and_shows_no_secret(root_client, model):
    client, secrets = root_client
    changelist = _url(model, "changelist")
    pages: list[str] = []
    if changelist is not None:
        response = client.get(changelist)
        assert response.status_code == 200, changelist
        pages.append(response.content.decode())
    add = _url(model, "add")
    if add is not None:
        assert client.get(add).status_code == 403, add
        assert client.post(add, {}).status_code == 403, add
    count = model._default_manager.count()
    for obj in model._default_manager.all()[:20]:
        before = model_to_dict(obj)
        change = _url(model, "change", obj.pk)
        if change is not None:
            response = client.get(change)
            assert response.status_code == 200, change  # view-only
            pages.append(response.content.decode())
            data = {**{k: v for k, v in before.items() if v is not None}, "name": "changed"}
            assert client.post(change, data).status_code == 403, change
        delete = _url(model, "delete", obj.pk)
        if delete is not None:
            assert client.get(delete).status_code == 403, delete
            assert client.post(delete, {"post": "yes"}).status_code == 403, delete
        assert model_to_dict(model._default_manager.get(pk=obj.pk)) == before
    assert model._default_manager.count() == count
    if changelist is not None:
        action = client.post(
            changelist,
            {
                "action": "delete_selected",
                "_selected_action": [o.pk for o in model._default_manager.all()[:20]],
                "post": "yes",
            },
        )
        assert action.status_code in (200, 302, 403)
        assert model._default_manager.count() == count
    for html in pages:
        shown = [secret for secret in secrets if secret and secret in html]
        assert not shown, f"{model._meta.label}: secrets rendered in an admin page: {shown}"
