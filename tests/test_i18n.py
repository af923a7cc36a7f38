"""The console ships complete, compiled Spanish and French catalogues (issue 6)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.core.management import call_command

LOCALE = Path(settings.BASE_DIR) / "locale"
SHIPPED = ("es", "fr")
SOURCE_DIRS = ("api", "audit", "config", "integrations", "recovery", "templates", "tenants")


def _po(root: Path, language: str) -> Path:
    return root / language / "LC_MESSAGES" / "django.po"


@pytest.fixture(scope="module")
def fresh_catalogues(tmp_path_factory) -> Path:
    """The shipped catalogues merged with every string in the source today (makemessages).

    It runs on a copy of the source: makemessages writes into the `locale` folder beside the
    files it scans, and the checkout must stay as it is.
    """
    copy = tmp_path_factory.mktemp("source")
    for name in SOURCE_DIRS:
        shutil.copytree(Path(settings.BASE_DIR) / name, copy / name)
    shutil.copytree(LOCALE, copy / "locale")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(copy)
        patch.setattr(settings, "LOCALE_PATHS", [copy / "locale"])
        call_command("makemessages", locale=list(SHIPPED), no_obsolete=True, verbosity=0)
    return copy / "locale"


@pytest.mark.parametrize("language", SHIPPED)
def test_every_source_string_is_translated(fresh_catalogues, language):
    catalogue = polib.pofile(str(_po(fresh_catalogues, language)))
    missing = [entry.msgid for entry in catalogue.untranslated_entries()]
    fuzzy = [entry.msgid for entry in catalogue.fuzzy_entries()]
    assert not missing, f"{len(missing)} untranslated in {language}, e.g. {missing[:5]}"
    assert not fuzzy, f"{len(fuzzy)} fuzzy in {language}, e.g. {fuzzy[:5]}"


@pytest.mark.parametrize("language", SHIPPED)
def test_catalogue_formats_are_consistent(language):
    """Placeholders (%(name)s, {name}) survive translation, as msgfmt --check sees them."""
    result = subprocess.run(
        ["msgfmt", "--check", "-o", "/dev/null", str(_po(LOCALE, language))],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def _messages(catalogue: polib._BaseFile) -> dict[tuple[str | None, str], object]:
    """Translated entries by (context, msgid); a .mo holds only those (and no fuzzy ones)."""
    return {
        (entry.msgctxt, entry.msgid): entry.msgstr_plural or entry.msgstr
        for entry in catalogue
        if (entry.msgstr or entry.msgstr_plural)
        and not getattr(entry, "obsolete", False)
        and "fuzzy" not in getattr(entry, "flags", ())
    }


@pytest.mark.parametrize("language", SHIPPED)
def test_compiled_catalogue_matches_its_source(language):
    source = _po(LOCALE, language)
    compiled = polib.mofile(str(source.with_suffix(".mo")))
    assert _messages(compiled) == _messages(polib.pofile(str(source)))
