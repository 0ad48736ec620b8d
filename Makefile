# twinfeed: one Makefile for people and CI. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)
export TWINFEED_GIT_REVISION := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

DEPS_STAMP := $(VENV)/.deps-installed
EXT_STAMP := $(VENV)/.extension-built
BIN_STAMP := target/release/.binaries-built
RUST_SOURCES := $(shell find features-rs -name '*.rs' -o -name Cargo.toml 2>/dev/null) Cargo.toml $(wildcard Cargo.lock)
DEMO_CAPTURE := data/synth-btcusdt.txt

.PHONY: help setup demo test lint fmt test-rust test-python bench parity gate golden clean

help: ## List targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

setup: $(DEPS_STAMP) $(EXT_STAMP) $(BIN_STAMP) ## Create .venv, install dependencies, build extension and binaries (idempotent)

$(DEPS_STAMP): pyproject.toml
	@command -v cargo >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup)"; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "maturin>=1.7,<2" $$($(PY) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print(" ".join(repr(d) for d in p["dependencies"] + p["optional-dependencies"]["dev"]))' | tr -d "'")
	@touch $@

$(EXT_STAMP): $(DEPS_STAMP) $(RUST_SOURCES)
	$(VENV)/bin/maturin develop --release --quiet
	@touch $@

$(BIN_STAMP): $(RUST_SOURCES)
	cargo build --release --quiet --bins
	@touch $@

demo: setup ## Set up, then features + a one-minute paper-trading session on the bundled capture
	$(VENV)/bin/twinfeed features $(DEMO_CAPTURE) --out target/demo/features.parquet
	rm -f target/demo/trade.duckdb
	$(VENV)/bin/twinfeed live --capture $(DEMO_CAPTURE) --speed 2 --db target/demo/trade.duckdb --out target/demo

test: setup lint test-rust test-python gate ## Set up if needed, then every test, lint and the parity gate

test-rust: ## Rust unit and integration tests
	cargo test --quiet --release

test-python: setup ## pytest (real processes on loopback, real captures in ../shared)
	$(PY) -m pytest -q

lint: setup ## cargo fmt --check, clippy -D warnings, ruff, mypy
	cargo fmt --all --check
	cargo clippy --release --quiet --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests benchmarks
	$(VENV)/bin/ruff format --check python tests benchmarks
	$(VENV)/bin/mypy

fmt: setup ## Format Rust and Python sources
	cargo fmt --all
	$(VENV)/bin/ruff format python tests benchmarks
	$(VENV)/bin/ruff check --fix python tests benchmarks

bench: setup ## Run the benchmarks and print their tables (slow; wants a quiet machine)
	$(PY) benchmarks/batch_features.py
	$(PY) benchmarks/venue_throughput.py
	$(PY) benchmarks/ring_throughput.py
	$(PY) benchmarks/backtest.py

parity: setup ## Live-vs-batch parity check on the bundled capture
	$(VENV)/bin/twinfeed parity check --capture $(DEMO_CAPTURE) --work-dir target/parity

gate: setup ## Deployment gate: backtest artifact + goldens + parity on bundled and ../shared captures
	$(VENV)/bin/twinfeed backtest --capture $(DEMO_CAPTURE) --out target/gate/backtest --no-plots
	$(VENV)/bin/twinfeed parity gate --strategy-artifact target/gate/backtest/artifact.json

golden: setup ## Regenerate golden digests on purpose (after a deliberate feature change)
	$(VENV)/bin/twinfeed parity golden --write

clean: ## Remove build outputs (keeps .venv)
	cargo clean
	rm -f $(EXT_STAMP)
