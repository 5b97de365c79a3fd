package manifest

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Severity says whether a Problem stops the manifest from being used.
type Severity int

const (
	// Error is a problem Convox would refuse, or that would make the build
	// wrong.
	Error Severity = iota
	// Warning is something Convox accepts but is probably a mistake, such as
	// an unknown key.
	Warning
)

func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// MarshalText writes the severity as "error" or "warning".
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Problem is one error or warning about a manifest, with its position in the
// original file (before interpolation). Line and Col are 1-based; 0 means
// unknown.
type Problem struct {
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Col      int      `json:"col"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	// Excerpt, when set, shows the offending line of the file and a caret
	// under the place, as String prints it after the message.
	Excerpt string `json:"excerpt,omitempty"`
}

// String formats the problem the way compilers do:
// "convox.yml:12:5: message", with "warning: " before warnings' messages
// and the excerpt, if any, on the lines after.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Col > 0 {
			fmt.Fprintf(&b, ":%d", p.Col)
		}
	}
	b.WriteString(": ")
	if p.Severity == Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(p.Message)
	if p.Excerpt != "" {
		b.WriteByte('\n')
		b.WriteString(p.Excerpt)
	}
	return b.String()
}

// maxExcerpt is the most characters of a line an excerpt shows.
const maxExcerpt = 100

// excerpt shows line l of text (whose lines start at starts) and a caret
// under column c:
//
//	4 |    port: 3000
//	  |    ^
//
// A long line is cut around the column, with "..." where it was cut.
func excerpt(text []byte, starts []int, l, c int) string {
	if l < 1 || l > len(starts) {
		return ""
	}
	end := len(text)
	if l < len(starts) {
		end = starts[l]
	}
	line := []rune(strings.TrimRight(string(text[starts[l-1]:end]), "\r\n"))
	col := min(max(c, 1), len(line)+1) - 1
	from, to, pre, post := 0, len(line), "", ""
	if len(line) > maxExcerpt {
		from = max(0, col-maxExcerpt/2)
		to = min(len(line), from+maxExcerpt)
		if from > 0 {
			pre = "..."
		}
		if to < len(line) {
			post = "..."
		}
	}
	var caret strings.Builder
	caret.WriteString(pre)
	for _, r := range line[from:col] {
		if r == '\t' {
			caret.WriteByte('\t')
		} else {
			caret.WriteByte(' ')
		}
	}
	shown := strings.Map(func(r rune) rune {
		if r < ' ' && r != '\t' {
			return ' '
		}
		return r
	}, string(line[from:to]))
	num := strconv.Itoa(l)
	gutter := strings.Repeat(" ", len(num))
	return fmt.Sprintf("  %s | %s%s%s\n  %s | %s^", num, pre, shown, post, gutter, caret.String())
}

// Problems is a list of problems in file order. As an error it stands for
// the errors in it, one per line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, 0, len(ps))
	for _, p := range ps {
		if p.Severity == Error {
			lines = append(lines, p.String())
		}
	}
	return strings.Join(lines, "\n")
}

// Errors returns the problems of severity Error.
func (ps Problems) Errors() Problems { return ps.filter(Error) }

// Warnings returns the problems of severity Warning.
func (ps Problems) Warnings() Problems { return ps.filter(Warning) }

// Err returns the errors as a Problems error, or nil when there are none.
func (ps Problems) Err() error {
	if errs := ps.Errors(); len(errs) > 0 {
		return errs
	}
	return nil
}

func (ps Problems) filter(s Severity) Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == s {
			out = append(out, p)
		}
	}
	return out
}

// Sorted orders problems by position, keeping the order of problems at the
// same position, and drops exact duplicates. It reorders ps in place.
func (ps Problems) Sorted() Problems {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Col < ps[j].Col
	})
	out := ps[:0]
	seen := map[Problem]bool{}
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
