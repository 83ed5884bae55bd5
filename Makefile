# chorus — build, test and run. `make run` and `make test` work on a fresh Debian machine:
# both install what they need first (Debian packages through apt-get, Go modules through
# the module proxy).

GO      ?= go
BIN     := bin/chorus
PKGS    := ./...
APT_PKGS := build-essential pkg-config libopenblas-dev espeak-ng sox flac protobuf-compiler
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test run bench proto fuzz lint clean

all: build

# deps installs the Debian packages chorus builds and tests with, and the Go modules.
deps: .deps-stamp
.deps-stamp: Makefile go.mod
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	$(GO) mod download
	@touch $@

build: deps
	$(GO) build -o $(BIN) ./cmd/chorus

test: deps
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 30m $(PKGS)
	CGO_ENABLED=0 $(GO) build ./...

run: build
	./$(BIN) serve

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./tensor/ ./asr/...
	./$(BIN) bench --dims tiny --threads 2

proto: deps
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc -I proto --go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative proto/chorus/v1/*.proto

# fuzz runs every fuzz target for FUZZTIME each (default 1m).
FUZZTIME ?= 1m
fuzz: deps
	@for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf bin .deps-stamp
