package manifest

import (
	"bytes"
	"sort"
	"unicode/utf8"
)

// replacement is one ${VAR} in the original text and what it became.
type replacement struct {
	name             string
	oldStart, oldEnd int
	newStart, newEnd int
	missing          bool
}

// interpolated is the text after interpolation and what is needed to map a
// position in it back to the original text.
type interpolated struct {
	text     []byte
	orig     []byte
	repls    []replacement
	newLines []int // offsets of line starts in text, once computed
	oldLines []int // offsets of line starts in orig, once computed
}

// interpolate replaces every ${VAR} in data with env[VAR], a missing
// variable becoming empty, exactly as Convox does on the raw text (its
// regular expression \$\{([^}]*?)\}: "${" up to the first "}", nothing
// else; $VAR without braces is left alone).
func interpolate(data []byte, env map[string]string) *interpolated {
	in := &interpolated{orig: data, text: data}
	var out []byte
	last := 0
	for i := 0; i < len(data); {
		j := bytes.Index(data[i:], []byte("${"))
		if j < 0 {
			break
		}
		start := i + j
		k := bytes.IndexByte(data[start+2:], '}')
		if k < 0 {
			break
		}
		end := start + 2 + k + 1
		if out == nil {
			out = make([]byte, 0, len(data))
		}
		out = append(out, data[last:start]...)
		name := string(data[start+2 : end-1])
		v, ok := env[name]
		r := replacement{name: name, oldStart: start, oldEnd: end, newStart: len(out), missing: !ok}
		out = append(out, v...)
		r.newEnd = len(out)
		in.repls = append(in.repls, r)
		last, i = end, end
	}
	if out != nil {
		in.text = append(out, data[last:]...)
	}
	return in
}

func (in *interpolated) newStarts() []int {
	if in.newLines == nil {
		in.newLines = lineStarts(in.text)
	}
	return in.newLines
}

func (in *interpolated) oldStarts() []int {
	if in.oldLines == nil {
		in.oldLines = lineStarts(in.orig)
	}
	return in.oldLines
}

// lineStarts returns the offsets where lines start, breaking lines where
// YAML does: \n, \r\n, a lone \r, NEL, LS and PS.
func lineStarts(b []byte) []int {
	starts := make([]int, 1, bytes.Count(b, []byte("\n"))+1)
	if bytes.IndexByte(b, '\r') < 0 && bytes.IndexByte(b, 0xC2) < 0 && bytes.IndexByte(b, 0xE2) < 0 {
		for i := 0; ; {
			j := bytes.IndexByte(b[i:], '\n')
			if j < 0 {
				return starts
			}
			i += j + 1
			starts = append(starts, i)
		}
	}
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '\n':
			starts = append(starts, i+1)
		case b[i] == '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
			starts = append(starts, i+1)
		case b[i] == 0xC2 && i+1 < len(b) && b[i+1] == 0x85:
			i++
			starts = append(starts, i+1)
		case b[i] == 0xE2 && i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xA8 || b[i+2] == 0xA9):
			i += 2
			starts = append(starts, i+1)
		}
	}
	return starts
}

// position maps a 1-based line and column (in characters, as yaml.v3
// counts them) in the interpolated text to the same place in the original
// text. A place inside a replaced value maps to the start of its ${VAR}.
func (in *interpolated) position(line, col int) (int, int) {
	if len(in.repls) == 0 || line <= 0 {
		return line, col
	}
	off := offsetOf(in.text, in.newStarts(), line, col)
	i := sort.Search(len(in.repls), func(i int) bool { return in.repls[i].newEnd > off })
	var old int
	switch {
	case i < len(in.repls) && off >= in.repls[i].newStart:
		old = in.repls[i].oldStart
	case i == 0:
		old = off
	default:
		r := in.repls[i-1]
		old = r.oldEnd + (off - r.newEnd)
	}
	return lineCol(in.orig, in.oldStarts(), old)
}

// offsetOf converts a 1-based line and character column to a byte offset.
func offsetOf(b []byte, starts []int, line, col int) int {
	if line > len(starts) {
		return len(b)
	}
	off, end := starts[line-1], len(b)
	if line < len(starts) {
		end = starts[line]
	}
	for n := 1; n < col && off < end; n++ {
		_, size := utf8.DecodeRune(b[off:])
		off += size
	}
	return off
}

// lineCol converts a byte offset to a 1-based line and character column.
func lineCol(b []byte, starts []int, off int) (int, int) {
	if off > len(b) {
		off = len(b)
	}
	line := sort.Search(len(starts), func(i int) bool { return starts[i] > off })
	return line, utf8.RuneCount(b[starts[line-1]:off]) + 1
}
