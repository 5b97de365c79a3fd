package manifest

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the nodes visited, aliases included, so that a small file
// of nested aliases cannot make parsing take forever.
const maxNodes = 200000

// decoder walks a yaml.Node tree, collecting problems with positions in the
// original text.
type decoder struct {
	file     string
	in       *interpolated
	problems Problems
	visited  int
	tooBig   bool
}

// field is one key: value pair of a mapping.
type field struct {
	key string
	k   *yaml.Node
	v   *yaml.Node
}

func (d *decoder) at(n *yaml.Node) Position {
	if n == nil {
		return Position{}
	}
	l, c := d.in.position(n.Line, n.Column)
	return Position{l, c}
}

func (d *decoder) add(sev Severity, p Position, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Line: p.Line, Col: p.Col, Severity: sev, Message: fmt.Sprintf(format, args...)})
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.add(Error, d.at(n), format, args...)
}

func (d *decoder) warnf(n *yaml.Node, format string, args ...any) {
	d.add(Warning, d.at(n), format, args...)
}

// resolve follows aliases and counts the node against maxNodes.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	d.visited++
	if d.visited > maxNodes {
		if !d.tooBig {
			d.tooBig = true
			d.errorf(n, "document too complex: aliases expand to more than %d values", maxNodes)
		}
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// mapping returns the pairs of a mapping node in order, merging << keys and
// reporting duplicate keys. what names the mapping in messages. A null node
// is an empty mapping; anything else that is not a mapping is reported.
func (d *decoder) mapping(n *yaml.Node, what string) ([]field, bool) {
	n = d.resolve(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping, not %s", what, kindName(n))
		return nil, false
	}
	var out []field
	seen := map[string]*yaml.Node{}
	var merged []field
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.resolve(n.Content[i]), n.Content[i+1]
		if k == nil {
			return out, false
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "%s: keys must be strings, not %s", what, kindName(k))
			continue
		}
		if k.Tag == "!!merge" {
			merged = append(merged, d.merge(v, what, 0)...)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, "%s: duplicate key %q (first defined at line %d)", what, k.Value, d.at(first).Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, field{key: k.Value, k: k, v: v})
	}
	for _, f := range merged {
		if seen[f.key] == nil {
			seen[f.key] = f.k
			out = append(out, f)
		}
	}
	return out, true
}

// merge returns the pairs a << key brings in: a mapping or a list of them,
// earlier ones winning.
func (d *decoder) merge(v *yaml.Node, what string, depth int) []field {
	v = d.resolve(v)
	if v == nil || depth > 10 {
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		fs, _ := d.mapping(v, what)
		return fs
	case yaml.SequenceNode:
		var out []field
		have := map[string]bool{}
		for _, e := range v.Content {
			for _, f := range d.merge(e, what, depth+1) {
				if !have[f.key] {
					have[f.key] = true
					out = append(out, f)
				}
			}
		}
		return out
	}
	d.errorf(v, "%s: << must merge a mapping, not %s", what, kindName(v))
	return nil
}

// unknown reports a key that is not one of known, suggesting the closest.
func (d *decoder) unknown(f field, what string, known []string) {
	prefix := ""
	if what != "" {
		prefix = what + ": "
	}
	if s := suggest(f.key, known); s != "" {
		d.warnf(f.k, "%sunknown key %q (did you mean %q?)", prefix, f.key, s)
		return
	}
	d.warnf(f.k, "%sunknown key %q", prefix, f.key)
}

// kindName names a node's type for messages.
func kindName(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.Tag {
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	}
	return fmt.Sprintf("the string %q", n.Value)
}

// goType names a node's type as Convox's messages do (Go's %T of what
// gopkg.in/yaml.v2 decodes into an interface{}).
func goType(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "map[interface {}]interface {}"
	case yaml.SequenceNode:
		return "[]interface {}"
	}
	switch n.Tag {
	case "!!int":
		return "int"
	case "!!float":
		return "float64"
	case "!!bool":
		return "bool"
	case "!!null":
		return "<nil>"
	}
	if _, ok := yaml11Bool(n); ok {
		return "bool"
	}
	return "string"
}

// scalar returns a scalar's text; Convox reads any scalar into a string.
func (d *decoder) str(n *yaml.Node, what string) (string, bool) {
	n = d.resolve(n)
	if isNull(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "%s must be a string, not %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

// integer reads an integer.
func (d *decoder) integer(n *yaml.Node, what string) (int, bool) {
	n = d.resolve(n)
	if isNull(n) {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil || int64(int(i)) != i || i > 1<<31 || i < -1<<31 {
			d.errorf(n, "%s: %s is out of range", what, n.Value)
			return 0, false
		}
		return int(i), true
	}
	d.errorf(n, "%s must be an integer, not %s", what, kindName(n))
	return 0, false
}

// boolean reads a boolean, accepting YAML 1.1's yes/no/on/off as Convox's
// YAML library does.
func (d *decoder) boolean(n *yaml.Node, what string) (bool, bool) {
	n = d.resolve(n)
	if isNull(n) {
		return false, false
	}
	if b, ok := yaml11Bool(n); ok {
		return b, true
	}
	d.errorf(n, "%s must be true or false, not %s", what, kindName(n))
	return false, false
}

func yaml11Bool(n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode {
		return false, false
	}
	if n.Tag == "!!bool" {
		b, err := strconv.ParseBool(strings.ToLower(n.Value))
		return b, err == nil
	}
	if n.Tag != "!!str" || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return false, false
	}
	switch n.Value {
	case "y", "Y", "yes", "Yes", "YES", "on", "On", "ON":
		return true, true
	case "n", "N", "no", "No", "NO", "off", "Off", "OFF":
		return false, true
	}
	return false, false
}

// strings reads a list of scalars; a single scalar is a list of one when
// single is true.
func (d *decoder) strs(n *yaml.Node, what string, single bool) ([]string, []Position) {
	n = d.resolve(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind == yaml.ScalarNode && single {
		return []string{n.Value}, []Position{d.at(n)}
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s must be a list, not %s", what, kindName(n))
		return nil, nil
	}
	var out []string
	var pos []Position
	for _, e := range n.Content {
		if s, ok := d.str(e, what+" entries"); ok {
			out = append(out, s)
			pos = append(pos, d.at(e))
		}
	}
	return out, pos
}

// stringMap reads a mapping of scalars.
func (d *decoder) stringMap(n *yaml.Node, what string) map[string]string {
	fs, _ := d.mapping(n, what)
	if len(fs) == 0 {
		return nil
	}
	out := make(map[string]string, len(fs))
	for _, f := range fs {
		v, _ := d.str(f.v, what+"."+f.key)
		out[f.key] = v
	}
	return out
}

// environment reads an environment list as Convox does: entries are
// strings, nested lists are flattened, anything else is ignored (with a
// warning here).
func (d *decoder) environment(n *yaml.Node, what string) ([]string, []Position) {
	n = d.resolve(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "unknown type for service environment: %s", goType(n))
		return nil, nil
	}
	out := make([]string, 0, len(n.Content))
	pos := make([]Position, 0, len(n.Content))
	var walk func(n *yaml.Node, depth int)
	walk = func(n *yaml.Node, depth int) {
		for _, e := range n.Content {
			e = d.resolve(e)
			switch {
			case e == nil || isNull(e):
			case e.Kind == yaml.SequenceNode && depth == 0:
				walk(e, depth+1)
			case e.Kind == yaml.ScalarNode && goType(e) == "string":
				out = append(out, e.Value)
				pos = append(pos, d.at(e))
			case e.Kind == yaml.MappingNode:
				d.warnf(e, "%s: entry is a mapping and Convox ignores it; write KEY=value", what)
			default:
				d.warnf(e, "%s: entry is %s and Convox ignores it; quote it", what, kindName(e))
			}
		}
	}
	walk(n, 0)
	return out, pos
}
