//go:build tools

// Package buildkit pins the buildkitd and buildctl binaries the tests and the
// local environment run to the moby/buildkit version of the main module.
package buildkit

import (
	_ "github.com/moby/buildkit/cmd/buildctl"
	_ "github.com/moby/buildkit/cmd/buildkitd"
)
