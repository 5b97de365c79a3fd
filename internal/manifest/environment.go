package manifest

import (
	"fmt"
	"sort"
	"strings"
)

// ServiceEnvironment returns the environment Convox gives a service: the
// top-level environment entries, then the service's, resolved against the
// app environment env. An entry KEY takes env[KEY] and is required; KEY=x
// takes env[KEY] when set, else x; * takes all of env. Missing required
// keys make a Problems error "required env: A, B" (sorted).
func (m *Manifest) ServiceEnvironment(service string, env map[string]string) (map[string]string, error) {
	s := m.Service(service)
	if s == nil {
		return nil, m.unknownService(service)
	}
	out, ps := m.serviceEnvironment(s, env)
	if ps != nil {
		return out, ps
	}
	return out, nil
}

func (m *Manifest) serviceEnvironment(s *Service, env map[string]string) (map[string]string, Problems) {
	out := map[string]string{}
	var missing []string
	var at Position
	positions := append(append([]Position(nil), m.envPos...), s.ownEnvPos...)
	for i, e := range s.Environment {
		key, def, hasDefault := strings.Cut(e, "=")
		switch {
		case hasDefault:
			if v, ok := env[key]; ok {
				out[key] = v
			} else {
				out[key] = def
			}
		case key == "*":
			for k, v := range env {
				out[k] = v
			}
		default:
			v, ok := env[key]
			if !ok {
				if len(missing) == 0 && i < len(positions) {
					at = positions[i]
				}
				missing = append(missing, key)
			}
			out[key] = v
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	sort.Strings(missing)
	if at == (Position{}) {
		at = Position{s.Line, s.Col}
	}
	return out, Problems{{File: m.File, Line: at.Line, Col: at.Col, Severity: Error, Message: fmt.Sprintf("required env: %s", strings.Join(missing, ", "))}}
}

func (m *Manifest) unknownService(name string) error {
	names := m.ServiceNames()
	sort.Strings(names)
	if len(names) == 0 {
		return fmt.Errorf("no such service: %s (%s has no services)", name, m.File)
	}
	return fmt.Errorf("no such service: %s (%s has: %s)", name, m.File, strings.Join(names, ", "))
}
