"""The rules for a password the owner chooses (NIST SP 800-63B), and the offline breached list
searched in place (no database: pure functions)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery.owner.passwords import (
    MAX_LENGTH,
    BreachListUnavailable,
    PasswordRefused,
    password_check,
    password_problems,
    sha1_in_sorted_file,
)

USER = "jdoe@corp.example"


def codes(password: str, *, username: str = USER, min_length: int = 15) -> list[str]:
    return [p.code for p in password_problems(password, username=username, min_length=min_length)]


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 - the list's key


# --- what is accepted: length, any characters, no composition rules -------------------------


@pytest.mark.parametrize(
    "password",
    [
        "violet tractor lantern quietly",  # lower-case words only: no composition rule
        "a" + "bcdefghij" * 7,  # 64 characters
        ("correct horse battery staple " * 5)[:MAX_LENGTH],  # exactly the maximum
        "ça déménage à l'été prochain",  # any letters
        "日本語のパスワードも使えます長い",  # 16 characters, none ASCII
        "   spaces count   too   ",
    ],
)
def test_a_long_unremarkable_password_passes(password):
    assert codes(password) == []
    password_check(password, username=USER, min_length=15)


def test_length_is_counted_after_normalisation_and_bounded():
    assert codes("x" * 3 + " pine cone " + "y" * (MAX_LENGTH - 14)) == []  # 128
    assert codes("x" * 3 + " pine cone " + "y" * (MAX_LENGTH - 13)) == ["password.too_long"]
    assert codes("fourteen chars") == ["password.too_short"]
    assert codes("fourteen chars", min_length=12) == []
    # "ﬁ" is one character that NFKC makes two ("fi"): 14 typed, 15 after normalisation.
    assert codes("ﬁfteen chars x") == []


def test_common_and_breached_passwords_are_refused_however_they_are_typed():
    assert codes("ManchesterUnited") == ["password.breached"]
    full_width = "".join(chr(ord(ch) + 0xFEE0) for ch in "ManchesterUnited")
    assert codes(full_width) == ["password.breached"]
    assert codes("  manchesterunited ") == ["password.breached"]


def test_the_username_and_its_local_part_are_refused_in_any_case():
    assert codes("jdoe is my favourite word") == ["password.contains_username"]
    assert codes("JDOE@CORP.EXAMPLE rules ok") == ["password.contains_username"]
    assert codes("my name is CORP\\jdoe", username="CORP\\jdoe") == ["password.contains_username"]
    assert codes("al in the long passphrase", username="al@x.example") == []  # too short to bite


def test_repetition_and_control_characters_are_refused():
    assert codes("z" * 20) == ["password.repetitive"]
    assert codes("xyzxyzxyzxyzxyzxyz") == ["password.repetitive"]
    assert codes("abcdabcdabcdabcdabcd") == []  # a four-character pattern is only dull
    assert codes("line one\nline two long") == ["password.invalid_characters"]


def test_every_broken_rule_is_reported_at_once_with_the_first_as_code():
    with pytest.raises(PasswordRefused) as caught:
        password_check("jdoe\x01", username=USER, min_length=15)
    assert caught.value.code == "password.invalid_characters"
    assert [p.code for p in caught.value.problems] == [
        "password.invalid_characters",
        "password.too_short",
        "password.contains_username",
    ]
    assert "jdoe\x01" not in str(caught.value)
    assert len(caught.value.field_errors["password"]) == 3


# --- the breached-password file, searched without loading it -------------------------------


def write(path: Path, lines: list[str], *, newline: str = "\n", trailing: bool = True) -> str:
    text = newline.join(lines) + (newline if trailing and lines else "")
    path.write_bytes(text.encode())
    return str(path)


@settings(max_examples=60, deadline=None)
@given(
    passwords=st.sets(st.text(min_size=1, max_size=12), min_size=0, max_size=60),
    probes=st.lists(st.text(min_size=1, max_size=12), max_size=20),
    counts=st.booleans(),
    lower=st.booleans(),
    crlf=st.booleans(),
    trailing=st.booleans(),
)
def test_the_bisection_finds_exactly_the_listed_hashes(
    tmp_path_factory, passwords, probes, counts, lower, crlf, trailing
):
    digests = sorted(sha1(p).upper() for p in passwords)
    lines = [
        (d.lower() if lower else d) + (f":{len(d) * 7 + n}" if counts else "")
        for n, d in enumerate(digests)
    ]
    path = write(
        tmp_path_factory.mktemp("pwned") / "list.txt",
        lines,
        newline="\r\n" if crlf else "\n",
        trailing=trailing,
    )
    for password in passwords:
        assert sha1_in_sorted_file(path, sha1(password)), password
    for probe in probes:
        assert sha1_in_sorted_file(path, sha1(probe)) == (probe in passwords), probe


def test_the_bisection_reads_only_a_few_lines_of_a_large_file(tmp_path, monkeypatch):
    digests = sorted(sha1(f"p{n}").upper() for n in range(20_000))
    path = write(tmp_path / "big.txt", [f"{d}:{n}" for n, d in enumerate(digests)])
    import recovery.owner.passwords as module

    calls = []
    real = module._line_start_from

    def counted(handle, offset):
        calls.append(offset)
        return real(handle, offset)

    monkeypatch.setattr(module, "_line_start_from", counted)
    assert sha1_in_sorted_file(path, sha1("p12345"))
    assert not sha1_in_sorted_file(path, sha1("not listed"))
    assert len(calls) <= 2 * 40  # about log2(size) steps per look-up, twice


def test_a_missing_or_foreign_file_fails_closed(tmp_path, settings):
    with pytest.raises(BreachListUnavailable):
        sha1_in_sorted_file(str(tmp_path / "missing.txt"), sha1("x"))
    foreign = write(tmp_path / "words.txt", ["apple", "banana", "cherry"])
    with pytest.raises(BreachListUnavailable):
        sha1_in_sorted_file(foreign, sha1("x"))
    settings.BREACHED_PASSWORDS_FILE = str(tmp_path / "missing.txt")
    with pytest.raises(PasswordRefused) as caught:
        password_check("violet tractor lantern quietly", username=USER, min_length=15)
    assert caught.value.code == "password.breach_list_unavailable"


def test_the_configured_file_is_used(tmp_path, settings):
    leaked = "violet tractor lantern quietly"
    digests = sorted([sha1(leaked).upper(), sha1("a").upper(), sha1("b").upper()])
    settings.BREACHED_PASSWORDS_FILE = write(tmp_path / "list.txt", digests)
    assert codes(leaked) == ["password.breached"]
    assert codes("a different fine passphrase") == []
