"""Hooks for higher layers: `event_recorded` is sent inside the transaction of each append.

A receiver runs in that transaction, so what it writes (an outbox row, say) commits or rolls
back with the event; it must not send anything anywhere itself (use on_commit for that).
"""

from django.dispatch import Signal

# Sent with `event` (the AuditEvent just appended) as its only argument.
event_recorded = Signal()
