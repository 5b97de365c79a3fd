package build

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/store"
)

// Field names the part of a Request an InputError is about, so that each
// front end can say what to change in its own words (a flag, an input, a
// setting).
type Field string

// Request fields an InputError can be about.
const (
	FieldApp        Field = "app"
	FieldID         Field = "id"
	FieldRepository Field = "repository"
	FieldSourceDir  Field = "source-dir"
	FieldManifest   Field = "manifest"
	FieldCache      Field = "cache"
)

// ErrNoManifest is wrapped by the InputError for a convox.yml that does
// not exist.
var ErrNoManifest = errors.New("no such file")

// InputError is a problem with what the caller asked for (a bad
// convox.yml, an unknown service, a bad ID): the CLI exits 1, the server
// answers 400; nothing ran. Its text never names a front end's flags or
// inputs; Field says which part of the request is wrong.
type InputError struct {
	Field Field
	Err   error
}

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// IsInputError reports whether err is, or wraps, an InputError.
func IsInputError(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
}

// InputField returns the Field of the InputError in err's chain, or "".
func InputField(err error) Field {
	var ie *InputError
	if errors.As(err, &ie) {
		return ie.Field
	}
	return ""
}

// ServiceError is the failure of one service's build, naming it.
type ServiceError struct {
	// Services built by the failed build spec.
	Services []string
	// Failure carries BuildKit's report when the Dockerfile build failed.
	Failure *Failure
	Err     error
}

func (e *ServiceError) Error() string {
	return fmt.Sprintf("service %s: %v", strings.Join(e.Services, ", "), e.Err)
}

func (e *ServiceError) Unwrap() error { return e.Err }

// InProgressError is Run's error for a Request.ID whose build another
// process is running now (its heartbeat is fresh): try again later.
type InProgressError struct {
	ID        string
	Heartbeat time.Time
}

func (e *InProgressError) Error() string {
	return fmt.Sprintf("build %s is running in another process (last heartbeat %s)", e.ID, e.Heartbeat.UTC().Format(time.RFC3339))
}

// PreviousRunError is Run's error for a Request.ID whose build already
// failed in an earlier run; Build is that build.
type PreviousRunError struct{ Build *store.Build }

func (e *PreviousRunError) Error() string {
	return fmt.Sprintf("build %s failed: %s", e.Build.ID, e.Build.Reason)
}
