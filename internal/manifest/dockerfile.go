package manifest

import (
	"strings"
)

// dockerfile is what a build needs to know of a Dockerfile.
type dockerfile struct {
	args   []string // ARG names in order of first appearance
	stages []string // FROM ... AS names, lowercased
}

// parseDockerfile scans a Dockerfile for ARG names (ARG A, ARG A=x,
// several per line, any case) and stage names. Line continuations are
// joined and comments skipped.
func parseDockerfile(data []byte) *dockerfile {
	df := &dockerfile{}
	seen := map[string]bool{}
	var logical strings.Builder
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if rest, ok := strings.CutSuffix(trimmed, `\`); ok && i < len(lines)-1 {
			logical.WriteString(rest)
			logical.WriteByte(' ')
			continue
		}
		logical.WriteString(trimmed)
		df.instruction(logical.String(), seen)
		logical.Reset()
	}
	return df
}

func (df *dockerfile) instruction(line string, seen map[string]bool) {
	words := splitWords(line)
	if len(words) < 2 {
		return
	}
	switch strings.ToUpper(words[0]) {
	case "ARG":
		for _, w := range words[1:] {
			name, _, _ := strings.Cut(w, "=")
			if name != "" && !seen[name] {
				seen[name] = true
				df.args = append(df.args, name)
			}
		}
	case "FROM":
		if n := len(words); n >= 4 && strings.EqualFold(words[n-2], "as") {
			df.stages = append(df.stages, strings.ToLower(words[n-1]))
		}
	}
}

func (df *dockerfile) hasStage(name string) bool {
	for _, s := range df.stages {
		if s == name {
			return true
		}
	}
	return false
}

// splitWords splits on blanks outside quotes, keeping the quotes.
func splitWords(s string) []string {
	var words []string
	var cur strings.Builder
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			cur.WriteRune(r)
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
			cur.WriteRune(r)
		case r == ' ' || r == '\t':
			if cur.Len() > 0 {
				words = append(words, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		words = append(words, cur.String())
	}
	return words
}
