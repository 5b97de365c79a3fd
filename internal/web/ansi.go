package web

import (
	"html"
	"strconv"
	"strings"
)

// ansiHTML renders one log line as HTML: text escaped, ANSI SGR colour and
// bold codes turned into spans with classes (fg-N, bg-N, b), every other
// escape sequence dropped.
func ansiHTML(line string) string {
	if !strings.ContainsRune(line, '\x1b') {
		return html.EscapeString(line)
	}
	var b strings.Builder
	var st ansiState
	open := false
	for len(line) > 0 {
		i := strings.IndexByte(line, '\x1b')
		if i < 0 {
			b.WriteString(html.EscapeString(line))
			break
		}
		b.WriteString(html.EscapeString(line[:i]))
		line = line[i:]
		seq, params, rest := escape(line)
		line = rest
		if seq != 'm' {
			continue
		}
		st.apply(params)
		if open {
			b.WriteString("</span>")
			open = false
		}
		if cls := st.classes(); cls != "" {
			b.WriteString(`<span class="` + cls + `">`)
			open = true
		}
	}
	if open {
		b.WriteString("</span>")
	}
	return b.String()
}

// escape splits off one escape sequence at the start of s: its final byte
// ('m' for SGR, 0 when it is not a CSI sequence), its parameters, and the
// rest of s.
func escape(s string) (byte, string, string) {
	if len(s) < 2 || s[1] != '[' {
		return 0, "", s[min(len(s), 2):]
	}
	for j := 2; j < len(s); j++ {
		if c := s[j]; c >= 0x40 && c <= 0x7e {
			return c, s[2:j], s[j+1:]
		}
	}
	return 0, "", ""
}

type ansiState struct {
	fg, bg string
	bold   bool
}

func (st *ansiState) apply(params string) {
	if params == "" {
		*st = ansiState{}
		return
	}
	codes := strings.Split(params, ";")
	for i := 0; i < len(codes); i++ {
		n, err := strconv.Atoi(codes[i])
		if err != nil {
			continue
		}
		switch {
		case n == 0:
			*st = ansiState{}
		case n == 1:
			st.bold = true
		case n == 22:
			st.bold = false
		case n >= 30 && n <= 37:
			st.fg = strconv.Itoa(n - 30)
		case n >= 90 && n <= 97:
			st.fg = strconv.Itoa(n - 90 + 8)
		case n == 39:
			st.fg = ""
		case n >= 40 && n <= 47:
			st.bg = strconv.Itoa(n - 40)
		case n >= 100 && n <= 107:
			st.bg = strconv.Itoa(n - 100 + 8)
		case n == 49:
			st.bg = ""
		case (n == 38 || n == 48) && i+2 < len(codes) && codes[i+1] == "5":
			// 256 colours: keep the 16 basic ones, drop the rest.
			if c, err := strconv.Atoi(codes[i+2]); err == nil && c < 16 {
				if n == 38 {
					st.fg = strconv.Itoa(c)
				} else {
					st.bg = strconv.Itoa(c)
				}
			}
			i += 2
		case (n == 38 || n == 48) && i+4 < len(codes) && codes[i+1] == "2":
			i += 4 // true colour: dropped
		}
	}
}

func (st ansiState) classes() string {
	var cls []string
	if st.fg != "" {
		cls = append(cls, "fg-"+st.fg)
	}
	if st.bg != "" {
		cls = append(cls, "bg-"+st.bg)
	}
	if st.bold {
		cls = append(cls, "b")
	}
	return strings.Join(cls, " ")
}
