# The two commands of the README: `make serve` and `make test`. Both install first.
VENV ?= .venv
STAMP := $(VENV)/.thinkctl-installed

.PHONY: install serve test lint
install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	VENV=$(VENV) bash scripts/install.sh
	touch $@

serve: install
	$(VENV)/bin/thinkctl serve $(ARGS)

test: install
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
