package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// eventsKeepAlive is how often an idle event stream sends a comment, so
// proxies keep it open.
const eventsKeepAlive = 15 * time.Second

// linesEvent carries log lines, rendered, after Seq.
type linesEvent struct {
	Seq   int64    `json:"seq"`
	Lines []string `json:"lines"`
}

// statusEvent carries the build's state.
type statusEvent struct {
	Status   string               `json:"status"`
	Release  string               `json:"release"`
	Reason   string               `json:"reason"`
	Elapsed  string               `json:"elapsed"`
	Services []store.ServiceImage `json:"services"`
}

// events streams a build's log lines after ?after= (or Last-Event-ID) and
// its status as server-sent events, until the build ends: "lines" events
// (JSON: seq and the lines as HTML), "status" events when the status
// changes, and "end" last.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	if !s.opts.Public && s.user(r) == nil {
		return errNotFound
	}
	b, err := s.visibleBuild(r)
	if err != nil {
		return err
	}
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		after, _ = strconv.ParseInt(id, 10, 64)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(event string, id int64, v any) error {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if id > 0 {
			fmt.Fprintf(w, "id: %d\n", id)
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return err
		}
		return rc.Flush()
	}
	lastStatus := ""
	lastWrite := s.now()
	final, err := s.opts.Engine.Follow(r.Context(), b.ID, after, s.opts.LogPoll, build.Follower{
		Lines: func(lines []store.LogLine) error {
			ev := linesEvent{Seq: lines[len(lines)-1].Seq, Lines: make([]string, len(lines))}
			for i, l := range lines {
				ev.Lines[i] = ansiHTML(l.Text)
			}
			lastWrite = s.now()
			return send("lines", ev.Seq, ev)
		},
		Polled: func(b *store.Build) error {
			if st := string(b.Status) + b.Release; st != lastStatus {
				lastStatus = st
				lastWrite = s.now()
				return send("status", 0, statusEvent{Status: string(b.Status), Release: b.Release, Reason: b.Reason,
					Elapsed: elapsed(*b, s.now()), Services: b.Services})
			}
			if s.now().Sub(lastWrite) > eventsKeepAlive {
				lastWrite = s.now()
				if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
					return err
				}
				return rc.Flush()
			}
			return nil
		},
	})
	if err == nil && ended(final) {
		send("end", 0, map[string]string{})
	}
	return nil // the stream has begun: errors can only end it, and the page reconnects
}
