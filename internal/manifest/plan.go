package manifest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/convox-build-action/convox-build-action/internal/buildkit/dockerfile"
)

// PlanOptions says what to plan. The zero value plans every service with
// the environment given to Parse.
type PlanOptions struct {
	// Services to build; all of them when empty.
	Services []string
	// Args are build arguments from the caller (Convox's --build-args);
	// they win over build.args and the app environment (see BuildArgs).
	Args map[string]string
	// Env is the whole app environment; when nil, the one given to Parse
	// (an empty one if none was).
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
	// Args are the build arguments, as BuildArgs computes them.
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
// names and stages, with BuildKit's own Dockerfile parser) and returns the
// builds to run, sorted by their first service, and the image services,
// sorted by name. Every problem found is returned, joined: unknown
// services, missing or unreadable Dockerfiles ("no such file:
// api/Dockerfile (service api, convox.yml:7)", "api/Dockerfile:3: unknown
// instruction: FORM (did you mean FROM?) (service api, convox.yml:7)"),
// required environment. As in Convox, the caller's build arguments count as
// app environment for required entries.
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
	dockerfiles := map[string]*dockerfile.Dockerfile{}
	for _, s := range services {
		if s.Image != "" {
			plan.Images = append(plan.Images, ImageService{Service: s.Name, Image: s.Image, Line: s.Line})
			continue
		}
		where := fmt.Sprintf("service %s, %s:%d", s.Name, m.File, s.Line)
		if badBuildPath(s) {
			errs = append(errs, fmt.Errorf("build path %s is outside the source directory (%s)", s.Dockerfile(), where))
			continue
		}
		if _, ps := m.serviceEnvironment(s, withArgs(env, opts.Args)); ps != nil {
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
			Args:       BuildArgs(df.Args, env, s.Build.Args, opts.Args),
			Services:   []string{s.Name},
			Line:       s.Line,
		}
		if spec.Target == "" && opts.Development && slices.Contains(df.Stages, "development") {
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

// badBuildPath reports whether a service's build context or Dockerfile
// leads out of the source directory (validation reports it).
func badBuildPath(s *Service) bool {
	return escapes(s.Build.Path) || escapes(s.Build.Manifest) || strings.HasPrefix(s.Build.Path, "/") || strings.HasPrefix(s.Build.Manifest, "/")
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

// BuildArgs computes the build arguments of one Dockerfile build, in this
// order, later ones winning:
//
//  1. for every name the Dockerfile declares with ARG (in any stage), the
//     value of that name in the whole app environment env, when it is
//     set there. This is Convox's rule (pkg/build, buildArgs): it is not
//     limited to the names a service lists under environment:, and a
//     service's environment: defaults (KEY=default) are not build
//     arguments, so the Dockerfile's own ARG default applies;
//  2. the service's build.args from convox.yml, which Convox ignores and
//     this project passes: KEY=value, or KEY alone for the app
//     environment's value of KEY (skipped when it has none);
//  3. the caller's build arguments (Convox's --build-args), passed as
//     given.
//
// Names from 2 and 3 are passed even when no ARG declares them (BuildKit
// then uses its predefined ones, such as HTTP_PROXY, and ignores others).
func BuildArgs(declared []string, env map[string]string, manifestArgs []string, caller map[string]string) map[string]string {
	args := map[string]string{}
	for _, name := range declared {
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

// withArgs is the app environment with the caller's build arguments added,
// as Convox merges them before it checks required environment.
func withArgs(env, args map[string]string) map[string]string {
	if len(args) == 0 {
		return env
	}
	out := make(map[string]string, len(env)+len(args))
	for k, v := range env {
		out[k] = v
	}
	for k, v := range args {
		out[k] = v
	}
	return out
}

// maxDockerfile bounds how much of a Dockerfile is read.
const maxDockerfile = 4 << 20

// readDockerfile reads and parses the Dockerfile at name (slash form,
// relative to root), refusing links that lead out of root. Its errors name
// the file: "no such file: api/Dockerfile", "api/Dockerfile:3: unknown
// instruction: FORM (did you mean FROM?)", "api/Dockerfile is empty: it
// has no instructions".
func readDockerfile(root *os.Root, name string) (*dockerfile.Dockerfile, error) {
	f, err := openNonBlocking(root, filepath.FromSlash(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no such file: %s", name)
	}
	if err != nil {
		if escapesRoot(err) {
			return nil, fmt.Errorf("%s is a link to outside the source directory; links must stay inside it", name)
		}
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a Dockerfile", name)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxDockerfile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(data) > maxDockerfile {
		return nil, fmt.Errorf("%s is larger than %d bytes; refusing to read it", name, maxDockerfile)
	}
	df, err := dockerfile.Parse(data)
	if err != nil {
		var de *dockerfile.Error
		switch {
		case errors.As(err, &de) && de.Message == "file with no instructions":
			return nil, fmt.Errorf("%s is empty: it has no instructions", name)
		case errors.As(err, &de) && de.Line > 0:
			return nil, &DockerfileError{File: name, Line: de.Line, Message: de.Message}
		case errors.As(err, &de):
			return nil, &DockerfileError{File: name, Message: de.Message}
		}
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return df, nil
}

// DockerfileError is a Dockerfile BuildKit would refuse, at a line of it.
type DockerfileError struct {
	File    string // relative to the source root, slash form
	Line    int    // 1-based; 0 when not about one line
	Message string
}

func (e *DockerfileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Message)
}
