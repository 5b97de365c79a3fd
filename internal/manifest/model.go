package manifest

import (
	"go.yaml.in/yaml/v3"
)

// Manifest is a parsed convox.yml with Convox's defaults applied. Sections
// the build does not use are kept as Raw YAML so that they are recognised
// and written back unchanged by MarshalYAML.
type Manifest struct {
	// File is the name used in problems, e.g. "convox.yml".
	File string `json:"-"`

	AppSettings Raw               `json:"appSettings,omitzero"`
	Balancers   []*Balancer       `json:"balancers,omitempty"`
	Budget      Raw               `json:"budget,omitzero"`
	Configs     Raw               `json:"configs,omitzero"`
	Environment []string          `json:"environment,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Params      map[string]string `json:"params,omitempty"`
	Resources   []*Resource       `json:"resources,omitempty"`
	Services    []*Service        `json:"services,omitempty"`
	Timers      []*Timer          `json:"timers,omitempty"`

	// Warnings are the warnings found while parsing (errors make Parse and
	// Load fail).
	Warnings Problems `json:"-"`

	// env is the app environment given to Parse; nil when none was given.
	env map[string]string
	// envPos is where each top-level environment entry is.
	envPos []Position
}

// Position is a place in the original convox.yml, 1-based.
type Position struct {
	Line int `json:"line"`
	Col  int `json:"col"`
}

// Service is one entry of services:, with Convox's defaults applied.
type Service struct {
	Name string `json:"name"`

	Agent             bool              `json:"agent"`
	Build             Build             `json:"build"`
	Command           string            `json:"command,omitempty"`
	Deployment        Deployment        `json:"deployment"`
	DisableHostUsers  bool              `json:"disableHostUsers,omitempty"`
	Domains           []string          `json:"domain,omitempty"`
	Drain             int               `json:"drain"`
	Environment       []string          `json:"environment,omitempty"` // top-level entries, then the service's, as Convox combines them
	GrpcHealthEnabled bool              `json:"grpcHealthEnabled,omitempty"`
	Health            Health            `json:"health"`
	Image             string            `json:"image,omitempty"`
	Init              bool              `json:"init"`
	Internal          bool              `json:"internal"`
	InternalRouter    bool              `json:"internalRouter"`
	Labels            map[string]string `json:"labels,omitempty"` // the service's labels plus top-level ones it does not set
	Port              Port              `json:"port"`
	Ports             []PortProtocol    `json:"ports,omitempty"`
	Privileged        bool              `json:"privileged"`
	Resources         []string          `json:"resources,omitempty"`
	Scale             Scale             `json:"scale"`
	Singleton         bool              `json:"singleton"`
	Sticky            bool              `json:"sticky"`
	Termination       Termination       `json:"termination"`
	Test              string            `json:"test,omitempty"`
	Timeout           int               `json:"timeout"`
	TLS               TLS               `json:"tls"`
	Volumes           []string          `json:"volumes,omitempty"`
	Whitelist         string            `json:"whitelist,omitempty"`

	// Extra holds the recognised fields the build does not use
	// (annotations, certificate, configMounts, ...) as written.
	Extra map[string]Raw `json:"-"`

	// Line and Col are where the service's name is in convox.yml.
	Line int `json:"-"`
	Col  int `json:"-"`

	// own is what the service itself sets, for writing it back.
	ownEnv    []string
	ownEnvPos []Position
	ownLabels map[string]string
	set       map[string]bool     // dotted paths given in the file ("scale.count", "init")
	pos       map[string]Position // where dotted paths are
}

// Build says how a service's image is built. Path and Manifest are empty
// for a service that uses an image.
type Build struct {
	// Path is the build context relative to the source root; Convox's
	// default is ".".
	Path string `json:"path,omitempty"`
	// Manifest is the Dockerfile relative to Path; default "Dockerfile".
	Manifest string `json:"manifest,omitempty"`
	// Args are build arguments; Convox ignores them, this project passes
	// them to the build (see BuildArgs). A value-less entry takes its
	// value from the app environment.
	Args []string `json:"args,omitempty"`
	// Target is the Dockerfile stage to build; empty means the last.
	Target string `json:"target,omitempty"`
}

// Deployment bounds the percentage of healthy processes during a rollout.
type Deployment struct {
	Minimum int `json:"minimum"`
	Maximum int `json:"maximum"`
}

// Health is the HTTP health check.
type Health struct {
	Disable  bool   `json:"disable,omitempty"`
	Grace    int    `json:"grace"`
	Interval int    `json:"interval"`
	Path     string `json:"path"`
	Timeout  int    `json:"timeout"`
}

// Port is the port a service listens on, with its scheme.
type Port struct {
	Port   int    `json:"port,omitempty"`
	Scheme string `json:"scheme,omitempty"`
}

// PortProtocol is an extra port from ports:.
type PortProtocol struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

// Scale is a service's process count and size. Fields Convox reads but the
// build does not use (gpu, limit, targets, keda, vpa, autoscale) are in
// Extra.
type Scale struct {
	Count  ScaleCount     `json:"count"`
	Cpu    int            `json:"cpu"`
	Memory int            `json:"memory"`
	Extra  map[string]Raw `json:"-"`
}

// ScaleCount is a process count range; Min == Max means a fixed count.
type ScaleCount struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// Termination is the grace period, in seconds, before a process is killed.
type Termination struct {
	Grace int `json:"grace"`
}

// TLS holds the TLS settings of a service's load balancer.
type TLS struct {
	Redirect bool `json:"redirect"`
}

// Resource is an entry of resources:.
type Resource struct {
	Name    string            `json:"name"`
	Type    string            `json:"type"`
	Image   string            `json:"image,omitempty"`
	Options map[string]string `json:"options,omitempty"`
	Line    int               `json:"-"`
	Col     int               `json:"-"`
}

// Timer is an entry of timers:.
type Timer struct {
	Name          string `json:"name"`
	Command       string `json:"command,omitempty"`
	Schedule      string `json:"schedule"`
	Service       string `json:"service"`
	Concurrency   string `json:"concurrency,omitempty"`
	ParallelCount int    `json:"parallelCount,omitempty"`
	Annotations   Raw    `json:"annotations,omitzero"`
	Line          int    `json:"-"`
	Col           int    `json:"-"`
	pos           map[string]Position
}

// Balancer is an entry of balancers:, a custom load balancer.
type Balancer struct {
	Name        string         `json:"name"`
	Annotations Raw            `json:"annotations,omitzero"`
	Ports       []BalancerPort `json:"ports,omitempty"`
	Service     string         `json:"service,omitempty"`
	Whitelist   []string       `json:"whitelist,omitempty"`
	Line        int            `json:"-"`
	Col         int            `json:"-"`
	pos         map[string]Position
}

// BalancerPort forwards Source on the balancer to Target on the service.
type BalancerPort struct {
	Source   int    `json:"source"`
	Protocol string `json:"protocol,omitempty"`
	Target   int    `json:"port"`
}

// Raw is a YAML value kept as written. The zero Raw is absent.
type Raw struct {
	Node *yaml.Node
}

// IsZero reports whether the value is absent.
func (r Raw) IsZero() bool { return r.Node == nil }

// Service returns the service called name, or nil.
func (m *Manifest) Service(name string) *Service {
	for _, s := range m.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// ServiceNames returns the services' names in file order.
func (m *Manifest) ServiceNames() []string {
	names := make([]string, len(m.Services))
	for i, s := range m.Services {
		names[i] = s.Name
	}
	return names
}

// Dockerfile returns the service's Dockerfile relative to the source root,
// in slash form, or "" for an image service.
func (s *Service) Dockerfile() string {
	if s.Build.Path == "" {
		return ""
	}
	return cleanJoin(s.Build.Path, s.Build.Manifest)
}

// position returns where the dotted path is, or the service's name.
func (s *Service) position(path string) Position {
	if p, ok := s.pos[path]; ok {
		return p
	}
	return Position{s.Line, s.Col}
}
