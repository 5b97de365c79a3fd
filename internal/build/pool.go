package build

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/convox-build-action/convox-build-action/internal/buildkit"
)

// Pool spreads builds over several buildkitd hosts: each build goes to the
// host with the fewest builds in flight (the first such in order), and a
// build whose host cannot be reached, or goes away, runs again on the next
// host. It is a Solver, so the engine does not know it is there.
type Pool struct {
	mu      sync.Mutex
	members []*poolMember
}

type poolMember struct {
	name     string
	solver   Solver
	inflight int
}

// PoolMember is one host of a Pool.
type PoolMember struct {
	// Name identifies the host in logs and errors (its address).
	Name   string
	Solver Solver
}

// NewPool returns a pool of the given hosts (at least one).
func NewPool(members ...PoolMember) (*Pool, error) {
	if len(members) == 0 {
		return nil, errors.New("buildkitd pool: no hosts")
	}
	p := &Pool{}
	for _, m := range members {
		p.members = append(p.members, &poolMember{name: m.Name, solver: m.Solver})
	}
	return p, nil
}

// pick returns the least busy host not in tried, or nil.
func (p *Pool) pick(tried map[*poolMember]bool) *poolMember {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best *poolMember
	for _, m := range p.members {
		if !tried[m] && (best == nil || m.inflight < best.inflight) {
			best = m
		}
	}
	if best != nil {
		best.inflight++
	}
	return best
}

func (p *Pool) done(m *poolMember) {
	p.mu.Lock()
	m.inflight--
	p.mu.Unlock()
}

// Build runs req on the least busy host, moving to the next one when a host
// is unavailable.
func (p *Pool) Build(ctx context.Context, req buildkit.BuildRequest) (*buildkit.Result, error) {
	tried := map[*poolMember]bool{}
	var failures []string
	for {
		m := p.pick(tried)
		if m == nil {
			return nil, fmt.Errorf("no buildkitd host could run the build: %s", strings.Join(failures, "; "))
		}
		tried[m] = true
		res, err := m.solver.Build(ctx, req)
		p.done(m)
		if err == nil || !buildkit.IsUnavailable(err) || ctx.Err() != nil {
			return res, err
		}
		failures = append(failures, fmt.Sprintf("%s: %v", m.name, err))
		if req.Log != nil {
			req.Log(fmt.Sprintf("buildkitd %s is unavailable (%v); trying another host", m.name, err))
		}
	}
}

// DialPool connects to every address (see Dial) and returns a Pool of
// them, with a function that closes the connections. Every host must
// answer: a wrong address is a mistake to fix, not a host to skip.
func DialPool(ctx context.Context, addrs []string, opts DialOptions) (*Pool, func() error, error) {
	var members []PoolMember
	var clients []*buildkit.Client
	closeAll := func() error {
		var errs []error
		for _, c := range clients {
			errs = append(errs, c.Close())
		}
		return errors.Join(errs...)
	}
	for _, addr := range addrs {
		c, err := Dial(ctx, addr, opts)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		clients = append(clients, c)
		members = append(members, PoolMember{Name: addr, Solver: c})
	}
	p, err := NewPool(members...)
	if err != nil {
		return nil, nil, err
	}
	return p, closeAll, nil
}
