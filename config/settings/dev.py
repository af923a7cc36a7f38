"""Local development: the embedded default (SQLite, filesystem broker) unless env says otherwise."""

from .base import *  # noqa: F403

DEBUG = env.bool("DEBUG", default=True)  # noqa: F405
