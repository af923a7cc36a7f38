"""Local development: the embedded default (SQLite, filesystem broker) unless env says otherwise."""

from .base import *  # noqa: F403

DEBUG = env.bool("DEBUG", default=True)  # noqa: F405
# A local receiver (http://127.0.0.1:...) is fine while developing.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=True)  # noqa: F405
