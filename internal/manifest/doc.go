// Package manifest reads a Convox v3 convox.yml into a typed Manifest with
// the meaning Convox gives it: ${VAR} interpolation on the raw text, short and
// long forms, Convox's defaults and every check of Convox's validation, with
// Convox's messages. Unlike Convox, every problem carries the file, line and
// column it is about (a YAML syntax error also shows the offending line with
// a caret), unknown keys are reported (with a suggestion when one is close),
// and all problems are collected rather than only the first.
//
// ReadFile reads a convox.yml inside a source directory, refusing links out
// of it; Parse turns bytes into a Manifest; Load does both for the CLI and
// also checks each service's Dockerfile. Manifest.Plan turns a Manifest and
// a source directory into the unique Dockerfile builds the engine runs.
//
// # Build arguments
//
// Plan gives each Dockerfile build these build arguments, later ones
// winning (see BuildArgs):
//
//  1. Convox's rule: for every name the Dockerfile declares with ARG (in
//     any stage; read with BuildKit's own parser), the value of that name
//     in the whole app environment, when set. A service's environment:
//     entries do not matter: their KEY=default values are the processes'
//     environment, not build arguments, so the Dockerfile's ARG default
//     applies unless the app environment sets the name.
//  2. The service's build.args, which Convox ignores: KEY=value, or KEY
//     for the app environment's value of KEY.
//  3. The caller's build arguments (--build-args), which also count as
//     app environment for required entries, as in Convox.
//
// The package does no logging and, apart from ReadFile, Load and Plan, no
// I/O.
package manifest
