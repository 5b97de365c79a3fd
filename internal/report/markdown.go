package report

import (
	"fmt"
	"strings"
	"time"
)

// Title is a one-line title for the build: what a check run shows next to
// its name.
func (s Snapshot) Title() string {
	built, copied := 0, 0
	for _, svc := range s.Services {
		if svc.ImageOnly {
			copied++
		} else {
			built++
		}
	}
	id := "Build"
	if s.BuildID != "" {
		id = "Build " + s.BuildID
	}
	switch s.Status {
	case Queued:
		return "Queued"
	case Running:
		done := 0
		for _, svc := range s.Services {
			if svc.Status == Complete {
				done++
			}
		}
		return fmt.Sprintf("Building: %d of %d services done", done, len(s.Services))
	case Complete:
		t := fmt.Sprintf("%s complete: %s", id, plural(len(s.Services), "service"))
		if pct, ok := s.cachedPercent(); ok {
			t += fmt.Sprintf(", %d%% of steps cached", pct)
		}
		return t
	default:
		msg := firstLine(s.Error)
		if msg == "" {
			msg = "failed"
		}
		return truncate(id+" failed: "+msg, 200)
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func (s Snapshot) cachedPercent() (int, bool) {
	cached, total := 0, 0
	for _, svc := range s.Services {
		cached += svc.CachedSteps
		total += svc.TotalSteps
	}
	if total == 0 {
		return 0, false
	}
	return cached * 100 / total, true
}

// Markdown is the build's summary: a table of services (service, image
// with digest, status, duration, cached steps), the Build and Release IDs,
// warnings, and on failure the error with the failing step's last lines.
// With maxBytes > 0 it is never longer, cut at a line with a note.
func (s Snapshot) Markdown(maxBytes int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Convox build of %s: %s\n\n", mdText(s.App), statusWord(s.Status))
	if s.BuildID != "" {
		fmt.Fprintf(&b, "**Build:** `%s`", s.BuildID)
		if s.ReleaseID != "" {
			fmt.Fprintf(&b, " · **Release:** `%s`", s.ReleaseID)
		}
		if d := s.duration(); d > 0 {
			fmt.Fprintf(&b, " · %s", formatDuration(d))
		}
		b.WriteString("\n\n")
	}
	if len(s.Services) > 0 {
		b.WriteString("| Service | Image | Status | Duration | Cached |\n| --- | --- | --- | --- | --- |\n")
		for _, svc := range s.Services {
			image := "–"
			if svc.Image != "" {
				image = "`" + svc.Image
				if svc.Digest != "" {
					image += "@" + svc.Digest
				}
				image += "`"
			}
			dur, cached := "–", "–"
			if svc.Duration > 0 {
				dur = formatDuration(svc.Duration)
			}
			switch {
			case svc.ImageOnly && svc.Status == Complete:
				cached = "copied"
			case svc.TotalSteps > 0:
				cached = fmt.Sprintf("%d%% (%d/%d)", svc.CachedSteps*100/svc.TotalSteps, svc.CachedSteps, svc.TotalSteps)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", mdText(svc.Name), image, statusWord(svc.Status), dur, cached)
		}
		b.WriteString("\n")
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(&b, "> [!WARNING]\n> %s\n\n", mdText(w.String()))
	}
	if s.Status == Failed {
		if s.Error != "" {
			fmt.Fprintf(&b, "**Error:**\n\n```text\n%s\n```\n\n", fence(s.Error))
		}
		if f := s.Failure; f != nil && len(f.LogTail) > 0 {
			where := ""
			if f.Dockerfile != "" && f.StartLine > 0 {
				where = fmt.Sprintf(" (%s:%d)", f.Dockerfile, f.StartLine)
			}
			fmt.Fprintf(&b, "**Last lines of `%s`**%s:\n\n```text\n%s\n```\n", strings.ReplaceAll(f.Step, "`", "'"), mdText(where), fence(strings.Join(lastLines(f.LogTail, 20), "\n")))
		}
	}
	out := b.String()
	if maxBytes > 0 && len(out) > maxBytes {
		note := "\n\n*(summary cut to fit)*\n"
		cut := out[:max(maxBytes-len(note), 0)]
		if i := strings.LastIndexByte(cut, '\n'); i > 0 {
			cut = cut[:i]
		}
		if strings.Count(cut, "```")%2 == 1 {
			cut += "\n```"
		}
		out = cut + note
		if len(out) > maxBytes {
			out = out[:maxBytes]
		}
	}
	return out
}

func (s Snapshot) duration() time.Duration {
	if s.Started.IsZero() || s.Ended.IsZero() {
		return 0
	}
	return s.Ended.Sub(s.Started)
}

func statusWord(s Status) string {
	switch s {
	case Complete:
		return "✅ complete"
	case Failed:
		return "❌ failed"
	case Running:
		return "⏳ running"
	default:
		return "🕓 queued"
	}
}

// formatDuration is 850ms, 12.3s, 2m05s.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	default:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
}

// mdText escapes what would change the meaning of plain text in a table
// cell or a line of Markdown.
func mdText(s string) string {
	r := strings.NewReplacer("|", "\\|", "\n", " ", "<", "&lt;", ">", "&gt;", "*", "\\*", "_", "\\_", "`", "\\`", "[", "\\[", "]", "\\]")
	return r.Replace(s)
}

// fence keeps text from closing the code block it is in.
func fence(s string) string { return strings.ReplaceAll(s, "```", "'''") }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	for len(string(r)) > n-len("…") {
		r = r[:len(r)-1]
	}
	return strings.TrimRight(string(r), " ") + "…"
}
