# convox-build-action: build, local environment and tests.
#
#   make demo   set up a local buildkitd + registry and build two sample apps
#   make test   install prerequisites, then go vet and go test -race ./...
#   make env    start (or reuse) buildkitd + registry; prints shell exports
#   make env-stop
#   make bench  benchmarks against buildctl on the same buildkitd

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin

GO ?= go
STATE ?= .state

.PHONY: all deps buildkit env env-stop demo test vet bench clean

all: bin/convox-build

deps:
	@scripts/deps.sh

# buildkitd and buildctl at exactly the moby/buildkit version of go.mod,
# built from the module proxy through tools/buildkit; rebuilt only when
# missing or when that version changes.
buildkit:
	@GO=$(GO) scripts/buildkit.sh

bin/buildkitd bin/buildctl: buildkit

bin/devenv: FORCE
	@$(GO) build -o $@ ./internal/devenv/cmd/devenv

bin/convox-build: FORCE
	@$(GO) build -o $@ ./cmd/convox-build

FORCE:

# Prints `export ...` lines: eval "$$(make -s env)"
env: deps buildkit bin/devenv
	@bin/devenv up --dir $(STATE)/env

env-stop: bin/devenv
	@bin/devenv down --dir $(STATE)/env

# Builds testdata/apps/demo, then testdata/apps/hub, whose `image: busybox`
# service is copied from Docker Hub through the local mirror (REGISTRY_MIRRORS).
demo: deps buildkit bin/devenv bin/convox-build
	@eval "$$(bin/devenv up --dir $(STATE)/env)" && \
	  bin/convox-build build testdata/apps/demo --app demo --repository "$$CONVOX_BUILD_REGISTRY/demo" && \
	  bin/convox-build build testdata/apps/hub --app hub

vet:
	$(GO) vet ./...

test: deps buildkit
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...

bench: deps buildkit
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 30m ./internal/build/ ./internal/action/

clean:
	-@[ -x bin/devenv ] && bin/devenv down --dir $(STATE)/env
	rm -rf bin $(STATE)
