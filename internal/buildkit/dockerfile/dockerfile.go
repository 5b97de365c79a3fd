// Package dockerfile reads Dockerfiles with the parser of BuildKit's own
// Dockerfile frontend, for what planning a build needs to know of them. It
// is part of internal/buildkit, the only code that imports BuildKit, kept
// apart so that reading a Dockerfile does not link BuildKit's client.
package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Dockerfile is what planning a build needs to know of a Dockerfile, read
// with the parser of BuildKit's own Dockerfile frontend, so that it is read
// exactly as the build will read it: instructions in any case, several
// names per ARG, line continuations, the escape directive, heredocs,
// quotes, comments.
type Dockerfile struct {
	// Args are the names the Dockerfile's ARG instructions declare, before
	// the first FROM or in any stage, in order of first appearance.
	Args []string
	// Stages are the names of its stages (FROM ... AS name), lowercased
	// as BuildKit does, in order; "" for a stage without a name.
	Stages []string
}

// Error is a Dockerfile BuildKit would refuse.
type Error struct {
	// Line is the 1-based line of the problem; 0 when it is not about one
	// line (an empty file).
	Line int
	// Message is BuildKit's description of the problem.
	Message string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Message)
	}
	return e.Message
}

// Parse reads a Dockerfile as BuildKit's Dockerfile frontend
// (dockerfile.v0, the version this module builds with) does before it
// builds anything. A Dockerfile the frontend would refuse gives a
// *Error: an empty file ("file with no instructions"), an
// unknown instruction, a malformed one, or no FROM. A Dockerfile that names
// another frontend ("# syntax=...") and that this one cannot read is
// BuildKit's to judge: its ARG and stage names are read from the syntax
// tree and no error is returned.
func Parse(data []byte) (df *Dockerfile, err error) {
	defer func() {
		if r := recover(); r != nil {
			df, err = nil, &Error{Message: fmt.Sprintf("unreadable Dockerfile: %v", r)}
		}
	}()
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, dockerfileError(err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, linter.New(&linter.Config{}))
	if err != nil {
		if _, _, _, ok := parser.DetectSyntax(data); ok {
			// A "# syntax=" frontend may know instructions this
			// parser does not; BuildKit will judge. Take the ARG
			// names from the syntax tree.
			return astDockerfile(res.AST), nil
		}
		return nil, dockerfileError(err)
	}
	if len(stages) == 0 {
		return nil, &Error{Message: "dockerfile contains no stages to build"}
	}
	df = &Dockerfile{}
	seen := map[string]bool{}
	addArgs := func(a *instructions.ArgCommand) {
		for _, kv := range a.Args {
			if !seen[kv.Key] {
				seen[kv.Key] = true
				df.Args = append(df.Args, kv.Key)
			}
		}
	}
	for i := range metaArgs {
		addArgs(&metaArgs[i])
	}
	for _, s := range stages {
		df.Stages = append(df.Stages, s.Name)
		for _, c := range s.Commands {
			if a, ok := c.(*instructions.ArgCommand); ok {
				addArgs(a)
			}
		}
	}
	return df, nil
}

// astDockerfile reads ARG names and stage names from the syntax tree
// alone, for a Dockerfile the built-in frontend cannot fully read.
func astDockerfile(ast *parser.Node) *Dockerfile {
	df := &Dockerfile{}
	seen := map[string]bool{}
	for _, n := range ast.Children {
		switch strings.ToLower(n.Value) {
		case "arg":
			for a := n.Next; a != nil; a = a.Next {
				name, _, _ := strings.Cut(a.Value, "=")
				if name != "" && !seen[name] {
					seen[name] = true
					df.Args = append(df.Args, name)
				}
			}
		case "from":
			var words []string
			for a := n.Next; a != nil; a = a.Next {
				words = append(words, a.Value)
			}
			name := ""
			if len(words) == 3 && strings.EqualFold(words[1], "as") {
				name = strings.ToLower(words[2])
			}
			df.Stages = append(df.Stages, name)
		}
	}
	return df
}

// dockerfileError turns a parser error into an Error with the
// first line it names.
func dockerfileError(err error) *Error {
	var le *parser.LocationError
	if errors.As(err, &le) {
		e := &Error{Message: le.Unwrap().Error()}
		if e.Message == "file with no instructions" {
			return e
		}
		for _, rs := range le.Locations {
			if len(rs) > 0 {
				e.Line = rs[0].Start.Line
				break
			}
		}
		return e
	}
	return &Error{Message: err.Error()}
}
