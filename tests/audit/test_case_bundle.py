"""A case's evidence bundle and the standalone verifier (issue 15 part 4, R-43, R-46, R-50).

A T1 case goes to execution through the real services: S2 and S3 evidence, an attachment, a
supervisor's passkey approval and an agent's passkey execution, each bound to the case. An
auditor downloads its bundle over the API; `verifier/vouchsafe_verify.py` runs in a
subprocess in which importing Django fails. Then each kind of part is tampered with, one at a
time. Most tampered bundles are sealed again with the real signing key (a fresh manifest with
every sha256 right), so the check that must catch the change is the part's own, not the
manifest's; the manifest and its signature are tampered with on their own too.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings as django_settings
from django.db import transaction
from django.template.loader import render_to_string
from django.test import override_settings

from audit.bundle import BUNDLE_SIGNER
from audit.chain import HASHED_FIELDS, row_hash
from audit.checkpoints import (
    CHECKPOINT_ACTION,
    DirectoryStore,
    Ed25519KeySigner,
    checkpoints_sign,
)
from audit.models import AuditEvent
from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_open, case_release_cooled, case_submit
from recovery.cases.services.attachments import attachment_add
from tenants.choices import Role

from ..api.conftest import api, staff_api_client
from ..conftest import signed_in_client
from ..factories import execute, make_account, make_account_with, make_tenant, notices_sent, staff
from ..recovery.casework import approved, contact, signal
from .checkpointing import new_signer
from .test_reads_recorded import refused

VERIFIER = Path(django_settings.BASE_DIR) / "verifier" / "vouchsafe_verify.py"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
DOWNLOAD = "audit.bundle_downloaded"


# --- building a real case and its bundle ------------------------------------------------------


def executed_case(tenant) -> RecoveryCase:
    """A T1 temporary-access case carried out: evidence, an attachment, a passkey approval
    (a supervisor) and a passkey execution (another agent)."""
    agent = staff(Role.AGENT, tenant=tenant)
    account = make_account_with(tenant, groups=["finance"])
    contact(account)
    case = case_open(actor=agent, account=account, case_type="temporary_access", channel="phone")
    assert case.tier == "T1"
    evidence = signal(case, agent, "S2")
    signal(case, agent, "S3")
    attachment_add(actor=agent, case=case, name="badge.png", content=PNG, evidence=evidence)
    case = approved(case_submit(actor=agent, case=case))
    RecoveryCase.objects.filter(pk=case.pk).update(cooling_off_until=case.created_at)
    case = case_release_cooled(case=case)
    assert set(notices_sent(tenant)) <= {"sent"}
    case = execute(case, staff(Role.AGENT, tenant=tenant))
    assert case.status == "executed", case.status
    return case


def bundle_url(case: RecoveryCase) -> str:
    return api(case.tenant, f"cases/{case.pk}/bundle/")


def deployment(root: Path, key: Ed25519KeySigner) -> dict:
    """The settings of a deployment: the key in a file, its public half trusted (written by
    `new_signer` to `root/trusted`), two checkpoint stores, an evidence store."""
    key_file = root / "signing-key.pem"
    key_file.write_bytes(
        key._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {
        "AUDIT_SIGNING_KEY_FILE": str(key_file),
        "AUDIT_TRUSTED_KEYS": [str(root / "trusted")],
        "AUDIT_CHECKPOINT_STORES": [
            {"CLASS": "audit.checkpoints.DirectoryStore", "OPTIONS": {"path": str(root / name)}}
            for name in ("worm", "offsite")
        ],
        "EVIDENCE_STORAGE_DIR": root / "evidence",
    }


@dataclass(frozen=True)
class Downloaded:
    """A bundle as an auditor took it away, and what a test needs to check and tamper."""

    content: bytes
    signer: Ed25519KeySigner
    trusted_pem: Path
    case_id: int
    attachment_sha256: str
    events_of_case: int


@pytest.fixture(scope="module")
def downloaded(django_db_setup, django_db_blocker, tmp_path_factory) -> Downloaded:
    """One executed case's bundle, downloaded over the API by an auditor (built once: the
    tampering tests need only its bytes; the database work is rolled back)."""
    root = tmp_path_factory.mktemp("bundle")
    key = new_signer(root / "trusted")
    with (
        django_db_blocker.unblock(),
        override_settings(**deployment(root, key)),
        transaction.atomic(),
    ):
        tenant = make_tenant()
        case = executed_case(tenant)
        response = staff_api_client(staff(Role.AUDITOR, tenant=tenant)).get(bundle_url(case))
        assert response.status_code == 200, response.content[:500]
        assert response["Content-Type"] == "application/zip"
        assert response["Cache-Control"] == "no-store"
        assert response["Content-Disposition"].startswith("attachment; filename=")
        attachment = case.attachments.get()
        events = AuditEvent.objects.filter(
            tenant=tenant, target_type="recovery.RecoveryCase", target_id=str(case.pk)
        ).count()
        transaction.set_rollback(True)
    trusted_pem = next((root / "trusted").glob("*.pem"))
    return Downloaded(
        content=response.content,
        signer=key,
        trusted_pem=trusted_pem,
        case_id=case.pk,
        attachment_sha256=attachment.sha256,
        events_of_case=events,
    )


# --- running the verifier as an outsider would ------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    code: int
    lines: list[str]

    def failing_parts(self) -> set[str]:
        """The part each FAIL line names (`FAIL  <part>: …`, a chain row as its file)."""
        parts = set()
        for line in self.lines:
            if line.startswith("FAIL  "):
                part = line[4:].strip().split(": ", 1)[0]
                parts.add(part.split(" seq ", 1)[0])
        return parts


def verify(tmp_path: Path, content: bytes, *keys: Path) -> Verdict:
    """`vouchsafe-verify bundle.zip [--key …]` in a fresh interpreter where `import django`
    fails: proof that the verifier needs nothing of the application."""
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(content)
    argv = [str(VERIFIER), str(bundle)]
    for key in keys:
        argv += ["--key", str(key)]
    program = (
        "import sys; sys.modules['django'] = None; import runpy; "
        f"sys.argv = {argv!r}; runpy.run_path({str(VERIFIER)!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Verdict(done.returncode, (done.stdout + done.stderr).splitlines())


def members(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def resealed(files: dict[str, bytes], key: Ed25519KeySigner) -> dict[str, bytes]:
    """A fresh manifest over the files as they are now, signed with the real key: only the
    part's own check can then catch what changed."""
    import hashlib

    manifest = json.loads(files["manifest.json"])
    manifest["files"] = {
        name: hashlib.sha256(content).hexdigest()
        for name, content in sorted(files.items())
        if name not in ("manifest.json", "manifest.sig")
    }
    body = json.dumps(manifest, indent=1, sort_keys=True).encode() + b"\n"
    return {
        **files,
        "manifest.json": body,
        "manifest.sig": base64.b64encode(key.sign(body)) + b"\n",
    }


def jsonl_rows(blob: bytes) -> list[dict]:
    return [json.loads(line) for line in blob.splitlines()]


def jsonl_blob(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(row, ensure_ascii=False).encode() + b"\n" for row in rows)


def edited_json(files: dict[str, bytes], name: str, change: Callable[[dict], None]) -> None:
    value = json.loads(files[name])
    change(value)
    files[name] = json.dumps(value).encode()


def checkpoint_name(files: dict[str, bytes]) -> str:
    return next(name for name in files if name.startswith("checkpoints/"))


# --- the tampering, one kind of part at a time -------------------------------------------------


def _event_field(files: dict[str, bytes], _: Downloaded) -> None:
    rows = jsonl_rows(files["events.jsonl"])
    rows[0]["actor_label"] = "someone-else"
    files["events.jsonl"] = jsonl_blob(rows)


def _chain_row_in_the_middle(files: dict[str, bytes], _: Downloaded) -> None:
    rows = jsonl_rows(files["chain.jsonl"])
    rows[len(rows) // 2]["data"]["tampered"] = True
    files["chain.jsonl"] = jsonl_blob(rows)


def _chain_row_rewritten_with_its_hash(files: dict[str, bytes], _: Downloaded) -> None:
    """What a database administrator does: change a row and recompute its hash (the next
    row's link, and the checkpoint above it, still name the old one)."""
    rows = jsonl_rows(files["chain.jsonl"])
    row = rows[len(rows) // 2]
    row["actor_label"] = "someone-else"
    values = [row[name] for name in HASHED_FIELDS]
    values[HASHED_FIELDS.index("created_at")] = datetime.fromisoformat(row["created_at"])
    row["hash"] = row_hash(tuple(values))
    files["chain.jsonl"] = jsonl_blob(rows)


def _checkpoint_statement(files: dict[str, bytes], _: Downloaded) -> None:
    edited_json(
        files, checkpoint_name(files), lambda body: body["statement"].update(signed_at="2020")
    )


def _checkpoint_signature(files: dict[str, bytes], _: Downloaded) -> None:
    def flip(body: dict) -> None:
        raw = bytearray(base64.b64decode(body["signature"]))
        raw[0] ^= 1
        body["signature"] = base64.b64encode(bytes(raw)).decode()

    edited_json(files, checkpoint_name(files), flip)


def _evidence_digest(files: dict[str, bytes], _: Downloaded) -> None:
    edited_json(files, "evidence.json", lambda body: body["evidence"][0].update(digest="0" * 64))


def _attachment_byte(files: dict[str, bytes], bundle: Downloaded) -> None:
    name = f"attachments/{bundle.attachment_sha256}"
    raw = bytearray(files[name])
    raw[-1] ^= 0xFF
    files[name] = bytes(raw)


def _approval_signature(files: dict[str, bytes], _: Downloaded) -> None:
    def forge(body: dict) -> None:
        assertion = body["approvals"][0]["step_up"]["assertion"]
        raw = bytearray(base64.urlsafe_b64decode(assertion["signature"] + "=="))
        raw[-1] ^= 1
        assertion["signature"] = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")

    edited_json(files, "approvals.json", forge)


def _passkey_public_key(files: dict[str, bytes], _: Downloaded) -> None:
    """Another key in place of the approver's passkey: the stored assertion is still the one
    the chain recorded, so only the signature check can catch it."""
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()

    def swap(body: dict) -> None:
        passkey = str(body["approvals"][0]["step_up"]["assertion"]["passkey"])
        body["credentials"][passkey]["public_key_pem"] = pem

    edited_json(files, "approvals.json", swap)


def _policy_text(files: dict[str, bytes], _: Downloaded) -> None:
    name = next(name for name in files if name.startswith("policy/"))
    files[name] = files[name].replace(b"T1", b"T0", 1)


def _policy_version_removed(files: dict[str, bytes], _: Downloaded) -> None:
    record = json.loads(files["policy.json"])
    for version in record["versions"]:
        del files[version["file"]]
    record["versions"] = []
    files["policy.json"] = json.dumps(record).encode()


def _dropped_event(files: dict[str, bytes], _: Downloaded) -> None:
    rows = jsonl_rows(files["events.jsonl"])
    files["events.jsonl"] = jsonl_blob(rows[:2] + rows[3:])


# Each tamper, the part its FAIL line must name, and the parts it may also break (a case event
# changed in the chain proof is no longer the event events.jsonl holds).
RESEALED_TAMPERS = {
    "an event field": (_event_field, "events.jsonl", set()),
    "a chain row in the middle": (_chain_row_in_the_middle, "chain.jsonl", {"events.jsonl"}),
    "a chain row rewritten with its hash": (
        _chain_row_rewritten_with_its_hash,
        "chain.jsonl",
        {"events.jsonl"},
    ),
    "the checkpoint statement": (_checkpoint_statement, "checkpoints/", set()),
    "the checkpoint signature": (_checkpoint_signature, "checkpoints/", set()),
    "an evidence digest": (_evidence_digest, "evidence.json", set()),
    "an attachment byte": (_attachment_byte, "attachments/", set()),
    "an approval's assertion signature": (_approval_signature, "approvals.json", set()),
    "a passkey's public key": (_passkey_public_key, "approvals.json", set()),
    "the policy text": (_policy_text, "policy/", set()),
    "the deciding policy version removed": (_policy_version_removed, "policy.json", set()),
    "a dropped event": (_dropped_event, "events.jsonl", set()),
}


def test_the_downloaded_bundle_verifies_with_the_trusted_key(downloaded, tmp_path):
    verdict = verify(tmp_path, downloaded.content, downloaded.trusted_pem)
    assert verdict.code == 0, "\n".join(verdict.lines)
    assert verdict.lines[-1].startswith("VERIFIED"), verdict.lines
    assert not verdict.failing_parts()
    text = "\n".join(verdict.lines)
    for part in (
        "manifest.sig",
        "chain.jsonl",
        "events.jsonl",
        "evidence.json",
        "policy.json",
        "checkpoints/",
    ):
        assert f"OK    {part}" in text, part
    # the passkey approval and the passkey execution were both checked again
    assert sum("passkey assertion verifies" in line for line in verdict.lines) == 2, text


def test_the_bundle_holds_every_part_of_the_case(downloaded):
    files = members(downloaded.content)
    manifest = json.loads(files["manifest.json"])
    assert manifest["case"] == downloaded.case_id
    assert set(manifest["files"]) == set(files) - {"manifest.json", "manifest.sig"}
    assert f"attachments/{downloaded.attachment_sha256}" in files
    assert f"checkpoints/{manifest['checkpoint_seq']}.json" in files
    events = jsonl_rows(files["events.jsonl"])
    assert len(events) >= downloaded.events_of_case
    assert {"case.opened", "approval.approved", "case.executed"} <= {e["action"] for e in events}
    assert set(events[0]) == {*HASHED_FIELDS, "hash"}
    approvals = json.loads(files["approvals.json"])
    assert approvals["execution"]["step_up"]["assertion"]["inputs"]["action"] == "execute"
    for credential in approvals["credentials"].values():
        assert credential["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert json.loads(files["policy.json"])["versions"]


@pytest.mark.parametrize("tamper", sorted(RESEALED_TAMPERS))
def test_tampering_with_each_part_fails_naming_it(downloaded, tmp_path, tamper):
    change, part, collateral = RESEALED_TAMPERS[tamper]
    files = members(downloaded.content)
    change(files, downloaded)
    verdict = verify(tmp_path, zipped(resealed(files, downloaded.signer)), downloaded.trusted_pem)
    assert verdict.code == 1, "\n".join(verdict.lines)
    assert verdict.lines[-1].startswith("FAILED"), verdict.lines
    failing = verdict.failing_parts()
    named = {p for p in failing if p.startswith(part)}
    assert named, f"{tamper}: no FAIL names {part}:\n" + "\n".join(verdict.lines)
    assert failing - named <= collateral, f"{tamper}: other parts failed: {failing}"


def test_a_part_changed_without_a_new_manifest_fails_its_sha256(downloaded, tmp_path):
    files = members(downloaded.content)
    _evidence_digest(files, downloaded)
    verdict = verify(tmp_path, zipped(files), downloaded.trusted_pem)
    assert verdict.code == 1
    assert "FAIL  evidence.json: its sha256 differs from the manifest's" in verdict.lines


def test_a_name_held_twice_in_the_zip_fails(downloaded, tmp_path):
    """Zip tools disagree on which of two same-named members wins: refused either way."""
    files = members(downloaded.content)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, pytest.warns(UserWarning, match="Duplicate"):
        for name, content in files.items():
            archive.writestr(name, content)
        archive.writestr("events.jsonl", b"")
    verdict = verify(tmp_path, buffer.getvalue(), downloaded.trusted_pem)
    assert verdict.code == 1
    assert "FAIL  events.jsonl: the zip holds this name more than once" in verdict.lines


def test_an_edited_manifest_fails_its_signature(downloaded, tmp_path):
    files = members(downloaded.content)
    files["manifest.json"] = files["manifest.json"].replace(
        f'"case": {downloaded.case_id}'.encode(), f'"case": {downloaded.case_id + 1}'.encode()
    )
    verdict = verify(tmp_path, zipped(files), downloaded.trusted_pem)
    assert verdict.code == 1
    assert "manifest.sig" in verdict.failing_parts(), verdict.lines


def test_a_tampered_manifest_signature_fails(downloaded, tmp_path):
    files = members(downloaded.content)
    raw = bytearray(base64.b64decode(files["manifest.sig"]))
    raw[10] ^= 1
    files["manifest.sig"] = base64.b64encode(bytes(raw))
    verdict = verify(tmp_path, zipped(files), downloaded.trusted_pem)
    assert verdict.code == 1
    assert verdict.failing_parts() == {"manifest.sig"}, verdict.lines


def test_a_bundle_resealed_with_another_key_fails_with_the_trusted_key(downloaded, tmp_path):
    files = members(downloaded.content)
    _event_field(files, downloaded)
    forger = new_signer(tmp_path / "forger")
    files[f"keys/{forger.key_id.replace(':', '-')}.pem"] = next(
        (tmp_path / "forger").glob("*.pem")
    ).read_bytes()
    edited_json(files, "manifest.json", lambda manifest: manifest.update(key_id=forger.key_id))
    verdict = verify(tmp_path, zipped(resealed(files, forger)), downloaded.trusted_pem)
    assert verdict.code == 1
    assert "manifest.sig" in verdict.failing_parts()
    assert any("which is not a trusted key" in line for line in verdict.lines)


def test_the_wrong_key_fails(downloaded, tmp_path):
    other = new_signer(tmp_path / "other")
    verdict = verify(tmp_path, downloaded.content, *(tmp_path / "other").glob("*.pem"))
    assert other.key_id != downloaded.signer.key_id
    assert verdict.code == 1
    assert {"manifest.sig", f"checkpoints/{_checkpoint_seq(downloaded)}.json"} <= (
        verdict.failing_parts()
    )


def _checkpoint_seq(bundle: Downloaded) -> int:
    return json.loads(members(bundle.content)["manifest.json"])["checkpoint_seq"]


def test_without_a_key_it_checks_integrity_only_and_says_so(downloaded, tmp_path):
    verdict = verify(tmp_path, downloaded.content)
    assert verdict.code == 0, verdict.lines
    assert verdict.lines[0].startswith("WARNING: no --key given")
    assert "integrity only" in verdict.lines[-1]


def test_usage_errors_exit_2(downloaded, tmp_path):
    verdict = verify(tmp_path, b"not a zip", downloaded.trusted_pem)
    assert verdict.code == 2
    assert any("not a readable zip" in line for line in verdict.lines)


def test_the_wrapper_script_and_the_console_script_entry_point():
    wrapper = Path(django_settings.BASE_DIR) / "scripts" / "vouchsafe-verify"
    assert wrapper.stat().st_mode & 0o111
    done = subprocess.run([str(wrapper), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "vouchsafe-verify" in done.stdout
    project = (VERIFIER.parent / "pyproject.toml").read_text()
    assert 'vouchsafe-verify = "vouchsafe_verify:main"' in project


# --- who may download, and every download recorded ---------------------------------------------


@dataclass(frozen=True)
class Deployed:
    key: Ed25519KeySigner
    trusted: Path
    stores: list[DirectoryStore]


@pytest.fixture
def deployed(settings, tmp_path) -> Deployed:
    key = new_signer(tmp_path / "trusted")
    for name, value in deployment(tmp_path, key).items():
        setattr(settings, name, value)
    stores = [
        DirectoryStore(tmp_path / "worm", "worm"),
        DirectoryStore(tmp_path / "offsite", "off"),
    ]
    return Deployed(key=key, trusted=tmp_path / "trusted", stores=stores)


@pytest.fixture
def opened(acme):
    agent = staff(Role.AGENT, tenant=acme)
    case = case_open(actor=agent, account=make_account(acme), case_type="unlock", channel="phone")
    signal(case, agent, "S2")
    return case


def downloads(case: RecoveryCase) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=case.tenant, action=DOWNLOAD).order_by("seq"))


@pytest.mark.django_db
def test_a_download_is_recorded_with_the_manifest_it_handed_out(deployed, opened, tmp_path):
    auditor = staff(Role.AUDITOR, tenant=opened.tenant)
    response = staff_api_client(auditor).get(bundle_url(opened))
    assert response.status_code == 200, response.content[:300]
    [event] = downloads(opened)
    manifest = members(response.content)["manifest.json"]
    assert event.data["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert event.data["case"] == opened.pk
    assert event.actor_id == str(auditor.pk)
    # the checkpoint was signed on demand for the case, and recorded before the download
    checkpoint = AuditEvent.objects.get(tenant=opened.tenant, action=CHECKPOINT_ACTION)
    assert checkpoint.actor_label == BUNDLE_SIGNER.label
    assert checkpoint.seq < event.seq
    assert event.data["checkpoint_seq"] == json.loads(manifest)["checkpoint_seq"]
    assert verify(tmp_path, response.content, *deployed.trusted.glob("*.pem")).code == 0


@pytest.mark.django_db
def test_a_stored_checkpoint_that_covers_the_case_is_used_not_a_new_one(deployed, opened):
    checkpoints_sign(actor=BUNDLE_SIGNER, signer=deployed.key, stores=deployed.stores)
    signed = AuditEvent.objects.filter(action=CHECKPOINT_ACTION, tenant=opened.tenant).count()
    response = staff_api_client(staff(Role.SECURITY_OFFICER, tenant=opened.tenant)).get(
        bundle_url(opened)
    )
    assert response.status_code == 200
    assert (
        AuditEvent.objects.filter(action=CHECKPOINT_ACTION, tenant=opened.tenant).count() == signed
    )


@pytest.mark.django_db
def test_an_agent_cannot_download_a_bundle(deployed, opened):
    agent = staff(Role.AGENT, tenant=opened.tenant)
    response = staff_api_client(agent).get(bundle_url(opened))
    assert response.status_code == 403
    assert response.json()["code"] == "auth.scope_missing"
    console = signed_in_client(agent).get(f"/t/{opened.tenant.slug}/cases/{opened.pk}/bundle/")
    assert console.status_code == 403
    assert not downloads(opened)


@pytest.mark.django_db
def test_another_tenants_case_is_a_404_like_a_missing_one(deployed, opened, globex):
    auditor = staff(Role.AUDITOR, tenant=globex)
    client = staff_api_client(auditor)
    foreign = client.get(api(globex, f"cases/{opened.pk}/bundle/"))
    missing = client.get(api(globex, "cases/2000000000/bundle/"))
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert client.get(bundle_url(opened)).status_code == 404  # acme itself: not their tenant
    assert not downloads(opened)


@pytest.mark.django_db
def test_the_console_button_downloads_the_bundle(deployed, opened):
    officer = staff(Role.SECURITY_OFFICER, tenant=opened.tenant)
    response = signed_in_client(officer).get(f"/t/{opened.tenant.slug}/cases/{opened.pk}/bundle/")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment; filename=")
    assert response["Cache-Control"] == "no-store"
    assert zipfile.is_zipfile(io.BytesIO(response.content))
    assert len(downloads(opened)) == 1


@pytest.mark.django_db
def test_the_timeline_button_links_to_the_download(opened, rf):
    request = rf.get("/")
    request.tenant = opened.tenant
    html = render_to_string(
        "console/audit/_bundle_button.html", {"case_id": opened.pk}, request=request
    )
    assert f'href="/t/{opened.tenant.slug}/cases/{opened.pk}/bundle/"' in html


@pytest.mark.django_db
def test_no_bundle_when_the_download_cannot_be_recorded(deployed, opened):
    auditor = staff(Role.AUDITOR, tenant=opened.tenant)
    with refused(DOWNLOAD):
        response = staff_api_client(auditor).get(bundle_url(opened))
    assert response.status_code == 503
    assert response.json()["code"] == "audit.read_not_recorded"
    assert response["Content-Type"] != "application/zip"
    assert not downloads(opened)


@pytest.mark.django_db
def test_no_bundle_without_a_checkpoint_store(settings, opened):
    settings.AUDIT_CHECKPOINT_STORES = []
    auditor = staff(Role.AUDITOR, tenant=opened.tenant)
    response = staff_api_client(auditor).get(bundle_url(opened))
    assert response.status_code == 503
    assert response.json()["code"] == "bundle.no_checkpoint"
    assert not downloads(opened)
