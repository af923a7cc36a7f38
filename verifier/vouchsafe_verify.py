"""Check a Vouchsafe case evidence bundle with nothing but Python 3.11 and `cryptography`.

    vouchsafe-verify case-12-acme-evidence.zip --key trusted.pem

No Django, no database, nothing imported from the application: the canonical form of an
audit row, the checkpoint statement and the step-up challenge are reimplemented here from
docs/audit.md. Each check prints one line, `OK` or `FAIL`, naming the part it checked, then a
verdict. Exit status: 0 when every check holds, 1 when one fails, 2 for a usage error (no such
file, not a zip, an unreadable key).

`--key` (repeatable) names the trusted Ed25519 public key(s) of the checkpoint signer, as PEM.
Without it the keys inside the bundle are used: that proves the bundle is intact, not who made
it, since anyone can put their own key in a bundle.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

BUNDLE_FORMAT = "vouchsafe-bundle/1"
CHECKPOINT_FORMAT = "vouchsafe-checkpoint/1"
MANIFEST, MANIFEST_SIG = "manifest.json", "manifest.sig"
HASHED_FIELDS = (
    "tenant_id",
    "seq",
    "action",
    "actor_id",
    "actor_label",
    "actor_type",
    "actor_org",
    "target_type",
    "target_id",
    "target_repr",
    "data",
    "request_id",
    "ip",
    "user_agent",
    "created_at",
    "prev_hash",
)
# WebAuthn authenticator data flags: user present, user verified.
FLAG_UP, FLAG_UV = 0x01, 0x04
# COSE algorithms a passkey may sign with: number -> (key type, hash).
COSE_ALGORITHMS: dict[int, tuple[str, hashes.HashAlgorithm | None]] = {
    -7: ("ec", hashes.SHA256()),
    -35: ("ec", hashes.SHA384()),
    -36: ("ec", hashes.SHA512()),
    -257: ("rsa", hashes.SHA256()),
    -258: ("rsa", hashes.SHA384()),
    -259: ("rsa", hashes.SHA512()),
    -8: ("ed25519", None),
}
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """The verifier cannot start: a missing or unreadable bundle or key."""


# --- the canonical forms (docs/audit.md) ------------------------------------------------------


def row_hash(row: dict[str, Any]) -> str:
    """sha256 of an audit row's canonical form: the 16 hashed fields as one JSON array,
    `created_at` as UTC ISO-8601 with six fractional digits, sorted keys, compact, UTF-8."""
    values = [row[name] for name in HASHED_FIELDS]
    moment = datetime.fromisoformat(row["created_at"]).astimezone(UTC)
    values[HASHED_FIELDS.index("created_at")] = moment.isoformat(timespec="microseconds")
    text = json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_bytes(value: Any) -> bytes:
    """What a checkpoint signs: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def key_id_of(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def step_up_challenge(inputs: dict[str, Any]) -> bytes:
    """The challenge a step-up passkey signed: SHA-256(`snapshot|action|case|nonce`)."""
    text = f"{inputs['snapshot']}|{inputs['action']}|{int(inputs['case'])}|{inputs['nonce']}"
    return hashlib.sha256(text.encode()).digest()


def b64url_decode(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64url text")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def assertion_sha256(assertion: dict[str, Any]) -> str:
    """The digest the chain records of a stored assertion (`step_up.assertion_sha256`)."""
    return hashlib.sha256(
        json.dumps(assertion, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


# --- the report ------------------------------------------------------------------------------


@dataclass
class Report:
    """One line per check; `failures` counts the FAIL lines."""

    out: Callable[[str], None] = print
    failures: int = 0

    def check(self, ok: bool, part: str, message: str) -> bool:
        self.out(f"{'OK' if ok else 'FAIL':<4}  {part}: {message}")
        if not ok:
            self.failures += 1
        return ok

    def fail(self, part: str, message: str) -> bool:
        return self.check(False, part, message)


# --- reading the bundle ----------------------------------------------------------------------


@dataclass
class Bundle:
    files: dict[str, bytes]
    duplicates: list[str]  # names the zip holds more than once (tools disagree on which wins)

    @classmethod
    def open(cls, path: Path) -> Bundle:
        try:
            with zipfile.ZipFile(path) as archive:
                names = [info.filename for info in archive.infolist()]
                files = {info.filename: archive.read(info) for info in archive.infolist()}
        except FileNotFoundError:
            raise UsageError(f"no such file: {path}") from None
        except (zipfile.BadZipFile, OSError) as error:
            raise UsageError(f"{path} is not a readable zip file: {error}") from None
        duplicates = sorted({name for name in names if names.count(name) > 1})
        return cls(files, duplicates)

    def json(self, name: str) -> Any:
        return json.loads(self.files[name])

    def jsonl(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.files[name].splitlines() if line.strip()]


def load_keys(paths: list[str]) -> dict[str, Ed25519PublicKey]:
    keys = {}
    for path in paths:
        try:
            key = serialization.load_pem_public_key(Path(path).read_bytes())
        except (OSError, ValueError) as error:
            raise UsageError(f"cannot read the key {path}: {error}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise UsageError(f"{path} is not an Ed25519 public key")
        keys[key_id_of(key)] = key
    return keys


def embedded_keys(bundle: Bundle) -> dict[str, Ed25519PublicKey]:
    keys = {}
    for name, content in bundle.files.items():
        if name.startswith("keys/") and name.endswith(".pem"):
            try:
                key = serialization.load_pem_public_key(content)
            except ValueError:
                continue
            if isinstance(key, Ed25519PublicKey):
                keys[key_id_of(key)] = key
    return keys


# --- the checks ------------------------------------------------------------------------------


def check_manifest(
    bundle: Bundle, keys: dict[str, Ed25519PublicKey], report: Report
) -> dict[str, Any] | None:
    """The manifest's signature, then each file's sha256 against it; the manifest or None."""
    if MANIFEST not in bundle.files or MANIFEST_SIG not in bundle.files:
        report.fail(MANIFEST, "the bundle has no manifest.json or no manifest.sig")
        return None
    body = bundle.files[MANIFEST]
    try:
        manifest = json.loads(body)
        key_id = str(manifest["key_id"])
        files = dict(manifest["files"])
        if manifest.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"not a {BUNDLE_FORMAT} manifest")
    except (ValueError, KeyError, TypeError) as error:
        report.fail(MANIFEST, f"unreadable: {error}")
        return None
    key = keys.get(key_id)
    if key is None:
        report.fail(MANIFEST_SIG, f"signed with key {key_id}, which is not a trusted key")
    else:
        try:
            key.verify(base64.b64decode(bundle.files[MANIFEST_SIG], validate=False), body)
            report.check(True, MANIFEST_SIG, f"the manifest's signature verifies with {key_id}")
        except (InvalidSignature, binascii.Error, ValueError):
            report.fail(MANIFEST_SIG, f"the manifest's signature does not verify with {key_id}")
    before = report.failures
    for name, expected in sorted(files.items()):
        content = bundle.files.get(name)
        if content is None:
            report.fail(name, "listed in the manifest but missing from the bundle")
        elif hashlib.sha256(content).hexdigest() != expected:
            report.fail(name, "its sha256 differs from the manifest's")
    for name in sorted(set(bundle.files) - set(files) - {MANIFEST, MANIFEST_SIG}):
        report.fail(name, "in the bundle but not listed in the manifest")
    for name in bundle.duplicates:
        report.fail(name, "the zip holds this name more than once")
    if report.failures == before:
        report.check(True, MANIFEST, f"{len(files)} files, each sha256 as listed")
    return manifest


def _rows(bundle: Bundle, name: str, report: Report) -> list[dict[str, Any]] | None:
    try:
        rows = bundle.jsonl(name)
        for row in rows:
            missing = [f for f in (*HASHED_FIELDS, "hash") if f not in row]
            if missing:
                raise ValueError(f"seq {row.get('seq')} lacks {', '.join(missing)}")
        return rows
    except KeyError:
        report.fail(name, "missing from the bundle")
    except ValueError as error:
        report.fail(name, f"unreadable: {error}")
    return None


def _hash_problem(row: dict[str, Any]) -> str | None:
    try:
        return None if row_hash(row) == row["hash"] else "content does not match its hash"
    except (ValueError, TypeError) as error:
        return f"cannot be hashed: {error}"


def check_chain(
    chain: list[dict[str, Any]], manifest: dict[str, Any], report: Report
) -> dict[int, dict[str, Any]]:
    """Each row's hash recomputed and each link checked, from the first case event's seq to
    the checkpoint's; the rows by seq."""
    first, last = int(manifest["first_seq"]), int(manifest["checkpoint_seq"])
    tenant = manifest["tenant"]["id"]
    before, expected_seq, prev = report.failures, first, None
    for row in chain:
        where = f"chain.jsonl seq {row['seq']}"
        problems = []
        if row["seq"] != expected_seq:
            problems.append(f"expected seq {expected_seq}")
        if row["tenant_id"] != tenant:
            problems.append("belongs to another chain")
        if prev is not None and row["prev_hash"] != prev:
            problems.append("prev_hash does not link to the previous row")
        hash_problem = _hash_problem(row)
        if hash_problem:
            problems.append(hash_problem)
        if problems:
            report.fail(where, "; ".join(problems))
        expected_seq, prev = row["seq"] + 1, row["hash"]
    if expected_seq - 1 != last:
        report.fail("chain.jsonl", f"ends at seq {expected_seq - 1}, not at {last}")
    if report.failures == before:
        report.check(
            True, "chain.jsonl", f"seq {first}…{last}: every hash recomputed, every link holds"
        )
    return {row["seq"]: row for row in chain}


def check_checkpoint(
    bundle: Bundle,
    manifest: dict[str, Any],
    chain: dict[int, dict[str, Any]],
    keys: dict[str, Ed25519PublicKey],
    report: Report,
) -> None:
    """The checkpoint's signature, and that it states the chain proof's hash at its seq."""
    seq = int(manifest["checkpoint_seq"])
    name = f"checkpoints/{seq}.json"
    try:
        body = bundle.json(name)
        statement = body["statement"]
        signature = base64.b64decode(body["signature"])
        if statement.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a {CHECKPOINT_FORMAT} statement")
    except KeyError:
        report.fail(name, "missing from the bundle")
        return
    except (ValueError, TypeError, AttributeError, binascii.Error) as error:
        report.fail(name, f"unreadable: {error}")
        return
    key_id = str(statement.get("key_id"))
    key = keys.get(key_id)
    if key is None:
        report.fail(name, f"signed with key {key_id}, which is not a trusted key")
    else:
        try:
            key.verify(signature, canonical_bytes(statement))
            report.check(True, name, f"the checkpoint's signature verifies with {key_id}")
        except InvalidSignature:
            report.fail(name, f"the checkpoint's signature does not verify with {key_id}")
    problems = []
    if statement.get("chain") != manifest["chain"] or statement.get("seq") != seq:
        problems.append(f"states {statement.get('chain')} seq {statement.get('seq')}")
    row = chain.get(seq)
    if row is None or statement.get("hash") != row["hash"]:
        problems.append(f"its hash is not the chain proof's hash at seq {seq}")
    if problems:
        report.fail(name, "; ".join(problems))
    else:
        report.check(True, name, f"states the chain proof's hash at seq {seq}")


def _is_subject(row: dict[str, Any], subject: dict[str, str]) -> bool:
    if row["target_type"] == subject["target_type"] and row["target_id"] == subject["target_id"]:
        return True
    data = row["data"] if isinstance(row["data"], dict) else {}
    key = subject["data_key"]
    return key in data and str(data[key]) == subject["target_id"]


def check_events(
    events: list[dict[str, Any]],
    chain: dict[int, dict[str, Any]],
    manifest: dict[str, Any],
    report: Report,
) -> None:
    """Each case event's hash recomputed; each one in the chain proof as it is; every event of
    the case the chain proof holds is in events.jsonl."""
    subject = manifest["subject"]
    before = report.failures
    listed = set()
    for event in events:
        where = f"events.jsonl seq {event['seq']}"
        listed.add(event["seq"])
        problem = _hash_problem(event)
        if problem:
            report.fail(where, problem)
        elif chain.get(event["seq"]) != event:
            report.fail(where, "not in the chain proof as it is here")
        elif not _is_subject(event, subject):
            report.fail(where, "is not an event of this case")
    for seq, row in sorted(chain.items()):
        if _is_subject(row, subject) and seq not in listed:
            report.fail("events.jsonl", f"the case's event at seq {seq} is missing")
    if not events:
        report.fail("events.jsonl", "holds no event")
    if report.failures == before:
        report.check(
            True, "events.jsonl", f"{len(events)} events: hashes recomputed, all in the chain proof"
        )


def _recorded(
    events: list[dict[str, Any]], key: str, value: Any, prefix: str = ""
) -> Iterator[dict[str, Any]]:
    """The data of the case's events whose `data[key]` is `value` (and action `prefix`…)."""
    for event in events:
        data = event["data"] if isinstance(event["data"], dict) else {}
        if event["action"].startswith(prefix) and data.get(key) == value:
            yield data


def check_evidence(bundle: Bundle, events: list[dict[str, Any]], report: Report) -> None:
    """Each evidence digest as the chain recorded it; each attachment's bytes against its
    sha256, and that sha256 as the chain recorded it."""
    try:
        record = bundle.json("evidence.json")
        evidence, attachments = record["evidence"], record["attachments"]
    except (KeyError, ValueError, TypeError) as error:
        report.fail("evidence.json", f"missing or unreadable: {error}")
        return
    before = report.failures
    for row in evidence:
        digests = {
            d.get("digest")
            for d in _recorded(events, "evidence", row["id"], "verification.signal_")
        }
        if not digests:
            report.fail("evidence.json", f"evidence {row['id']} is in no case event")
        elif digests != {row["digest"]}:
            message = f"evidence {row['id']}: its digest differs from the chain's"
            report.fail("evidence.json", message)
    for row in attachments:
        part = row.get("file") or f"attachment {row['id']}"
        content = bundle.files.get(row.get("file") or "")
        recorded = {d.get("sha256") for d in _recorded(events, "attachment", row["id"])}
        if content is None:
            report.fail(part, f"attachment {row['id']}: its file is missing")
        elif hashlib.sha256(content).hexdigest() != row["sha256"]:
            message = f"attachment {row['id']}: its bytes do not match the recorded sha256"
            report.fail(part, message)
        elif recorded != {row["sha256"]}:
            message = f"attachment {row['id']}: its sha256 differs from the chain's"
            report.fail("evidence.json", message)
    if report.failures == before:
        report.check(
            True,
            "evidence.json",
            f"{len(evidence)} evidence digests and {len(attachments)} attachments as recorded",
        )


# --- step-up assertions ----------------------------------------------------------------------


def _signature_holds(credential: dict[str, Any], signed: bytes, signature: bytes) -> str | None:
    """Why `signature` over `signed` does not verify with the credential's key, or None."""
    try:
        key = serialization.load_pem_public_key(credential["public_key_pem"].encode())
        kind, digest = COSE_ALGORITHMS[int(credential["alg"])]
    except (KeyError, ValueError, TypeError):
        return "the passkey's public key or algorithm is unreadable or not supported"
    try:
        if kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey) and digest:
            key.verify(signature, signed, ec.ECDSA(digest))
        elif kind == "rsa" and isinstance(key, RSAPublicKey) and digest:
            key.verify(signature, signed, padding.PKCS1v15(), digest)
        elif kind == "ed25519" and isinstance(key, Ed25519PublicKey):
            key.verify(signature, signed)
        else:
            return "the passkey's key does not match its algorithm"
    except InvalidSignature:
        return "the signature does not verify with the passkey's public key"
    return None


def _rp_problem(authenticator_data: bytes, origin: str) -> str | None:
    """The relying party id hash must be the origin's host or a parent domain of it."""
    labels = (urlsplit(origin).hostname or "").split(".")
    candidates = {".".join(labels[i:]) for i in range(len(labels)) if labels[i]}
    digests = {hashlib.sha256(c.encode()).digest() for c in candidates}
    return None if authenticator_data[:32] in digests else "signed for another relying party"


def step_up_problem(
    step_up: Any,
    *,
    case_id: int,
    action: str,
    snapshot: str | None,
    credentials: dict[str, Any],
) -> str | None:
    """Why a stored passkey step-up does not hold, or None (see docs/audit.md, "Stored step-up
    assertions are checked again")."""
    stored = step_up.get("assertion") if isinstance(step_up, dict) else None
    if not isinstance(stored, dict):
        return "no passkey assertion stored"
    inputs = stored.get("inputs") or {}
    if inputs.get("case") != case_id or inputs.get("action") != action:
        return "recorded for another case or action"
    if snapshot is not None and inputs.get("snapshot") != snapshot:
        return "the recorded snapshot does not match the challenge inputs"
    credential = credentials.get(str(stored.get("passkey")))
    if credential is None or credential.get("credential_id") != stored.get("credential_id"):
        return "its passkey's public key is not in the bundle"
    try:
        challenge = step_up_challenge(inputs)
        authenticator_data = b64url_decode(stored["authenticator_data"])
        client_data_raw = b64url_decode(stored["client_data_json"])
        client_data = json.loads(client_data_raw)
        signature = b64url_decode(stored["signature"])
    except (KeyError, ValueError, TypeError, binascii.Error) as error:
        return f"malformed: {error}"
    if b64url_decode(stored.get("challenge")) != challenge:
        return "the recorded challenge is not the one its inputs give"
    if client_data.get("type") != "webauthn.get" or client_data.get("challenge") != b64url(
        challenge
    ):
        return "the client data does not carry the challenge its inputs give"
    if len(authenticator_data) < 37 or (authenticator_data[32] & (FLAG_UP | FLAG_UV)) != (
        FLAG_UP | FLAG_UV
    ):
        return "made without user presence and verification"
    rp_problem = _rp_problem(authenticator_data, str(client_data.get("origin", "")))
    if rp_problem:
        return rp_problem
    signed = authenticator_data + hashlib.sha256(client_data_raw).digest()
    return _signature_holds(credential, signed, signature)


def _chain_digest_problem(step_up: dict[str, Any], recorded: list[dict[str, Any]]) -> str | None:
    """The stored assertion must be the one whose digest the chain recorded."""
    digests = {(d.get("step_up") or {}).get("assertion_sha256") for d in recorded}
    if not recorded:
        return "recorded by no event of the case"
    if digests != {assertion_sha256(step_up["assertion"])}:
        return "its assertion is not the one the chain recorded"
    return None


def _step_up_checked(
    report: Report, what: str, step_up: Any, recorded: list[dict[str, Any]], **binding: Any
) -> bool:
    if not (isinstance(step_up, dict) and "assertion" in step_up):
        return report.check(True, "approvals.json", f"{what}: TOTP step-up (nothing to recheck)")
    problem = step_up_problem(step_up, **binding) or _chain_digest_problem(step_up, recorded)
    if problem:
        return report.fail("approvals.json", f"{what}: stored step-up {problem}")
    return report.check(True, "approvals.json", f"{what}: passkey assertion verifies")


def check_approvals(
    bundle: Bundle, events: list[dict[str, Any]], case_id: int, report: Report
) -> None:
    try:
        record = bundle.json("approvals.json")
        approvals, execution = record["approvals"], record["execution"]
        credentials = record["credentials"]
    except (KeyError, ValueError, TypeError) as error:
        report.fail("approvals.json", f"missing or unreadable: {error}")
        return
    listed = {row["id"] for row in approvals}
    for data in _recorded_approvals(events):
        if data["approval"] not in listed:
            report.fail("approvals.json", f"approval {data['approval']} of the chain is missing")
    for row in approvals:
        action = "approve" if row["decision"] == "approved" else "deny"
        _step_up_checked(
            report,
            f"approval {row['id']}",
            row["step_up"],
            list(_recorded(events, "approval", row["id"], "approval.")),
            case_id=case_id,
            action=action,
            snapshot=row["snapshot_hash"],
            credentials=credentials,
        )
    executed = [e["data"] for e in events if e["action"] == "case.executed"]
    if execution is None:
        if executed:
            report.fail("approvals.json", "the chain records an execution the bundle lacks")
        return
    _step_up_checked(
        report,
        f"execution {execution['id']}",
        execution["step_up"],
        executed,
        case_id=case_id,
        action="execute",
        snapshot=None,
        credentials=credentials,
    )


def _recorded_approvals(events: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for event in events:
        data = event["data"] if isinstance(event["data"], dict) else {}
        if event["action"] in ("approval.approved", "approval.denied") and "approval" in data:
            yield data


def check_policy(bundle: Bundle, events: list[dict[str, Any]], report: Report) -> None:
    """Each policy text against its sha256; every version the case's events name
    (`policy_version`, `policy_versions`) is there."""
    try:
        versions = bundle.json("policy.json")["versions"]
    except (KeyError, ValueError, TypeError) as error:
        report.fail("policy.json", f"missing or unreadable: {error}")
        return
    before = report.failures
    for version in versions:
        content = bundle.files.get(version["file"])
        if content is None:
            report.fail(version["file"], "missing from the bundle")
        elif hashlib.sha256(content).hexdigest() != version["sha256"]:
            message = f"policy version {version['number']}: the text does not match its sha256"
            report.fail(version["file"], message)
    named = set()
    for event in events:
        data = event["data"] if isinstance(event["data"], dict) else {}
        listed = [*(data.get("policy_versions") or []), data.get("policy_version")]
        named.update(n for n in listed if isinstance(n, int) and not isinstance(n, bool))
    missing = named - {v["number"] for v in versions}
    if missing:
        message = f"the case's events name policy versions {sorted(missing)}, not in the bundle"
        report.fail("policy.json", message)
    if report.failures == before:
        numbers = ", ".join(str(v["number"]) for v in versions)
        report.check(True, "policy.json", f"policy version(s) {numbers}: text matches its sha256")


# --- main ------------------------------------------------------------------------------------


def _manifest_consistent(manifest: dict[str, Any], report: Report) -> bool:
    """The manifest names one case of one tenant's chain, and its events by that case."""
    try:
        case, tenant = int(manifest["case"]), int(manifest["tenant"]["id"])
        subject, chain = manifest["subject"], manifest["chain"]
        first, last = int(manifest["first_seq"]), int(manifest["checkpoint_seq"])
    except (KeyError, TypeError, ValueError) as error:
        return report.fail(MANIFEST, f"unreadable: {error}")
    if chain != f"tenant:{tenant}" or subject.get("target_id") != str(case) or first > last:
        return report.fail(MANIFEST, "its case, tenant, chain and seqs do not agree")
    return True


def verify(bundle: Bundle, keys: dict[str, Ed25519PublicKey], report: Report) -> None:
    manifest = check_manifest(bundle, keys, report)
    if manifest is None:
        return
    if not _manifest_consistent(manifest, report):
        return
    chain_rows = _rows(bundle, "chain.jsonl", report)
    events = _rows(bundle, "events.jsonl", report)
    if chain_rows is None or events is None:
        return
    chain = check_chain(chain_rows, manifest, report)
    check_checkpoint(bundle, manifest, chain, keys, report)
    check_events(events, chain, manifest, report)
    # The case's records are checked against its events as the chain proof holds them (the
    # checkpoint vouches for those), not against events.jsonl.
    proven = [row for row in chain_rows if _is_subject(row, manifest["subject"])]
    check_evidence(bundle, proven, report)
    check_approvals(bundle, proven, int(manifest["case"]), report)
    check_policy(bundle, proven, report)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vouchsafe-verify",
        description="Check a Vouchsafe case evidence bundle offline (Python + cryptography).",
    )
    parser.add_argument("bundle", help="the bundle (.zip) downloaded from Vouchsafe")
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PEM",
        help="a trusted Ed25519 public key of the checkpoint signer (repeat for rotated keys)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    try:
        bundle = Bundle.open(Path(arguments.bundle))
        keys = load_keys(arguments.key) if arguments.key else embedded_keys(bundle)
    except UsageError as error:
        print(f"vouchsafe-verify: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not arguments.key:
        print(
            "WARNING: no --key given: checking with the keys inside the bundle. That proves the "
            "bundle is intact, NOT who made it. Pass the checkpoint signer's trusted public key "
            "with --key to prove its origin."
        )
    report = Report()
    try:
        verify(bundle, keys, report)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        report.fail("bundle", f"malformed: {type(error).__name__}: {error}")
    if report.failures:
        print(f"FAILED: {report.failures} check(s) failed; do not rely on this bundle.")
        return EXIT_FAILED
    origin = (
        "with the given key(s)" if arguments.key else "with the bundle's own key (integrity only)"
    )
    print(f"VERIFIED: every check holds, {origin}.")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
