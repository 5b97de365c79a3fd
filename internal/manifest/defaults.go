package manifest

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// Convox's defaults, in one place.
const (
	DefaultBuildPath         = "."
	DefaultDockerfile        = "Dockerfile"
	DefaultCPU               = 250
	DefaultMemory            = 512
	DefaultDrain             = 30
	DefaultHealthPath        = "/"
	DefaultHealthInterval    = 5
	DefaultTerminationGrace  = 30
	DefaultTimeout           = 60
	DefaultDeploymentMinimum = 50
	DefaultDeploymentMaximum = 200
	// Agents and singletons replace their one process: 0% to 100%.
	DefaultSingleMinimum = 0
	DefaultSingleMaximum = 100
	// DefaultAutoscaleMax is the count maximum when autoscale is set and
	// no maximum is.
	DefaultAutoscaleMax = 10
)

// applyDefaults gives every service Convox's defaults (ApplyDefaults,
// ApplyCompatibility, CombineEnv and CombineLabels in Convox).
func (m *Manifest) applyDefaults(d *decoder) {
	for _, s := range m.Services {
		s.defaults(d)
		s.Environment = append(append([]string(nil), m.Environment...), s.ownEnv...)
		if len(m.Labels) > 0 || len(s.ownLabels) > 0 {
			s.Labels = map[string]string{}
			for k, v := range m.Labels {
				s.Labels[k] = v
			}
			for k, v := range s.ownLabels {
				s.Labels[k] = v
			}
		}
	}
	for _, t := range m.Timers {
		// Convox v3 takes five cron fields and reads v2's ? as *.
		parts := strings.Fields(t.Schedule)
		if len(parts) > 5 {
			parts = parts[:5]
		}
		for i := range parts {
			if parts[i] == "?" {
				parts[i] = "*"
			}
		}
		t.Schedule = strings.Join(parts, " ")
	}
}

func (s *Service) defaults(d *decoder) {
	if s.Image != "" && (s.Build.Path != "" || s.Build.Manifest != "" || len(s.Build.Args) > 0 || s.Build.Target != "") {
		d.add(Warning, s.position("build"), "service %s: build is ignored because image is set", s.Name)
	}
	if s.Image != "" {
		s.Build = Build{}
	} else {
		if s.Build.Path == "" {
			s.Build.Path = DefaultBuildPath
		}
		if s.Build.Manifest == "" {
			s.Build.Manifest = DefaultDockerfile
		}
	}

	single := s.Agent || s.Singleton
	if !s.set["deployment.maximum"] {
		s.Deployment.Maximum = DefaultDeploymentMaximum
		if single {
			s.Deployment.Maximum = DefaultSingleMaximum
		}
	}
	if !s.set["deployment.minimum"] {
		s.Deployment.Minimum = DefaultDeploymentMinimum
		if single {
			s.Deployment.Minimum = DefaultSingleMinimum
		}
	}
	if s.Drain == 0 {
		s.Drain = DefaultDrain
	}
	if s.Health.Path == "" {
		s.Health.Path = DefaultHealthPath
	}
	if s.Health.Interval == 0 {
		s.Health.Interval = DefaultHealthInterval
	}
	if s.Health.Grace == 0 {
		s.Health.Grace = s.Health.Interval
	}
	if s.Health.Timeout == 0 {
		s.Health.Timeout = s.Health.Interval - 1
	}
	if !s.set["init"] {
		s.Init = true
	}
	if s.Port.Port > 0 && s.Port.Scheme == "" {
		s.Port.Scheme = "http"
	}
	s.scaleDefaults()
	if !s.set["termination.grace"] {
		s.Termination.Grace = DefaultTerminationGrace
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if !s.set["tls.redirect"] {
		s.TLS.Redirect = true
	}
}

func (s *Service) scaleDefaults() {
	sc := &s.Scale
	min, hasMin := rawInt(sc.Extra["min"], "")
	max, hasMax := rawInt(sc.Extra["max"], "")
	autoscale := autoscaleEnabled(sc.Extra["autoscale"])
	switch {
	case hasMin && hasMax:
		sc.Count = ScaleCount{Min: min, Max: max}
	case hasMin:
		sc.Count.Min = min
		if autoscale {
			if sc.Count.Max == 0 {
				sc.Count.Max = DefaultAutoscaleMax
			}
		} else {
			sc.Count.Max = min
		}
	case hasMax:
		sc.Count.Max = max
		if sc.Count.Min == 0 && !autoscale {
			sc.Count.Min = max
		}
	}
	if autoscale && sc.Count.Max == 0 {
		sc.Count.Max = DefaultAutoscaleMax
	}
	// Convox counts the scale attributes present: with none, the count is
	// 1; with some but no count (and no min, max or autoscale), also 1.
	attrs := 0
	for k := range s.set {
		if k == "scale" || strings.HasPrefix(k, "scale.") {
			attrs++
		}
	}
	if attrs == 0 || (!s.set["scale.count"] && attrs > 1 && !autoscale && !hasMin && !hasMax) {
		sc.Count = ScaleCount{Min: 1, Max: 1}
	}
	if gpu, _ := rawInt(sc.Extra["gpu"], "count"); gpu == 0 {
		if sc.Cpu == 0 {
			sc.Cpu = DefaultCPU
			if l, _ := rawInt(sc.Extra["limit"], "cpu"); l > 0 {
				sc.Cpu = l
			}
		}
		if sc.Memory == 0 {
			sc.Memory = DefaultMemory
			if l, _ := rawInt(sc.Extra["limit"], "memory"); l > 0 {
				sc.Memory = l
			}
		}
	}
}

// rawInt reads an integer from a raw value, or from its key when the value
// is a mapping and key is not empty. A bare integer counts for any key.
func rawInt(r Raw, key string) (int, bool) {
	n := r.Node
	if n != nil && n.Kind == yaml.MappingNode && key != "" {
		var v *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				v = n.Content[i+1]
			}
		}
		n = v
	}
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		return 0, false
	}
	var i int
	if err := n.Decode(&i); err != nil {
		return 0, false
	}
	return i, true
}
