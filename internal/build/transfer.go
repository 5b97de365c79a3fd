package build

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/exportfile"
	"github.com/convox-build-action/convox-build-action/internal/manifest"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// logPage is how many log lines one store read returns.
const logPage = 1000

// ReadLogs calls fn for each log line of build id after afterSeq, in
// order, reading the store a page at a time, and returns the last Seq seen
// (afterSeq when there was none).
func ReadLogs(ctx context.Context, st store.Store, id string, afterSeq int64, fn func(store.LogLine)) (int64, error) {
	for {
		lines, err := st.ReadLogs(ctx, id, afterSeq, logPage)
		if err != nil {
			return afterSeq, fmt.Errorf("reading log of %s: %w", id, err)
		}
		for _, l := range lines {
			fn(l)
			afterSeq = l.Seq
		}
		if len(lines) < logPage {
			return afterSeq, nil
		}
	}
}

// Export writes build b, with its log and every service's image, to w in
// Convox's export format.
//
// Only a complete build of every service of its convox.yml can be
// exported: Convox's import makes a release of every service of the
// manifest, so an export of a build made for some services only would
// import into a release whose other services have no image. Export
// refuses such a build, naming the services it lacks, before writing
// anything.
func Export(ctx context.Context, st store.Store, b *store.Build, w io.Writer, reg registry.Options) error {
	if b.Status != store.StatusComplete {
		return &InputError{Err: fmt.Errorf("build %s is %s: only complete builds can be exported", b.ID, b.Status)}
	}
	if err := checkWhole(b); err != nil {
		return &InputError{Err: err}
	}
	var logs []string
	if _, err := ReadLogs(ctx, st, b.ID, 0, func(l store.LogLine) { logs = append(logs, l.Text) }); err != nil {
		return err
	}
	return exportfile.Write(ctx, w, b, logs, reg) // its errors name the build
}

// checkWhole checks that b has an image for every service of its
// manifest.
func checkWhole(b *store.Build) error {
	m, _, err := manifest.Parse("convox.yml", []byte(b.Manifest), manifest.Options{})
	if m == nil {
		return fmt.Errorf("build %s cannot be exported: its convox.yml does not parse: %w", b.ID, err)
	}
	have := map[string]bool{}
	for _, s := range b.Services {
		have[s.Service] = true
	}
	var built, missing []string
	for _, name := range m.ServiceNames() {
		if have[name] {
			built = append(built, name)
		} else {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("build %s cannot be exported: it was built for %s only, and its convox.yml also has %s, which a release of the export would need (Convox's import releases every service of convox.yml): build every service, then export that build",
		b.ID, strings.Join(built, ", "), strings.Join(missing, ", "))
}

// Import reads an export from r, verifies it, pushes its images to
// repository under a new build ID, and only then records the new Build
// (complete), its log, and its Release: a corrupt or truncated file leaves
// nothing behind. It reads exports made by Export and by Convox's
// `convox builds export`.
//
// The file is extracted into a work dir under os.TempDir(), removed when
// Import returns; one left behind by a killed import is removed by the next
// import (see exportfile.NewWorkDir). Memory use does not grow with the
// file: the log goes to the store in batches, and is cut at
// exportfile.MaxLogLines lines.
func Import(ctx context.Context, st store.Store, r io.Reader, app, repository string, reg registry.Options, now func() time.Time) (*store.Build, error) {
	if now == nil {
		now = time.Now
	}
	wd, err := exportfile.NewWorkDir("")
	if err != nil {
		return nil, err
	}
	defer wd.Close()
	a, err := exportfile.Read(ctx, r, filepath.Join(wd.Path(), "archive"))
	if err != nil {
		return nil, err
	}
	id := NewID("B")
	images, err := a.Push(ctx, repository, id, reg)
	if err != nil {
		return nil, err
	}
	started := now().UTC()
	src := a.Build
	b := &store.Build{
		ID: id, App: app, Description: src.Description, Entrypoint: src.Entrypoint, GitSHA: src.GitSHA,
		Manifest: src.Manifest, Process: src.Process, Repository: repository, Status: store.StatusRunning,
		Started: started, Services: images,
	}
	if err := st.CreateBuild(ctx, b); err != nil {
		return nil, fmt.Errorf("recording build: %w", err)
	}
	fctx := context.WithoutCancel(ctx)
	fail := func(err error) (*store.Build, error) {
		b.Status, b.Reason, b.Ended = store.StatusFailed, err.Error(), now().UTC()
		st.UpdateBuild(fctx, b)
		return nil, err
	}
	if err := a.ReadLogs(func(lines []string) error { return st.AppendLogs(fctx, id, lines) }); err != nil {
		return fail(fmt.Errorf("recording log: %w", err))
	}
	rel := &store.Release{ID: NewID("R"), App: app, Build: id, Manifest: src.Manifest, Description: src.Description, Created: now().UTC()}
	if err := st.CreateRelease(fctx, rel); err != nil {
		return fail(fmt.Errorf("recording release: %w", err))
	}
	b.Status, b.Release, b.Ended = store.StatusComplete, rel.ID, now().UTC()
	if err := st.UpdateBuild(fctx, b); err != nil {
		return nil, fmt.Errorf("recording build: %w", err)
	}
	return b, nil
}
