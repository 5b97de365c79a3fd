package action_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/dockerbuildkit"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

// actionImage builds the action's image as the project's Dockerfile says,
// with the test buildkitd: its final stage ("action") on top of a build
// stage that holds the static binary built here (no golang image can be
// pulled), and loads it into dd. It returns the image's size in bytes.
func actionImage(t *testing.T, dd *testenv.DockerDaemon, ref string) int64 {
	t.Helper()
	stage := dd.BuildStage(t, testenv.StageImage{Stage: "action",
		Binaries: map[string]string{"convox-build-action": "./cmd/action"}, Dirs: []string{"out/tmp"}}, ref)
	if !strings.HasSuffix(strings.TrimSpace(mustReadDockerfile(t)), strings.TrimSpace(stage)) {
		t.Fatal("the action stage is not the Dockerfile's last stage: GitHub builds the last one")
	}
	out, err := dd.Run(context.Background(), "image", "inspect", "--format", "{{.Size}} {{json .Config.Entrypoint}}", ref)
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	var entrypoint string
	if _, err := fmt.Sscan(strings.TrimSpace(out), &size, &entrypoint); err != nil {
		t.Fatalf("image inspect: %q: %v", out, err)
	}
	if entrypoint != `["/convox-build-action"]` {
		t.Errorf("entrypoint %s", entrypoint)
	}
	return size
}

// containerStep runs the action image as GitHub's runner runs a container
// action: the workspace, home, workflow and file-command directories and
// the Docker socket mounted, INPUT_* and GITHUB_* passed by name.
func containerStep(t *testing.T, dd *testenv.DockerDaemon, image string, j *job) {
	t.Helper()
	host := filepath.Dir(j.workspace)
	for _, d := range []string{"home", "workflow"} {
		os.MkdirAll(filepath.Join(host, d), 0o755)
	}
	event, err := os.ReadFile(j.env["GITHUB_EVENT_PATH"])
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(host, "workflow", "event.json"), event, 0o644)
	env := map[string]string{}
	for k, v := range j.env {
		env[k] = v
	}
	env["HOME"] = "/github/home"
	env["GITHUB_WORKSPACE"] = "/github/workspace"
	env["GITHUB_EVENT_PATH"] = "/github/workflow/event.json"
	env["GITHUB_OUTPUT"] = "/github/file_commands/" + filepath.Base(j.output)
	env["GITHUB_STEP_SUMMARY"] = "/github/file_commands/" + filepath.Base(j.summary)
	env["RUNNER_TEMP"] = "/home/runner/work/_temp"
	args := []string{"--host", "unix://" + dd.Socket, "run", "--rm", "--workdir", "/github/workspace",
		"--label", "convox-build-action-test", "--network", "host",
		"-v", dd.Socket + ":/var/run/docker.sock",
		"-v", filepath.Join(host, "home") + ":/github/home",
		"-v", filepath.Join(host, "workflow") + ":/github/workflow",
		"-v", filepath.Dir(j.output) + ":/github/file_commands",
		"-v", j.workspace + ":/github/workspace"}
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	var cmdEnv []string
	for _, k := range names {
		args = append(args, "-e", k)
		cmdEnv = append(cmdEnv, k+"="+env[k])
	}
	args = append(args, image)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerCLI(), args...)
	cmd.Env = append(cmdEnv, "PATH="+os.Getenv("PATH"), "DOCKER_CONFIG="+filepath.Join(dd.Dir, "client"))
	cmd.Stdout = &j.stdout
	cmd.Stderr = &j.stdout
	start := time.Now()
	j.err = cmd.Run()
	j.took = time.Since(start)
}

func dockerCLI() string {
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		return "/usr/bin/docker"
	}
	return "docker"
}

// TestContainerAction runs the action's image in a real dockerd the way
// the runner runs it: first with no buildkit-host, so that it starts
// buildkitd in a container of its own through the Docker socket; then as
// a later step, which reuses that container; then naming it with
// docker-container://.
func TestContainerAction(t *testing.T) {
	start := time.Now()
	env := testenv.Build(t)
	dd := testenv.Docker(t)
	t.Logf("buildkitd, registry and dockerd up: %s", time.Since(start).Round(100*time.Millisecond))
	const image = "convox-build-action:test"
	start = time.Now()
	size := actionImage(t, dd, image)
	t.Logf("action image built and loaded: %s", time.Since(start).Round(100*time.Millisecond))
	t.Logf("action image: %d bytes (%.1f MiB)", size, float64(size)/(1<<20))
	if size > 40<<20 {
		t.Errorf("the action image is %d bytes: more than a static binary should need", size)
	}
	buildkitImage := "moby/buildkit:" + testenv.BuildkitVersion(t)
	start = time.Now()
	dd.BuildkitImage(t, buildkitImage)
	t.Logf("buildkit image built and loaded: %s", time.Since(start).Round(100*time.Millisecond))

	files := map[string]string{
		"convox.yml": "services:\n  web:\n    build: .\n  api:\n    build: .\n    command: api\n",
		"Dockerfile": "FROM busybox\nRUN echo \"::add-mask::busybox\" && echo built > /built\nCMD [\"cat\", \"/built\"]\n",
	}
	step := func(name string, inputs map[string]string) *job {
		j := newJob(t, files, "push/with-new-branch.payload.json")
		j.input("repository", env.Registry+"/container/app")
		for k, v := range inputs {
			j.input(k, v)
		}
		containerStep(t, dd, image, j)
		t.Logf("%s: %s", name, j.took.Round(100*time.Millisecond))
		if j.err != nil {
			t.Fatalf("%s: %v\n%s", name, j.err, j.stdout.String())
		}
		out := j.outputs()
		if !buildID.MatchString(out["build-id"]) || out["release-id"] == "" {
			t.Fatalf("%s: outputs %v\n%s", name, out, j.stdout.String())
		}
		var images map[string]string
		if err := json.Unmarshal([]byte(out["images"]), &images); err != nil || len(images) != 2 {
			t.Errorf("%s: images %q: %v", name, out["images"], err)
		}
		if !strings.Contains(j.summaryText(), out["build-id"]) {
			t.Errorf("%s: summary lacks the build ID", name)
		}
		for _, c := range j.commandsNamed("add-mask") {
			if c.Message == "busybox" {
				t.Errorf("%s: the build added a mask", name)
			}
		}
		if last := j.gh.Requests(); len(last) == 0 || last[len(last)-1].Body["conclusion"] != "success" {
			t.Errorf("%s: GitHub requests %+v", name, last)
		}
		return j
	}

	first := step("first step", nil)
	if !strings.Contains(first.stdout.String(), "starting buildkitd container "+dockerbuildkit.DefaultContainer+" ("+buildkitImage) {
		t.Errorf("the first step did not start %s from %s:\n%s", dockerbuildkit.DefaultContainer, buildkitImage, first.stdout.String())
	}
	c, err := dd.Client.InspectContainer(context.Background(), dockerbuildkit.DefaultContainer)
	if err != nil {
		t.Fatal(err)
	}
	if !c.State.Running || c.Config.Image != buildkitImage || c.Config.Labels[dockerbuildkit.Label] != buildkitImage {
		t.Errorf("buildkitd container: %+v", c)
	}

	second := step("second step", nil)
	if !strings.Contains(second.stdout.String(), "reusing buildkitd container "+dockerbuildkit.DefaultContainer) {
		t.Errorf("the second step did not reuse the container:\n%s", second.stdout.String())
	}
	var meta map[string]struct {
		CachedSteps int `json:"cached-steps"`
		TotalSteps  int `json:"total-steps"`
	}
	json.Unmarshal([]byte(second.outputs()["metadata"]), &meta)
	if m := meta["web"]; m.TotalSteps == 0 || m.CachedSteps != m.TotalSteps {
		t.Errorf("second step: web %+v, want every step cached by the reused buildkitd", m)
	}

	step("docker-container:// step", map[string]string{"buildkit-host": "docker-container://" + dockerbuildkit.DefaultContainer})
	ids, _ := dd.Client.ContainerIDs(context.Background(), dockerbuildkit.Label)
	if len(ids) != 1 {
		t.Errorf("%d buildkitd containers, want the one the first step started", len(ids))
	}
}

func mustReadDockerfile(t *testing.T) string {
	t.Helper()
	df, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	return string(df)
}
