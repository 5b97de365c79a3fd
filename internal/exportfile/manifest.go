package exportfile

import (
	"fmt"
	"sort"
	"strings"

	"github.com/convox-build-action/convox-build-action/internal/manifest"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

// buildManifest is what an export needs of build.json's manifest: its
// services, in file order, and which of them are image: services.
type buildManifest struct {
	services  []string
	imageOnly map[string]bool
}

// parseManifest reads build.json's manifest. It must be a convox.yml with
// services: an export whose manifest is not would import as a build whose
// release nothing can deploy. Interpolation uses an empty environment, and
// problems other than unreadable YAML are left to whoever deploys it, as
// the export came from a build that accepted them.
func parseManifest(text string) (*buildManifest, error) {
	m, _, err := manifest.Parse("convox.yml", []byte(text), manifest.Options{})
	if m == nil {
		if err == nil {
			err = fmt.Errorf("unreadable")
		}
		return nil, fmt.Errorf("%s: its \"manifest\" is not a convox.yml: %w", BuildJSONName, err)
	}
	if len(m.Services) == 0 {
		return nil, fmt.Errorf("%s: its \"manifest\" (convox.yml) has no services: not a build export", BuildJSONName)
	}
	bm := &buildManifest{imageOnly: map[string]bool{}}
	for _, s := range m.Services {
		bm.services = append(bm.services, s.Name)
		bm.imageOnly[s.Name] = s.Image != ""
	}
	return bm, nil
}

// sort orders services as the manifest does.
func (m *buildManifest) sort(services []store.ServiceImage) {
	pos := map[string]int{}
	for i, s := range m.services {
		pos[s] = i
	}
	rank := func(s string) int {
		if p, ok := pos[s]; ok {
			return p
		}
		return len(pos) + 1 // not in the manifest (refused later): last
	}
	sort.SliceStable(services, func(i, j int) bool {
		return rank(services[i].Service) < rank(services[j].Service)
	})
}

// covers checks that services are exactly the manifest's: an image for a
// service the manifest lacks belongs to no release, and a service without
// an image leaves the release undeployable.
func (m *buildManifest) covers(services []store.ServiceImage) error {
	have := map[string]bool{}
	for _, s := range services {
		have[s.Service] = true
	}
	inManifest := map[string]bool{}
	var missing []string
	for _, s := range m.services {
		inManifest[s] = true
		if !have[s] {
			missing = append(missing, s)
		}
	}
	for _, s := range services {
		if !inManifest[s.Service] {
			return fmt.Errorf("service %s: not a service of %s's manifest (%s)", s.Service, BuildJSONName, strings.Join(m.services, ", "))
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%s: service %s of the manifest has no image in the export, so a release of it could not run it: a build of some services only cannot be imported; export a build of every service", BuildJSONName, missing[0])
	}
	return fmt.Errorf("%s: services %s of the manifest have no image in the export, so a release of it could not run them: a build of some services only cannot be imported; export a build of every service", BuildJSONName, strings.Join(missing, ", "))
}
