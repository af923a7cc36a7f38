"""The owner portal: pages for account owners, apart from the staff console.

Enrolment (passkeys, saved recovery codes), the signals an owner gives during a case (S1 read
back, S5 in-app confirmation, S5 IdP sign-in) and binding a new credential after execution
(R-11). See docs/owner-portal.md.
"""
