package action_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/action"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

var buildID = regexp.MustCompile(`^B[A-Z]{10}$`)

// app is a two-spec app under services/shop (working-directory): web and
// worker share a Dockerfile whose RUN tries to issue workflow commands;
// api has its own.
func app(t *testing.T, registry string) map[string]string {
	return map[string]string{
		"services/shop/convox.yml": `environment:
  - GREETING=hello
services:
  web:
    build: .
    port: 3000
  worker:
    build: .
    command: worker
  api:
    build: api
    port: 4000
`,
		"services/shop/Dockerfile": `FROM busybox
ARG GREETING
RUN echo "::set-output name=build-id::X" && echo "::add-mask::hello" && echo "::error file=convox.yml,line=1::injected" && echo "##[add-mask]world" && echo "::endgroup::" && echo "::stop-commands::guess" && echo "::set-output name=release-id::Y" && sleep 1
RUN echo "$GREETING" > /greeting
CMD ["cat", "/greeting"]
`,
		"services/shop/api/Dockerfile": "FROM busybox\nRUN echo api > /api\nENTRYPOINT [\"httpd\", \"-f\"]\n",
	}
}

func TestBuildOnPushReportsEverythingGitHubAndTheNextStepsGet(t *testing.T) {
	env := testenv.Build(t)
	j := newJob(t, app(t, env.Registry), "push/with-new-branch.payload.json")
	j.input("working-directory", "services/shop")
	j.input("app", "shop")
	j.input("repository", env.Registry+"/action/shop")
	j.input("buildkit-host", env.BuildkitAddr)
	j.input("build-args", "EXTRA=1\n\n# a comment\nOTHER=two")
	j.input("secrets", "NPM_TOKEN=npm_s3cr3t_value\nPEM_LINE=-----BEGIN KEY-----")
	j.input("export", "out/shop.tgz")
	j.run(action.Config{})
	if j.err != nil {
		t.Fatalf("action failed: %v\n%s", j.err, j.stdout.String())
	}

	// Outputs, parsed as the runner parses them.
	out := j.outputs()
	id := out["build-id"]
	if !buildID.MatchString(id) {
		t.Fatalf("build-id = %q; outputs %v", id, out)
	}
	if !regexp.MustCompile(`^R[A-Z]{10}$`).MatchString(out["release-id"]) || out["release"] != out["release-id"] {
		t.Errorf("release-id %q, release %q", out["release-id"], out["release"])
	}
	var images map[string]string
	if err := json.Unmarshal([]byte(out["images"]), &images); err != nil {
		t.Fatalf("images output %q: %v", out["images"], err)
	}
	for _, svc := range []string{"api", "web", "worker"} {
		want := regexp.MustCompile("^" + regexp.QuoteMeta(env.Registry+"/action/shop:"+svc+"."+id) + "@sha256:[0-9a-f]{64}$")
		if !want.MatchString(images[svc]) {
			t.Errorf("images[%s] = %q", svc, images[svc])
		}
	}
	if !strings.Contains(out["metadata"], "\n") {
		t.Errorf("metadata is not the multiline JSON expected: %q", out["metadata"])
	}
	var meta map[string]action.ServiceMetadata
	if err := json.Unmarshal([]byte(out["metadata"]), &meta); err != nil {
		t.Fatalf("metadata output: %v\n%s", err, out["metadata"])
	}
	if m := meta["api"]; m.Entrypoint != "httpd -f" || m.TotalSteps == 0 || m.Duration <= 0 || images["api"] != m.Image+"@"+m.Digest {
		t.Errorf("metadata[api] = %+v", m)
	}
	if out["export-path"] != "out/shop.tgz" {
		t.Errorf("export-path = %q", out["export-path"])
	}
	if fi, err := os.Stat(filepath.Join(j.workspace, "out", "shop.tgz")); err != nil || fi.Size() < 1000 {
		t.Errorf("export file: %v", err)
	}

	// The summary.
	sum := j.summaryText()
	for _, want := range []string{id, out["release-id"], "web", "worker", "api", images["api"][strings.Index(images["api"], "@")+1:]} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}

	// The log: masks first, a group per spec, progress, no injected command.
	cmds := j.commands()
	if len(cmds) == 0 || cmds[0].Name != "add-mask" {
		t.Fatalf("the first command is not a mask: %+v", cmds)
	}
	if !strings.HasPrefix(j.stdout.String(), "::add-mask::") {
		t.Errorf("something was printed before the masks:\n%.300s", j.stdout.String())
	}
	var masked []string
	for _, c := range j.commandsNamed("add-mask") {
		masked = append(masked, c.Message)
	}
	sort.Strings(masked)
	if want := []string{"-----BEGIN KEY-----", "ghs_jobtoken0123456789abcdef", "npm_s3cr3t_value"}; strings.Join(masked, "|") != strings.Join(want, "|") {
		t.Errorf("masks = %q, want exactly %q (the build must not add any)", masked, want)
	}
	for _, c := range cmds {
		switch c.Name {
		case "add-mask", "group", "endgroup":
		default:
			t.Errorf("unexpected workflow command %+v", c)
		}
	}
	groups := j.commandsNamed("group")
	if len(groups) != 2 || len(j.commandsNamed("endgroup")) != 2 {
		t.Errorf("groups %+v, want one per build spec", groups)
	}
	for _, g := range groups {
		if !strings.HasPrefix(g.Message, "api: built in ") && !strings.HasPrefix(g.Message, "web, worker: built in ") {
			t.Errorf("group title %q", g.Message)
		}
	}
	vis := j.visible()
	if !strings.Contains(vis, "::set-output name=build-id::X") {
		t.Errorf("the build's own output is missing from the log")
	}
	if !regexp.MustCompile(`(?m)^\[web, worker\] building for \d+s: #\d+ \[`).MatchString(vis) {
		t.Errorf("no progress line for web, worker while it built:\n%s", vis)
	}
	if strings.Contains(j.stdout.String(), "npm_s3cr3t_value") && strings.Count(j.stdout.String(), "npm_s3cr3t_value") != 1 {
		t.Errorf("a secret appears in the log beyond its mask")
	}

	// What GitHub got: one check run, created in progress on the pushed
	// commit, completed with success.
	reqs := j.gh.Requests()
	if len(reqs) < 2 {
		t.Fatalf("GitHub got %d requests: %+v", len(reqs), reqs)
	}
	create := reqs[0]
	if create.Method != "POST" || create.Path != "/repos/Codertocat/Hello-World/check-runs" {
		t.Fatalf("first request %s %s", create.Method, create.Path)
	}
	if got := create.Header.Get("Authorization"); got != "Bearer ghs_jobtoken0123456789abcdef" && got != "token ghs_jobtoken0123456789abcdef" {
		t.Errorf("Authorization %q", got)
	}
	wantCreate := map[string]any{
		"name": "convox build (shop)", "head_sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "status": "in_progress",
		"details_url": "https://github.com/Codertocat/Hello-World/actions/runs/7321", "external_id": id,
	}
	for k, v := range wantCreate {
		if create.Body[k] != v {
			t.Errorf("check run create: %s = %v, want %v", k, create.Body[k], v)
		}
	}
	last := reqs[len(reqs)-1]
	if last.Method != "PATCH" || last.Path != "/repos/Codertocat/Hello-World/check-runs/1001" {
		t.Fatalf("last request %s %s", last.Method, last.Path)
	}
	if last.Body["status"] != "completed" || last.Body["conclusion"] != "success" {
		t.Errorf("completion: status %v conclusion %v", last.Body["status"], last.Body["conclusion"])
	}
	checkRequests(t, reqs)
	for i, r := range reqs[1:] {
		if r.Method != "PATCH" || r.Path != last.Path {
			t.Errorf("unexpected request %s %s", r.Method, r.Path)
		}
		if i < len(reqs)-2 && r.Body["status"] != "in_progress" {
			t.Errorf("update before the end: status %v", r.Body["status"])
		}
	}
	output, _ := last.Body["output"].(map[string]any)
	if s, _ := output["summary"].(string); !strings.Contains(s, id) || !strings.Contains(s, out["release-id"]) {
		t.Errorf("check run summary lacks the IDs:\n%s", s)
	}
	if text, _ := output["text"].(string); !strings.Contains(text, "::set-output name=build-id::X") {
		t.Errorf("check run text lacks the log:\n%.500s", text)
	}
	for _, r := range reqs {
		if strings.Contains(string(r.Raw), "npm_s3cr3t_value") {
			t.Errorf("%s %s carries a secret", r.Method, r.Path)
		}
	}
}

// checkRequests checks GitHub's limits on every check-run request.
func checkRequests(t *testing.T, reqs []testenv.GitHubRequest) {
	t.Helper()
	for _, r := range reqs {
		output, _ := r.Body["output"].(map[string]any)
		for _, field := range []string{"summary", "text"} {
			if s, _ := output[field].(string); len([]rune(s)) > 65535 {
				t.Errorf("%s %s: output.%s has %d characters", r.Method, r.Path, field, len([]rune(s)))
			}
		}
		if anns, _ := output["annotations"].([]any); len(anns) > 50 {
			t.Errorf("%s %s: %d annotations in one request", r.Method, r.Path, len(anns))
		}
	}
}

func TestFailingRunAnnotatesTheDockerfileLineAndStillSetsBuildID(t *testing.T) {
	env := testenv.Build(t)
	j := newJob(t, map[string]string{
		"app/convox.yml": "services:\n  web:\n    build: .\n",
		"app/Dockerfile": "FROM busybox\nRUN echo fine\nRUN echo about to fail && \\\n    exit 3\n",
	}, "pull_request/opened.payload.json")
	j.env["GITHUB_SHA"] = "a5e1f6e3bfb0b48c4c8c0d0dae0bc1b9b6b6b6b6" // the merge commit
	j.input("working-directory", "app")
	j.input("repository", env.Registry+"/action/failing")
	j.input("buildkit-host", env.BuildkitAddr)
	j.run(action.Config{})
	var failed *action.Failed
	if !errors.As(j.err, &failed) {
		t.Fatalf("err = %v, want a failed build\n%s", j.err, j.stdout.String())
	}
	out := j.outputs()
	if !buildID.MatchString(out["build-id"]) {
		t.Errorf("build-id = %q, want it set on failure", out["build-id"])
	}
	if _, ok := out["release-id"]; ok {
		t.Errorf("release-id set for a failed build")
	}
	var found bool
	for _, c := range j.commandsNamed("error") {
		if c.Props["file"] == "app/Dockerfile" && c.Props["line"] == "3" {
			found = true
			if !strings.Contains(c.Message, "exit code: 3") {
				t.Errorf("annotation message %q", c.Message)
			}
		}
	}
	if !found {
		t.Errorf("no ::error at app/Dockerfile line 3: %+v", j.commands())
	}
	if !strings.Contains(j.summaryText(), "about to fail") {
		t.Errorf("summary lacks the failing step's last lines:\n%s", j.summaryText())
	}
	reqs := j.gh.Requests()
	create, last := reqs[0], reqs[len(reqs)-1]
	if create.Body["head_sha"] != "ec26c3e57ca3a959ca5aad62de7213c562f8c821" {
		t.Errorf("check run on %v, want the pull request's head commit", create.Body["head_sha"])
	}
	if last.Body["conclusion"] != "failure" {
		t.Errorf("conclusion %v", last.Body["conclusion"])
	}
	output, _ := last.Body["output"].(map[string]any)
	anns, _ := output["annotations"].([]any)
	if len(anns) != 1 || anns[0].(map[string]any)["path"] != "app/Dockerfile" || anns[0].(map[string]any)["start_line"] != float64(3) {
		t.Errorf("check run annotations %v", anns)
	}
	checkRequests(t, reqs)
}

func TestBadConvoxYmlAnnotatesTheLineAndStartsNoBuild(t *testing.T) {
	j := newJob(t, map[string]string{
		"convox.yml": "services:\n  web:\n    build: .\n    buidl: oops\n    port: notaport\n",
		"Dockerfile": "FROM busybox\n",
	}, "push/with-new-branch.payload.json")
	j.input("repository", "127.0.0.1:1/never")
	// Nothing listens here: a build that started would say so.
	j.input("buildkit-host", "unix://"+filepath.Join(t.TempDir(), "none.sock"))
	j.run(action.Config{})
	if j.err == nil {
		t.Fatal("a bad convox.yml did not fail the step")
	}
	if strings.Contains(j.stdout.String(), "buildkitd") {
		t.Errorf("the action reached for buildkitd:\n%s", j.stdout.String())
	}
	if out := j.outputs(); out["build-id"] != "" {
		t.Errorf("build-id %q set though no build started", out["build-id"])
	}
	lines := map[string]string{}
	for _, c := range j.commands() {
		if c.Props["file"] == "convox.yml" {
			lines[c.Props["line"]] = c.Name
		}
	}
	if lines["5"] != "error" {
		t.Errorf("annotations by line %v, want an error at line 5:\n%s", lines, j.stdout.String())
	}
	reqs := j.gh.Requests()
	last := reqs[len(reqs)-1]
	if last.Body["conclusion"] != "failure" {
		t.Errorf("check run conclusion %v", last.Body["conclusion"])
	}
	checkRequests(t, reqs)
}

func TestCheckRunRefusedFallsBackToAStatusAndTheBuildSucceeds(t *testing.T) {
	env := testenv.Build(t)
	for _, statusToo := range []bool{false, true} {
		j := newJob(t, map[string]string{
			"convox.yml": "services:\n  web:\n    build: .\n",
			"Dockerfile": "FROM busybox\nRUN echo ok\n",
		}, "pull_request/opened.payload.json")
		j.input("repository", env.Registry+"/action/fork")
		j.input("buildkit-host", env.BuildkitAddr)
		refused := testenv.GitHubResponse{Status: 403, Body: `{"message":"Resource not accessible by integration"}`}
		j.gh.Respond("POST", "/repos/Codertocat/Hello-World/check-runs", refused)
		if statusToo {
			j.gh.Respond("POST", "/repos/Codertocat/Hello-World/statuses/ec26c3e57ca3a959ca5aad62de7213c562f8c821", refused)
		}
		j.run(action.Config{})
		if j.err != nil {
			t.Fatalf("status refused too = %v: the build failed: %v\n%s", statusToo, j.err, j.stdout.String())
		}
		statuses := j.gh.RequestsTo("POST", "/repos/Codertocat/Hello-World/statuses/")
		if len(statuses) == 0 || statuses[0].Body["context"] != "convox build (hello-world)" {
			t.Fatalf("statuses %+v", statuses)
		}
		warnings := j.commandsNamed("warning")
		if statusToo {
			if len(warnings) != 1 || !strings.Contains(warnings[0].Message, "without a check run") {
				t.Errorf("warnings %+v, want one saying the build goes on without a check run", warnings)
			}
			continue
		}
		if last := statuses[len(statuses)-1]; last.Body["state"] != "success" {
			t.Errorf("last status %v", last.Body)
		}
		if len(warnings) != 0 {
			t.Errorf("warnings %+v", warnings)
		}
	}
}

func TestUnreachableBuildkitdFailsClearlyWithin30s(t *testing.T) {
	j := newJob(t, map[string]string{
		"convox.yml": "services:\n  web:\n    build: .\n",
		"Dockerfile": "FROM busybox\n",
	}, "push/with-new-branch.payload.json")
	sock := filepath.Join(t.TempDir(), "buildkitd.sock")
	j.input("repository", "127.0.0.1:1/unreachable")
	j.input("buildkit-host", "unix://"+sock)
	j.run(action.Config{})
	if j.err == nil {
		t.Fatal("no error")
	}
	if j.took > 30*time.Second {
		t.Errorf("took %s", j.took)
	}
	errs := j.commandsNamed("error")
	if len(errs) == 0 || !strings.Contains(errs[len(errs)-1].Message, sock) || !strings.Contains(errs[len(errs)-1].Message, "buildkit-host") {
		t.Errorf("errors %+v, want one naming buildkit-host and %s", errs, sock)
	}
	if out := j.outputs(); !buildID.MatchString(out["build-id"]) {
		t.Errorf("build-id %q", out["build-id"])
	}
}

func TestNoDockerSocketAndNoBuildkitHostSaysWhatToDo(t *testing.T) {
	j := newJob(t, map[string]string{
		"convox.yml": "services:\n  web:\n    build: .\n",
		"Dockerfile": "FROM busybox\n",
	}, "push/with-new-branch.payload.json")
	j.input("repository", "127.0.0.1:1/nodocker")
	sock := filepath.Join(t.TempDir(), "docker.sock")
	j.run(action.Config{DockerSocket: sock, BuildkitImage: "moby/buildkit:" + testenv.BuildkitVersion(t)})
	errs := j.commandsNamed("error")
	if j.err == nil || len(errs) == 0 {
		t.Fatalf("err %v, errors %+v", j.err, errs)
	}
	msg := errs[len(errs)-1].Message
	for _, want := range []string{sock, "Docker socket mounted", "give buildkit-host"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if j.took > 30*time.Second {
		t.Errorf("took %s", j.took)
	}
}

func TestBadInputsNameTheInput(t *testing.T) {
	cases := []struct{ input, value, want string }{
		{"push", "maybe", "input push: \"maybe\" is not a boolean"},
		{"build-args", "GOOD=1\nNOEQUALS", "input build-args: line 2: expected KEY=VALUE"},
		{"working-directory", "../elsewhere", "input working-directory"},
		{"cache-to", "type=s3,bucket=x", "input cache-to: type=s3 is not supported"},
		{"cache-from", "type=registry,ref=r.example/c:tag", "give a repository without a tag"},
		{"cache-to", "type=gha", "input cache-to: type=gha needs the runner's cache service"},
		{"cached", "false", "contradicts no-cache"},
	}
	for _, c := range cases {
		t.Run(c.input, func(t *testing.T) {
			j := newJob(t, map[string]string{"convox.yml": "services:\n  web:\n    build: .\n"}, "push/with-new-branch.payload.json")
			j.input("checks", "false")
			j.input(c.input, c.value)
			if c.input == "cached" {
				j.input("no-cache", "false")
			}
			j.run(action.Config{})
			errs := j.commandsNamed("error")
			if j.err == nil || len(errs) != 1 || !strings.Contains(errs[0].Message, c.want) {
				t.Errorf("err %v, errors %+v; want one containing %q", j.err, errs, c.want)
			}
			if strings.Contains(j.stdout.String(), "NOEQUALS") {
				t.Errorf("the bad line's content was printed")
			}
			if len(j.gh.Requests()) != 0 {
				t.Errorf("GitHub was called")
			}
		})
	}
}

// Many convox.yml warnings (unknown keys): the log shows ten annotations and a notice of
// how many more; the check run gets them all, 50 per request.
func TestManyAnnotationsTenInTheLogAllOnTheCheckRun(t *testing.T) {
	env := testenv.Build(t)
	var yml strings.Builder
	yml.WriteString("services:\n  web:\n    build: .\n")
	for i := range 56 {
		fmt.Fprintf(&yml, "    unknown%d: x\n", i)
	}
	j := newJob(t, map[string]string{"convox.yml": yml.String(), "Dockerfile": "FROM busybox\nCMD [\"true\"]\n"}, "push/with-new-branch.payload.json")
	j.input("repository", env.Registry+"/action/many")
	j.input("buildkit-host", env.BuildkitAddr)
	j.run(action.Config{})
	if j.err != nil {
		t.Fatalf("unknown keys failed the build: %v\n%s", j.err, j.stdout.String())
	}
	var fileAnnotations, notices []command
	for _, c := range j.commands() {
		switch {
		case c.Props["file"] != "":
			fileAnnotations = append(fileAnnotations, c)
		case c.Name == "notice":
			notices = append(notices, c)
		}
	}
	if len(fileAnnotations) != 10 {
		t.Errorf("%d annotations in the log, want 10", len(fileAnnotations))
	}
	if len(notices) != 1 || !strings.HasPrefix(notices[0].Message, "46 more annotations") {
		t.Errorf("notices %+v, want one saying 46 more", notices)
	}
	var total int
	var perRequest []int
	for _, r := range j.gh.RequestsTo("PATCH", "/repos/Codertocat/Hello-World/check-runs/") {
		output, _ := r.Body["output"].(map[string]any)
		anns, _ := output["annotations"].([]any)
		if len(anns) > 0 {
			perRequest = append(perRequest, len(anns))
		}
		total += len(anns)
	}
	if total != 56 || len(perRequest) != 2 || perRequest[0] != 50 {
		t.Errorf("check run annotations per request %v (total %d), want [50 6]", perRequest, total)
	}
	checkRequests(t, j.gh.Requests())
}

func TestDockerContainerHostWithoutTheContainerSaysSo(t *testing.T) {
	dd := testenv.Docker(t)
	j := newJob(t, map[string]string{
		"convox.yml": "services:\n  web:\n    build: .\n",
		"Dockerfile": "FROM busybox\n",
	}, "push/with-new-branch.payload.json")
	j.input("repository", "127.0.0.1:1/nocontainer")
	j.input("buildkit-host", "docker-container://no-such-buildkitd")
	j.run(action.Config{DockerSocket: dd.Socket})
	errs := j.commandsNamed("error")
	if j.err == nil || len(errs) == 0 || !strings.Contains(errs[len(errs)-1].Message, "buildkit-host docker-container://no-such-buildkitd: docker: inspecting container no-such-buildkitd: No such container") {
		t.Fatalf("err %v, errors %+v", j.err, errs)
	}
}

func TestPushFalseBuildsWithoutPushing(t *testing.T) {
	env := testenv.Build(t)
	j := newJob(t, map[string]string{
		"convox.yml": "services:\n  web:\n    build: .\n",
		"Dockerfile": "FROM busybox\nRUN echo unpushed > /x\n",
	}, "push/with-new-branch.payload.json")
	j.input("repository", env.Registry+"/action/unpushed")
	j.input("buildkit-host", env.BuildkitAddr)
	j.input("push", "false")
	j.input("checks", "false")
	j.run(action.Config{})
	if j.err != nil {
		t.Fatalf("%v\n%s", j.err, j.stdout.String())
	}
	out := j.outputs()
	var images map[string]string
	json.Unmarshal([]byte(out["images"]), &images)
	if !strings.Contains(images["web"], "@sha256:") {
		t.Fatalf("images %q", out["images"])
	}
	resp, err := http.Get("http://" + env.Registry + "/v2/action/unpushed/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the registry has the repository (HTTP %d): something was pushed", resp.StatusCode)
	}
	if strings.Contains(j.stdout.String(), "exporting cache") {
		t.Errorf("a cache was exported with push: false outside Actions")
	}
}
