"""The one registry of audit actions. An action not listed here cannot be recorded.

Names are dotted `<subject>.<verb>`; where the OWASP Logging Vocabulary has a name for the
event it is given in the description so SIEM mappings can follow it.
"""

ACTIONS: dict[str, str] = {
    # platform and tenancy
    "tenant.created": "A tenant was created.",
    "tenant.cross_access_denied": (
        "An actor asked for a tenant or an object of a tenant it may not act in; answered 404."
    ),
    "provider.created": "A service provider (MSP) was created.",
    "user.created": "A staff user account was created.",
    "user.preferences_changed": "A staff user changed their console language or time zone.",
    "membership.created": "A user was given a role in a tenant or provider.",
    "membership.role_changed": "A membership's role changed.",
    "membership.revoked": "A membership was ended; the user loses that role at once.",
    "grant.requested": "A service provider asked a tenant for a delegation grant.",
    "grant.approved": "A tenant_admin approved a delegation grant (with step-up proof).",
    "grant.revoked": "A delegation grant was revoked; access through it ends at once.",
    "permission.granted": "An explicit per-object permission was granted (django-guardian).",
    "permission.revoked": "An explicit per-object permission was removed.",
    # staff authentication (OWASP: authn_login_*, authn_token_*)
    "auth.login_succeeded": "Password and OTP accepted (OWASP authn_login_success).",
    "auth.login_failed": (
        "A password, sign-in OTP or step-up code was refused (OWASP authn_login_fail)."
    ),
    "auth.account_locked": (
        "Too many failures: the staff account is locked (OWASP authn_login_lock)."
    ),
    "auth.otp_enrolled": "A staff user enrolled a TOTP device and received backup codes.",
    "auth.passkey_enrolled": (
        "A staff user registered a passkey (first one, after proving an active one, or under an "
        "approved replacement); the user is e-mailed."
    ),
    "auth.passkey_removed": "A staff user removed one of their passkeys (lost or retired).",
    "auth.passkey_suspended": (
        "A staff passkey answered with a signature counter that did not grow (a copied key): "
        "it is suspended and the answer refused."
    ),
    "auth.passkey_replacement_requested": (
        "A staff user with no active passkey left asked for a replacement."
    ),
    "auth.sessions_ended": (
        "A staff user lost a role, membership or grant: every console session of theirs was "
        "ended and their pending step-up challenges cancelled, at once (R-62)."
    ),
    "auth.passkey_replacement_approved": (
        "A second staff member (tenant_admin or security_officer, another person) approved a "
        "passkey replacement with a fresh passkey step-up; data carries the assertion."
    ),
    # audit trail itself
    "audit.integrity_violation": "A chain verification found a modified, missing or extra row.",
    "audit.verified": "A verification run finished; its data counts chains checked and broken.",
    "audit.checkpoint_signed": (
        "The chain's head was signed with the checkpoint key (outside the database) and "
        "published; data carries the signed statement, its digest, the signature and the stores."
    ),
    "audit.checkpoint_failed": (
        "A checkpoint could not be signed or published to a store; data names the store, the "
        "chain and the error."
    ),
    "audit.exported": (
        "Someone exported the tenant's trail as NDJSON (API or console); data carries the filters."
    ),
    "audit.read": (
        "Someone read the tenant's trail (R-50): a console trail, case timeline or chain page, a "
        "verification, an API list of events or alerts; data says what (the surface, filters, "
        "cursor, case, number of events), never their content."
    ),
    "audit.export_downloaded": (
        "Someone downloaded the file of their finished console export; data names the job and "
        "its number of events."
    ),
    "audit.bundle_downloaded": (
        "A reader of the trail downloaded a case's evidence bundle (API or console); data names "
        "the case, the checkpoint seq it is proven to, its number of events and the manifest's "
        "sha256."
    ),
    "audit.integrity_failing": (
        "Recorded in the tenant's own chain when a new finding on it makes the tenant fail closed "
        "(no T1/T2 execution or policy activation until an audit_admin acknowledges it); data "
        "carries the finding (first_bad_seq, reason, window)."
    ),
    "audit.integrity_paged": (
        "A chain finding was paged (platform chain): data names the chain, the finding and how "
        "many audit_admins and security contacts were e-mailed."
    ),
    "audit.integrity_acknowledged": (
        "An audit_admin acknowledged a chain finding with a fresh passkey step-up (platform "
        "chain); the chain's tenant works again until a different finding is made."
    ),
    "audit.platform_admin_changed": (
        "A platform operator made a person a platform audit admin (who acknowledges the platform "
        "chain's findings), or ended it; data names the user and whether it was enabled."
    ),
    "audit.retention_set": (
        "A tenant audit_admin set how many days the trail stays online before it may be purged "
        "(never under six months); data has the new and the previous value."
    ),
    "audit.legal_hold_placed": (
        "A tenant audit_admin placed a legal hold on the whole trail or on one case's events: "
        "nothing it covers can be purged until it is released."
    ),
    "audit.legal_hold_released": "A tenant audit_admin released a legal hold.",
    "audit.purge_requested": (
        "A tenant audit_admin asked to purge the trail's oldest events (up to through_seq, all "
        "older than the retention); a second audit_admin must approve."
    ),
    "audit.purge_cancelled": "A purge request was cancelled before anyone approved it.",
    "audit.purge_approved": (
        "A second tenant audit_admin approved a purge with a fresh passkey step-up, after the "
        "chain verified in full; data carries the last seq removed, its hash and the assertion."
    ),
    "audit.purged": (
        "An approved purge removed the trail's events up to through_seq, after its signed "
        "checkpoint (statement field `purge`) was published; data names the checkpoint."
    ),
    "audit.integrity_acknowledge_refused": (
        "An attempt to acknowledge a chain finding was refused (platform chain); data carries "
        "the chain and the refusal's code."
    ),
    # incident switches (R-68, tenants.incident)
    "incident.ai_switched_off": (
        "A security officer or tenant admin switched AI assistance off for the tenant, with a "
        "fresh step-up: every AI assistant's API key is refused at once."
    ),
    "incident.ai_switched_on": "AI assistance was switched back on for the tenant (step-up).",
    "incident.recoveries_frozen": (
        "Recoveries were frozen for an incident (step-up): new cases open in the security queue "
        "and nothing is executed until a second person lifts it."
    ),
    "incident.recoveries_unfrozen": (
        "A second security officer or tenant admin lifted the recovery freeze (step-up)."
    ),
    "cases.waiting": (
        "Cases entered the approval queue since the last digest: the approvers who may decide "
        "them were emailed (at most once a minute); data lists the cases and how many were told."
    ),
    # alert routes: where the tenant's alerts go (dual control, tenants.routes)
    "alert_route.proposed": (
        "A tenant_admin proposed an alert route (an email address, a signed webhook, a Slack or"
        " Teams webhook); it sends nothing until a second admin approves. Data shows a URL's "
        "origin only."
    ),
    "alert_route.approved": (
        "A second tenant_admin approved an alert route with a fresh step-up; alerts raised from"
        " now on are sent to it."
    ),
    "alert_route.removal_proposed": (
        "A tenant_admin proposed removing an alert route, saying why; it keeps sending until a "
        "second admin approves."
    ),
    "alert_route.removed": (
        "A second tenant_admin approved removing an alert route with a fresh step-up; nothing "
        "more is sent to it."
    ),
    "alert_route.rejected": (
        "Another tenant_admin turned down a proposed route or removal, saying why (a route "
        "whose removal is rejected stays active)."
    ),
    "alert_route.withdrawn": "The tenant_admin who proposed a route or its removal took it back.",
    # protected accounts and their contact methods (synced from a system of record)
    "account.created": "A protected account was created or imported.",
    "account.updated": "A sync changed a protected account's authoritative attributes.",
    "contact.added": "A contact method appeared in the system of record (quarantine starts).",
    "contact.replaced": "A contact method was removed or changed in the system of record.",
    "accounts.imported": "A batch of accounts was imported from a system of record.",
    # tenant recovery policy (dual control, R-27)
    "policy.drafted": "A tenant_admin stored a valid policy version as a draft.",
    "policy.activation_requested": "A tenant_admin asked for a policy draft to be activated.",
    "policy.activated": (
        "A second tenant_admin approved a policy version with step-up; it is now active and the "
        "previous active version is superseded."
    ),
    "policy.rejected": (
        "A policy draft, activation request or approval was refused (invalid document, platform "
        "floor, separation of duties, step-up); data carries the code and the errors."
    ),
    # recovery cases (the workflow spine)
    "case.opened": "A case was opened; tier, route and repeat flag were computed by the server.",
    "case.caller_flagged": (
        "Someone working the case flagged its caller as suspicious (R-56): its caller "
        "identifiers (masked hints in data) went on the tenant's watch-list."
    ),
    "case.submitted": "The case met the policy's evidence and went to approval.",
    "case.status_changed": "The workflow moved a case (cooling-off, ready …).",
    "case.tier_raised": "The account's tier rose mid-case; approvals given so far were voided.",
    "case.cancelled": "A case was cancelled by its worker or the account owner.",
    "case.expired": (
        "An open case nobody changed for its policy's idle limit expired (the sweep); its "
        "artifacts were revoked. Data carries the status it left and the limit."
    ),
    "verification.signal_accepted": "A verification signal was accepted as evidence.",
    "verification.signal_rejected": (
        "A signal was refused, or stored as context only; data carries the reason code."
    ),
    # verification challenges (S2 codes, S3 attestations)
    "verification.challenge_sent": (
        "A one-time code (and, by email, a confirmation link) went to a contact method on record; "
        "data carries the masked contact, channel and expiry, never the code."
    ),
    "verification.challenge_refused": (
        "A code or attestation could not be sent (channel in quarantine, added during the case, "
        "SIM change, limit, delivery failure); data carries the code."
    ),
    "verification.challenge_failed": (
        "A code or link was presented and refused (wrong, expired, superseded, used); data "
        "carries the reason and the attempt count."
    ),
    "verification.challenge_disabled": (
        "Too many wrong codes: the challenge is disabled and a new case is needed (R-53)."
    ),
    "verification.challenge_verified": (
        "The owner's code or confirmation link matched; the S2 evidence was recorded."
    ),
    "verification.attestation_requested": (
        "A single-use attestation link went to the subject's manager contact on record (S3)."
    ),
    "verification.attestation_confirmed": (
        "The manager, signed in with their own account, attested; the S3 evidence was recorded."
    ),
    "verification.proofing_started": (
        "An identity-proofing session bound to the case by a random nonce was started at a "
        "provider (S4)."
    ),
    "verification.proofing_refused": (
        "A proofing start or a provider's verdict was refused (bad signature, replay, another "
        "case, stale, provider down …); data carries the reason code."
    ),
    "verification.proofing_verdict": (
        "A provider's signed verdict was checked and applied to its session; data carries the "
        "verdict id, outcome and whether it matched the enrolment reference."
    ),
    "verification.attended_started": (
        "A trusted referee started an attended session with a server-generated live challenge."
    ),
    "verification.attended_coercion_answered": (
        "The referee answered the mandatory coercion question of an attended session (R-07)."
    ),
    "verification.attended_ended": (
        "An attended session ended, completed or failed, with its session record (R-09)."
    ),
    "case.fraud_flagged": "A referee flagged fraud in an attended session; the case is frozen.",
    "case.rejected": "Identity proofing did not match the enrolment record; the case ended (R-05).",
    "case.taken": "A human agent took a case an AI assistant drafted; its side effects may start.",
    "referee.certified": "A tenant_admin set a trusted referee's certification date (R-09).",
    "policy.floor_raised": (
        "A platform floor rose above a tenant's policy value; the value was raised to the floor."
    ),
    "contact.risk_signal": (
        "A SIM change, port-out or device swap was reported for a contact method; it cannot carry "
        "codes, artifacts or notices while the signal is recent (R-04)."
    ),
    "evidence.attachment_added": (
        "A file was attached to a case; data carries its id, sha256, size and sniffed type."
    ),
    "evidence.attachment_downloaded": (
        "An attachment was read after a permission check and an integrity check (R-50 style "
        "read logging); data carries its id and sha256."
    ),
    "evidence.attachment_integrity_failed": (
        "A stored attachment no longer matched its recorded sha256 (or was missing) and was "
        "not served; data carries the expected and found hashes."
    ),
    "case.note_added": (
        "A note was added to a case; data carries only its length and how many secrets were "
        "masked (never the text)."
    ),
    "approval.approved": (
        "An eligible approver approved a case with a fresh step-up (a passkey's bound to the case "
        "snapshot: data carries the assertion's digest) and an expiry (R-22, R-47)."
    ),
    "approval.denied": "An eligible approver denied a case with a fresh step-up.",
    "approval.invalidated": (
        "A live approval stopped counting: its approver lost the role, membership or grant it "
        "was given with (approver_lost_role, R-62), the case changed since (snapshot_changed) "
        "or it expired (expired, R-22); data carries the approval and the reason."
    ),
    "step_up.challenge_issued": (
        "A passkey challenge was issued to a staff user for one approval or execution of a case "
        "as it stands (SHA-256 of snapshot, action, case and nonce; 120 s, single use)."
    ),
    "alert.raised": (
        "A detection for the security queue (sim_swap_recovery_attempt, approval_velocity …)."
    ),
    "alert.acknowledged": (
        "A security officer acknowledged an alert (someone is on it); data names its kind, what "
        "it is about, how often it was raised and whether it was overdue."
    ),
    "alert.resolved": (
        "A security officer closed an alert as resolved or as a false positive, with a reason."
    ),
    # API principals
    "apikey.created": "A tenant_admin issued an API key for an integration or AI assistant.",
    "apikey.revoked": "An API key was revoked; it stops working at once.",
    "ai.action_blocked": (
        "An AI assistant asked to approve, execute, accept evidence, change tier or policy, "
        "or to use a scope it cannot hold; refused (R-63)."
    ),
    "ai.summary_attached": (
        "An AI assistant attached an advisory summary to a case; data carries the model id and "
        "version, prompt hash, retrieved document ids and output hash (R-67)."
    ),
    # execution, artifacts and owner notices
    "case.executed": (
        "A ready case was carried out through the tenant's connector; data carries the "
        "connector, the path, the result and the artifact issued."
    ),
    "case.manual_step_recorded": (
        "With the manual connector, the agent recorded the exact path followed in the other "
        "console; data carries it next to the expected steps."
    ),
    "case.execution_failed": "A connector could not make a case's change; nothing was issued.",
    "case.execution_refused": (
        "An execution was refused before anything changed: the executor approved the case, "
        "opened it (T2), is its subject or a delegate, is a key (T1/T2, or no cases:execute_t0), "
        "or brought no valid fresh step-up; data carries the code."
    ),
    "case.closed": "An executed case was closed; its active artifacts were revoked.",
    "case.repudiated": (
        'The owner used "this wasn\'t me" (R-41): the account frozen, and this case (the one '
        "repudiated, or another active recovery of the account: `via_case`) frozen with its "
        "artifacts revoked; an executed one is then reverted (`change.reverted`)."
    ),
    "change.reverted": (
        "One step of a repudiated recovery's revert done by the connector that made the change "
        "(R-37): the one-time pass deleted, a sign-in method registered since the execution "
        "removed, sessions ended, or the snapshot restored; data carries the connector's answer."
    ),
    "revert.step_pending": (
        "A revert step the connector failed or cannot do, or one the manual connector lists: "
        "a person does it in the directory's console; the case stays frozen until recorded."
    ),
    "revert.step_recorded": (
        "A person recorded a pending revert step as done in the directory's console, with a "
        "fresh passkey step-up bound to the case (data carries the proof)."
    ),
    "case.reverted": (
        "Every revert step of a repudiated recovery is done (by the connector or recorded by "
        "a person): the case is reverted."
    ),
    "account.unfrozen": (
        "A security officer lifted an account's freeze (a repudiation's or the "
        "re-establishment window's) with a reason and a fresh step-up; no revert step was "
        "pending."
    ),
    "artifact.issued": (
        "A recovery link or temporary access pass was sent to the owner's pre-registered "
        "contact (masked in data; the secret is never recorded)."
    ),
    "artifact.consumed": "The owner used a recovery artifact (once).",
    "artifact.revoked": (
        "An artifact was revoked (expired, superseded, case closed or cancelled, repudiated); "
        "one event per artifact."
    ),
    "token.reuse_attempt": (
        "A used or revoked artifact was presented again; refused like an unknown one (OWASP "
        "authn_token_reuse, R-30)."
    ),
    "token.expired_presented": "An expired artifact was presented; refused.",
    "token.purpose_mismatch": "An artifact was presented for another purpose; refused (R-32).",
    "notice.sent": "An owner notice went out (R-38); data carries the masked address.",
    "notice.failed": "An owner notice could not be delivered; T1/T2 execution waits (R-42).",
    "notice.skipped": (
        "Owner notices were not planned for contacts R-04 excludes now (quarantine, SIM change or "
        "port); data carries the event, each masked contact and its reason."
    ),
    "policy.violation": (
        "A refused attempt, e.g. self-approval (OWASP authz_fail); data carries the code."
    ),
    # connectors: where a recovery really happens (recovery.connectors)
    "connector.configured": (
        "The tenant's connector configuration changed: a second tenant_admin approved a "
        "connector change, applied in the same transaction; data carries the change, the kind, "
        "the changed setting names and settings_summary (no secret, no URL path)."
    ),
    "connector.health_checked": (
        "A tenant_admin checked the tenant's connector (recorded before connector.tested "
        "replaced it); data carries whether it worked and why not."
    ),
    "connector.change_requested": (
        "A tenant_admin proposed a connector configuration; a second tenant_admin must approve "
        "it (R-27). Data carries the kind, the changed setting names and settings_summary."
    ),
    "connector.change_approved": (
        "A second tenant_admin (another account and person) approved a connector change with a "
        "fresh step-up; it was applied. Data carries settings_summary and the step-up proof."
    ),
    "connector.change_rejected": (
        "Another tenant_admin rejected a pending connector change; nothing was applied. Data "
        "carries the reason."
    ),
    "connector.change_withdrawn": (
        "The requester withdrew their pending connector change; nothing was applied."
    ),
    "connector.change_refused": (
        "A connector change, approval, rejection, withdrawal or test was refused (invalid "
        "settings, one already pending, same person, no step-up, not an admin); data carries "
        "the step, the code and the names of the refused fields, never their values."
    ),
    "connector.tested": (
        "A tenant_admin tested the connection of the configuration in force or of a pending "
        "change; data carries which, whether it worked, the detail and settings_summary."
    ),
    # owner portal: enrolment, owner signals S1/S5, binding the new credential
    "owner.enrolment_link_sent": (
        "A one-time owner portal enrolment link went to an address on record; data carries the "
        "masked address and expiry, never the link."
    ),
    "owner.enrolment_refused": (
        "Owner portal enrolment was refused (open case, frozen account, contact change in "
        "quarantine, no address on record); data carries the code."
    ),
    "owner.session_started": (
        "An owner portal session started (enrolment link, IdP sign-in or recovery artifact); data "
        "carries its kind and case."
    ),
    "owner.session_refused": (
        "An owner portal request was refused: no or expired owner session, a staff session "
        "presented, or an action outside the session's purpose (R-12)."
    ),
    "owner.passkey_added": (
        "The owner registered a passkey (user verification required); data carries the credential "
        "id, AAGUID, attestation format and backup state."
    ),
    "owner.passkey_refused": (
        "A passkey registration or assertion failed verification (no user verification, "
        "attestation format not allowed, origin or challenge mismatch); data carries the reason."
    ),
    "owner.passkey_removed": ("The owner removed a passkey from the account."),
    "owner.passkey_clone_detected": (
        "A passkey's signature counter went back: the credential is disabled and an alert raised."
    ),
    "owner.codes_issued": (
        "A set of ten saved recovery codes was issued, replacing any previous set; the codes "
        "themselves are never recorded."
    ),
    "owner.code_used": (
        "A saved recovery code read back to an agent matched and is used up; data carries how "
        "many remain."
    ),
    "owner.code_refused": (
        "A saved recovery code typed by an agent did not match; it counts toward the case's "
        "attempt limit (R-53)."
    ),
    "owner.codes_locked": (
        "Too many wrong saved recovery codes on a case: saved codes are disabled for that case "
        "(R-53)."
    ),
    "owner.confirmation_requested": (
        "An agent asked the owner for an in-app confirmation (S5, number matching); data carries "
        "the expiry, never the number."
    ),
    "owner.confirmation_confirmed": (
        "The owner typed the agent's number and signed a passkey assertion bound to the case; "
        "the S5 evidence was recorded."
    ),
    "owner.confirmation_failed": (
        "An in-app confirmation attempt was refused (wrong number, unknown or unenrolled passkey, "
        "replayed or invalid assertion, expired); data carries the reason."
    ),
    "owner.confirmation_repudiated": (
        'The owner answered "No, this wasn\'t me" to an in-app confirmation request (R-41).'
    ),
    "owner.idp_sign_in_requested": (
        "An agent asked the owner to sign in with the tenant's identity provider as evidence (S5)."
    ),
    "owner.idp_sign_in_started": (
        "An owner went on to the tenant's identity provider (from an agent's link, or to enrol); "
        "the flow is bound to their browser, state, nonce and PKCE verifier."
    ),
    "owner.idp_sign_in_completed": (
        "An owner's sign-in at the tenant's identity provider was validated (ID token, subject, "
        "amr/acr); data carries the subject, amr and the evidence."
    ),
    "owner.idp_sign_in_refused": (
        "An owner's identity provider sign-in was refused (state, nonce, issuer, audience, "
        "signature, expiry, subject or amr); data carries the reason."
    ),
    "owner.password_set": (
        "The owner chose the new password in a recovery-artifact session and the connector set "
        "it; the password is never recorded."
    ),
    "owner.authenticator_bound": (
        "The owner bound a new authenticator in a recovery-artifact session (R-11); data carries "
        "the artifact hash, credential id and connector result."
    ),
    "owner.binding_refused": (
        "A new password or authenticator offered in a recovery-artifact session was refused "
        "(rules, breached list, not phishing-resistant for T2, connector error)."
    ),
    "owner.temporary_pass_issued": (
        "The tenant's cloud connector issued the vendor's one-time pass (an Entra Temporary "
        "Access Pass) into the owner's recovery-artifact session, shown there once (R-10, "
        "R-12); data carries the pass id, expiry and lifetime, never the pass."
    ),
    # containment after a cloud recovery: each step with the connector's answer
    "containment.step_done": (
        "A containment step was done by the connector after the owner bound a new method: a "
        "lost method removed (or found gone), sessions and refresh tokens ended, the one-time "
        "pass deleted; data carries the operation, target, connector path and answer."
    ),
    "containment.step_failed": (
        "The connector failed, or cannot do, a containment step; it is kept on the execution "
        "as a manual step and the case cannot be closed until a person records it. Data "
        "carries the operation, target, connector path, error and the manual step."
    ),
    "containment.step_recorded": (
        "A person recorded a pending containment step as done in the directory's console, "
        "with a fresh passkey step-up bound to the case (data carries the proof)."
    ),
    # standing privileged roles after a T2 recovery
    "roles.suspended": (
        "A T2 recovery's execution removed the subject's standing admin roles through the "
        "connector; data carries the connector's answer and the roles snapshot a "
        "privileged_role_restore case grants back (a failure is a containment step instead)."
    ),
    "roles.restored": (
        "An approved privileged_role_restore case granted the suspended roles back through the "
        "connector (or left a tracked manual step); data carries the connector's answer and "
        "the suspension it closed."
    ),
    "roles.regrant_expired": (
        "The time box of a privileged_role_restore case's re-grant ended: the expiry sweep "
        "removed the roles again through the connector (with its answer) or left a person a "
        "tracked step on the restore case; the account is suspended again (data names the new "
        "suspension), so another restore case is needed."
    ),
    "roles.regrant_expiry_failed": (
        "The connector failed to remove the roles of a re-grant whose time box ended; the "
        "re-grant stays due and the next sweep tries again. Data carries the connector's answer."
    ),
    # time-bound delegation of a shared or functional mailbox (issue 14, recovery.delegation)
    "access.delegation_requested": (
        "A mailbox access case asked for a time-bound delegation of a shared or functional "
        "mailbox to its subject; data names the mailbox, its registered owner and the length."
    ),
    "access.delegation_owner_approved": (
        "The mailbox's registered owner approved a delegation request in their own portal "
        "session (identity provider sign-in); data carries the session."
    ),
    "access.delegation_owner_refused": (
        "The mailbox's registered owner refused a delegation request in their own portal session."
    ),
    "access.delegation_granted": (
        "A mailbox delegation took effect: granted by the connector (with its answer) or "
        "recorded by a person who made it in the mail system; data carries the expiry."
    ),
    "access.delegation_step_pending": (
        "The connector cannot grant or remove a mailbox delegation: the step is kept for a "
        "person to do in the mail system and record with a step-up."
    ),
    "access.delegation_step_recorded": (
        "A person recorded a pending delegation step as done, with a fresh passkey step-up."
    ),
    "access.delegation_expired": (
        "A mailbox delegation reached its expiry; the sweep removes it next."
    ),
    "access.delegation_removed": (
        "An expired mailbox delegation was removed: by the connector (with its answer) or by "
        "a person who recorded it."
    ),
    "access.delegation_removal_failed": (
        "The connector failed to remove an expired mailbox delegation; the next sweep tries "
        "again. Data carries the connector's answer."
    ),
    # the re-establishment window after a recovery
    "window.account_frozen": (
        "A change was reported inside the account's re-establishment window: the account is "
        "frozen pending review (no execution, owner enrolment or binding on it); data carries "
        "the recovery's case, the kind of change and the provider's event id."
    ),
    "window.change_undone": (
        "The connector undid a change reported inside the re-establishment window (a new "
        "authenticator deleted, a role grant removed ...); data carries the kind, the "
        "provider's event id, the connector path and answer."
    ),
    "window.change_undo_manual": (
        "A change reported inside the re-establishment window could not be undone by the "
        "connector (it lacks the capability, or failed): a person undoes it in the directory's "
        "console; data carries the connector's answer and the manual step."
    ),
    "window.poll_failed": (
        "The window poll could not read an account's changes through the tenant's connector; "
        "the tenant's other windows wait for the next round, other tenants go on; data carries "
        "the connector, the recovery's case and the error."
    ),
    "owner.account_repudiated": (
        'The owner said "this wasn\'t me" about an owner portal change: the account is frozen '
        "and the portal change undone."
    ),
    "idp.config_drafted": (
        "A tenant_admin drafted an OpenID Connect provider for the tenant's account owners."
    ),
    "idp.config_activated": (
        "A second tenant_admin approved an identity provider configuration with step-up; it is "
        "now active (R-27)."
    ),
    "idp.config_retired": ("An identity provider configuration was retired or replaced."),
    "idp.config_refused": (
        "A draft, approval or retirement of an identity provider configuration was refused "
        "(invalid settings, same admin, no step-up, discovery failed); data carries the reason."
    ),
    # webhooks out and events in (integrations)
    "webhook.subscription_created": (
        "A webhook subscription was created; data carries its origin, a hash of the URL and "
        "its event types (never the secret)."
    ),
    "webhook.subscription_updated": "A webhook subscription's URL, events or state changed.",
    "webhook.subscription_deleted": (
        "A webhook subscription was deleted; its secret is wiped and pending deliveries dropped."
    ),
    "webhook.subscription_secret_rotated": "A webhook subscription's signing secret was replaced.",
    "webhook.delivery_dead": (
        "A webhook delivery was given up after its last attempt; data carries the last error."
    ),
    "event.ingested": (
        "An identity or security event about a protected account was received from an "
        "integration (new MFA device, mailbox rule, push-denial burst …)."
    ),
    # the tenant's SIEM stream (integrations.siem, R-51)
    "siem.destination_set": (
        "A tenant_admin set or changed the tenant's SIEM collector (host, port, format, CA "
        "certificate, enabled); data carries what changed and the CA's SHA-256 fingerprint."
    ),
    "siem.destination_removed": (
        "A tenant_admin removed the tenant's SIEM collector; streaming stops and its cursor is "
        "dropped, so a new destination receives the whole chain again."
    ),
    "siem.delivery_failed": (
        "The stream to the tenant's SIEM collector failed after working (recorded once, not per "
        "retry); data carries the error and the next attempt. Nothing is marked sent."
    ),
    "siem.delivery_resumed": (
        "The stream to the tenant's SIEM collector got through again after failing; data "
        "carries the failed attempts and since when it failed."
    ),
}


def is_registered(action: str) -> bool:
    """True when `action` is a registered audit action name."""
    return action in ACTIONS
