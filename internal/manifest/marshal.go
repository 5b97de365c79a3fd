package manifest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// MarshalYAML writes the manifest back as convox.yml, every value in its
// long form with defaults made explicit, and the sections and fields the
// build does not use as they were written. Parsing the result gives the
// same Manifest.
func (m *Manifest) MarshalYAML() (any, error) {
	top := &yaml.Node{Kind: yaml.MappingNode}
	addRaw(top, "appSettings", m.AppSettings)
	if len(m.Balancers) > 0 {
		bs := &yaml.Node{Kind: yaml.MappingNode}
		for _, b := range m.Balancers {
			bs.Content = append(bs.Content, strNode(b.Name), b.node())
		}
		add(top, "balancers", bs)
	}
	addRaw(top, "budget", m.Budget)
	addRaw(top, "configs", m.Configs)
	if len(m.Environment) > 0 {
		add(top, "environment", strsNode(m.Environment))
	}
	if len(m.Labels) > 0 {
		add(top, "labels", mapNode(m.Labels))
	}
	if len(m.Params) > 0 {
		add(top, "params", mapNode(m.Params))
	}
	if len(m.Resources) > 0 {
		rs := &yaml.Node{Kind: yaml.MappingNode}
		for _, r := range m.Resources {
			n := &yaml.Node{Kind: yaml.MappingNode}
			add(n, "type", strNode(r.Type))
			if r.Image != "" {
				add(n, "image", strNode(r.Image))
			}
			if len(r.Options) > 0 {
				add(n, "options", mapNode(r.Options))
			}
			rs.Content = append(rs.Content, strNode(r.Name), n)
		}
		add(top, "resources", rs)
	}
	if len(m.Services) > 0 {
		ss := &yaml.Node{Kind: yaml.MappingNode}
		for _, s := range m.Services {
			ss.Content = append(ss.Content, strNode(s.Name), s.node())
		}
		add(top, "services", ss)
	}
	if len(m.Timers) > 0 {
		ts := &yaml.Node{Kind: yaml.MappingNode}
		for _, t := range m.Timers {
			n := &yaml.Node{Kind: yaml.MappingNode}
			addRaw(n, "annotations", t.Annotations)
			if t.Command != "" {
				add(n, "command", strNode(t.Command))
			}
			if t.Concurrency != "" {
				add(n, "concurrency", strNode(t.Concurrency))
			}
			if t.ParallelCount != 0 {
				add(n, "parallelCount", intNode(t.ParallelCount))
			}
			add(n, "schedule", strNode(t.Schedule))
			add(n, "service", strNode(t.Service))
			ts.Content = append(ts.Content, strNode(t.Name), n)
		}
		add(top, "timers", ts)
	}
	return top, nil
}

func (b *Balancer) node() *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	addRaw(n, "annotations", b.Annotations)
	if len(b.Ports) > 0 {
		ps := &yaml.Node{Kind: yaml.MappingNode}
		for _, p := range b.Ports {
			pn := &yaml.Node{Kind: yaml.MappingNode}
			if p.Protocol != "" {
				add(pn, "protocol", strNode(p.Protocol))
			}
			add(pn, "port", intNode(p.Target))
			ps.Content = append(ps.Content, strNode(strconv.Itoa(p.Source)), pn)
		}
		add(n, "ports", ps)
	}
	if b.Service != "" {
		add(n, "service", strNode(b.Service))
	}
	if len(b.Whitelist) > 0 {
		add(n, "whitelist", strsNode(b.Whitelist))
	}
	return n
}

func (s *Service) node() *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	bools := func(key string, v bool) {
		if v {
			add(n, key, boolNode(true))
		}
	}
	bools("agent", s.Agent)
	if s.Image == "" {
		b := &yaml.Node{Kind: yaml.MappingNode}
		add(b, "path", strNode(s.Build.Path))
		add(b, "manifest", strNode(s.Build.Manifest))
		if len(s.Build.Args) > 0 {
			add(b, "args", strsNode(s.Build.Args))
		}
		if s.Build.Target != "" {
			add(b, "target", strNode(s.Build.Target))
		}
		add(n, "build", b)
	}
	if s.Command != "" {
		add(n, "command", strNode(s.Command))
	}
	dep := &yaml.Node{Kind: yaml.MappingNode}
	add(dep, "minimum", intNode(s.Deployment.Minimum))
	add(dep, "maximum", intNode(s.Deployment.Maximum))
	add(n, "deployment", dep)
	bools("disableHostUsers", s.DisableHostUsers)
	if len(s.Domains) > 0 {
		add(n, "domain", strsNode(s.Domains))
	}
	add(n, "drain", intNode(s.Drain))
	if len(s.ownEnv) > 0 {
		add(n, "environment", strsNode(s.ownEnv))
	}
	bools("grpcHealthEnabled", s.GrpcHealthEnabled)
	h := &yaml.Node{Kind: yaml.MappingNode}
	if s.Health.Disable {
		add(h, "disable", boolNode(true))
	}
	add(h, "grace", intNode(s.Health.Grace))
	add(h, "interval", intNode(s.Health.Interval))
	add(h, "path", strNode(s.Health.Path))
	add(h, "timeout", intNode(s.Health.Timeout))
	add(n, "health", h)
	if s.Image != "" {
		add(n, "image", strNode(s.Image))
	}
	add(n, "init", boolNode(s.Init))
	bools("internal", s.Internal)
	bools("internalRouter", s.InternalRouter)
	if len(s.ownLabels) > 0 {
		add(n, "labels", mapNode(s.ownLabels))
	}
	if s.Port.Port > 0 {
		p := &yaml.Node{Kind: yaml.MappingNode}
		add(p, "port", intNode(s.Port.Port))
		add(p, "scheme", strNode(s.Port.Scheme))
		add(n, "port", p)
	}
	if len(s.Ports) > 0 {
		ps := &yaml.Node{Kind: yaml.SequenceNode}
		for _, p := range s.Ports {
			v := strconv.Itoa(p.Port)
			if p.Protocol != "" {
				v += "/" + p.Protocol
			}
			ps.Content = append(ps.Content, strNode(v))
		}
		add(n, "ports", ps)
	}
	bools("privileged", s.Privileged)
	if len(s.Resources) > 0 {
		add(n, "resources", strsNode(s.Resources))
	}
	sc := &yaml.Node{Kind: yaml.MappingNode}
	count := &yaml.Node{Kind: yaml.MappingNode}
	add(count, "min", intNode(s.Scale.Count.Min))
	add(count, "max", intNode(s.Scale.Count.Max))
	add(sc, "count", count)
	add(sc, "cpu", intNode(s.Scale.Cpu))
	add(sc, "memory", intNode(s.Scale.Memory))
	for _, k := range sortedKeys(s.Scale.Extra) {
		addRaw(sc, k, s.Scale.Extra[k])
	}
	add(n, "scale", sc)
	bools("singleton", s.Singleton)
	bools("sticky", s.Sticky)
	t := &yaml.Node{Kind: yaml.MappingNode}
	add(t, "grace", intNode(s.Termination.Grace))
	add(n, "termination", t)
	if s.Test != "" {
		add(n, "test", strNode(s.Test))
	}
	add(n, "timeout", intNode(s.Timeout))
	tls := &yaml.Node{Kind: yaml.MappingNode}
	add(tls, "redirect", boolNode(s.TLS.Redirect))
	add(n, "tls", tls)
	if len(s.Volumes) > 0 {
		add(n, "volumes", strsNode(s.Volumes))
	}
	if s.Whitelist != "" {
		add(n, "whitelist", strNode(s.Whitelist))
	}
	for _, k := range sortedKeys(s.Extra) {
		addRaw(n, k, s.Extra[k])
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func add(n *yaml.Node, key string, v *yaml.Node) {
	n.Content = append(n.Content, strNode(key), v)
}

func addRaw(n *yaml.Node, key string, r Raw) {
	if r.Node != nil {
		add(n, key, r.Node)
	}
}

// strNode is a string scalar, quoted when it would otherwise read as
// something else (in YAML 1.1 or 1.2) or contain ${.
func strNode(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: s}
	if _, isBool := yaml11Bool(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}); isBool || n.ShortTag() != "!!str" || s == "" {
		n.Style = yaml.DoubleQuotedStyle
	}
	n.Tag = "!!str"
	return n
}

func strsNode(list []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode}
	for _, s := range list {
		n.Content = append(n.Content, strNode(s))
	}
	return n
}

func mapNode(m map[string]string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range sortedKeys(m) {
		add(n, k, strNode(m[k]))
	}
	return n
}

func intNode(i int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(i)}
}

func boolNode(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

// MarshalJSON writes the value as JSON.
func (r Raw) MarshalJSON() ([]byte, error) {
	if r.Node == nil {
		return []byte("null"), nil
	}
	var v any
	if err := r.Node.Decode(&v); err != nil {
		return nil, fmt.Errorf("encoding %s value as JSON: %w", kindName(r.Node), err)
	}
	return json.Marshal(jsonable(v))
}

// MarshalYAML writes the value as it was written.
func (r Raw) MarshalYAML() (any, error) { return r.Node, nil }

// jsonable turns the map[any]any YAML may give into map[string]any.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonable(e)
		}
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		for i, e := range t {
			t[i] = jsonable(e)
		}
	}
	return v
}

// MarshalJSON writes the service with its Extra fields inline.
func (s *Service) MarshalJSON() ([]byte, error) {
	type plain Service
	return withExtra((*plain)(s), s.Extra)
}

// MarshalJSON writes the scale with its Extra fields inline.
func (s Scale) MarshalJSON() ([]byte, error) {
	type plain Scale
	return withExtra(plain(s), s.Extra)
}

func withExtra(v any, extra map[string]Raw) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	for k, r := range extra {
		rb, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		fields[k] = rb
	}
	return json.Marshal(fields)
}
