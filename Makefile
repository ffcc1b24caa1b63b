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

# browser-deps: install playwright-core for the browser tests of the status and demo pages (needs npm; Chromium
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

# fuzz: run every fuzz target of every package (listed by go test -list, built once per package) for FUZZTIME each
# (default 30s). A run whose only failure is Go 1.26's spurious "context deadline exceeded" as -fuzztime ends
# (go.dev/issue/75804: no failing input, no seed failing) is reported and not counted as a failure.
FUZZTIME ?= 30s
fuzz:
	n=0; log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	for pkg in $$(grep -rl --include='*_test.go' --exclude-dir=node_modules --exclude-dir=.git '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		list=$$($(GO) test -list '^Fuzz' -fuzz '^Fuzz' "$$pkg"); \
		for t in $$(grep '^Fuzz' <<<"$$list" || true); do \
			echo "fuzz: $$pkg $$t for $(FUZZTIME)"; \
			if ! $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) "$$pkg" 2>&1 | tee "$$log"; then \
				grep -qx '    context deadline exceeded' "$$log" || exit 1; \
				! grep -q -e 'Failing input written' -e '^    --- FAIL' -e 'failure while testing seed corpus' "$$log" || exit 1; \
				echo "fuzz: $$pkg $$t: spurious deadline error at the end of -fuzztime (go.dev/issue/75804), no failing input: ignored"; \
			fi; \
			n=$$((n + 1)); \
		done; \
	done; \
	[ "$$n" -gt 0 ] || { echo "fuzz: no fuzz targets found"; exit 1; }

# lint: formatting, vet and staticcheck (fetched through the module proxy at a pinned version).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

# bench-compare: Pushpin (installed from Debian if missing) and edgepush side by side, same scenarios,
# same run; writes the table, and the latency plots (docs/bench/) side by side, into BENCHMARKS.md.
# Env: CONNS=5000 RUNS=3, QUICK=1 for a smoke run.
bench-compare:
	loadtest/scripts/bench-compare.sh

.PHONY: build run interop-deps browser-deps test race bench fuzz lint bench-compare
