"""Webhooks out and events in. Built in issue 4."""
