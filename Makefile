# edgepush — make targets. Each target is self-contained; CI runs `make test`.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-builtin-rules

GO      ?= go
BIN     := bin
PKGS    := ./...
INTEROP := node/testdata/interop
BROWSER := node/testdata/browser

# build: compile the node and tools into ./bin.
build:
	$(GO) build -o $(BIN)/edgepush ./cmd/edgepush

# run: start a node on :7999 (control 127.0.0.1:5561) with the built-in demo origin; open http://localhost:7999/.
run: build
	./$(BIN)/edgepush -demo

# interop-deps: install Fanout's npm GRIP libraries for the interop test (needs npm).
interop-deps:
	@if command -v npm >/dev/null; then \
		cd $(INTEROP) && npm install --no-package-lock --no-audit --no-fund --silent; \
	else echo "npm not found: the interop test will be skipped"; fi

# browser-deps: install playwright-core for the status-page browser test (needs npm; Chromium
# comes from Debian: apt-get install chromium, as .ci/run does).
browser-deps:
	@if command -v npm >/dev/null; then \
		cd $(BROWSER) && npm install --no-package-lock --no-audit --no-fund --silent; \
	else echo "npm not found: the browser test will be skipped"; fi

# test: vet, then every test with the race detector (the command CI runs).
test: interop-deps browser-deps
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 10m $(PKGS)

# race: the tests again under the race detector, several times, to shake out flakes.
race:
	$(GO) test -race -count=3 -timeout 20m $(PKGS)

# bench: the Go benchmarks (fan-out, parsing).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 20m $(PKGS)

# fuzz: run every fuzz target of every package (found with go test -list) for FUZZTIME each (default 30s).
FUZZTIME ?= 30s
fuzz:
	pkgs=$$(grep -rl --include='*_test.go' --exclude-dir=node_modules --exclude-dir=.git '^func Fuzz' . | xargs -n1 dirname | sort -u); \
	targets=$$($(GO) test -list '^Fuzz' $$pkgs | awk '/^Fuzz/ { t[n++] = $$1 } /^ok / { for (i = 0; i < n; i++) print $$2 ":" t[i]; n = 0 }'); \
	[ -n "$$targets" ] || { echo "no fuzz targets found"; exit 1; }; \
	for pt in $$targets; do \
		echo "fuzz: $$pt for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${pt#*:}$$" -fuzztime $(FUZZTIME) "$${pt%%:*}"; \
	done

# lint: formatting, vet and staticcheck (fetched through the module proxy at a pinned version).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

# bench-compare: Pushpin (installed from Debian if missing) and edgepush side by side, same scenarios,
# same run; writes the table into BENCHMARKS.md. Env: CONNS=5000 RUNS=3, QUICK=1 for a smoke run.
bench-compare:
	loadtest/scripts/bench-compare.sh

.PHONY: build run interop-deps browser-deps test race bench fuzz lint bench-compare
