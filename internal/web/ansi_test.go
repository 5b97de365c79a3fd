package web

import "testing"

func TestANSIToHTML(t *testing.T) {
	for in, want := range map[string]string{
		"plain <b>&": "plain &lt;b&gt;&amp;",
		"\x1b[31mred\x1b[0m and \x1b[1;32mbold green\x1b[m": `<span class="fg-1">red</span> and <span class="fg-2 b">bold green</span>`,
		"\x1b[91;44mbright on blue":                         `<span class="fg-9 bg-4">bright on blue</span>`,
		"\x1b[38;5;3m256\x1b[38;2;1;2;3mtrue":               `<span class="fg-3">256</span><span class="fg-3">true</span>`,
		"\x1b[2K\x1b[1Acursor moves dropped":                "cursor moves dropped",
		"cut \x1b[3":                                        "cut ",
		"\x1b]0;title\x07x":                                 "0;title\x07x",
	} {
		if got := ansiHTML(in); got != want {
			t.Errorf("ansiHTML(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzANSIToHTML(f *testing.F) {
	f.Add("\x1b[31mred\x1b[0m <tag>")
	f.Add("\x1b[38;5;")
	f.Fuzz(func(t *testing.T, s string) {
		out := ansiHTML(s)
		// Whatever comes in, nothing turns into markup but our spans.
		for i := 0; i < len(out); i++ {
			if out[i] == '<' && !(hasPrefix(out[i:], "<span class=\"") || hasPrefix(out[i:], "</span>")) {
				t.Fatalf("ansiHTML(%q) = %q: unexpected markup", s, out)
			}
		}
	})
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }
