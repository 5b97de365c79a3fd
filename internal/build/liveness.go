package build

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/store"
)

// DefaultHeartbeatInterval is Engine.HeartbeatInterval's default.
const DefaultHeartbeatInterval = 10 * time.Second

// StaleFactor is how many heartbeat intervals a build may miss before it
// counts as abandoned.
const StaleFactor = 6

// AbandonedReason is the Reason of a build failed by ReapStale. A Run
// with that build's ID builds it again.
const AbandonedReason = "abandoned: the process running this build stopped before it ended"

func (e *Engine) heartbeatInterval() time.Duration {
	if e.HeartbeatInterval > 0 {
		return e.HeartbeatInterval
	}
	return DefaultHeartbeatInterval
}

// StaleAfter is how old a created or running build's heartbeat may get
// before the build counts as abandoned.
func (e *Engine) StaleAfter() time.Duration { return StaleFactor * e.heartbeatInterval() }

func (e *Engine) staleAfter() time.Duration { return e.StaleAfter() }

// ReapStale marks failed, with AbandonedReason, every created or running
// build whose heartbeat is older than StaleAfter (its process died without
// recording an end), and returns their IDs. Run calls it; so should
// whatever shows builds (a list, a build's status, a log being followed),
// and servers, periodically (Reap). It needs only Store.
func (e *Engine) ReapStale(ctx context.Context) ([]string, error) {
	ids, err := e.Store.FailStale(ctx, e.now().Add(-e.staleAfter()), AbandonedReason)
	if err != nil {
		return nil, fmt.Errorf("failing abandoned builds: %w", err)
	}
	return ids, nil
}

// Reap calls ReapStale every heartbeat interval until ctx is done, and
// passes each batch of failed builds, or error, to report (which may be
// nil).
func (e *Engine) Reap(ctx context.Context, report func(ids []string, err error)) {
	t := time.NewTicker(e.heartbeatInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ids, err := e.ReapStale(ctx)
		if report != nil && (len(ids) > 0 || err != nil) && ctx.Err() == nil {
			report(ids, err)
		}
	}
}

// heartbeat marks the build alive every interval. When the store says the
// build has ended (another process failed it as abandoned), or marks have
// failed for half the staleness window, it calls lost: another process
// may fail the build any moment, so it must stop.
func (r *run) heartbeat(ctx context.Context, lost func(error)) {
	t := time.NewTicker(r.e.heartbeatInterval())
	defer t.Stop()
	var failingSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := r.now().UTC()
		err := r.e.Store.Heartbeat(ctx, r.build.ID, now)
		switch {
		case err == nil:
			failingSince = time.Time{}
		case ctx.Err() != nil:
			return
		case errors.Is(err, store.ErrEnded):
			lost(fmt.Errorf("stopped: build %s was marked ended by another process while it ran (its heartbeat came too late)", r.build.ID))
			return
		default:
			if failingSince.IsZero() {
				failingSince = now
				w := Warning{Kind: WarningHeartbeat, Message: fmt.Sprintf("cannot mark the build alive in the store: %v", err)}
				r.emit(Event{Type: Warned, Warning: &w})
			}
			if now.Sub(failingSince) >= r.e.staleAfter()/2 {
				lost(fmt.Errorf("stopped: the build could not be marked alive in the store for %s: %w", now.Sub(failingSince).Round(time.Second), err))
				return
			}
		}
	}
}
