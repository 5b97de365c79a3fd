package manifest

import (
	"net"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// nameRE is Convox's rule for service, resource and timer names.
var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

const validName = "must contain only lowercase alphanumeric and dashes"

// validate reports what Convox's Validate reports, with Convox's wording
// (see also convox_checks.go), plus the checks of this project (build
// paths, required environment when the environment is known).
func (m *Manifest) validate(d *decoder) {
	services := map[string]bool{}
	for _, s := range m.Services {
		services[s.Name] = true
	}
	resources := map[string]bool{}
	for _, r := range m.Resources {
		resources[r.Name] = true
	}
	configs := m.configIDs()
	m.validateBudget(d)

	for _, b := range m.Balancers {
		at := Position{b.Line, b.Col}
		if len(b.Ports) == 0 {
			d.add(Error, at, "balancer %s has no ports", b.Name)
		}
		if b.Service == "" {
			d.add(Error, at, "balancer %s has blank service", b.Name)
		} else if !services[b.Service] {
			d.add(Error, b.pos["service"], "balancer %s refers to unknown service %s", b.Name, b.Service)
		}
		for i, w := range b.Whitelist {
			if _, _, err := net.ParseCIDR(w); err != nil {
				d.add(Error, b.pos["whitelist."+strconv.Itoa(i)], "balancer %s whitelist %s is not a valid cidr range", b.Name, w)
			}
		}
	}

	for _, r := range m.Resources {
		at := Position{r.Line, r.Col}
		if !nameRE.MatchString(r.Name) {
			d.add(Error, at, "resource name %s invalid, %s", r.Name, validName)
		}
		if strings.TrimSpace(r.Type) == "" {
			d.add(Error, at, "resource %q has blank type", r.Name)
		}
	}

	for _, s := range m.Services {
		at := Position{s.Line, s.Col}
		if !nameRE.MatchString(s.Name) {
			d.add(Error, at, "service name %s invalid, %s", s.Name, validName)
		}
		if s.Deployment.Minimum < 0 {
			d.add(Error, s.position("deployment.minimum"), "service %s deployment minimum can not be less than 0", s.Name)
		}
		if s.Deployment.Minimum > 100 {
			d.add(Error, s.position("deployment.minimum"), "service %s deployment minimum can not be greater than 100", s.Name)
		}
		if s.Deployment.Maximum < 100 {
			d.add(Error, s.position("deployment.maximum"), "service %s deployment maximum can not be less than 100", s.Name)
		}
		if s.Deployment.Maximum > 200 {
			d.add(Error, s.position("deployment.maximum"), "service %s deployment maximum can not be greater than 200", s.Name)
		}
		if s.Internal && s.InternalRouter {
			d.add(Error, s.position("internalRouter"), "service %s can not have both internal and internalRouter set as true", s.Name)
		}
		for i, r := range s.Resources {
			name, _, _ := strings.Cut(r, ":")
			if !resources[name] {
				d.add(Error, s.position("resources."+strconv.Itoa(i)), "service %s references a resource that does not exist: %s", s.Name, name)
			}
		}
		if s.Scale.Extra != nil {
			if l, _ := rawInt(s.Scale.Extra["limit"], "cpu"); l > 0 && l < s.Scale.Cpu {
				d.add(Error, s.position("scale.limit"), "cpu limit can not be less cpu request")
			}
			if l, _ := rawInt(s.Scale.Extra["limit"], "memory"); l > 0 && l < s.Scale.Memory {
				d.add(Error, s.position("scale.limit"), "memory limit can not be less memory request")
			}
		}
		m.validateConvoxService(d, s, configs)
		s.validateBuild(d)
		if m.env != nil {
			if _, err := m.serviceEnvironment(s, m.env); err != nil {
				d.problems = append(d.problems, err...)
			}
		}
	}

	for _, t := range m.Timers {
		at := Position{t.Line, t.Col}
		if !nameRE.MatchString(t.Name) {
			d.add(Error, at, "timer name %s invalid, %s", t.Name, validName)
		}
		if !services[t.Service] {
			p, ok := t.pos["service"]
			if !ok {
				p = at
			}
			d.add(Error, p, "timer %s references a service that does not exist: %s", t.Name, t.Service)
		}
		if strings.Contains(t.Schedule, "?") {
			d.add(Error, t.pos["schedule"], "timer %s invalid, schedule cannot contain ?", t.Name)
		}
	}
}

// validateBuild checks that the build context stays inside the source
// directory and the Dockerfile inside the build context.
func (s *Service) validateBuild(d *decoder) {
	if s.Image != "" {
		return
	}
	p, mf := s.Build.Path, s.Build.Manifest
	at := s.position("build.path")
	switch {
	case strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`) || (len(p) > 1 && p[1] == ':'):
		d.add(Error, at, "service %s: build path %q is absolute; it must be relative to the directory of convox.yml", s.Name, p)
		return
	case escapes(p):
		d.add(Error, at, "service %s: build path %q is outside the source directory", s.Name, p)
		return
	}
	at = s.position("build.manifest")
	switch {
	case strings.HasPrefix(mf, "/") || strings.HasPrefix(mf, `\`):
		d.add(Error, at, "service %s: build manifest %q is absolute; it must be relative to the build path %q", s.Name, mf, p)
	case escapes(mf):
		d.add(Error, at, "service %s: Dockerfile %q is outside the build path %q", s.Name, mf, p)
	}
}

// escapes reports whether a relative slash path leaves its base.
func escapes(p string) bool {
	c := path.Clean(strings.ReplaceAll(p, `\`, "/"))
	return c == ".." || strings.HasPrefix(c, "../")
}

// cleanJoin joins relative slash paths and cleans the result.
func cleanJoin(elem ...string) string {
	return path.Clean(path.Join(elem...))
}
