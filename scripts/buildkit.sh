#!/usr/bin/env bash
# Builds buildkitd and buildctl into bin/ at exactly the moby/buildkit version
# that go.mod requires (the client's), from the Go module proxy through
# tools/buildkit, with the version stamped in. Does nothing when bin/ already
# holds both binaries at that version.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

want=$($GO list -m -f '{{.Version}}' github.com/moby/buildkit)
tools=$(cd tools/buildkit && $GO list -m -f '{{.Version}}' github.com/moby/buildkit)
if [ "$want" != "$tools" ]; then
  echo "moby/buildkit is $want in go.mod but $tools in tools/buildkit/go.mod: make them agree" >&2
  exit 1
fi

have() { [ -x "bin/$1" ] && "bin/$1" --version 2>/dev/null | grep -q " $want\( \|$\)"; }
if have buildkitd && have buildctl; then
  exit 0
fi

echo "building buildkitd and buildctl $want into bin/" >&2
mkdir -p bin
cd tools/buildkit
$GO build -trimpath -ldflags "-X github.com/moby/buildkit/version.Version=$want" \
  -o ../../bin/ github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl
