# Weft — build, test, lint, demo and benchmarks.
GO            ?= go
BIN           ?= bin
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -X github.com/weft-sdn/weft/internal/controller.Version=$(VERSION) -X github.com/weft-sdn/weft/internal/weftctl.Version=$(VERSION)
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BINARIES      := weft weftctl weft-cni weft-bench

.PHONY: all build test lint bench demo demo-down clean

all: build

# weft-cni is linked statically (CGO_ENABLED=0): the runtime starts it for
# every container, and the dynamic loader alone costs each start about a
# millisecond of CPU.
build:
	@mkdir -p $(BIN)
	@for b in $(BINARIES); do \
	  if [ $$b = weft-cni ]; then cgo=0; else cgo=$$($(GO) env CGO_ENABLED); fi; \
	  CGO_ENABLED=$$cgo $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/$$b ./cmd/$$b || exit 1; done

# Unit, integration and kernel tests; fuzz targets run their seed corpora.
test:
	$(GO) test -count=1 -timeout 20m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Go benchmarks (embedded etcd), then the CNI harness against Debian's
# bridge + host-local (root); figures go to docs/performance.md.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2000x ./internal/ipam/ ./internal/controller/
	$(BIN)/weft-bench cni --iterations 200 --runs 5 --concurrency 1,20

# A 3-node lab with networks, tasks, status and a connectivity matrix
# (root). It stays up: `bin/weft lab down` removes it.
demo: build
	@./scripts/demo.sh

demo-down:
	@$(BIN)/weft lab down

clean:
	rm -rf $(BIN)
