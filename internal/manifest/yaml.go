package manifest

import (
	"errors"
	"fmt"

	goyaml "github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
	"go.yaml.in/yaml/v3"
)

// Two YAML libraries, each for what it does best. go.yaml.in/yaml/v3 (the
// YAML organisation's maintained yaml.v3) parses: it is fast and gives
// every node its line and column. When it refuses a file, it names only
// the line where the enclosing construct starts ("line 2: did not find
// expected key"); github.com/goccy/go-yaml then parses the same text again
// to find the offending token, as PyYAML would ("4:4: value is not allowed
// in this context"). goccy/go-yaml alone would do both, but parses the
// corpus about 1.4 times slower, which BenchmarkParseCorpus does not allow.

// yamlError is a YAML syntax error at a place in the parsed text.
type yamlError struct {
	Line, Column int // 1-based; 0 when unknown
	Message      string
}

func (e *yamlError) Error() string { return e.Message }

// parseYAML parses the first document of data into n. A syntax error is a
// *yamlError, placed at the offending token when it can be found.
func parseYAML(data []byte, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = locateSyntaxError(data, fmt.Errorf("yaml: %v", r))
		}
	}()
	if err := yaml.Unmarshal(data, n); err != nil {
		return locateSyntaxError(data, err)
	}
	return nil
}

// locateSyntaxError finds where data's syntax error is, with goccy/go-yaml.
// When that library accepts the text (the two disagree on a corner of
// YAML), the error is placed where the first library says.
func locateSyntaxError(data []byte, err error) (located *yamlError) {
	defer func() {
		if r := recover(); r != nil {
			located = lineOnly(err)
		}
	}()
	f, perr := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if perr != nil {
		var ye goyaml.Error
		if errors.As(perr, &ye) {
			if tk := ye.GetToken(); tk != nil && tk.Position != nil && tk.Position.Line > 0 {
				return &yamlError{Line: tk.Position.Line, Column: tk.Position.Column, Message: ye.GetMessage()}
			}
		}
		return lineOnly(err)
	}
	if len(f.Docs) > 0 && f.Docs[0] != nil {
		w := &aliasCheck{anchors: map[string]bool{}}
		if e := w.walk(f.Docs[0].Body, 0); e != nil {
			return e
		}
	}
	return lineOnly(err)
}

// aliasCheck finds the first alias to an anchor not defined before it, which
// the first library reports without a place.
type aliasCheck struct {
	anchors map[string]bool
}

func (w *aliasCheck) walk(n ast.Node, depth int) *yamlError {
	if n == nil || depth > 10000 {
		return nil
	}
	switch t := n.(type) {
	case *ast.MappingNode:
		for _, v := range t.Values {
			if e := w.walk(v, depth+1); e != nil {
				return e
			}
		}
	case *ast.MappingValueNode:
		if e := w.walk(t.Key, depth+1); e != nil {
			return e
		}
		return w.walk(t.Value, depth+1)
	case *ast.MappingKeyNode:
		return w.walk(t.Value, depth+1)
	case *ast.SequenceNode:
		for _, v := range t.Values {
			if e := w.walk(v, depth+1); e != nil {
				return e
			}
		}
	case *ast.TagNode:
		return w.walk(t.Value, depth+1)
	case *ast.AnchorNode:
		if e := w.walk(t.Value, depth+1); e != nil {
			return e
		}
		w.anchors[t.Name.GetToken().Value] = true
	case *ast.AliasNode:
		if name := t.Value.GetToken().Value; !w.anchors[name] {
			return placed(t.Start, fmt.Sprintf("unknown anchor '%s' referenced", name))
		}
	}
	return nil
}

func placed(tk *token.Token, msg string) *yamlError {
	e := &yamlError{Message: msg}
	if tk != nil && tk.Position != nil {
		e.Line, e.Column = tk.Position.Line, tk.Position.Column
	}
	return e
}

// parserProblems are the first library's parser (not scanner) errors, whose
// line it reports counting from 0.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// lineOnly turns the first library's "yaml: line N: problem" into a
// yamlError with that line and no column.
func lineOnly(err error) *yamlError {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line := 0
		fmt.Sscan(m[1], &line)
		if parserProblems[m[2]] {
			line++
		}
		return &yamlError{Line: max(line, 1), Message: m[2]}
	}
	if len(msg) > 6 && msg[:6] == "yaml: " {
		msg = msg[6:]
	}
	return &yamlError{Message: msg}
}
