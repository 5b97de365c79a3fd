package checks_test

import (
	"testing"

	"github.com/convox-build-action/convox-build-action/internal/checks"
	"github.com/convox-build-action/convox-build-action/internal/report"
)

// TestAttachCompletesAnEarlierRun: a resumed build completes the run an
// earlier process created, without creating another.
func TestAttachCompletesAnEarlierRun(t *testing.T) {
	g, client := newGitHub(t)
	run := checks.Attach(client(), checks.Options{Owner: "acme", Repo: "shop", HeadSHA: "abc", Name: "convox build (shop)"}, 42)
	if run.ID() != 42 || run.Mode() != checks.ModeCheckRun {
		t.Fatalf("attached run %d, mode %s", run.ID(), run.Mode())
	}
	if err := run.Complete(t.Context(), report.Snapshot{App: "shop", Status: report.Complete}, checks.Success); err != nil {
		t.Fatal(err)
	}
	reqs := g.requests()
	if len(reqs) != 1 || reqs[0].Method != "PATCH" || reqs[0].Path != "/repos/acme/shop/check-runs/42" ||
		reqs[0].Body["conclusion"] != "success" || reqs[0].Body["status"] != "completed" {
		t.Errorf("requests %+v; want one PATCH completing run 42", reqs)
	}
}
