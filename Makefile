GO      ?= go
PKGS    := ./...
FUZZTIME ?= 10s

.PHONY: all build test unit fuzz-short deps run vet bench-proxy bench-datapath pgx-suite clean bench-copy bench-reencrypt

all: build

build:
	$(GO) build -o bin/pgseal ./cmd/pgseal

deps:
	@scripts/install-deps.sh

vet:
	$(GO) vet $(PKGS)

## test: unit tests, end-to-end tests against throwaway PostgreSQL clusters, short fuzz runs.
test: deps vet
	$(GO) test -count=1 -timeout 40m $(PKGS)
	@$(MAKE) --no-print-directory fuzz-short

## fuzz-short: a short run of every fuzz target (FUZZTIME each).
fuzz-short:
	@scripts/fuzz-short.sh $(FUZZTIME)

## run: pgseal on an embedded default (throwaway PostgreSQL, generated keys and certificates, example policy).
run: deps build
	./bin/pgseal dev

## pgx-suite: pgx's own test suite directly and through pgseal; prints both counts and every difference.
pgx-suite: deps
	@scripts/pgx-suite.sh

## bench-proxy: pgbench -S directly, through pgseal and through PgBouncer in one run; prints TPS and ratios.
bench-proxy: deps
	@scripts/bench-proxy.sh

## bench-datapath: pgbench INSERT + SELECT by deterministic equality through pgseal, encrypted table vs plaintext table; TPS, ratio, analysis cost.
bench-datapath: deps
	@scripts/bench-datapath.sh

## bench-copy: COPY load and export of 1M rows, directly and through pgseal; prints times and ratios.
bench-copy: deps
	@scripts/bench-copy.sh

clean:
	rm -rf bin

## bench-reencrypt: reencrypt throughput on 1M rows with the application workload off and on.
bench-reencrypt: deps
	@scripts/bench-reencrypt.sh
