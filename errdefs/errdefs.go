// Package errdefs holds the error kinds shared by every layer. Code below the
// RPC edge wraps one of these with %w; the edge (agent) classifies once and maps
// the kind to the exception class the Python caller knows.
package errdefs

import "errors"

var (
	// ErrInvalidArgument: the request is malformed; nothing was changed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: the named object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request contradicts current state (stale generation,
	// representor on another bridge, ...). Nothing was changed.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: a dependency (SPDK, OVSDB, broker) cannot be reached now;
	// the agent keeps retrying in the background.
	ErrUnavailable = errors.New("unavailable")
	// ErrStorage: the storage backend or emulator refused or failed an operation.
	ErrStorage = errors.New("storage error")
	// ErrNetwork: OVS/OVN or representor handling failed.
	ErrNetwork = errors.New("network error")
	// ErrNotSupported: the selected DPU driver cannot do this.
	ErrNotSupported = errors.New("not supported")
)

// Kind returns the first errdefs sentinel found in err's chain, or nil.
func Kind(err error) error {
	for _, k := range []error{ErrInvalidArgument, ErrNotFound, ErrConflict, ErrNotSupported, ErrUnavailable, ErrStorage, ErrNetwork} {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}
