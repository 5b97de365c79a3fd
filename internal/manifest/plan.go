package manifest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
)

// PlanOptions says what to plan. The zero value plans every service with
// the environment given to Parse.
type PlanOptions struct {
	// Services to build; all of them when empty.
	Services []string
	// Args are build arguments from the caller; they win over build.args
	// and the environment.
	Args map[string]string
	// Env is the app environment; when nil, the one given to Parse (an
	// empty one if none was).
	Env map[string]string
	// Development builds the stage named "development" of each Dockerfile
	// that has one (FROM ... AS development), as convox start does.
	Development bool
}

// Plan is what to build: each unique Dockerfile build once, with the
// services that share it, and the services that use an image.
type Plan struct {
	Builds []BuildSpec
	Images []ImageService
}

// BuildSpec is one Dockerfile build.
type BuildSpec struct {
	// Context is the build context relative to the source root, in slash
	// form ("." for the root).
	Context string
	// Dockerfile is relative to the source root, in slash form.
	Dockerfile string
	// Target is the stage to build; empty for the last one.
	Target string
	// Args are the build arguments.
	Args map[string]string
	// Services built by this spec, sorted.
	Services []string
	// Line is the convox.yml line of the first of Services.
	Line int
}

// ImageService is a service that uses a prebuilt image.
type ImageService struct {
	Service string
	Image   string
	Line    int
}

// Plan reads each selected service's Dockerfile under srcDir (for its ARG
// names and stages) and returns the builds to run, sorted by their first
// service, and the image services, sorted by name. Every problem found is
// returned, joined: unknown services, missing Dockerfiles ("no such file:
// api/Dockerfile (service api, convox.yml:7)"), required environment.
func (m *Manifest) Plan(srcDir string, opts PlanOptions) (*Plan, error) {
	services, err := m.selectServices(opts.Services)
	if err != nil {
		return nil, err
	}
	env := opts.Env
	if env == nil {
		env = m.env
	}
	root, err := os.OpenRoot(srcDir)
	if err != nil {
		return nil, fmt.Errorf("opening source directory: %w", err)
	}
	defer root.Close()

	var errs []error
	plan := &Plan{}
	byKey := map[string]int{}
	dockerfiles := map[string]*dockerfile{}
	for _, s := range services {
		if s.Image != "" {
			plan.Images = append(plan.Images, ImageService{Service: s.Name, Image: s.Image, Line: s.Line})
			continue
		}
		where := fmt.Sprintf("service %s, %s:%d", s.Name, m.File, s.Line)
		if escapes(s.Build.Path) || escapes(s.Build.Manifest) || strings.HasPrefix(s.Build.Path, "/") || strings.HasPrefix(s.Build.Manifest, "/") {
			errs = append(errs, fmt.Errorf("build path %s is outside the source directory (%s)", s.Dockerfile(), where))
			continue
		}
		senv, ps := m.serviceEnvironment(s, env)
		if ps != nil {
			errs = append(errs, fmt.Errorf("%s (%s)", ps[0].Message, where))
			continue
		}
		name := s.Dockerfile()
		df, ok := dockerfiles[name]
		if !ok {
			df, err = readDockerfile(root, name)
			if err != nil {
				errs = append(errs, fmt.Errorf("%w (%s)", err, where))
				continue
			}
			dockerfiles[name] = df
		}
		spec := BuildSpec{
			Context:    cleanJoin(s.Build.Path),
			Dockerfile: name,
			Target:     s.Build.Target,
			Args:       buildArgs(df, senv, s.Build.Args, opts.Args),
			Services:   []string{s.Name},
			Line:       s.Line,
		}
		if spec.Target == "" && opts.Development && df.hasStage("development") {
			spec.Target = "development"
		}
		key := spec.key()
		if i, ok := byKey[key]; ok {
			plan.Builds[i].Services = append(plan.Builds[i].Services, s.Name)
			continue
		}
		byKey[key] = len(plan.Builds)
		plan.Builds = append(plan.Builds, spec)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for i := range plan.Builds {
		sort.Strings(plan.Builds[i].Services)
		plan.Builds[i].Line = m.Service(plan.Builds[i].Services[0]).Line
	}
	sort.Slice(plan.Builds, func(i, j int) bool { return plan.Builds[i].Services[0] < plan.Builds[j].Services[0] })
	sort.Slice(plan.Images, func(i, j int) bool { return plan.Images[i].Service < plan.Images[j].Service })
	return plan, nil
}

// selectServices returns the named services in file order, or all.
func (m *Manifest) selectServices(names []string) ([]*Service, error) {
	if len(names) == 0 {
		return m.Services, nil
	}
	want := map[string]bool{}
	var errs []error
	for _, n := range names {
		if m.Service(n) == nil {
			errs = append(errs, m.unknownService(n))
		}
		want[n] = true
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var out []*Service
	for _, s := range m.Services {
		if want[s.Name] {
			out = append(out, s)
		}
	}
	return out, nil
}

// key identifies a build: same context, Dockerfile, target and arguments.
func (b BuildSpec) key() string {
	keys := make([]string, 0, len(b.Args))
	for k := range b.Args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%q %q %q", b.Context, b.Dockerfile, b.Target)
	for _, k := range keys {
		fmt.Fprintf(&sb, " %q=%q", k, b.Args[k])
	}
	return sb.String()
}

// buildArgs is the service's environment filtered to the Dockerfile's ARG
// names, then build.args, then the caller's arguments.
func buildArgs(df *dockerfile, env map[string]string, manifestArgs []string, caller map[string]string) map[string]string {
	args := map[string]string{}
	for _, name := range df.args {
		if v, ok := env[name]; ok {
			args[name] = v
		}
	}
	for _, a := range manifestArgs {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			if v, ok = env[k]; !ok {
				continue
			}
		}
		if k != "" {
			args[k] = v
		}
	}
	for k, v := range caller {
		args[k] = v
	}
	return args
}

// maxDockerfile bounds how much of a Dockerfile is read.
const maxDockerfile = 4 << 20

func readDockerfile(root *os.Root, name string) (*dockerfile, error) {
	f, err := root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no such file: %s", name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a Dockerfile", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxDockerfile))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return parseDockerfile(data), nil
}
