package cli

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// This file prints what Convox's CLI prints, byte for byte, so that scripts
// written against `convox` keep working: its tables, info lists, "Doing
// something... OK" progress, errors and times. Convox writes through
// github.com/convox/stdcli (writer.go, table.go, info.go, context.go) and
// formats times with pkg/common (time.go); the code below follows theirs.

// convoxTagColors are the 256-colour codes of the tags Convox's commands
// use (stdcli's writer.go and Convox's pkg/cli/cli.go).
var convoxTagColors = map[string]int{
	"h1":      244,
	"value":   251,
	"ok":      46,
	"id":      247,
	"build":   23,
	"release": 24,
}

var (
	convoxTagPatterns = func() map[string]*regexp.Regexp {
		m := map[string]*regexp.Regexp{"error": regexp.MustCompile(`<error>(.*?)</error>`)}
		for tag := range convoxTagColors {
			m[tag] = regexp.MustCompile(fmt.Sprintf("<%s>(.*?)</%s>", tag, tag))
		}
		return m
	}()
	convoxTagStripper = regexp.MustCompile(`^<[^>?]+>(.*)</[^>?]+>$`)
)

// convoxWriter writes Convox's output to w: tags in a format become
// colours when color is set (stdout is a terminal), and plain text
// otherwise.
type convoxWriter struct {
	w     io.Writer
	color bool
}

// convox writes Convox's output to the command's stdout.
func (e *Env) convox() convoxWriter {
	return convoxWriter{w: e.IO.Out, color: e.IO.IsTerminal}
}

// render turns the tags of a format into colours or plain text, as
// stdcli's Writer.renderTags does.
func (c convoxWriter) render(format string) string {
	for tag, re := range convoxTagPatterns {
		format = re.ReplaceAllStringFunc(format, func(m string) string {
			inner := m
			if sm := convoxTagStripper.FindStringSubmatch(m); len(sm) == 2 {
				inner = sm[1]
			}
			switch {
			case !c.color && tag == "error":
				return "ERROR: " + inner
			case !c.color:
				return inner
			case tag == "error":
				return "\033[38;5;124mERROR: \033[38;5;203m" + inner + "\033[0m"
			default:
				return fmt.Sprintf("\033[38;5;%dm", convoxTagColors[tag]) + inner + "\033[0m"
			}
		})
	}
	return format
}

// writef is stdcli's Context.Writef: tags in format are rendered, the
// arguments are not.
func (c convoxWriter) writef(format string, args ...any) {
	fmt.Fprintf(c.w, c.render(format), args...)
}

// startf begins a step: "Exporting build... ".
func (c convoxWriter) startf(format string, args ...any) {
	c.writef(format+"... ", args...)
}

// ok ends a step: "OK", or "OK, ID" (stdcli's Context.OK).
func (c convoxWriter) ok(ids ...string) {
	c.writef("<ok>OK</ok>")
	if len(ids) > 0 {
		c.writef(", <id>%s</id>", strings.Join(ids, " "))
	}
	c.writef("\n")
}

// table prints columns and rows as stdcli's Table does: every column but
// the last padded to its widest cell, two spaces apart, whatever the
// output is.
func (c convoxWriter) table(columns []string, rows [][]string) {
	widths := make([]int, len(columns))
	for i, col := range columns {
		widths[i] = len(col)
		for _, r := range rows {
			if len(r) > i && len(r[i]) > widths[i] {
				widths[i] = len(r[i])
			}
		}
	}
	widths[len(widths)-1] = 0
	verbs := make([]string, len(widths))
	for i, w := range widths {
		verbs[i] = fmt.Sprintf("%%-%ds", w)
	}
	f := strings.Join(verbs, "  ")
	c.writef(fmt.Sprintf("<h1>%s</h1>\n", f), anys(columns)...)
	for _, r := range rows {
		c.writef(fmt.Sprintf("<value>%s</value>\n", f), anys(r)...)
	}
}

// infoRow is one line of an info list.
type infoRow struct{ header, value string }

// info prints header/value rows as stdcli's Info does: headers padded to
// the widest, two spaces, the value; a value's further lines are indented
// under the first.
func (c convoxWriter) info(rows []infoRow) {
	width := 0
	for _, r := range rows {
		width = max(width, len(r.header))
	}
	f := fmt.Sprintf("<h1>%%-%ds</h1>  <value>%%s</value>\n", width)
	for _, r := range rows {
		c.writef(f, r.header, strings.ReplaceAll(r.value, "\n", "\n"+strings.Repeat(" ", width)+"  "))
	}
}

// printError prints an error as Convox does, on stderr: "ERROR: message",
// in colour when stdout is a terminal.
func printError(ios *IOStreams, err error) {
	convoxWriter{w: ios.ErrOut, color: ios.IsTerminal}.writef("<error>%s</error>\n", err)
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// ago is how long before now t was, as Convox prints it (common.Ago, which
// is go-humanize's Time): "now", "1 minute ago", "2 days ago"; "" for no
// time.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return humanize.RelTime(t, now, "ago", "from now")
}

// duration is the time from start to end as Convox prints it
// (common.Duration): whole minutes and seconds ("2m0s", "75m3s", "25s"),
// and "" until there is an end.
func duration(start, end time.Time) string {
	if end.IsZero() {
		return ""
	}
	total := int64(end.Sub(start).Seconds())
	dur := fmt.Sprintf("%ds", total%60)
	if min := total / 60; min >= 1 {
		dur = fmt.Sprintf("%dm", min) + dur
	}
	return dur
}
