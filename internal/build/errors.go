package build

import (
	"errors"
	"fmt"
	"strings"
)

// InputError is a problem with what the caller asked for (a bad
// convox.yml, an unknown service, a bad ID): the CLI exits 1, the server
// answers 400; nothing ran.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// IsInputError reports whether err is, or wraps, an InputError.
func IsInputError(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
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
