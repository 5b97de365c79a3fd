package buildkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/grpcerrors"
	"google.golang.org/grpc/codes"
)

// ErrNoBuildHistory is returned (wrapped) by ActiveBuilds and History
// when the daemon does not offer BuildKit's build history API (BuildKit
// before v0.11, or a proxy that does not pass it on).
var ErrNoBuildHistory = errors.New("the daemon has no build history API")

// Ready reports whether the daemon answers: nil, or an error naming its
// address and saying why not. ctx bounds the wait; without a deadline a
// daemon that accepts connections but never answers blocks it.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.c.Info(ctx)
	if err == nil || grpcerrors.Code(err) == codes.Unimplemented {
		return nil // BuildKit before v0.11 answers, without Info
	}
	return c.unanswered(ctx, err)
}

// unanswered describes err, from a call to the daemon under ctx.
func (c *Client) unanswered(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &notAnswering{fmt.Sprintf("buildkitd at %s did not answer in time", c.addr)}
		}
		return fmt.Errorf("asking buildkitd at %s: %w", c.addr, ctx.Err())
	}
	if grpcerrors.Code(err) == codes.Unavailable {
		return &notAnswering{fmt.Sprintf("buildkitd at %s does not answer: %s", c.addr, grpcMessage(err))}
	}
	return fmt.Errorf("asking buildkitd at %s: %s", c.addr, grpcMessage(err))
}

// notAnswering is a daemon that could not be reached; IsUnavailable
// reports it.
type notAnswering struct{ msg string }

func (e *notAnswering) Error() string { return e.msg }

// ActiveBuilds is how many builds the daemon is running now, whoever
// started them (other processes and clients included), as its build
// history reports them. A daemon without the history API gives an error
// wrapping ErrNoBuildHistory; one with history disabled in its
// configuration reports 0. ctx bounds the wait.
func (c *Client) ActiveBuilds(ctx context.Context) (int, error) {
	n := 0
	err := c.history(ctx, true, func(*controlapi.BuildHistoryEvent) { n++ })
	if err != nil {
		return 0, err
	}
	return n, nil
}

// HistoryRecord is one build in a daemon's history.
type HistoryRecord struct {
	// Ref is BuildKit's ID of the build.
	Ref string
	// Images are the names the build exports its image to.
	Images []string
	// Active reports whether the build is still running.
	Active bool
	// Error is why the build failed ("" when it did not, or runs).
	Error string
	// Created and Completed are when it started and ended (zero while
	// it runs).
	Created, Completed time.Time
}

// History lists the builds the daemon keeps in its history (by default
// the last 50 of the last two days) and those it runs now, in no
// particular order: what each built and how it ended, for diagnostics and
// tests. ctx bounds the wait.
func (c *Client) History(ctx context.Context) ([]HistoryRecord, error) {
	var out []HistoryRecord
	err := c.history(ctx, false, func(e *controlapi.BuildHistoryEvent) {
		r := e.Record
		h := HistoryRecord{Ref: r.Ref, Active: e.Type == controlapi.BuildHistoryEventType_STARTED}
		for _, ex := range r.Exporters {
			if name := ex.Attrs["name"]; ex.Type == client.ExporterImage && name != "" {
				h.Images = append(h.Images, strings.Split(name, ",")...)
			}
		}
		if r.Error != nil {
			h.Error = r.Error.Message
		}
		if r.CreatedAt != nil {
			h.Created = r.CreatedAt.AsTime()
		}
		if r.CompletedAt != nil {
			h.Completed = r.CompletedAt.AsTime()
		}
		out = append(out, h)
	})
	return out, err
}

// history calls f for each build in the daemon's history (the running
// ones only when activeOnly), then returns.
func (c *Client) history(ctx context.Context, activeOnly bool, f func(*controlapi.BuildHistoryEvent)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.c.ControlClient().ListenBuildHistory(ctx, &controlapi.BuildHistoryRequest{ActiveOnly: activeOnly, EarlyExit: true})
	for err == nil {
		var e *controlapi.BuildHistoryEvent
		if e, err = stream.Recv(); err == nil && e.Record != nil && e.Type != controlapi.BuildHistoryEventType_DELETED {
			f(e)
		}
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	if grpcerrors.Code(err) == codes.Unimplemented {
		return fmt.Errorf("reading the build history of buildkitd at %s: %w", c.addr, ErrNoBuildHistory)
	}
	return c.unanswered(ctx, err)
}
