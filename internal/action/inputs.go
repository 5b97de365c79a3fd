package action

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	githubactions "github.com/sethvargo/go-githubactions"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/envconfig"
)

// InputError is a bad input: the step fails before anything is built.
type InputError struct {
	Input string
	Err   error
}

func (e *InputError) Error() string { return "input " + e.Input + ": " + e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func inputErrorf(input, format string, args ...any) error {
	return &InputError{Input: input, Err: fmt.Errorf(format, args...)}
}

// inputs are the action's inputs, read and checked; action.yml documents
// each.
type inputs struct {
	App              string
	Manifest         string
	WorkingDirectory string // relative to the workspace, cleaned, "" for the root
	Services         []string
	Repository       string
	Push             bool
	BuildArgs        map[string]string
	Secrets          map[string][]byte
	Env              map[string]string
	NoCache          bool
	Development      bool
	Description      string
	CacheFrom        string
	CacheTo          string
	RegistryUsername string
	RegistryPassword string
	DockerHubUser    string
	DockerHubPass    string
	BuildkitHost     string
	BuildkitTLSCA    string
	BuildkitTLSCert  string
	BuildkitTLSKey   string
	GitHubToken      string
	Checks           bool
	Export           string
	Summary          bool
}

// secretInputs are the inputs whose values are masked in the log before
// anything else is printed.
var secretInputs = []string{"registry-password", "docker-hub-password", "github-token"}

// masks returns every value to mask: the secret inputs and each secret's
// value, line by line (the runner masks a line at a time). A malformed
// secrets input still has its lines masked: they may be values.
func masks(a *githubactions.Action) []string {
	var out []string
	add := func(v string) {
		for _, l := range strings.Split(strings.ReplaceAll(v, "\r\n", "\n"), "\n") {
			if strings.TrimSpace(l) != "" {
				out = append(out, strings.TrimSpace(l))
			}
		}
	}
	for _, in := range secretInputs {
		add(a.GetInput(in))
	}
	secrets, err := secretValues(a.GetInput("secrets"))
	if err != nil {
		for _, l := range lines(a.GetInput("secrets")) {
			_, v, _ := strings.Cut(l, "=")
			add(v)
		}
		return out
	}
	for _, v := range secrets {
		add(v)
	}
	return out
}

// secretValues reads the secrets input: ID=VALUE lines, and for values of
// several lines (a PEM key) the runner's own heredoc form:
//
//	ID<<DELIMITER
//	line 1
//	line 2
//	DELIMITER
//
// A heredoc value keeps its lines, joined with \n and without a newline
// at the end. Errors name the line, never a value.
func secretValues(input string) (map[string]string, error) {
	out := map[string]string{}
	all := strings.Split(strings.ReplaceAll(input, "\r\n", "\n"), "\n")
	for n := 0; n < len(all); n++ {
		l := strings.TrimSpace(all[n])
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		var k, v string
		if id, delim, ok := strings.Cut(l, "<<"); ok && !strings.Contains(id, "=") {
			k, delim = strings.TrimSpace(id), strings.TrimSpace(delim)
			if delim == "" {
				return nil, inputErrorf("secrets", "line %d: %s<< needs a delimiter, such as %s<<EOF", n+1, k, k)
			}
			start, end := n+1, -1
			for j := start; j < len(all); j++ {
				if strings.TrimSpace(all[j]) == delim {
					end = j
					break
				}
			}
			if end < 0 {
				return nil, inputErrorf("secrets", "line %d: no line %q ends the value of %s", n+1, delim, k)
			}
			v = strings.Join(all[start:end], "\n")
			n = end
		} else {
			var found bool
			k, v, found = strings.Cut(l, "=")
			k = strings.TrimSpace(k)
			if !found {
				return nil, inputErrorf("secrets", "line %d: expected ID=VALUE or ID<<DELIMITER (the line is not shown: it may hold a secret)", n+1)
			}
		}
		if k == "" || strings.ContainsAny(k, " \t") {
			return nil, inputErrorf("secrets", "line %d: expected ID=VALUE or ID<<DELIMITER (the line is not shown: it may hold a secret)", n+1)
		}
		if _, dup := out[k]; dup {
			return nil, inputErrorf("secrets", "line %d: %s is given twice", n+1, k)
		}
		out[k] = v
	}
	return out, nil
}

// context is what the job says about the run, from the runner's
// environment and the event payload.
type runContext struct {
	Workspace            string
	Owner, Repo          string
	SHA                  string // the commit built (GITHUB_SHA)
	HeadSHA              string // the commit the check run reports on
	Actor                string
	APIURL, ServerURL    string
	RunID, RunAttempt    string
	EventName, EventPath string
	Subject              string // the head commit's subject or the pull request's title
	CacheURL, ResultsURL string
	RuntimeToken         string
}

func readContext(getenv func(string) string) (*runContext, error) {
	c := &runContext{
		Workspace: getenv("GITHUB_WORKSPACE"), SHA: getenv("GITHUB_SHA"), Actor: getenv("GITHUB_ACTOR"),
		APIURL: getenv("GITHUB_API_URL"), ServerURL: getenv("GITHUB_SERVER_URL"),
		RunID: getenv("GITHUB_RUN_ID"), RunAttempt: getenv("GITHUB_RUN_ATTEMPT"),
		EventName: getenv("GITHUB_EVENT_NAME"), EventPath: getenv("GITHUB_EVENT_PATH"),
	}
	gha := envconfig.GitHubActionsCache(getenv)
	c.CacheURL, c.ResultsURL, c.RuntimeToken = gha.URL, gha.URLV2, gha.Token
	if c.Workspace == "" {
		return nil, errors.New("GITHUB_WORKSPACE is not set: run this as a step of a GitHub Actions job, after actions/checkout")
	}
	if c.APIURL == "" {
		c.APIURL = "https://api.github.com"
	}
	if c.ServerURL == "" {
		c.ServerURL = "https://github.com"
	}
	if owner, repo, ok := strings.Cut(getenv("GITHUB_REPOSITORY"), "/"); ok {
		c.Owner, c.Repo = owner, repo
	}
	c.HeadSHA = c.SHA
	if c.EventPath != "" {
		if err := c.readEvent(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// readEvent takes from the event payload the pull request's head commit
// (check runs must be on it, not on the merge commit GITHUB_SHA names) and
// a subject for the build's description.
func (c *runContext) readEvent() error {
	data, err := os.ReadFile(c.EventPath)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("reading the event payload %s: %w", c.EventPath, err)
	}
	var ev struct {
		HeadCommit *struct {
			ID      string `json:"id"`
			Message string `json:"message"`
		} `json:"head_commit"`
		PullRequest *struct {
			Title string `json:"title"`
			Head  struct {
				SHA string `json:"sha"`
			} `json:"head"`
		} `json:"pull_request"`
		Repository *struct {
			Name  string `json:"name"`
			Owner struct {
				Login string `json:"login"`
			} `json:"owner"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return fmt.Errorf("reading the event payload %s: %w", c.EventPath, err)
	}
	if ev.Repository != nil && c.Owner == "" {
		c.Owner, c.Repo = ev.Repository.Owner.Login, ev.Repository.Name
	}
	switch {
	case ev.PullRequest != nil:
		c.Subject = ev.PullRequest.Title
		if ev.PullRequest.Head.SHA != "" {
			c.HeadSHA = ev.PullRequest.Head.SHA
		}
	case ev.HeadCommit != nil:
		c.Subject, _, _ = strings.Cut(ev.HeadCommit.Message, "\n")
	}
	return nil
}

// workflowRunURL is the page of the workflow run, for the check run's
// details link.
func (c *runContext) workflowRunURL() string {
	if c.Owner == "" || c.RunID == "" {
		return ""
	}
	u := strings.TrimSuffix(c.ServerURL, "/") + "/" + c.Owner + "/" + c.Repo + "/actions/runs/" + c.RunID
	if c.RunAttempt != "" && c.RunAttempt != "1" {
		u += "/attempts/" + c.RunAttempt
	}
	return u
}

func readInputs(a *githubactions.Action, rc *runContext) (*inputs, error) {
	in := &inputs{
		App: a.GetInput("app"), Manifest: a.GetInput("manifest"), Repository: a.GetInput("repository"),
		Description: a.GetInput("description"), CacheFrom: a.GetInput("cache-from"), CacheTo: a.GetInput("cache-to"),
		RegistryUsername: a.GetInput("registry-username"), RegistryPassword: a.GetInput("registry-password"),
		DockerHubUser: a.GetInput("docker-hub-username"), DockerHubPass: a.GetInput("docker-hub-password"),
		BuildkitHost: a.GetInput("buildkit-host"), BuildkitTLSCA: a.GetInput("buildkit-tls-ca-cert"),
		BuildkitTLSCert: a.GetInput("buildkit-tls-cert"), BuildkitTLSKey: a.GetInput("buildkit-tls-key"),
		GitHubToken: a.GetInput("github-token"), Export: a.GetInput("export"),
	}
	var err error
	bools := []struct {
		name string
		def  bool
		dst  *bool
	}{{"push", true, &in.Push}, {"development", false, &in.Development}, {"checks", true, &in.Checks}, {"summary", true, &in.Summary}}
	for _, b := range bools {
		if *b.dst, err = boolInput(a, b.name, b.def); err != nil {
			return nil, err
		}
	}
	noCache, err := boolInput(a, "no-cache", false)
	if err != nil {
		return nil, err
	}
	cached, err := boolInput(a, "cached", true)
	if err != nil {
		return nil, err
	}
	if a.GetInput("no-cache") != "" && a.GetInput("cached") != "" && noCache == cached {
		return nil, inputErrorf("cached", "%v contradicts no-cache: %v (cached: false means no-cache: true); give one of them", cached, noCache)
	}
	in.NoCache = noCache || !cached

	if in.WorkingDirectory, err = relativeDir("working-directory", a.GetInput("working-directory")); err != nil {
		return nil, err
	}
	if in.Manifest == "" {
		in.Manifest = "convox.yml"
	}
	if in.App == "" {
		in.App = strings.ToLower(rc.Repo)
		if in.App == "" {
			return nil, inputErrorf("app", "no app name, and GITHUB_REPOSITORY is not set to take the repository's name: give app")
		}
	}
	if in.Repository == "" {
		if rc.Owner == "" || rc.Repo == "" {
			return nil, inputErrorf("repository", "no image repository, and GITHUB_REPOSITORY is not set for the default ghcr.io/<owner>/<repo>: give repository")
		}
		in.Repository = strings.ToLower("ghcr.io/" + rc.Owner + "/" + rc.Repo)
	}
	for _, f := range strings.FieldsFunc(a.GetInput("services"), func(r rune) bool { return r == ',' || r == '\n' || r == ' ' || r == '\t' || r == '\r' }) {
		in.Services = append(in.Services, f)
	}
	if in.BuildArgs, err = keyValues(a, "build-args"); err != nil {
		return nil, err
	}
	if in.Env, err = keyValues(a, "env"); err != nil {
		return nil, err
	}
	secrets, err := secretValues(a.GetInput("secrets"))
	if err != nil {
		return nil, err
	}
	if len(secrets) > 0 {
		in.Secrets = map[string][]byte{}
		for k, v := range secrets {
			in.Secrets[k] = []byte(v)
		}
	}
	if (in.RegistryUsername == "") != (in.RegistryPassword == "") {
		return nil, inputErrorf("registry-username", "registry-username and registry-password go together: give both or neither")
	}
	if (in.DockerHubUser == "") != (in.DockerHubPass == "") {
		return nil, inputErrorf("docker-hub-username", "docker-hub-username and docker-hub-password go together: give both or neither")
	}
	if (in.BuildkitTLSCert == "") != (in.BuildkitTLSKey == "") {
		return nil, inputErrorf("buildkit-tls-cert", "buildkit-tls-cert and buildkit-tls-key go together: give both or neither")
	}
	if in.BuildkitHost == "" && (in.BuildkitTLSCA != "" || in.BuildkitTLSCert != "") {
		return nil, inputErrorf("buildkit-tls-cert", "TLS files need a tcp:// buildkit-host")
	}
	if in.Export != "" && !in.Push {
		return nil, inputErrorf("export", "an export holds the pushed images: it needs push: true")
	}
	return in, nil
}

// boolInput reads a YAML boolean input; def when it is empty.
func boolInput(a *githubactions.Action, name string, def bool) (bool, error) {
	v := a.GetInput(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(strings.ToLower(v))
	if err != nil {
		return false, inputErrorf(name, "%q is not a boolean: use true or false", v)
	}
	return b, nil
}

// lines splits a multiline input into its non-empty lines, without
// surrounding white space; lines starting with # are comments.
func lines(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// keyValues reads a multiline KEY=VALUE input. Errors name the line but
// never show a value (it may be a secret).
func keyValues(a *githubactions.Action, name string) (map[string]string, error) {
	out := map[string]string{}
	n := 0
	for _, l := range strings.Split(a.GetInput(name), "\n") {
		n++
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, inputErrorf(name, "line %d: expected KEY=VALUE (the line is not shown: it may hold a secret)", n)
		}
		if _, dup := out[k]; dup {
			return nil, inputErrorf(name, "line %d: %s is given twice", n, k)
		}
		out[k] = v
	}
	return out, nil
}

// relativeDir cleans a directory relative to the workspace and refuses one
// that leaves it.
func relativeDir(input, dir string) (string, error) {
	if dir == "" {
		return "", nil
	}
	d := path.Clean(strings.ReplaceAll(dir, "\\", "/"))
	if path.IsAbs(d) || d == ".." || strings.HasPrefix(d, "../") {
		return "", inputErrorf(input, "%q is outside the workspace: give a path relative to the repository root", dir)
	}
	if d == "." {
		return "", nil
	}
	return d, nil
}

// cacheFor turns cache-from and cache-to (BuildKit's syntax) into the
// engine's cache. The engine keeps one cache per service and uses one kind
// for both directions, so:
//
//   - neither given: the registry cache (<repository>:<service>.buildcache)
//     when the build pushes; otherwise gha when the runner's cache service
//     is there, else none;
//   - type=registry[,ref=REPOSITORY] (no tag: each service's cache is
//     REPOSITORY:<service>.buildcache), type=gha, type=local,src=DIR or
//     dest=DIR, type=inline, type=none; mode=max and ignore-error=true are
//     accepted (the engine always uses them);
//   - cache-from and cache-to, when both given, must name the same cache.
//
// Anything else is refused with an error naming the input.
func cacheFor(in *inputs, rc *runContext, workspace string) (build.Cache, error) {
	gha := build.Cache{Type: build.CacheGHA, GHAURL: rc.CacheURL, GHAURLV2: rc.ResultsURL, GHAToken: rc.RuntimeToken}
	if in.CacheFrom == "" && in.CacheTo == "" {
		switch {
		case in.Push:
			return build.Cache{Type: build.CacheRegistry}, nil
		case gha.Validate() == nil:
			return gha, nil
		default:
			return build.Cache{Type: build.CacheNone}, nil
		}
	}
	from, err := parseCacheSpec("cache-from", in.CacheFrom, workspace, gha)
	if err != nil {
		return build.Cache{}, err
	}
	to, err := parseCacheSpec("cache-to", in.CacheTo, workspace, gha)
	if err != nil {
		return build.Cache{}, err
	}
	switch {
	case in.CacheFrom == "":
		from = to
	case in.CacheTo == "":
		to = from
	}
	if from != to {
		return build.Cache{}, inputErrorf("cache-to", "%q and cache-from %q name different caches: this action imports and exports one cache per service; give the same cache (or only one of them)", in.CacheTo, in.CacheFrom)
	}
	if to.Type == build.CacheRegistry && !in.Push && to.Repository == "" {
		return build.Cache{}, inputErrorf("cache-to", "type=registry keeps the cache beside the images, which push: false does not push: give a ref, or another cache")
	}
	if to.Type == build.CacheGHA {
		if err := to.Validate(); err != nil {
			return build.Cache{}, inputErrorf("cache-to", "type=gha needs the runner's cache service (ACTIONS_RUNTIME_TOKEN and ACTIONS_RESULTS_URL or ACTIONS_CACHE_URL), which this job does not have")
		}
	}
	return to, nil
}

func parseCacheSpec(input, spec, workspace string, gha build.Cache) (build.Cache, error) {
	if spec == "" {
		return build.Cache{}, nil
	}
	attrs := map[string]string{}
	for _, f := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			if !strings.Contains(spec, "=") {
				// docker buildx's shorthand: a bare reference is type=registry,ref=...
				attrs["type"], attrs["ref"] = "registry", spec
				break
			}
			return build.Cache{}, inputErrorf(input, "%q: expected key=value fields, such as type=registry,ref=ghcr.io/acme/cache", f)
		}
		attrs[k] = v
	}
	typ := attrs["type"]
	delete(attrs, "type")
	allowed := func(keys ...string) error {
		for k, v := range attrs {
			switch {
			case k == "mode" && v == "max", k == "ignore-error" && v == "true":
				continue
			}
			found := false
			for _, a := range keys {
				found = found || a == k
			}
			if !found {
				return inputErrorf(input, "type=%s: %s=%s is not supported here (this action sets mode=max and ignore-error=true itself); remove it", typ, k, v)
			}
		}
		return nil
	}
	switch typ {
	case "registry":
		if err := allowed("ref"); err != nil {
			return build.Cache{}, err
		}
		ref := attrs["ref"]
		if ref != "" {
			last := ref[strings.LastIndex(ref, "/")+1:]
			if strings.ContainsAny(last, ":@") {
				return build.Cache{}, inputErrorf(input, "type=registry,ref=%s: give a repository without a tag; each service's cache goes to %s:<service>.buildcache", ref, strings.SplitN(ref, "@", 2)[0])
			}
		}
		return build.Cache{Type: build.CacheRegistry, Repository: ref}, nil
	case "gha":
		if err := allowed(); err != nil {
			return build.Cache{}, err
		}
		return gha, nil
	case "local":
		if err := allowed("src", "dest"); err != nil {
			return build.Cache{}, err
		}
		dir := attrs["src"]
		if input == "cache-to" || dir == "" {
			dir = attrs["dest"]
		}
		if dir == "" {
			return build.Cache{}, inputErrorf(input, "type=local needs src=DIR (cache-from) or dest=DIR (cache-to)")
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(workspace, dir)
		}
		return build.Cache{Type: build.CacheLocal, Dir: dir}, nil
	case "inline":
		if err := allowed(); err != nil {
			return build.Cache{}, err
		}
		return build.Cache{Type: build.CacheInline}, nil
	case "none":
		return build.Cache{Type: build.CacheNone}, nil
	case "":
		return build.Cache{}, inputErrorf(input, "%q has no type=: use type=registry, gha, local, inline or none", spec)
	default:
		return build.Cache{}, inputErrorf(input, "type=%s is not supported: use type=registry, gha, local, inline or none", typ)
	}
}
