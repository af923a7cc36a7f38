# Two commands: `make run` (embedded SQLite + filesystem broker, demo data) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test lint deps-check bench schema messages screenshots clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

run: install
	@scripts/run.sh

test: install
	@scripts/services.sh
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Fails when a pin in requirements.lock is behind a patch release of its series (issue 17).
deps-check: install
	$(BIN)/python scripts/deps_check.py

bench: install
	@scripts/services.sh
	$(BIN)/python bench/audit_append.py
	$(BIN)/python bench/audit_verify.py
	$(BIN)/python bench/case_lifecycle.py
	$(BIN)/python bench/chain_contention.py
	$(BIN)/python bench/api_throughput.py
	$(BIN)/python bench/case_list_scale.py
	$(BIN)/python bench/revocation.py
	$(BIN)/python bench/console_scale.py
	$(BIN)/python bench/approval_queue.py
	$(BIN)/python bench/detection.py

# The pinned schema is generated as the tests see it: on PostgreSQL (integer limits differ).
schema: install
	@scripts/services.sh
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python manage.py spectacular --validate --fail-on-warn --file docs/openapi.yaml

# Refresh docs/screenshots/ (the README shows them) from the browser tests.
screenshots: install
	@scripts/services.sh
	SCREENSHOTS=docs $(BIN)/python -m pytest tests/browser/test_screenshots.py -q

# Spanish and French catalogues: refresh from the source, translate the new entries, compile.
# tests/test_i18n.py fails while any string is untranslated or a .mo is stale.
messages: install
	$(BIN)/python manage.py makemessages -l es -l fr --no-obsolete --ignore 'tests/*' --ignore 'bench/*' --ignore 'var/*' --ignore 'docs/*' --ignore 'scripts/*'
	$(BIN)/python manage.py compilemessages -l es -l fr --ignore '.venv'

clean:
	rm -rf $(VENV) var/*.sqlite3 var/broker var/broker-processed var/celerybeat-schedule*
