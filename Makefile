# bread: `make run` runs the whole system locally, `make test` runs every test (against a real Kafka broker).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
KAFKA_LIB := kafka/target/lib
KUSTOMIZE_VERSION := v5.5.0

.PHONY: run test test-fast lint setup bench screenshots clean

run: setup
	$(BIN)/bread up

test: setup .tools/.kustomize lint
	$(BIN)/pytest

# The unit and in-process tests alone (no broker, no services): a minute, for while you work.
test-fast: $(VENV)/.installed .tools/.kustomize lint
	$(BIN)/pytest -m "not e2e"

# The layers (lint-imports), lint (ruff) and the pure layer's types (mypy): pyproject.toml has their settings.
lint: $(VENV)/.installed
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/mypy

setup: $(VENV)/.installed $(KAFKA_LIB)/.fetched

# The manifest tests render k8s/ with kustomize: kubectl's own, a kustomize on PATH, or one built here with Go.
.tools/.kustomize:
	@mkdir -p .tools
	@if command -v kustomize >/dev/null || command -v kubectl >/dev/null; then :; \
	elif command -v go >/dev/null; then GOBIN=$(CURDIR)/.tools go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION); \
	else echo "the manifest tests need kustomize: install kubectl, kustomize or Go"; exit 1; fi
	touch $@

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "bread needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

$(KAFKA_LIB)/.fetched: kafka/pom.xml
	@command -v java >/dev/null || { echo "bread needs Java 17+ to run Kafka (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "bread needs Maven to fetch Kafka (apt-get install maven)"; exit 1; }
	mvn -q -B -f kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(KAFKA_LIB)
	touch $@

bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/capacity.py
	$(BIN)/python bench/traces.py

# The README's pictures of the web page, taken by its browser tests against a system of their own.
screenshots: setup
	BREAD_SCREENSHOTS=docs $(BIN)/pytest tests/e2e/test_web_page.py

clean:
	rm -rf $(VENV) kafka/target var .tools
