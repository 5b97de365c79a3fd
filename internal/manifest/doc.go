// Package manifest reads a Convox v3 convox.yml into a typed Manifest with
// the meaning Convox gives it: ${VAR} interpolation on the raw text, short and
// long forms, Convox's defaults and Convox's validation messages. Unlike
// Convox, every problem carries the file, line and column it is about,
// unknown keys are reported (with a suggestion when one is close), and all
// problems are collected rather than only the first.
//
// Parse and Load turn bytes into a Manifest; Manifest.Plan turns a Manifest
// and a source directory into the unique Dockerfile builds the engine runs.
// The package does no logging and, apart from Load and Plan, no I/O.
package manifest
