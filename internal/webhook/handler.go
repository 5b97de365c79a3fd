// Package webhook receives GitHub's webhook deliveries: it caps the body,
// checks the X-Hub-Signature-256 HMAC in constant time (go-github's
// validation, after refusing an empty secret), routes the event by
// X-GitHub-Event to a plan (Route), and has the plan and the delivery
// recorded in one transaction (an Acceptor: the queue) before it answers
// 202. A redelivery (same X-GitHub-Delivery) is answered 200 and not acted
// on again. It never logs a body or a secret.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/convox-build-action/convox-build-action/internal/queue"
)

// DefaultMaxBody is the largest delivery accepted: 25 MiB, GitHub's own
// cap on payloads.
const DefaultMaxBody = 25 << 20

// Acceptor records a delivery and what it asks for, durably, before it
// returns; *queue.Queue is one.
type Acceptor interface {
	Accept(ctx context.Context, d queue.Delivery, p queue.Plan) (*queue.Result, error)
}

// Options configure a Handler.
type Options struct {
	// Secret is the webhook secret; required, non-empty.
	Secret []byte
	// Policy says what is built.
	Policy Policy
	// Acceptor records deliveries; required.
	Acceptor Acceptor
	// MaxBody caps a delivery's body (default DefaultMaxBody).
	MaxBody int64
	// AcceptTimeout bounds recording one delivery (default 8s: GitHub
	// gives up after 10).
	AcceptTimeout time.Duration
	// Logger gets one line per delivery (default: none).
	Logger *slog.Logger
	// Observe, when set, hears of each delivery: its event ("" when it
	// had none) and its result, one of "accepted", "duplicate",
	// "ignored", "pong", "unauthorized", "invalid" or "error".
	Observe func(event, result string)
}

// Handler is the webhook endpoint, an http.Handler.
type Handler struct {
	opts Options
	log  *slog.Logger
}

// New returns a Handler. It refuses an empty secret: go-github's
// validation would accept any unsigned delivery with one.
func New(opts Options) (*Handler, error) {
	if len(opts.Secret) == 0 {
		return nil, errors.New("webhook: the webhook secret is empty: every delivery must be signed")
	}
	if opts.Acceptor == nil {
		return nil, errors.New("webhook: no Acceptor")
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.AcceptTimeout <= 0 {
		opts.AcceptTimeout = 8 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{opts: opts, log: log}, nil
}

// Response is the JSON body of every answer.
type Response struct {
	Delivery  string   `json:"delivery,omitempty"`
	Event     string   `json:"event,omitempty"`
	Duplicate bool     `json:"duplicate,omitempty"`
	Builds    []string `json:"builds,omitempty"`
	Outcome   string   `json:"outcome,omitempty"`
	Error     string   `json:"error,omitempty"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	event := github.WebHookType(r)
	delivery := github.DeliveryID(r)
	log := h.log.With("delivery_id", delivery, "event", event)
	reply := func(status int, resp Response, level slog.Level, msg string, attrs ...any) {
		if h.opts.Observe != nil {
			h.opts.Observe(event, result(status, resp))
		}
		resp.Delivery, resp.Event = delivery, event
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(resp)
		log.Log(r.Context(), level, msg, append(attrs, "status", status, "duration_ms", float64(time.Since(began).Microseconds())/1000)...)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(http.StatusMethodNotAllowed, Response{Error: "POST a GitHub webhook delivery here"}, slog.LevelWarn, "delivery refused: method "+r.Method)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		reply(http.StatusRequestEntityTooLarge, Response{Error: fmt.Sprintf("body larger than %d bytes", h.opts.MaxBody)}, slog.LevelWarn, "delivery refused: body too large")
		return
	case err != nil:
		reply(http.StatusBadRequest, Response{Error: "reading the body failed"}, slog.LevelWarn, "delivery refused: reading the body", "error", err)
		return
	}
	signature := r.Header.Get(github.SHA256SignatureHeader)
	if signature == "" {
		reply(http.StatusUnauthorized, Response{Error: "no " + github.SHA256SignatureHeader + " header"}, slog.LevelWarn, "delivery refused: unsigned", "remote", r.RemoteAddr)
		return
	}
	if err := github.ValidateSignature(signature, body, h.opts.Secret); err != nil {
		reply(http.StatusUnauthorized, Response{Error: "bad signature"}, slog.LevelWarn, "delivery refused: bad signature", "remote", r.RemoteAddr)
		return
	}
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	payload := body
	if mediaType != "application/json" {
		// The form encoding carries the payload in a field.
		if payload, err = github.ValidatePayloadFromBody(mediaType, bytes.NewReader(body), signature, h.opts.Secret); err != nil {
			reply(http.StatusUnsupportedMediaType, Response{Error: err.Error()}, slog.LevelWarn, "delivery refused: content type", "content_type", mediaType)
			return
		}
	}
	if event == "" || delivery == "" {
		reply(http.StatusBadRequest, Response{Error: "no X-GitHub-Event or X-GitHub-Delivery header"}, slog.LevelWarn, "delivery refused: headers missing")
		return
	}
	if event == "ping" {
		reply(http.StatusOK, Response{Outcome: "pong"}, slog.LevelInfo, "ping")
		return
	}
	routed, err := Route(event, payload, h.opts.Policy)
	switch {
	case errors.Is(err, ErrUnhandled):
		reply(http.StatusAccepted, Response{Outcome: "ignored: event not handled"}, slog.LevelInfo, "delivery ignored: event not handled")
		return
	case err != nil:
		reply(http.StatusBadRequest, Response{Error: err.Error()}, slog.LevelWarn, "delivery refused: bad payload", "error", err)
		return
	}
	// Record the delivery whatever happens to the request from here: a
	// client that hangs up must not leave it half done.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.opts.AcceptTimeout)
	defer cancel()
	res, err := h.opts.Acceptor.Accept(ctx, queue.Delivery{
		ID:             delivery,
		Event:          event,
		Action:         routed.Action,
		Repository:     routed.Repository,
		InstallationID: routed.InstallationID,
		Received:       began,
	}, routed.Plan)
	if err != nil {
		reply(http.StatusServiceUnavailable, Response{Error: "the delivery could not be recorded; redeliver it"}, slog.LevelError, "delivery not recorded", "error", err)
		return
	}
	resp := Response{Duplicate: res.Duplicate, Outcome: res.Outcome}
	for _, b := range res.Builds {
		resp.Builds = append(resp.Builds, b.BuildID)
	}
	attrs := []any{"repository", routed.Repository, "outcome", res.Outcome}
	if len(resp.Builds) == 1 {
		attrs = append(attrs, "build_id", resp.Builds[0])
	} else if len(resp.Builds) > 1 {
		attrs = append(attrs, "build_ids", resp.Builds)
	}
	if res.Duplicate {
		reply(http.StatusOK, resp, slog.LevelInfo, "redelivery: already handled", attrs...)
		return
	}
	reply(http.StatusAccepted, resp, slog.LevelInfo, "delivery accepted", attrs...)
}

// result names a delivery's outcome for Options.Observe.
func result(status int, resp Response) string {
	switch {
	case status == http.StatusUnauthorized:
		return "unauthorized"
	case status >= 500:
		return "error"
	case status >= 400:
		return "invalid"
	case resp.Duplicate:
		return "duplicate"
	case resp.Outcome == "pong":
		return "pong"
	case strings.HasPrefix(resp.Outcome, "ignored"):
		return "ignored"
	default:
		return "accepted"
	}
}
