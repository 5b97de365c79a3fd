package build

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/buildkit"
)

// Pool spreads builds over several buildkitd hosts, which other processes
// (server replicas, people's CLIs) may share. Each build goes to the
// least-loaded host that answers (the first such in order): a host's load
// is the number of builds it runs, as it tells (every process's builds),
// or at least this process's builds on it. A host that does not answer is
// left out, without being asked again for a while (PoolOptions.Recheck),
// and a build whose host goes away runs again on another. It is a Solver,
// so the engine does not know it is there.
type Pool struct {
	opts    PoolOptions
	mu      sync.Mutex
	members []*poolMember
}

type poolMember struct {
	name   string
	solver Solver
	probe  Prober
	// Guarded by Pool.mu:
	inflight  int       // this process's builds on the host
	downUntil time.Time // not asked again before (zero: it answered last)
	downErr   error     // why it was left out
	noHistory bool      // it cannot tell its builds: count this process's
}

// Prober tells how busy a buildkitd host is and whether it answers; a
// *buildkit.Client is one. Each call gets a context with a deadline.
type Prober interface {
	// ActiveBuilds is how many builds the host runs now, from every
	// client; an error wrapping buildkit.ErrNoBuildHistory means it
	// cannot tell (Ready then says whether it answers).
	ActiveBuilds(ctx context.Context) (int, error)
	// Ready is nil when the host answers.
	Ready(ctx context.Context) error
}

// PoolMember is one host of a Pool.
type PoolMember struct {
	// Name identifies the host in logs and errors (its address).
	Name   string
	Solver Solver
	// Probe tells the host's load and health (default: Solver, when it is
	// a Prober). Without one, the host's load is this process's builds on
	// it, and it is taken to answer until a build finds otherwise.
	Probe Prober
}

// PoolOptions configure a Pool. The zero value has the defaults.
type PoolOptions struct {
	// ProbeTimeout bounds each question to a host about its load or
	// health (default DefaultProbeTimeout); a host that does not answer
	// within it is left out.
	ProbeTimeout time.Duration
	// Recheck is how long a host that did not answer is left out before
	// it is asked again (default DefaultRecheck). When every host is left
	// out, all are asked again at once rather than failing the build.
	Recheck time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// DefaultProbeTimeout and DefaultRecheck are PoolOptions' defaults.
const (
	DefaultProbeTimeout = 2 * time.Second
	DefaultRecheck      = 15 * time.Second
)

// NewPool returns a pool of the given hosts (at least one), with the
// default options.
func NewPool(members ...PoolMember) (*Pool, error) {
	return NewPoolWithOptions(PoolOptions{}, members...)
}

// NewPoolWithOptions returns a pool of the given hosts (at least one).
func NewPoolWithOptions(opts PoolOptions, members ...PoolMember) (*Pool, error) {
	if len(members) == 0 {
		return nil, errors.New("buildkitd pool: no hosts")
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = DefaultProbeTimeout
	}
	if opts.Recheck <= 0 {
		opts.Recheck = DefaultRecheck
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Pool{opts: opts}
	for _, m := range members {
		if m.Solver == nil {
			return nil, fmt.Errorf("buildkitd pool: host %q has no solver", m.Name)
		}
		probe := m.Probe
		if probe == nil {
			probe, _ = m.Solver.(Prober)
		}
		p.members = append(p.members, &poolMember{name: m.Name, solver: m.Solver, probe: probe})
	}
	return p, nil
}

// hostFailure is a host left out, and why.
type hostFailure struct {
	m   *poolMember
	err error
}

func (f hostFailure) String() string { return fmt.Sprintf("%s: %v", f.m.name, f.err) }

// choose returns the least-loaded host that answers and is not in tried,
// counting one more build on it, with the hosts found not to answer on
// the way; nil when none is left. Hosts are asked at once, each within
// ProbeTimeout; those that did not answer lately are not asked unless no
// other host is left.
func (p *Pool) choose(ctx context.Context, tried map[*poolMember]bool) (*poolMember, []hostFailure, error) {
	now := p.opts.Now()
	var fresh, down []*poolMember
	p.mu.Lock()
	for _, m := range p.members {
		switch {
		case tried[m]:
		case now.Before(m.downUntil):
			down = append(down, m)
		default:
			fresh = append(fresh, m)
		}
	}
	p.mu.Unlock()
	var failures []hostFailure
	for _, round := range [][]*poolMember{fresh, down} {
		if len(round) == 0 {
			continue
		}
		loads := p.probe(ctx, round)
		if err := ctx.Err(); err != nil {
			return nil, failures, err
		}
		p.mu.Lock()
		var best *poolMember
		bestLoad := 0
		for i, m := range round {
			if loads[i].err != nil {
				failures = append(failures, hostFailure{m, loads[i].err})
				continue
			}
			// The host's count includes this process's builds once they
			// reach it; the in-process count covers those on their way.
			load := max(loads[i].builds, m.inflight)
			if best == nil || load < bestLoad {
				best, bestLoad = m, load
			}
		}
		if best != nil {
			best.inflight++
		}
		p.mu.Unlock()
		if best != nil {
			return best, failures, nil
		}
	}
	return nil, failures, nil
}

// load is what a host said: its builds, or why it did not answer.
type load struct {
	builds int
	err    error
}

// probe asks each host at once for its builds and remembers which
// answered. A host without a Prober reports none and answers.
func (p *Pool) probe(ctx context.Context, ms []*poolMember) []load {
	out := make([]load, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		if m.probe == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = p.ask(ctx, m)
		}()
	}
	wg.Wait()
	return out
}

// ask asks one host how many builds it runs (whether it answers, when it
// cannot tell), within ProbeTimeout, and remembers the answer.
func (p *Pool) ask(ctx context.Context, m *poolMember) load {
	pctx, cancel := context.WithTimeout(ctx, p.opts.ProbeTimeout)
	defer cancel()
	p.mu.Lock()
	noHistory := m.noHistory
	p.mu.Unlock()
	var l load
	if !noHistory {
		l.builds, l.err = m.probe.ActiveBuilds(pctx)
		if errors.Is(l.err, buildkit.ErrNoBuildHistory) {
			noHistory = true
		}
	}
	if noHistory {
		l.builds, l.err = 0, m.probe.Ready(pctx)
	}
	if ctx.Err() != nil {
		return load{err: ctx.Err()} // the caller gave up: learnt nothing
	}
	if l.err != nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
		l.err = fmt.Errorf("no answer within %s", p.opts.ProbeTimeout)
	}
	p.mu.Lock()
	m.noHistory = noHistory
	if l.err != nil {
		p.markDownLocked(m, l.err)
	} else {
		m.downUntil, m.downErr = time.Time{}, nil
	}
	p.mu.Unlock()
	return l
}

func (p *Pool) markDownLocked(m *poolMember, err error) {
	m.downUntil, m.downErr = p.opts.Now().Add(p.opts.Recheck), err
}

func (p *Pool) done(m *poolMember, unavailable error) {
	p.mu.Lock()
	m.inflight--
	if unavailable != nil {
		p.markDownLocked(m, unavailable)
	}
	p.mu.Unlock()
}

// Build runs req on the least-loaded host that answers, moving to another
// host when one is unavailable.
func (p *Pool) Build(ctx context.Context, req buildkit.BuildRequest) (*buildkit.Result, error) {
	tried := map[*poolMember]bool{}
	var failures []string
	fail := func(f hostFailure) {
		failures = append(failures, f.String())
		if req.Log != nil {
			req.Log(fmt.Sprintf("buildkitd %s is unavailable (%v); trying another host", f.m.name, f.err))
		}
	}
	for {
		m, left, err := p.choose(ctx, tried)
		for _, f := range left {
			tried[f.m] = true
			fail(f)
		}
		if err != nil {
			return nil, fmt.Errorf("choosing a buildkitd host: %w", err)
		}
		if m == nil {
			return nil, fmt.Errorf("no buildkitd host could run the build: %s", strings.Join(failures, "; "))
		}
		tried[m] = true
		res, err := m.solver.Build(ctx, req)
		if err == nil || !buildkit.IsUnavailable(err) || ctx.Err() != nil {
			p.done(m, nil)
			return res, err
		}
		p.done(m, err)
		fail(hostFailure{m, err})
	}
}

// HostStatus is what a host of a Pool said.
type HostStatus struct {
	// Name is the host's name (its address).
	Name string
	// Builds is how many builds it runs: every process's when it can
	// tell, else this process's.
	Builds int
	// Err is why it does not answer; nil when it does.
	Err error
}

// Status asks every host at once (each within ProbeTimeout) how many
// builds it runs, and remembers which answered, as a build's choice of
// host does.
func (p *Pool) Status(ctx context.Context) []HostStatus {
	loads := p.probe(ctx, p.members)
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]HostStatus, len(p.members))
	for i, m := range p.members {
		out[i] = HostStatus{Name: m.name, Builds: max(loads[i].builds, m.inflight), Err: loads[i].err}
	}
	return out
}

// Ready is nil when at least one host answers; otherwise its error names
// each host and why it does not answer. It asks every host at once, each
// within ProbeTimeout. A host without a Prober is taken to answer.
func (p *Pool) Ready(ctx context.Context) error {
	var failures []string
	for _, s := range p.Status(ctx) {
		if s.Err == nil {
			return nil
		}
		failures = append(failures, s.Name+": "+s.Err.Error())
	}
	return fmt.Errorf("no buildkitd host answers: %s", strings.Join(failures, "; "))
}

// DialPool connects to every address (see Dial) and returns a Pool of
// them, with a function that closes the connections. Every host must
// answer: a wrong address is a mistake to fix, not a host to skip. A
// long-running server that should start while some host is down uses
// OpenPool.
func DialPool(ctx context.Context, addrs []string, opts DialOptions) (*Pool, func() error, error) {
	return dialPool(ctx, addrs, opts, PoolOptions{}, false)
}

// OpenPool is DialPool for a long-running server: it connects to every
// address at once, and a host that does not answer joins the pool as
// unavailable, to be asked again after PoolOptions.Recheck, as long as
// one host answers. Any other failure (an address that is not buildkitd,
// TLS files that cannot be read) is an error.
func OpenPool(ctx context.Context, addrs []string, opts DialOptions, popts PoolOptions) (*Pool, func() error, error) {
	return dialPool(ctx, addrs, opts, popts, true)
}

func dialPool(ctx context.Context, addrs []string, opts DialOptions, popts PoolOptions, tolerant bool) (*Pool, func() error, error) {
	clients := make([]*buildkit.Client, len(addrs))
	errs := make([]error, len(addrs))
	if tolerant {
		var wg sync.WaitGroup
		for i, addr := range addrs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				clients[i], errs[i] = Dial(ctx, addr, opts)
			}()
		}
		wg.Wait()
	} else {
		for i, addr := range addrs {
			if clients[i], errs[i] = Dial(ctx, addr, opts); errs[i] != nil {
				break
			}
		}
	}
	closeAll := func() error {
		var errs []error
		for _, c := range clients {
			if c != nil {
				errs = append(errs, c.Close())
			}
		}
		return errors.Join(errs...)
	}
	answered := 0
	var down []int
	for i, err := range errs {
		switch {
		case err == nil && clients[i] != nil:
			answered++
		case err != nil && tolerant && buildkit.IsUnavailable(err):
			down = append(down, i)
		case err != nil:
			closeAll()
			return nil, nil, err
		}
	}
	if answered == 0 && len(down) > 0 {
		var all []error
		for _, i := range down {
			all = append(all, errs[i])
		}
		return nil, nil, fmt.Errorf("no buildkitd host answers: %w", errors.Join(all...))
	}
	for _, i := range down {
		c, err := buildkit.Open(addrs[i], opts)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		clients[i] = c
	}
	members := make([]PoolMember, len(addrs))
	for i, addr := range addrs {
		members[i] = PoolMember{Name: addr, Solver: clients[i]}
	}
	p, err := NewPoolWithOptions(popts, members...)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	for _, i := range down {
		p.mu.Lock()
		p.markDownLocked(p.members[i], errs[i])
		p.mu.Unlock()
	}
	return p, closeAll, nil
}
