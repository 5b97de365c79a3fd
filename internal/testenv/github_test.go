package testenv_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-github/v60/github"

	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

// The fake answers the real go-github client, records what it sent, and
// plays scripted answers in turn.
func TestFakeGitHub(t *testing.T) {
	g := testenv.FakeGitHub(t)
	gh, err := github.NewClient(nil).WithAuthToken("tok").WithEnterpriseURLs(g.URL+"/", g.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cr, _, err := gh.Checks.CreateCheckRun(ctx, "acme", "shop", github.CreateCheckRunOptions{Name: "n", HeadSHA: "abc", Status: github.String("in_progress")})
	if err != nil || cr.GetID() == 0 || cr.GetName() != "n" {
		t.Fatalf("create: %+v %v", cr, err)
	}
	if _, _, err := gh.Checks.UpdateCheckRun(ctx, "acme", "shop", cr.GetID(), github.UpdateCheckRunOptions{Name: "n", Conclusion: github.String("success")}); err != nil {
		t.Fatal(err)
	}
	g.Respond("POST", "/repos/acme/shop/statuses/abc", testenv.GitHubResponse{Status: 403, Body: `{"message":"no"}`}, testenv.GitHubResponse{Status: 201, Body: `{"id": 7}`})
	for i, want := range []int{403, 201, 201} {
		_, resp, _ := gh.Repositories.CreateStatus(ctx, "acme", "shop", "abc", &github.RepoStatus{State: github.String("pending")})
		if resp == nil || resp.StatusCode != want {
			t.Errorf("status call %d: %v, want HTTP %d", i, resp, want)
		}
	}
	g.Handle("GET", "/repos/acme/shop/contents/", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"type":"file","name":"convox.yml"}`))
	})
	fc, _, _, err := gh.Repositories.GetContents(ctx, "acme", "shop", "convox.yml", nil)
	if err != nil || fc.GetName() != "convox.yml" {
		t.Errorf("handled path: %+v %v", fc, err)
	}
	if _, _, err := gh.Issues.Get(ctx, "acme", "shop", 1); err == nil {
		t.Errorf("an unknown path did not answer 404")
	}
	reqs := g.Requests()
	if len(reqs) != 7 || reqs[0].Path != "/repos/acme/shop/check-runs" || reqs[0].Body["head_sha"] != "abc" ||
		reqs[0].Header.Get("Authorization") != "Bearer tok" || reqs[1].Method != "PATCH" || reqs[1].Body["conclusion"] != "success" {
		t.Errorf("requests %+v", reqs)
	}
	if n := len(g.RequestsTo("POST", "/repos/acme/shop/statuses/")); n != 3 {
		t.Errorf("%d status requests", n)
	}
}
