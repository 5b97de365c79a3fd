package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/convox-build-action/convox-build-action/internal/queue"
)

// Policy says which events are built.
type Policy struct {
	// BuildForks builds pull requests from forks; otherwise they get a
	// neutral check run saying why they were not built. Default false: a
	// fork's code would run with the server's credentials.
	BuildForks bool
	// BuildTags builds pushed tags (default false: branches only).
	BuildTags bool
	// AppID, when set, ignores check_suite and check_run events of other
	// GitHub Apps.
	AppID int64
}

// NoticeExternalID is the external_id of the neutral check runs that say
// why a commit was not built: a re-run of one does not build the commit.
const NoticeExternalID = "convox-build-notice"

// Routed is what one event asks for.
type Routed struct {
	Action         string
	Repository     string // owner/name
	InstallationID int64
	Plan           queue.Plan
}

// ErrUnhandled is Route's error for an event type the server does not act
// on: answered 2xx and otherwise ignored.
var ErrUnhandled = errors.New("event not handled")

// zeroSHA is the "after" of a push that deleted a branch or tag.
const zeroSHA = "0000000000000000000000000000000000000000"

// Route decides what a delivery of event with payload asks for: builds,
// notices, an installation record, or nothing (Plan.Note says why). An
// event type it does not handle is ErrUnhandled; a payload that is not
// valid JSON for its event is an error. Only the fields used are decoded,
// so a field GitHub formats differently (old payloads' times) does not
// matter.
func Route(event string, payload []byte, p Policy) (*Routed, error) {
	var e ghEvent
	switch event {
	case "push", "pull_request", "check_suite", "check_run", "installation", "installation_repositories":
	default:
		return nil, ErrUnhandled
	}
	if err := json.Unmarshal(payload, &e); err != nil {
		return nil, fmt.Errorf("reading the %s payload: %w", event, err)
	}
	switch event {
	case "push":
		return routePush(&e, p), nil
	case "pull_request":
		return routePullRequest(&e, p), nil
	case "check_suite":
		return routeCheckSuite(&e, p), nil
	case "check_run":
		return routeCheckRun(&e, p), nil
	case "installation":
		return routeInstallation(&e), nil
	default:
		return routeInstallationRepositories(&e), nil
	}
}

// ghEvent holds the fields of the handled events that routing reads.
type ghEvent struct {
	Action       string          `json:"action"`
	Installation *ghInstallation `json:"installation"`
	Repository   *ghRepo         `json:"repository"`
	// push
	Ref        string `json:"ref"`
	After      string `json:"after"`
	Deleted    bool   `json:"deleted"`
	HeadCommit *struct {
		Message string `json:"message"`
	} `json:"head_commit"`
	// pull_request
	Number      int `json:"number"`
	PullRequest *struct {
		Number int      `json:"number"`
		Title  string   `json:"title"`
		Head   ghBranch `json:"head"`
	} `json:"pull_request"`
	// check_suite, check_run
	CheckSuite *ghCheckSuite `json:"check_suite"`
	CheckRun   *struct {
		HeadSHA    string        `json:"head_sha"`
		ExternalID string        `json:"external_id"`
		App        *ghApp        `json:"app"`
		CheckSuite *ghCheckSuite `json:"check_suite"`
	} `json:"check_run"`
	// installation, installation_repositories
	Repositories        []ghRepo `json:"repositories"`
	RepositoriesAdded   []ghRepo `json:"repositories_added"`
	RepositoriesRemoved []ghRepo `json:"repositories_removed"`
}

type ghInstallation struct {
	ID      int64 `json:"id"`
	Account *struct {
		Login string `json:"login"`
	} `json:"account"`
}

type ghRepo struct {
	Name     string `json:"name"`
	FullName string `json:"full_name"`
	Owner    *struct {
		Login string `json:"login"`
		Name  string `json:"name"`
	} `json:"owner"`
}

// owner is the repository owner's login (a push payload may give only
// its name).
func (r *ghRepo) owner() string {
	if r == nil || r.Owner == nil {
		return ""
	}
	if r.Owner.Login != "" {
		return r.Owner.Login
	}
	return r.Owner.Name
}

func (r *ghRepo) name() string {
	if r == nil {
		return ""
	}
	return r.Name
}

func (r *ghRepo) fullName() string {
	if r == nil {
		return ""
	}
	return r.FullName
}

type ghBranch struct {
	Ref  string  `json:"ref"`
	SHA  string  `json:"sha"`
	Repo *ghRepo `json:"repo"`
}

type ghCheckSuite struct {
	HeadSHA    string `json:"head_sha"`
	HeadBranch string `json:"head_branch"`
	App        *ghApp `json:"app"`
	HeadCommit *struct {
		Message string `json:"message"`
	} `json:"head_commit"`
}

type ghApp struct {
	ID int64 `json:"id"`
}

func (a *ghApp) id() int64 {
	if a == nil {
		return 0
	}
	return a.ID
}

func (e *ghEvent) installationID() int64 {
	if e.Installation == nil {
		return 0
	}
	return e.Installation.ID
}

func (e *ghEvent) account() string {
	if e.Installation == nil || e.Installation.Account == nil {
		return ""
	}
	return e.Installation.Account.Login
}

// AppName is the Convox app name of a repository: its name in lowercase,
// with anything but letters, digits and dashes turned into dashes.
func AppName(repo string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(repo) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.TrimRight(b.String(), "-")
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	if name == "" {
		name = "app"
	}
	return name
}

// firstLine is s up to its first newline, at most 200 bytes.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}

func ignored(r *Routed, why string) *Routed {
	r.Plan = queue.Plan{Note: why}
	return r
}

func routePush(e *ghEvent, p Policy) *Routed {
	repo := e.Repository
	r := &Routed{Repository: repo.fullName(), InstallationID: e.installationID()}
	ref := e.Ref
	if e.Deleted || e.After == zeroSHA || e.After == "" {
		return ignored(r, ref+" was deleted")
	}
	var branch string
	switch {
	case strings.HasPrefix(ref, "refs/heads/"):
		branch = strings.TrimPrefix(ref, "refs/heads/")
	case strings.HasPrefix(ref, "refs/tags/"):
		if !p.BuildTags {
			return ignored(r, "tag "+strings.TrimPrefix(ref, "refs/tags/")+" pushed: tags are not built on this server")
		}
	default:
		return ignored(r, "push to "+ref+": not a branch or tag")
	}
	if r.InstallationID == 0 {
		return ignored(r, "no installation in the payload")
	}
	if repo.owner() == "" || repo.name() == "" {
		return ignored(r, "no repository in the payload")
	}
	description := ""
	if e.HeadCommit != nil {
		description = firstLine(e.HeadCommit.Message)
	}
	r.Plan.Builds = []queue.BuildRequest{{
		InstallationID: r.InstallationID,
		Owner:          repo.owner(),
		Repo:           repo.name(),
		SHA:            e.After,
		Ref:            ref,
		Branch:         branch,
		App:            AppName(repo.name()),
		Description:    description,
		Supersede:      branch != "",
	}}
	return r
}

func routePullRequest(e *ghEvent, p Policy) *Routed {
	repo := e.Repository
	r := &Routed{Action: e.Action, Repository: repo.fullName(), InstallationID: e.installationID()}
	switch e.Action {
	case "opened", "synchronize", "reopened":
	default:
		return ignored(r, "pull request "+e.Action+": nothing to build")
	}
	if r.InstallationID == 0 {
		return ignored(r, "no installation in the payload")
	}
	pr := e.PullRequest
	if pr == nil || repo.owner() == "" || repo.name() == "" || pr.Head.SHA == "" {
		return ignored(r, "no repository or head commit in the payload")
	}
	number := pr.Number
	if number == 0 {
		number = e.Number
	}
	head := pr.Head
	fork := head.Repo == nil || !strings.EqualFold(head.Repo.FullName, repo.fullName())
	if fork && !p.BuildForks {
		from := "a deleted fork"
		if head.Repo != nil {
			from = head.Repo.FullName
		}
		r.Plan.Notices = []queue.Notice{{
			InstallationID: r.InstallationID,
			Owner:          repo.owner(),
			Repo:           repo.name(),
			SHA:            head.SHA,
			App:            AppName(repo.name()),
			Title:          "Not built: pull request from a fork",
			Summary: fmt.Sprintf("Pull request #%d comes from %s. Pull requests from forks are not built on this server: "+
				"their code would run with the server's registry credentials. A maintainer can push the branch to %s to build it.",
				number, from, repo.fullName()),
		}}
		return r
	}
	branch := head.Ref
	if fork {
		branch = fmt.Sprintf("pull/%d", number)
	}
	r.Plan.Builds = []queue.BuildRequest{{
		InstallationID: r.InstallationID,
		Owner:          repo.owner(),
		Repo:           repo.name(),
		SHA:            head.SHA,
		Ref:            fmt.Sprintf("refs/pull/%d/head", number),
		Branch:         branch,
		App:            AppName(repo.name()),
		Description:    firstLine(fmt.Sprintf("#%d %s", number, pr.Title)),
		Supersede:      true,
	}}
	return r
}

func routeCheckSuite(e *ghEvent, p Policy) *Routed {
	repo := e.Repository
	r := &Routed{Action: e.Action, Repository: repo.fullName(), InstallationID: e.installationID()}
	cs := e.CheckSuite
	switch {
	case e.Action != "requested" && e.Action != "rerequested":
		return ignored(r, "check suite "+e.Action+": nothing to build")
	case cs == nil || cs.HeadSHA == "" || repo.owner() == "" || repo.name() == "":
		return ignored(r, "no repository or head commit in the payload")
	case p.AppID != 0 && cs.App.id() != p.AppID:
		return ignored(r, fmt.Sprintf("check suite of another app (%d)", cs.App.id()))
	case r.InstallationID == 0:
		return ignored(r, "no installation in the payload")
	case cs.HeadBranch == "" && !p.BuildForks:
		// GitHub gives no branch for a suite of a fork's commit.
		return ignored(r, "check suite without a branch (a pull request from a fork?): not built")
	}
	description := ""
	if cs.HeadCommit != nil {
		description = firstLine(cs.HeadCommit.Message)
	}
	return build(r, repo, cs.HeadSHA, cs.HeadBranch, description, e.Action == "rerequested")
}

func routeCheckRun(e *ghEvent, p Policy) *Routed {
	repo := e.Repository
	r := &Routed{Action: e.Action, Repository: repo.fullName(), InstallationID: e.installationID()}
	cr := e.CheckRun
	switch {
	case e.Action != "rerequested":
		return ignored(r, "check run "+e.Action+": nothing to build")
	case cr == nil || cr.HeadSHA == "" || repo.owner() == "" || repo.name() == "":
		return ignored(r, "no repository or head commit in the payload")
	case p.AppID != 0 && cr.App.id() != p.AppID:
		return ignored(r, fmt.Sprintf("check run of another app (%d)", cr.App.id()))
	case cr.ExternalID == NoticeExternalID:
		return ignored(r, "re-run of a check that says why the commit is not built")
	case r.InstallationID == 0:
		return ignored(r, "no installation in the payload")
	}
	branch := ""
	if cr.CheckSuite != nil {
		branch = cr.CheckSuite.HeadBranch
	}
	if branch == "" && !p.BuildForks {
		return ignored(r, "check run without a branch (a pull request from a fork?): not built")
	}
	return build(r, repo, cr.HeadSHA, branch, "", true)
}

// build asks for a build of sha on branch; a rerun builds it again and
// supersedes nothing.
func build(r *Routed, repo *ghRepo, sha, branch, description string, rerun bool) *Routed {
	ref := ""
	if branch != "" {
		ref = "refs/heads/" + branch
	}
	r.Plan.Builds = []queue.BuildRequest{{
		InstallationID: r.InstallationID,
		Owner:          repo.owner(),
		Repo:           repo.name(),
		SHA:            sha,
		Ref:            ref,
		Branch:         branch,
		App:            AppName(repo.name()),
		Description:    description,
		Supersede:      !rerun && branch != "",
		Rebuild:        rerun,
	}}
	return r
}

func routeInstallation(e *ghEvent) *Routed {
	r := &Routed{Action: e.Action, InstallationID: e.installationID()}
	if r.InstallationID == 0 {
		return ignored(r, "no installation in the payload")
	}
	state := "active"
	switch e.Action {
	case "deleted":
		state = "deleted"
	case "suspend":
		state = "suspended"
	}
	rec := &queue.Installation{ID: r.InstallationID, Account: e.account(), State: state}
	if e.Action == "created" {
		rec.Repositories = []string{}
		for _, repo := range e.Repositories {
			rec.Repositories = append(rec.Repositories, repo.FullName)
		}
	}
	r.Plan.Installation = rec
	return r
}

func routeInstallationRepositories(e *ghEvent) *Routed {
	r := &Routed{Action: e.Action, InstallationID: e.installationID()}
	if r.InstallationID == 0 {
		return ignored(r, "no installation in the payload")
	}
	rec := &queue.Installation{ID: r.InstallationID, Account: e.account(), State: "active"}
	for _, repo := range e.RepositoriesAdded {
		rec.Added = append(rec.Added, repo.FullName)
	}
	for _, repo := range e.RepositoriesRemoved {
		rec.Removed = append(rec.Removed, repo.FullName)
	}
	r.Plan.Installation = rec
	return r
}
