package action_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/action"
	"github.com/convox-build-action/convox-build-action/internal/cli"
	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

// The action's own overhead: the same app built by action.Run (inputs,
// masks, log groups, outputs, summary, a check run on the fake GitHub,
// its own build records) and by the CLI (`convox-build build`), on the
// same buildkitd. Each reports action-s/op, cli-s/op and their ratio.

var benchFiles = map[string]string{
	"convox.yml":      "services:\n  web:\n    build: .\n  api:\n    build: api\n",
	"Dockerfile":      "FROM busybox\nARG N\nRUN echo web $N > /web\n",
	"api/Dockerfile":  "FROM busybox\nARG N\nRUN echo api $N > /api\n",
	"api/placeholder": "x\n",
}

func runBench(b *testing.B, noCache bool) {
	env := testenv.Build(b)
	var actionTime, cliTime time.Duration
	for i := 0; i < b.N; i++ {
		// The action, as a step.
		j := newJob(b, benchFiles, "push/with-new-branch.payload.json")
		j.input("app", "bench")
		j.input("repository", env.Registry+"/bench/action")
		j.input("buildkit-host", env.BuildkitAddr)
		j.input("build-args", "N=1")
		if noCache {
			j.input("no-cache", "true")
		}
		start := time.Now()
		j.run(action.Config{})
		actionTime += time.Since(start)
		if j.err != nil {
			b.Fatalf("action: %v\n%s", j.err, j.stdout.String())
		}

		// The CLI, on the same workspace.
		args := []string{"build", j.workspace, "--app", "bench", "--repository", env.Registry + "/bench/cli", "--build-arg", "N=1",
			"--buildkit-host", env.BuildkitAddr, "--database", "sqlite://" + filepath.Join(b.TempDir(), "builds.db")}
		if noCache {
			args = append(args, "--no-cache")
		}
		var out bytes.Buffer
		start = time.Now()
		code := cli.Main(context.Background(), args, &cli.IOStreams{Out: &out, ErrOut: &out}, func(string) string { return "" })
		cliTime += time.Since(start)
		if code != 0 {
			b.Fatalf("cli exited %d:\n%s", code, out.String())
		}
	}
	n := float64(b.N)
	b.ReportMetric(actionTime.Seconds()/n, "action-s/op")
	b.ReportMetric(cliTime.Seconds()/n, "cli-s/op")
	b.ReportMetric(actionTime.Seconds()/cliTime.Seconds(), "ratio")
}

// BenchmarkActionVsCLINothingChanged: both services fully cached, so the
// fixed costs are what is measured.
func BenchmarkActionVsCLINothingChanged(b *testing.B) { runBench(b, false) }

// BenchmarkActionVsCLINoCache: every step runs.
func BenchmarkActionVsCLINoCache(b *testing.B) { runBench(b, true) }
