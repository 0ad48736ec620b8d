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
# Third-party clients whose package collides with a dev dependency's (python-binance and
# binance-futures-connector are both the `binance` package): each in its own folder, put on
# PYTHONPATH only by the conformance test that runs it in a process of its own.
ISOLATED_CLIENTS := python-binance==1.0.37
CLIENTS_STAMP := $(VENV)/clients/.installed-python-binance-1.0.37
RUST_SOURCES := $(shell find features-rs -name '*.rs' -o -name Cargo.toml 2>/dev/null) Cargo.toml $(wildcard Cargo.lock)
DEMO_CAPTURE := data/synth-btcusdt.txt
REAL_USDM := ../shared/data/real/binance-usdm/btcusdt_20240808.gz
REAL_SPOT := ../shared/data/real/binance-spot/btcusdt_20240808.gz
# The live sessions `make gate` runs and replays (bundled, and the real captures when present).
GATE_LIVE := bundled $(if $(wildcard $(REAL_USDM)),usdm) $(if $(wildcard $(REAL_SPOT)),spot)

.PHONY: help setup notebooks demo test lint fmt test-rust test-python bench parity gate golden clean \
	fuzz fuzz-smoke fuzz-seeds fuzz-build fuzz-tools

help: ## List targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

setup: $(DEPS_STAMP) $(CLIENTS_STAMP) $(EXT_STAMP) $(BIN_STAMP) ## Create .venv, install dependencies, build extension and binaries (idempotent)

$(DEPS_STAMP): pyproject.toml
	@command -v cargo >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup)"; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "maturin>=1.7,<2" $$($(PY) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print(" ".join(repr(d) for d in p["dependencies"] + p["optional-dependencies"]["dev"] + p["optional-dependencies"]["dask"]))' | tr -d "'")
	@touch $@

$(CLIENTS_STAMP): $(DEPS_STAMP)
	$(PY) -m pip install -q --target $(VENV)/clients/python-binance $(ISOLATED_CLIENTS)
	@touch $@

$(EXT_STAMP): $(DEPS_STAMP) $(RUST_SOURCES)
	$(VENV)/bin/maturin develop --release --quiet
	@touch $@

$(BIN_STAMP): $(RUST_SOURCES)
	cargo build --release --quiet --bins
	@touch $@

demo: setup ## Set up, then features + a one-minute paper-trading session on the bundled capture
	@mkdir -p target/demo
	$(VENV)/bin/twinfeed features $(DEMO_CAPTURE) --out target/demo/features.parquet
	rm -f target/demo/trade.duckdb
	$(VENV)/bin/twinfeed live --capture $(DEMO_CAPTURE) --speed 2 --db target/demo/trade.duckdb --out target/demo

notebooks: setup ## Install JupyterLab (the `notebooks` extra) into .venv and open notebooks/
	$(PY) -m pip install -q $$($(PY) -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["notebooks"]))')
	$(VENV)/bin/jupyter lab notebooks/

test: setup lint test-rust test-python gate fuzz-smoke ## Set up if needed, then every test, lint, the parity gate and the fuzz smoke

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

gate: setup ## Deployment gate: backtest artifact + goldens + parity + decision replay of short live sessions
	@mkdir -p target/gate
	$(VENV)/bin/twinfeed backtest --capture $(DEMO_CAPTURE) --out target/gate/backtest --no-plots
	@rm -rf target/gate/live && mkdir -p target/gate/live
	@# Short paper-trading sessions (replay speed 5, 8 s each) whose journals the gate replays.
	@for name in $(GATE_LIVE); do \
	  capture=$$(case $$name in bundled) echo $(DEMO_CAPTURE);; usdm) echo $(REAL_USDM);; \
	    spot) echo $(REAL_SPOT);; esac); \
	  echo "twinfeed live --capture $$capture --speed 5 --duration 8 (log: target/gate/live/$$name.log)"; \
	  $(VENV)/bin/twinfeed live --capture $$capture --speed 5 --duration 8 \
	    --db target/gate/live/$$name.duckdb --out target/gate/live/$$name \
	    > target/gate/live/$$name.log 2>&1 || { tail -20 target/gate/live/$$name.log; exit 1; }; \
	done
	$(VENV)/bin/twinfeed parity gate --strategy-artifact target/gate/backtest/artifact.json \
	  $(foreach name,$(GATE_LIVE),--live-db target/gate/live/$(name).duckdb)

golden: setup ## Regenerate golden digests on purpose (after a deliberate feature change)
	$(VENV)/bin/twinfeed parity golden --write

# ---- fuzzing (fuzz/, docs/fuzzing.md) -------------------------------------------------------
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
# No sanitizer by default: the code under test is safe Rust apart from a few reviewed unsafe
# blocks, and without ASan the build is about half as long and runs 2-3x the inputs per second
# (FUZZ_SANITIZER=address for an ASan run). Debug assertions and overflow checks are on.
CARGO_FUZZ := RUSTC_BOOTSTRAP=1 cargo fuzz
FUZZ_SANITIZER ?= none
FUZZ_FLAGS = --sanitizer $(FUZZ_SANITIZER) --codegen-units 16
FUZZ_TARGETS := push_line structured_frames capture_reader ws_frame_reader rest_response_reader \
	venue_request venue_capture venue_book config_toml okx_frames hyperliquid_frames
# Long runs: seconds per target (or FUZZ_RUNS inputs, whichever ends first; 0 = no limit).
FUZZ_SECONDS ?= 600
FUZZ_RUNS ?= 0
# Smoke (CI): seconds per target after the seeds.
FUZZ_SMOKE_SECONDS ?= 6
FUZZ_LOGS ?= target/fuzz-logs
# capture_reader writes each input to a file: on tmpfs it runs ~3x the inputs a second.
FUZZ_TMPDIR ?= $(if $(wildcard /dev/shm/.),/dev/shm,$(or $(TMPDIR),/tmp))
# Longest input per target: deep nesting needs room (about 37,500 levels broke the decoders).
FUZZ_MAX_LEN_push_line := 200000
FUZZ_MAX_LEN_structured_frames := 200000
FUZZ_MAX_LEN_capture_reader := 131072
FUZZ_MAX_LEN_ws_frame_reader := 131072
FUZZ_MAX_LEN_rest_response_reader := 131072
FUZZ_MAX_LEN_venue_request := 70000
FUZZ_MAX_LEN_venue_capture := 4096
FUZZ_MAX_LEN_venue_book := 8192
FUZZ_MAX_LEN_config_toml := 4096
FUZZ_MAX_LEN_okx_frames := 65536
FUZZ_MAX_LEN_hyperliquid_frames := 65536

fuzz-tools: ## Install cargo-fuzz from crates.io if it is missing
	@command -v cargo-fuzz >/dev/null 2>&1 || { \
		echo "cargo-fuzz not found: installing it (cargo install cargo-fuzz --locked)"; \
		cargo install cargo-fuzz --locked; }

fuzz-seeds: ## Seed fuzz/corpus/ from the real captures in ../shared (never committed)
	python3 fuzz/seed_corpus.py

fuzz-build: fuzz-tools ## Build every fuzz target once (release, debug assertions)
	$(CARGO_FUZZ) build $(FUZZ_FLAGS)

# $(call fuzz_run,TARGET): one target for FUZZ_SECONDS (or FUZZ_RUNS inputs), log kept. New
# inputs go to fuzz/corpus/TARGET; fuzz/regressions/TARGET (committed) is replayed first.
fuzz_run = echo "fuzz: $(1) for $(FUZZ_SECONDS) s (log $(FUZZ_LOGS)/$(1).log)" && \
	{ TMPDIR=$(FUZZ_TMPDIR) $(CARGO_FUZZ) run $(FUZZ_FLAGS) $(1) $(CURDIR)/fuzz/corpus/$(1) \
		$(wildcard $(CURDIR)/fuzz/regressions/$(1)) -- -max_total_time=$(FUZZ_SECONDS) \
		-runs=$(if $(filter 0,$(FUZZ_RUNS)),-1,$(FUZZ_RUNS)) -max_len=$(FUZZ_MAX_LEN_$(1)) \
		-timeout=30 -rss_limit_mb=4096 -print_final_stats=1 > $(FUZZ_LOGS)/$(1).log 2>&1 \
		|| { tail -40 $(FUZZ_LOGS)/$(1).log; echo "fuzz: $(1) FAILED (reproducer under fuzz/artifacts/$(1)/)"; exit 1; }; } && \
	grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" $(FUZZ_LOGS)/$(1).log

fuzz: fuzz-build fuzz-seeds ## Fuzz each target (TARGETS=...) for FUZZ_SECONDS (600); logs in FUZZ_LOGS
	@mkdir -p $(FUZZ_LOGS)
	@$(foreach t,$(or $(TARGETS),$(FUZZ_TARGETS)),$(call fuzz_run,$(t)) && ) true

fuzz-smoke: fuzz-build fuzz-seeds ## Every fuzz target for FUZZ_SMOKE_SECONDS (CI)
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS)

clean: ## Remove build outputs (keeps .venv)
	cargo clean
	rm -f $(EXT_STAMP)
