"""Streaming each tenant's audit chain to its SIEM: RFC 5424 syslog over TLS, in CEF or OCSF.

`formats` maps an event to the bytes on the wire (pure functions), `transport` sends a batch
to the collector, `stream` reads the committed chain as an outbox and sends it, `services`
and `selectors` are the writes and reads of the tenant's destination. See docs/audit.md,
"Streaming to a SIEM".
"""
