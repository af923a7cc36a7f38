"""scripts/deps_check.py's decisions, without asking PyPI (issue 17 item 13)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from packaging.version import Version

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "deps_check.py"
spec = importlib.util.spec_from_file_location("deps_check", SCRIPT)
deps_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(deps_check)


def versions(*texts: str) -> list[Version]:
    return [Version(text) for text in texts]


def test_a_newer_patch_of_the_same_series_is_found():
    found = deps_check.newer_patch(Version("5.2.19"), versions("5.2.18", "5.2.20", "6.0.1"))
    assert found == Version("5.2.20")


def test_a_newer_minor_or_major_is_not_a_patch():
    assert deps_check.newer_patch(Version("5.2.20"), versions("5.3.0", "6.0.0")) is None


def test_a_held_pin_needs_a_reason(tmp_path):
    held = tmp_path / "held.txt"
    held.write_text("# comment\nDjango==5.2.19  # waiting for our own fix\n")
    assert deps_check.held(held) == {"Django==5.2.19": "waiting for our own fix"}
    held.write_text("Django==5.2.19\n")
    with pytest.raises(ValueError, match="say why"):
        deps_check.held(held)


def test_the_lock_is_read_as_name_and_version(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("Django==5.2.20\nmoto[s3]==5.2.6  # extra\n")
    assert deps_check.pins(lock) == {"Django": Version("5.2.20"), "moto": Version("5.2.6")}
