# flashedge: `make run` starts the whole stack on loopback, `make test` runs every test.
# Both install what they need from Debian's packages when it is missing.

GO       ?= go
BIN      := $(CURDIR)/bin
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_DONE := $(BIN)/.apt-updated

.PHONY: run test test-short bench chaos sim lint build deps-test deps-bench clean

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./edge/cmd/... ./backend/cmd/... ./bench/cmd/... ./deploy/cmd/...

$(APT_DONE):
	@mkdir -p $(BIN)
	$(SUDO) apt-get update -qq
	@touch $@

# need-pkg installs a Debian package when the command it provides is missing.
define need-pkg
	@command -v $(1) >/dev/null 2>&1 || { $(MAKE) --no-print-directory $(APT_DONE) && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(2); }
endef

deps-test:
	$(call need-pkg,redis-server,redis-server)
	$(call need-pkg,haproxy,haproxy)
	$(call need-pkg,chromium,chromium)

deps-bench: deps-test
	$(call need-pkg,wrk,wrk)
	$(call need-pkg,nginx,nginx libnginx-mod-http-lua lua-nginx-redis)
	@[ -e /usr/share/lua/5.1/resty/lrucache.lua ] || [ -e /usr/share/lua/5.1/resty/lrucache/init.lua ] || \
		{ $(MAKE) --no-print-directory $(APT_DONE) && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq lua-resty-lrucache || true; }

run: build deps-test
	$(BIN)/launch -bin $(BIN) $(ARGS)

test: deps-test
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...
	@# The core end-to-end tests again, with every service on a Redis Cluster (3 primaries, a replica each).
	FLASHEDGE_STACK_STORE=cluster $(GO) test -race -count=1 -timeout 10m \
		-run '^(TestProductUpdateVisibleAtEdge|TestConcurrentCheckoutNoOversell|TestAuthorizationMatrix|TestFlashSaleThroughTheEdge)$$' ./deploy/e2e/
	@# Allocation counts are meaningless under -race (sync.Pool drops items), so those tests
	@# skip there and run here without it.
	$(GO) test -count=1 -run 'Allocs' ./...

# The fault-injection tests including the slow ones (the 60 s stale-if-error bound); CI runs it.
chaos: deps-test
	FLASHEDGE_CHAOS_FULL=1 $(GO) test -race -count=1 -v -timeout 20m ./deploy/chaos/

# The seeded interleaving and fault simulation of the flash-sale core (issue 10) over many more
# seeds than make test runs (60): SEEDS schedules from FIRST_SEED. A failure prints its seed, its
# steps and the command that replays it exactly.
SEEDS      ?= 2000
FIRST_SEED ?= 1
sim: deps-test
	$(GO) test -count=1 -timeout 0 -v -run 'TestSim$$' ./backend/internal/flashsale/ \
		-args -seeds $(SEEDS) -first-seed $(FIRST_SEED)

# Every fuzz target of client input, FUZZTIME executions each (seed corpora in testdata/fuzz run in
# `make test` too); CI runs it. A count, not a duration: with a duration Go 1.26's fuzz coordinator
# can fail at its deadline with no input found (golang/go#75804). A failing input is written to
# testdata/fuzz: commit it. A target may name its own count after a second colon: the request
# bodies are fuzzed through the real handlers against a real redis-server (about 1,000-2,000
# executions a second, against hundreds of thousands for the pure parsers), so they take
# FUZZSTORE each to keep `make fuzz` near two minutes.
FUZZTIME  ?= 200000x
FUZZSTORE ?= 10000x
FUZZ_TARGETS := \
	./edge/internal/proxyproto:FuzzParse \
	./edge/internal/clientaddr:FuzzForwarded \
	./edge/internal/session:FuzzVerify \
	./edge/internal/session:FuzzLoginBody:50000x \
	./shared/waitroom:FuzzOpenToken \
	./shared/httpapi:FuzzBatchBody \
	./shared/challenge:FuzzVerify \
	./shared/product:FuzzParsePage \
	./edge/internal/flashgate:FuzzIDs \
	./backend/internal/cart:FuzzCartBodies:$(FUZZSTORE) \
	./backend/internal/catalog:FuzzAdminProductBody:$(FUZZSTORE) \
	./backend/internal/flashsale:FuzzSaleCreate:$(FUZZSTORE) \
	./backend/internal/flashsale:FuzzAttempt:$(FUZZSTORE) \
	./backend/internal/flashsale:FuzzAttemptBody
fuzz: deps-test
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; n=$(FUZZTIME); \
		case $$rest in *:*) n=$${rest#*:};; esac; \
		echo "fuzz $$name ($$pkg, $$n)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $$n $$pkg; \
	done

test-short:
	$(GO) test -short ./...

# Pinning for the write-path row: servers on CPU 1, the load tool on CPU 0.
PIN_OK      := $(shell command -v taskset >/dev/null 2>&1 && [ "$$(nproc)" -ge 2 ] && echo 1)
PIN_LOAD    := $(if $(PIN_OK),taskset -c 0)
PIN_SERVERS := $(if $(PIN_OK),-server-cpu 1)

# The peer comparison (wrk against the ceiling, the edge and nginx + Lua), then the flash-sale
# rush with its invariant checks (the edge's default limits on, every shopper from its own loopback
# address: a baseline round, then the same rush with bots), the seed's cart stress test, the waiting room,
# overload and slow clients: about twelve minutes in all.
bench: build deps-bench
	@mkdir -p bench/out
	$(BIN)/benchrun -bin $(BIN)
	@# The write path with the gate wide open (issue 13): admissions/s and CPU per admission of
	@# edge -> order -> store (+ worker) against the nginx + Lua admission on the same store, the
	@# stack and nginx on CPU 1, the load tool on CPU 0 (unpinned where taskset or a 2nd CPU is missing).
	$(PIN_LOAD) $(BIN)/load -spawn -bin $(BIN) -scenario admit -duration 10s $(PIN_SERVERS) -json bench/out/admit.json
	$(BIN)/load -spawn -bin $(BIN) -scenario rush -attempts 100000 -users 20000 -stock 1000 -shards 8 \
		-difficulty 8 -bots 8 -json bench/out/rush.json -plot bench/out/rush.svg
	$(BIN)/load -spawn -bin $(BIN) -scenario stress -levels 100,500,1000 -duration 10s \
		-json bench/out/stress.json -plot bench/out/stress.svg
	$(BIN)/load -spawn -bin $(BIN) -scenario waitroom -users 100000 -stock 1000 -admit 250 -difficulty 8 \
		-json bench/out/waitroom.json
	@# Overload (issue 15): cart adds and attempts at 1x, 2x and 5x their measured capacity, then 1x
	@# again; the edge alone on CPU 1 (as on machines of its own), the load tool with the backends
	@# and the store (capped together at 0.2 of a CPU) on CPU 0.
	$(PIN_LOAD) $(BIN)/load -spawn -bin $(BIN) -scenario overload -duration 5s $(PIN_SERVERS) -overload-backend-cpu 0.2 -overload-edge-alone -json bench/out/overload.json
	@# Slow clients (issue 15): 2,000 slowloris connections and 50 slow readers from 205 loopback
	@# addresses against the default limits, shoppers' p99 against their baseline, the per-address
	@# connection cap; the load tool on CPU 0, the stack on CPU 1.
	$(PIN_LOAD) $(BIN)/load -spawn -bin $(BIN) -scenario slow $(PIN_SERVERS) -json bench/out/slow.json

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt would change:"; echo "$$out"; exit 1; }
	$(GO) vet ./...

clean:
	rm -rf $(BIN) .data
