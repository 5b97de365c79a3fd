package manifest

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxSize is the largest convox.yml accepted, in bytes.
const MaxSize = 1 << 20

// Options controls Parse and Load. The zero value interpolates with no
// environment and does not check required environment entries.
type Options struct {
	// Env is the app environment: the values for ${VAR} and for
	// environment entries. When nil, the app environment is unknown:
	// ${VAR} still becomes empty, as in Convox, but required entries
	// (KEY with no default) are not checked.
	Env map[string]string
	// Strict reports each ${VAR} missing from Env as an error instead of
	// replacing it with an empty string.
	Strict bool
}

// Keys Convox knows, for unknown-key warnings.
var (
	topKeys     = []string{"appSettings", "balancers", "budget", "configs", "environment", "labels", "params", "resources", "services", "timers"}
	serviceKeys = []string{"agent", "annotations", "build", "certificate", "command", "configMounts", "deployment", "dnsConfig", "domain", "drain", "disableHostUsers", "environment", "grpcHealthEnabled", "health", "liveness", "startupProbe", "image", "imagePullSecrets", "init", "initContainer", "internal", "internalRouter", "ingressAnnotations", "labels", "nodeAffinityLabels", "nodeSelectorLabels", "lifecycle", "port", "ports", "privileged", "resources", "securityContext", "scale", "singleton", "sticky", "termination", "test", "timeout", "tls", "volumes", "volumeOptions", "whitelist", "accessControl"}
	// rawServiceKeys are service fields the build does not use, kept as
	// written.
	rawServiceKeys   = map[string]bool{"annotations": true, "certificate": true, "configMounts": true, "dnsConfig": true, "liveness": true, "startupProbe": true, "imagePullSecrets": true, "initContainer": true, "ingressAnnotations": true, "nodeAffinityLabels": true, "nodeSelectorLabels": true, "lifecycle": true, "securityContext": true, "volumeOptions": true, "accessControl": true}
	buildKeys        = []string{"path", "manifest", "args", "target"}
	deploymentKeys   = []string{"minimum", "maximum"}
	healthKeys       = []string{"disable", "grace", "interval", "path", "port", "timeout"}
	portKeys         = []string{"port", "scheme"}
	scaleKeys        = []string{"count", "cpu", "memory", "gpu", "limit", "targets", "keda", "vpa", "min", "max", "autoscale"}
	countKeys        = []string{"min", "max"}
	terminationKeys  = []string{"grace"}
	tlsKeys          = []string{"redirect"}
	resourceKeys     = []string{"type", "image", "options"}
	timerKeys        = []string{"annotations", "command", "schedule", "service", "concurrency", "parallelCount"}
	balancerKeys     = []string{"annotations", "ports", "service", "whitelist"}
	balancerPortKeys = []string{"protocol", "port"}
)

// Parse parses a convox.yml. name is the file name used in problems.
// It returns the Manifest (nil only when the YAML cannot be read at all),
// every problem found in file order, and, when any problem is an error, a
// non-nil error holding the errors (a Problems).
func Parse(name string, data []byte, opts Options) (*Manifest, Problems, error) {
	d := &decoder{file: name}
	if len(data) > MaxSize {
		d.add(Error, Position{}, "file is larger than %d bytes (1 MiB); refusing to read it", MaxSize)
		return nil, d.problems, d.problems
	}
	d.in = interpolate(data, opts.Env)
	if opts.Strict {
		for _, r := range d.in.repls {
			if r.missing {
				l, c := lineCol(data, d.in.oldStarts(), r.oldStart)
				d.add(Error, Position{l, c}, "${%s}: %s is not set in the environment", r.name, r.name)
			}
		}
	}
	var doc yaml.Node
	if err := parseYAML(d.in.text, &doc); err != nil {
		d.syntaxError(err)
		ps := d.problems.Sorted()
		return nil, ps, ps.Err()
	}
	m := &Manifest{File: name, env: opts.Env}
	if len(doc.Content) > 0 {
		d.manifest(m, doc.Content[0])
	}
	m.applyDefaults(d)
	m.validate(d)
	ps := d.problems.Sorted()
	m.Warnings = ps.Warnings()
	return m, ps, ps.Err()
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError reports a YAML syntax error where it is, with the offending
// line and a caret under the place. When only the line is known, the place
// is the line's first non-blank character.
func (d *decoder) syntaxError(err error) {
	var ye *yamlError
	if !errors.As(err, &ye) || ye.Line <= 0 {
		d.add(Error, Position{}, "invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		return
	}
	line := min(ye.Line, len(d.in.newStarts()))
	col := ye.Column
	if col <= 0 {
		col = 1
		rest := d.in.text[d.in.newStarts()[line-1]:]
		for col-1 < len(rest) && (rest[col-1] == ' ' || rest[col-1] == '\t') {
			col++
		}
	}
	l, c := d.in.position(line, col)
	d.problems = append(d.problems, Problem{
		File: d.file, Line: l, Col: c, Severity: Error,
		Message: "invalid YAML: " + ye.Message,
		Excerpt: excerpt(d.in.orig, d.in.oldStarts(), l, c),
	})
}

func (d *decoder) manifest(m *Manifest, root *yaml.Node) {
	fs, _ := d.mapping(root, "the top level")
	for _, f := range fs {
		switch f.key {
		case "appSettings":
			m.AppSettings = d.raw(f.v)
		case "balancers":
			d.balancers(m, f.v)
		case "budget":
			m.Budget = d.raw(f.v)
		case "configs":
			m.Configs = d.raw(f.v)
			d.configs(f.v)
		case "environment":
			m.Environment, m.envPos = d.environment(f.v, "environment")
		case "labels":
			m.Labels = d.labels(f.v, "labels")
		case "params":
			m.Params = d.stringMap(f.v, "params")
		case "resources":
			d.resources(m, f.v)
		case "services":
			d.services(m, f.v)
		case "timers":
			d.timers(m, f.v)
		default:
			d.unknown(f, "", topKeys)
		}
	}
}

// raw copies a node, resolving aliases, so it can be written back alone.
func (d *decoder) raw(n *yaml.Node) Raw {
	n = d.resolve(n)
	if isNull(n) {
		return Raw{}
	}
	return Raw{Node: d.copyNode(n, 0)}
}

func (d *decoder) copyNode(n *yaml.Node, depth int) *yaml.Node {
	c := *n
	c.Anchor = ""
	c.Alias = nil
	c.Content = nil
	if depth > 100 {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	for _, e := range n.Content {
		if e = d.resolve(e); e == nil {
			break
		}
		c.Content = append(c.Content, d.copyNode(e, depth+1))
	}
	return &c
}

func (d *decoder) configs(n *yaml.Node) {
	n = d.resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		if !isNull(n) {
			d.errorf(n, "configs must be a list, not %s", kindName(n))
		}
		return
	}
	for _, e := range n.Content {
		fs, _ := d.mapping(e, "configs")
		id := ""
		for _, f := range fs {
			if f.key == "id" {
				id, _ = d.str(f.v, "configs id")
			}
		}
		if id == "" {
			d.errorf(e, "configs[*].id is required")
		}
	}
}

// labels reads a labels mapping, reporting Convox's reserved keys.
func (d *decoder) labels(n *yaml.Node, what string) map[string]string {
	fs, _ := d.mapping(n, what)
	if len(fs) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, f := range fs {
		if reservedLabels[f.key] {
			d.errorf(f.k, "reserved label key '%s' is not allowed", f.key)
		}
		v, _ := d.str(f.v, what+"."+f.key)
		out[f.key] = v
	}
	return out
}

var reservedLabels = map[string]bool{"system": true, "rack": true, "app": true, "name": true, "service": true, "release": true, "type": true}

func (d *decoder) services(m *Manifest, n *yaml.Node) {
	fs, _ := d.mapping(n, "services")
	for _, f := range fs {
		p := d.at(f.k)
		s := &Service{Name: f.key, Line: p.Line, Col: p.Col}
		d.service(s, f.v)
		m.Services = append(m.Services, s)
	}
}

func (d *decoder) service(s *Service, n *yaml.Node) {
	what := "service " + s.Name
	fs, _ := d.mapping(n, what)
	// Room for the keys and a few nested ones, so the maps rarely grow.
	s.set = make(map[string]bool, 2*len(fs))
	s.pos = make(map[string]Position, 2*len(fs))
	for _, f := range fs {
		s.set[f.key] = true
		s.pos[f.key] = d.at(f.k)
		fw := what + ": " + f.key
		switch f.key {
		case "agent":
			d.agent(s, f.v)
		case "build":
			d.build(s, f.v, what)
		case "command":
			s.Command, _ = d.str(f.v, fw)
		case "deployment":
			for _, g := range d.sub(s, f, what, deploymentKeys) {
				switch g.key {
				case "minimum":
					s.Deployment.Minimum, _ = d.integer(g.v, fw+".minimum")
				case "maximum":
					s.Deployment.Maximum, _ = d.integer(g.v, fw+".maximum")
				}
			}
		case "disableHostUsers":
			s.DisableHostUsers, _ = d.boolean(f.v, fw)
		case "domain":
			d.domain(s, f.v)
		case "drain":
			s.Drain, _ = d.integer(f.v, fw)
		case "environment":
			s.ownEnv, s.ownEnvPos = d.environment(f.v, fw)
		case "grpcHealthEnabled":
			s.GrpcHealthEnabled, _ = d.boolean(f.v, fw)
		case "health":
			d.health(s, f, what)
		case "image":
			s.Image, _ = d.str(f.v, fw)
		case "init":
			s.Init, _ = d.boolean(f.v, fw)
		case "internal":
			s.Internal, _ = d.boolean(f.v, fw)
		case "internalRouter":
			s.InternalRouter, _ = d.boolean(f.v, fw)
		case "labels":
			s.ownLabels = d.labels(f.v, fw)
		case "port":
			s.Port = d.port(f.v, fw)
		case "ports":
			d.ports(s, f.v, fw)
		case "privileged":
			s.Privileged, _ = d.boolean(f.v, fw)
		case "resources":
			var pos []Position
			s.Resources, pos = d.strs(f.v, fw, false)
			for i, p := range pos {
				s.pos["resources."+strconv.Itoa(i)] = p
			}
		case "scale":
			d.scale(s, f, what)
		case "singleton":
			s.Singleton, _ = d.boolean(f.v, fw)
		case "sticky":
			s.Sticky, _ = d.boolean(f.v, fw)
		case "termination":
			for _, g := range d.sub(s, f, what, terminationKeys) {
				s.Termination.Grace, _ = d.integer(g.v, fw+".grace")
			}
		case "test":
			s.Test, _ = d.str(f.v, fw)
		case "timeout":
			s.Timeout, _ = d.integer(f.v, fw)
		case "tls":
			for _, g := range d.sub(s, f, what, tlsKeys) {
				s.TLS.Redirect, _ = d.boolean(g.v, fw+".redirect")
			}
		case "volumes":
			s.Volumes, _ = d.strs(f.v, fw, false)
		case "whitelist":
			s.Whitelist, _ = d.str(f.v, fw)
		default:
			if rawServiceKeys[f.key] {
				if f.key == "annotations" || f.key == "ingressAnnotations" {
					d.annotations(f.v)
				}
				if r := d.raw(f.v); !r.IsZero() {
					if s.Extra == nil {
						s.Extra = map[string]Raw{}
					}
					s.Extra[f.key] = r
				}
				continue
			}
			d.unknown(f, what, serviceKeys)
		}
	}
}

// sub reads a nested mapping of a service, recording which of its keys are
// set and warning about unknown ones.
func (d *decoder) sub(s *Service, f field, what string, known []string) []field {
	fs, _ := d.mapping(f.v, what+": "+f.key)
	out := make([]field, 0, len(fs))
	for _, g := range fs {
		if !contains(known, g.key) {
			d.unknown(g, what+": "+f.key, known)
			continue
		}
		s.set[f.key+"."+g.key] = true
		s.pos[f.key+"."+g.key] = d.at(g.k)
		out = append(out, g)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func (d *decoder) agent(s *Service, n *yaml.Node) {
	n = d.resolve(n)
	if isNull(n) {
		return
	}
	if b, ok := yaml11Bool(n); ok {
		s.Agent = b
		return
	}
	if n.Kind == yaml.MappingNode {
		d.errorf(n, "agent ports are now specified at the service level")
		return
	}
	d.errorf(n, "could not parse agent: %s", n.Value)
}

func (d *decoder) build(s *Service, n *yaml.Node, what string) {
	n = d.resolve(n)
	switch {
	case isNull(n):
	case n.Kind == yaml.ScalarNode && goType(n) == "string":
		s.Build.Path = n.Value
		s.pos["build.path"] = d.at(n)
	case n.Kind == yaml.MappingNode:
		fs, _ := d.mapping(n, what+": build")
		for _, f := range fs {
			fw := what + ": build." + f.key
			s.pos["build."+f.key] = d.at(f.v)
			switch f.key {
			case "path":
				s.Build.Path, _ = d.str(f.v, fw)
			case "manifest":
				s.Build.Manifest, _ = d.str(f.v, fw)
			case "target":
				s.Build.Target, _ = d.str(f.v, fw)
			case "args":
				s.Build.Args = d.buildArgs(f.v, fw)
			default:
				d.unknown(f, what+": build", buildKeys)
			}
		}
	default:
		d.errorf(n, "unknown type for service build: %s", goType(n))
	}
}

// buildArgs reads build.args: Convox's list of KEY=value (or KEY) strings,
// or a mapping of KEY: value.
func (d *decoder) buildArgs(n *yaml.Node, what string) []string {
	n = d.resolve(n)
	if n != nil && n.Kind == yaml.MappingNode {
		fs, _ := d.mapping(n, what)
		var out []string
		for _, f := range fs {
			v, _ := d.str(f.v, what+"."+f.key)
			out = append(out, f.key+"="+v)
		}
		return out
	}
	out, _ := d.strs(n, what, false)
	return out
}

func (d *decoder) domain(s *Service, n *yaml.Node) {
	n = d.resolve(n)
	switch {
	case isNull(n):
	case n.Kind == yaml.ScalarNode && goType(n) == "string":
		for _, p := range strings.Split(n.Value, ",") {
			if p = strings.TrimSpace(p); p != "" {
				s.Domains = append(s.Domains, p)
			}
		}
	case n.Kind == yaml.SequenceNode:
		for _, e := range n.Content {
			e = d.resolve(e)
			if e == nil || e.Kind != yaml.ScalarNode || goType(e) != "string" {
				if e != nil {
					d.errorf(e, "unknown type for service domain: %s", goType(e))
				}
				continue
			}
			if p := strings.TrimSpace(e.Value); p != "" {
				s.Domains = append(s.Domains, p)
			}
		}
	default:
		d.errorf(n, "unknown type for service domain: %s", goType(n))
	}
}

func (d *decoder) health(s *Service, f field, what string) {
	n := d.resolve(f.v)
	switch {
	case isNull(n):
	case n.Kind == yaml.ScalarNode && goType(n) == "string":
		s.Health.Path = n.Value
	case n.Kind == yaml.MappingNode:
		// Convox ignores values of the wrong type here; so do we, with a
		// warning.
		for _, g := range d.sub(s, f, what, healthKeys) {
			v := d.resolve(g.v)
			if isNull(v) {
				continue
			}
			fw := what + ": health." + g.key
			switch g.key {
			case "path":
				if v.Kind == yaml.ScalarNode && goType(v) == "string" {
					s.Health.Path = v.Value
					continue
				}
			case "disable":
				if b, ok := yaml11Bool(v); ok {
					s.Health.Disable = b
					continue
				}
			case "port":
				d.port(v, fw)
				continue
			default:
				if v.Kind == yaml.ScalarNode && v.Tag == "!!int" {
					i, _ := d.integer(v, fw)
					switch g.key {
					case "grace":
						s.Health.Grace = i
					case "interval":
						s.Health.Interval = i
					case "timeout":
						s.Health.Timeout = i
					}
					continue
				}
			}
			d.warnf(v, "%s: %s has the wrong type and Convox ignores it", fw, kindName(v))
		}
	default:
		d.errorf(n, "unknown type for service health: %s", goType(n))
	}
}

// port reads port: 3000, "https:3000" or {port, scheme}.
func (d *decoder) port(n *yaml.Node, what string) Port {
	n = d.resolve(n)
	var p Port
	switch {
	case isNull(n):
		return p
	case n.Kind == yaml.ScalarNode && n.Tag == "!!int":
		p.Port, _ = d.integer(n, what)
	case n.Kind == yaml.ScalarNode:
		p = d.portString(n, what)
	case n.Kind == yaml.MappingNode:
		fs, _ := d.mapping(n, what)
		for _, f := range fs {
			switch f.key {
			case "port":
				v := d.resolve(f.v)
				if v != nil && v.Kind == yaml.ScalarNode && v.Tag == "!!int" {
					p.Port, _ = d.integer(v, what+".port")
				} else if v != nil && v.Kind == yaml.ScalarNode && !isNull(v) {
					q := d.portString(v, what+".port")
					p.Port = q.Port
					if q.Scheme != "" {
						p.Scheme = q.Scheme
					}
				} else if !isNull(v) {
					d.errorf(v, "%s: could not parse port: %s", what, kindName(v))
				}
			case "scheme":
				p.Scheme, _ = d.str(f.v, what+".scheme")
			default:
				d.unknown(f, what, portKeys)
			}
		}
		if p.Port == 0 {
			d.errorf(n, "%s: could not parse port: no port given", what)
		}
	default:
		d.errorf(n, "%s: invalid port: %s", what, kindName(n))
	}
	if p.Scheme == "grpc" {
		p.Scheme = "GRPC"
	}
	return p
}

func (d *decoder) portString(n *yaml.Node, what string) Port {
	var p Port
	ps := strings.Split(n.Value, ":")
	pp := ps[0]
	if len(ps) > 1 {
		p.Scheme, pp = ps[0], ps[1]
	}
	i, err := strconv.Atoi(pp)
	if err != nil {
		d.errorf(n, "%s: invalid port %q (expected PORT or SCHEME:PORT)", what, n.Value)
		return Port{}
	}
	p.Port = i
	return p
}

func (d *decoder) ports(s *Service, n *yaml.Node, what string) {
	n = d.resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s must be a list, not %s", what, kindName(n))
		return
	}
	for _, e := range n.Content {
		e = d.resolve(e)
		switch {
		case e == nil || isNull(e):
		case e.Kind == yaml.ScalarNode && e.Tag == "!!int":
			i, _ := d.integer(e, what)
			s.Ports = append(s.Ports, PortProtocol{Port: i, Protocol: "tcp"})
		case e.Kind == yaml.ScalarNode:
			ps := strings.Split(e.Value, "/")
			i, err := strconv.Atoi(ps[0])
			if err != nil {
				d.errorf(e, "%s: invalid port %q (expected PORT or PORT/PROTOCOL)", what, e.Value)
				continue
			}
			pp := PortProtocol{Port: i}
			if len(ps) > 1 {
				pp.Protocol = ps[1]
			}
			s.Ports = append(s.Ports, pp)
		default:
			d.errorf(e, "%s: invalid port: %s", what, kindName(e))
		}
	}
}

// scale reads scale: 3, "1-5" or {count, cpu, memory, ...}.
func (d *decoder) scale(s *Service, f field, what string) {
	n := d.resolve(f.v)
	fw := what + ": scale"
	switch {
	case isNull(n):
	case n.Kind == yaml.ScalarNode:
		s.Scale.Count = d.count(n, fw)
	case n.Kind == yaml.MappingNode:
		for _, g := range d.sub(s, f, what, scaleKeys) {
			switch g.key {
			case "count":
				s.Scale.Count = d.count(g.v, fw+".count")
			case "cpu":
				s.Scale.Cpu, _ = d.integer(g.v, fw+".cpu")
			case "memory":
				s.Scale.Memory, _ = d.integer(g.v, fw+".memory")
			default:
				if v := d.resolve(g.v); g.key == "gpu" && !isNull(v) && v.Kind != yaml.MappingNode && v.Tag != "!!int" {
					d.errorf(v, "unknown type for service scale gpu: %s", goType(v))
				}
				if r := d.raw(g.v); !r.IsZero() {
					if s.Scale.Extra == nil {
						s.Scale.Extra = map[string]Raw{}
					}
					s.Scale.Extra[g.key] = r
				}
			}
		}
	default:
		d.errorf(n, "unknown type for service scale: %s", goType(n))
	}
}

// count reads a scale count: 2, "2", "1-5" or {min, max}.
func (d *decoder) count(n *yaml.Node, what string) ScaleCount {
	n = d.resolve(n)
	var c ScaleCount
	switch {
	case isNull(n):
	case n.Kind == yaml.ScalarNode && n.Tag == "!!int":
		c.Min, _ = d.integer(n, what)
		c.Max = c.Min
	case n.Kind == yaml.ScalarNode:
		parts := strings.Split(n.Value, "-")
		var err1, err2 error
		switch len(parts) {
		case 1:
			c.Min, err1 = strconv.Atoi(parts[0])
			c.Max = c.Min
		case 2:
			c.Min, err1 = strconv.Atoi(parts[0])
			c.Max, err2 = strconv.Atoi(parts[1])
		default:
			err1 = strconv.ErrSyntax
		}
		if err1 != nil || err2 != nil {
			d.errorf(n, "%s: invalid scale: %s (expected COUNT or MIN-MAX)", what, n.Value)
			return ScaleCount{}
		}
	case n.Kind == yaml.MappingNode:
		fs, _ := d.mapping(n, what)
		for _, f := range fs {
			v := d.resolve(f.v)
			var i int
			switch {
			case isNull(v):
				continue
			case v.Kind == yaml.ScalarNode && v.Tag == "!!int":
				i, _ = d.integer(v, what+"."+f.key)
			case v.Kind == yaml.ScalarNode:
				var err error
				if i, err = strconv.Atoi(v.Value); err != nil {
					d.errorf(v, "%s: invalid scale: %s", what, v.Value)
				}
			default:
				d.errorf(v, "%s: invalid scale: %s", what, kindName(v))
			}
			switch f.key {
			case "min":
				c.Min = i
			case "max":
				c.Max = i
			default:
				d.unknown(f, what, countKeys)
			}
		}
	default:
		d.errorf(n, "%s: invalid scale: %s", what, kindName(n))
	}
	return c
}

func (d *decoder) resources(m *Manifest, n *yaml.Node) {
	fs, _ := d.mapping(n, "resources")
	for _, f := range fs {
		p := d.at(f.k)
		r := &Resource{Name: f.key, Line: p.Line, Col: p.Col}
		what := "resource " + f.key
		gs, _ := d.mapping(f.v, what)
		for _, g := range gs {
			switch g.key {
			case "type":
				r.Type, _ = d.str(g.v, what+": type")
			case "image":
				r.Image, _ = d.str(g.v, what+": image")
			case "options":
				r.Options = d.stringMap(g.v, what+": options")
			default:
				d.unknown(g, what, resourceKeys)
			}
		}
		m.Resources = append(m.Resources, r)
	}
}

func (d *decoder) timers(m *Manifest, n *yaml.Node) {
	fs, _ := d.mapping(n, "timers")
	for _, f := range fs {
		p := d.at(f.k)
		t := &Timer{Name: f.key, Line: p.Line, Col: p.Col, pos: map[string]Position{}}
		what := "timer " + f.key
		gs, _ := d.mapping(f.v, what)
		for _, g := range gs {
			t.pos[g.key] = d.at(g.v)
			switch g.key {
			case "annotations":
				t.Annotations = d.raw(g.v)
			case "command":
				t.Command, _ = d.str(g.v, what+": command")
			case "concurrency":
				t.Concurrency, _ = d.str(g.v, what+": concurrency")
			case "parallelCount":
				t.ParallelCount, _ = d.integer(g.v, what+": parallelCount")
			case "schedule":
				t.Schedule, _ = d.str(g.v, what+": schedule")
			case "service":
				t.Service, _ = d.str(g.v, what+": service")
			default:
				d.unknown(g, what, timerKeys)
			}
		}
		m.Timers = append(m.Timers, t)
	}
}

func (d *decoder) balancers(m *Manifest, n *yaml.Node) {
	fs, _ := d.mapping(n, "balancers")
	for _, f := range fs {
		p := d.at(f.k)
		b := &Balancer{Name: f.key, Line: p.Line, Col: p.Col, pos: map[string]Position{}}
		what := "balancer " + f.key
		gs, _ := d.mapping(f.v, what)
		for _, g := range gs {
			b.pos[g.key] = d.at(g.v)
			switch g.key {
			case "annotations":
				b.Annotations = d.raw(g.v)
			case "ports":
				d.balancerPorts(b, g.v, what+": ports")
			case "service":
				b.Service, _ = d.str(g.v, what+": service")
			case "whitelist":
				var pos []Position
				b.Whitelist, pos = d.whitelist(g.v)
				for i, p := range pos {
					b.pos["whitelist."+strconv.Itoa(i)] = p
				}
			default:
				d.unknown(g, what, balancerKeys)
			}
		}
		m.Balancers = append(m.Balancers, b)
	}
}

func (d *decoder) balancerPorts(b *Balancer, n *yaml.Node, what string) {
	fs, _ := d.mapping(n, what)
	for _, f := range fs {
		src, err := strconv.Atoi(f.key)
		if err != nil {
			d.errorf(f.k, "%s: port %q is not a number", what, f.key)
			continue
		}
		bp := BalancerPort{Source: src}
		v := d.resolve(f.v)
		switch {
		case isNull(v):
		case v.Kind == yaml.ScalarNode && v.Tag == "!!int":
			bp.Protocol = "TCP"
			bp.Target, _ = d.integer(v, what+"."+f.key)
		case v.Kind == yaml.MappingNode:
			gs, _ := d.mapping(v, what+"."+f.key)
			for _, g := range gs {
				switch g.key {
				case "protocol":
					bp.Protocol, _ = d.str(g.v, what+"."+f.key+".protocol")
				case "port":
					bp.Target, _ = d.integer(g.v, what+"."+f.key+".port")
				default:
					d.unknown(g, what+"."+f.key, balancerPortKeys)
				}
			}
		default:
			d.warnf(v, "%s.%s: %s has the wrong type and Convox ignores it", what, f.key, kindName(v))
		}
		b.Ports = append(b.Ports, bp)
	}
}

// annotations checks a service's annotations as Convox's Annotations
// UnmarshalYAML reads them: a list of "key=value" strings and key: value
// mappings whose values are strings.
func (d *decoder) annotations(n *yaml.Node) {
	n = d.resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "failed to unmarshal annotations: cannot unmarshal %s into []interface {}", v2Kind(n))
		return
	}
	for _, e := range n.Content {
		e = d.resolve(e)
		switch {
		case e == nil:
		case e.Kind == yaml.ScalarNode && goType(e) == "string":
			if !strings.Contains(e.Value, "=") {
				d.errorf(e, "invalid annotation format: %s", e.Value)
			}
		case e.Kind == yaml.MappingNode:
			fs, _ := d.mapping(e, "annotations")
			for _, f := range fs {
				if goType(f.k) != "string" {
					d.errorf(f.k, "annotation key is not a string: %v", f.key)
					continue
				}
				if v := d.resolve(f.v); v == nil || v.Kind != yaml.ScalarNode || goType(v) != "string" {
					d.errorf(f.v, "annotation value is not a string: %v", f.key)
				}
			}
		default:
			d.errorf(e, "unsupported annotation type: %s", goType(e))
		}
	}
}

// v2Kind names a node as gopkg.in/yaml.v2's unmarshal errors do.
func v2Kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "!!map"
	case yaml.SequenceNode:
		return "!!seq"
	}
	return fmt.Sprintf("%s `%s`", n.Tag, n.Value)
}

// whitelist reads a balancer's whitelist as Convox does: a string or a
// list of strings.
func (d *decoder) whitelist(n *yaml.Node) ([]string, []Position) {
	n = d.resolve(n)
	switch {
	case isNull(n):
		return nil, nil
	case n.Kind == yaml.ScalarNode && goType(n) == "string":
		return []string{n.Value}, []Position{d.at(n)}
	case n.Kind == yaml.SequenceNode:
		var out []string
		var pos []Position
		for _, e := range n.Content {
			e = d.resolve(e)
			if e == nil || e.Kind != yaml.ScalarNode || goType(e) != "string" {
				// Convox names the list's type here, not the entry's.
				d.errorf(e, "unknown type for balancer whitelist: []interface {}")
				continue
			}
			out = append(out, e.Value)
			pos = append(pos, d.at(e))
		}
		return out, pos
	}
	d.errorf(n, "unknown type for balancer whitelist: %s", goType(n))
	return nil, nil
}
