"""The closed catalogue of verification methods: each names its signal class and its verifier.

A tenant's policy chooses from this list (`accepted_methods`); an evidence row names one of
these methods or is refused. Knowledge questions are not methods at all (R-02): what a caller
knows is recorded as context (`context_record`), never looked up here. A method whose verifier
is not built (`available=False`) cannot produce an accepted signal.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from .choices import SignalClass, Verifier


@dataclass(frozen=True)
class Method:
    name: str
    signal_class: str
    verifier: str
    label: Promise
    proves: Promise
    cannot_prove: Promise
    available: bool = True


CATALOGUE: tuple[Method, ...] = (
    Method(
        "sms_code",
        SignalClass.S2,
        Verifier.CHALLENGE,
        _("Code by SMS to a mobile on record"),
        _("The person on the line holds the mobile number the system of record had before."),
        _("That the number was not ported or its SIM swapped after the last carrier check."),
    ),
    Method(
        "voice_code",
        SignalClass.S2,
        Verifier.CHALLENGE,
        _("Code by voice call to a desk phone on record"),
        _("The person on the line can answer the desk phone on record."),
        _("Who answered the desk phone."),
    ),
    Method(
        "email_code",
        SignalClass.S2,
        Verifier.CHALLENGE,
        _("Code or link by email to an address on record"),
        _("The person on the line reads the mailbox on record."),
        _("That the mailbox itself is not the compromised channel."),
    ),
    Method(
        "manager_attestation",
        SignalClass.S3,
        Verifier.ATTESTATION,
        _("Manager's attestation from their own session"),
        _("The manager, signed in as themselves, vouches that the request is genuine."),
        _("The caller's identity by any independent means of the manager's."),
    ),
    Method(
        "identity_proofing",
        SignalClass.S4,
        Verifier.PROOFING_PROVIDER,
        _("Identity proofing by a provider, against the enrolment record"),
        _("A proofing provider matched the person to the account's enrolment reference."),
        _("Coercion of the real owner; the provider's own checks beyond its signed verdict."),
    ),
    Method(
        "attended_remote",
        SignalClass.S4,
        Verifier.ATTENDED_SESSION,
        _("Attended video session by a trusted referee"),
        _("A certified referee, not the agent, saw documents and a random live challenge."),
        _("A biometric comparison; it is remote, so never enough for an IAL3 T2 account."),
    ),
    Method(
        "attended_onsite",
        SignalClass.S4,
        Verifier.ATTENDED_SESSION,
        _("Attended onsite session with biometric comparison"),
        _("A certified referee compared the person in front of them with the enrolment record."),
        _("Anything if the referee colludes; the fraud flag and the trail are the controls."),
    ),
    Method(
        "recovery_code",
        SignalClass.S1,
        Verifier.OWNER_PORTAL,
        _("Saved recovery code (owner portal)"),
        _("The person holds a code the owner saved before anything went wrong."),
        _(
            "That the person is the owner: a saved code can be stolen, photographed or "
            "handed over, and it says nothing of who reads it out."
        ),
    ),
    Method(
        "passkey",
        SignalClass.S5,
        Verifier.OWNER_PORTAL,
        _("Passkey still bound to the account (owner portal)"),
        _(
            "Someone with a passkey registered before the case, and unlocked by its user "
            "verification, typed the number the agent read out and signed for this case."
        ),
        _(
            "That the one who confirmed is the caller (the number read out ties them only as "
            "far as the owner listens), or that a synced passkey's other devices are safe; "
            "coercion of the owner."
        ),
    ),
    Method(
        "idp_sign_in",
        SignalClass.S5,
        Verifier.OWNER_PORTAL,
        _("Sign-in with the tenant's identity provider (owner portal)"),
        _(
            "Someone who opened the link sent to the owner's addresses on record signed in at "
            "the tenant's identity provider as this account's subject, with an authenticator "
            "the provider reports as already bound (amr/acr the tenant accepts)."
        ),
        _(
            "That the one who signed in is the caller, or more than the provider's own word on "
            "how they authenticated; a password-only sign-in is recorded but never counts."
        ),
    ),
)
METHODS: dict[str, Method] = {method.name: method for method in CATALOGUE}
# Proved with something enrolled in the owner portal (a ContactMethod): its quarantine and
# "added during the case" rules apply exactly as to a phone number.
ENROLLED_METHODS = frozenset({"recovery_code", "passkey"})
METHOD_NAMES: tuple[str, ...] = tuple(METHODS)


def method_get(name: str) -> Method | None:
    """The catalogue entry for `name` (exact, case-sensitive), or None."""
    return METHODS.get(name)


def methods_of(signal_class: str) -> tuple[Method, ...]:
    return tuple(m for m in CATALOGUE if m.signal_class == signal_class)
