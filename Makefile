# Apex Ingest — the two commands:
#   make demo   set up the local stack and run the main job on it
#   make test   set up what the tests need and run the whole suite
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/apex-target
APEX := $(CARGO_TARGET_DIR)/debug/apex
CARGO := cargo

# make fresh-check (not part of make test; about 20 minutes): `make demo` then `make test` in a
# Debian 12 root that has only debootstrap's minimal system and deploy/fresh/image-base.txt.
.PHONY: demo test fresh-check loadtest loadtest-sustained bench-webhooks bench-polling bench-peer chaos bootstrap build up down status doctor lint fmt clean-state bench-vectors bench-parser fuzz-parser bench-extractor eval-extractor bench-embedder bench-writer bench-tracing bench-scale

bootstrap:
	deploy/local/bootstrap

build: bootstrap
	deploy/local/build

up: build
	$(APEX) up

down:
	@if [ -x "$(APEX)" ]; then $(APEX) down; fi

status doctor:
	$(APEX) $@

DEMO_CORPUS := .apex/demo-corpus
DEMO_SOURCE := demo

# The main job: the whole mesh up, a mixed-format corpus made by the project (apex-tools) ingested through
# the gateway (and the rollout's path), a summary, two searches, and where to look next.
demo: up
	@echo
	@echo "== demo corpus (made by apex-tools parser corpus) =="
	$(CARGO_TARGET_DIR)/debug/apex-tools parser corpus $(DEMO_CORPUS)
	@echo
	@echo "== rollout =="
	$(APEX) rollout get
	@echo
	@echo "== ingest through the gateway =="
	$(APEX) ingest $(DEMO_CORPUS) --source $(DEMO_SOURCE) --wait
	@echo
	@echo "== search =="
	$(APEX) search "container arrival at the port of Genoa" --source $(DEMO_SOURCE) --limit 3
	@echo
	$(APEX) search "haulage invoice from Felixstowe to Birmingham" --source $(DEMO_SOURCE) --limit 3
	@echo
	@echo "== the newest demo document's trace (gateway -> Temporal -> activities -> services -> stores) =="
	$(APEX) trace --source $(DEMO_SOURCE) --wait-secs 60
	@echo "Temporal UI, the demo's workflows: http://127.0.0.1:8233/namespaces/default/workflows?query=Source%3D%22$(DEMO_SOURCE)%22"
	@echo "Trace viewer (Arize Phoenix), every trace: http://127.0.0.1:6006"
	@echo "Gateway API: http://127.0.0.1:8080/openapi.json   Prometheus: http://127.0.0.1:9090"
	@echo "Stop everything with: make down"

# Brings the stack up, runs every test, stops what it started (also on failure), and ends
# with the totals over every test binary.
test: build
	@started=$$($(APEX) status >/dev/null 2>&1 && echo no || echo yes); \
	$(APEX) up || exit 1; \
	log=$$(mktemp); \
	APEX_REQUIRE_STACK=1 $(CARGO) test --locked --workspace --all-targets 2>&1 | tee "$$log"; rc=$${PIPESTATUS[0]}; \
	if [ "$$started" = yes ]; then $(APEX) down; fi; \
	awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($$(i+1) ~ /^passed/) p += $$i; if ($$(i+1) ~ /^failed/) f += $$i } } \
	     END { printf "%d passed, %d failed\n", p, f }' "$$log"; \
	rm -f "$$log"; \
	exit $$rc

# Load test of both paths through the gateway of the running stack (make up first):
# LOADTEST_ARGS="--concurrency 100 --documents 300 --path both". Figures go to
# docs/benchmarks.md; the JSON report to .apex/loadtest/report.json.
LOADTEST_ARGS ?= --concurrency 100 --documents 300 --path both
loadtest: up
	$(CARGO_TARGET_DIR)/debug/apex-loadtest ingest $(LOADTEST_ARGS)

# The whole pipeline against its Python peer (pypdf / python-docx / BeautifulSoup,
# sentence-transformers on PyTorch, row-by-row psycopg inserts) on the same documents (the
# corpus's PDF, DOCX and HTML files the Python libraries read) and cores: docs/s, chunks/s
# and the ratios. Installs the peer's venv (about 6 GB) on first use.
bench-peer: up
	deploy/local/bootstrap --peer
	deploy/local/bench-peer

# A sustained run (open loop: SUSTAIN_ARGS="--path temporal --rate 4 --seconds 600"): a row a
# minute with docs/s, p50/p99, backlog and each process's memory; the JSON report to
# .apex/loadtest/sustain.json. Figures in docs/benchmarks.md.
SUSTAIN_ARGS ?= --path temporal --rate 4 --seconds 600 --interval-secs 60 --concurrency 400
loadtest-sustained: up
	$(CARGO_TARGET_DIR)/debug/apex-loadtest sustain $(SUSTAIN_ARGS)

# Signed webhook deliveries (Stripe's scheme) at 200/s for 20 s against a gateway of the
# run's own, beside GET /livez at the same rate: p50/p95/p99 of both (docs/benchmarks.md).
bench-webhooks: up
	$(CARGO_TARGET_DIR)/debug/apex-loadtest webhooks $(WEBHOOK_ARGS)

# A poll's records ingested as child workflows (1, 16, 64 at a time) against the same records'
# ingestions started directly (APEX_BENCH_RECORDS, default 100). Figures in docs/benchmarks.md.
bench-polling: up
	APEX_REQUIRE_STACK=1 $(CARGO) test -p apex-e2e --test e2e -- --ignored --nocapture polling::bench_polling

# The chaos suite (about 2 hours with the defaults): every service, store, Temporal and the
# gateway taken away for CHAOS_AWAY seconds in turn while documents go through the Temporal
# path; the report (also in .apex/chaos-report.md) says what completed, failed, was lost or
# duplicated, whether the stores agree, and the time to recover. `make test` runs a short
# version (30 s each). CHAOS_ARGS="--how kill --targets embedder,redis" for more.
CHAOS_AWAY ?= 600
CHAOS_DOCUMENTS ?= 20
chaos: up
	@mkdir -p .apex
	$(CARGO_TARGET_DIR)/debug/apex-chaos --away-secs $(CHAOS_AWAY) --documents $(CHAOS_DOCUMENTS) --report .apex/chaos-report.md $(CHAOS_ARGS)

# Vector database benchmark (release build; starts its own server on 127.0.0.1 unless
# BENCH_ARGS="--url http://127.0.0.1:6334"). Figures go to docs/benchmarks.md.
bench-vectors:
	$(CARGO) run --locked --release -p apex-vectord -- bench $(BENCH_ARGS)

# Parser benchmark against pypdf / python-docx / BeautifulSoup in the same run (release build).
bench-parser:
	deploy/local/bootstrap --bench
	$(CARGO) run --locked --release -p apex-tools -- parser bench $(BENCH_ARGS)

# Bounded mutation fuzzing of every format parser (release build); exits 1 on a panic.
FUZZ_ITERATIONS ?= 2000
fuzz-parser: bootstrap
	$(CARGO) run --locked --release -p apex-tools -- parser fuzz --iterations $(FUZZ_ITERATIONS)

# Extractor: chunks/s on 256-token chunks, one thread and every core (release build).
bench-extractor: bootstrap
	$(CARGO) run --locked --release -p apex-tools -- extractor bench $(BENCH_ARGS)

# Embedder: chunks/s of candle and of ONNX Runtime (fp32, int8) from Rust, against Python +
# ONNX Runtime on the same graph and sentence-transformers on PyTorch from the same weights,
# on the same token windows and cores (release build; the PyTorch venv is ~6 GB).
bench-embedder:
	deploy/local/bootstrap --peer
	$(CARGO) run --locked --release -p apex-tools -- embedder bench $(BENCH_ARGS)

# Writer benchmark (release build) against the local stack: docs/s and chunks/s through the
# saga, batched vs row by row, serial and 8 concurrent. Figures go to docs/benchmarks.md.
bench-writer: build
	$(APEX) up postgres redis graph vectors
	$(CARGO) run --locked --release -p apex-tools -- writer bench $(BENCH_ARGS)

# Extractor quality: precision, recall and F1 per entity type on the labelled set and on the
# held-out set.
eval-extractor:
	$(CARGO) run --locked --release -p apex-tools -- extractor eval
	$(CARGO) run --locked --release -p apex-tools -- extractor eval --dir services/extractor/eval-heldout

fresh-check:
	deploy/fresh/fresh-check $(FRESH_ARGS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets --all-features -- -D warnings

fmt:
	$(CARGO) fmt --all

clean-state: down
	rm -rf .apex

# The cost of tracing: ingest docs/s with span export on vs off, alternating rounds in one run
# (docs/benchmarks.md#tracing-overhead). ROUNDS=2 DOCS=60 CONCURRENCY=12 by default.
bench-tracing: up
	deploy/local/bench-tracing

# Ingestion docs/s and latency at 1, 2 and 3 replicas of a stage (default the embedder) and
# with 2 workers, in one run; docs/benchmarks.md holds the figures.
BENCH_SCALE_ARGS ?=
bench-scale: up
	@mkdir -p .apex
	$(CARGO_TARGET_DIR)/debug/apex-bench-scale --report .apex/bench-scale.md $(BENCH_SCALE_ARGS)
