"""Hooks for higher layers: `event_recorded` is sent inside the transaction of each event.

It is sent by `audit.services.record` *before* the event is appended to its chain (the chain
head's lock is taken after the receivers, so they do not hold up the chain's other writers):
the event has no `pk`, `seq`, `prev_hash` or `hash` yet. A receiver runs in the event's
transaction, so what it writes (an outbox row, say) commits or rolls back with the event; it
must not send anything anywhere itself (use on_commit for that). Whatever needs the event's
place in the chain reads the committed event instead (`integrations.outbox.webhooks_derive`).
"""

from django.dispatch import Signal

# Sent with `event` (the AuditEvent about to be appended) and `target` (the model instance
# record() was given, or None): a receiver may use it rather than read it again.
event_recorded = Signal()
