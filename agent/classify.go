package agent

import (
	"errors"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// ExceptionModule is where the conductor finds the classes below; it is in
// Ironic's allowed_remote_exmods, so the caller re-raises the real class.
const ExceptionModule = "ironic.common.exception"

// ExceptionClass names the ironic exception an error becomes at the RPC edge.
// This is the one place errors are classified.
func ExceptionClass(err error) string {
	switch k := errdefs.Kind(err); {
	case errors.Is(k, errdefs.ErrInvalidArgument), errors.Is(k, errdefs.ErrNotSupported):
		return "InvalidParameterValue"
	case errors.Is(k, errdefs.ErrNotFound):
		return "NotFound"
	case errors.Is(k, errdefs.ErrConflict):
		return "Conflict"
	case errors.Is(k, errdefs.ErrStorage):
		return "StorageError"
	case errors.Is(k, errdefs.ErrNetwork):
		return "NetworkError"
	case errors.Is(k, errdefs.ErrUnavailable):
		return "TemporaryFailure"
	}
	return "IronicException"
}
