package exportfile

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// Push pushes every service image of the archive, with its exact manifest
// bytes, as "<repository>:<service>.<newID>", checks that the registry
// holds each tag at the exported digest, and returns the services with
// their new Image references (same digests, entrypoints and image-only
// flags as exported).
//
// Push records nothing anywhere else: the caller creates the new Build and
// Release once Push has succeeded, so a failure leaves no half-made build.
// Images pushed before a failure stay in the registry, tagged with newID,
// which no build references.
func (a *Archive) Push(ctx context.Context, repository, newID string, reg Registry) ([]store.ServiceImage, error) {
	if !buildIDPattern.MatchString(newID) {
		return nil, fmt.Errorf("importing build %s: invalid new build ID %q (want B and 10 uppercase letters)", a.Build.ID, newID)
	}
	nameOpts, remoteOpts, err := registry.Remote(reg)
	if err != nil {
		return nil, err
	}
	repo, err := name.NewRepository(repository, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("importing build %s: repository %q: %w", a.Build.ID, repository, err)
	}
	opts := append(remoteOpts, remote.WithContext(ctx))
	pusher, err := remote.NewPusher(opts...)
	if err != nil {
		return nil, err
	}
	puller, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, err
	}
	var out []store.ServiceImage
	for _, s := range a.Build.Services {
		tag := repo.Tag(s.Service + "." + newID)
		if err := a.pushOne(ctx, pusher, puller, s, tag); err != nil {
			return nil, fmt.Errorf("importing build %s: service %s: pushing %s: %w", a.Build.ID, s.Service, tag, err)
		}
		out = append(out, store.ServiceImage{
			Service:    s.Service,
			Image:      repository + ":" + tag.TagStr(),
			Digest:     s.Digest,
			Entrypoint: s.Entrypoint,
			ImageOnly:  s.ImageOnly,
		})
	}
	return out, nil
}

func (a *Archive) pushOne(ctx context.Context, pusher *remote.Pusher, puller *remote.Puller, s store.ServiceImage, tag name.Tag) error {
	lp, err := layout.FromPath(a.Layout(s.Service))
	if err != nil {
		return err
	}
	h, err := v1.NewHash(s.Digest)
	if err != nil {
		return err
	}
	ii, err := lp.ImageIndex()
	if err != nil {
		return err
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return err
	}
	var t remote.Taggable
	for _, d := range im.Manifests {
		if d.Digest != h {
			continue
		}
		if d.MediaType.IsIndex() {
			t, err = ii.ImageIndex(h)
		} else {
			t, err = ii.Image(h)
		}
		break
	}
	if err != nil {
		return err
	}
	if t == nil {
		return fmt.Errorf("image %s not in the archive's index.json", h)
	}
	if err := pusher.Push(ctx, tag, t); err != nil {
		return err
	}
	got, err := puller.Head(ctx, tag)
	if err != nil {
		return fmt.Errorf("checking the pushed image: %w", err)
	}
	if got.Digest != h {
		return fmt.Errorf("the registry holds %s, not %s", got.Digest, h)
	}
	return nil
}
